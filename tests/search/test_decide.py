"""What the search recommends: repair mode when today's set is over budget, no free moves, out of sample
decides, sampling inside the invariant region, caps that size the book, the borrower-penalty guard."""

from __future__ import annotations

import functools

import numpy as np
import optuna
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from optuna.trial import TrialState
from search_helpers import scenario

from optimizer.engine import prepare, simulate
from optimizer.errors import InputError
from optimizer.scenario.config import load_scenario
from optimizer.search import (
    Evaluator,
    ObjectiveSettings,
    SearchObjective,
    SearchRequest,
    build_space,
    fresh_paths,
    make_plan,
    search_paths,
)
from optimizer.search.decide import NO_EFFECT, Candidate, assess, decide
from optimizer.search.samplers import FeasibleSampler, sampler_factory
from optimizer.snapshots import data_dir

TWO = """
[optimize]
free = ["WETH.ltv_bps", "WETH.liquidation_threshold_bps"]
budget_share_of_debt = {budget}
min_screen_paths = 4
{extra}
"""


def _plan(tmp_path, budget=0.01, extra="", **over):
    p = scenario(tmp_path, TWO.format(budget=budget, extra=extra), **over)
    return make_plan(SearchRequest(str(p), cwd=str(tmp_path)))


def test_no_free_moves_reverts_a_parameter_that_does_not_move_efficiency(tmp_path):
    plan = _plan(tmp_path, budget=0.5, extra="min_liquidation_buffer_bps = 100")
    ev = Evaluator(prepare(plan.scenario))
    oos = Evaluator(fresh_paths(ev.prepared, plan.oos_seed, ev.n_paths))
    space, s = plan.space, plan.settings
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(space.current())
    # more LTV (earns efficiency) and more LT (earns nothing: efficiency counts LTV only)
    study.enqueue_trial({"aave_v3:WETH.ltv_bps": 8100, "aave_v3:WETH.liquidation_threshold_bps": 8550})
    study.optimize(SearchObjective(space, ev, s), n_trials=2)
    assert all(t.state == TrialState.COMPLETE for t in study.trials)
    cur = Candidate(space.current(), 0, 0.0, 0.0, 0.0, assess(ev, space, space.current(), s),
                    assess(oos, space, space.current(), s, samples=False))
    d = decide(study, space, s, ev, oos, cur, k=3, tolerance=0.0)
    rec = d.recommendation
    assert rec.params == {"aave_v3:WETH.ltv_bps": 8100, "aave_v3:WETH.liquidation_threshold_bps": 8300}
    status = {c["name"]: c["status"] for c in d.changes}
    assert status == {"aave_v3:WETH.ltv_bps": "changed", "aave_v3:WETH.liquidation_threshold_bps": NO_EFFECT}
    assert rec.in_sample["holds"] and rec.out_of_sample["holds"] and rec.trial is None
    assert d.in_sample_best.trial == 1


