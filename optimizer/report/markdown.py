"""``report.md`` from a result's JSON: forum-ready markdown (GitHub-flavoured tables, PNG figures).

Every number in a table is formatted from the JSON the report folder stores beside it
(``result.json``), with the metric declarations' formats (:data:`optimizer.engine.metrics.METRICS`):
the risk tables iterate that one list, so a new metric is a new row without touching this file.
The layout follows what reviewers know from Aave's proposal diff reports and risk providers' posts:
a one-line verdict, Simple Summary, Specification (before -> after), risk deltas, figures,
assumptions, the raw JSON diff, and how to reproduce.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

from ..engine.metrics import METRICS, format_delta, format_value, metric

Figure = tuple[str, str]  # (file name, caption)


# ------------------------------------------------------------------------------------------------
# Building blocks
# ------------------------------------------------------------------------------------------------


def cell(x: Any) -> str:
    s = "" if x is None else str(x)
    return s.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], align: str | None = None) -> str:
    """A GitHub-flavoured markdown table; ``align`` is one letter per column (l, r, c)."""
    align = align or "l" + "r" * (len(headers) - 1)
    sep = {"l": ":---", "r": "---:", "c": ":---:"}
    out = ["| " + " | ".join(cell(h) for h in headers) + " |",
           "| " + " | ".join(sep[a] for a in align) + " |"]
    for r in rows:
        if len(r) != len(headers):
            raise ValueError(f"row has {len(r)} cells, table {len(headers)}: {r}")
        out.append("| " + " | ".join(cell(c) for c in r) + " |")
    return "\n".join(out)


def figure(fig: Figure | None, number: int) -> str:
    if fig is None:
        return ""
    name, caption = fig
    return f"![{cell(caption)}]({name})\n\n*Figure {number}: {caption}*"


def fmt_num(x: Any, unit: str = "") -> str:
    """A parameter value in its governance unit (``8,300 bps``, ``0.93``, ``1.13``, ``$20M``)."""
    if x is None:
        return "-"
    if isinstance(x, bool):
        return str(x).lower()
    if not isinstance(x, (int, float)) or (isinstance(x, float) and not math.isfinite(x)):
        return str(x)
    u = unit.strip()
    if u.upper() in ("USD", "USDC", "DAI") and abs(x) >= 1000:
        return f"{x:,.0f} {u}"
    if float(x).is_integer() and abs(x) >= 1:
        return f"{x:,.0f}" + (f" {u}" if u else "")
    return f"{x:.6g}" + (f" {u}" if u else "")


def fmt_change(d: float | None, pct: float | None, unit: str) -> str:
    if d is None:
        return "-"
    if d == 0:
        return "unchanged"
    s = fmt_num(abs(d), unit)
    out = ("+" if d > 0 else "-") + s
    if pct is not None and math.isfinite(pct):
        out += f" ({pct:+.2f} %)"
    return out


def _stat_cell(entry: Mapping[str, Any] | None, key: str, fmt: str) -> str:
    """A Monte Carlo statistic with its error: ``mean ± se``, ``VaR [CI]``, ``ES ± se``, ``P ± se``."""
    if not entry or key not in entry:
        return "-"
    v = entry[key]
    if key in ("var_95", "var_99", "p99"):
        lo, hi = entry[f"{key}_ci95"]
        return f"{format_value(v, fmt)} [{format_value(lo, fmt)}, {format_value(hi, fmt)}]"
    if key == "p_positive":
        return f"{v:.3f} ± {entry['p_positive_stderr']:.3f}"
    se = entry.get("es_99_stderr" if key == "es_99" else "stderr")
    return f"{format_value(v, fmt)} ± {format_value(se, fmt)}" if se is not None else format_value(v, fmt)


def _exact_cell(entry: Any, key: str, fmt: str) -> str:
    if not isinstance(entry, Mapping):
        return "-"
    v = entry.get(key)
    if v is None:
        return "none up to 99 %" if key in ("first_liquidation", "cascade") else "-"
    return format_value(v, fmt)


def _delta_cell(d: Mapping[str, Any] | None, fmt: str) -> str:
    if not d:
        return "-"
    if d["delta"] == 0 and d["stderr"] == 0:
        return "0 (same on every path)"
    lo, hi = d["ci95"]
    mark = " *" if d.get("significant") else ""
    return f"{format_delta(d['delta'], fmt)} [{format_delta(lo, fmt)}, {format_delta(hi, fmt)}]{mark}"


def _exact_delta_cell(a: Any, b: Any, key: str, fmt: str) -> str:
    if not isinstance(a, Mapping) or not isinstance(b, Mapping):
        return "-"
    x, y = a.get(key), b.get(key)
    if x is None or y is None:
        return "-" if x == y else "n/a (one side has none)"
    d = y - x
    if fmt == "pct":
        return "±0.00 pts" if d == 0 else f"{d * 100:+.2f} pts"
    return format_delta(d, fmt)


def risk_table(columns: Sequence[tuple[str, Mapping[str, Any] | None]], deltas: Mapping[str, Any] | None,
               delta_label: str, extra: Sequence[tuple[str, Mapping[str, Any] | None, Mapping[str, Any] | None]] = ()
               ) -> str:
    """Rows = the declared metrics marked ``table`` (their table statistics); columns = parameter sets.

    ``columns``: (label, metrics) per set, the first being the reference; ``deltas``: paired differences
    of the second against the first (shown after it); ``extra``: further (label, metrics, deltas vs the
    first) columns, each with its own delta column.
    """
    heads = ["metric", columns[0][0]]
    for lab, _ in columns[1:]:
        heads += [lab, delta_label]
    for lab, _, _ in extra:
        heads += [lab, f"{lab} - {columns[0][0]}"]
    rows = []
    ref = columns[0][1] or {}
    for spec in METRICS:
        if not spec.table:
            continue
        if spec.monte_carlo and spec.name not in ref and not any(spec.name in (m or {}) for _, m in columns[1:]):
            continue  # a metric of venues the scenario does not have (perp metrics on a lending book)
        for key, lab in spec.table_rows:
            if spec.monte_carlo:
                fmt = "prob" if key == "p_positive" else spec.fmt
                unit = "probability" if key == "p_positive" else spec.unit
                label = f"{spec.title}: {lab} ({unit})" if spec.summary == "tail" else (
                    f"{spec.title} ({unit})" if lab == "mean" else f"{spec.title}: {lab} ({unit})")
                r = [label, _stat_cell(ref.get(spec.name), key, spec.fmt)]
                for _lab, m in columns[1:]:
                    r += [_stat_cell((m or {}).get(spec.name), key, spec.fmt),
                          _delta_cell(((deltas or {}).get(spec.name) or {}).get(key), fmt)]
                for _lab, m, dd in extra:
                    r += [_stat_cell((m or {}).get(spec.name), key, spec.fmt),
                          _delta_cell(((dd or {}).get(spec.name) or {}).get(key), fmt)]
            else:
                if spec.name not in ref and not any(spec.name in (m or {}) for _, m in columns[1:]):
                    continue
                fmt, unit = spec.display(ref or next((m for _, m in columns[1:] if m), None))
                r = [f"{lab} ({unit})", _exact_cell(ref.get(spec.name), key, fmt)]
                for _lab, m in columns[1:]:
                    r += [_exact_cell((m or {}).get(spec.name), key, fmt),
                          _exact_delta_cell(ref.get(spec.name), (m or {}).get(spec.name), key, fmt)]
                for _lab, m, _dd in extra:
                    r += [_exact_cell((m or {}).get(spec.name), key, fmt),
                          _exact_delta_cell(ref.get(spec.name), (m or {}).get(spec.name), key, fmt)]
            rows.append(r)
    return table(heads, rows)


def budget_metric(budget: Mapping[str, Any]) -> tuple[bool, str]:
    """``(is a probability, risk metric name)`` of a budget check (``compare.budget_check``): its ``metric``
    reads ``"var_99 of bad_debt_share"`` for a statistic of bad debt / debt and ``"probability of p_adl"``
    for a perp venue's probability risk (P(ADL), P(insurance fund depleted))."""
    from ..scenario.config import PROBABILITY_RISKS

    name = str(budget.get("metric", ""))
    for prefix in ("probability of ",):
        if name.startswith(prefix):
            return True, name[len(prefix):]
    name = name.replace("_of_bad_debt_share", "").replace(" of bad_debt_share", "")
    return name in PROBABILITY_RISKS, name


