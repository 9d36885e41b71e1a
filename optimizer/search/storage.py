"""Where a study lives, and running trials on it from any number of processes.

**Default storage: optuna's JournalStorage with a file backend** at ``runs/<study>.journal`` under the
current directory. Chosen over SQLite because (i) optuna documents the journal for several processes on
one machine (SQLite serialises writers and its docs advise against it for parallel optimisation),
(ii) every operation is one appended JSON line followed by ``fsync``, so a crash or Ctrl-C loses at most
the running trial, never a finished one, and (iii) optuna-dashboard opens the file as it is
(``optuna-dashboard runs/<study>.journal``). The journal's own lock is optuna's default symlink lock,
the one optuna-dashboard uses too.

``--storage URL`` with ``://`` is an RDB URL (``postgresql+psycopg://...``, ``sqlite:///...``) opened as
``RDBStorage`` with a heartbeat (``heartbeat_interval`` 10 s, grace 40 s) and
``RetryHeartbeatStaleTrialCallback``: the RUNNING trial of a worker killed on another machine is failed
once its heartbeat is stale and re-queued with the same parameters. Any other ``--storage`` value is a
journal file path.

**Exactly N trials** (``--trials`` counts *finished* trials: COMPLETE or PRUNED; FAIL does not count
and is redone). Each worker, before asking optuna for a trial, takes a *slot lock* that covers
counting and ``ask``: it asks only while ``finished + running < N`` (or to pop a WAITING retry).
The lock is an ``flock`` on ``<journal or sqlite file>.slots.lock`` for file storages and a PostgreSQL
advisory lock (``pg_advisory_lock``, released by the server when a worker dies) / MySQL ``GET_LOCK``
for servers. It is released as soon as the trial starts, so simulations run in parallel.

**Dead workers.** Every trial records its worker (``host:pid:start``) in the user attr ``worker``. A
RUNNING trial whose worker was on this host and is gone (SIGKILL, OOM) is failed and re-queued with the
same parameters by the next worker or command; on RDB the heartbeat covers other hosts.

**Interrupted trials.** A trial cut by SIGINT/SIGTERM is FAIL; :func:`requeue_failed` re-queues every FAIL
trial once with the same parameters (the current-parameters trial keeps its label), at most
:data:`MAX_RETRIES` times per parameter set. From ``ask`` until the trial records its worker, signals
are held (:mod:`optimizer.interrupts`), so no trial is left RUNNING without an owner.

**The journal file** is read and written through :class:`~optimizer.search.journal.SafeJournalBackend`:
a torn last line is repaired under the lock (never appended onto), and the lock of a killed process is
detected (see that module). Every message that can contain a storage URL is redacted
(:func:`optimizer.redact.redact_url`, and the URL's own secrets masked in driver errors).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages import BaseStorage, JournalStorage, RDBStorage
from optuna.trial import TrialState

from ..errors import InputError
from ..interrupts import deferred
from ..redact import redact_text, redact_url, url_secrets
from .objective import worker_alive, worker_id

RUNS_DIR = "runs"
HEARTBEAT_S = 10
GRACE_S = 40
STALE_UNCLAIMED_S = 120  # a RUNNING trial that never recorded its worker is failed after this long
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
MAX_RETRIES = 2  # re-runs of one parameter set whose trial failed or was interrupted


def study_name_from(scenario_name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", scenario_name).strip("-") or "study"


@dataclass(frozen=True)
class StorageSpec:
    """A storage location: an RDB URL or a journal file path."""

    url: str | None = None
    path: str | None = None

    @classmethod
    def resolve(cls, storage: str | None, study: str, cwd: str | os.PathLike | None = None) -> StorageSpec:
        if storage and "://" in storage:
            authority = storage.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
            if authority.count("@") > 1:
                raise InputError(f"{redact_url(storage)}: an '@' inside the user name or password must be written "
                                 "%40 (database drivers split at the first '@' and would read the rest of the password "
                                 "as the host name)", field="--storage")
            return cls(url=storage)
        base = Path(cwd or os.getcwd())
        path = Path(storage) if storage else Path(RUNS_DIR) / f"{study}.journal"
        return cls(path=str(path if path.is_absolute() else base / path))

    @property
    def display(self) -> str:
        if self.url:
            return redact_url(self.url)
        try:
            return os.path.relpath(self.path or "")
        except ValueError:
            return self.path or ""

    def open(self, *, create: bool = True) -> BaseStorage:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            warnings.simplefilter("ignore", FutureWarning)
            if self.url:
                return _open_rdb(self.url, create)
            from .journal import SafeJournalBackend

            p = Path(self.path or "")
            try:
                if p.is_dir():
                    raise InputError("is a directory; --storage takes a journal file or a URL", file=self.display,
                                     field="--storage")
                if p.exists() and not p.is_file():
                    raise InputError("is not a regular file; --storage takes a journal file or a URL",
                                     file=self.display, field="--storage")
                p.parent.mkdir(parents=True, exist_ok=True)
                backend = SafeJournalBackend(str(p), display=self.display)
                backend.check()
                return JournalStorage(backend)
            except OSError as e:
                raise InputError(f"cannot open the study file ({e.strerror})", file=self.display,
                                 field="--storage") from None
            except (ValueError, KeyError) as e:  # optuna's replay of a journal it cannot read
                raise InputError(f"not a readable optuna journal ({str(e).splitlines()[0][:120]})",
                                 file=self.display, field="--storage") from None

    def slot_lock(self, study: str) -> SlotLock:
        if self.path:
            return FileLock(self.path + ".slots.lock")
        assert self.url
        scheme = self.url.split("://", 1)[0].lower()
        if scheme.startswith("sqlite"):
            db = self.url.split(":///", 1)[-1]
            return FileLock(db + ".slots.lock") if db and db != ":memory:" else NullLock()
        if scheme.startswith("postgresql"):
            return PgAdvisoryLock(self.url, study)
        if scheme.startswith("mysql"):
            return MySQLLock(self.url, study)
        return NullLock()


def redacted_error(url: str, e: BaseException) -> str:
    """The first line of an exception's text with every credential of ``url`` (and any URL) masked.

    SQLAlchemy and psycopg put the URL, the DSN or parts of it into their messages; masking the
    credential strings themselves (not only URL shapes) catches every rendering of them.
    """
    text = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    return redact_text(text, url_secrets(url))


def _may_be_a_race(e: Exception) -> bool:
    """Errors of concurrent table creation on a fresh database (worth a retry), not of a wrong URL."""
    try:
        from sqlalchemy import exc
    except ImportError:
        return False
    if isinstance(e, exc.OperationalError):
        text = str(e).lower()
        return not any(w in text for w in ("password", "authentication", "could not translate host", "refused",
                                            "does not exist", "unable to open"))
    return isinstance(e, (exc.IntegrityError, exc.ProgrammingError))


def _open_rdb(url: str, create: bool) -> RDBStorage:
    from optuna.storages import RetryHeartbeatStaleTrialCallback

    shown = redact_url(url)
    last: Exception | None = None
    for attempt in range(5):  # table creation races when several commands start on a fresh database
        try:
            return RDBStorage(url, heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                              heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=3),
                              skip_table_creation=not create)
        except ImportError as e:
            raise InputError(f"cannot open {shown}: {redacted_error(url, e)} (install cascade-risk[postgres])",
                             field="--storage") from None
        except Exception as e:
            last = e
            if not _may_be_a_race(e):  # a bad URL, an unknown driver, a refused login: no point retrying
                break
            time.sleep(0.2 * (attempt + 1))
    msg = redacted_error(url, last) if last else "unknown error"
    raise InputError(f"cannot open {shown}: {msg}"[:400], field="--storage")


# ------------------------------------------------------------------------------------------------
# Slot locks
# ------------------------------------------------------------------------------------------------


class SlotLock:
    held = False

    def acquire(self) -> None:
        self.held = True

    def release(self) -> None:
        self.held = False

    def close(self) -> None:
        self.release()


class NullLock(SlotLock):
    pass


class FileLock(SlotLock):
    def __init__(self, path: str) -> None:
        self.path = path
        self.fh = None

    def acquire(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self.fh = open(self.path, "a+")  # noqa: SIM115 - held across calls
        fcntl.flock(self.fh.fileno(), fcntl.LOCK_EX)
        self.held = True

    def release(self) -> None:
        if self.held and self.fh is not None:
            fcntl.flock(self.fh.fileno(), fcntl.LOCK_UN)
            self.fh.close()
            self.fh = None
        self.held = False


class _SqlLock(SlotLock):
    ACQUIRE = RELEASE = ""

    def __init__(self, url: str, study: str) -> None:
        import sqlalchemy

        self.key = int.from_bytes(hashlib.sha256(f"cascade-slots:{study}".encode()).digest()[:8], "big", signed=True)
        self.name = f"cascade-slots:{study}"[:64]
        try:
            self.engine = sqlalchemy.create_engine(url, poolclass=sqlalchemy.pool.NullPool)
            self.conn = self.engine.connect()
        except Exception as e:  # the driver's text may embed the URL or the DSN
            raise InputError(f"cannot open {redact_url(url)} for the slot lock: {redacted_error(url, e)}"[:400],
                             field="--storage") from None

    def _exec(self, sql: str) -> None:
        import sqlalchemy

        self.conn.execute(sqlalchemy.text(sql), {"k": self.key, "n": self.name})
        self.conn.commit()

    def acquire(self) -> None:
        self._exec(self.ACQUIRE)
        self.held = True

    def release(self) -> None:
        if self.held:
            self._exec(self.RELEASE)
        self.held = False

    def close(self) -> None:
        self.release()
        self.conn.close()
        self.engine.dispose()


class PgAdvisoryLock(_SqlLock):
    ACQUIRE = "SELECT pg_advisory_lock(:k)"
    RELEASE = "SELECT pg_advisory_unlock(:k)"


class MySQLLock(_SqlLock):
    ACQUIRE = "SELECT GET_LOCK(:n, -1)"
    RELEASE = "SELECT RELEASE_LOCK(:n)"


# ------------------------------------------------------------------------------------------------
# Study creation, fingerprint, dead trials
# ------------------------------------------------------------------------------------------------


def fingerprint(info: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(info, sort_keys=True, default=str).encode()).hexdigest()[:16]


def create_or_load(storage: BaseStorage, name: str, directions: list[str], info: dict[str, Any],
                   display: str) -> optuna.Study:
    """Create the study once (before any worker starts) or load it, refusing a different search."""
    fp = fingerprint(info)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        try:
            study = optuna.create_study(study_name=name, storage=storage, directions=directions, load_if_exists=True)
        except Exception as e:
            raise InputError(f"cannot create or load study '{name}': {redacted_error(getattr(storage, 'url', '') or '', e)}"[:300],
                             file=display, field="--study") from None
    if [d.name.lower() for d in study.directions] != directions:
        raise InputError(f"study '{name}' optimises {[d.name.lower() for d in study.directions]}, this search "
                         f"{directions}; pass --study NEW_NAME", file=display, field="--study")
    old = study.user_attrs.get("cascade_fingerprint")
    if old is None:
        study.set_user_attr("cascade_fingerprint", fp)
        study.set_user_attr("cascade_search", info)
    elif old != fp:
        prev = study.user_attrs.get("cascade_search") or {}
        changed = sorted(k for k in set(prev) | set(info) if json.dumps(prev.get(k), sort_keys=True, default=str)
                         != json.dumps(info.get(k), sort_keys=True, default=str))
        raise InputError(f"study '{name}' was created for a different search (changed: {', '.join(changed) or '?'}); "
                         "pass --study NEW_NAME to start another, or delete the study", file=display, field="--study")
    return study


def recover_dead_trials(study: optuna.Study, storage: BaseStorage, param_names: tuple[str, ...]) -> int:
    """Fail RUNNING trials whose worker process is gone and re-queue them with the same parameters."""
    n = 0
    now = time.time()
    study_id = None
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        wid = t.user_attrs.get("worker")
        if wid is not None and not wid.endswith(f"#{t.number}"):
            wid = None  # copied from the trial this one retries: not a claim on this trial
        if wid is None:
            start = t.datetime_start.timestamp() if t.datetime_start else now
            dead = now - start > STALE_UNCLAIMED_S
        else:
            dead = worker_alive(wid) is False
        if not dead:
            continue
        if study_id is None:
            study_id = storage.get_study_id_from_name(study.study_name)
        tid = storage.get_trial_id_from_study_id_trial_number(study_id, t.number)
        try:
            storage.set_trial_user_attr(tid, "failed_because", "its worker process died")
            if not storage.set_trial_state_values(tid, TrialState.FAIL):
                continue
        except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError):
            continue
        if set(param_names) <= set(t.params):
            study.enqueue_trial({k: t.params[k] for k in param_names}, user_attrs={"retry_of": t.number})
        n += 1
    return n


def counts(study: optuna.Study) -> dict[str, int]:
    c = {s.name.lower(): 0 for s in TrialState}
    for t in study.get_trials(deepcopy=False):
        c[t.state.name.lower()] += 1
    c["finished"] = c["complete"] + c["pruned"]
    return c


# ------------------------------------------------------------------------------------------------
# The worker loop
# ------------------------------------------------------------------------------------------------


def requeue_failed(study: optuna.Study, param_names: tuple[str, ...], max_retries: int = MAX_RETRIES) -> int:
    """Re-queue FAIL trials (interrupted by Ctrl-C, or failed otherwise) with the same parameters.

    A trial interrupted by a signal is FAIL in optuna; without this it would never be retried, and when
    it was trial 0 (the current parameters) the study would lose its baseline. Each FAIL trial is
    re-queued once (``retry_of`` = its number; an ``enqueued`` label such as "current parameters" is
    kept), and a parameter set is retried at most ``max_retries`` times in a row, so a set that fails
    for a real reason does not loop. Call with the slot lock held (no two workers re-queue the same trial).
    """
    trials = study.get_trials(deepcopy=False)
    retried: set[int] = set()
    parent: dict[int, int] = {}
    for t in trials:
        r = t.user_attrs.get("retry_of")
        if isinstance(r, int):
            retried.add(r)
            parent[t.number] = r
        f = t.system_attrs.get("failed_trial")  # optuna's heartbeat retry
        if isinstance(f, int):
            retried.add(f)
    n = 0
    for t in trials:
        if t.state != TrialState.FAIL or t.number in retried:
            continue
        depth, k = 0, t.number
        while k in parent and depth <= max_retries:
            k, depth = parent[k], depth + 1
        if depth >= max_retries:
            continue
        params = t.system_attrs.get("fixed_params") or t.params
        if not set(param_names) <= set(params):
            continue  # cut before its parameters were drawn: nothing to repeat
        attrs: dict[str, Any] = {"retry_of": t.number}
        if "enqueued" in t.user_attrs:
            attrs["enqueued"] = t.user_attrs["enqueued"]
        study.enqueue_trial({k: params[k] for k in param_names}, user_attrs=attrs)
        n += 1
    return n


def _fail_interrupted(study: optuna.Study, storage: BaseStorage, number: int | None) -> None:
    """The trial this process was running when a signal came: FAIL (if optuna did not get to it), to be re-queued."""
    if number is None:
        return
    try:
        sid = storage.get_study_id_from_name(study.study_name)
        tid = storage.get_trial_id_from_study_id_trial_number(sid, number)
        if storage.get_trial(tid).state == TrialState.RUNNING:
            storage.set_trial_user_attr(tid, "failed_because", "interrupted")
            storage.set_trial_state_values(tid, TrialState.FAIL)
    except (optuna.exceptions.UpdateFinishedTrialError, RuntimeError, KeyError):
        pass


def work(study: optuna.Study, storage: BaseStorage, objective: Callable, *, target: int, lock: SlotLock,
         sampler_for: Callable[[int], optuna.samplers.BaseSampler], param_names: tuple[str, ...],
         deadline: float | None = None, on_trial: Callable[[optuna.Study], None] | None = None,
         poll_s: float = 0.25) -> str:
    """Run trials on ``study`` until it has ``target`` finished trials; returns why it stopped.

    Reasons: ``"done"``, ``"timeout"``, ``"exhausted"`` (grid fully visited).

    Signals: from ``ask`` until the trial records its worker, SIGINT/SIGTERM are held (a trial is
    never left RUNNING without an owner); afterwards a signal interrupts the simulation, the trial is
    FAIL and :func:`requeue_failed` re-queues it with the same parameters on the next run.
    """
    while True:
        if deadline is not None and time.time() >= deadline:
            return "timeout"
        recover_dead_trials(study, storage, param_names)
        lock.acquire()
        ran = False
        running_trial: dict[str, int] = {}
        try:
            requeue_failed(study, param_names)
            trials = study.get_trials(deepcopy=False)
            finished = sum(t.state in FINISHED for t in trials)
            running = sum(t.state == TrialState.RUNNING for t in trials)
            waiting = sum(t.state == TrialState.WAITING for t in trials)
            if finished >= target:
                return "done"
            sampler = sampler_for(len(trials))
            if waiting == 0 and hasattr(sampler, "is_exhausted") and sampler.is_exhausted(study):
                return "exhausted"
            if finished + running < target:  # ask pops a WAITING retry first, else creates a trial
                study.sampler = sampler
                hold = deferred()
                hold.__enter__()

                tell: dict[str, Any] = {}

                def first_release(trial: optuna.Trial, running_trial=running_trial, hold=hold, tell=tell) -> Any:
                    running_trial["n"] = trial.number
                    try:
                        trial.set_user_attr("worker", worker_id(trial.number))
                        lock.release()
                    finally:
                        hold.__exit__(None, None, None)  # a held signal is raised here: the trial is FAIL
                    try:
                        return objective(trial)
                    finally:
                        # optuna records the outcome after this returns; a KeyboardInterrupt inside its
                        # tell ends in an UnboundLocalError from optuna (its `finally` reads a name the
                        # interrupted call never set), so signals wait until optimize has returned
                        tell["hold"] = deferred()
                        tell["hold"].__enter__()

                try:
                    try:
                        with warnings.catch_warnings():
                            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                            warnings.filterwarnings("ignore", message=".*GridSampler.*re-evaluating.*")
                            study.optimize(first_release, n_trials=1, catch=(), gc_after_trial=False)
                    finally:
                        if "hold" in tell:  # the outcome is stored: a held signal is delivered now
                            tell.pop("hold").__exit__(None, None, None)
                except KeyboardInterrupt:
                    with deferred():
                        _fail_interrupted(study, storage, running_trial.get("n"))
                    raise
                finally:
                    if "n" not in running_trial:
                        hold.__exit__(None, None, None)
                ran = True
        finally:
            if lock.held:
                lock.release()
        if ran:
            if on_trial is not None:
                on_trial(study)
        else:
            time.sleep(poll_s)  # the last slots are running elsewhere; one may still fail or be pruned
