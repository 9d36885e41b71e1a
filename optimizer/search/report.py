"""What a finished (or interrupted) study says: best set or Pareto front, changes, importance; text output."""

from __future__ import annotations

import math
import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from .objective import METRICS_ATTR, ObjectiveSettings, dominates, feasible, is_full
from .result import metric_columns
from .rows import (
    capacity_noun,
    efficiency_change,
    efficiency_unit,
    format_efficiency,
    format_pct,
    risk_cell,
    table_rows,
)
from .space import SearchSpace
from .storage import counts

MIN_TRIALS_FOR_IMPORTANCE = 8


def trial_record(t: FrozenTrial, space: SearchSpace, settings: ObjectiveSettings) -> dict[str, Any]:
    ua = t.user_attrs
    risk = {"metric": f"{settings.risk_metric} of bad_debt_share", "value": ua.get("risk_value"),
            "ci95": [ua.get("risk_ci95_low"), ua.get("risk_ci95_high")], "paths": ua.get("paths"),
            "budget": settings.budget,
            "feasible": ua.get("risk_ci95_high") is not None and ua["risk_ci95_high"] <= settings.budget}
    out = {"trial": t.number, "params": space.trial_params(t.params),
           "efficiency": ua.get("efficiency"), "borrow_capacity_usd": ua.get("borrow_capacity_usd"), "risk": risk,
           "metrics": t.system_attrs.get(METRICS_ATTR) or ua.get("metrics", {}), "outcome": ua.get("outcome")}
    if settings.multi and t.values and len(t.values) > 1:
        out["values"] = {settings.primary: ua.get("efficiency") if settings.primary == "efficiency"
                         else ua.get("borrow_capacity_usd"), settings.objectives[1]: t.values[1]}
    return out


def changes(space: SearchSpace, params: dict[str, float]) -> list[dict[str, Any]]:
    from .decide import changes as _changes

    return _changes(space, params, None, {})


def best_trial(study: optuna.Study, tolerance: float = 0.0) -> FrozenTrial | None:
    """The first trial of the steward order: most efficient feasible fully evaluated; among equally efficient
    ones the smaller change from today's values, then the lower risk (:func:`decide.steward_order`)."""
    from .decide import steward_order

    settings = ObjectiveSettings(objectives=tuple(_primary(study)))
    order = steward_order(study.get_trials(deepcopy=False), settings, tolerance)
    return order[0] if order else None


def _primary(study: optuna.Study) -> list[str]:
    names = study.metric_names or ["efficiency"]
    return [names[0]]


def pareto(study: optuna.Study) -> list[FrozenTrial]:
    """Non-dominated fully evaluated trials, by efficiency; of equal points only the first trial."""
    full = [t for t in study.get_trials(deepcopy=False) if is_full(t) and t.values and len(t.values) > 1]
    pts = {t.number: (t.values[0], t.values[1]) for t in full}
    front, seen = [], set()
    for t in full:
        p = pts[t.number]
        if p not in seen and not any(dominates(pts[o.number], p) for o in full):
            seen.add(p)
            front.append(t)
    return sorted(front, key=lambda t: (t.values[0], t.number))


