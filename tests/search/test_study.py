"""Studies: reproducible, resumable, exactly N trials over workers, samplers, per-asset, dead workers."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import sys
import time

import optuna
import pytest
from _cli_helpers import cascade, cascade_in_process, one_line_error
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from search_helpers import scenario

from optimizer.search import SearchRequest, StorageSpec, make_plan, optimize, recover_dead_trials, run_study
from optimizer.search.objective import dominates, is_full


def _load(path, name="engine-test"):
    return optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(path))))


def _summary(study):
    return [(t.number, t.state.name, t.params, t.values) for t in study.get_trials()]


def test_same_seed_same_trials(tmp_path):
    p = scenario(tmp_path)
    runs = []
    for tag in ("a", "b"):
        plan = make_plan(SearchRequest(str(p), trials=8, storage=str(tmp_path / f"{tag}.journal"), cwd=str(tmp_path)))
        study = run_study(plan, None).study
        runs.append(_summary(study))
        # drawn inside the invariant region (LTV <= LT - 250 bps buffer, LT x bonus <= 100 %): nothing rejected
        assert not [t for t in study.get_trials() if "infeasible" in t.user_attrs]
        assert all(plan.space.check(t.params)[0] == 0 for t in study.get_trials())
    assert runs[0] == runs[1]
    other = make_plan(SearchRequest(str(p), trials=8, seed=99, storage=str(tmp_path / "c.journal"), cwd=str(tmp_path)))
    assert _summary(run_study(other, None).study) != runs[0]


def test_resume_continues_to_the_total_and_keeps_finished_trials(tmp_path):
    p = scenario(tmp_path)
    first = cascade("optimize", str(p), "--trials", "3", "--json", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    journal = tmp_path / "runs" / "engine-test.journal"
    before = _summary(_load(journal))
    assert len(before) == 3
    second = cascade("optimize", str(p), "--trials", "5", "--json", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    out = json.loads(second.stdout)
    after = _summary(_load(journal))
    assert len(after) == 5 and after[:3] == before
    assert out["study"]["trials"] == 5 and out["study"]["name"] == "engine-test"
    assert out["study"]["storage"] == os.path.join("runs", "engine-test.journal")
    for key in ("best", "current", "pareto", "study", "out_of_sample", "baseline"):
        assert key in out
    assert set(out["current"]) >= {"params", "metrics"}
    if out["best"] is not None:
        assert set(out["best"]) >= {"params", "metrics", "risk", "changes"}
        assert out["best"]["risk"]["ci95"][1] <= out["best"]["risk"]["budget"]
        assert out["out_of_sample"]["seed"] == 12 and "metrics" in out["out_of_sample"]["best"]
    assert out["baseline"]["collaterals"][0]["asset"] in ("WETH", "WBTC")
    # a different search on the same study name is refused, not mixed in
    q = scenario(tmp_path, name="q.toml", optimize='\n[optimize]\nfree = ["WETH.ltv_bps"]\n')
    one_line_error(cascade_in_process("optimize", str(q), "--trials", "6", cwd=tmp_path), "--study",
                   "different search")


def test_two_workers_finish_exactly_n_distinct_trials(tmp_path):
    p = scenario(tmp_path)
    res = cascade("optimize", str(p), "--trials", "7", "--workers", "2", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    study = _load(tmp_path / "runs" / "engine-test.journal")
    trials = study.get_trials()
    assert sorted(t.number for t in trials) == list(range(7))
    assert all(t.state in (TrialState.COMPLETE, TrialState.PRUNED) for t in trials)
    assert json.loads(res.stdout)["study"]["trials"] == 7
    # what is reproducible with several workers: each trial (same parameters -> same metrics, same paths)
    from optimizer.engine import prepare
    from optimizer.search.objective import Evaluator

    plan = make_plan(SearchRequest(str(p), cwd=str(tmp_path)))
    ev = Evaluator(prepare(plan.scenario))
    full = [t for t in trials if is_full(t)]
    assert full
    for t in full[:2]:
        again = ev.evaluate(plan.space.split(t.params)).metrics()
        assert again["bad_debt_usd"]["mean"] == t.user_attrs["bad_debt_mean_usd"]
        assert again["bad_debt_share"]["var_99"] == t.user_attrs["bad_debt_var_99_share"]


def test_pareto_front_is_non_dominated(tmp_path):
    p = scenario(tmp_path, optimize="""
[optimize]
free = ["WETH.ltv_bps", "WETH.liquidation_threshold_bps"]
objectives = ["efficiency", "es_99"]
population_size = 4
min_screen_paths = 4
""")
    out = optimize(SearchRequest(str(p), trials=12, cwd=str(tmp_path)))
    assert out["sampler"] == "nsga2" and out["pareto"]
    study = _load(tmp_path / "runs" / "engine-test.journal")
    full = [(t.values[0], t.values[1]) for t in study.get_trials() if is_full(t)]
    front = [(q["values"]["efficiency"], q["values"]["es_99"]) for q in out["pareto"]]
    for f in front:
        assert not any(dominates(g, f) for g in full)
    assert all(a[0] < b[0] and a[1] < b[1] for a, b in itertools.pairwise(front))


def test_grid_sampler_visits_the_whole_steward_limited_grid(tmp_path):
    p = scenario(tmp_path, optimize="""
