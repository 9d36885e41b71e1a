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

from ..errors import InputError
from ..interrupts import deferred
from ..scenario.config import OPTIMIZE_SAMPLERS, OptimizeConfig, Scenario, check_objectives, load_scenario
from .objective import Evaluator, ObjectiveSettings, SearchObjective
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
        return info


def make_plan(req: SearchRequest) -> Plan:
    sc = load_scenario(req.scenario)
    if req.seed is not None:
        sc = sc.with_overrides(seed=req.seed)
    cfg = sc.optimize
    if req.objectives is not None:
        check_objectives(req.objectives, None, "--objectives")
        cfg = replace(cfg, objectives=tuple(req.objectives))
    if req.per_asset is not None:
        cfg = replace(cfg, per_asset=req.per_asset)
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
    adapters = scenario_adapters(sc)
    space = build_space(sc, adapters, free=req.free)
    settings = ObjectiveSettings(objectives=cfg.objectives, risk_metric=cfg.risk_metric,
                                 budget=cfg.budget_share_of_debt, adaptive=cfg.adaptive,
                                 screen_fraction=cfg.screen_fraction, min_screen_paths=cfg.min_screen_paths, eta=cfg.eta)
    trials = req.trials if req.trials is not None else cfg.trials
    if sampler == "grid" and req.trials is None:
        trials = space.grid_size(cfg.grid_points)
    if req.workers < 1:
        raise InputError(f"must be >= 1, got {req.workers}", field="--workers")
    if req.timeout is not None and req.timeout <= 0:
        raise InputError(f"must be > 0 seconds, got {req.timeout:g}", field="--timeout")
    name = req.study or study_name_from(sc.name)
    return Plan(req, sc, cfg, space, settings, sampler, trials, name,
                StorageSpec.resolve(req.storage, name, req.cwd), sc.seed)


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
        return min(plan.trials, space.grid_size(plan.cfg.grid_points))
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
    target = _target(plan, space)
    _enqueue_current(plan, space, study)
    if progress:
        progress(study, target, name)
    stats: dict[str, float] = {}
    if plan.request.workers == 1:
        from ..engine import prepare

        prepared = prepared if prepared is not None else prepare(plan.scenario)
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
    make = sampler_factory(plan.sampler, space, seed=plan.seed, worker=worker, multi=plan.settings.multi,
                           trials=target, population_size=plan.cfg.population_size, grid_points=plan.cfg.grid_points)
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
        from ..engine import prepare

        ev = Evaluator(prepare(plan.scenario), req.engine)
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
    print(f"cascade: {msg}", file=sys.stderr, flush=True)


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


def _evaluated(res, settings: ObjectiveSettings, params: dict[str, float]) -> dict[str, Any]:
    from .objective import compact_metrics, risk_of

    m = res.metrics()
    return {"params": params, "metrics": compact_metrics(m),
            "risk": risk_of(m, settings.risk_metric, res.raw.n_paths).as_dict(settings.budget)}


