"""The backtest report folder: ``report.md``, ``backtest.png``, ``result.json``, ``manifest.json``.

Rendered from :meth:`optimizer.backtest.run.BacktestResult.to_json` (the numbers of every table) and
written atomically with :func:`optimizer.report.writer.write_report_dir`, like ``cascade report`` and
``cascade compare`` folders.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..report.markdown import fmt_num, table
from ..report.writer import dumps, write_report_dir

FIGURE = "backtest.png"
LABELS = {"count": ("liquidations (events)", ""), "collateral_seized_usd": ("collateral seized", "USD"),
          "debt_repaid_usd": ("debt repaid", "USD"), "bad_debt_usd": ("bad debt", "USD")}
VENUE_FACTS = ("auctions_dealt", "auctions_won_at_first_bid", "zero_bid_auctions", "collateral_won_at_zero_bid_usd",
               "collateral_won_at_first_bid_usd", "keeper_gas_usd", "keeper_collateral_sold_usd", "unbacked_debt_usd", "realised_bad_debt_usd",
               "unrealised_bad_debt_usd", "horizon_exposure_usd", "inventory_usd", "initial_debt_usd")


def _pm(mean: Any, se: Any, unit: str = "") -> str:
    if mean is None:
        return "n/a"
    s = fmt_num(mean, unit)
    return s if se is None else f"{s} ± {fmt_num(se, unit)}"


def _rel(rel: Any, se: Any, documented: bool) -> str:
    if not documented:
        return "not in the record"
    if rel is None:
        return "n/a (actual is 0)"
    s = f"{rel * 100:+.1f} %"
    return s if se is None else f"{s} ± {se * 100:.1f} %"


def render(data: Mapping[str, Any], manifest: Mapping[str, Any]) -> str:
    """``report.md`` of a backtest."""
    sc, act, win = data["scenario"], data["actual"], data["window"]
    n = data["replicas"]
    lines = [f"# Backtest: {sc['name']}", "", sc.get("description", ""), "",
             f"Replay of `{sc['file']}` ({', '.join(p['adapter'] for p in sc['protocols'])}) from {win['start']} to "
             f"{win['end']}, compared with the record `{act['file']}` ({act['rows']} rows of the scenario's "
             f"protocols, {act['rows_outside_window']} of them outside the window and not compared) in bins of "
             f"{win['bin_s'] // 60} minutes. " + (
                 "The books are real (CSV): the replay is deterministic, one run, no Monte Carlo error."
                 if not data.get("synthetic_book", True) else
                 f"Simulated numbers are the mean over {n} replica(s) of the synthetic book (seeds seed, seed+1, ...)"
                 + (" ± the standard error of that mean." if n > 1 else
                    "; one replica has no Monte Carlo error (give replicas > 1).")), ""]
    if act.get("note"):
        lines += [f"**The record.** {act['note']}", ""]
    lines += ["## Totals", ""]
    rows = []
    for m, d in data["totals"].items():
        label, unit = LABELS[m]
        rows.append([label, _pm(d["simulated"], d["simulated_stderr"], unit), fmt_num(d["actual"], unit)
                     if d["documented"] else f"({fmt_num(d['actual'], unit)})",
                     _rel(d["relative_error"], d["relative_error_stderr"], d["documented"])])
    lines += [table(["metric", "simulated", "actual", "relative error"], rows, "lrrr"), "",
              "Total bad debt is the ledger's (written off + open underwater debt + horizon exposure); the other "
              "totals sum the events. Values in parentheses are in the record file but are not facts the record "
              "documents (see the note).", "", "## Timing", ""]
    rows = []
    for key, d in data["timing"].items():
        shift = "n/a" if d["shift_s"] is None else _pm(d["shift_s"] / 3600, None if d["shift_stderr_s"] is None
                                                       else d["shift_stderr_s"] / 3600) + " h"
        rel = ("not in the record" if not d["documented"] else
               "n/a" if d["relative_error"] is None else f"{d['relative_error'] * 100:+.1f} % of the window")
        rows.append([key.replace("_", " "), d["simulated"] or "none", d["actual"] or "none", shift, rel])
    lines += [table(["wave", "simulated", "actual", "shift", "relative error"], rows, "lllrr"), "",
              "First wave: the first event; largest wave: the start of the bin with the most collateral seized.", ""]
    facts = [(k, data["venue"][k]) for k in VENUE_FACTS if k in data["venue"]]
    if facts:
        rows = [[k, _pm(v["mean"], v["stderr"], "USD" if k.endswith("_usd") else "")] for k, v in facts]
        lines += ["## Venue facts (simulated)", "", table(["ledger field", "simulated"], rows, "lr"), ""]
    if act.get("reference"):
        rows = [[k, fmt_num(v)] for k, v in act["reference"].items()]
        lines += ["Documented figures to read beside them (from the scenario's `[backtest.reference]`):", "",
                  table(["figure", "documented"], rows, "lr"), ""]
    lines += ["## Through time", "", f"![simulated vs actual]({FIGURE})", ""]
    rows = []
    for r in data["per_bin"]:
        if not any(r[f"{m}_simulated"] or r[f"{m}_actual"] for m in LABELS):
            continue
        rows.append([r["bin_start"], _pm(r["count_simulated"], r["count_simulated_stderr"]), fmt_num(r["count_actual"]),
                     _pm(r["collateral_seized_usd_simulated"], r["collateral_seized_usd_simulated_stderr"], "USD"),
                     fmt_num(r["collateral_seized_usd_actual"], "USD"),
                     _pm(r["bad_debt_usd_simulated"], r["bad_debt_usd_simulated_stderr"], "USD"),
                     fmt_num(r["bad_debt_usd_actual"], "USD")])
    lines += [table(["bin", "events sim", "events actual", "collateral sim", "collateral actual", "bad debt sim",
                     "bad debt actual"], rows, "lrrrrrr") if rows else "No liquidation in the window.", ""]
    files = manifest.get("files_sha256", {})
    lines += ["## Reproducibility", "",
              f"- cascade {manifest.get('version')} (git commit {manifest.get('git_commit') or 'unknown'}), "
              f"Python {manifest.get('python')}",
              f"- command: `{manifest.get('command')}`",
              f"- seed {sc['seed']}, {n} replica(s), {data.get('engine')} engine",
              "- inputs (SHA-256 in `manifest.json`): " + ", ".join(f"`{k}`" for k in files),
              "- the numbers of every table: `result.json`", "",
              f"Generated {manifest.get('created_utc')}."]
    return "\n".join(lines) + "\n"


def write_backtest_report(out_dir: str | Path, result: Any, manifest: Mapping[str, Any]) -> Path:
    """Write the folder atomically (figure rendered in memory first), from the result's JSON: the same
    path ``cascade report`` takes, so a re-rendered folder is byte for byte the one written here."""
    return write_backtest_json(out_dir, result.to_json(), manifest)

def comparison_from_json(data: Mapping[str, Any]):
    """The replicas' mean :class:`~optimizer.backtest.compare.Comparison` rebuilt from a result's ``per_bin``
    rows (what ``cascade report`` re-renders the figure from, without simulating)."""
    import numpy as np

    from .compare import METRICS, Comparison

    rows = data["per_bin"]
    start = np.array([np.datetime64(r["bin_start"].rstrip("Z"), "s").astype(np.int64) for r in rows], np.int64)
    sim = {m: np.array([float(r[f"{m}_simulated"]) for r in rows]) for m in METRICS}
    act = {m: np.array([float(r[f"{m}_actual"]) for r in rows]) for m in METRICS}
    none = {"first_wave_s": None, "largest_wave_s": None}
    return Comparison(int(data["window"]["bin_s"]), start, sim, act, None, dict(none), dict(none))


def write_backtest_json(out_dir: str | Path, data: Mapping[str, Any], manifest: Mapping[str, Any]) -> Path:
    """Re-render a backtest folder from its ``result.json`` (``cascade report``): same layout and figure."""
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        png = comparison_from_json(data).plot(Path(tmp) / FIGURE, title=f"{data['scenario']['name']}: simulated "
                                              f"(mean of {data['replicas']}) vs actual liquidations").read_bytes()
    files = {"report.md": render(data, manifest), FIGURE: png, "result.json": dumps(dict(data)),
             "manifest.json": dumps(dict(manifest))}
    return write_report_dir(out_dir, files)