[optimize]
free = ["WETH.ltv_bps", "WETH.liquidation_bonus_bps"]
sampler = "grid"
min_screen_paths = 4
[optimize.steward_limits]
ltv_bps = 50
liquidation_bonus_bps = 50
""")
    plan = make_plan(SearchRequest(str(p), cwd=str(tmp_path)))
    # the 5 x 5 grid around LTV 8050 / bonus 10500; LTV above 8050 leaves less than the 250 bps buffer
    # below today's LT 8300: only the feasible 3 x 5 points are trials
    assert plan.trials == 15
    study = run_study(plan, None).study
    seen = {(t.params["aave_v3:WETH.ltv_bps"], t.params["aave_v3:WETH.liquidation_bonus_bps"])
            for t in study.get_trials()}
    assert seen == set(itertools.product(range(8000, 8051, 25), range(10450, 10551, 25)))
    assert len(study.get_trials()) == 15 and not [t for t in study.get_trials() if "infeasible" in t.user_attrs]


def test_cmaes_runs_and_sees_constraints(tmp_path):
    pytest.importorskip("cmaes")
    p = scenario(tmp_path)
    out = optimize(SearchRequest(str(p), trials=8, sampler="cmaes", cwd=str(tmp_path)))
    assert out["sampler"] == "cmaes" and out["study"]["trials"] == 8


def test_per_asset_then_joint_check(tmp_path):
    p = scenario(tmp_path, optimize="""
[optimize]
free = ["WETH.ltv_bps", "WBTC.ltv_bps"]
budget_share_of_debt = 0.05
min_screen_paths = 4
""")
    out = optimize(SearchRequest(str(p), trials=4, per_asset=True, cwd=str(tmp_path)))
    groups = [g["group"] for g in out["per_asset"]]
    assert groups == ["aave_v3:WETH", "aave_v3:WBTC"]
    assert {g["study"] for g in out["per_asset"]} == {"engine-test.aave_v3:WETH", "engine-test.aave_v3:WBTC"}
    for it in out["joint"]["interactions"]:
        assert it["interaction"] == it["joint_change"] - it["sum_of_changes"]
    joint = out["joint"]["params"]
    for g in out["per_asset"]:
        if g["best"]:
            for k, v in g["best"]["params"].items():
                assert joint[k] == v


def test_dead_worker_trials_are_failed_and_requeued(tmp_path):
    spec = StorageSpec.resolve(None, "dead", tmp_path)
    storage = spec.open()
    study = optuna.create_study(study_name="dead", storage=storage, direction="maximize")
    t = study.ask()
    t.suggest_int("x", 0, 10)
    t.set_user_attr("worker", f"{os.uname().nodename}:999999999:1#{t.number}")
    alive = study.ask()
    alive.suggest_int("x", 0, 10)
    from optimizer.search.objective import worker_id

    alive.set_user_attr("worker", worker_id(alive.number))
    copied = study.ask()  # a heartbeat retry copies the dead trial's attrs: not a claim on the copy
    copied.suggest_int("x", 0, 10)
    copied.set_user_attr("worker", f"{os.uname().nodename}:999999999:1#{t.number}")
    assert recover_dead_trials(study, storage, ("x",)) == 1
    states = {tr.number: tr.state for tr in study.get_trials()}
    assert states[t.number] == TrialState.FAIL and states[alive.number] == TrialState.RUNNING
    assert states[copied.number] == TrialState.RUNNING
    waiting = study.get_trials(states=(TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].user_attrs["retry_of"] == t.number


def test_ctrl_c_keeps_finished_trials_and_says_how_to_resume(tmp_path):
    p = scenario(tmp_path, paths=64)
    proc = subprocess.Popen([sys.executable, "-m", "optimizer", "optimize", str(p), "--trials", "10000"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    journal = tmp_path / "runs" / "engine-test.journal"
    deadline = time.time() + 120
    while time.time() < deadline:
        time.sleep(0.2)
        if journal.exists() and len(_load(journal).get_trials(states=(TrialState.COMPLETE,))) >= 2:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "saved" in err and "resume" in err and "engine-test" in err and "Traceback" not in err
    assert len(_load(journal).get_trials(states=(TrialState.COMPLETE,))) >= 2


def test_bad_command_lines_are_one_line_errors(tmp_path):
    p = scenario(tmp_path)
    one_line_error(cascade_in_process("optimize", str(p), "--sampler", "random", cwd=tmp_path), "--sampler", "random")
    one_line_error(cascade_in_process("optimize", str(p), "--objectives", "efficiency,var_98", cwd=tmp_path),
                   "--objectives", "var_98")
    bad = scenario(tmp_path, name="bad.toml", optimize='\n[optimize]\nfree = ["WETH.ltv"]\n')
    one_line_error(cascade_in_process("optimize", str(bad), cwd=tmp_path), "bad.toml", "optimize.free[0]", "WETH.ltv")
    neg = scenario(tmp_path, name="neg.toml",
                   optimize='\n[optimize]\nfree = ["WETH.ltv_bps"]\n[optimize.steward_limits]\nltv_bps = -100\n')
    one_line_error(cascade_in_process("optimize", str(neg), cwd=tmp_path), "neg.toml", "steward_limits.ltv_bps", ">= 0")
