"""The market is two-sided: debt assets are checked at the bar's high, and liquidators' purchases of the
debt they repay move its price up (a short squeeze feeds itself), on both engines.

Book: accounts with USDC collateral and WETH debt (short ETH). WETH is a replayed 10-minute path.
"""

import numpy as np
import pytest

from optimizer.engine import evaluate, prepare
from optimizer.scenario.config import load_scenario

SCENARIO = """
[scenario]
name = "two-sided"
step_min = 10
paths = 1
seed = 1

[assets.WETH]
model = "replay"
csv = "weth.csv"
{liquidity}

[assets.USDC]
price_usd = 1.0
model = "constant"

[liquidators]
gas_gwei = 0.0

[[protocols]]
adapter = "aave_v3"
[protocols.book]
kind = "csv"
path = "book.csv"
"""
HEADER = "timestamp,open_usd,high_usd,low_usd,close_usd,volume_base\n"


def _write(tmp_path, bars, accounts, liquidity=""):
    rows = [f"2024-01-01T{i // 6:02d}:{(i % 6) * 10:02d}:00Z,{o},{h},{lo},{c},1\n" for i, (o, h, lo, c) in enumerate(bars)]
    (tmp_path / "weth.csv").write_text(HEADER + "".join(rows))
    lines = ["account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount"]
    lines += [f"a{i},aave_v3,USDC,{c},WETH,{d}" for i, (c, d) in enumerate(accounts)]
    (tmp_path / "book.csv").write_text("\n".join(lines) + "\n")
    (tmp_path / "s.toml").write_text(SCENARIO.format(liquidity=liquidity))
    return prepare(load_scenario(tmp_path / "s.toml"))


@pytest.mark.parametrize("engine", ["kernel", "reference"])
def test_debt_is_checked_at_the_bar_high(tmp_path, engine):
    """An intra-bar squeeze of the debt asset liquidates although every close is below the line."""
    flat = (3000.0, 3000.0, 3000.0, 3000.0)
    spike = (3000.0, 3300.0, 3000.0, 3000.0)  # bar 4: high 3,300, closes back at 3,000
    prep = _write(tmp_path, [flat] * 3 + [spike] + [flat] * 4, [(10_000.0, 7800.0 / (3000.0 * 1.04))])
    res = evaluate(prep, engine=engine)
    assert res.raw.liquidations[0, 0] >= 1
    assert res.raw.first_liquidation_step[0] == 4  # the spike's bar, not earlier, never at a close


@pytest.mark.parametrize("engine", ["kernel", "reference"])
def test_liquidators_buying_the_debt_push_its_price_up_and_liquidate_more(tmp_path, engine):
    bars = [(3000.0, 3000.0, 3000.0, 3000.0)] * 2 + [(3000.0, 3200.0, 3000.0, 3200.0)] + \
        [(3200.0, 3200.0, 3200.0, 3200.0)] * 5
    hf = np.linspace(1.02, 1.25, 30)  # at 3,000; the jump to 3,200 (+6.7 %) reaches HF 1.067 directly
    accounts = [(10_000.0, 7800.0 / (3000.0 * h)) for h in hf]
    deep = evaluate(_write(tmp_path, bars, accounts), engine=engine)
    thin_liq = '[assets.WETH.liquidity]\nmodel = "amm"\nreserve_usd = 1.5e6\nfee = 0.003\nrecovery_half_life_min = 60'
    thin = evaluate(_write(tmp_path, bars, accounts, thin_liq), engine=engine)
    # with an infinitely deep WETH market only the accounts the jump crossed go; buying WETH back from a
    # thin pool lifts its price (debt at the bar high x impact > 1) and reaches accounts beyond the jump
    crossed = int((hf < 3200.0 / 3000.0).sum())
    assert (deep.raw.account_liquidated[0] > 0).sum() == crossed
    assert (thin.raw.account_liquidated[0] > 0).sum() > crossed
    assert thin.raw.liquidations.sum() > deep.raw.liquidations.sum()
