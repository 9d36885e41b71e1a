"""Plain terminal rendering (rich tables) for CLI results."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .engine.metrics import METRICS, capital_efficiency_text, efficiency_family, family_efficiency


def console() -> Console:
    # Wide fixed width when piped, so tables do not wrap into unreadable columns in logs.
    return Console(width=None if Console().is_terminal else 160, highlight=False)


def fmt_value(x: float, unit: str = "") -> str:
    if x != x:
        return "nan"
    if x in (float("inf"), float("-inf")):
        return "inf" if x > 0 else "-inf"
    if unit in ("tokens", "USD", "DAI", "usd") or abs(x) >= 1e5:
        return f"{x:,.0f}" if float(x).is_integer() else f"{x:,.2f}"
    return f"{x:g}"


def render_protocols(report: list[dict[str, Any]]) -> None:
    con = console()
    for entry in report:
        meta = " · ".join(str(entry[k]) for k in ("market", "as_of") if entry.get(k))
        table = Table(title=f"{entry['adapter']}: {entry['title']} ({len(entry['parameters'])} parameters)",
                      caption=meta, title_justify="left", caption_justify="left")
        for col, kw in (("parameter", {}), ("current", {"justify": "right"}), ("unit", {}),
                        ("bounds", {"justify": "right"}), ("as of", {})):
            table.add_column(col, **kw)
        for p in entry["parameters"]:
            table.add_row(p["name"], fmt_value(p["current"], p["unit"]), p["unit"],
                          f"[{fmt_value(p['lower'], p['unit'])}, {fmt_value(p['upper'], p['unit'])}]",
                          p["as_of"])
        con.print(table)
        con.print("invariants: " + "; ".join(entry["invariants"]))
        con.print()


#: how the terminal table writes a value of each display format (full digits; reports use the compact ones)
_TERMINAL_FORMATS = {"usd": "{:,.0f}", "share": "{:.3%}", "pct": "{:.2%}", "count": "{:,.1f}", "ratio": "{:.3f}",
                     "hours": "{:.2f}", "prob": "{:.3f}"}


def render_simulation(result: dict[str, Any]) -> None:
    """Metrics of one simulation as a table, every Monte Carlo metric the result holds, by its summary:
    tails (mean ± stderr, VaR 95/99 with CIs, ES 99 ± se, P(> 0)), mean ± stderr with p99 and its CI, and
    probabilities (P ± stderr with the Wilson 95 % interval); then the exact and analysis lines."""
    con = console()
    m = result["metrics"]
    title = (f"{result['scenario']}: {result['paths']} paths x {result['steps']} steps of {result['step_s'] / 60:g} min, "
             f"seed {result['seed']} ({result['engine']} engine, {result['elapsed_s']:.2f} s)")
    t = Table(title=title, title_justify="left")
    for col in ("metric", "mean ± stderr", "VaR 95 [95% CI]", "VaR 99 [95% CI]", "ES 99 ± se", "P(> 0)", "p99 [95% CI]"):
        t.add_column(col, justify="left" if col == "metric" else "right")

    def pm(v, fmt, key="mean", se="stderr"):
        return f"{fmt.format(v[key])} ± {fmt.format(v[se])}"

    def ci(v, key, fmt):
        lo, hi = v[f"{key}_ci95"]
        return f"{fmt.format(v[key])} [{fmt.format(lo)}, {fmt.format(hi)}]"

    specs = {s.name: s for s in METRICS}  # the metric declarations (optimizer.engine.metrics)
    for name, v in m.items():
        if not isinstance(v, dict) or "mean" not in v or name == "debt_repaid_usd":
            continue
        spec = specs.get(name)
        fmt = (_TERMINAL_FORMATS.get(spec.fmt, "{:,.3g}") if spec is not None
               else "{:,.0f}" if name.endswith("_usd") else "{:,.3g}")
        if "var_95" in v:  # a tail summary
            t.add_row(name, pm(v, fmt), ci(v, "var_95", fmt), ci(v, "var_99", fmt),
                      f"{fmt.format(v['es_99'])} ± {fmt.format(v['es_99_stderr'])}",
                      f"{v['p_positive']:.3f} ± {v['p_positive_stderr']:.3f}", "")
        elif "p99" in v:  # mean ± se and p99
            t.add_row(name, pm(v, fmt), "", "", "", "", ci(v, "p99", fmt))
        elif "ci95" in v:  # a probability per path with its Wilson interval
            lo, hi = v["ci95"]
            t.add_row(name, f"{v['mean']:.3f} ± {v['stderr']:.3f} [{lo:.3f}, {hi:.3f}]", "", "", "", "", "")
    con.print(t)
    if result.get("engine_reason"):  # auto fell back: say which venue rule the fast kernel does not mirror
        con.print(f"reference engine: {result['engine_reason']}")
    ce = m["capital_efficiency"]
    for fam in ("lending", "perp"):  # each family's figures: a share of collateral and a leverage multiple
        fig = family_efficiency(ce, fam)
        if fig is None or ("by_family" not in ce and fam != efficiency_family(m)):
            continue
        ratio = capital_efficiency_text(m, fam)
        if fam == "perp":  # margin as collateral, the notional it carries as borrowing power
            con.print(f"capital efficiency{' (perp venues)' if 'by_family' in ce else ''}: the margin "
                      f"${fig['collateral_usd']:,.0f} carries ${fig['borrow_capacity_usd']:,.0f} of notional at the "
                      f"maximum leverage = {ratio}; open notional ${fig['debt_usd']:,.0f} ({fig['utilisation']:.1%} of it)")
        else:
            con.print(f"capital efficiency{' (lending venues)' if 'by_family' in ce else ''}: borrowing power "
                      f"${fig['borrow_capacity_usd']:,.0f} on ${fig['collateral_usd']:,.0f} collateral = {ratio}; "
                      f"debt ${fig['debt_usd']:,.0f} ({fig['utilisation']:.1%} of the power)")
    cd = m.get("critical_drop")
    if cd:
        f = lambda x: "none below 99 %" if x is None else f"{x:.1%}"
        con.print(f"critical drop of {cd['asset']} (all non-stable assets at once): first liquidation at {f(cd['first_liquidation'])}, "
                  f"cascade (market drop >= {cd['cascade_amplification']}x exogenous) at {f(cd['cascade'])}")
    for name in ("critical_move", "perp_liquidation_clusters"):  # perp venues' analyses (their declared headlines)
        v = m.get(name)
        if isinstance(v, dict):
            spec = specs[name]
            parts = [f"{label} {'none' if v.get(key) is None else format(v[key], '.2%')}" for key, label in spec.headline]
            con.print(f"{spec.title}: " + "; ".join(parts))
