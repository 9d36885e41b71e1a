"""The objective: capital efficiency subject to a chance constraint on bad debt, with an adaptive path budget.

One trial, in order:

1. **Sample** the free parameters (:meth:`SearchSpace.suggest`).
2. **Reject infeasible candidates before any simulation**: ``adapter.with_params`` on every protocol. A
   candidate that breaks a bound or an invariant (LTV > LT, LT x bonus > 100 %, ...) is recorded as a
   PRUNED trial with ``trial.set_constraint("invariants", n_broken)`` and the rule in the user attr
   ``infeasible``. PRUNED because it never ran (optuna's state for "stopped before completion"): it
   stays out of ``best_trial``/``best_trials`` and parameter importance, the dashboard shows it apart,
   yet TPE still learns from it (a pruned trial with a positive constraint ranks with the infeasible
   ones, by violation) and the constrained CMA-ES gets ``-(violation)``.
3. **Efficiency** (``borrow capacity / collateral`` of the book at t0) needs no simulation. With one
   objective, a candidate strictly less efficient than the best *feasible, fully evaluated* trial so
   far cannot win: it is PRUNED as ``dominated`` after ``trial.report(efficiency, 0)``, unsimulated.
   Equally efficient candidates are simulated: ties are broken by lower risk.
4. **Successive path budget** on common random numbers: the candidate runs on path prefixes
   ``n0 = max(min_screen_paths, screen_fraction x N)``, ``eta x n0``, ..., ``N`` of the one prepared set
   of paths, simulating only the new paths at each stage (paths are independent, so the prefix result
   is exact). It stops early when the lower end of the risk metric's 95 % CI is already above the
   budget (clearly infeasible) or, with two objectives, when even that lower end is dominated by the
   front of fully evaluated trials. Otherwise (promising, feasible-looking or near the constraint) it
   gets all N paths.
5. **Record**: value(s) ``efficiency`` (and the risk objective), the chance constraint
   ``trial.set_constraint("risk", upper 95 % CI end of the risk metric - budget)`` (single objective;
   feasible when <= 0), and user attrs (``paths``, ``fidelity`` = ``full``/``screen``, risk estimate
   with its CI, compact metrics) for the report and the dashboard.

The risk metrics are of ``bad_debt_share`` (bad debt / initial debt, per path): ``var_99``/``var_95``
with their order-statistic CIs, ``es_99`` ± 1.96 x its bootstrap standard error, ``mean`` ± 1.96 x
its standard error.
"""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import optuna
from optuna.trial import TrialState

from ..engine.model import Bound, Prepared, bind
from ..engine.reference import RawResults
from ..engine.results import SimulationResult
from ..engine.simulate import run
from .space import SearchSpace

Z95 = 1.959963984540054


@dataclass(frozen=True)
class ObjectiveSettings:
    objectives: tuple[str, ...] = ("efficiency",)
    risk_metric: str = "var_99"  # the chance constraint's metric
    budget: float = 0.001  # share of debt
    adaptive: bool = True
    screen_fraction: float = 0.125
    min_screen_paths: int = 32
    eta: int = 4

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    @property
    def directions(self) -> list[str]:
        return ["maximize"] + ["minimize"] * (len(self.objectives) - 1)


@dataclass(frozen=True)
class Risk:
    metric: str
    value: float
    low: float
    high: float
    paths: int

    def as_dict(self, budget: float | None = None) -> dict[str, Any]:
        out = {"metric": f"{self.metric} of bad_debt_share", "value": self.value, "ci95": [self.low, self.high],
               "paths": self.paths}
        if budget is not None:
            out |= {"budget": budget, "feasible": self.high <= budget}
        return out


def risk_of(metrics: Mapping[str, Any], metric: str, paths: int) -> Risk:
    """Point estimate and 95 % CI of one risk metric of ``bad_debt_share``."""
    m = metrics["bad_debt_share"]
    if metric in ("var_99", "var_95"):
        lo, hi = m[f"{metric}_ci95"]
        return Risk(metric, m[metric], lo, hi, paths)
    if metric == "es_99":
        v, se = m["es_99"], m["es_99_stderr"]
    elif metric == "mean":
        v, se = m["mean"], m["stderr"]
    else:
        raise ValueError(metric)
    return Risk(metric, v, max(v - Z95 * se, 0.0), v + Z95 * se, paths)