def importance(study: optuna.Study, space: SearchSpace, settings: ObjectiveSettings) -> dict[str, Any]:
    """PED-ANOVA importances (optuna's default) over the fully evaluated trials, for efficiency and risk."""
    import copy

    from optuna.trial import TrialState

    full = [t for t in study.get_trials(deepcopy=False) if is_full(t) and t.user_attrs.get("risk_value") is not None]
    if len(full) < MIN_TRIALS_FOR_IMPORTANCE:
        return {"note": f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} fully evaluated trials, have {len(full)}"}
    if len(space.dims) < 2:
        return {"note": "one free parameter: nothing to compare"}
    out: dict[str, Any] = {"method": "PED-ANOVA (optuna.importance.get_param_importances)", "trials": len(full)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmp = optuna.create_study(directions=settings.directions)
        copies = []
        for t in full:  # over-budget trials are PRUNED in the study; here every full trial counts
            c = copy.deepcopy(t)
            c.state = TrialState.COMPLETE
            c.values = [float(t.user_attrs.get("efficiency", 0.0))] + list((t.values or [0.0, 0.0])[1:])
            copies.append(c)
        tmp.add_trials(copies)
        targets = {"efficiency": lambda t: t.user_attrs["efficiency"], "risk": lambda t: t.user_attrs["risk_value"]}
        for key, fn in targets.items():
            try:
                imp = optuna.importance.get_param_importances(tmp, target=fn, params=list(space.names))
                out[key] = {k: float(v) for k, v in imp.items()}
            except Exception as e:
                out[key] = None
                out.setdefault("note", f"{key}: {str(e).splitlines()[0]}"[:200])
    return out


def dashboard_command(storage_display: str, storage_url: str | None) -> str:
    """A command line that opens the study in optuna-dashboard, safe to paste (no password in it)."""
    import shlex

    from ..redact import redact_url

    if storage_url:
        import re

        shown = redact_url(storage_url)
        hint = "  # password from PGPASSWORD or ~/.pgpass" if shown != storage_url else ""
        # drop what was redacted, so the line runs as it is and libpq finds the password itself
        shown = shown.replace(":***@", "@")
        shown = re.sub(r"([?&])[^=&#]+=\*\*\*(&|$)", lambda m: m.group(1) if m.group(2) else "", shown).rstrip("?&")
        return f"optuna-dashboard {shlex.quote(shown)}{hint}"
    return f"optuna-dashboard {shlex.quote(storage_display)}"


def study_section(study: optuna.Study, storage_display: str, target: int, stopped: str,
                  stats: dict[str, Any] | None = None, storage_url: str | None = None) -> dict[str, Any]:
    c = counts(study)
    trials = study.get_trials(deepcopy=False)
    sim = sum(1 for t in trials if (t.user_attrs.get("paths") or 0) > 0)
    path_units = sum(t.user_attrs.get("paths") or 0 for t in trials)
    finished = max(c["finished"], 1)
    rejected = sum(1 for t in trials if "infeasible" in t.user_attrs)
    out = {"storage": storage_display, "name": study.study_name, "trials": c["finished"], "target": target,
           "states": {k: c[k] for k in ("complete", "pruned", "fail", "running", "waiting")},
           "simulated_trials": sim, "full_trials": sum(1 for t in trials if is_full(t)),
           "within_budget_trials": sum(1 for t in trials if is_full(t) and feasible(t)),
           "infeasible_before_simulation": rejected,
           "rejected_before_simulation_share": rejected / finished,
           "dominated_unsimulated": sum(1 for t in trials if t.user_attrs.get("stopped") == "dominated"),
           "paths_simulated": path_units, "stopped": stopped,
           "dashboard": dashboard_command(storage_display, storage_url)}
    if stats:
        out["this_run"] = stats
    return out


# ------------------------------------------------------------------------------------------------
# Text
# ------------------------------------------------------------------------------------------------


def _fmt(v: Any, unit: str = "") -> str:
    if v is None:
        return "-"
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)
    if unit in ("bps", "tokens", "s") or (isinstance(v, float) and float(v).is_integer() and abs(v) >= 10):
        return f"{v:,.0f}"
    return f"{v:.6g}"


def _usd(v: float | None) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return "unlimited"
    for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"${v / div:.3g}{suf}"
    return f"${v:.3g}"


def _short(name: str, names: list[str]) -> str:
    """Drop the adapter prefix when every parameter has the same one."""
    prefixes = {n.split(":", 1)[0] for n in names}
    return name.split(":", 1)[-1] if len(prefixes) == 1 else name




