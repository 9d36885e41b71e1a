"""Several processes on one study: a real PostgreSQL (CI starts it) and a worker killed with SIGKILL.

The PostgreSQL test needs ``CASCADE_TEST_POSTGRES_URL`` (``.ci/run`` starts a throwaway server on
127.0.0.1 and exports it). Locally it is skipped without it; under CI=true a missing URL is a failure.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid

import optuna
import pytest
from search_helpers import scenario

PG_URL = os.environ.get("CASCADE_TEST_POSTGRES_URL")


def start(args, cwd):
    return subprocess.Popen([sys.executable, "-m", "optimizer", "optimize", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finished(study):
    return [t for t in study.get_trials(deepcopy=False) if t.state.name in ("COMPLETE", "PRUNED")]


@pytest.fixture()
def pg_url():
    if not PG_URL:
        if os.environ.get("CI") == "true":
            pytest.fail("CI must provide CASCADE_TEST_POSTGRES_URL (.ci/run starts PostgreSQL)")
        pytest.skip("no PostgreSQL: set CASCADE_TEST_POSTGRES_URL (CI starts one)")
    return PG_URL


def test_two_workers_on_postgres_complete_each_trial_once_and_agree(tmp_path, pg_url):
    scen = scenario(tmp_path)
    name = f"two-workers-{uuid.uuid4().hex[:8]}"
    n = 10
    # the study is created once before the workers start (concurrent creation fails on a fresh database)
    first = subprocess.run([sys.executable, "-m", "optimizer", "optimize", str(scen), "--storage", pg_url,
                            "--study", name, "--trials", "1", "--json"], cwd=tmp_path, capture_output=True,
                           text=True, check=False, timeout=300)
    assert first.returncode == 0, first.stderr
    procs = [start([str(scen), "--storage", pg_url, "--study", name, "--trials", str(n), "--json"], tmp_path)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err
    study = optuna.load_study(study_name=name, storage=pg_url)
    done = finished(study)
    assert len(done) == n, "exactly N finished trials, none lost, none run twice"
    numbers = [t.number for t in done]
    assert len(set(numbers)) == len(numbers)
    assert not [t for t in study.trials if t.state.name == "RUNNING"]
    reports = [json.loads(out) for out, _ in outs]
    assert reports[0]["study"]["trials"] == reports[1]["study"]["trials"]
    assert reports[0]["best"]["params"] == reports[1]["best"]["params"], "workers agree on the best trial"


def test_sigkilled_worker_loses_no_finished_trial_and_rerun_completes(tmp_path):
    scen = scenario(tmp_path)
    n = 12
    storage = tmp_path / "runs" / "kill.journal"
    proc = start([str(scen), "--study", "kill", "--storage", str(storage), "--trials", str(n), "--json"], tmp_path)
    deadline = time.time() + 240
    before: dict[int, tuple] = {}
    while time.time() < deadline:
        time.sleep(0.5)
        if storage.exists():
            study = optuna.load_study(study_name="kill", storage=optuna.storages.JournalStorage(
                optuna.storages.journal.JournalFileBackend(str(storage))))
            done = finished(study)
            if len(done) >= 3:
                before = {t.number: (t.params, t.values) for t in done}
                break
        assert proc.poll() is None, proc.communicate()[1]
    assert len(before) >= 3, "the worker never finished 3 trials"
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    rerun = subprocess.run([sys.executable, "-m", "optimizer", "optimize", str(scen), "--study", "kill", "--storage",
                            str(storage), "--trials", str(n), "--json"], cwd=tmp_path, capture_output=True, text=True,
                           check=False, timeout=600)
    assert rerun.returncode == 0, rerun.stderr
    study = optuna.load_study(study_name="kill", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(storage))))
    done = {t.number: (t.params, t.values) for t in finished(study)}
    assert len(done) == n
    for number, record in before.items():
        assert done[number] == record, "a trial finished before the kill is kept unchanged"
    assert not [t for t in study.trials if t.state.name == "RUNNING"]
