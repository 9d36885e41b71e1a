"""From a finished study to a recommendation a risk steward can sign: the steward order, out of sample,
no free moves, the trade-off curve and the cheapest fix.

**Steward order** (single objective). The in-sample candidates are the feasible, fully evaluated trials
(within the risk budget on every search path set, and within ``max_borrower_penalty_share``). The most
efficient one sets the bar; every candidate whose efficiency is within ``efficiency_tolerance`` of it
(0 by default: efficiency is computed exactly on the book, so "within Monte Carlo noise" means equal)
ranks by the smaller change from today's values (the sum of moves as shares of the search ranges), then
by the lower risk estimate; then the next band of efficiency, and so on. This is the order of
``study.best_trial`` too (the stored value carries the change as a 1e-8 tie-break).

**Out of sample decides.** The first set of that order (the in-sample winner) is re-simulated on fresh
paths (another seed, the same book); it is the answer if it holds there too (risk and penalty within their
limits at the upper end of the 95 % CI). If it does not, that is said, and the runners-up that could hold
are the chain of sets each less efficient *and* less risky in sample than all before it (a set off the
chain is beaten by one on it on both counts); their out-of-sample risk falls along the chain, so it is
bisected for the most efficient set that holds, within ``out_of_sample_candidates`` checks in all. In
``improve`` mode today's set, which holds on both path sets, is the last resort, so an answer always
exists; in ``repair`` mode there may be none, and then the answer says so (exit code 3).

**No free moves.** A parameter of the chosen set whose reversion to today's value leaves the efficiency
unchanged (within the tolerance) has not earned its move: the set with all such parameters reverted is
simulated in sample and out of sample, and if it holds it is the recommendation, those parameters
reported as "no effect, left unchanged". If it does not hold they are reverted one at a time, keeping each
reversion that still holds; a move that cannot be reverted is reported as "needed for the budget".

**Trade-off curve.** The non-dominated fully evaluated trials in (efficiency up, risk down), with today's
set and the recommendation marked: what each point of borrowing power costs in risk.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from .objective import (
    METRICS_ATTR,
    Evaluator,
    Judgement,
    ObjectiveSettings,
    compact_metrics,
    efficiency,
    exact_primary,
    feasible,
    is_full,
    judge,
    primary_value,
    risk_of,
    sample_bounds,
)
from .space import SearchSpace

NO_EFFECT = "no effect, left unchanged"
NEEDED = "needed for the budget"


@dataclass
class Candidate:
    """A parameter set with what is known about it (in sample, out of sample)."""

    params: dict[str, float]
    trial: int | None
    efficiency: float
    borrow_capacity_usd: float
    change: float
    in_sample: dict[str, Any]  # {"risk": ..., "penalty": ..., "metrics": ..., "holds": bool}
    out_of_sample: dict[str, Any] | None = None
    note: str = ""
    source: int | None = None  # the trial this set was derived from (no free moves)

    def key(self) -> tuple:
        return tuple(sorted(self.params.items()))


def _penalty_dict(j: Judgement, settings: ObjectiveSettings) -> dict[str, Any] | None:
    if j.penalty is None:
        return None
    return j.penalty.as_dict(settings.max_penalty_share) | ({} if settings.max_penalty_share is not None
                                                           else {"feasible": True})


def _holds(j: Judgement, settings: ObjectiveSettings) -> bool:
    ok = j.constraint(settings.budget) <= 0
    if settings.max_penalty_share is not None and j.penalty is not None:
        ok = ok and j.penalty.high <= settings.max_penalty_share
    return ok


def assess(ev: Evaluator, space: SearchSpace, params: Mapping[str, float], settings: ObjectiveSettings,
           samples: bool = True) -> dict[str, Any]:
    """Simulate ``params`` on all of ``ev``'s paths and judge it (each path set when ``samples``)."""
    res = ev.evaluate(space.split(params))
    bounds = sample_bounds(ev.n_paths, settings) if samples else [(0, ev.n_paths)]
    local = settings if samples else replace(settings, samples=())
    j, m = judge(res, bounds, ev.n_paths, local)
    out = {"risk": j.binding.as_dict(settings.budget) | {"feasible": j.constraint(settings.budget) <= 0},
           "penalty": _penalty_dict(j, settings), "metrics": compact_metrics(m), "holds": _holds(j, settings),
           "paths": ev.n_paths}
    if len(j.risks) > 1:
        out["risk_by_path_set"] = [r.as_dict(settings.budget) for r in j.risks]
    return out


