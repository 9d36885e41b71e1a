"""Plain terminal rendering (rich tables) for CLI results."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table


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
