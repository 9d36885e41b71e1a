"""The objective: capital efficiency subject to a chance constraint on bad debt, with an adaptive path budget.

One trial, in order:

1. **Sample** the free parameters (:meth:`SearchSpace.suggest`); the samplers draw inside the invariant
   region (:class:`~optimizer.search.samplers.FeasibleSampler`), so step 2 is a safety net.
2. **Reject infeasible candidates before any simulation**: ``adapter.with_params`` on every protocol and
   the liquidation-buffer floor. A candidate that breaks a bound or an invariant (LTV > LT, LT x bonus >
   100 %, ...) is PRUNED with the constraint ``invariants`` = number of broken rules and the rule in the
   user attr ``infeasible``; TPE still learns from it (it ranks with the infeasible trials, by
   violation) and the constrained CMA-ES gets ``-(violation)``.
3. **Efficiency** (``borrow capacity / collateral`` of the book at t0, or borrowing power in USD with
   ``borrow_capacity_usd``) needs no simulation. The stored value is that figure x (1 - 1e-8 x change),
   ``change`` = the move from today's values as shares of the search ranges (:data:`TIE_BREAK`), so among
   equally efficient sets the smaller change wins everywhere (sampler, ``study.best_trial``,
   optuna-dashboard). In ``improve`` mode (today's set within budget), a candidate whose value is below
   the best feasible fully evaluated trial's cannot win: PRUNED as ``dominated`` after
   ``trial.report(value, 0)``, unsimulated. In ``repair`` mode (today's set over budget) every candidate
   is simulated: the safer, less efficient sets are the answer and the trade-off curve.
4. **Successive path budget** on common random numbers: the candidate runs on path prefixes
   ``n0 = max(min_screen_paths, screen_fraction x N)``, ``eta x n0``, ..., ``N`` of the first prepared
   path set, simulating only the new paths at each stage (paths are independent, so the prefix result is
   exact), then on each further path set (``samples``, when a repair must hold on the search paths and on
   the paths where today's set failed). It stops early when the lower end of the risk metric's 95 % CI
   is already above the budget (clearly infeasible), when it became dominated (improve mode), or, with
   two objectives, when even that lower end is dominated by the front of fully evaluated trials.
5. **Record**: constraints ``invariants``, ``risk`` = max over path sets of (upper 95 % CI end of the
   risk metric - budget) and, with ``max_borrower_penalty_share``, ``penalty`` = upper 95 % CI end of the
   mean borrower penalty / debt - the limit (feasible when all <= 0), written both as optuna 5 named
   constraints and as the legacy ``constraints`` list optuna-dashboard reads. Scalar user attrs for the
   dashboard (``efficiency``, ``risk_value``, ``risk_ci95_low``/``_high``, ``paths``, ``fidelity``,
   ``outcome``, key metrics); the full metrics JSON as the trial system attr ``cascade:metrics``.
   With one objective a trial is COMPLETE only when it was simulated on every path and is within every
   limit, so "complete" means "a candidate" and no over-budget trial can be anyone's best; the others
   are PRUNED with their value reported as the last intermediate value and the reason in ``outcome``.

The risk metrics are of ``bad_debt_share`` (bad debt / initial debt, per path): ``var_99``/``var_95``
with their order-statistic CIs, ``es_99`` ± 1.96 x its bootstrap standard error, ``mean`` ± 1.96 x
its standard error; ``borrower_penalty`` is the mean of ``borrower_penalty_share`` ± 1.96 x its
standard error (the liquidation penalty borrowers pay per path / debt, see
:func:`optimizer.engine.results.borrower_penalty`).
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
from ..scenario.config import PENALTY_OBJECTIVE, PROBABILITY_RISKS
from .space import SearchSpace

Z95 = 1.959963984540054
RISK_SERIES = "bad_debt_share"
PENALTY_SERIES = "borrower_penalty_share"
# A trial's stored value is primary x (1 - TIE_BREAK x change), change = sum over parameters of the move
# from today's value as a share of its search range (<= the number of free parameters). Equally efficient
# sets then rank by the smaller change (in the sampler, in study.best_trial and in optuna-dashboard), and
# no two sets whose efficiency differs by more than ~1e-7 of itself swap places. The exact figures are
# the user attrs ``efficiency`` / ``borrow_capacity_usd``.
TIE_BREAK = 1e-8
METRICS_ATTR = "cascade:metrics"  # trial system attr: the full metrics JSON (not shown by the dashboard)


@dataclass(frozen=True)
class ObjectiveSettings:
    """What a trial optimises and how it is judged.

    ``mode``: ``"improve"`` (today's set is within budget: a candidate less efficient than the best
    feasible one cannot win and is skipped unsimulated) or ``"repair"`` (today's set is over budget: less
    efficient sets are the candidates, every one is simulated). ``samples``: sizes of the consecutive path
    sets of the prepared paths a candidate must hold on, each judged on its own (empty: one set).
    """

    objectives: tuple[str, ...] = ("efficiency",)
    risk_metric: str = "var_99"  # the chance constraint's metric
    budget: float = 0.001  # share of debt
    adaptive: bool = True
    screen_fraction: float = 0.125
    min_screen_paths: int = 32
    eta: int = 4
    mode: str = "improve"
    samples: tuple[int, ...] = ()
    max_penalty_share: float | None = None  # user-harm constraint on the mean borrower penalty / debt
    tie_break: float = TIE_BREAK
    efficiency_unit: str = "share"  # "leverage" when the search tunes perp venues only (optimizer.search.rows)

    @property
    def efficiency_family(self) -> str | None:
        """Whose capital efficiency the search maximises: the perp venues' (a leverage multiple), or None for
        the scenario's headline (its lending venues' share when it has any)."""
        return "perp" if self.efficiency_unit == "leverage" else None

    @property
    def multi(self) -> bool:
        return len(self.objectives) > 1

    @property
    def primary(self) -> str:
        return self.objectives[0]

    @property
    def directions(self) -> list[str]:
        return ["maximize"] + ["minimize"] * (len(self.objectives) - 1)

    @property
    def metric_names(self) -> list[str]:
        return [self.primary] + [f"{o} of {series_of(o)}" for o in self.objectives[1:]]


def series_of(metric: str) -> str:
    """The per-path series a risk metric or objective is a statistic of (a perp probability risk:
    its own per-path 0/1 series, ``p_adl`` / ``p_insurance_depletion``)."""
    if metric in PROBABILITY_RISKS:
        return metric
    return PENALTY_SERIES if metric == PENALTY_OBJECTIVE else RISK_SERIES


@dataclass(frozen=True)
class Risk:
    metric: str
    value: float
    low: float
    high: float
    paths: int
    series: str = RISK_SERIES

    def as_dict(self, budget: float | None = None) -> dict[str, Any]:
        out = {"metric": f"{self.metric} of {self.series}", "value": self.value, "ci95": [self.low, self.high],
               "paths": self.paths}
        if budget is not None:
            out |= {"budget": budget, "feasible": self.high <= budget}
        return out


def risk_of(metrics: Mapping[str, Any], metric: str, paths: int) -> Risk:
    """Point estimate and 95 % CI of one risk metric of ``bad_debt_share`` (``borrower_penalty``: the mean
    of ``borrower_penalty_share``)."""
    series = series_of(metric)
    if metric in PROBABILITY_RISKS:  # a probability with its Wilson 95 % interval
        if series not in metrics:
            raise ValueError(f"risk metric {metric} needs a perp venue in the scenario")
        p = metrics[series]
        return Risk("probability", p["mean"], p["ci95"][0], p["ci95"][1], paths, series)
    m = metrics[series]
    if metric == PENALTY_OBJECTIVE:
        metric = "mean"
    if metric in ("var_99", "var_95"):
        lo, hi = m[f"{metric}_ci95"]
        return Risk(metric, m[metric], lo, hi, paths, series)
    if metric == "es_99":
        v, se = m["es_99"], m["es_99_stderr"]
    elif metric == "mean":
        v, se = m["mean"], m["stderr"]
    else:
        raise ValueError(metric)
    return Risk(metric, v, max(v - Z95 * se, 0.0), v + Z95 * se, paths, series)


def compact_metrics(m: Mapping[str, Any]) -> dict[str, Any]:
    """The metrics a report needs (JSON-ready; kept whole in storage, not in a dashboard attr)."""
    keys = ("bad_debt_share", "bad_debt_usd", "liquidated_usd", "liquidations", "capital_efficiency",
            "borrower_penalty_usd", "borrower_penalty_share", "borrower_penalty_share_of_collateral",
            "p_adl", "p_insurance_depletion", "adl_volume_usd", "insurance_fund_drawdown_usd", "backstop_loss_usd")
    return {k: m[k] for k in keys if k in m}


def key_metrics(m: Mapping[str, Any]) -> dict[str, float]:
    """Scalar metrics for the dashboard's trial table (each attr well under its 1,024-character limit)."""
    out = {"bad_debt_mean_usd": m["bad_debt_usd"]["mean"], "bad_debt_var_99_share": m["bad_debt_share"]["var_99"],
           "bad_debt_es_99_share": m["bad_debt_share"]["es_99"],
           "p_bad_debt": m["bad_debt_share"]["p_positive"], "liquidated_mean_usd": m["liquidated_usd"]["mean"]}
    if "borrower_penalty_share" in m:
        out |= {"penalty_mean_usd": m["borrower_penalty_usd"]["mean"],
                "penalty_mean_share": m["borrower_penalty_share"]["mean"],
                "penalty_mean_share_stderr": m["borrower_penalty_share"]["stderr"]}
    return {k: float(v) for k, v in out.items()}


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