def from_trial(t: FrozenTrial, space: SearchSpace, settings: ObjectiveSettings) -> Candidate:
    ua = t.user_attrs
    metrics = t.system_attrs.get(METRICS_ATTR) or ua.get("metrics") or {}
    risk = {"metric": f"{settings.risk_metric} of bad_debt_share", "value": ua.get("risk_value"),
            "ci95": [ua.get("risk_ci95_low"), ua.get("risk_ci95_high")], "paths": ua.get("paths"),
            "budget": settings.budget, "feasible": "risk" in t.constraints and t.constraints["risk"] <= 0}
    pen = None
    if "borrower_penalty_share" in metrics:
        from .objective import PENALTY_OBJECTIVE

        r = risk_of(metrics, PENALTY_OBJECTIVE, int(ua.get("paths") or 0))
        pen = r.as_dict(settings.max_penalty_share) | ({} if settings.max_penalty_share is not None
                                                       else {"feasible": True})
    ins = {"risk": risk, "penalty": pen, "metrics": metrics, "holds": feasible(t) and is_full(t),
           "paths": ua.get("paths")}
    if "risk_by_path_set" in metrics:
        ins["risk_by_path_set"] = metrics["risk_by_path_set"]
    params = space.trial_params(t.params)
    return Candidate(params, t.number, float(ua.get("efficiency", 0.0)), float(ua.get("borrow_capacity_usd", 0.0)),
                     float(ua.get("change", space.change_size(params))), ins)


def steward_order(trials: list[FrozenTrial], settings: ObjectiveSettings, tolerance: float) -> list[FrozenTrial]:
    """Feasible fully evaluated trials in the steward order (see the module docstring)."""
    cand = [t for t in trials if is_full(t) and feasible(t)]

    def prim(t: FrozenTrial) -> float:
        return exact_primary(t, settings.primary) or 0.0

    tol = tolerance if settings.primary == "efficiency" else tolerance * max((prim(t) for t in cand), default=0.0)
    out: list[FrozenTrial] = []
    rest = sorted(cand, key=lambda t: -prim(t))
    while rest:
        top = prim(rest[0])
        band = [t for t in rest if prim(t) >= top - tol - 1e-12 * abs(top)]
        band.sort(key=lambda t: (round(t.user_attrs.get("change", 0.0), 12), t.user_attrs.get("risk_value") or 0.0,
                                 t.number))
        out += band
        ids = {t.number for t in band}
        rest = [t for t in rest if t.number not in ids]
    return out


@dataclass
class Decision:
    recommendation: Candidate | None
    in_sample_best: Candidate | None
    checks: list[dict[str, Any]] = field(default_factory=list)
    changes: list[dict[str, Any]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)


def _row(space: SearchSpace, c: Candidate, status: str) -> dict[str, Any]:
    return {"trial": c.trial, "params": c.params, "efficiency": c.efficiency,
            "borrow_capacity_usd": c.borrow_capacity_usd, "change": c.change,
            "in_sample": {k: c.in_sample.get(k) for k in ("risk", "penalty", "holds", "risk_by_path_set")
                          if k in c.in_sample},
            "out_of_sample": {k: c.out_of_sample.get(k) for k in ("risk", "penalty", "holds")}
            if c.out_of_sample else None, "status": status}