def budget_line(budgets: Sequence[tuple[str, Mapping[str, Any] | None]]) -> str:
    b0 = next((b for _, b in budgets if b), None)
    if b0 is None:
        return "The scenario sets no risk budget (`[optimize]` table), so no set is judged against one."
    prob, metric_name = budget_metric(b0)
    unit = "prob" if prob else "share"
    what = (f"the probability {metric_name} per path (Wilson 95 % interval)" if prob
            else f"{metric_name} of bad debt / debt")
    parts = []
    for lab, b in budgets:
        if b:
            parts.append(f"{lab} {'within' if b['feasible'] else '**over**'} "
                         f"({format_value(b['value'], unit)}, upper 95 % CI end {format_value(b['ci95'][1], unit)})")
    return (f"Risk budget of the scenario: {what}, judged at the upper end of its 95 % CI, "
            f"at most {format_value(b0['budget'], unit)}: " + "; ".join(parts) + ".")


def reproducibility(manifest: Mapping[str, Any], folder_files: Sequence[str] = ("result.json", "manifest.json")) -> str:
    files = manifest.get("files_sha256", {})
    lines = ["## Reproducibility", "",
             f"- cascade {manifest.get('version')} (git commit {manifest.get('git_commit') or 'unknown'}), "
             f"Python {manifest.get('python')}",
             f"- command: `{manifest.get('command')}`",
             f"- seed {manifest.get('seed')}, {manifest.get('paths')} paths, "
             + (f"{manifest['engine']} engine" if manifest.get("engine") else "engine not recorded"),
             "- inputs (SHA-256 in `manifest.json`): " + ", ".join(f"`{k}`" for k in files),
             f"- the numbers of every table: `{folder_files[0]}`; run `cascade report <this folder>` to re-render "
             "it without simulating",
             "",
             f"Generated {manifest.get('created_utc')}."]
    return "\n".join(lines)


def _assumptions(lines: Sequence[str]) -> str:
    return "## Assumptions and limitations\n\n" + "\n".join(f"- {x}" for x in lines)


