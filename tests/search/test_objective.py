"""The objective: invariants before simulation, the chance constraint at the CI's upper end, path stages."""

from __future__ import annotations

import optuna
import pytest
from optuna.trial import TrialState
from search_helpers import scenario

from optimizer.engine import prepare
from optimizer.search import (
    Evaluator,
    ObjectiveSettings,
    SearchObjective,
    SearchRequest,
    make_plan,
    run_study,
)
from optimizer.search.objective import risk_of, stage_paths

WIDE = """
[optimize]
free = ["WETH.ltv_bps", "WETH.liquidation_threshold_bps"]
steward_limits = false
budget_share_of_debt = 0.01
min_liquidation_buffer_bps = 0
min_screen_paths = 4
[optimize.step]
ltv_bps = 50
liquidation_threshold_bps = 50
[optimize.bounds]
ltv_bps = [7600, 8800]
liquidation_threshold_bps = [7600, 8800]
"""


def _watch(monkeypatch) -> list[dict]:
    calls: list[dict] = []
    original = Evaluator.simulate_range

    def watched(self, bound, lo, hi):
        calls.append(dict(bound.params["aave_v3"]))
        return original(self, bound, lo, hi)

    monkeypatch.setattr(Evaluator, "simulate_range", watched)
    return calls


def test_infeasible_candidates_are_never_simulated(tmp_path, monkeypatch):
    """The safety net: with sampling inside the invariant region off, broken candidates are rejected unsimulated."""
    calls = _watch(monkeypatch)
    plan = make_plan(SearchRequest(str(scenario(tmp_path, WIDE.replace("[optimize]\n", "[optimize]\nfeasible_sampling = false\n"))), trials=14,
                                   cwd=str(tmp_path)))
    run = run_study(plan, None)
    trials = run.study.get_trials()
    infeasible = [t for t in trials if "infeasible" in t.user_attrs]
    assert infeasible, "the LTV <= LT invariant cuts this box: some candidates must be rejected"
    for t in infeasible:
        p = t.params
        assert p["aave_v3:WETH.ltv_bps"] > p["aave_v3:WETH.liquidation_threshold_bps"]
        assert t.state == TrialState.PRUNED and t.user_attrs["paths"] == 0 and t.constraints["invariants"] >= 1
        assert "ltv <= liquidation threshold" in t.user_attrs["infeasible"]
    assert calls and all(c["WETH.ltv_bps"] <= c["WETH.liquidation_threshold_bps"] for c in calls)
    assert run.evaluator_stats["simulation_calls"] == len(calls)
    simulated = [t for t in trials if t.user_attrs.get("paths", 0) > 0]
    assert sum(t.user_attrs["paths"] for t in simulated) == run.evaluator_stats["paths_simulated"]


def test_the_constraint_is_the_upper_end_of_the_ci(tmp_path):
    # 200 paths: VaR 99 is the 198th order statistic, the upper end of its CI the maximum
    plan = make_plan(SearchRequest(str(scenario(tmp_path, WIDE, paths=200)), cwd=str(tmp_path)))
    ev = Evaluator(prepare(plan.scenario))
    cand = {"aave_v3:WETH.ltv_bps": 8400, "aave_v3:WETH.liquidation_threshold_bps": 8500}
    res = ev.evaluate(plan.space.split(cand))
    r = risk_of(res.metrics(), "var_99", ev.n_paths)
    assert r.value < r.high
    budget = (r.value + r.high) / 2  # the point estimate is within budget, the CI's upper end is not
    s = ObjectiveSettings(budget=budget, adaptive=False)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(cand)
    study.optimize(SearchObjective(plan.space, ev, s), n_trials=1)
    t = study.trials[0]
    # over budget after every path: PRUNED (only sets within budget are COMPLETE), its value the efficiency
    assert t.state == TrialState.PRUNED and t.user_attrs["fidelity"] == "full"
    assert t.user_attrs["outcome"] == "over budget" and t.value == pytest.approx(t.user_attrs["efficiency"], rel=1e-6)
    assert t.system_attrs["constraints"] == [0.0, pytest.approx(r.high - budget)]  # what optuna-dashboard reads
    assert t.user_attrs["risk_value"] == pytest.approx(r.value) and t.user_attrs["risk_value"] <= budget
    assert t.constraints["risk"] == pytest.approx(r.high - budget) and t.constraints["risk"] > 0
    with pytest.raises(ValueError):  # optuna: no feasible trial
        _ = study.best_trial
    study2 = optuna.create_study(direction="maximize")
    study2.enqueue_trial(cand)
    study2.optimize(SearchObjective(plan.space, ev, ObjectiveSettings(budget=r.high, adaptive=False)), n_trials=1)
    assert study2.best_trial.constraints["risk"] == pytest.approx(0.0)
    assert study2.best_trial.state == TrialState.COMPLETE


