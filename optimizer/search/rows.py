"""What a search result shows for each parameter set: one declaration per row.

``cascade optimize`` (terminal), ``cascade report STUDY`` (markdown) and ``SearchResult.summary()``
(notebooks) show the same rows of the same columns (:func:`~optimizer.search.result.metric_columns`);
each row is declared once here with the stored metric it reads and its display format, and each
renderer only lays the cells out. Rows follow the venues of the study: bad debt and the borrower
penalty for lending books, the perp losses (ADL, insurance fund, backstop) for perp books, both for a
mixed scenario; a row no column has a value for is left out.

Capital efficiency is borrow capacity / collateral on a lending book (a share, shown in %) and, on a
book of perp venues only, the notional the book's margin carries at the venues' maximum leverage /
margin: the leverage offered (shown as ``19.00×``). The search records which in its objective
(``efficiency_unit``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..engine.metrics import family_efficiency, format_value
from ..scenario.config import PROBABILITY_RISKS

Column = Mapping[str, Any]  # one set's stored result: ``metrics``, ``risk``, ``holds``, ``efficiency``


def efficiency_unit(objective: Mapping[str, Any] | None) -> str:
    """``"leverage"`` for a study of perp venues only, else ``"share"`` (studies stored before: share)."""
    return str((objective or {}).get("efficiency_unit") or "share")


def format_efficiency(x: float | None, unit: str) -> str:
    """Capital efficiency as the search shows it: ``78.21 %`` (a share) or ``19.00×`` (leverage)."""
    if x is None:
        return "-"
    return f"{x:.2f}×" if unit == "leverage" else f"{x * 100:.2f} %"


def efficiency_change(points: float, unit: str, signed: bool = True) -> str:
    """A change of capital efficiency in words: ``+1.250 points of capital efficiency`` (``points``: the
    change of the ratio x 100, as ``decide.cost`` gives it) or ``+0.50x of leverage offered``."""
    if unit == "leverage":
        x = points / 100.0
        return f"{x:+.2f}× of leverage offered" if signed else f"{x:.2f}× of leverage offered"
    return f"{points:+.3f} points of capital efficiency" if signed else f"{points:.3f} points of capital efficiency"


def capacity_noun(unit: str) -> str:
    """What ``borrow_capacity_usd`` is: borrowing power, or the notional the margin carries (perp books)."""
    return "notional capacity" if unit == "leverage" else "borrowing power"


def efficiency_label(unit: str) -> str:
    return ("leverage offered (notional at the maximum leverage / margin)" if unit == "leverage"
            else "capital efficiency")


def risk_label(metric: str | None) -> str:
    """How the constraint metric is named in tables: a probability per path, or a tail of bad debt / debt."""
    return f"{metric} (probability per path)" if metric in PROBABILITY_RISKS else f"{metric} of bad debt / debt"


def format_pct(x: float | None, digits: int = 3) -> str:
    """A share in % (``0.420 %``), ``-`` when absent: the search tables' one percentage format."""
    return "-" if x is None else f"{x * 100:.{digits}f} %"


def risk_cell(r: Mapping[str, Any] | None) -> str:
    """The constraint's estimate with its 95 % interval: ``0.420 % [0.100 %, 1.310 %]``."""
    if not r or r.get("value") is None:
        return "-"
    lo, hi = r["ci95"]
    return f"{format_pct(r['value'])} [{format_pct(lo)}, {format_pct(hi)}]"


def study_efficiency(metrics: Mapping[str, Any] | None, unit: str) -> float | None:
    """The capital efficiency a study judges in a ``metrics`` dict: the perp venues' leverage multiple
    (``unit == "leverage"``) or the lending venues' share, also in a scenario with both families."""
    fig = family_efficiency((metrics or {}).get("capital_efficiency"), "perp" if unit == "leverage" else "lending")
    return fig.get("ratio") if fig else None


def _metric(d: Column, name: str, stat: str) -> Any:
    m = d.get("metrics") if isinstance(d, Mapping) else None
    x = (m or {}).get(name)
    return x.get(stat) if isinstance(x, Mapping) else None


@dataclass(frozen=True)
class Row:
    """One row: its label, the stored metric and statistic it shows (with the standard error or the
    95 % interval beside it) and its display format (a key of ``optimizer.engine.metrics.FORMATS``)."""

    label: str
    metric: str
    stat: str
    fmt: str
    stderr: str | None = None  # the statistic's standard error shown as "± x"
    interval: str | None = None  # the statistic's interval shown as "[lo, hi]"
    family: str = "lending"  # "lending" | "perp": which venues the row is about

    def value(self, d: Column) -> Any:
        return _metric(d, self.metric, self.stat)

    def cell(self, d: Column) -> str:
        v = self.value(d)
        if v is None:
            return "-"
        se = _metric(d, self.metric, self.stderr) if self.stderr is not None else None
        if self.fmt == "share" and se is not None:
            return _share_se(v, se)
        s = format_value(v, self.fmt)
        if se is not None:
            s += f" ± {format_value(se, self.fmt)}"
        if self.interval is not None and (ci := _metric(d, self.metric, self.interval)) is not None:
            s += f" [{format_value(ci[0], self.fmt)}, {format_value(ci[1], self.fmt)}]"
        return s