def test_out_of_sample_decides_and_says_so_when_the_winner_fails(tmp_path):
    plan = _plan(tmp_path, budget=0.5)
    ev = Evaluator(prepare(plan.scenario))
    # "out of sample": the same book on harsher paths (a 30 % shock instead of 15 %)
    harsh = make_plan(SearchRequest(str(scenario(tmp_path, TWO.format(budget=0.5, extra=""), name="h.toml",
                                                 shock=0.3)), cwd=str(tmp_path)))
    oos = Evaluator(prepare(harsh.scenario))
    space = plan.space
    bold = {"aave_v3:WETH.ltv_bps": 8550, "aave_v3:WETH.liquidation_threshold_bps": 8800}
    safe = {"aave_v3:WETH.ltv_bps": 7550, "aave_v3:WETH.liquidation_threshold_bps": 7800}
    loose = ObjectiveSettings(budget=1.0)
    hi = {(k, w): assess(e, space, p, loose, samples=False)["risk"]["ci95"][1]
          for k, p in (("bold", bold), ("safe", safe), ("today", space.current())) for w, e in (("in", ev), ("out", oos))}
    budget = max(hi["bold", "in"], hi["safe", "out"], hi["today", "in"]) * 1.0001
    assert budget < hi["bold", "out"], hi  # the bold set holds in sample only
    s = ObjectiveSettings(budget=budget, min_screen_paths=4, mode="repair")
    study = optuna.create_study(direction="maximize")
    for p in (space.current(), bold, safe):
        study.enqueue_trial(p)
    study.optimize(SearchObjective(space, ev, s), n_trials=3)
    assert study.best_trial.number == 1  # in sample the bold set wins
    cur = Candidate(space.current(), 0, 0.0, 0.0, 0.0, assess(ev, space, space.current(), s),
                    assess(oos, space, space.current(), s, samples=False))
    d = decide(study, space, s, ev, oos, cur, k=3, tolerance=0.0)
    assert d.checks[0]["trial"] == 1 and d.checks[0]["status"] == "fails out of sample"
    assert "the in-sample winner (trial 1) breaks the budget out of sample" in d.messages
    assert d.recommendation is not None and d.recommendation.out_of_sample["holds"]
    assert d.recommendation.efficiency < d.in_sample_best.efficiency
    # with k = 1 only the winner is checked: nothing holds, and that is the answer
    d1 = decide(study, space, s, ev, oos, cur, k=1, tolerance=0.0)
    assert d1.recommendation is None and len(d1.checks) == 1


def test_a_repair_judged_on_two_path_sets_must_hold_on_each(tmp_path):
    plan = _plan(tmp_path, budget=0.5)
    two = make_plan(SearchRequest(plan.request.scenario, cwd=str(tmp_path), mode="repair",
                                  path_seeds=(plan.seed, plan.seed + 1)))
    assert two.settings.samples == (16, 16) and two.oos_seed == plan.seed + 2
    assert two.fingerprint_info(two.space)["path_sets"] == [[plan.seed, 16], [plan.seed + 1, 16]]
    prepared = prepare(two.scenario)
    both = search_paths(two, prepared)
    np.testing.assert_array_equal(both.paths.close[:16], prepared.paths.close)
    np.testing.assert_array_equal(both.paths.close[16:], fresh_paths(prepared, plan.seed + 1, 16).paths.close)
    ev = Evaluator(both)
    one = assess(Evaluator(prepared), two.space, two.space.current(), plan.settings)
    other = assess(Evaluator(fresh_paths(prepared, plan.seed + 1, 16)), two.space, two.space.current(), plan.settings)
    budget = (min(one["risk"]["ci95"][1], other["risk"]["ci95"][1]) + max(one["risk"]["ci95"][1],
                                                                          other["risk"]["ci95"][1])) / 2
    s = ObjectiveSettings(budget=budget, samples=(16, 16), mode="repair", min_screen_paths=4)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(two.space.current())
    study.optimize(SearchObjective(two.space, ev, s), n_trials=1)
    t = study.trials[0]
    worst = max(one["risk"]["ci95"][1], other["risk"]["ci95"][1])
    assert t.constraints["risk"] == pytest.approx(worst - budget) and t.constraints["risk"] > 0
    assert t.state == TrialState.PRUNED and t.user_attrs["paths"] == 32  # within budget on one set only


def test_samplers_stay_inside_the_invariant_region_of_the_bundled_7_parameter_space():
    sc = load_scenario(str(data_dir() / "scenarios" / "aave_v3_core_24h_jumps.toml"))
    space = build_space(sc)
    assert len(space.dims) == 7

    def rejected(feasible: bool) -> float:
        make = sampler_factory("tpe", space, seed=1, worker=0, multi=False, trials=40, feasible=feasible)
        study = optuna.create_study(direction="maximize")
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        bad = 0
        for n in range(40):
            study.sampler = make(n)
            t = study.ask()
            p = space.suggest(t)
            broken = space.check(p)[0]
            bad += broken > 0
            study.tell(t, -broken if broken else sum(p.values()) * 1e-6)  # no simulation needed here
        return bad / 40

    assert rejected(True) == 0.0
    assert rejected(False) > 0.3  # the box of steward limits is mostly infeasible
    assert isinstance(sampler_factory("cmaes", space, seed=1, worker=0, multi=False, trials=5)(0), FeasibleSampler)


