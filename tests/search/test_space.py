"""The search space: steward limits around the current value, contract bounds, steps, user bounds."""

from __future__ import annotations

import itertools

import pytest
from search_helpers import scenario

from optimizer.errors import InputError
from optimizer.scenario.config import load_scenario
from optimizer.search import build_space


def _space(tmp_path, optimize: str, **over):
    return build_space(load_scenario(scenario(tmp_path, "\n[optimize]\n" + optimize, **over)))


def test_default_steward_limits_and_steps(tmp_path):
    sp = _space(tmp_path, 'free = ["WETH.ltv_bps", "WETH.liquidation_bonus_bps", "WETH.supply_cap_tokens", '
                          '"close_factor"]')
    ltv = sp.dim("aave_v3:WETH.ltv_bps")
    assert (ltv.current, ltv.low, ltv.high, ltv.step) == (8050, 7550, 8550, 25)
    bonus = sp.dim("aave_v3:WETH.liquidation_bonus_bps")
    assert (bonus.low, bonus.high) == (10300, 10700)
    cap = sp.dim("aave_v3:WETH.supply_cap_tokens")  # relative: +-25 % of the current cap, whole tokens
    assert cap.integer and (cap.low, cap.high) == (0.75 * cap.current, 1.25 * cap.current)
    cf = sp.dim("aave_v3:close_factor")  # fraction: +-0.05 absolute, 25 bps steps
    assert (cf.low, cf.high, cf.step) == (0.45, 0.55, 0.0025)
    assert cf.group == "aave_v3:(protocol)" and ltv.group == "aave_v3:WETH"


def test_configured_limits_steps_and_bounds_narrow_the_range(tmp_path):
    sp = _space(tmp_path, """free = ["WETH.ltv_bps", "WETH.supply_cap_tokens", "WBTC.liquidation_threshold_bps"]
[optimize.steward_limits]
ltv_bps = 100
"WETH.supply_cap_tokens" = "10%"
[optimize.step]
ltv_bps = 50
[optimize.bounds]
"aave_v3:WETH.ltv_bps" = [8000, 8500]
""")
    ltv = sp.dim("aave_v3:WETH.ltv_bps")
    assert (ltv.low, ltv.high, ltv.step) == (8000, 8150, 50)  # [8050 -+ 100] within [8000, 8500], grid via 8050
    assert ltv.values(5) == [8000, 8050, 8100, 8150]
    cap = sp.dim("aave_v3:WETH.supply_cap_tokens")
    assert (cap.low, cap.high) == pytest.approx((0.9 * cap.current, 1.1 * cap.current))
    lt = sp.dim("aave_v3:WBTC.liquidation_threshold_bps")  # untouched by WETH keys: default +-500
    assert (lt.low, lt.high) == (lt.current - 500, lt.current + 500)


def test_limits_off_leaves_the_contract_bounds(tmp_path):
    sp = _space(tmp_path, 'free = ["WETH.ltv_bps"]\nsteward_limits = false')
    d = sp.dim("aave_v3:WETH.ltv_bps")
    assert (d.low, d.high, d.limit) == (0, 10000, None)


def test_comet_factors_are_searched_within_0_1_not_the_storage_range(tmp_path):
    sp = _space(tmp_path, 'free = ["WETH.liquidate_collateral_factor", "WETH.borrow_collateral_factor"]\n'
                          "steward_limits = false", protocols=("comet",))
    for d in sp.dims:
        assert d.spec_high > 6.5 and d.low == 0.0 and d.high == 1.0


def test_every_grid_point_is_inside_limits_and_contract_bounds(tmp_path):
    sp = _space(tmp_path, 'free = ["WETH.ltv_bps", "WETH.liquidation_threshold_bps", "WETH.liquidation_bonus_bps"]\n'
                          '[optimize.step]\nltv_bps = 100\nliquidation_threshold_bps = 100\nliquidation_bonus_bps = 100')
    grid = sp.grid(5)
    for name, vals in grid.items():
        d = sp.dim(name)
        assert d.current in vals  # "no change" is always a candidate
        for v in vals:
            assert d.spec_low <= v <= d.spec_high
            assert abs(v - d.current) <= d.limit.width(d.current) + 1e-9
    assert sp.grid_size(5) == 11 * 11 * 5
    feasible = [c for c in itertools.product(*grid.values()) if sp.check(dict(zip(grid, c, strict=True)))[0] == 0]
    assert 0 < len(feasible) < sp.grid_size(5)  # LTV <= LT and LT x bonus <= 100 % cut the box


def test_default_space_is_the_book_collaterals(tmp_path):
    sp = _space(tmp_path, "trials = 3")
    assert {d.group for d in sp.dims} == {"aave_v3:WETH", "aave_v3:WBTC"}
    assert len(sp.dims) == 6