def efficiency(bound: Bound, family: str | None = None) -> dict[str, Any]:
    """Capital efficiency of a candidate at t0 (no simulation): ``family``'s figures (default: the headline)."""
    return SimulationResult(bound, None, "", 0.0).capital_efficiency(family)  # type: ignore[arg-type]


def primary_value(eff: Mapping[str, float], primary: str) -> float:
    """The maximised figure: the efficiency ratio, or borrowing power in USD."""
    return float(eff["borrow_capacity_usd"] if primary == "borrow_capacity_usd" else eff["ratio"])


def exact_primary(t: optuna.trial.FrozenTrial, primary: str = "efficiency") -> float | None:
    """A trial's primary figure without the tie-break (from its user attrs)."""
    key = "borrow_capacity_usd" if primary == "borrow_capacity_usd" else "efficiency"
    v = t.user_attrs.get(key)
    return None if v is None else float(v)


def named_constraints(t: optuna.trial.FrozenTrial) -> dict[str, float]:
    """The named constraints (without the legacy unnamed copy "0", "1", ... written for the dashboard)."""
    return {k: v for k, v in t.constraints.items() if not k.isdigit()}


def is_full(t: optuna.trial.FrozenTrial) -> bool:
    """Simulated on every path (COMPLETE, or PRUNED because over budget)."""
    return t.state in (TrialState.COMPLETE, TrialState.PRUNED) and t.user_attrs.get("fidelity") == "full"