def _book_text(b: Mapping[str, Any]) -> str:
    if "open_interest_usd" in b:  # a perp venue's book
        return (f"{b['adapter']}: {b['positions']:,} positions ({b['kind']}), open interest "
                + ", ".join(f"{k} {format_value(v, 'usd')}" for k, v in b["open_interest_usd"].items()))
    return (f"{b['adapter']}: {b['positions']:,} positions ({b['kind']}, {b['debt_mode']}), collateral "
            + ", ".join(f"{a} {format_value(v, 'usd')}" for a, v in b["collateral_usd"].items())
            + ", debt " + ", ".join(f"{a} {format_value(v, 'usd')}" for a, v in b["debt_usd"].items()))


def _scenario_para(info: Mapping[str, Any]) -> str:
    books = "; ".join(_book_text(b) for b in info["books"])
    shocks = [f"{a} -{s.get('drop', 0) * 100:g} % at {s.get('at_h', 0):g} h" for a, d in info["assets"].items()
              for s in d.get("shocks", [])]
    return (f"**{info['name']}** (`{info['file']}`): {info['description']}. {info['paths']} paths x {info['steps']} "
            f"steps of {info['step_s'] / 60:g} min ({info['horizon_h']:g} h), seed {info['seed']}, "
            f"{info['engine']} engine"
            + (f" ({info['engine_reason']})" if info.get("engine_reason") else "") + f". Book: {books}."
            + (f" Scheduled shocks: {', '.join(shocks)}." if shocks else ""))


def _eff_line(eff: Mapping[str, Any], who: str) -> str:
    parts = [_eff_sentence(eff, who, eff.get("family", "lending"), with_family="by_family" in eff)]
    for fam, d in (eff.get("by_family") or {}).items():  # the other family of a lending + perp scenario
        if fam != eff.get("family", "lending"):
            parts.append(_eff_sentence(d, who, fam, with_family=True))
    return " ".join(parts)


def _eff_sentence(eff: Mapping[str, Any], who: str, family: str, with_family: bool) -> str:
    """One family's capital-efficiency change: a share of collateral, or a perp venue's leverage multiple."""
    venues = f" of the {family} venues" if with_family else ""
    if family == "perp":
        return (f"Capital efficiency{venues} (notional the margin carries at the maximum leverage / margin at t0, "
                f"not an estimate): {format_value(eff['current_ratio'], 'leverage')} -> "
                f"{format_value(eff['candidate_ratio'], 'leverage')} "
                f"({format_delta(eff['delta_points'] / 100.0, 'leverage')}); notional capacity "
                f"{format_value(eff['current_borrow_capacity_usd'], 'usd')} -> "
                f"{format_value(eff['candidate_borrow_capacity_usd'], 'usd')} "
                f"({format_delta(eff['delta_borrow_capacity_usd'], 'usd')}) for {who}.")
    return (f"Capital efficiency{venues} (borrowing power / collateral at t0, not an estimate): "
            f"{format_value(eff['current_ratio'], 'pct')} -> {format_value(eff['candidate_ratio'], 'pct')} "
            f"({eff['delta_points']:+.2f} points); borrowing power {format_value(eff['current_borrow_capacity_usd'], 'usd')}"
            f" -> {format_value(eff['candidate_borrow_capacity_usd'], 'usd')} "
            f"({format_delta(eff['delta_borrow_capacity_usd'], 'usd')}) for {who}.")


def shock_note(info: Mapping[str, Any]) -> str:
    """Why the critical drop / liquidation map may be empty: the uniform shock also moves volatile debt."""
    volatile = sorted({a for b in info["books"] for a in b["debt_usd"]
                       if (info["assets"].get(a) or {}).get("model") not in (None, "constant")})
    if not volatile:
        return ""
    return (f"The critical drop and the liquidation map shock every non-stable asset at once, the debt "
            f"asset{'s' if len(volatile) > 1 else ''} {', '.join(volatile)} included: they measure a market-wide "
            "fall, not the collateral's move against the debt (the Monte Carlo paths carry that).")


DELTA_NOTE = ("Deltas are paired (the same paths for every set): the difference's 95 % CI, "
              "`*` where it excludes zero. Quantile CIs are distribution-free (order statistics); ES 99 and "
              "delta errors of quantiles come from a seeded paired bootstrap.")


# ------------------------------------------------------------------------------------------------
# Comparison
# ------------------------------------------------------------------------------------------------


def render_comparison(data: Mapping[str, Any], manifest: Mapping[str, Any], figs: Mapping[str, Figure]) -> str:
    info = data["scenario"]
    v = data["verdict"]
    out = [f"# Comparison on {info['name']}: current vs candidate", "",
           f"> **{v['text']}**", "",
           "## Scenario", "", _scenario_para(info), ""]
    if figs.get("price_fan"):
        out += [figure(figs["price_fan"], 1), ""]
    out += ["## Changes", ""]
    rows = [[c["adapter"], c["key"], fmt_num(c["current"], c["unit"]), fmt_num(c["candidate"], c["unit"]),
             fmt_change(c["change"], (c["change"] / c["current"] * 100) if c["current"] else None, c["unit"])]
            for c in data["changes"]]
    out += [table(["protocol", "parameter", "current", "candidate", "change"], rows, "llrrr") if rows
            else "No parameter changes.", ""]
    out += ["## Risk: current vs candidate", "",
            risk_table([("current", data["current"]["metrics"]), ("candidate", data["candidate"]["metrics"])],
                       data["deltas"], "candidate - current"), "",
            DELTA_NOTE, "", _eff_line(data["efficiency"], "the candidate"), "",
            *([shock_note(info), ""] if shock_note(info) else []),
            budget_line([("current", data["current"].get("budget")), ("candidate", data["candidate"].get("budget"))]),
            ""]
    n = 2
    for key in ("bad_debt", "liquidation_map"):
        if figs.get(key):
            out += [figure(figs[key], n), ""]
            n += 1
    out += [_assumptions(data.get("assumptions") or scenario_assumptions(info)), "", reproducibility(manifest), ""]
    return "\n".join(out)


