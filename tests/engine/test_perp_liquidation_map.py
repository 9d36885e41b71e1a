"""The perp liquidation map by price level for both sides: longs at falls, shorts at rises (static, from the
closed-form liquidation prices), with the cascade of each side, and where the clusters sit."""

from __future__ import annotations

import numpy as np

from optimizer.engine import bind, prepare
from optimizer.engine.analysis import MAP_LEVELS, liquidation_map, perp_liquidation_clusters
from optimizer.scenario.config import load_scenario

SCENARIO = """
[scenario]
name = "perp-map"
description = "t"
horizon_h = 0.5
step_min = 1
paths = 1
seed = 5

[assets.BTC]
price_usd = 60000
model = "gbm"
sigma_annual = 0.6
[assets.BTC.liquidity]
model = "sqrt"
daily_volume_usd = 2.0e10
daily_sigma = 0.025
y = 1.0
recovery_half_life_min = 15

[[protocols]]
adapter = "hyperliquid"
[protocols.book]
kind = "perp_synthetic"
positions = 300
open_interest_usd = { BTC = 3.0e8 }
long_share = 0.6
size_usd = { dist = "lognormal", median = 20000, sigma = 1.0, max = 1.0e6 }
leverage = { dist = "lognormal", median = 8, sigma = 0.6, min = 1, max = 30 }
"""


def test_each_side_is_mapped_where_its_closed_form_liquidation_prices_sit(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(SCENARIO)
    bound = bind(prepare(load_scenario(p)))
    m = liquidation_map(bound, engine="reference")
    b, ad = bound.books[0].book, bound.adapters[0]
    p0 = bound.prepared.paths.close[0, 0, 0]
    mark = np.full(b.n_positions, p0)
    lp = ad.liquidation_price_usd(b, mark)
    moves = 1.0 - MAP_LEVELS
    for side, key in ((1, "perp_long_static_new_usd"), (-1, "perp_short_static_new_usd")):
        rows = (b.side == side) & (b.size_base > 0)
        dist = np.where(side > 0, 1 - lp / p0, lp / p0 - 1)[rows]
        k = np.ceil(np.round(np.maximum(dist, 0) / 0.02, 9)).astype(int)  # the first 2 % level that reaches it
        ok = k < moves.size
        expect = np.zeros(moves.size)
        np.add.at(expect, k[ok], b.size_base[rows][ok] * p0 * (1 - side * moves[k[ok]]))
        np.testing.assert_allclose(m[key], expect, rtol=1e-9, atol=1e-6)
        assert sum(m[key]) > 0
    assert m["rise_price_ratio"][1] == 1.02 and m["price_ratio"][1] == 0.98
    # with the cascade each side loses at least what the static map reaches at small moves, and nothing at 0
    assert m["perp_long_cascade_liquidated_usd"][0] == 0 and m["perp_short_cascade_liquidated_usd"][0] == 0
    assert m["perp_short_cascade_liquidated_usd"][10] > 0 and m["perp_long_cascade_liquidated_usd"][10] > 0
    c = perp_liquidation_clusters(m)
    assert c["long_cluster_fall"] == round(float(moves[np.argmax(m["perp_long_static_new_usd"])]), 6)
    assert c["short_cluster_rise"] == round(float(moves[np.argmax(m["perp_short_static_new_usd"])]), 6)
    assert c["short_cluster_usd"] == max(m["perp_short_static_new_usd"])