def feasible(t: optuna.trial.FrozenTrial) -> bool:
    """Simulated and every constraint (invariants, risk, penalty) satisfied."""
    c = named_constraints(t)
    return "risk" in c and all(v <= 0 for v in c.values())


def incumbent(trials: list[optuna.trial.FrozenTrial]) -> float | None:
    """Best stored value among feasible, fully evaluated trials."""
    vals = [t.values[0] for t in trials if is_full(t) and feasible(t) and t.values]
    return max(vals) if vals else None


def front(trials: list[optuna.trial.FrozenTrial]) -> list[tuple[float, float]]:
    pts = [(t.values[0], t.values[1]) for t in trials if is_full(t) and t.values and len(t.values) > 1]
    return [p for p in pts if not any(dominates(q, p) for q in pts)]


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """(efficiency up, risk down) Pareto dominance."""
    return a[0] >= b[0] and a[1] <= b[1] and (a[0] > b[0] or a[1] < b[1])


def sample_bounds(n_paths: int, settings: ObjectiveSettings) -> list[tuple[int, int]]:
    """``[(start, end), ...]`` of the path sets a candidate must hold on."""
    sizes = settings.samples or (n_paths,)
    if sum(sizes) != n_paths:
        raise ValueError(f"samples {sizes} do not add up to {n_paths} paths")
    out, lo = [], 0
    for n in sizes:
        out.append((lo, lo + n))
        lo += n
    return out