def scenario_assumptions(info: Mapping[str, Any]) -> list[str]:
    """Plain statements about the model from the scenario description in a result's JSON."""
    out = []
    for b in info["books"]:
        if "open_interest_usd" in b:  # a perp venue
            out.append(f"Book ({b['adapter']}, perp): {b['positions']:,} positions ({b['kind']}); liquidated longs sell "
                       "and shorts buy on the same pools, marked at the bar low / high; loss waterfall and ADL at "
                       "the end of each step.")
            continue
        mode = {"ltv_utilisation": "users borrow a drawn share of what the parameters allow, so an LTV change "
                                   "changes the book's debt",
                "health": "health factors drawn at the current parameters, debt then fixed (today's book)",
                "csv": "positions read from a CSV file"}[b["debt_mode"]]
        kind = "synthetic (drawn from distributions, not real accounts)" if b["kind"] == "synthetic" else "explicit"
        out.append(f"Book ({b['adapter']}): {kind}, {b['positions']:,} positions; {mode}.")
    liq = ", ".join(f"{a} {d['liquidity']['model']}" for a, d in info["assets"].items() if d.get("liquidity"))
    out.append("Liquidity: seized collateral is sold into one pool per asset with price impact and recovery ("
               + (liq or "none: infinitely deep") + f"); at most {info['liquidators']['max_calls_per_step']:,} "
               "liquidation calls per protocol and step; a call is made when the bonus covers slippage and gas.")
    out.append("Prices: " + ", ".join(f"{a} {d['model']}" for a, d in info["assets"].items())
               + f"; liquidations checked at each bar's low; oracle lag {info['oracle_lag_steps']} steps.")
    out.append("Not in the model: interest accrual and stability fees over the horizon, users adding collateral "
               "or repaying during the stress, caps limiting new borrowing, oracle failures.")
    return out


# ------------------------------------------------------------------------------------------------
# Proposal
# ------------------------------------------------------------------------------------------------