def compact_metrics(m: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics a report needs (JSON-ready, small enough for a trial user attr)."""
    keys = ("bad_debt_share", "bad_debt_usd", "liquidated_usd", "liquidations", "capital_efficiency")
    return {k: m[k] for k in keys if k in m}


def stage_paths(n: int, s: ObjectiveSettings) -> list[int]:
    """Path counts of the successive stages, ending at ``n``."""
    if not s.adaptive:
        return [n]
    first = min(n, max(s.min_screen_paths, int(math.ceil(s.screen_fraction * n))))
    out = [first]
    while out[-1] < n:
        out.append(min(n, out[-1] * s.eta))
    return out


def _proc_start(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[19]
    except OSError:
        return ""


def worker_id(trial_number: int | None = None) -> str:
    """``host:pid:start[#trial]`` of this process (start time guards against pid reuse).

    The trial number ties the stamp to the trial that wrote it: optuna's heartbeat retry copies a dead
    trial's user attrs into its re-queued copy, and that copy must not look owned by the dead process.
    """
    wid = f"{socket.gethostname()}:{os.getpid()}:{_proc_start(os.getpid())}"
    return wid if trial_number is None else f"{wid}#{trial_number}"


def worker_alive(wid: str) -> bool | None:
    """True/False for a worker on this host, None when it runs elsewhere (cannot tell)."""
    host, _, rest = wid.split("#", 1)[0].partition(":")
    pid_s, _, start = rest.partition(":")
    if host != socket.gethostname() or not pid_s.isdigit():
        return None
    pid = int(pid_s)
    if os.path.exists("/proc"):
        return os.path.exists(f"/proc/{pid}") and (not start or _proc_start(pid) == start)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Evaluator:
    """Simulates candidates on prefixes of one prepared set of paths (common random numbers).

    ``calls`` and ``paths_simulated`` count what was simulated; ``simulate_range`` is the only entry to
    the engine, so a test can watch it.
    """

    def __init__(self, prepared: Prepared, engine: str = "auto") -> None:
        self.prepared = prepared
        self.engine = engine
        self.calls = 0
        self.paths_simulated = 0
        self.seconds = 0.0

    @property
    def n_paths(self) -> int:
        return self.prepared.n_paths

    def bind(self, params: Mapping[str, Mapping[str, float]]) -> Bound:
        return bind(self.prepared, params)

    def simulate_range(self, bound: Bound, lo: int, hi: int) -> RawResults:
        """Paths ``lo..hi-1`` of the prepared set for one bound candidate."""
        t0 = time.perf_counter()
        p = self.prepared.paths
        view = replace(self.prepared, paths=p.select(lo, hi))
        raw, _, used = run(replace(bound, prepared=view), engine=self.engine)
        self.calls += 1
        self.paths_simulated += hi - lo
        self.seconds += time.perf_counter() - t0
        self.last_engine = used
        return raw

    def result(self, bound: Bound, parts: list[RawResults]) -> SimulationResult:
        raw = parts[0] if len(parts) == 1 else RawResults.concat(parts)
        return SimulationResult(bound, raw, getattr(self, "last_engine", self.engine), 0.0)

    def evaluate(self, params: Mapping[str, Mapping[str, float]]) -> SimulationResult:
        """All paths, one call (reports: current, best, joint)."""
        bound = self.bind(params)
        t0 = time.perf_counter()
        res = self.result(bound, [self.simulate_range(bound, 0, self.n_paths)])
        res.elapsed_s = time.perf_counter() - t0
        return res


def efficiency(bound: Bound) -> dict[str, float]:
    """Capital efficiency of a candidate at t0 (no simulation)."""
    return SimulationResult(bound, None, "", 0.0).capital_efficiency()  # type: ignore[arg-type]


def is_full(t: optuna.trial.FrozenTrial) -> bool:
    return t.state == TrialState.COMPLETE and t.user_attrs.get("fidelity") == "full"


def feasible(t: optuna.trial.FrozenTrial) -> bool:
    return all(v <= 0 for v in t.constraints.values())


def incumbent(trials: list[optuna.trial.FrozenTrial]) -> float | None:
    """Best efficiency among feasible, fully evaluated trials."""
    vals = [t.values[0] for t in trials if is_full(t) and feasible(t)]
    return max(vals) if vals else None


def front(trials: list[optuna.trial.FrozenTrial]) -> list[tuple[float, float]]:
    pts = [(t.values[0], t.values[1]) for t in trials if is_full(t)]
    return [p for p in pts if not any(dominates(q, p) for q in pts)]


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(efficiency up, risk down) Pareto dominance."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


class SearchObjective:
    """``objective(trial)`` for ``study.optimize`` (see the module docstring)."""

    def __init__(self, space: SearchSpace, evaluator: Evaluator, settings: ObjectiveSettings) -> None:
        self.space = space
        self.evaluator = evaluator
        self.settings = settings
        self.stages = stage_paths(evaluator.n_paths, settings)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        s = self.settings
        trial.set_user_attr("worker", worker_id(trial.number))
        params = self.space.suggest(trial)
        broken, why = self.space.check(params)
        if broken:
            trial.set_constraint("invariants", float(broken))
            trial.set_user_attr("infeasible", why)
            trial.set_user_attr("fidelity", "none")
            trial.set_user_attr("paths", 0)
            raise optuna.TrialPruned(f"infeasible before simulation: {why}")
        trial.set_constraint("invariants", 0.0)
        bound = self.evaluator.bind(self.space.split(params))
        eff = efficiency(bound)
        trial.set_user_attr("efficiency", eff["ratio"])

        def history() -> list[optuna.trial.FrozenTrial]:
            return trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))

        if s.adaptive and not s.multi:
            best = incumbent(history())
            if best is not None and eff["ratio"] < best - 1e-12:
                trial.report(eff["ratio"], 0)
                trial.set_user_attr("fidelity", "none")
                trial.set_user_attr("paths", 0)
                trial.set_user_attr("stopped", "dominated")
                raise optuna.TrialPruned(f"efficiency {eff['ratio']:.6f} < best feasible {best:.6f}")

        t0 = time.perf_counter()
        parts: list[RawResults] = []
        done = 0
        stopped = None
        for n in self.stages:
            parts.append(self.evaluator.simulate_range(bound, done, n))
            done = n
            res = self.evaluator.result(bound, parts)
            metrics = res.metrics()
            risk = risk_of(metrics, s.risk_metric, n)
            obj_risk = risk_of(metrics, s.objectives[1], n) if s.multi else None
            if n >= self.evaluator.n_paths:
                break
            if not s.multi and risk.low > s.budget:
                stopped = "infeasible_at_screen"
                break
            if s.multi and obj_risk is not None and any(dominates(p, (eff["ratio"], obj_risk.low))
                                                         for p in front(history())):
                stopped = "dominated_at_screen"
                break
            if not s.multi:
                best = incumbent(history())  # another worker may have raised the bar meanwhile
                if best is not None and eff["ratio"] < best - 1e-12:
                    stopped = "dominated_at_screen"
                    break
        # one journal/RDB write each: a handful of flat attrs for the dashboard, the rest in "metrics"
        full = done >= self.evaluator.n_paths
        trial.set_user_attr("fidelity", "full" if full else "screen")
        trial.set_user_attr("paths", done)
        if stopped:
            trial.set_user_attr("stopped", stopped)
        trial.set_user_attr("risk_value", risk.value)
        trial.set_user_attr("risk_ci95_low", risk.low)
        trial.set_user_attr("risk_ci95_high", risk.high)
        trial.set_user_attr("metrics", compact_metrics(metrics) | {"simulation_s": round(time.perf_counter() - t0, 4)})
        if s.multi:
            assert obj_risk is not None
            trial.set_user_attr(f"{obj_risk.metric}_value", obj_risk.value)
            return eff["ratio"], obj_risk.value
        trial.set_constraint("risk", risk.high - s.budget)
        return eff["ratio"]