def optimize(req: SearchRequest, progress: Callable | None = None) -> dict[str, Any]:
    """Run (or resume) the search of ``req`` and return the JSON-ready report."""
    from ..engine import prepare
    from . import report as rp
    from .baseline import smart_ltv_table
    from .objective import risk_of

    t_start = time.perf_counter()
    plan = make_plan(req)
    settings, space = plan.settings, plan.space
    if plan.cfg.per_asset and settings.multi:
        raise InputError("--per-asset needs a single objective (efficiency under the risk budget)",
                         field="--per-asset")
    deadline = time.time() + req.timeout if req.timeout else None
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    prepared = prepare(plan.scenario)
    ev = Evaluator(prepared, req.engine)
    groups: list[str | None] = list(space.groups()) if plan.cfg.per_asset else [None]
    runs: list[StudyRun] = []
    try:
        for g in groups:
            runs.append(run_study(plan, g, prepared=prepared, progress=progress, deadline=deadline))
    except KeyboardInterrupt:
        name = plan.study if len(runs) == len(groups) or groups[len(runs)] is None else f"{plan.study}.{groups[len(runs)]}"
        try:
            c = counts(optuna.load_study(study_name=name, storage=plan.storage.open(create=False)))
            done = f"{c['finished']} finished trials are saved"
        except Exception:
            done = "finished trials are saved"
        raise SearchInterrupted(f"interrupted: {done} in study '{name}' ({plan.storage.display}); run the same "
                                "command again to resume") from None

    current_res = ev.evaluate({})
    current = _evaluated(current_res, settings, space.current())
    cur_metrics_full = current_res.metrics()

    out: dict[str, Any] = {
        "scenario": plan.scenario.name, "scenario_file": plan.scenario.file, "seed": plan.seed,
        "paths": prepared.n_paths, "sampler": plan.sampler,
        "objective": {
            "objectives": list(settings.objectives), "risk_metric": settings.risk_metric,
            "budget_share_of_debt": settings.budget,
            "description": (f"maximise capital efficiency (borrow capacity / collateral) subject to the upper end of "
                            f"the 95 % CI of {settings.risk_metric} of bad debt / debt <= {settings.budget:.4%}"
                            if not settings.multi else
                            f"Pareto front of capital efficiency (max) vs {settings.objectives[1]} of bad debt / debt "
                            f"(min); budget {settings.budget:.4%} on {settings.risk_metric} flagged"),
            "adaptive_paths": [int(x) for x in (SearchObjective(space, ev, settings).stages)],
        },
        "space": space.describe(), "space_names": list(space.names),
        "current": current,
    }

    best_params: dict[str, float] | None = None
    if not plan.cfg.per_asset:
        r = runs[0]
        out["study"] = rp.study_section(r.study, plan.storage.display, _target(plan, space), r.stopped,
                                        r.evaluator_stats)
        if settings.multi:
            front = rp.pareto(r.study)
            out["pareto"] = [rp.trial_record(t, space, settings) for t in front]
            within = [t for t in front if t.user_attrs.get("risk_ci95_high", math.inf) <= settings.budget]
            bt = max(within, key=lambda t: (t.values[0], -t.values[1])) if within else None
            out["best_rule"] = "the most efficient point of the front within the risk budget"
        else:
            out["pareto"] = []
            bt = rp.best_trial(r.study)
        if bt is not None:
            best_params = {n: bt.params[n] for n in space.names}
            out["best"] = rp.trial_record(bt, space, settings) | {"changes": rp.changes(space, best_params)}
        else:
            out["best"] = None
        out["importance"] = rp.importance(r.study, space, settings)
    else:
        per = []
        joint: dict[str, float] = {}
        for g, r in zip(groups, runs, strict=True):
            bt = rp.best_trial(r.study)
            rec = rp.trial_record(bt, r.space, settings) if bt is not None else None
            per.append({"group": g, "study": r.name, "best": rec,
                        "changes": rp.changes(r.space, {n: bt.params[n] for n in r.space.names}) if bt else None,
                        "study_info": rp.study_section(r.study, plan.storage.display, _target(plan, r.space), r.stopped,
                                                       r.evaluator_stats),
                        "importance": rp.importance(r.study, r.space, settings)})
            if bt is not None:
                joint.update({n: bt.params[n] for n in r.space.names})
        full_params = space.current() | joint
        jres = ev.evaluate(space.split(full_params)) if joint else current_res
        jm = jres.metrics()
        jrisk = risk_of(jm, settings.risk_metric, jres.raw.n_paths)

        def eff(m):
            return m["capital_efficiency"]["ratio"]

        def mean_usd(m):
            return m["bad_debt_usd"]["mean"]

        inter = []
        for label, f_joint, f_cur, f_group in (
            ("capital efficiency", eff(jm), eff(cur_metrics_full), lambda rec: rec["metrics"]["capital_efficiency"]["ratio"]),
            (f"{settings.risk_metric} of bad debt share", jrisk.value, current["risk"]["value"],
             lambda rec: rec["risk"]["value"]),
            ("mean bad debt (USD)", mean_usd(jm), mean_usd(cur_metrics_full),
             lambda rec: rec["metrics"]["bad_debt_usd"]["mean"]),
        ):
            s = sum(f_group(p["best"]) - f_cur for p in per if p["best"] is not None)
            inter.append({"metric": label, "joint_change": f_joint - f_cur, "sum_of_changes": s,
                          "interaction": (f_joint - f_cur) - s})
        out["per_asset"] = per
        out["joint"] = {"params": full_params, "metrics": {k: jm[k] for k in ("bad_debt_share", "bad_debt_usd",
                                                                          "liquidated_usd", "liquidations",
                                                                          "capital_efficiency")},
                        "risk": jrisk.as_dict(settings.budget), "interactions": inter}
        out["pareto"] = []
        out["study"] = {**per[0]["study_info"], "name": plan.study, "groups": [p["study"] for p in per],
                        "trials": sum(p["study_info"]["trials"] for p in per)}
        if joint:
            best_params = full_params
            out["best"] = {"trial": None, "params": full_params, "efficiency": eff(jm),
                           "risk": out["joint"]["risk"], "metrics": out["joint"]["metrics"],
                           "changes": rp.changes(space, full_params)}
        else:
            out["best"] = None
        out["importance"] = {g["group"]: g["importance"] for g in per}

    # out of sample: fresh paths (another seed), same book
    oos_seed = plan.cfg.out_of_sample_seed if plan.cfg.out_of_sample_seed is not None else plan.seed + 1
    oos_n = plan.cfg.out_of_sample_paths or prepared.n_paths
    oos: dict[str, Any] = {"seed": oos_seed, "paths": oos_n}
    if best_params is not None:
        fresh = Evaluator(fresh_paths(prepared, oos_seed, oos_n), req.engine)
        oos["best"] = _evaluated(fresh.evaluate(space.split(best_params)), settings, best_params)
        oos["current"] = _evaluated(fresh.evaluate({}), settings, space.current())
        if any(getattr(m, "model", "") == "replay" for m in _models(plan.scenario)):
            oos["note"] = "replay scenario: the fresh paths repeat the recorded ones"
    out["out_of_sample"] = oos

    bound_cur = ev.bind({})
    bound_best = ev.bind(space.split(best_params)) if best_params is not None else bound_cur
    out["baseline"] = smart_ltv_table(bound_best, bound_cur, c=plan.cfg.smart_ltv_c,
                                      horizon_h=plan.cfg.smart_ltv_horizon_h)
    for row in out["baseline"]["collaterals"]:
        row["searched"] = row["ltv_param"] in space.names
        if row["note"] and not row["searched"]:
            row["note"] += " (this LTV was not searched)"
    out["elapsed_s"] = round(time.perf_counter() - t_start, 3)
    return out


def _models(sc: Scenario):
    from ..engine.model import build_models

    return build_models(sc)[0].values()