def render_proposal(data: Mapping[str, Any], manifest: Mapping[str, Any], figs: Mapping[str, Figure]) -> str:
    p = data["proposal"]
    info = data["scenario"]
    v = data["verdict"]
    st = data["stress"]
    rec = data.get("recommendation") or {}
    has_rec = bool(rec.get("metrics"))
    link = f" · [discussion]({p['link']})" if p.get("link") else ""
    meta = " · ".join(x for x in (p.get("protocol"), p.get("market"), p.get("date"), p.get("author")) if x)
    out = [f"# {p['title']}", "", f"*Proposal analysis by cascade · {meta}{link}*", "",
           f"> **Verdict.** {v['text']}", ""]
    out += ["## Simple summary", ""]
    out.append(p.get("summary") or "The proposal file gives no summary.")
    out += ["", f"This analysis simulates the proposal's changes on **{info['name']}** ({st['chosen_by']}"
            + (f": {st['why']}" if st.get("why") else "") + "), against the proposal's `before` values as the "
            "baseline, on the same price paths for every parameter set.", ""]
    src = p.get("source") or {}
    if src:
        out += ["Sources: " + "; ".join(f"{k}: `{v_}`" if not str(v_).startswith("http") else f"{k}: <{v_}>"
                                         for k, v_ in src.items()), ""]

    # Specification
    out += ["## Specification", ""]
    rows = []
    for s in data["specification"]:
        status = "yes" if s["modelled"] else "not modelled"
        if s["modelled"] and not s["touches_book"]:
            status = "yes, but not in this book"
        snap = fmt_num(s["snapshot"], s["unit"]) if s["snapshot"] is not None else "-"
        if s["mismatch"]:
            snap += " (differs)"
        rows.append([s["target"], s["parameter"], fmt_num(s["before"], s["unit"]), fmt_num(s["after"], s["unit"]),
                     fmt_change(s["change"], s["change_pct"], s["unit"]), snap,
                     f"`{s['key']}`" if s["key"] else "-", status])
    out += [table(["asset", "parameter", "before", "after", "change", "snapshot in use", "simulator key", "modelled"],
                  rows, "llrrrrll"), ""]
    notes = []
    mism = [s for s in data["specification"] if s["mismatch"]]
    if mism:
        snap_meta = data.get("snapshot_market") or {}
        notes.append(f"**Before-value mismatch.** {len(mism)} `before` value(s) differ from the snapshot in use "
                     f"({snap_meta.get('market', '')}, as of {snap_meta.get('as_of', '?')}): "
                     + "; ".join(f"{s['target']} {s['parameter']} before {fmt_num(s['before'], s['unit'])} vs snapshot "
                                 f"{fmt_num(s['snapshot'], s['unit'])}" for s in mism)
                     + ". Either the proposal predates later changes or the snapshot is stale; the analysis uses the "
                       "proposal's `before` as the baseline.")
    nm = [s for s in data["specification"] if not s["modelled"]]
    if nm:
        notes.append("**Not modelled** (" + ", ".join(f"{s['target']} {s['parameter']}" for s in nm)
                     + "): not modelled: no effect on liquidation risk in this model.")
    nt = [s for s in data["specification"] if s["modelled"] and not s["touches_book"]]
    if nt:
        notes.append("**Not in this book:** " + ", ".join(f"{s['target']} {s['parameter']}" for s in nt)
                     + " act on positions the scenario's book does not hold, so they cannot move its risk.")
    by_note: dict[str, list[str]] = {}
    for s in data["specification"]:
        for n_ in s["notes"]:
            by_note.setdefault(f"{s['parameter']}: {n_}", []).append(s["target"])
    for n_, targets in by_note.items():
        notes.append(f"{', '.join(dict.fromkeys(targets))} {n_}.")
    out += ["\n".join(f"- {x}" for x in dict.fromkeys(notes)), ""] if notes else []

    # Scenario
    out += ["## Stress scenario", "", _scenario_para(info), ""]
    n = 1
    if figs.get("price_fan"):
        out += [figure(figs["price_fan"], n), ""]
        n += 1

    # Risk
    out += ["## Risk: current vs proposed" + (" vs the optimiser's recommendation" if has_rec else ""), ""]
    extra = [("recommended", rec["metrics"], rec.get("deltas"))] if has_rec else []
    out += [risk_table([("current", data["current"]["metrics"]), ("proposed", data["proposed"]["metrics"])],
                       data["deltas"], "proposed - current", extra), "", DELTA_NOTE, "",
            _eff_line(data["efficiency"], "the proposal"), "",
            *([shock_note(info), ""] if shock_note(info) else []),
            budget_line([("current", data["current"].get("budget")), ("proposed", data["proposed"].get("budget"))]
                        + ([("recommended", rec.get("budget"))] if has_rec else [])), ""]
    for key in ("bad_debt", "liquidation_map"):
        if figs.get(key):
            out += [figure(figs[key], n), ""]
            n += 1

    # Immediate
    im = data["immediate"]
    nl = im["newly_liquidatable"]
    out += ["## Positions liquidated at once by the change", ""]
    out.append(f"On {im['book']}: {nl['positions']:,} of {im['positions']:,} positions become liquidatable the "
               f"moment the change executes (debt {format_value(nl['debt_usd'], 'usd')}, collateral "
               f"{format_value(nl['collateral_usd'], 'usd')}); {im['liquidatable_before']:,} were liquidatable "
               "before it.")
    if nl["largest"]:
        out += ["", table(["account", "collateral", "collateral (USD)", "debt (USD)", "health before", "health after"],
                          [[a["account"], a["collateral"], format_value(a["collateral_usd"], "usd"),
                            format_value(a["debt_usd"], "usd"), f"{a['health_before']:.4f}", f"{a['health_after']:.4f}"]
                           for a in nl["largest"]], "llrrrr")]
    nb, na = im["near_before"], im["near_after"]
    out += ["", f"Within {(im['near_threshold'] - 1) * 100:g} % of liquidation (1 <= health < {im['near_threshold']:g}): "
            f"{nb['positions']:,} positions with {format_value(nb['debt_usd'], 'usd')} of debt before, "
            f"{na['positions']:,} with {format_value(na['debt_usd'], 'usd')} after.", ""]

    # Recommendation
    out += ["## The optimiser's recommendation within the same step limits", ""]
    out += [_recommendation(rec, data), ""]

    # Replays
    out += ["## Stress replays", ""]
    out += [_replays(data.get("replays") or []), ""]

    # Sensitivity
    out += ["## Sensitivity", ""]
    out += [_sensitivity(data.get("sensitivity") or {}), ""]
    imp = (rec.get("importance") or {}) if isinstance(rec.get("importance"), Mapping) else {}
    if imp.get("risk") or imp.get("efficiency"):
        parts = [f"{k}: " + ", ".join(f"`{n.split(':', 1)[-1]}` {v:.2f}" for n, v in imp[k].items())
                 for k in ("risk", "efficiency") if imp.get(k)]
        out += [f"Parameter importance in the recommendation's search ({imp.get('method', 'PED-ANOVA')}, "
                f"{imp.get('trials')} fully evaluated trials; noisy with few trials): " + "; ".join(parts) + ".", ""]
    elif imp.get("note"):
        out += [f"Parameter importance in the recommendation's search: {imp['note']}.", ""]
    if figs.get("sensitivity"):
        out += [figure(figs["sensitivity"], n), ""]
        n += 1

    # Smart LTV
    out += ["## Smart LTV baseline", "", _smart_ltv(data.get("smart_ltv") or {}), ""]

    out += [_assumptions(data.get("assumptions") or []), ""]
    out += ["## Raw JSON diff", "", "```json", json.dumps(data["json_diff"], indent=2), "```", ""]
    out += [reproducibility(manifest), ""]
    return "\n".join(out)


