"""Horizon exposure: an account left liquidatable because gas exceeds its bonus has a certain deficit.

One WETH collateral account and one USDC debt, a 20 % crash at hour 1 and gas far above the bonus: nobody
liquidates. The account is not underwater (collateral > debt), so the open underwater debt is 0, but a
liquidation at the final price seizes all collateral and repays only ``collateral / LB`` of the debt: the
rest, ``debt − collateral/LB``, is certain and is reported as ``horizon_exposure_usd`` and counted in bad
debt. A second account is underwater: its exposure is what the bonus adds on top of its shortfall.
"""

import numpy as np
import pytest

from optimizer.engine import evaluate, prepare
from optimizer.scenario.config import load_scenario

SCENARIO = """
[scenario]
name = "exposure"
horizon_h = 2
step_min = 10
paths = 2
seed = 1

[assets.WETH]
price_usd = 3000
model = "constant"
shocks = [{ at_h = 1.0, drop = 0.2 }]

[assets.USDC]
price_usd = 1.0
model = "constant"

[liquidators]
gas_per_call = 600000
gas_gwei = 1000.0
gas_token = "WETH"

[[protocols]]
adapter = "aave_v3"
[protocols.book]
kind = "csv"
path = "book.csv"
"""


@pytest.mark.parametrize("engine", ["kernel", "reference"])
def test_liquidatable_but_unliquidated_accounts_report_their_certain_deficit(tmp_path, engine):
    (tmp_path / "book.csv").write_text(
        "account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount\n"
        "not_underwater,aave_v3,WETH,1.0,USDC,2350\n"
        "underwater,aave_v3,WETH,1.0,USDC,2500\n"
        "healthy,aave_v3,WETH,1.0,USDC,1000\n")
    (tmp_path / "s.toml").write_text(SCENARIO)
    res = evaluate(prepare(load_scenario(tmp_path / "s.toml")), engine=engine)
    lb = res.bound.adapters[0].params["WETH.liquidation_bonus_bps"] / 1e4
    p = 2400.0
    assert res.raw.liquidations.sum() == 0, "gas (~$1,440 a call) exceeds every bonus: nobody liquidates"
    np.testing.assert_allclose(res.raw.unrealised_bad_debt_usd[:, 0], 2500 - p)
    expected = (2350 - p / lb) + ((2500 - p / lb) - (2500 - p))
    np.testing.assert_allclose(res.raw.horizon_exposure_usd[:, 0], expected, rtol=1e-12)
    m = res.metrics()
    assert m["horizon_exposure_usd"]["mean"] == pytest.approx(expected)
    assert m["bad_debt_usd"]["mean"] == pytest.approx(2500 - p + expected)
    assert m["bad_debt_usd"]["p_positive"] == 1.0


def test_exposure_alone_makes_bad_debt_positive(tmp_path):
    """Without the exposure the book would report no bad debt at all: nothing is underwater."""
    (tmp_path / "book.csv").write_text(
        "account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount\n"
        "a,aave_v3,WETH,1.0,USDC,2350\n")
    (tmp_path / "s.toml").write_text(SCENARIO)
    res = evaluate(prepare(load_scenario(tmp_path / "s.toml")))
    assert res.raw.unrealised_bad_debt_usd.sum() == 0 and res.raw.realised_bad_debt_usd.sum() == 0
    assert res.metrics()["bad_debt_usd"]["p_positive"] == 1.0