def test_caps_size_the_book_and_become_searchable(tmp_path):
    from optimizer.engine.model import bind

    p = scenario(tmp_path, '\n[optimize]\nfree = ["WETH.supply_cap_tokens", "WETH.ltv_bps"]\n')
    with pytest.raises(InputError, match="scale_to_caps"):
        make_plan(SearchRequest(str(p), cwd=str(tmp_path)))
    p.write_text(p.read_text().replace('kind = "synthetic"', 'kind = "synthetic"\nscale_to_caps = true', 1))
    plan = make_plan(SearchRequest(str(p), cwd=str(tmp_path)))
    assert plan.settings.primary == "borrow_capacity_usd"  # a ratio does not grow with the book
    prepared = prepare(plan.scenario)
    cap = plan.space.dim("aave_v3:WETH.supply_cap_tokens")
    for value in (cap.current, cap.high):
        b = bind(prepared, {"aave_v3": {"WETH.supply_cap_tokens": value}})
        book = b.books[0].book
        col = book.collateral_assets.index("WETH")
        assert book.collateral_tokens[:, col].sum() == pytest.approx(value, rel=1e-9)  # the exposure the cap permits
        wbtc = prepared.current["aave_v3"].params["WBTC.supply_cap_tokens"]
        assert book.collateral_tokens[:, book.collateral_assets.index("WBTC")].sum() == pytest.approx(wbtc, rel=1e-9)
        debt_cap = prepared.current["aave_v3"].params["USDC.borrow_cap_tokens"]
        assert book.debt_tokens[:, 0].sum() <= debt_cap * (1 + 1e-9)


