"""What a finished (or interrupted) study says: best set or Pareto front, changes, importance; text output."""

from __future__ import annotations

import math
import warnings
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from .objective import ObjectiveSettings, dominates, feasible, is_full
from .space import SearchSpace
from .storage import counts

MIN_TRIALS_FOR_IMPORTANCE = 8


def trial_record(t: FrozenTrial, space: SearchSpace, settings: ObjectiveSettings) -> dict[str, Any]:
    ua = t.user_attrs
    risk = {"metric": f"{settings.risk_metric} of bad_debt_share", "value": ua.get("risk_value"),
            "ci95": [ua.get("risk_ci95_low"), ua.get("risk_ci95_high")], "paths": ua.get("paths"),
            "budget": settings.budget,
            "feasible": ua.get("risk_ci95_high") is not None and ua["risk_ci95_high"] <= settings.budget}
    out = {"trial": t.number, "params": {n: t.params[n] for n in space.names if n in t.params},
           "efficiency": t.values[0] if t.values else ua.get("efficiency"), "risk": risk,
           "metrics": ua.get("metrics", {})}
    if settings.multi:
        out["values"] = {"efficiency": t.values[0], settings.objectives[1]: t.values[1]}
    return out


def changes(space: SearchSpace, params: dict[str, float]) -> list[dict[str, Any]]:
    rows = []
    for d in space.dims:
        v = params.get(d.name, d.current)
        delta = v - d.current
        rows.append({"name": d.name, "unit": d.unit, "current": d.current, "new": v, "change": delta,
                     "change_pct": (delta / d.current * 100.0) if d.current else None,
                     "low": d.low, "high": d.high,
                     "steward_limit": d.limit.describe(d.unit) if d.limit else None})
    return rows


def best_trial(study: optuna.Study) -> FrozenTrial | None:
    """Most efficient feasible fully evaluated trial; ties go to the lower risk, then the earlier trial."""
    cand = [t for t in study.get_trials(deepcopy=False) if is_full(t) and feasible(t)]
    if not cand:
        return None
    return max(cand, key=lambda t: (t.values[0], -(t.user_attrs.get("risk_value") or 0.0), -t.number))


