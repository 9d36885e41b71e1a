"""The few lines the report commands print: the verdict, the key numbers, where the report is."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..engine.metrics import format_value
from ..search.rows import efficiency_unit, format_efficiency


def _where(out_dir: Path) -> str:
    try:
        return str(out_dir.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        from .manifest import scrub

        return scrub(str(out_dir))


def summary_lines(data: Mapping[str, Any], out_dir: Path) -> list[str]:
    kind = data["kind"]
    lines: list[str] = []
    if kind in ("proposal", "comparison"):
        title = data["proposal"]["title"] if kind == "proposal" else f"comparison on {data['scenario']['name']}"
        lines.append(f"{title}")
        lines.append(f"  scenario: {data['scenario']['name']} ({data['scenario']['paths']} paths, seed "
                     f"{data['scenario']['seed']})")
        lines.append(f"  verdict: {data['verdict']['text']}")
        if kind == "proposal":
            im = data["immediate"]["newly_liquidatable"]
            lines.append(f"  liquidatable at once by the change: {im['positions']:,} positions, debt "
                         f"{format_value(im['debt_usd'], 'usd')}")
            mism = sum(1 for s in data["specification"] if s["mismatch"])
            if mism:
                lines.append(f"  {mism} 'before' value(s) differ from the snapshot in use (the proposal's are the "
                             "baseline)")
            b = data["proposed"].get("budget")
            if b:
                from .markdown import budget_metric

                prob, name = budget_metric(b)
                what, unit = (f"P({name}) per path", "prob") if prob else (b["metric"], "share")
                lines.append(f"  risk budget ({what} <= {format_value(b['budget'], unit)}): proposed "
                             f"{'within' if b['feasible'] else 'OVER'} (upper 95 % CI {format_value(b['ci95'][1], unit)})")
    elif kind == "simulation":
        m = data["metrics"]["bad_debt_usd"]
        lines.append(f"simulation {data['scenario']}: mean bad debt {format_value(m['mean'], 'usd')} ± "
                     f"{format_value(m['stderr'], 'usd')}")
    elif kind == "study":
        rep = data["search"]
        v = rep.get("verdict")
        if v:  # the same verdict cascade optimize printed
            lines.append(f"study {rep.get('study', {}).get('name')}: {str(v.get('status', '')).upper()}: {v.get('message')}")
        else:  # a result stored before verdicts existed
            best = rep.get("best")
            lines.append(f"study {rep.get('study', {}).get('name')}: "
                         + ("no feasible set" if not best else
                            f"best efficiency {format_efficiency(best['efficiency'], efficiency_unit(rep.get('objective')))}"))
    elif kind == "backtest":
        t = (data.get("totals") or {}).get("collateral_seized_usd") or {}
        if t.get("simulated") is not None:
            lines.append(f"backtest {data['scenario']['name']}: collateral seized {format_value(t['simulated'], 'usd')} "
                         f"simulated vs {format_value(t.get('actual'), 'usd')} actual")
    lines.append(f"report: {_where(out_dir) + '/report.md'}")
    return lines


def print_summary(data: Mapping[str, Any], out_dir: Path, *, err: bool = False) -> None:
    import click

    for line in summary_lines(data, out_dir):
        click.echo(line, err=err)
