"""``optimize(request)``: plan a search from a scenario, run it on a study (N local processes), report.

The plan is rebuilt identically in every worker process from the picklable :class:`SearchRequest`
(scenario path + command-line overrides), so workers need nothing but the request to join the study.
Each process prepares the scenario once (paths, books: common random numbers across its trials).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing as mp
import os
import queue
import signal
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import optuna

from ..checks import check_engine
from ..errors import InputError
from ..interrupts import deferred
from ..scenario.config import OPTIMIZE_SAMPLERS, OptimizeConfig, Scenario, check_objectives, load_scenario
from .decide import Candidate
from .objective import Evaluator, ObjectiveSettings, SearchObjective
from .result import REPORT_ATTR, SearchResult, json_ready
from .rows import study_efficiency
from .samplers import sampler_factory
from .space import SearchSpace, build_space, scenario_adapters
from .storage import StorageSpec, counts, create_or_load, fingerprint, study_name_from, work


@dataclass(frozen=True)
class SearchRequest:
    """What ``cascade optimize`` was asked (all optional overrides of the scenario's [optimize] table)."""

    scenario: str
    seed: int | None = None
    trials: int | None = None
    timeout: float | None = None
    storage: str | None = None
    study: str | None = None
    workers: int = 1
    sampler: str | None = None
    objectives: tuple[str, ...] | None = None
    per_asset: bool | None = None
    engine: str = "auto"
    cwd: str | None = None
    free: tuple[str, ...] | None = None  # API: override the free parameters
    paths: int | None = None  # --paths: the scenario's path count for this search (and out of sample)
    # Set by optimize() once it knows whether today's set is within budget (workers rebuild the same plan):
    mode: str | None = None  # "improve" | "repair"
    path_seeds: tuple[int, ...] | None = None  # seeds of the path sets a candidate must hold on
    sampler_seed: int | None = None  # the sampler's seed alone (default: the scenario's seed); paths unchanged


@dataclass
class Plan:
    request: SearchRequest
    scenario: Scenario
    cfg: OptimizeConfig
    space: SearchSpace
    settings: ObjectiveSettings
    sampler: str
    trials: int
    study: str
    storage: StorageSpec
    seed: int
    path_seeds: tuple[int, ...] = ()
    oos_seed: int = 0
    oos_paths: int = 0

    def fingerprint_info(self, space: SearchSpace) -> dict[str, Any]:
        sc = self.scenario
        raw = {k: v for k, v in sc.raw.items() if k != "optimize"}
        info = {
            "scenario": sc.name, "scenario_content_sha": fingerprint(raw), "paths": sc.paths, "seed": sc.seed,
            "space": [[d.name, d.low, d.high, d.step] for d in space.dims],
            "units": {d.name: d.unit for d in space.dims},
            "objectives": list(self.settings.objectives),
        }
        if not self.settings.multi:
            info |= {"risk_metric": self.settings.risk_metric, "budget_share_of_debt": self.settings.budget}
        if self.settings.max_penalty_share is not None:
            info["max_borrower_penalty_share"] = self.settings.max_penalty_share
        if len(self.path_seeds) > 1:
            info["path_sets"] = [[seed, n] for seed, n in zip(self.path_seeds, self.settings.samples, strict=True)]
        return info


def _efficiency_unit(sc, space: SearchSpace) -> str:
    """A search that tunes perp venues only is judged by the leverage they offer (optimizer.search.rows);
    one that tunes a lending venue by the lending venues' capital efficiency (a share of collateral)."""
    from protocols import ADAPTERS

    fams = ({space.adapters[d.adapter].family for d in space.dims} if space.dims
            else {ADAPTERS[p.adapter].family for p in sc.protocols})
    return "leverage" if fams == {"perp"} else "share"


def make_plan(req: SearchRequest) -> Plan:
    sc = load_scenario(req.scenario)
    if req.seed is not None:
        sc = sc.with_overrides(seed=req.seed)
    default_paths = sc.paths
    if req.paths is not None:
        if req.paths < 1:
            raise InputError(f"must be >= 1, got {req.paths}", field="--paths")
        sc = sc.with_overrides(paths=req.paths)
    cfg = sc.optimize
    if req.objectives is not None:
        check_objectives(req.objectives, None, "--objectives")
        cfg = replace(cfg, objectives=tuple(req.objectives), objectives_given=True)
    if req.per_asset is not None:
        cfg = replace(cfg, per_asset=req.per_asset)
    sc = replace(sc, optimize=cfg)
    adapters = scenario_adapters(sc)
    space = build_space(sc, adapters, free=req.free)
    _check_caps(sc, space)
    if space.caps() and not cfg.objectives_given:
        # efficiency (a ratio) does not change with the size of the book: caps earn borrowing power in USD
        cfg = replace(cfg, objectives=("borrow_capacity_usd",))
        sc = replace(sc, optimize=cfg)
    sampler = req.sampler or cfg.sampler or ("nsga2" if len(cfg.objectives) > 1 else "tpe")
    if sampler not in OPTIMIZE_SAMPLERS:
        raise InputError(f"unknown sampler '{sampler}' (one of {', '.join(OPTIMIZE_SAMPLERS)})", field="--sampler")
    if sampler == "cmaes" and len(cfg.objectives) > 1:
        raise InputError("CMA-ES is single-objective; use nsga2, tpe or grid with two objectives", field="--sampler")
    if sampler == "cmaes":
        try:
            import cmaes  # noqa: F401 - optuna's CmaEsSampler needs it
        except ImportError:
            raise InputError("the CMA-ES sampler needs the 'cmaes' package, which is not installed "
                             "(pip install cmaes)", field="--sampler") from None
    oos_seed = cfg.out_of_sample_seed if cfg.out_of_sample_seed is not None else sc.seed + 1
    oos_paths = cfg.out_of_sample_paths or sc.paths
    path_seeds = tuple(req.path_seeds) if req.path_seeds else (sc.seed,)
    samples = (sc.paths, *([oos_paths] * (len(path_seeds) - 1))) if len(path_seeds) > 1 else ()
    if len(path_seeds) > 1:
        oos_seed = max(path_seeds) + 1  # the confirmation set: paths no candidate was chosen on
    settings = ObjectiveSettings(objectives=cfg.objectives, risk_metric=cfg.risk_metric,
                                 budget=cfg.budget_share_of_debt, adaptive=cfg.adaptive,
                                 screen_fraction=cfg.screen_fraction, min_screen_paths=cfg.min_screen_paths,
                                 eta=cfg.eta, mode=req.mode or "improve", samples=samples,
                                 max_penalty_share=cfg.max_borrower_penalty_share,
                                 efficiency_unit=_efficiency_unit(sc, space))
    trials = req.trials if req.trials is not None else cfg.trials
    if req.workers < 1:
        raise InputError(f"must be >= 1, got {req.workers}", field="--workers")
    if req.timeout is not None and req.timeout <= 0:
        raise InputError(f"must be > 0 seconds, got {req.timeout:g}", field="--timeout")
    name = req.study or study_name_from(sc.name) + (f"-{sc.paths}paths" if sc.paths != default_paths else "")
    plan = Plan(req, sc, cfg, space, settings, sampler, trials, name,
                StorageSpec.resolve(req.storage, name, req.cwd), sc.seed, path_seeds, oos_seed, oos_paths)
    if sampler == "grid" and req.trials is None:
        plan.trials = _grid_size(plan, space)
    return plan


def _check_caps(sc: Scenario, space: SearchSpace) -> None:
    """A free cap must size something: the book of its protocol has to scale to the caps."""
    for d in space.caps():
        pc = next(p for p in sc.protocols if p.adapter == d.adapter)
        if pc.book.kind != "synthetic" or not pc.book.raw.get("scale_to_caps"):
            raise InputError(f"{d.name} is free but the {d.adapter} book does not scale to its caps, so the cap "
                             "changes nothing; set scale_to_caps = true in its [protocols.book] (synthetic books)",
                             file=sc.file, field="optimize.free")


def _grid_size(plan: Plan, space: SearchSpace) -> int:
    if plan.cfg.feasible_sampling:
        return len(space.feasible_grid(plan.cfg.grid_points))
    return space.grid_size(plan.cfg.grid_points)


def search_paths(plan: Plan, prepared=None):
    """The prepared scenario whose paths a candidate is judged on: the scenario's own paths, followed by
    the paths of each further seed of ``plan.path_seeds`` (a repair that must hold where today's set failed)."""
    import numpy as np

    from ..engine import prepare

    prepared = prepared if prepared is not None else prepare(plan.scenario)
    if len(plan.path_seeds) <= 1:
        return prepared
    parts = [prepared.paths] + [fresh_paths(prepared, seed, n).paths
                                for seed, n in zip(plan.path_seeds[1:], plan.settings.samples[1:], strict=True)]
    p = prepared.paths
    return replace(prepared, paths=replace(p, close=np.concatenate([x.close for x in parts]),
                                           low=np.concatenate([x.low for x in parts]),
                                           high=np.concatenate([x.bar_high for x in parts])))


# ------------------------------------------------------------------------------------------------
# Running one study
# ------------------------------------------------------------------------------------------------


@dataclass
class StudyRun:
    name: str
    space: SearchSpace
    study: optuna.Study
    stopped: str
    evaluator_stats: dict[str, float] = field(default_factory=dict)


def _group_space(plan: Plan, group: str | None) -> SearchSpace:
    return plan.space if group is None else plan.space.subset(group)


def _target(plan: Plan, space: SearchSpace) -> int:
    if plan.sampler == "grid":
        return min(plan.trials, _grid_size(plan, space))
    return plan.trials


def run_study(plan: Plan, group: str | None, *, prepared=None, progress: Callable | None = None,
              deadline: float | None = None) -> StudyRun:
    """Create (once) or resume the study of ``group`` (None: the whole space) and run it to its target."""
    space = _group_space(plan, group)
    name = plan.study if group is None else f"{plan.study}.{group}"
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # trial failures re-raise; Ctrl-C prints one line
    storage = plan.storage.open(create=True)
    study = create_or_load(storage, name, plan.settings.directions, plan.fingerprint_info(space),
                           plan.storage.display)
    if study.metric_names != plan.settings.metric_names:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(plan.settings.metric_names)  # the dashboard names the objective(s)
    target = _target(plan, space)
    _enqueue_current(plan, space, study)
    if progress:
        progress(study, target, name)
    stats: dict[str, float] = {}
    if plan.request.workers == 1:
        prepared = prepared if prepared is not None else search_paths(plan)
        ev = Evaluator(prepared, plan.request.engine)
        stopped = _work_here(plan, space, study, storage, ev, target, 0, deadline,
                             (lambda s: progress(s, target, name)) if progress else None)
        stats = {"simulation_calls": ev.calls, "paths_simulated": ev.paths_simulated,
                 "simulation_s": round(ev.seconds, 3)}
    else:
        stopped = _work_processes(plan, group, name, target, deadline,
                                  (lambda s: progress(s, target, name)) if progress else None, study)
    return StudyRun(name, space, study, stopped, stats)


def _enqueue_current(plan: Plan, space: SearchSpace, study: optuna.Study) -> None:
    """A new study evaluates the current parameters first: the answer is never worse than "no change"
    when that is feasible, and the adaptive budget has an incumbent from the start. (Not with the grid
    sampler: the current point is on the grid, and an enqueued trial would take a grid slot.)"""
    if plan.sampler == "grid" or not all(d.low <= d.current <= d.high for d in space.dims):
        return
    lock = plan.storage.slot_lock(study.study_name)
    lock.acquire()
    try:
        if not study.get_trials(deepcopy=False):
            study.enqueue_trial(space.current(), user_attrs={"enqueued": "current parameters"})
    finally:
        lock.close()


def _work_here(plan: Plan, space: SearchSpace, study: optuna.Study, storage, ev: Evaluator, target: int, worker: int,
               deadline: float | None, on_trial: Callable | None) -> str:
    objective = SearchObjective(space, ev, plan.settings)
    sampler_seed = plan.request.sampler_seed if plan.request.sampler_seed is not None else plan.seed
    make = sampler_factory(plan.sampler, space, seed=sampler_seed, worker=worker, multi=plan.settings.multi,
                           trials=target, population_size=plan.cfg.population_size, grid_points=plan.cfg.grid_points,
                           feasible=plan.cfg.feasible_sampling)
    lock = plan.storage.slot_lock(study.study_name)
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # failures re-raise; Ctrl-C prints one line
    try:
        return work(study, storage, objective, target=target, lock=lock, sampler_for=make,
                    param_names=space.names, deadline=deadline, on_trial=on_trial)
    finally:
        lock.close()


def _die_with_parent(parent_pid: int) -> None:
    """Linux: this worker gets SIGTERM when its parent dies (even by SIGKILL), so no worker outlives the command."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return
    if os.getppid() != parent_pid:  # the parent died before the prctl
        os.kill(os.getpid(), signal.SIGTERM)


def _worker_main(req: SearchRequest, group: str | None, name: str, target: int, worker: int, workers: int,
                 deadline: float | None, errors: Any, parent_pid: int | None = None) -> None:
    """Entry point of one worker process (spawned). Exit codes: 0 done, 1 error (message on ``errors``), 130 signal."""
    try:
        from ..interrupts import sigterm_as_interrupt

        sigterm_as_interrupt()
        if parent_pid is not None:
            _die_with_parent(parent_pid)
        import numba

        numba.set_num_threads(max(1, numba.config.NUMBA_NUM_THREADS // workers))
        warnings.simplefilter("ignore")
        plan = make_plan(req)
        space = _group_space(plan, group)
        storage = plan.storage.open(create=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.load_study(study_name=name, storage=storage)
        ev = Evaluator(search_paths(plan), req.engine)
        _work_here(plan, space, study, storage, ev, target, worker, deadline, None)
    except KeyboardInterrupt:
        os._exit(130)
    except BaseException as e:
        from ..redact import redact_text

        try:
            errors.put(redact_text(f"worker {worker}: {e}".splitlines()[0][:400]))
            errors.close()
            errors.join_thread()  # the queue's feeder thread must flush before _exit
        finally:
            os._exit(1)


def _say(msg: str) -> None:
    """A notice (not an error): one line ``cascade: note: ...`` on stderr."""
    print(f"cascade: note: {msg}", file=sys.stderr, flush=True)


def _stop_workers(procs: list, timeout_s: float = 30.0) -> None:
    """SIGTERM every live worker, then SIGKILL stragglers.

    SIGTERM, not SIGINT: a worker still starting up (before its handlers exist) then ends silently
    instead of printing a traceback; a running one fails its trial (re-queued on resume) and exits 130.
    """
    for p in procs:
        if p.is_alive() and p.pid:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
    end = time.time() + timeout_s
    try:
        for p in procs:
            p.join(timeout=max(0.0, end - time.time()))
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=5)


def _exit_reason(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return "was interrupted" if code == 130 else f"exited with code {code}"


def _work_processes(plan: Plan, group: str | None, name: str, target: int, deadline: float | None,
                    on_trial: Callable | None, study: optuna.Study) -> str:
    """Run ``--workers`` processes on the study until it has ``target`` finished trials.

    A worker that dies (SIGKILL, OOM) is reported in one line and replaced (at most ``workers``
    times); its running trial is failed and re-queued with the same parameters by the survivors.
    A worker error stops the others and becomes a one-line error. SIGINT/SIGTERM to this process
    stops every worker before :class:`KeyboardInterrupt` propagates (finished trials are kept);
    workers run in their own process group (a terminal's Ctrl-C reaches only this process) and get
    SIGTERM if this process dies.
    """
    ctx = mp.get_context("spawn")
    errors = ctx.Queue()
    n = plan.request.workers

    def spawn(w: int):
        from .. import _entry

        p = ctx.Process(target=_entry.worker, args=(plan.request, group, name, target, w, n, deadline, errors,
                                                    os.getpid()), name=f"cascade-optimize-{w}")
        p.start()
        # its own process group: Ctrl-C in a terminal reaches only this process, which stops the workers
        with contextlib.suppress(OSError):
            os.setpgid(p.pid, p.pid)
        return p

    procs: dict[int, Any] = {}
    replacements = 0
    lost: list[str] = []
    try:
        for w in range(n):
            procs[w] = spawn(w)
        last = -1
        while True:
            for w, p in list(procs.items()):
                if isinstance(p, _Done) or p.is_alive() or p.exitcode in (None, 0):
                    continue
                if p.exitcode == 1:  # an error: its message is on the queue
                    _stop_workers(list(procs.values()))
                    raise InputError(_first_error(errors) or f"worker {w} failed")
                c = counts(study)
                more = c["finished"] < target and (deadline is None or time.time() < deadline)
                what = f"worker {w} (pid {p.pid}) {_exit_reason(p.exitcode)} with {c['finished']}/{target} trials " \
                       "finished; its running trial is re-queued with the same parameters"
                if more and replacements < n:
                    replacements += 1
                    _say(f"{what}; starting a replacement")
                    procs[w] = spawn(w)
                else:
                    _say(what)
                    lost.append(what)
                    procs[w] = _Done(p.exitcode)
            if not any(p.is_alive() for p in procs.values()):
                break
            time.sleep(0.25)
            if on_trial is not None:
                c = counts(study)
                if c["finished"] != last:
                    last = c["finished"]
                    on_trial(study)
        msg = _first_error(errors, 0)
    except BaseException:
        with deferred():
            _stop_workers([p for p in procs.values() if not isinstance(p, _Done)])
        raise
    finally:
        errors.close()
        errors.cancel_join_thread()
    if msg:
        raise InputError(msg)
    c = counts(study)
    if c["finished"] >= target:
        return "done"
    if deadline is not None and time.time() >= deadline:
        return "timeout"
    return "workers_died" if lost else "exhausted"


class _Done:
    """A worker that ended and was not replaced."""

    def __init__(self, exitcode: int) -> None:
        self.exitcode, self.pid = exitcode, None

    def is_alive(self) -> bool:
        return False


def _first_error(errors: Any, wait_s: float = 2.0) -> str | None:
    try:
        return errors.get(timeout=wait_s) if wait_s else errors.get_nowait()
    except queue.Empty:
        return None


# ------------------------------------------------------------------------------------------------
# The whole command: search, current and out-of-sample evaluation, baseline, report
# ------------------------------------------------------------------------------------------------


class SearchInterrupted(Exception):
    """Ctrl-C: finished trials are in the storage; the message says where and how to resume."""


def fresh_paths(prepared, seed: int, n_paths: int):
    """The same scenario and book on new price paths (another seed): out-of-sample evaluation."""
    import numpy as np

    from ..engine.model import build_models
    from ..scenario.prices import generate_paths

    sc = prepared.scenario
    models, initial, corr, n_steps = build_models(sc)
    path_seed, _ = np.random.SeedSequence(seed).spawn(2)
    paths = generate_paths(models, corr, n_paths, n_steps, sc.step_s, np.random.default_rng(path_seed), initial)
    return replace(prepared, paths=paths)


def _current_candidate(ev: Evaluator, space: SearchSpace, settings: ObjectiveSettings, ins: dict[str, Any],
                       oos: dict[str, Any] | None) -> Candidate:
    from .objective import efficiency

    e = efficiency(ev.bind({}), settings.efficiency_family)
    return Candidate(space.current(), None, e["ratio"], e["borrow_capacity_usd"], 0.0, ins, oos, "today's set")


def _record(c: Candidate | None) -> dict[str, Any] | None:
    if c is None:
        return None
    return {"trial": c.trial, "source_trial": c.source, "params": c.params, "efficiency": c.efficiency,
            "borrow_capacity_usd": c.borrow_capacity_usd, "change": c.change, "note": c.note,
            "in_sample": c.in_sample, "out_of_sample": c.out_of_sample,
            # the PR 1 layout, kept for scripts: metrics and risk in sample at the top level
            "metrics": c.in_sample.get("metrics"), "risk": c.in_sample.get("risk")}


def _trial_rows(study: optuna.Study, space: SearchSpace) -> list[dict[str, Any]]:
    keys = ("outcome", "fidelity", "paths", "efficiency", "borrow_capacity_usd", "change", "risk_value",
            "risk_ci95_low", "risk_ci95_high", "penalty_mean_share", "penalty_mean_share_stderr", "bad_debt_mean_usd")
    rows = []
    for t in study.get_trials(deepcopy=False):
        row = {"trial": t.number, "state": t.state.name.lower(), **{k: t.user_attrs.get(k) for k in keys}}
        row |= {n: None for n in space.names} | space.trial_params(t.params)
        rows.append(row)
    return rows


def _mode(cur_in: dict[str, Any], cur_oos: dict[str, Any], multi: bool) -> tuple[str, str, bool]:
    """(mode, why, two path sets) from today's set on the search paths and out of sample."""
    if multi:
        return "improve", "two objectives: the front is mapped whatever today's set does", False
    if cur_in["holds"] and cur_oos["holds"]:
        return "improve", "today's set is within budget in sample and out of sample", False
    if not cur_in["holds"]:
        return "repair", "today's set breaks the budget on the search paths", False
    return ("repair", "today's set is within budget on the search paths but breaks it out of sample: candidates "
            "must hold on both path sets, and the answer is confirmed on a third", True)


def optimize(req: SearchRequest, progress: Callable | None = None,
             log: Callable[[str], None] | None = None) -> SearchResult:
    """Run (or resume) the search of ``req`` and return its :class:`~optimizer.search.SearchResult`.

    Today's set is evaluated first, in sample and out of sample: within budget on both, the search looks
    for more borrowing power (``improve``); over budget on either, it looks for the cheapest change that
    brings it within budget (``repair``; when only the out-of-sample paths show the breach, candidates
    must hold on both path sets and are confirmed on a third). The recommendation is the one that holds
    out of sample (:mod:`optimizer.search.decide`); its JSON is stored as the study user attr
    ``cascade_report``.
    """
    from ..engine import prepare
    from .decide import assess

    say = log or (lambda msg: None)
    t_start = time.perf_counter()
    plan = make_plan(req)
    if plan.cfg.per_asset and plan.settings.multi:
        raise InputError("--per-asset needs a single objective (efficiency under the risk budget)",
                         field="--per-asset")
    deadline = time.time() + req.timeout if req.timeout else None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    _precheck(plan)
    prepared = prepare(plan.scenario)
    check_engine(prepared, None, req.engine)  # --engine kernel on a book it cannot run: one line, not a traceback
    ev0 = Evaluator(prepared, req.engine)
    space = plan.space
    cur = space.current()
    say(f"today's set on the search paths ({prepared.n_paths} paths, seed {plan.seed})")
    cur_in = assess(ev0, space, cur, replace(plan.settings, samples=()))
    first_oos = plan.oos_seed
    ev_oos1 = Evaluator(fresh_paths(prepared, first_oos, plan.oos_paths), req.engine)
    say(f"today's set out of sample ({plan.oos_paths} paths, seed {first_oos})")
    cur_oos1 = assess(ev_oos1, space, cur, replace(plan.settings, samples=()), samples=False)
    mode, why, two_sets = _mode(cur_in, cur_oos1, plan.settings.multi)
    seeds = (plan.seed, first_oos) if two_sets else (plan.seed,)
    plan = make_plan(replace(req, mode=mode, path_seeds=seeds))
    settings = plan.settings
    say(f"mode: {mode} ({why})")
    if two_sets:
        ev_in = Evaluator(search_paths(plan, prepared), req.engine)
        ev_oos = Evaluator(fresh_paths(prepared, plan.oos_seed, plan.oos_paths), req.engine)
        cur_in = assess(ev_in, space, cur, settings)
        cur_oos = assess(ev_oos, space, cur, settings, samples=False)
    else:
        ev_in, ev_oos, cur_oos = ev0, ev_oos1, cur_oos1
    current = _current_candidate(ev_in, space, settings, cur_in, cur_oos)

    groups: list[str | None] = list(space.groups()) if plan.cfg.per_asset else [None]
    runs: list[StudyRun] = []
    try:
        for g in groups:
            runs.append(run_study(plan, g, prepared=ev_in.prepared, progress=progress, deadline=deadline))
    except KeyboardInterrupt:
        name = plan.study if len(runs) == len(groups) or groups[len(runs)] is None else f"{plan.study}.{groups[len(runs)]}"
        raise _interrupted(plan, name) from None
    try:
        return _conclude(plan, req, prepared, ev0, ev_in, ev_oos, space, settings, (mode, why, seeds, two_sets),
                         (first_oos, cur_oos1, cur_oos), current, groups, runs, say, t_start)
    except KeyboardInterrupt:  # choosing the recommendation: the trials are saved, the next run chooses again
        raise _interrupted(plan, plan.study, " while choosing the recommendation") from None


def _interrupted(plan: Plan, name: str, during: str = "") -> SearchInterrupted:
    """The one-line message of an interrupted search: what is saved and how to go on."""
    try:
        c = counts(optuna.load_study(study_name=name, storage=plan.storage.open(create=False)))
        done = f"{c['finished']} finished trials are saved"
    except Exception:
        done = "finished trials are saved"
    return SearchInterrupted(f"interrupted{during}: {done} in study '{name}' ({plan.storage.display}); run the same "
                             "command again to resume")


def _conclude(plan: Plan, req: SearchRequest, prepared, ev0: Evaluator, ev_in: Evaluator, ev_oos: Evaluator,
              space: SearchSpace, settings: ObjectiveSettings, mode_info: tuple, oos_info: tuple, current: Candidate,
              groups: list[str | None], runs: list[StudyRun], say: Callable[[str], None],
              t_start: float) -> SearchResult:
    """After the studies: the recommendation (steward order, out of sample, no free moves) and the result."""
    from . import report as rp
    from .baseline import smart_ltv_table
    from .decide import cap_report, changes, cost, decide, tradeoff

    mode, why, seeds, two_sets = mode_info
    first_oos, cur_oos1, cur_oos = oos_info
    tol = plan.cfg.efficiency_tolerance
    out: dict[str, Any] = {
        "scenario": plan.scenario.name, "scenario_file": plan.scenario.file, "seed": plan.seed,
        "paths": prepared.n_paths, "engine": getattr(ev0, "last_engine", req.engine), "sampler": plan.sampler,
        "mode": mode, "mode_reason": why,
        "path_sets": [{"seed": sd, "paths": n} for sd, n in zip(seeds, settings.samples or (prepared.n_paths,),
                                                                 strict=True)],
        "objective": _objective_section(plan, space, ev_in),
        "space": space.describe(), "space_names": list(space.names),
        "current": _record(current),
    }
    oos_sec: dict[str, Any] = {"seed": plan.oos_seed, "paths": plan.oos_paths, "current": cur_oos}
    if two_sets:
        oos_sec["first_check"] = {"seed": first_oos, "paths": plan.oos_paths, "current": cur_oos1,
                                  "note": "today's set failed on these paths; the search judged candidates on them "
                                          "too, so the out-of-sample check is on fresh paths"}
    if any(getattr(m, "model", "") == "replay" for m in _models(plan.scenario)):
        oos_sec["note"] = "replay scenario: the fresh paths repeat the recorded ones"
    messages: list[str] = []
    rec: Candidate | None = None
    if not plan.cfg.per_asset:
        r = runs[0]
        out["study"] = rp.study_section(r.study, plan.storage.display, _target(plan, space), r.stopped,
                                        r.evaluator_stats, plan.storage.url)
        trials = r.study.get_trials(deepcopy=False)
        if settings.multi:
            d = _decide_front(r.study, space, settings, ev_oos, current, plan.cfg.out_of_sample_candidates, say)
            out["pareto"] = [rp.trial_record(t, space, settings) for t in rp.pareto(r.study)]
            out["best_rule"] = "the most efficient point of the front within the risk budget that holds out of sample"
        else:
            say("choosing: steward order, out of sample, no free moves")
            d = decide(r.study, space, settings, ev_in, ev_oos, current, k=plan.cfg.out_of_sample_candidates,
                       tolerance=tol, log=say)
            out["pareto"] = []
        rec = d.recommendation
        messages += d.messages
        best = d.in_sample_best
        out["best"] = None if best is None else (_record(best) | {
            "changes": changes(space, best.params, best, {})})
        out["out_of_sample_checks"] = d.checks
        out["importance"] = rp.importance(r.study, space, settings)
        out["tradeoff"] = tradeoff(trials, current, rec, settings)
        out["caps"] = cap_report(trials, space, rec)
        out["trials"] = _trial_rows(r.study, space)
        rec_changes = d.changes
    else:
        rec, rec_changes, extra = _per_asset(plan, groups, runs, space, settings, ev_in, ev_oos, current, say)
        out |= extra
        out["tradeoff"] = []
        out["caps"] = []
        out["trials"] = []
    oos_sec["best"] = (out.get("best") or {}).get("out_of_sample")
    oos_sec["recommended"] = rec.out_of_sample if rec is not None else None
    out["out_of_sample"] = oos_sec

    if rec is not None:
        out["recommendation"] = _record(rec) | {"changes": rec_changes, "cost": cost(current, rec),
                                                "unchanged": rec.key() == current.key()}
        out["no_effect"] = [c["name"] for c in rec_changes if c["status"] == "no effect, left unchanged"]
    else:
        out["recommendation"] = None
        out["no_effect"] = []
    out["cheapest_fix"] = (out["recommendation"] if mode == "repair" else None)
    out["verdict"] = _verdict(mode, current, rec, out, messages, settings)

    bound_cur = ev0.bind({})
    bound_rec = ev0.bind(space.split(rec.params)) if rec is not None else bound_cur
    out["baseline"] = smart_ltv_table(bound_rec, bound_cur, c=plan.cfg.smart_ltv_c,
                                      horizon_h=plan.cfg.smart_ltv_horizon_h)
    for row in out["baseline"]["collaterals"]:
        row["searched"] = row["ltv_param"] in space.names
        if row["note"] and not row["searched"]:
            row["note"] += " (this LTV was not searched)"
    out["elapsed_s"] = round(time.perf_counter() - t_start, 3)
    result = SearchResult(json_ready(out))
    _store(plan, groups, result)
    return result


def _precheck(plan: Plan) -> None:
    """Refuse a study created for another search before simulating anything (create_or_load checks again)."""
    import json

    if plan.storage.path and not os.path.exists(plan.storage.path):
        from ..io import check_writable

        check_writable(plan.storage.path, "--storage")  # a journal that cannot be created: say so now
        return
    storage = plan.storage.open(create=True)  # a bad URL, a damaged journal: one line before any simulation
    if plan.cfg.per_asset:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            study = optuna.load_study(study_name=plan.study, storage=storage)
    except Exception:
        return  # no such study yet
    prev = study.user_attrs.get("cascade_search")
    if not isinstance(prev, dict):
        return
    info = plan.fingerprint_info(plan.space)
    changed = sorted(k for k in (set(prev) | set(info)) - {"path_sets"}
                     if json.dumps(prev.get(k), sort_keys=True, default=str)
                     != json.dumps(info.get(k), sort_keys=True, default=str))
    if changed:
        raise InputError(f"study '{plan.study}' was created for a different search (changed: {', '.join(changed)}); "
                         "pass --study NEW_NAME to start another, or delete the study", file=plan.storage.display,
                         field="--study")


def _objective_section(plan: Plan, space: SearchSpace, ev: Evaluator) -> dict[str, Any]:
    from ..scenario.config import PROBABILITY_RISKS

    s = plan.settings
    what = ("the leverage offered (notional the book's margin carries at the venues' maximum leverage / margin)"
            if s.primary == "efficiency" and s.efficiency_unit == "leverage" else
            "capital efficiency (borrow capacity / collateral)" if s.primary == "efficiency"
            else "borrowing power in USD (borrow capacity of the book at its caps)")
    pen = (f"; the mean liquidation penalty borrowers pay, upper 95 % CI end, <= {s.max_penalty_share:.4%} of debt"
           if s.max_penalty_share is not None else "")
    sets = " on every search path set" if len(s.samples) > 1 else ""
    risk_text = (f"the upper end of the Wilson 95 % interval of {s.risk_metric} (perp venues) <= {s.budget:.4%}"
                 if s.risk_metric in PROBABILITY_RISKS else
                 f"the upper end of the 95 % CI of {s.risk_metric} of bad debt / debt <= {s.budget:.4%}")
    desc = (f"maximise {what} subject to {risk_text}{sets}{pen}" if not s.multi else
            f"Pareto front of {what} (max) vs {s.objectives[1]} of {'bad debt' if s.objectives[1] != 'borrower_penalty' else 'the borrower penalty'} "
            f"/ debt (min); budget {s.budget:.4%} on {s.risk_metric} flagged")
    return {"objectives": list(s.objectives), "primary": s.primary, "risk_metric": s.risk_metric,
            "budget_share_of_debt": s.budget, "max_borrower_penalty_share": s.max_penalty_share,
            "efficiency_tolerance": plan.cfg.efficiency_tolerance, "description": desc,
            "efficiency_unit": s.efficiency_unit,
            "adaptive_paths": [int(x) for x in SearchObjective(space, ev, s).stages]}


def _verdict(mode: str, current: Candidate, rec: Candidate | None, out: dict[str, Any], messages: list[str],
             settings: ObjectiveSettings) -> dict[str, Any]:
    from .decide import cost
    from .result import EXIT_NO_ANSWER, EXIT_OK
    from .rows import capacity_noun, efficiency_change

    u = settings.efficiency_unit

    cur_in, cur_oos = current.in_sample["holds"], bool(current.out_of_sample and current.out_of_sample["holds"])
    where = ("in sample and out of sample" if not (cur_in or cur_oos) else
             "out of sample" if cur_in else "in sample")
    if rec is None:
        status = "no set within budget"
        tried = len(out.get("out_of_sample_checks") or [])
        if out.get("best") is None:
            msg = (f"no parameter set within the steward limits is within budget in sample "
                   f"(today's set breaks it {where}); try more trials, wider limits or a larger budget")
        else:
            status = "the recommendation fails out of sample"
            msg = (f"the {tried} most efficient set(s) within budget in sample all break it out of sample: nothing "
                   "holds; do not propose any of them (try more paths or trials)")
        return {"exit_code": EXIT_NO_ANSWER, "status": status, "message": msg, "notes": messages}
    if rec.key() == current.key():
        msg = "today's set is within budget in sample and out of sample, and no set within the limits does better"
    elif mode == "repair":
        c = cost(current, rec)
        msg = (f"today's set breaks the budget {where}; the cheapest fix within the steward limits holds in sample "
               f"and out of sample and costs {efficiency_change(-c['efficiency_points'], u, signed=False)} "
               f"({_money(-c['borrow_capacity_usd'])} of {capacity_noun(u)})"
               if c["efficiency_points"] <= 0 else
               f"today's set breaks the budget {where}; this set fixes it and adds "
               f"{efficiency_change(c['efficiency_points'], u, signed=False)}")
    else:
        c = cost(current, rec)
        msg = (f"{efficiency_change(c['efficiency_points'], u)} ({_money(c['borrow_capacity_usd'])} "
               f"of {capacity_noun(u)}), within budget in sample and out of sample")
    return {"exit_code": EXIT_OK, "status": "within budget", "message": msg, "notes": messages}


def _money(v: float) -> str:
    sign = "-" if v < 0 else ""
    v = abs(v)
    for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if v >= div:
            return f"{sign}${v / div:.3g}{suf}"
    return f"{sign}${v:.3g}"


def _decide_front(study: optuna.Study, space: SearchSpace, settings: ObjectiveSettings, ev_oos: Evaluator,
                  current: Candidate, k: int, say: Callable[[str], None]):
    """Two objectives: the most efficient front point within budget that holds out of sample."""
    from . import report as rp
    from .decide import Decision, _row, assess, changes, from_trial

    front = rp.pareto(study)
    within = sorted((t for t in front if (t.user_attrs.get("risk_ci95_high") or math.inf) <= settings.budget),
                    key=lambda t: (-(t.user_attrs.get("efficiency") or 0.0), t.user_attrs.get("change", 0.0)))
    best = from_trial(within[0], space, settings) if within else None
    if best is not None:
        best.in_sample["holds"] = True
    d = Decision(None, best)
    for t in within[:k]:
        c = from_trial(t, space, settings)
        c.in_sample["holds"] = True
        say(f"out of sample: checking trial {t.number}")
        c.out_of_sample = assess(ev_oos, space, c.params, settings, samples=False)
        d.checks.append(_row(space, c, "holds out of sample" if c.out_of_sample["holds"] else "fails out of sample"))
        if c.out_of_sample["holds"]:
            d.recommendation = c
            break
    d.changes = changes(space, d.recommendation.params if d.recommendation else current.params,
                        d.recommendation, {})
    return d


def _per_asset(plan: Plan, groups, runs, space: SearchSpace, settings: ObjectiveSettings, ev_in: Evaluator,
               ev_oos: Evaluator, current: Candidate, say: Callable[[str], None]):
    """Each asset's best set, then all of them together, checked in and out of sample."""
    from . import report as rp
    from .decide import assess, changes, from_trial, steward_order

    per = []
    joint: dict[str, float] = {}
    for g, r in zip(groups, runs, strict=True):
        order = steward_order(r.study.get_trials(deepcopy=False), settings, plan.cfg.efficiency_tolerance)
        bt = order[0] if order else None
        rec = _record(from_trial(bt, r.space, settings)) if bt is not None else None
        per.append({"group": g, "study": r.name, "best": rec,
                    "changes": changes(r.space, {n: bt.params[n] for n in r.space.names}, None, {}) if bt else None,
                    "study_info": rp.study_section(r.study, plan.storage.display, _target(plan, r.space), r.stopped,
                                                   r.evaluator_stats, plan.storage.url),
                    "importance": rp.importance(r.study, r.space, settings)})
        if bt is not None:
            joint.update({n: bt.params[n] for n in r.space.names})
    full_params = space.current() | joint
    say("per asset: the joint set in sample and out of sample")
    jin = assess(ev_in, space, full_params, settings) if joint else current.in_sample
    jout = assess(ev_oos, space, full_params, settings, samples=False) if joint else current.out_of_sample
    from ..scenario.config import PROBABILITY_RISKS
    from .objective import efficiency

    e = efficiency(ev_in.bind(space.split(full_params)), settings.efficiency_family)
    jc = Candidate(full_params, None, e["ratio"], e["borrow_capacity_usd"], space.change_size(full_params), jin, jout,
                   "the per-asset sets together")

    def eff(m):
        return study_efficiency(m, settings.efficiency_unit)

    def mean_usd(m):
        return m["bad_debt_usd"]["mean"]

    cm = current.in_sample["metrics"]
    inter = []
    for label, f_joint, f_cur, f_group in (
        ("capital efficiency", eff(jin["metrics"]), eff(cm), lambda rec: eff(rec["metrics"])),
        (f"P({settings.risk_metric})" if settings.risk_metric in PROBABILITY_RISKS else
         f"{settings.risk_metric} of bad debt share", jin["risk"]["value"], current.in_sample["risk"]["value"],
         lambda rec: rec["risk"]["value"]),
        ("mean bad debt (USD)", mean_usd(jin["metrics"]), mean_usd(cm),
         lambda rec: rec["metrics"]["bad_debt_usd"]["mean"]),
    ):
        s = sum(f_group(p["best"]) - f_cur for p in per if p["best"] is not None)
        inter.append({"metric": label, "joint_change": f_joint - f_cur, "sum_of_changes": s,
                      "interaction": (f_joint - f_cur) - s})
    extra: dict[str, Any] = {
        "per_asset": per, "pareto": [],
        "joint": {"params": full_params, "metrics": jin["metrics"], "risk": jin["risk"], "out_of_sample": jout,
                  "interactions": inter},
        "study": {**per[0]["study_info"], "name": plan.study, "groups": [p["study"] for p in per],
                  "trials": sum(p["study_info"]["trials"] for p in per)},
        "importance": {g["group"]: g["importance"] for g in per},
        "best": (_record(jc) | {"changes": changes(space, full_params, jc, {})}) if joint else None,
        "out_of_sample_checks": [],
    }
    rec_c: Candidate | None = None
    if joint and jin["holds"] and jout and jout["holds"]:
        rec_c = jc
    elif settings.mode == "improve":
        rec_c = current
    return rec_c, changes(space, rec_c.params if rec_c else current.params, rec_c, {}), extra


def _store(plan: Plan, groups: list[str | None], result: SearchResult) -> None:
    """The result as the study user attr ``cascade_report`` (every group's study with --per-asset)."""
    import json

    storage = plan.storage.open(create=False)
    payload = json.loads(json.dumps(result.to_json()))
    names = [plan.study if g is None else f"{plan.study}.{g}" for g in groups]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if plan.study not in names:  # --per-asset: the printed name holds the joint result (a study with no trials)
            optuna.create_study(study_name=plan.study, storage=storage, directions=plan.settings.directions,
                                load_if_exists=True).set_user_attr(REPORT_ATTR, payload)
        for name in names:
            optuna.load_study(study_name=name, storage=storage).set_user_attr(REPORT_ATTR, payload)


def _models(sc: Scenario):
    from ..engine.model import build_models

    return build_models(sc)[0].values()