def stages(n_paths: int, settings: ObjectiveSettings) -> list[int]:
    """Cumulative path counts at which a candidate is judged: successive stages on the first path set,
    then each further set whole."""
    bounds = sample_bounds(n_paths, settings)
    out = stage_paths(bounds[0][1], settings)
    out += [hi for _, hi in bounds[1:]]
    return out


@dataclass(frozen=True)
class Judgement:
    """One candidate's risk on each path set simulated so far, and the penalty on all of them."""

    risks: tuple[Risk, ...]  # per path set (the last may be partial)
    penalty: Risk | None
    binding: Risk  # the set with the highest upper CI end

    @property
    def high(self) -> float:
        return self.binding.high

    def constraint(self, budget: float) -> float:
        return max(r.high for r in self.risks) - budget


def risk_of_paths(x: Any, metric: str) -> Risk:
    """The risk metric of its series (``bad_debt_share``; a perp probability) on one path set (per-path ``x``)."""
    from ..engine.metrics import probability_summary, tail_summary

    summary = probability_summary if metric in PROBABILITY_RISKS else tail_summary
    return risk_of({series_of(metric): summary(x)}, metric, len(x))


def judge(pooled: SimulationResult, bounds: list[tuple[int, int]], done: int, settings: ObjectiveSettings
          ) -> tuple[Judgement, dict[str, Any]]:
    """Risk on each path set simulated so far (the last may be a prefix) and the metrics on all of them."""
    m = pooled.metrics()
    if len(bounds) == 1:
        risks: tuple[Risk, ...] = (risk_of(m, settings.risk_metric, done),)
    else:
        x = pooled.per_path()[series_of(settings.risk_metric)]
        risks = tuple(risk_of_paths(x[lo:min(hi, done)], settings.risk_metric) for lo, hi in bounds if lo < done)
    pen = risk_of(m, PENALTY_OBJECTIVE, done) if PENALTY_SERIES in m else None
    binding = max(risks, key=lambda r: (r.high, r.value))
    return Judgement(risks, pen, binding), m


def set_constraints(trial: optuna.Trial, values: Mapping[str, float]) -> None:
    """Named constraints (optuna 5) and the same values as the legacy ``constraints`` list optuna-dashboard
    reads, in the order of ``values``."""
    for k, v in values.items():
        trial.set_constraint(k, float(v))
    trial.storage.set_trial_system_attr(trial._trial_id, "constraints", [float(v) for v in values.values()])