def decide(study: optuna.Study, space: SearchSpace, settings: ObjectiveSettings, ev_in: Evaluator,
           ev_oos: Evaluator, current: Candidate, *, k: int, tolerance: float,
           log: Callable[[str], None] | None = None) -> Decision:
    """The recommendation of a single-objective study (see the module docstring)."""
    trials = study.get_trials(deepcopy=False)
    order = steward_order(trials, settings, tolerance)
    best = from_trial(order[0], space, settings) if order else None
    cache: dict[tuple, dict[str, Any]] = {current.key(): current.out_of_sample} if current.out_of_sample else {}

    def oos(c: Candidate) -> dict[str, Any]:
        if c.key() not in cache:
            if log:
                log(f"out of sample: checking {'trial ' + str(c.trial) if c.trial is not None else 'a set'}")
            cache[c.key()] = assess(ev_oos, space, c.params, settings, samples=False)
        c.out_of_sample = cache[c.key()]
        return c.out_of_sample

    d = Decision(None, best)
    checked = 0

    def check(t: FrozenTrial) -> bool:
        nonlocal checked
        checked += 1
        c = from_trial(t, space, settings)
        holds = oos(c)["holds"]
        d.checks.append(_row(space, c, "holds out of sample" if holds else "fails out of sample"))
        if holds and (d.recommendation is None or c.efficiency > d.recommendation.efficiency
                      or (c.efficiency == d.recommendation.efficiency and c.change < d.recommendation.change)):
            d.recommendation = c
        return holds

    pool = [t for t in order if not (settings.mode == "improve" and t.user_attrs.get("change", 0.0) == 0.0)]
    if pool and not check(pool[0]):
        d.messages.append(f"the in-sample winner (trial {pool[0].number}) breaks the budget out of sample")
        # the runners-up that can hold where the winner did not: less efficient AND less risky than every set
        # ahead of them; out-of-sample risk falls along this chain, so bisect it for the most efficient set
        # that holds (at most ``k`` checks in all)
        chain: list[FrozenTrial] = []
        low = pool[0].user_attrs["risk_ci95_high"]
        for t in pool[1:]:
            if t.user_attrs["risk_ci95_high"] < low:
                chain.append(t)
                low = t.user_attrs["risk_ci95_high"]
        lo, hi = 0, len(chain) - 1
        while lo <= hi and checked < k:
            mid = (lo + hi) // 2
            if check(chain[mid]):
                hi = mid - 1
            else:
                lo = mid + 1
        if d.recommendation is None and checked >= k and lo <= hi:
            d.messages.append(f"stopped after {checked} out-of-sample checks (optimize.out_of_sample_candidates)")
    if d.recommendation is None and settings.mode == "improve" and current.out_of_sample \
            and current.out_of_sample["holds"]:
        d.recommendation = current
        if d.checks:
            d.messages.append(f"none of the {len(d.checks)} sets checked holds out of sample; today's set does: "
                              "keep it")
    if best is not None:
        best.out_of_sample = cache.get(best.key())
    if d.recommendation is not None and d.recommendation.key() != current.key():
        d.recommendation = _no_free_moves(d, space, settings, ev_in, oos, tolerance, log)
    d.changes = changes(space, d.recommendation.params if d.recommendation else current.params, d.recommendation,
                        getattr(d, "_reverted", {}))
    return d


def _no_free_moves(d: Decision, space: SearchSpace, settings: ObjectiveSettings, ev_in: Evaluator,
                   oos: Callable[[Candidate], dict[str, Any]], tolerance: float,
                   log: Callable[[str], None] | None) -> Candidate:
    chosen = d.recommendation
    assert chosen is not None
    cur = space.current()

    def prim(params: Mapping[str, float]) -> dict[str, float]:
        return efficiency(ev_in.bind(space.split(params)), settings.efficiency_family)

    base = primary_value(prim(chosen.params), settings.primary)
    tol = tolerance if settings.primary == "efficiency" else tolerance * abs(base)
    neutral = []
    for n in space.changed(chosen.params):
        p = dict(chosen.params) | {n: cur[n]}
        if space.check(p)[0] == 0 and abs(primary_value(prim(p), settings.primary) - base) <= tol + 1e-12 * abs(base):
            neutral.append(n)
    reverted: dict[str, str] = {}
    if not neutral:
        d._reverted = reverted  # type: ignore[attr-defined]
        return chosen

    def make(params: dict[str, float], note: str) -> Candidate:
        e = prim(params)
        if log:
            log(f"no free moves: checking {note}")
        ins = assess(ev_in, space, params, settings)
        return Candidate(params, None, e["ratio"], e["borrow_capacity_usd"], space.change_size(params), ins, note=note)

    def holds(c: Candidate) -> bool:
        return c.in_sample["holds"] and oos(c)["holds"]

    trial_note = f"trial {chosen.trial}" if chosen.trial is not None else "the chosen set"
    allp = dict(chosen.params) | {n: cur[n] for n in neutral}
    c = make(allp, f"{trial_note} with {', '.join(n.split(':', 1)[-1] for n in neutral)} left at today's "
                   f"value{'s' if len(neutral) > 1 else ''}")
    if holds(c):
        reverted = dict.fromkeys(neutral, NO_EFFECT)
        result = c
    else:
        result = chosen
        for n in neutral if len(neutral) > 1 else []:
            p = dict(result.params) | {n: cur[n]}
            c1 = make(p, f"{trial_note} with {n.split(':', 1)[-1]} left at today's value")
            if holds(c1):
                reverted[n] = NO_EFFECT
                result = c1
        for n in neutral:
            reverted.setdefault(n, NEEDED)
    if result is not chosen:
        names = [n for n, v in reverted.items() if v == NO_EFFECT]
        result.trial = None
        result.source = chosen.trial
        result.note = (f"{trial_note} with {', '.join(x.split(':', 1)[-1] for x in names)} left at today's "
                       f"value{'s' if len(names) > 1 else ''} (no effect on {settings.primary}; still within budget)")
        d.checks.append(_row(space, result, "holds out of sample"))
    d._reverted = reverted  # type: ignore[attr-defined]
    return result