def test_clearly_infeasible_candidates_stop_at_screening(tmp_path):
    plan = make_plan(SearchRequest(str(scenario(tmp_path, WIDE)), cwd=str(tmp_path)))
    ev = Evaluator(prepare(plan.scenario))
    s = ObjectiveSettings(budget=1e-12, min_screen_paths=4, screen_fraction=0.125, eta=4)
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial({"aave_v3:WETH.ltv_bps": 8700, "aave_v3:WETH.liquidation_threshold_bps": 8800})
    study.optimize(SearchObjective(plan.space, ev, s), n_trials=1)
    t = study.trials[0]
    assert t.state == TrialState.PRUNED and t.user_attrs["outcome"] == "over budget at screening"
    assert t.user_attrs["fidelity"] == "screen" and t.user_attrs["paths"] == 4 < ev.n_paths
    assert t.user_attrs["risk_ci95_low"] > s.budget and t.constraints["risk"] > 0
    assert ev.paths_simulated == 4


def test_stage_paths():
    s = ObjectiveSettings(screen_fraction=0.125, min_screen_paths=32, eta=4)
    assert stage_paths(1000, s) == [125, 500, 1000]
    assert stage_paths(100, s) == [32, 100]
    assert stage_paths(16, s) == [16]
    assert stage_paths(1000, ObjectiveSettings(adaptive=False)) == [1000]


def test_less_efficient_candidates_than_the_best_feasible_are_not_simulated(tmp_path):
    plan = make_plan(SearchRequest(str(scenario(tmp_path, WIDE)), cwd=str(tmp_path)))
    ev = Evaluator(prepare(plan.scenario))
    obj = SearchObjective(plan.space, ev, ObjectiveSettings(budget=0.5, min_screen_paths=4))
    study = optuna.create_study(direction="maximize")
    # today: WETH LTV 8050, LT 8300
    study.enqueue_trial({"aave_v3:WETH.ltv_bps": 8400, "aave_v3:WETH.liquidation_threshold_bps": 8500})
    study.enqueue_trial({"aave_v3:WETH.ltv_bps": 8000, "aave_v3:WETH.liquidation_threshold_bps": 8500})
    study.enqueue_trial({"aave_v3:WETH.ltv_bps": 8400, "aave_v3:WETH.liquidation_threshold_bps": 8800})
    study.enqueue_trial({"aave_v3:WETH.ltv_bps": 8400, "aave_v3:WETH.liquidation_threshold_bps": 8450})
    study.optimize(obj, n_trials=4)
    a, b, c, d = study.trials
    assert a.state == TrialState.COMPLETE and a.user_attrs["fidelity"] == "full"
    assert b.state == TrialState.PRUNED and b.user_attrs["stopped"] == "dominated" and b.user_attrs["paths"] == 0
    assert b.intermediate_values == {0: pytest.approx(b.value)}
    # as efficient as the best but a larger move (LT +500 for nothing): no free moves, not simulated
    assert c.user_attrs["efficiency"] == a.user_attrs["efficiency"]
    assert c.state == TrialState.PRUNED and c.user_attrs["stopped"] == "dominated"
    # as efficient with a smaller move: simulated, and the best trial (the tie-break is in the value)
    assert d.state == TrialState.COMPLETE and d.user_attrs["fidelity"] == "full"
    assert study.best_trial.number == d.number and d.value > a.value