class SearchObjective:
    """``objective(trial)`` for ``study.optimize`` (see the module docstring)."""

    def __init__(self, space: SearchSpace, evaluator: Evaluator, settings: ObjectiveSettings) -> None:
        self.space = space
        self.evaluator = evaluator
        self.settings = settings
        self.bounds = sample_bounds(evaluator.n_paths, settings)
        self.stages = stages(evaluator.n_paths, settings)

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, float]:
        s = self.settings
        trial.set_user_attr("worker", worker_id(trial.number))
        params = self.space.suggest(trial)
        broken, why = self.space.check(params)
        if broken:
            set_constraints(trial, {"invariants": float(broken)})
            trial.set_user_attr("infeasible", why)
            trial.set_user_attr("fidelity", "none")
            trial.set_user_attr("paths", 0)
            trial.set_user_attr("outcome", "breaks an invariant")
            raise optuna.TrialPruned(f"infeasible before simulation: {why}")
        bound = self.evaluator.bind(self.space.split(params))
        eff = efficiency(bound, s.efficiency_family)
        change = self.space.change_size(params)
        value = primary_value(eff, s.primary) * (1.0 - s.tie_break * change)
        trial.set_user_attr("efficiency", eff["ratio"])
        if s.efficiency_unit != "share":
            trial.set_user_attr("efficiency_unit", s.efficiency_unit)
        trial.set_user_attr("borrow_capacity_usd", eff["borrow_capacity_usd"])
        trial.set_user_attr("change", change)
        trial.set_user_attr("changed", len(self.space.changed(params)))

        def history() -> list[optuna.trial.FrozenTrial]:
            return trial.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))

        def dominated() -> bool:
            if s.multi or s.mode != "improve" or not s.adaptive:
                return False
            best = incumbent(history())
            return best is not None and value < best - 1e-15 * abs(best)

        if dominated():
            set_constraints(trial, {"invariants": 0.0})
            trial.report(value, 0)
            trial.set_user_attr("fidelity", "none")
            trial.set_user_attr("paths", 0)
            trial.set_user_attr("stopped", "dominated")
            trial.set_user_attr("outcome", "less efficient than a feasible set (not simulated)")
            raise optuna.TrialPruned(f"{s.primary} {value:.6g} < best feasible")

        t0 = time.perf_counter()
        parts: list[RawResults] = []
        done = 0
        stopped = None
        for n in self.stages:
            parts.append(self.evaluator.simulate_range(bound, done, n))
            done = n
            pooled = self.evaluator.result(bound, parts)
            j, metrics = judge(pooled, self.bounds, done, s)
            obj_risk = risk_of(metrics, s.objectives[1], done) if s.multi else None
            if done >= self.evaluator.n_paths:
                break
            current_set = j.risks[-1]
            if not s.multi and current_set.low > s.budget:
                stopped = "infeasible_at_screen"
                break
            if s.multi and obj_risk is not None and any(dominates(p, (value, obj_risk.low))
                                                         for p in front(history())):
                stopped = "dominated_at_screen"
                break
            if dominated():  # another worker may have raised the bar meanwhile
                stopped = "dominated_at_screen"
                break
        full = done >= self.evaluator.n_paths
        trial.set_user_attr("fidelity", "full" if full else "screen")
        trial.set_user_attr("paths", done)
        if stopped:
            trial.set_user_attr("stopped", stopped)
        risk = j.binding
        trial.set_user_attr("risk_value", risk.value)
        trial.set_user_attr("risk_ci95_low", risk.low)
        trial.set_user_attr("risk_ci95_high", risk.high)
        for k, v in key_metrics(metrics).items():
            trial.set_user_attr(k, v)
        full_metrics = compact_metrics(metrics) | {"simulation_s": round(time.perf_counter() - t0, 4)}
        if len(self.bounds) > 1:
            full_metrics["risk_by_path_set"] = [r.as_dict(s.budget) for r in j.risks]
        trial.storage.set_trial_system_attr(trial._trial_id, METRICS_ATTR, full_metrics)
        cons = {"invariants": 0.0, "risk": j.constraint(s.budget)}
        if s.max_penalty_share is not None and j.penalty is not None:
            cons["penalty"] = j.penalty.high - s.max_penalty_share
        set_constraints(trial, cons)
        ok = all(v <= 0 for v in cons.values())
        if s.multi:
            assert obj_risk is not None
            trial.set_user_attr(f"{s.objectives[1]}_value", obj_risk.value)
            trial.set_user_attr("outcome", ("within budget" if ok else "over budget") if full else "stopped early")
            return value, obj_risk.value
        if full and ok:
            trial.set_user_attr("outcome", "within budget")
            return value
        why = ("over the penalty limit" if cons.get("risk", 0) <= 0 else "over budget") if full else (
            "over budget at screening" if stopped == "infeasible_at_screen" else "less efficient (stopped early)")
        trial.set_user_attr("outcome", why)
        trial.report(value, done)
        raise optuna.TrialPruned(why)