def test_borrower_penalty_is_what_borrowers_give_up_beyond_the_debt_repaid(tmp_path):
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
    from scenario_factory import write_scenario

    res = simulate(write_scenario(tmp_path, protocols=("aave", "comet"), max_calls=60), analyses=False)
    r, pp, m = res.raw, res.per_path(), res.metrics()
    assert r.liquidations.sum() > 0
    given_up = (r.collateral_seized_usd - r.debt_repaid_usd - r.returned_to_owner_usd).sum(1)
    np.testing.assert_allclose(pp["borrower_penalty_usd"], given_up, rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(pp["borrower_penalty_usd"], (r.liquidator_bonus_usd + r.protocol_fee_usd).sum(1))
    np.testing.assert_allclose(pp["borrower_penalty_share"], pp["borrower_penalty_usd"] / r.initial_debt_usd.sum(1))
    pen = m["borrower_penalty_share"]
    assert pen["mean"] > 0 and pen["stderr"] > 0 and pen["mean"] == pytest.approx(pp["borrower_penalty_share"].mean())


def test_the_penalty_guard_is_a_constraint(tmp_path):
    plan = _plan(tmp_path, budget=0.5, extra="max_borrower_penalty_share = 0.0001")
    assert plan.settings.max_penalty_share == 0.0001
    ev = Evaluator(prepare(plan.scenario))
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(plan.space.current())
    study.optimize(SearchObjective(plan.space, ev, plan.settings), n_trials=1)
    t = study.trials[0]
    assert t.constraints["risk"] <= 0 < t.constraints["penalty"]
    assert t.state == TrialState.PRUNED and t.user_attrs["outcome"] == "over the penalty limit"
    assert t.user_attrs["penalty_mean_share"] > 0.0001


def test_the_penalty_can_be_the_second_objective(tmp_path):
    plan = _plan(tmp_path, budget=0.5)
    ev = Evaluator(prepare(plan.scenario))
    s = ObjectiveSettings(objectives=("efficiency", "borrower_penalty"), budget=0.5, adaptive=False)
    study = optuna.create_study(directions=s.directions)
    study.enqueue_trial(plan.space.current())
    study.optimize(SearchObjective(plan.space, ev, s), n_trials=1)
    t = study.trials[0]
    m = ev.evaluate({}).metrics()
    assert t.values[1] == pytest.approx(m["borrower_penalty_share"]["mean"])
    assert s.metric_names == ["efficiency", "borrower_penalty of borrower_penalty_share"]


def test_the_largest_cap_within_budget_is_reported():
    from optuna.distributions import IntDistribution
    from optuna.trial import create_trial

    from optimizer.search.decide import cap_report
    from optimizer.search.space import Dim, SearchSpace

    d = Dim("aave_v3:WETH.supply_cap_tokens", "aave_v3", "WETH.supply_cap_tokens", "tokens", True, 100.0, 75.0, 125.0,
            5.0, None, 0.0, 1e9)
    space = SearchSpace((d,), {})
    dist = {d.name: IntDistribution(75, 125, step=5)}

    def trial(cap, risk):
        return create_trial(params={d.name: cap}, distributions=dist, value=1.0,
                            user_attrs={"fidelity": "full", "risk_value": risk},
                            system_attrs={"constraints:invariants": 0.0, "constraints:risk": risk - 0.01})

    trials = [trial(100, 0.004), trial(115, 0.009), trial(125, 0.02)]
    for n, t in enumerate(trials):
        t.number = n
    (row,) = cap_report(trials, space, None)
    assert row["largest_within_budget"] == 115 and row["trial"] == 1 and row["current"] == 100.0


def test_the_dashboard_command_is_pasteable_and_has_no_password():
    from optimizer.search.report import dashboard_command

    for url in ("postgresql+psycopg://cascade:S3c@retPW@db.example.org:5432/cascade",
                "postgresql+psycopg://cascade@db.example.org/cascade?password=S3cretPW&sslmode=require",
                "postgresql+psycopg://:S3cretPW@db.example.org/cascade"):
        cmd = dashboard_command("ignored", url)
        assert "S3c" not in cmd and "***" not in cmd and "PGPASSWORD" in cmd
        assert cmd.split()[1].startswith(("postgresql+psycopg://cascade@", "'postgresql+psycopg://cascade@",
                                          "postgresql+psycopg://@"))
    assert dashboard_command("runs/my study.journal", None) == "optuna-dashboard 'runs/my study.journal'"


@functools.cache
def _bundled_space():
    return build_space(load_scenario(str(data_dir() / "scenarios" / "aave_v3_core_24h_jumps.toml")))


@given(st.data())
@settings(max_examples=300, deadline=None)
def test_feasible_is_check_passing_for_any_point_of_the_box_and_beyond(data):
    """SearchSpace.feasible refuses early only what check refuses: same answer on points inside the steward
    box, on its edges and outside the contract bounds."""
    space = _bundled_space()
    p = {}
    for d in space.dims:
        span = d.high - d.low
        p[d.name] = data.draw(st.one_of(st.sampled_from([d.low, d.high, d.current]),
                                        st.floats(d.low - 0.2 * span, d.high + 0.2 * span, allow_nan=False)))
    assert space.feasible(p) == (space.check(p)[0] == 0)



def test_one_liar_record_per_trial_and_it_holds_the_parameters_the_trial_ran_with():
    """The feasible TPE draws many proposals per trial; the running trial's constant-liar record (what the
    other workers see of it) is written once, with the proposal kept, not once per draw."""
    import json

    space = _bundled_space()
    make = sampler_factory("tpe", space, seed=1, worker=0, multi=False, trials=40)
    study = optuna.create_study(direction="maximize")
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    writes: list[tuple[int, str]] = []
    orig = study._storage.set_trial_system_attr

    def spy(trial_id, key, value):
        writes.append((trial_id, key))
        return orig(trial_id, key, value)

    study._storage.set_trial_system_attr = spy
    relative = 0
    for n in range(40):
        study.sampler = make(n)
        t = study.ask()
        p = space.suggest(t)
        assert space.check(p)[0] == 0
        liar = [k for tid, k in writes if tid == t._trial_id and k.startswith("tpe:relative_params")]
        if liar:
            relative += 1
            assert liar == ["tpe:relative_params:0"]
            shared = json.loads(study._storage.get_trial(t._trial_id).system_attrs["tpe:relative_params:0"])
            assert {k: float(v) for k, v in shared.items()} == {k: float(t.params[k]) for k in shared}
        study.tell(t, sum(p.values()) * 1e-6)
    assert relative >= 25  # past the random start-up every trial is a TPE proposal (the test can fail)