def render(out: dict[str, Any]) -> None:
    """The result of ``cascade optimize`` as text on stdout (``out``: :meth:`SearchResult.to_json`)."""
    import sys

    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    st = out["study"]
    obj = out["objective"]
    unit = efficiency_unit(obj)
    names = out["space_names"]
    con.print(f"[bold]cascade optimize[/bold] {out['scenario']}: study '{st['name']}' in {st['storage']} "
              f"({st['trials']} trials: {st['full_trials']} fully simulated, {st['simulated_trials']} simulated, "
              f"{st['infeasible_before_simulation']} rejected before simulation, "
              f"{st['dominated_unsimulated']} skipped as less efficient than a feasible set)")
    con.print(f"objective: {obj['description']}")
    sets = ", ".join(f"seed {p['seed']} ({p['paths']} paths)" for p in out.get("path_sets") or [])
    con.print(f"mode: {out.get('mode')} ({out.get('mode_reason')}); search paths: {sets}")
    v = out["verdict"]
    colour = "green" if v["exit_code"] == 0 else "red"
    con.print(f"[bold {colour}]{v['status'].upper()}[/bold {colour}]: {v['message']}")
    for note in v.get("notes") or []:
        con.print(f"  note: {note}")
    rec = out.get("recommendation")
    if out.get("pareto"):
        t = Table(title="Pareto front (fully evaluated trials)")
        t.add_column("trial", justify="right")
        t.add_column("efficiency", justify="right")
        t.add_column(obj["objectives"][1] if len(obj["objectives"]) > 1 else "risk", justify="right")
        t.add_column("within budget")
        for name in names:
            t.add_column(_short(name, names), justify="right")
        for p in out["pareto"]:
            vals = list((p.get("values") or {}).values())
            t.add_row(str(p["trial"]), format_efficiency(p.get("efficiency"), unit), format_pct(vals[1] if len(vals) > 1 else None),
                      "yes" if p["risk"]["feasible"] else "no", *[_fmt(p["params"].get(n)) for n in names])
        con.print(t)
    shown = rec if rec is not None else None
    if shown is not None:
        title = ("recommendation: keep today's set" if shown.get("unchanged") else
                 "cheapest fix" if out.get("mode") == "repair" else "recommendation")
        if shown.get("note") and not shown.get("unchanged"):
            title += f" ({shown['note']})"
        elif shown.get("trial") is not None:
            title += f" (trial {shown['trial']})"
        t = Table(title=title)
        for col in ("parameter", "today", "recommended", "change", "why", "search range", "steward limit"):
            t.add_column(col, justify="left" if col in ("parameter", "why") else "right")
        for ch in shown["changes"]:
            delta = ch["change"]
            pct = f" ({ch['change_pct']:+.2f} %)" if ch["change_pct"] is not None and delta else ""
            t.add_row(_short(ch["name"], names), _fmt(ch["current"], ch["unit"]), _fmt(ch["new"], ch["unit"]),
                      (f"{delta:+,.6g} {ch['unit']}{pct}" if delta else "-"), ch["status"],
                      f"[{_fmt(ch['low'], ch['unit'])}, {_fmt(ch['high'], ch['unit'])}]", ch["steward_limit"] or "off")
        con.print(t)
        c = shown.get("cost")
        if c and not shown.get("unchanged"):
            con.print(f"{capacity_noun(unit)}: {efficiency_change(c['efficiency_points'], unit)}, "
                      f"{_signed_usd(c['borrow_capacity_usd'])} ({c['borrow_capacity_pct']:+.2f} %) against today's set")
    elif out.get("best") is not None:
        b = out["best"]
        con.print(f"[red]in-sample winner (trial {b['trial']}) and runners-up fail out of sample: not a "
                  "recommendation[/red]")

    t = Table(title="metrics (95 % CIs; shares of debt where marked)")
    t.add_column("metric")
    cols = metric_columns(out)
    for label, _ in cols:
        t.add_column(label, justify="right")
    for label, cells in table_rows(out, cols):
        t.add_row(label, *cells)
    con.print(t)

    checks = out.get("out_of_sample_checks") or []
    if checks and (len(checks) > 1 or not checks[0]["out_of_sample"]["holds"]):
        t = Table(title="out-of-sample checks (in the order made)")
        for col in ("set", "efficiency", "risk in sample", "risk out of sample", "result"):
            t.add_column(col, justify="left" if col in ("set", "result") else "right")
        for c in checks:
            t.add_row(f"trial {c['trial']}" if c["trial"] is not None else "reverted set", format_efficiency(c["efficiency"], unit),
                      risk_cell(c["in_sample"].get("risk")), risk_cell((c["out_of_sample"] or {}).get("risk")),
                      c["status"])
        con.print(t)
    front = out.get("tradeoff") or []
    if front and len(front) > 1:
        t = Table(title="trade-off curve: the most efficient set at each level of risk (fully evaluated trials)")
        for col in ("trial", "efficiency", f"{obj['risk_metric']}", "upper 95 % CI", "within budget", ""):
            t.add_column(col, justify="right")
        for p in front[-12:]:
            mark = ", ".join(x for x, on in (("today", p.get("current")),
                                             ("recommended" + (" (reverted)" if rec and rec.get("trial") is None
                                                               else ""), p.get("recommended"))) if on)
            t.add_row(str(p["trial"]), format_efficiency(p["efficiency"], unit), format_pct(p["risk_value"]), format_pct(p["risk_ci95_high"]),
                      "yes" if p["within_budget"] else "no", mark)
        con.print(t)
    for cap in out.get("caps") or []:
        largest = cap["largest_within_budget"]
        con.print(f"{_short(cap['name'], names)}: the largest cap within budget found is "
                  f"{_fmt(largest, cap['unit'])} {cap['unit']} (trial {cap['trial']}; today {_fmt(cap['current'], cap['unit'])},"
                  f" searched [{_fmt(cap['search_range'][0], cap['unit'])}, {_fmt(cap['search_range'][1], cap['unit'])}])"
                  if largest is not None else f"{_short(cap['name'], names)}: no cap within the search range is within budget")
    if out.get("per_asset"):
        t = Table(title="per-asset search, then the joint check")
        for col in ("group", "study", "efficiency", "risk", "within budget"):
            t.add_column(col)
        for g in out["per_asset"]:
            b = g.get("best")
            t.add_row(g["group"], g["study"], format_efficiency(b["efficiency"], unit) if b else "-", risk_cell(b["risk"]) if b else "-",
                      ("yes" if b["risk"]["feasible"] else "no") if b else "none feasible")
        con.print(t)
        j = out["joint"]
        for it in j["interactions"]:
            con.print(f"  {it['metric']}: joint change {it['joint_change']:+.6g} vs sum of per-asset changes "
                      f"{it['sum_of_changes']:+.6g} (interaction {it['interaction']:+.6g})")
        if not j["risk"]["feasible"]:
            con.print("  [bold red]the joint set breaks the budget[/bold red] although each asset's set is within it")
    bl = out.get("baseline") or {}
    if bl.get("collaterals"):
        t = Table(title=f"baseline: Smart LTV = exp(-c sigma sqrt(d/l)) - beta, c = {bl['c']:g}, "
                        f"sigma over {bl['horizon_h']:g} h")
        for col in ("collateral", "sigma", "l (at beta)", "d (debt)", "beta", "Smart LTV", "recommended LTV",
                    "current LTV"):
            t.add_column(col, justify="left" if col == "collateral" else "right")
        for r in bl["collaterals"]:
            t.add_row(f"{r['adapter']}:{r['asset']}", f"{r['sigma']:.4f}", _usd(r["liquidity_usd"]), _usd(r["debt_usd"]),
                      format_pct(r["beta"], 2), format_pct(r["smart_ltv"], 2), format_pct(r["optimised_ltv"], 2), format_pct(r["current_ltv"], 2))
        con.print(t)
        for r in bl["collaterals"]:
            if r["note"]:
                con.print(f"  note: {r['adapter']}:{r['asset']}: {r['note']}")
    imp = out.get("importance") or {}
    for key in ("efficiency", "risk"):
        if imp.get(key):
            top = ", ".join(f"{k.split(':', 1)[-1]} {v:.2f}" for k, v in list(imp[key].items())[:6])
            con.print(f"parameter importance for {key}: {top}")
    if imp.get("note"):
        con.print(f"parameter importance: {imp['note']}")
    elif imp.get("trials"):
        con.print(f"  (PED-ANOVA over {imp['trials']} fully evaluated trials; noisy with few trials)")
    con.print(f"study: {st['storage']} (name '{st['name']}', {st['trials']}/{st['target']} trials, stopped: "
              f"{st['stopped']}); run the same command again to continue it (a larger --trials adds trials)")
    con.print(f"dashboard: {st['dashboard']}")


def _signed_usd(v: float | None) -> str:
    if v is None:
        return "-"
    return ("+" if v >= 0 else "-") + _usd(abs(v))