def _share_se(v: float, se: float) -> str:
    """A share in % with its standard error, both to the error's second significant digit (never "± 0.000 %")."""
    digits = 3 if se <= 0 else min(8, max(3, 1 - math.floor(math.log10(se * 100.0))))
    return f"{v * 100:.{digits}f} % ± {se * 100:.{digits}f} %"


#: the metric rows, in order (the constraint and "within budget" rows frame them)
ROWS: tuple[Row, ...] = (
    Row("ES 99 of bad debt / debt", "bad_debt_share", "es_99", "share"),
    Row("mean bad debt (USD)", "bad_debt_usd", "mean", "usd", stderr="stderr"),
    Row("VaR 99 bad debt (USD)", "bad_debt_usd", "var_99", "usd"),
    Row("borrower penalty (mean, share of debt)", "borrower_penalty_share", "mean", "share", stderr="stderr"),
    Row("borrower penalty (mean, USD)", "borrower_penalty_usd", "mean", "usd"),
    Row("P(ADL) (Wilson 95 % interval)", "p_adl", "mean", "share", interval="ci95", family="perp"),
    Row("P(insurance fund depleted) (Wilson 95 % interval)", "p_insurance_depletion", "mean", "share",
        interval="ci95", family="perp"),
    Row("insurance-fund drawdown (mean, USD)", "insurance_fund_drawdown_usd", "mean", "usd", stderr="stderr",
        family="perp"),
    Row("perp deficit beyond margin (mean, USD)", "perp_deficit_usd", "mean", "usd", stderr="stderr",
        family="perp"),
    Row("ADL volume (mean, USD)", "adl_volume_usd", "mean", "usd", stderr="stderr", family="perp"),
    Row("backstop loss (mean, USD)", "backstop_loss_usd", "mean", "usd", stderr="stderr", family="perp"),
)


def _families(cols: Sequence[tuple[str, Column]]) -> set[str]:
    """Which venues the study's columns hold: perp metrics mean a perp venue, lending ones a lending venue."""
    fams = set()
    for _, d in cols:
        m = (d.get("metrics") if isinstance(d, Mapping) else None) or {}
        if "p_adl" in m:
            fams.add("perp")
        if "borrower_penalty_share" in m or ("bad_debt_usd" in m and "p_adl" not in m):
            fams.add("lending")
    return fams or {"lending"}


def _holds(d: Column) -> bool | None:
    return d.get("holds", (d.get("risk") or {}).get("feasible")) if isinstance(d, Mapping) else None


def within_budget(d: Column) -> str:
    return "yes" if _holds(d) else "no"


def _shown(out: Mapping[str, Any], cols: Sequence[tuple[str, Column]]) -> tuple[str, str, list[Row]]:
    """What a result's table shows: the efficiency unit, the constraint's label, and the metric rows of the
    study's venues that some column has a value for (the constraint metric itself only once, as the constraint)."""
    obj = out.get("objective") or {}
    fams = _families(cols)
    rows = [r for r in ROWS if r.family in fams and r.metric != obj.get("risk_metric")
            and any(r.value(d) is not None for _, d in cols)]
    return efficiency_unit(obj), f"{risk_label(obj.get('risk_metric'))} (constraint)", rows


def table_rows(out: Mapping[str, Any], cols: Sequence[tuple[str, Column]]) -> list[tuple[str, list[str]]]:
    """``(label, one cell per column)`` for the metrics table of a search result ``out``."""
    unit, constraint, shown = _shown(out, cols)
    return [
        (efficiency_label(unit), [format_efficiency(study_efficiency(d.get("metrics"), unit), unit) for _, d in cols]),
        (constraint, [risk_cell(d.get("risk")) for _, d in cols]),
        *((r.label, [r.cell(d) for _, d in cols]) for r in shown),
        ("within budget", [within_budget(d) for _, d in cols]),
    ]


def value_rows(out: Mapping[str, Any], cols: Sequence[tuple[str, Column]]) -> dict[str, dict[str, Any]]:
    """The same rows as numbers (a notebook's DataFrame): ``{label: {column: value}}``; the stat's standard
    error gets its own row."""
    unit, constraint, shown = _shown(out, cols)
    rows: dict[str, dict[str, Any]] = {
        efficiency_label(unit): {c: study_efficiency(d.get("metrics"), unit) for c, d in cols},
        constraint: {c: (d.get("risk") or {}).get("value") for c, d in cols},
    }
    for r in shown:
        rows[r.label] = {c: r.value(d) for c, d in cols}
        if r.stderr:
            rows[f"{r.label} stderr"] = {c: _metric(d, r.metric, r.stderr) for c, d in cols}
    rows["within budget"] = {c: _holds(d) for c, d in cols}
    return rows
