"""Leverage-targeting holders: driven round by round through the engine's linear impact they reproduce the
leverage spiral of oracles.md §5 exactly (and optimizer.market.leverage_spiral); the exact convention
restores the target leverage after every move, buys into rises and sells out when equity is gone."""

import json

import numpy as np
import pytest

from optimizer.behaviour import leverage_targeters, load_leverage_targeters
from optimizer.errors import InputError
from optimizer.market import LINEAR, depth_usd_2pct_for_kappa, leverage_spiral, price_factor
from optimizer.snapshots import data_dir

# oracles.md §5: r0 = -5 %, kappa = 1, L = 10, A = 1e9, D = 2e10 -> m = 0.45, r_total = -9.0909 %
R0, KAPPA, LEV, ASSETS, DEPTH = -0.05, 1.0, 10.0, 1e9, 2e10


def spiral_through_linear_impact(p0, rounds, kappa=KAPPA, leverage=LEV, assets=ASSETS, depth=DEPTH):
    """Synchronous rounds: the exogenous shock, then each round the holders' sale goes into the LINEAR market
    (impact valued at p0, as the engine's state in tokens), whose return adds to the shock (the oracle's
    first-order convention, as rounds.leverage_spiral). Returns the cumulative return after each round."""
    holders = leverage_targeters({"convention": "first_order",
                                  "holders": [{"exposure_usd": assets, "target_leverage": leverage}]})
    params = (depth_usd_2pct_for_kappa(kappa, depth), p0, 0.0, 0.0)
    state = holders.start(1, p0)
    sold_tokens = 0.0
    price = p0 * (1 + R0)
    out = [price / p0 - 1]
    for _ in range(rounds - 1):
        flow, state = holders.step(state, np.array([price]))
        sold_tokens += -float(flow[0])
        price = p0 * (1 + R0 + (price_factor(LINEAR, params, sold_tokens) - 1))
        out.append(price / p0 - 1)
    return np.array(out), state


@pytest.mark.parametrize("p0", [1.0, 3_000.0])
def test_holders_through_linear_impact_reproduce_the_spiral_of_oracles_md(p0):
    rounds = 40
    ret, state = spiral_through_linear_impact(p0, rounds)
    m = KAPPA * (LEV - 1) * ASSETS / DEPTH
    assert m == pytest.approx(0.45)
    partial = R0 * np.cumsum(m ** np.arange(rounds))
    np.testing.assert_allclose(ret, partial, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ret, leverage_spiral(R0, KAPPA, LEV, ASSETS, DEPTH, rounds), rtol=1e-12, atol=1e-15)
    assert ret[-1] == pytest.approx(-0.090909090909, abs=1e-12)  # r0 / (1 - m)
    # the holders' tally is what they sold: (L - 1) A |r_total - r_last round| ... in base units at p0
    assert state.tally.sold_base[0] * p0 == pytest.approx((LEV - 1) * ASSETS * abs(ret[-2]), rel=1e-12)
    assert state.tally.bought_base[0] == 0


def test_a_diverging_spiral_follows_the_series_with_growing_rounds():
    depth = ASSETS * (LEV - 1) * KAPPA / 1.2  # m = 1.2 >= 1: diverges
    ret, _ = spiral_through_linear_impact(1.0, 8, depth=depth)  # 8 rounds: -83 %, before prices reach 0
    np.testing.assert_allclose(ret, R0 * np.cumsum(1.2 ** np.arange(8)), rtol=1e-12)
    np.testing.assert_allclose(ret, leverage_spiral(R0, KAPPA, LEV, ASSETS, depth, 8), rtol=1e-12)
    assert np.all(np.diff(np.diff(ret)) < 0)  # every round falls further than the last


def test_exact_convention_restores_the_target_after_every_move():
    h = leverage_targeters({"holders": [{"exposure_usd": 1e9, "target_leverage": 10},
                                        {"exposure_usd": 5e8, "target_leverage": 3}]})
    st = h.start(2, 100.0)
    for p in ([95.0, 104.0], [90.0, 101.0], [97.0, 99.0]):
        before = st.exposure_base.copy()
        p_old = st.price_usd.copy()
        flow, st = h.step(st, np.array(p))
        pn = np.array(p)[:, None]
        np.testing.assert_allclose(st.exposure_base * pn / st.equity_usd, [[10, 3], [10, 3]], rtol=1e-12)
        # one move: (L - 1) N dp / p' base units, the oracle's (L - 1) A |r| in USD at p'
        np.testing.assert_allclose(st.exposure_base - before,
                                   (h.target_leverage - 1) * before * (pn - p_old[:, None]) / pn, rtol=1e-12)
        np.testing.assert_allclose(flow, (st.exposure_base - before).sum(1), rtol=1e-12)
    assert st.tally.bought_base[1] > 0 and st.tally.sold_base[0] > 0  # buys into rises, sells into falls


def test_holders_whose_equity_is_gone_sell_everything():
    h = leverage_targeters({"holders": [{"exposure_usd": 1e6, "target_leverage": 5}]})
    st = h.start(1, 100.0)
    flow, st = h.step(st, np.array([75.0]))  # -25 % at 5x: equity -25 % of assets < 0
    assert flow[0] == pytest.approx(-1e4) and st.exposure_base[0, 0] == 0 and st.equity_usd[0, 0] == 0
    flow, st = h.step(st, np.array([120.0]))
    assert flow[0] == 0


def test_example_file_is_the_oracle_example():
    h = load_leverage_targeters(data_dir() / "behaviour" / "leverage_targeting_example.json")
    assert h.convention == "exact" and h.exposure_usd.tolist() == [1e9] and h.target_leverage.tolist() == [10]
    assert "oracles.md" in h.sources["holders[0].exposure_usd"]


@pytest.mark.parametrize("spec,field,rule", [
    ({"holders": []}, "holders", "must be a non-empty list"),
    ({"holders": [{"exposure_usd": 1e6, "target_leverage": 0.5}]}, "holders[0].target_leverage",
     "must be a number in [1, 1000]"),
    ({"holders": [{"exposure_usd": -1, "target_leverage": 2}]}, "holders[0].exposure_usd", "must be a number in"),
    ({"holders": [{"exposure_usd": 1, "target_leverage": 2}], "convention": "second_order"}, "convention",
     "must be one of exact, first_order"),
])
def test_bad_holder_files_are_one_line_errors(tmp_path, spec, field, rule):
    p = tmp_path / "h.json"
    p.write_text(json.dumps(spec))
    with pytest.raises(InputError) as e:
        load_leverage_targeters(p)
    assert str(e.value).startswith(f"{p}: {field}: {rule}")