@pytest.mark.parametrize("optimize, fragments", [
    ('free = ["WETH.ltv"]', ["optimize.free[0]", "unknown parameter 'WETH.ltv'"]),
    ('free = ["maker:ETH-A.mat"]', ["optimize.free[0]", "no protocol 'maker'"]),
    ('free = ["WETH.ltv_bps"]\n[optimize.steward_limits]\nltv_bps = -5', ["optimize.steward_limits.ltv_bps", ">= 0"]),
    ('free = ["WETH.ltv_bps"]\n[optimize.steward_limits]\nltv_bps = "-5%"', ["steward_limits.ltv_bps", ">= 0"]),
    ('free = ["WETH.ltv_bps"]\n[optimize.steward_limits]\nltv_bsp = 5', ["steward_limits.ltv_bsp", "names no parameter"]),
    ('free = ["WETH.ltv_bps"]\n[optimize.bounds]\nltv_bps = [9000, 8000]', ["optimize.bounds.ltv_bps", "low <= high"]),
    ('free = ["WETH.ltv_bps"]\n[optimize.bounds]\nltv_bps = [9000, 9500]', ["empty search range"]),
    ('free = ["WETH.ltv_bps"]\nsampler = "random"', ["optimize.sampler", "random"]),
    ('free = ["WETH.ltv_bps"]\nobjectives = ["efficiency", "var_98"]', ["optimize.objectives", "var_98"]),
    ('free = ["WETH.ltv_bps"]\nbudget = 0.1', ["optimize.budget", "unknown key"]),
])
def test_bad_optimize_tables_name_the_key(tmp_path, optimize, fragments):
    with pytest.raises(InputError) as e:
        _space(tmp_path, optimize)
    for f in fragments:
        assert f in str(e.value), str(e.value)


def test_scenarios_without_optimize_table_still_load(tmp_path):
    sc = load_scenario(scenario(tmp_path, ""))
    assert not sc.optimize.present and sc.optimize.budget_share_of_debt == 0.001


def test_liquidation_buffer_floor_refuses_lt_collapsing_onto_ltv(tmp_path):
    """Efficiency rewards LTV only; without a floor the search pulls LT down onto LTV (no buffer)."""
    from optimizer.scenario.config import load_scenario
    from optimizer.search import build_space

    sc = load_scenario(scenario(tmp_path))  # free: WETH ltv / lt / bonus; default floor 250 bps
    space = build_space(sc)
    cur = space.current()
    ok = {**cur, "aave_v3:WETH.ltv_bps": 8000, "aave_v3:WETH.liquidation_threshold_bps": 8250}
    assert space.check(ok) == (0, None)
    bad = {**cur, "aave_v3:WETH.ltv_bps": 8100, "aave_v3:WETH.liquidation_threshold_bps": 8200}
    broken, msg = space.check(bad)
    assert broken == 1 and "WETH.liquidation_threshold_bps - WETH.ltv_bps = 100 bps" in msg
    assert "optimize.min_liquidation_buffer_bps = 250" in msg


def test_trial_params_are_the_values_trials_ran_with(tmp_path):
    """optuna stores a stepped float's raw suggestion (low + k * step in floats, e.g. 0.5 - 5.6e-17); the
    objective receives it rounded (Dim.suggest), and reports must show that value, so today's value on the grid
    reads as exactly today's value (no change of -5.55e-17 reported as a move)."""
    import optuna

    sp = _space(tmp_path, 'free = ["close_factor", "WETH.ltv_bps"]')
    cf = sp.dim("aave_v3:close_factor")
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    raw_seen, snapped = [], []
    for _ in range(300):
        t = study.ask()
        ran = sp.suggest(t)
        study.tell(t, 0.0)
        frozen = study.trials[-1]
        raw_seen.append(frozen.params[cf.name])
        snapped.append(sp.trial_params(frozen.params))
        assert snapped[-1] == ran  # the values reported are the values simulated
    assert any(r != round(r, 10) for r in raw_seen)  # the raw values do carry float noise (the test can fail)
    on_current = [s for s in snapped if abs(s[cf.name] - cf.current) < 1e-9]
    assert on_current and all(s[cf.name] == cf.current for s in on_current)
    assert all(isinstance(s["aave_v3:WETH.ltv_bps"], int) for s in snapped)


def test_implicit_default_skips_perp_venues_and_perp_only_names_an_example():
    """With no [optimize] table, a lending + perp scenario searches the lending book's collaterals over the
    adapter's default fields (perp venues have no default: what to tune and under which risk is the
    steward's call); a perp-only scenario says what to list, with a parameter that exists."""
    from optimizer.snapshots import data_dir

    mixed = build_space(load_scenario(data_dir() / "scenarios" / "perp_mixed_aave_hyperliquid_eth_12h.toml"))
    assert [d.name for d in mixed.dims] == ["aave_v3:WETH.ltv_bps", "aave_v3:WETH.liquidation_threshold_bps",
                                            "aave_v3:WETH.liquidation_bonus_bps"]
    with pytest.raises(InputError) as e:
        build_space(load_scenario(data_dir() / "scenarios" / "perp_hyperliquid_btc_2025-10-10.toml"))
    msg = str(e.value)
    assert "optimize.free" in msg and '"hyperliquid:BTC.tier0.max_leverage"' in msg and "p_adl" in msg
