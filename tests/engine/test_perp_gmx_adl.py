"""GMX v2 auto-deleveraging by the PnL-to-pool factor (``maxPnlFactorForAdl`` 85 % / ``minPnlFactorAfterAdl``
77 %, ``AdlUtils``): the adapter's orders and the venue applying them, against a hand-worked example."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.engine import evaluate, prepare
from optimizer.scenario.config import load_scenario
from optimizer.snapshots import load_adapter
from protocols import ISOLATED, PerpBook

# Hand-worked: pool V = $1M; two shorts entered at $60,000, A 100 BTC and B 50 BTC, at 2x. BTC falls 10 % to
# $54,000: A gains $600k, B $300k, so the shorts' pending PnL P = $900k and P / V = 90 % > 85 %: ADL. The orders
# must bring the factor to 77 %: realising x pays x from the pool, (P - x) / (V - x) = 0.77, so
# x = (900,000 - 0.77 x 1,000,000) / (1 - 0.77) = 130,000 / 0.23 = $565,217.39. The most profitable (A) goes
# first: it closes x / 600,000 = 94.203 % of its 100 BTC; B is untouched. After: P = $334,782.61,
# V = $434,782.61, factor 77 %.
X_USD = 130_000 / 0.23
FRACTION_A = X_USD / 600_000


def _book(markets):
    return PerpBook(markets, np.array([0, 0]), np.array([-1, -1]), np.array([100.0, 50.0]),
                    np.array([60_000.0, 60_000.0]), np.array([3.0e6, 1.5e6]), np.full(2, ISOLATED),
                    np.array([0, 1]), np.zeros(2))


def test_adl_orders_realise_exactly_what_brings_the_factor_to_its_floor():
    gmx = load_adapter("gmx_v2")
    i = gmx.markets.index("BTC-USD")
    book = _book(gmx.markets)
    book = book.with_state(market=np.array([i, i]))
    pool = np.zeros(len(gmx.markets))
    pool[i] = 1.0e6
    mark = np.full(2, 54_000.0)
    lf, sf = gmx.pnl_to_pool_factor(book, mark, pool)
    assert sf[i] == pytest.approx(0.9) and lf[i] == 0
    o = gmx.adl_orders(book, mark, pool)
    assert o["pnl_realized_short_usd"][i] == pytest.approx(X_USD, rel=1e-12)
    np.testing.assert_allclose(o["closed_size_base"], [100 * FRACTION_A, 0.0], rtol=1e-12)
    np.testing.assert_allclose(o["realized_profit_usd"], [X_USD, 0.0], rtol=1e-12)
    after_pool = pool - o["pnl_realized_short_usd"]
    assert gmx.pnl_to_pool_factor(o["book"], mark, after_pool)[1][i] == pytest.approx(0.77, rel=1e-12)
    np.testing.assert_array_equal(o["book"].margin_usd, book.margin_usd)  # a decrease keeps the collateral
    # at 85 % exactly nothing happens (ADL needs the factor ABOVE the maximum)
    o = gmx.adl_orders(book, np.full(2, 60_000 * (1 - 0.85e6 / 9e6)), pool)
    assert o["closed_size_base"].sum() == 0


def test_the_venue_deleverages_gmx_profits_in_the_step_the_factor_crosses(tmp_path):
    (tmp_path / "book.csv").write_text(
        "account,venue,market,side,size,entry_price,margin,margin_mode\n"
        "a,gmx_v2,BTC-USD,short,100,60000,3000000,isolated\n"
        "b,gmx_v2,BTC-USD,short,50,60000,1500000,isolated\n")
    (tmp_path / "s.toml").write_text("""
[scenario]
name = "gmx-adl"
description = "t"
horizon_h = 0.5
step_min = 1
paths = 1
seed = 1

[assets.BTC]
price_usd = 60000
model = "gbm"
sigma_annual = 0.0
shocks = [{ at_h = 0.1, drop = 0.1 }]

[[protocols]]
adapter = "gmx_v2"
params = { "BTC-USD.pool_usd" = 1.0e6 }
[protocols.book]
kind = "perp_csv"
path = "book.csv"
""")
    res = evaluate(prepare(load_scenario(tmp_path / "s.toml")), engine="reference")
    r = res.raw
    close = res.bound.prepared.paths.close[0, :, 0]
    assert close[-1] == pytest.approx(54_000.0)  # the -10 % shock, then flat
    assert float(r.adl_pnl_realised_usd.sum()) == pytest.approx(X_USD, rel=1e-9)  # once: after it, 77 % < 85 %
    assert float(r.adl_steps.sum()) == 1.0
    assert float(r.adl_closed_notional_usd.sum()) == pytest.approx(100 * FRACTION_A * 54_000, rel=1e-9)
    assert res.metrics()["p_adl"]["mean"] == 1.0
    assert float(r.adl_volume_usd.sum()) == 0  # not a deficit: no loss beyond margin