def _recommendation(rec: Mapping[str, Any], data: Mapping[str, Any]) -> str:
    status = rec.get("status")
    if status == "skipped":
        return f"Not run: {rec.get('reason', '')}."
    if status == "failed":
        return f"The search could not run: {rec.get('error')}."
    lines = [f"A short search ({rec.get('trials')} trials of {rec.get('paths')} paths, TPE) over the proposal's "
             f"modelled parameters, each within the scenario's steward step limits around the baseline: "
             f"{rec.get('objective') or ''}."]
    spec_by_key = {s["key"]: s for s in data["specification"] if s["key"]}
    within = {w["key"]: w for w in rec.get("proposal_within_limits", [])}
    rows = []
    for d in rec.get("space", []):
        key = d["name"].split(":", 1)[-1]
        s = spec_by_key.get(key)
        w = within.get(key)
        recv = (rec.get("params") or {}).get(key)
        rows.append([f"`{key}`", fmt_num(d.get("current"), d.get("unit") or ""),
                     fmt_num(s["after_param"] if s else None, d.get("unit") or ""),
                     fmt_num(recv, d.get("unit") or "") if recv is not None else "-",
                     f"[{fmt_num(d.get('low'))}, {fmt_num(d.get('high'))}] ({d.get('steward_limit') or 'no limit'})",
                     ("yes" if w["within"] else "**no**") if w else "-"])
    if rows:
        lines += ["", table(["parameter", "baseline", "proposed", "recommended", "search range (steward limit)",
                             "proposal within limits"], rows, "lrrrll")]
    if not any(b for b in (data["current"].get("budget"), data["proposed"].get("budget"))):
        lines += ["", "The scenario has no `[optimize]` table: the search used its default risk budget and step "
                  "limits (docs/scenario_format.md)."]
    if status == "none within budget":
        lines += ["", "**No parameter set within the step limits meets the scenario's risk budget** on this "
                  "search; the table shows the search range only."]
    elif rec.get("efficiency"):
        e = rec["efficiency"]
        change = (f"{format_value(e['candidate_ratio'], 'leverage')} "
                  f"({format_delta(e['delta_points'] / 100.0, 'leverage')} vs current)" if e.get("family") == "perp" else
                  f"{format_value(e['candidate_ratio'], 'pct')} ({e['delta_points']:+.2f} points vs current)")
        lines += ["", f"The recommendation, evaluated on the same paths as the proposal, gives capital efficiency "
                  f"{change}; its risk is the last columns of the risk table."]
    return "\n".join(lines)


def _replays(reps: Sequence[Mapping[str, Any]]) -> str:
    if not reps:
        return "No historical replay applies to this protocol (none bundled, or `--no-replays`)."
    rows, notes = [], []
    bd, lq = metric("bad_debt_usd"), metric("liquidated_usd")
    for r in reps:
        if r.get("status") != "ok":
            notes.append(f"{r['scenario']}: {r['status']}.")
            continue
        rows.append([r["scenario"], r.get("window") or "-", r.get("book") or "-",
                     f"{bd.format(r['current']['bad_debt_usd'])} -> {bd.format(r['proposed']['bad_debt_usd'])}",
                     f"{lq.format(r['current']['liquidated_usd'])} -> {lq.format(r['proposed']['liquidated_usd'])}",
                     f"{r['current']['liquidations']:,.0f} -> {r['proposed']['liquidations']:,.0f}",
                     r.get("note") or ("the book holds changed assets" if r.get("touches_book") else "")])
        if r.get("description"):
            notes.append(f"{r['scenario']}: {r['description']}.")
    out = []
    if rows:
        out.append("Deterministic replays of recorded price paths (one path each), current -> proposed:")
        out.append("")
        out.append(table(["replay", "window", "book", "bad debt", "liquidated collateral", "liquidations", "note"],
                         rows, "lllrrrl"))
    if notes:
        out += ["", "\n".join(f"- {x}" for x in notes)]
    return "\n".join(out)


def _sensitivity(s: Mapping[str, Any]) -> str:
    if s.get("skipped"):
        return f"Not run ({s['skipped']})."
    bd = metric("bad_debt_usd")
    out = [f"{s['method']}, {s['paths']} paths. Baseline mean bad debt "
           f"{bd.format(s['reference']['baseline_mean_bad_debt_usd'])}, proposed "
           f"{bd.format(s['reference']['proposed_mean_bad_debt_usd'])}."]
    if s.get("parameters"):
        rows = []
        for prm in s["parameters"]:
            if "error" in prm:
                rows.append([prm["label"], f"not valid alone: {prm['error']}", "-"])
            else:
                rows.append([prm["label"], _delta_cell(prm["delta_mean_bad_debt_usd"], "usd"),
                             _delta_cell(prm["delta_es99_bad_debt_usd"], "usd")])
        out += ["", "Each changed parameter alone (the others at the baseline):", "",
                table(["parameter", "mean bad debt change", "ES 99 bad debt change"], rows, "lrr")]
    if s.get("drivers"):
        rows = [[d["label"], bd.format(d["baseline_mean_bad_debt_usd"]),
                 _delta_cell(d["driver_delta_mean_bad_debt_usd"], "usd"), bd.format(d["proposed_mean_bad_debt_usd"]),
                 _delta_cell(d["proposal_delta_under_driver"], "usd")] for d in s["drivers"]]
        out += ["", "What drives bad debt: the scenario with one driver changed (same seed):", "",
                table(["driver", "mean bad debt, baseline", "change vs the scenario", "mean bad debt, proposed",
                       "proposal's effect under this driver"], rows, "lrrrr")]
    return "\n".join(out)


