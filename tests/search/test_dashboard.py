"""One finished `cascade optimize` (run as a user runs it, stderr not a terminal) on a scenario whose current set
breaks the budget, then: the repair it searched (the cheapest fix, the trade-off curve), the real
optuna-dashboard on it (same best trial as cascade and optuna, the constraints, the objective's name, scalar
attrs), the exit code and the per-trial log lines, and the stored result read back without simulating."""

from __future__ import annotations

import itertools
import json
import shlex
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import optuna
import pytest
from _cli_helpers import cascade
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from search_helpers import scenario

from optimizer.search import SearchResult, load_result

OPTIMIZE = """
[optimize]
free = ["WETH.ltv_bps", "WETH.liquidation_threshold_bps", "WETH.liquidation_bonus_bps"]
budget_share_of_debt = 0.0001
min_screen_paths = 4
"""
NAME = "engine-test-12paths"


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("finished")
    # 16 paths in the file, --paths 12 for this search: today's WETH LTV 8050 / LT 8300 / bonus 10500 has a
    # VaR 99 of ~0.017 % of debt on them, over the 0.01 % budget; a lower bonus or LTV is within it
    p = scenario(tmp, OPTIMIZE)
    res = cascade("optimize", str(p), "--trials", "8", "--paths", "12", "--json", cwd=tmp)
    journal = tmp / "runs" / f"{NAME}.journal"
    study = optuna.load_study(study_name=NAME, storage=JournalStorage(JournalFileBackend(str(journal))))
    return tmp, res, json.loads(res.stdout) if res.stdout else None, study, journal


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as r:  # 127.0.0.1 only
        return json.loads(r.read())


def test_exit_code_log_lines_and_paths_option(finished):
    _, res, out, study, _ = finished
    assert res.returncode == out["verdict"]["exit_code"] and res.returncode in (0, 3), res.stderr
    assert (res.returncode == 0) == (out["recommendation"] is not None)
    if out["recommendation"] is not None:
        assert out["recommendation"]["out_of_sample"]["holds"] and out["recommendation"]["in_sample"]["holds"]
    assert out["paths"] == 12 and out["out_of_sample"]["paths"] == 12 and out["study"]["name"] == NAME
    lines = [ln for ln in res.stderr.splitlines() if f"{NAME}: trial " in ln]
    assert len(lines) == 8 and "Traceback" not in res.stderr  # one plain line per finished trial
    for t, ln in zip(sorted(study.get_trials(), key=lambda t: t.number), lines, strict=True):
        assert ln.startswith(f"cascade optimize: {NAME}: trial {t.number} (") and t.user_attrs["outcome"] in ln
    assert "mode:" in res.stderr and "out of sample" in res.stderr


def test_over_budget_today_searches_the_cheapest_fix_and_simulates_less_efficient_sets(finished):
    _, _, out, _, _ = finished
    assert out["mode"] == "repair" and not out["current"]["in_sample"]["holds"]
    assert out["study"]["dominated_unsimulated"] == 0  # less efficient sets are candidates, not dominated
    assert out["study"]["within_budget_trials"] >= 1 and out["best"]["efficiency"] <= out["current"]["efficiency"] + 1e-12
    rec = out["recommendation"]
    if rec is not None:
        assert rec["in_sample"]["holds"] and rec["out_of_sample"]["holds"] and out["cheapest_fix"] == rec
        assert rec["cost"]["borrow_capacity_usd"] == pytest.approx(
            rec["borrow_capacity_usd"] - out["current"]["borrow_capacity_usd"])
        assert "breaks the budget" in out["verdict"]["message"]
    front = out["tradeoff"]
    assert front and any(p["current"] for p in front) and any(p["within_budget"] for p in front)
    assert all(a["efficiency"] < b["efficiency"] and a["risk_ci95_high"] < b["risk_ci95_high"]
               for a, b in itertools.pairwise(front))


def test_stored_result_is_what_was_printed_and_loads_without_simulating(finished, monkeypatch):
    tmp, _, out, study, _ = finished
    assert study.user_attrs["cascade_report"] == out
    from optimizer.search.objective import Evaluator

    def no_simulation(*a, **k):
        raise AssertionError("load_result must not simulate")

    monkeypatch.setattr(Evaluator, "simulate_range", no_simulation)
    r = load_result(None, NAME, cwd=tmp)
    assert isinstance(r, SearchResult) and r.to_json() == out and r.exit_code == out["verdict"]["exit_code"]
    assert r.recommendation == out["recommendation"]
    s = r.summary()
    assert "today (in sample)" in s.columns and "borrower penalty (mean, share of debt)" in s.index
    assert s.loc["capital efficiency", "today (in sample)"] == out["current"]["metrics"]["capital_efficiency"]["ratio"]
    assert len(r.data()) == 8 and {"efficiency", "risk_ci95_high", "outcome"} <= set(r.data().columns)
    with pytest.raises(Exception, match="no study"):
        load_result(None, "no-such-study", cwd=tmp)


def test_dashboard_shows_the_best_trial_cascade_and_optuna_agree_on(finished):
    pytest.importorskip("optuna_dashboard")
    tmp, _, out, study, journal = finished
    best = study.best_trial
    assert out["best"]["trial"] == best.number
    # the command cascade printed, run as printed (a journal path relative to where cascade ran)
    cmd = shlex.split(out["study"]["dashboard"])
    assert cmd[:1] == ["optuna-dashboard"] and Path(tmp, cmd[1]).resolve() == journal.resolve()
    port = _free_port()
    exe = str(Path(sys.executable).with_name("optuna-dashboard"))
    proc = subprocess.Popen([exe, *cmd[1:], "--host", "127.0.0.1", "--port", str(port), "--quiet"], cwd=tmp,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        base = f"http://127.0.0.1:{port}/api"
        deadline = time.time() + 60
        while True:
            try:
                studies = _get(f"{base}/studies")["study_summaries"]
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.time() < deadline, "optuna-dashboard did not start"
                time.sleep(0.2)
        (sid,) = [s["study_id"] for s in studies if s["study_name"] == NAME]
        detail = _get(f"{base}/studies/{sid}")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert detail["objective_names"] == ["efficiency"]
    assert [t["number"] for t in detail["best_trials"]] == [best.number]
    by_number = {t["number"]: t for t in detail["trials"]}
    simulated = [t for t in study.get_trials() if "risk" in t.constraints]
    for t in study.get_trials():
        named = [v for k, v in t.constraints.items() if not k.isdigit()]
        assert by_number[t.number]["constraints"] == pytest.approx(named), "the dashboard shows our constraints"
        for a in by_number[t.number]["user_attrs"]:
            assert len(a["value"]) < 1024 and not a["value"].startswith(("{", "[")), a["key"]  # scalars, never cut
    over = [t for t in simulated if t.constraints["risk"] > 0]
    assert over, "this seed has over-budget trials: the dashboard must not call one of them best"
    assert all(by_number[t.number]["state"] == "Pruned" for t in over)
    assert all(v <= 0 for v in by_number[best.number]["constraints"])
    # the full metrics stay in storage for cascade report
    assert "bad_debt_share" in best.system_attrs["cascade:metrics"]