def pareto(study: optuna.Study) -> list[FrozenTrial]:
    """Non-dominated fully evaluated trials, by efficiency; of equal points only the first trial."""
    full = [t for t in study.get_trials(deepcopy=False) if is_full(t)]
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
    full = [t for t in study.get_trials(deepcopy=False) if is_full(t)]
    if len(full) < MIN_TRIALS_FOR_IMPORTANCE:
        return {"note": f"needs at least {MIN_TRIALS_FOR_IMPORTANCE} fully evaluated trials, have {len(full)}"}
    if len(space.dims) < 2:
        return {"note": "one free parameter: nothing to compare"}
    out: dict[str, Any] = {"method": "PED-ANOVA (optuna.importance.get_param_importances)", "trials": len(full)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tmp = optuna.create_study(directions=settings.directions)
        tmp.add_trials(full)
        targets = {"efficiency": lambda t: t.values[0], "risk": lambda t: t.user_attrs["risk_value"]}
        for key, fn in targets.items():
            try:
                imp = optuna.importance.get_param_importances(tmp, target=fn, params=list(space.names))
                out[key] = {k: float(v) for k, v in imp.items()}
            except Exception as e:
                out[key] = None
                out.setdefault("note", f"{key}: {str(e).splitlines()[0]}"[:200])
    return out


def study_section(study: optuna.Study, storage_display: str, target: int, stopped: str,
                  stats: dict[str, Any] | None = None) -> dict[str, Any]:
    c = counts(study)
    trials = study.get_trials(deepcopy=False)
    sim = sum(1 for t in trials if (t.user_attrs.get("paths") or 0) > 0)
    path_units = sum(t.user_attrs.get("paths") or 0 for t in trials)
    out = {"storage": storage_display, "name": study.study_name, "trials": c["finished"], "target": target,
           "states": {k: c[k] for k in ("complete", "pruned", "fail", "running", "waiting")},
           "simulated_trials": sim, "full_trials": sum(1 for t in trials if is_full(t)),
           "infeasible_before_simulation": sum(1 for t in trials if "infeasible" in t.user_attrs),
           "dominated_unsimulated": sum(1 for t in trials if t.user_attrs.get("stopped") == "dominated"),
           "paths_simulated": path_units, "stopped": stopped,
           "dashboard": f"optuna-dashboard {storage_display}"}
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


def _pct(v: float | None, digits: int = 3) -> str:
    return "-" if v is None else f"{v * 100:.{digits}f} %"


def _risk_cell(r: dict[str, Any] | None) -> str:
    if not r or r.get("value") is None:
        return "-"
    lo, hi = r["ci95"]
    return f"{_pct(r['value'])} [{_pct(lo)}, {_pct(hi)}]"


def render(out: dict[str, Any]) -> None:
    import sys

    from rich.console import Console
    from rich.table import Table

    con = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
    st = out["study"]
    obj = out["objective"]
    con.print(f"[bold]cascade optimize[/bold] {out['scenario']}: study '{st['name']}' in {st['storage']} "
              f"({st['trials']} trials: {st['full_trials']} fully simulated, {st['simulated_trials']} simulated, "
              f"{st['infeasible_before_simulation']} infeasible before simulation, "
              f"{st['dominated_unsimulated']} skipped as dominated)")
    con.print(f"objective: {obj['description']}")
    best = out.get("best")
    cur = out["current"]
    if out.get("pareto"):
        t = Table(title="Pareto front (fully evaluated trials)")
        t.add_column("trial", justify="right")
        t.add_column("efficiency", justify="right")
        t.add_column(obj["objectives"][1] if len(obj["objectives"]) > 1 else "risk", justify="right")
        t.add_column("within budget")
        for name in out["space_names"]:
            t.add_column(_short(name, out["space_names"]), justify="right")
        for p in out["pareto"]:
            vals = p["values"]
            t.add_row(str(p["trial"]), _pct(vals["efficiency"], 2), _pct(list(vals.values())[1]),
                      "yes" if p["risk"]["feasible"] else "no", *[_fmt(p["params"].get(n)) for n in out["space_names"]])
        con.print(t)
    if best is None and not out.get("pareto"):
        con.print("[bold red]no feasible parameter set found[/bold red]: every fully evaluated candidate breaks the "
                  "risk budget (or none was evaluated yet); the current values are shown.")
    if best is not None:
        t = Table(title="best parameter set" + (" (joint, after per-asset search)" if out.get("per_asset") else ""))
        for col in ("parameter", "current", "best", "change", "search range", "steward limit"):
            t.add_column(col, justify="right" if col not in ("parameter",) else "left")
        for ch in best["changes"]:
            delta = ch["change"]
            pct = f" ({ch['change_pct']:+.2f} %)" if ch["change_pct"] is not None and delta else ""
            t.add_row(_short(ch["name"], out["space_names"]), _fmt(ch["current"], ch["unit"]), _fmt(ch["new"], ch["unit"]),
                      (f"{delta:+,.6g} {ch['unit']}{pct}" if delta else "unchanged"),
                      f"[{_fmt(ch['low'], ch['unit'])}, {_fmt(ch['high'], ch['unit'])}]", ch["steward_limit"] or "off")
        con.print(t)
    t = Table(title="metrics (bad debt as a share of debt; 95 % CIs)")
    t.add_column("metric")
    t.add_column("current", justify="right")
    if best is not None:
        t.add_column("best (in sample)", justify="right")
    oos = out.get("out_of_sample") or {}
    if oos.get("best"):
        t.add_column(f"best (out of sample, seed {oos['seed']})", justify="right")
    if oos.get("current"):
        t.add_column("current (out of sample)", justify="right")

    def row(label: str, get) -> None:
        cells = [get(cur)]
        if best is not None:
            cells.append(get(best))
        if oos.get("best"):
            cells.append(get(oos["best"]))
        if oos.get("current"):
            cells.append(get(oos["current"]))
        t.add_row(label, *cells)

    def m(d, *keys):
        x = d.get("metrics", {})
        for k in keys:
            x = x.get(k, {}) if isinstance(x, dict) else {}
        return x if x != {} else None

    row("capital efficiency", lambda d: _pct(m(d, "capital_efficiency", "ratio"), 2))
    row(f"{obj['risk_metric']} (constraint)", lambda d: _risk_cell(d.get("risk")))
    row("ES 99", lambda d: _pct(m(d, "bad_debt_share", "es_99")))
    row("mean bad debt", lambda d: _usd(m(d, "bad_debt_usd", "mean")))
    row("VaR 99 bad debt", lambda d: _usd(m(d, "bad_debt_usd", "var_99")))
    row("within budget", lambda d: "yes" if (d.get("risk") or {}).get("feasible") else "no")
    con.print(t)
    if out.get("per_asset"):
        t = Table(title="per-asset search, then the joint check")
        for col in ("group", "study", "efficiency", "risk", "within budget"):
            t.add_column(col)
        for g in out["per_asset"]:
            b = g.get("best")
            t.add_row(g["group"], g["study"], _pct(b["efficiency"], 2) if b else "-", _risk_cell(b["risk"]) if b else "-",
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
        for col in ("collateral", "sigma", "l (at beta)", "d (debt)", "beta", "Smart LTV", "optimised LTV",
                    "current LTV"):
            t.add_column(col, justify="left" if col == "collateral" else "right")
        for r in bl["collaterals"]:
            t.add_row(f"{r['adapter']}:{r['asset']}", f"{r['sigma']:.4f}", _usd(r["liquidity_usd"]), _usd(r["debt_usd"]),
                      _pct(r["beta"], 2), _pct(r["smart_ltv"], 2), _pct(r["optimised_ltv"], 2), _pct(r["current_ltv"], 2))
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
    st = out["study"]
    con.print(f"study: {st['storage']} (name '{st['name']}', {st['trials']}/{st['target']} trials, stopped: "
              f"{st['stopped']}); run the same command again to continue it (a larger --trials adds trials); "
              f"view it with `{st['dashboard']}`")
