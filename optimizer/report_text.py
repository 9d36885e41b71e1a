"""Plain terminal rendering (rich tables) for CLI results."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from .engine.metrics import capital_efficiency_text, has_perp_metrics


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


def _pct_metrics() -> frozenset[str]:
    from .engine.metrics import METRICS

    return frozenset(s.name for s in METRICS if s.fmt == "pct" and s.monte_carlo)


def render_simulation(result: dict[str, Any]) -> None:
    """Metrics of one simulation as a table: estimate ± standard error, tails with their 95 % CIs."""
    con = console()
    m = result["metrics"]
    title = (f"{result['scenario']}: {result['paths']} paths x {result['steps']} steps of {result['step_s'] / 60:g} min, "
             f"seed {result['seed']} ({result['engine']} engine, {result['elapsed_s']:.2f} s)")
    t = Table(title=title, title_justify="left")
    for col in ("metric", "mean ± stderr", "VaR 95 [95% CI]", "VaR 99 [95% CI]", "ES 99 ± se", "P(> 0)", "p99 [95% CI]"):
        t.add_column(col, justify="left" if col == "metric" else "right")

    def pm(v, key="mean", se="stderr", fmt="{:,.0f}"):
        return f"{fmt.format(v[key])} ± {fmt.format(v[se])}"

    def ci(v, key, fmt="{:,.0f}"):
        lo, hi = v[f"{key}_ci95"]
        return f"{fmt.format(v[key])} [{fmt.format(lo)}, {fmt.format(hi)}]"

    for name, fmt in (("bad_debt_usd", "{:,.0f}"), ("bad_debt_share", "{:.3%}")):
        v = m[name]
        t.add_row(name, pm(v, fmt=fmt), ci(v, "var_95", fmt), ci(v, "var_99", fmt),
                  f"{fmt.format(v['es_99'])} ± {fmt.format(v['es_99_stderr'])}",
                  f"{v['p_positive']:.3f} ± {v['p_positive_stderr']:.3f}", "")
    fixed = (("liquidated_usd", "{:,.0f}"), ("liquidations", "{:,.1f}"), ("amplification", "{:.3f}"),
             ("time_to_stabilise_h", "{:.2f}"))
    # then every per-path ledger metric the scenario's venues declare (USD amounts), in their order
    pct = _pct_metrics()  # shares (forced-flow selling shares) in %, not as whole numbers
    declared = tuple((k, "{:.2%}" if k in pct else "{:,.0f}") for k, v in m.items()
                     if isinstance(v, dict) and "p99" in v and k not in dict(fixed) and k != "debt_repaid_usd")
    for name, fmt in (*fixed, *declared):
        v = m[name]
        t.add_row(name, pm(v, fmt=fmt), "", "", "", "", ci(v, "p99", fmt))
    con.print(t)
    ce = m["capital_efficiency"]
    if has_perp_metrics(m):  # a perp venue: margin as collateral, the notional it carries as borrowing power
        con.print(f"capital efficiency: the margin ${ce['collateral_usd']:,.0f} carries ${ce['borrow_capacity_usd']:,.0f} "
                  f"of notional at the maximum leverage = {capital_efficiency_text(m)}; open notional "
                  f"${ce['debt_usd']:,.0f} ({ce['utilisation']:.1%} of it)")
    else:
        con.print(f"capital efficiency: borrowing power ${ce['borrow_capacity_usd']:,.0f} on ${ce['collateral_usd']:,.0f} "
                  f"collateral = {ce['ratio']:.2%}; debt ${ce['debt_usd']:,.0f} ({ce['utilisation']:.1%} of the power)")
    cd = m.get("critical_drop")
    if cd:
        f = lambda x: "none below 99 %" if x is None else f"{x:.1%}"
        con.print(f"critical drop of {cd['asset']} (all non-stable assets at once): first liquidation at {f(cd['first_liquidation'])}, "
                  f"cascade (market drop >= {cd['cascade_amplification']}x exogenous) at {f(cd['cascade'])}")
