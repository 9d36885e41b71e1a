"""Signals and dead workers during ``cascade optimize``: exit 130, nothing finished lost, no lock left, resume works.

The random-moment test interrupts the installed ``cascade optimize`` at a moment drawn from a seeded
generator (in the default run one SIGINT; ``CASCADE_FULL_TESTS=1`` adds many moments and SIGTERM):
before the study exists, during a trial, between trials, during the final report.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
from optuna.trial import TrialState
from search_helpers import scenario

from optimizer.search import StorageSpec
from optimizer.search.storage import requeue_failed

FULL = os.environ.get("CASCADE_FULL_TESTS") == "1"
CASCADE = str(Path(sys.executable).with_name("cascade"))
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _read(journal: Path, name: str = "engine-test"):
    """Finished trials, read-only with plain optuna (no repair, no lock): number -> (state, params, values)."""
    if not journal.exists():
        return {}
    try:
        study = optuna.load_study(study_name=name, storage=JournalStorage(JournalFileBackend(str(journal))))
    except (KeyError, ValueError):  # the study is not created yet
        return {}
    return {t.number: (t.state, t.params, t.values) for t in study.get_trials(deepcopy=False) if t.state in FINISHED}


def _study(journal: Path, name: str = "engine-test"):
    return optuna.load_study(study_name=name, storage=StorageSpec(path=str(journal)).open())


# ------------------------------------------------------------------------------------------------
# Interrupted trials are re-queued with the same parameters
# ------------------------------------------------------------------------------------------------


def test_an_interrupted_trial_0_is_requeued_with_the_current_parameters(tmp_path):
    storage = StorageSpec(path=str(tmp_path / "s.journal")).open()
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    study.enqueue_trial({"x": 3}, user_attrs={"enqueued": "current parameters"})
    t = study.ask()  # pops trial 0 (the current parameters)
    t.suggest_int("x", 0, 10)
    study.tell(t, state=TrialState.FAIL)  # what optuna records when Ctrl-C cuts the objective
    assert requeue_failed(study, ("x",)) == 1
    assert requeue_failed(study, ("x",)) == 0  # once only
    (w,) = study.get_trials(states=(TrialState.WAITING,))
    assert w.user_attrs == {"retry_of": 0, "enqueued": "current parameters"}
    assert w.system_attrs["fixed_params"] == {"x": 3}
    # a parameter set that keeps failing is retried twice, then left to the sampler
    for _ in range(2):
        t = study.ask()
        t.suggest_int("x", 0, 10)
        study.tell(t, state=TrialState.FAIL)
        requeue_failed(study, ("x",))
    retries = [tr for tr in study.get_trials() if tr.params == {"x": 3}]
    assert len(retries) == 3 and not study.get_trials(states=(TrialState.WAITING,))


def test_a_trial_cut_before_its_parameters_were_drawn_is_not_requeued(tmp_path):
    storage = StorageSpec(path=str(tmp_path / "s.journal")).open()
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    t = study.ask()
    study.tell(t, state=TrialState.FAIL)
    assert requeue_failed(study, ("x",)) == 0


# ------------------------------------------------------------------------------------------------
# A signal at a random moment
# ------------------------------------------------------------------------------------------------

# (signal, seed, count the delay from the first finished trial): the default run cuts the search itself at a
# random point after its first trial (inside a trial, between two, in a journal write); the full set also
# cuts it at random moments from the start (imports, today's set, study creation, the final report).
MOMENTS = [(signal.SIGINT, 11, True)] + ([(s, k, k % 3 == 0) for k in range(12) for s in (signal.SIGINT,
                                                                                          signal.SIGTERM)]
                                         if FULL else [])


@pytest.mark.parametrize("sig, seed, after_first", MOMENTS)
def test_a_signal_at_a_random_moment_exits_130_keeps_every_finished_trial_and_resumes_at_once(tmp_path, sig, seed,
                                                                                              after_first):
    p = scenario(tmp_path)
    journal = tmp_path / "runs" / "engine-test.journal"
    delay = random.Random(seed).uniform(0.0, 1.0) if after_first else random.Random(seed).uniform(0.2, 8.0)
    proc = subprocess.Popen([CASCADE, "optimize", str(p), "--trials", "6"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: dict = {}
    t0 = time.monotonic()
    while after_first and not seen and proc.poll() is None and time.monotonic() - t0 < 240:
        seen |= _read(journal)
        time.sleep(0.02)
    t0 = time.monotonic()
    while time.monotonic() - t0 < delay and proc.poll() is None:
        seen |= _read(journal)
        time.sleep(0.02)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 130), (proc.returncode, err)
    assert "Traceback" not in err, err
    if proc.returncode == 130:
        # (off a terminal `cascade optimize` logs its phases and trials as "cascade optimize: ..." lines)
        lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("cascade optimize: ",
                                                                                     "cascade: note: "))]
        assert len(lines) == 1 and "interrupted" in lines[0], err
        if seen:  # the study existed: the line says what is kept and how to go on
            assert "saved" in lines[0] and ("resume" in lines[0] or "again" in lines[0]), err
    after = _read(journal)
    for number, rec in seen.items():
        assert after.get(number) == rec, f"finished trial {number} changed or was lost"
    assert not os.path.lexists(str(journal) + ".lock"), "a stale journal lock was left"
    # the next run resumes without waiting on a lock and ends with exactly the target
    t1 = time.monotonic()
    res = subprocess.run([CASCADE, "optimize", str(p), "--trials", "6", "--json"], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stderr
    assert "waiting for" not in res.stderr and "stale" not in res.stderr
    assert time.monotonic() - t1 < 120
    study = _study(journal)
    trials = study.get_trials()
    done = [t for t in trials if t.state in FINISHED]
    assert len(done) == 6 and json.loads(res.stdout)["study"]["trials"] == 6
    assert any(t.user_attrs.get("enqueued") == "current parameters" for t in done), "the baseline was lost"
    retried = {t.user_attrs.get("retry_of") for t in trials}
    for t in trials:
        if t.state == TrialState.FAIL and set(t.params) == set(done[0].params):
            assert t.number in retried, f"interrupted trial {t.number} was not re-queued"
    assert not [t for t in trials if t.state == TrialState.RUNNING]


# ------------------------------------------------------------------------------------------------
# Local workers: one SIGKILLed, then SIGTERM to the parent
# ------------------------------------------------------------------------------------------------


def _workers(pid: int) -> list[int]:
    """The spawned worker processes of ``pid`` (not multiprocessing's resource tracker)."""
    out = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            try:
                cmd = Path(f"/proc/{child}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmd:
                out.append(int(child))
    return out


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs /proc")
def test_a_killed_worker_is_reported_and_replaced_and_sigterm_stops_every_worker(tmp_path):
    p = scenario(tmp_path)
    journal = tmp_path / "runs" / "engine-test.journal"
    proc = subprocess.Popen([CASCADE, "optimize", str(p), "--trials", "60", "--workers", "2"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and (len(_read(journal)) < 1 or len(_workers(proc.pid)) < 2):
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
        victim = _workers(proc.pid)[0]
        os.kill(victim, signal.SIGKILL)
        while time.monotonic() < deadline and (victim in _workers(proc.pid) or len(_workers(proc.pid)) < 2):
            assert proc.poll() is None, proc.communicate()[1]
            time.sleep(0.1)
        seen = _read(journal)
        workers = _workers(proc.pid)
        assert len(workers) == 2 and victim not in workers, "the killed worker was replaced"
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert "was killed by SIGKILL" in err and "starting a replacement" in err, err
    assert "interrupted" in err.splitlines()[-1]
    assert not any(_alive(w) for w in workers), "SIGTERM to the parent stops its workers"
    after = _read(journal)
    for number, rec in seen.items():
        assert after.get(number) == rec
    assert not os.path.lexists(str(journal) + ".lock")  # (resuming is the random-moment test's job)


def test_a_signal_while_optuna_records_the_outcome_keeps_the_trial_and_is_delivered_after(tmp_path, monkeypatch):
    """SIGINT landing inside optuna's tell (after the objective returned) used to surface as optuna's
    UnboundLocalError ('updated_state'); now it is held until the outcome is stored, then delivered."""
    import optuna.study._optimize as opt_mod

    from optimizer.search.storage import NullLock, work

    storage = StorageSpec(path=str(tmp_path / "s.journal")).open()
    study = optuna.create_study(study_name="s", storage=storage, direction="maximize")
    real_tell = opt_mod._tell_with_warning

    def tell_with_a_signal(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGINT)  # arrives while optuna stores the value
        return real_tell(*args, **kwargs)

    monkeypatch.setattr(opt_mod, "_tell_with_warning", tell_with_a_signal)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # what the CLI runs with
    try:
        with pytest.raises(KeyboardInterrupt):
            work(study, storage, lambda t: float(t.suggest_int("x", 0, 10)), target=3, lock=NullLock(),
                 sampler_for=lambda n: optuna.samplers.RandomSampler(seed=n), param_names=("x",))
    finally:
        signal.signal(signal.SIGINT, previous)
    states = [t.state for t in study.get_trials(deepcopy=False)]
    assert states == [TrialState.COMPLETE], "the trial whose tell was interrupted is stored, and no other ran"


def test_an_interrupt_while_choosing_says_the_trials_are_saved_and_the_next_run_chooses(tmp_path, monkeypatch):
    """Ctrl-C after the trials, while the recommendation is being chosen (out-of-sample checks, no free moves):
    the one line says how many finished trials are kept and that the same command resumes; it does, at once."""
    import optimizer.search.decide as decide_mod
    from optimizer.search import SearchInterrupted, SearchRequest, optimize

    p = scenario(tmp_path)
    journal = tmp_path / "s.journal"
    req = SearchRequest(str(p), trials=3, storage=str(journal), study="choose")
    real = decide_mod.decide

    def cut(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(decide_mod, "decide", cut)
    with pytest.raises(SearchInterrupted) as e:
        optimize(req)
    msg = str(e.value)
    assert msg.startswith("interrupted while choosing the recommendation: 3 finished trials are saved in study "
                          "'choose'") and msg.endswith("run the same command again to resume"), msg
    monkeypatch.setattr(decide_mod, "decide", real)
    out = optimize(req).to_json()  # resumes: the target is reached, so no new trial, and the choice is made
    assert len(_read(journal, "choose")) == 3 and len(out["trials"]) == 3
    assert out["verdict"] and "recommendation" in out