def _smart_ltv(t: Mapping[str, Any]) -> str:
    if t.get("error"):
        return t["error"] + "."
    rows = [[f"{r['asset']}" + (" (changed)" if r.get("changed") else ""), f"{r['sigma']:.4f}",
             format_value(r["liquidity_usd"], "usd"), format_value(r["debt_usd"], "usd"),
             format_value(r["beta"], "pct"), format_value(r["smart_ltv_current"], "pct"),
             format_value(r["smart_ltv"], "pct"), format_value(r["current_ltv"], "pct"),
             format_value(r["optimised_ltv"], "pct")] for r in t.get("collaterals", [])]
    if not rows:
        return "No collateral of the book has a closed-form Smart LTV here."
    out = [f"{t.get('method', 'Smart LTV')}, c = {t.get('c')}, sigma over {t.get('horizon_h'):g} h; `l` is the "
           "collateral sellable within slippage beta in the scenario's liquidity model, `d` the debt it backs.", "",
           table(["collateral", "sigma", "l (at beta)", "d (debt)", "beta (proposed)", "Smart LTV (current)",
                  "Smart LTV (proposed)", "current LTV", "proposed LTV"], rows, "lrrrrrrrr")]
    if t.get("note"):
        out += ["", f"Note: {t['note']}."]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------
# Simulation (from `cascade simulate --json`)
# ------------------------------------------------------------------------------------------------


def render_simulation(data: Mapping[str, Any], manifest: Mapping[str, Any], figs: Mapping[str, Figure]) -> str:
    m = data["metrics"]
    out = [f"# Simulation: {data['scenario']}", "",
           f"{data['paths']} paths x {data['steps']} steps of {data['step_s'] / 60:g} min, seed {data['seed']}, "
           f"{data['engine']} engine"
           + (f" ({data['engine_reason']})" if data.get("engine_reason") else "")
           + f"; main collateral {data.get('primary_asset', '-')}.", "",
           "## Parameters", ""]
    prm = [[a, k, fmt_num(v)] for a, kv in (data.get("params") or {}).items() for k, v in kv.items()]
    out += [table(["protocol", "parameter", "value"], prm, "llr") if prm else
            "The scenario's snapshot values (no overrides).", ""]
    out += ["## Risk", "", risk_table([("estimate", m)], None, ""), "",
            "Quantile CIs are distribution-free (order statistics); ES 99 errors from a seeded bootstrap.", ""]
    if figs.get("liquidation_map"):
        out += [figure(figs["liquidation_map"], 1), ""]
    out += ["Per-path series are not stored in a `cascade simulate --json` file, so this report has no "
            "distribution or price-fan figure; `cascade compare` stores them.", "", reproducibility(manifest), ""]
    return "\n".join(out)


# ------------------------------------------------------------------------------------------------
# Optimisation study (from the stored `cascade_report` JSON)
# ------------------------------------------------------------------------------------------------




def _short(name: str, names: Sequence[str]) -> str:
    """``adapter:KEY`` without the adapter prefix when the study has one adapter."""
    return name.split(":", 1)[-1] if len({n.split(":", 1)[0] for n in names}) <= 1 else name