def changes(space: SearchSpace, params: Mapping[str, float], rec: Candidate | None,
            reverted: Mapping[str, str]) -> list[dict[str, Any]]:
    """One row per free parameter: today's value, the recommendation, the change and why."""
    rows = []
    for dim in space.dims:
        v = params.get(dim.name, dim.current)
        delta = float(v) - dim.current
        if reverted.get(dim.name) == NO_EFFECT:
            status = NO_EFFECT
        elif abs(delta) > 1e-12:
            status = "changed" if reverted.get(dim.name) != NEEDED else f"changed ({NEEDED})"
        else:
            status = "unchanged"
        rows.append({"name": dim.name, "unit": dim.unit, "current": dim.current, "new": v, "change": delta,
                     "change_pct": (delta / dim.current * 100.0) if dim.current else None,
                     "low": dim.low, "high": dim.high, "status": status,
                     "steward_limit": dim.limit.describe(dim.unit) if dim.limit else None})
    if rec is None:
        for r in rows:
            r["status"] = "no recommendation"
    return rows


def tradeoff(trials: list[FrozenTrial], current: Candidate, rec: Candidate | None,
             settings: ObjectiveSettings) -> list[dict[str, Any]]:
    """Non-dominated fully evaluated trials (efficiency up, upper CI end of risk down), by efficiency."""
    pts = []
    for t in trials:
        if not is_full(t) or t.user_attrs.get("risk_ci95_high") is None:
            continue
        pts.append({"trial": t.number, "efficiency": float(t.user_attrs.get("efficiency", 0.0)),
                    "borrow_capacity_usd": float(t.user_attrs.get("borrow_capacity_usd", 0.0)),
                    "risk_value": float(t.user_attrs["risk_value"]), "risk_ci95_high": float(t.user_attrs["risk_ci95_high"]),
                    "penalty_mean_share": t.user_attrs.get("penalty_mean_share"),
                    "within_budget": feasible(t), "change": float(t.user_attrs.get("change", 0.0))})

    def dom(a, b) -> bool:
        return (a["efficiency"] >= b["efficiency"] and a["risk_ci95_high"] <= b["risk_ci95_high"]
                and (a["efficiency"] > b["efficiency"] or a["risk_ci95_high"] < b["risk_ci95_high"]))

    front = [p for p in pts if not any(dom(q, p) for q in pts)]
    seen, out = set(), []
    for p in sorted(front, key=lambda p: (p["efficiency"], p["risk_ci95_high"], p["change"])):
        key = (p["efficiency"], p["risk_ci95_high"])
        if key in seen:
            continue
        seen.add(key)
        p["current"] = p["change"] == 0.0
        p["recommended"] = rec is not None and p["trial"] in (rec.trial, rec.source)
        out.append(p)
    return out


def cap_report(trials: list[FrozenTrial], space: SearchSpace, rec: Candidate | None) -> list[dict[str, Any]]:
    """Per free cap: the largest value among in-sample feasible fully evaluated trials, and the recommendation's."""
    out = []
    for d in space.caps():
        ok = [t for t in trials if is_full(t) and feasible(t) and d.name in t.params]
        top = max(ok, key=lambda t: t.params[d.name], default=None)
        out.append({"name": d.name, "unit": d.unit, "current": d.current, "search_range": [d.low, d.high],
                    "largest_within_budget": None if top is None else d.snap(top.params[d.name]),
                    "trial": None if top is None else top.number,
                    "recommended": None if rec is None else rec.params.get(d.name)})
    return out


def cost(current: Candidate, rec: Candidate | None) -> dict[str, Any] | None:
    """What the recommendation gives or costs in borrowing power against today's set."""
    if rec is None:
        return None
    de = rec.efficiency - current.efficiency
    dusd = rec.borrow_capacity_usd - current.borrow_capacity_usd
    return {"efficiency_points": de * 100.0, "borrow_capacity_usd": dusd,
            "borrow_capacity_pct": (dusd / current.borrow_capacity_usd * 100.0) if current.borrow_capacity_usd
            else math.nan}