def render_study(data: Mapping[str, Any], manifest: Mapping[str, Any], figs: Mapping[str, Figure]) -> str:
    """The report of an optimisation study, from the result ``cascade optimize`` stored: the same verdict,
    recommendation (after the no-free-moves reversion), metrics, out-of-sample checks and trade-off curve
    the command printed."""
    from ..search.result import metric_columns
    from ..search.rows import (
        capacity_noun,
        efficiency_change,
        efficiency_unit,
        format_efficiency,
        format_pct,
        risk_cell,
        table_rows,
    )

    rep = data["search"]
    st = rep.get("study", {})
    obj = rep.get("objective", {})
    unit = efficiency_unit(obj)
    names = rep.get("space_names") or [ch["name"] for ch in (rep.get("best") or {}).get("changes", [])]
    rec = rep.get("recommendation")
    v = rep.get("verdict") or {}
    sets = ", ".join(f"seed {p['seed']} ({p['paths']} paths)" for p in rep.get("path_sets") or [])
    out = [f"# Optimisation study: {st.get('name', rep.get('scenario'))}", "",
           f"Scenario **{rep.get('scenario')}**, seed {rep.get('seed')}, {rep.get('paths')} paths, sampler "
           f"{rep.get('sampler')}; study in `{data.get('storage_display', st.get('storage'))}` with {st.get('trials')} "
           f"trials ({st.get('full_trials')} fully simulated, {st.get('infeasible_before_simulation')} rejected "
           f"before simulation). Rendered from the study's stored result (no simulation).", "",
           f"Objective: {obj.get('description', '-')}.", ""]
    if rep.get("mode"):
        out += [f"Mode: **{rep['mode']}** ({rep.get('mode_reason')}); search paths: {sets or '-'}.", ""]
    if v:
        out += [f"> **{str(v.get('status', '')).capitalize()}** (exit code {v.get('exit_code')}): {v.get('message')}", ""]
        out += [f"- note: {n}" for n in v.get("notes") or []]
        if v.get("notes"):
            out.append("")
    if rep.get("pareto"):
        vals_name = obj["objectives"][1] if len(obj.get("objectives") or []) > 1 else "risk"
        prow = [[p["trial"], format_efficiency(p.get("efficiency"), unit),
                 format_pct((list((p.get("values") or {}).values()) + [None, None])[1]),
                 "yes" if (p.get("risk") or {}).get("feasible") else "no",
                 *[fmt_num((p.get("params") or {}).get(n)) for n in names]] for p in rep["pareto"]]
        out += ["## Pareto front (fully evaluated trials)", "",
                table(["trial", "efficiency", vals_name, "within budget", *[_short(n, names) for n in names]], prow), ""]
    if rec is not None:
        title = ("Recommendation: keep today's set" if rec.get("unchanged") else
                 "Cheapest fix" if rep.get("mode") == "repair" else "Recommendation")
        out += [f"## {title}", ""]
        if rec.get("note") and not rec.get("unchanged"):
            out += [f"{str(rec['note'])[0].upper()}{str(rec['note'])[1:]}.", ""]
        elif rec.get("trial") is not None:
            out += [f"Trial {rec['trial']}.", ""]
        rows = [[_short(ch["name"], names), fmt_num(ch["current"], ch["unit"]), fmt_num(ch["new"], ch["unit"]),
                 fmt_change(ch["change"], ch.get("change_pct"), ch["unit"]) if ch["change"] else "-",
                 ch.get("status", ""), f"[{fmt_num(ch['low'])}, {fmt_num(ch['high'])}]", ch.get("steward_limit") or "off"]
                for ch in rec.get("changes", [])]
        out += [table(["parameter", "today", "recommended", "change", "why", "search range", "steward limit"], rows,
                      "lrrrlll"), ""]
        c = rec.get("cost")
        if c and not rec.get("unchanged"):
            out += [f"{capacity_noun(unit).capitalize()}: {efficiency_change(c['efficiency_points'], unit)}, "
                    f"{format_value(c['borrow_capacity_usd'], 'usd')} ({c['borrow_capacity_pct']:+.2f} %) against "
                    "today's set.", ""]
    elif rep.get("best") is not None:
        out += [f"> **Not a recommendation**: the in-sample winner (trial {rep['best'].get('trial')}) and the "
                "runners-up fail out of sample.", ""]

    cols = metric_columns(dict(rep))
    rows = [[label, *cells] for label, cells in table_rows(rep, cols)]
    out += ["## Risk", "", "Each set's risk metrics with 95 % confidence intervals (± a standard error, or an "
            "interval in brackets); shares are of debt.", "", table(["metric"] + [c for c, _ in cols], rows), ""]
    checks = rep.get("out_of_sample_checks") or []
    if checks:
        crow = [[f"trial {c['trial']}" if c.get("trial") is not None else "reverted set", format_efficiency(c.get("efficiency"), unit),
                 risk_cell((c.get("in_sample") or {}).get("risk")), risk_cell((c.get("out_of_sample") or {}).get("risk")),
                 c.get("status", "")] for c in checks]
        out += ["## Out-of-sample checks (in the order made)", "",
                table(["set", "efficiency", "risk in sample", "risk out of sample", "result"], crow, "lrrrl"), ""]
    front = rep.get("tradeoff") or []
    if len(front) > 1:
        reverted = " (reverted)" if rec and rec.get("trial") is None else ""
        trow = [[p["trial"], format_efficiency(p.get("efficiency"), unit), format_pct(p.get("risk_value")), format_pct(p.get("risk_ci95_high")),
                 "yes" if p.get("within_budget") else "no",
                 ", ".join(x for x, on in (("today", p.get("current")), ("recommended" + reverted, p.get("recommended")))
                           if on)] for p in front]
        out += ["## Trade-off curve", "", "The most efficient fully evaluated set at each level of risk.", "",
                table(["trial", "efficiency", str(obj.get("risk_metric")), "upper 95 % CI", "within budget", ""], trow,
                      "rrrrll"), ""]
    for cap in rep.get("caps") or []:
        largest = cap.get("largest_within_budget")
        out += [f"- {_short(cap['name'], names)}: " + (
            f"the largest cap within budget found is {fmt_num(largest, cap['unit'])} (trial {cap['trial']}; today "
            f"{fmt_num(cap['current'], cap['unit'])})" if largest is not None
            else "no cap within the search range is within budget")]
    if rep.get("caps"):
        out.append("")
    n = 1
    for key in ("efficiency_risk", "importance"):
        if figs.get(key):
            out += [figure(figs[key], n), ""]
            n += 1
    imp = rep.get("importance") or {}
    if imp.get("note"):
        out += [f"Parameter importance: {imp['note']}.", ""]
    bl = rep.get("baseline") or {}
    if bl.get("collaterals"):
        rows = [[f"{r['adapter']}:{r['asset']}", f"{r['sigma']:.4f}", format_value(r["liquidity_usd"], "usd"),
                 format_value(r["debt_usd"], "usd"), format_value(r["beta"], "pct"), format_value(r["smart_ltv"], "pct"),
                 format_value(r["optimised_ltv"], "pct"), format_value(r["current_ltv"], "pct")]
                for r in bl["collaterals"]]
        out += ["## Smart LTV baseline", "",
                f"Smart LTV = exp(-c sigma sqrt(d/l)) - beta, c = {bl.get('c', 0):g}, sigma over "
                f"{bl.get('horizon_h', 0):g} h.", "",
                table(["collateral", "sigma", "l (at beta)", "d (debt)", "beta", "Smart LTV", "recommended LTV",
                       "current LTV"], rows), ""]
        out += [f"- {r['adapter']}:{r['asset']}: {r['note']}" for r in bl["collaterals"] if r.get("note")]
        out.append("")
    out += [reproducibility(manifest), ""]
    return "\n".join(out)


RENDERERS = {"comparison": render_comparison, "proposal": render_proposal, "simulation": render_simulation,
             "study": render_study}


def render(data: Mapping[str, Any], manifest: Mapping[str, Any], figs: Mapping[str, Figure]) -> str:
    """``report.md`` for a result's JSON (``data["kind"]`` selects the layout)."""
    return RENDERERS[data["kind"]](data, manifest, figs)
