"""Risk metrics, each declared once: how it is computed per path, summarised, formatted and plotted.

:data:`METRICS` is the one list that ``SimulationResult.per_path()`` / ``metrics()`` / ``summary()``,
the comparison (paired differences), the markdown tables, the JSON and the figures iterate. A new
metric (a ledger field a venue declares, a perp metric, a user-harm metric) is **one**
:class:`MetricSpec` appended here::

    MetricSpec("penalty_paid_usd", "USD", "Liquidation penalty paid by borrowers",
               compute=ledger("liquidator_bonus_usd", "protocol_fee_usd"), fmt="usd", risk=+1)

Monte Carlo estimates carry a standard error (means, probabilities) or a distribution-free 95 %
confidence interval from order statistics (quantiles); expected shortfall gets a standard error from
a seeded bootstrap, so the same inputs give the same numbers. Differences between two candidates on
the same paths (common random numbers) are *paired*: :func:`paired_difference` works on the per-path
differences (and resamples paths jointly for quantiles), which is far tighter than two independent
intervals.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from scipy import stats

if TYPE_CHECKING:  # pragma: no cover
    from .results import SimulationResult

Z95 = 1.959963984540054
ES_BOOTSTRAP = 400
PAIRED_BOOTSTRAP = 400


# ------------------------------------------------------------------------------------------------
# Estimators
# ------------------------------------------------------------------------------------------------


def quantile_ci(x: np.ndarray, q: float) -> tuple[float, float, float]:
    """q-quantile (higher order statistic, as risk teams read VaR) and its 95 % order-statistic CI."""
    xs = np.sort(x)
    n = xs.size
    k = min(int(np.ceil(q * n)) - 1, n - 1)
    lo_k = int(stats.binom.ppf(0.025, n, q))
    hi_k = int(stats.binom.ppf(0.975, n, q))
    return float(xs[max(k, 0)]), float(xs[max(min(lo_k, n - 1) - 1, 0)]), float(xs[min(hi_k, n - 1)])


def expected_shortfall(x: np.ndarray, q: float) -> float:
    xs = np.sort(x)
    k = min(int(np.ceil(q * xs.size)) - 1, xs.size - 1)
    return float(xs[max(k, 0):].mean())


def tail_summary(x: np.ndarray, *, with_es: bool = True) -> dict[str, float]:
    """mean ± stderr, VaR 95/99 with CIs, ES 99 ± bootstrap stderr, P(x > 0) ± stderr."""
    x = np.asarray(x, float)
    n = x.size
    out: dict[str, float] = {"mean": float(x.mean()), "stderr": float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0}
    for q, name in ((0.95, "var_95"), (0.99, "var_99")):
        v, lo, hi = quantile_ci(x, q)
        out[name] = v
        out[f"{name}_ci95"] = [lo, hi]
    if with_es:
        out["es_99"] = expected_shortfall(x, 0.99)
        rng = np.random.default_rng(0)  # fixed: the error bar must not change run to run
        boots = [expected_shortfall(x[rng.integers(0, n, n)], 0.99) for _ in range(ES_BOOTSTRAP)] if n > 1 else [0]
        out["es_99_stderr"] = float(np.std(boots, ddof=1)) if n > 1 else 0.0
    p = float((x > 0).mean())
    out["p_positive"] = p
    out["p_positive_stderr"] = float(np.sqrt(p * (1 - p) / n))
    return out


def mean_p99(x: np.ndarray) -> dict[str, float]:
    x = np.asarray(x, float)
    n = x.size
    v, lo, hi = quantile_ci(x, 0.99)
    return {"mean": float(x.mean()), "stderr": float(x.std(ddof=1) / np.sqrt(n)) if n > 1 else 0.0,
            "p99": v, "p99_ci95": [lo, hi]}


def wilson_interval(k: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score 95 % interval of a probability from ``k`` successes in ``n`` trials (not degenerate at
    0 or 1: with no success in n paths the upper end is about 3.84 / (n + 3.84))."""
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    den = 1.0 + z * z / n
    mid = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(mid - half, 0.0), min(mid + half, 1.0)


def probability_summary(x: np.ndarray) -> dict[str, Any]:
    """P(x > 0) per path as a probability: mean ± stderr and its Wilson 95 % interval (``ci95``)."""
    x = np.asarray(x, float)
    n = x.size
    hits = float((x > 0).sum())
    p = hits / n if n else 0.0
    return {"mean": p, "stderr": float(math.sqrt(p * (1 - p) / n)) if n else 0.0,
            "ci95": list(wilson_interval(hits, n))}


SUMMARIES: dict[str, Callable[[np.ndarray], dict[str, Any]]] = {"tail": tail_summary, "mean_p99": mean_p99,
                                                                  "probability": probability_summary}

# The statistics each summary kind reports, as (key, label): the rows of comparisons and tables.
STATISTICS: dict[str, tuple[tuple[str, str], ...]] = {
    "tail": (("mean", "mean"), ("var_95", "VaR 95"), ("var_99", "VaR 99"), ("es_99", "ES 99"),
             ("p_positive", "P(> 0)")),
    "mean_p99": (("mean", "mean"), ("p99", "p99")),
    "probability": (("mean", "P"),),
}


def _stat(xs_sorted: np.ndarray, key: str) -> np.ndarray:
    """Statistic ``key`` along the last axis of already sorted samples (vectorised over bootstrap rows)."""
    n = xs_sorted.shape[-1]
    if key == "mean":
        return xs_sorted.mean(-1)
    if key in ("var_95", "var_99", "p99"):
        q = {"var_95": 0.95, "var_99": 0.99, "p99": 0.99}[key]
        k = max(min(int(np.ceil(q * n)) - 1, n - 1), 0)
        return xs_sorted[..., k]
    if key == "es_99":
        k = max(min(int(np.ceil(0.99 * n)) - 1, n - 1), 0)
        return xs_sorted[..., k:].mean(-1)
    if key == "p_positive":
        return (xs_sorted > 0).mean(-1)
    raise KeyError(key)


def paired_difference(current: np.ndarray, candidate: np.ndarray, key: str) -> dict[str, float]:
    """Difference ``stat(candidate) - stat(current)`` of two per-path series on the SAME paths.

    Means and probabilities: the mean of the per-path differences ± its standard error. Quantiles and
    expected shortfall: the difference of the statistics, with a standard error from a seeded paired
    bootstrap (the same resampled paths for both). ``ci95`` is ± 1.96 standard errors;
    ``significant`` is True when it excludes zero.
    """
    a = np.asarray(current, float)
    b = np.asarray(candidate, float)
    if a.shape != b.shape:
        raise ValueError("paired difference needs two series over the same paths")
    n = a.size
    if key in ("mean", "p_positive"):
        d = (b > 0).astype(float) - (a > 0).astype(float) if key == "p_positive" else b - a
        delta = float(d.mean())
        se = float(d.std(ddof=1) / math.sqrt(n)) if n > 1 else 0.0
    else:
        delta = float(_stat(np.sort(b), key) - _stat(np.sort(a), key))
        if n > 1:
            idx = np.random.default_rng(0).integers(0, n, (PAIRED_BOOTSTRAP, n))
            boots = _stat(np.sort(b[idx], axis=1), key) - _stat(np.sort(a[idx], axis=1), key)
            se = float(np.std(boots, ddof=1))
        else:
            se = 0.0
    lo, hi = delta - Z95 * se, delta + Z95 * se
    return {"delta": delta, "stderr": se, "ci95": [lo, hi], "significant": bool(lo > 0 or hi < 0)}


# ------------------------------------------------------------------------------------------------
# Formatting (plain text: markdown and terminal renderers add their own markup)
# ------------------------------------------------------------------------------------------------


def _usd(x: float) -> str:
    if x is None or x != x:
        return "-"
    if math.isinf(x):
        return "unlimited" if x > 0 else "-unlimited"
    sign = "-" if x < 0 else ""
    a = abs(x)
    for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= div:
            return f"{sign}${a / div:,.3g}{suf}" if a / div < 1000 else f"{sign}${a / div:,.0f}{suf}"
    return f"{sign}${a:,.0f}" if a >= 10 else f"{sign}${a:.2f}"


FORMATS: dict[str, Callable[[float], str]] = {
    "usd": _usd,
    "share": lambda x: (f"{x * 100:.3f} %" if x == 0 or abs(x) >= 1e-5 else f"{x * 100:.2g} %"),  # fraction in %
    "pct": lambda x: f"{x * 100:.2f} %",
    "count": lambda x: f"{x:,.1f}" if abs(x) < 1e4 else f"{x:,.0f}",
    "ratio": lambda x: f"{x:.3f}",
    "hours": lambda x: f"{x:.2f} h",
    "prob": lambda x: f"{x:.3f}",
    "leverage": lambda x: f"{x:.2f}×",  # a multiple: notional / margin (perp capital efficiency)
}


def format_value(x: float | None, fmt: str) -> str:
    """``x`` in the display format ``fmt`` (one of :data:`FORMATS`); None and NaN give ``-``."""
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    return FORMATS[fmt](float(x))


def format_delta(x: float | None, fmt: str) -> str:
    """A signed difference in the display format ``fmt`` (``+$1.2M``, ``-0.120 %``)."""
    if x is None or (isinstance(x, float) and x != x):
        return "-"
    s = FORMATS[fmt](abs(float(x)))
    return ("+" if x > 0 else "-" if x < 0 else "±") + s.lstrip("-")


# ------------------------------------------------------------------------------------------------
# Declarations
# ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricSpec:
    """One metric, declared once.

    Parameters
    ----------
    name
        Key in ``SimulationResult.metrics()`` / ``per_path()`` and in every JSON output.
    unit
        Unit of the per-path value (``USD``, ``fraction of debt``, ``calls``, ``ratio``, ``hours``).
    description
        One sentence: what it measures (shown in report glossaries and ``summary()``).
    compute
        Per-path series from a :class:`~optimizer.engine.results.SimulationResult` (shape ``(paths,)``).
        ``None`` for metrics that are not Monte Carlo series (``summary="exact"`` / ``"analysis"``).
    summary
        ``"tail"`` (mean, VaR 95/99 with CIs, ES 99, P(> 0)), ``"mean_p99"`` (mean ± se, p99 with CI),
        ``"exact"`` (``value(result)`` returns a dict; not an estimate) or ``"analysis"`` (taken from
        ``result.extra[name]`` when the analysis ran).
    fmt
        Display format of a value (a key of :data:`FORMATS`).
    risk
        +1 when a higher value is worse for the protocol (bad debt), -1 when better, 0 neutral; a
        comparison's verdict reads it.
    label
        Short human label for tables (default: ``name``).
    table
        Shown in the reports' risk tables.
    plot
        ``"distribution"``: the report draws its per-path distribution, current vs candidate.
    value
        For ``summary="exact"``: a function of the result returning the JSON dict.
    headline
        For ``"exact"`` / ``"analysis"`` metrics: ``(key, label)`` pairs of the dict entries tables show.
    table_stats
        Which statistics of a Monte Carlo metric the report tables show (default: all it reports).
    by_protocol
        Also summarised per protocol when a scenario has several (``metrics()["by_protocol"]``).
    display_for
        ``metrics -> (fmt, unit)``: the display format and unit given the whole ``metrics()`` dict it is
        shown with, for a metric whose unit depends on the venues (capital efficiency: a share of
        collateral on a lending book, a leverage multiple where a perp venue is in the scenario).
        Default: ``(fmt, unit)``.
    """

    name: str
    unit: str
    description: str
    compute: Callable[[SimulationResult], np.ndarray] | None = None
    summary: str = "mean_p99"
    fmt: str = "count"
    risk: int = 0
    label: str = ""
    table: bool = True
    plot: str | None = None
    value: Callable[[SimulationResult], dict[str, Any]] | None = None
    headline: tuple[tuple[str, str], ...] = ()
    table_stats: tuple[str, ...] | None = None
    by_protocol: Callable[[SimulationResult, int], np.ndarray] | None = None
    display_for: Callable[[Any], tuple[str, str]] | None = None

    @property
    def title(self) -> str:
        return self.label or self.name

    @property
    def monte_carlo(self) -> bool:
        return self.summary in SUMMARIES

    @property
    def statistics(self) -> tuple[tuple[str, str], ...]:
        return STATISTICS.get(self.summary, ())

    @property
    def table_rows(self) -> tuple[tuple[str, str], ...]:
        """``(key, label)`` of what the report tables show: statistics (Monte Carlo) or dict entries."""
        if not self.monte_carlo:
            return self.headline
        keep = self.table_stats
        return tuple((k, lab) for k, lab in self.statistics if keep is None or k in keep)

    def summarise(self, x: np.ndarray) -> dict[str, float]:
        return SUMMARIES[self.summary](x)

    def format(self, x: float | None) -> str:
        return format_value(x, self.fmt)

    def display(self, metrics: Any = None) -> tuple[str, str]:
        """``(fmt, unit)`` of this metric as shown next to ``metrics`` (a ``metrics()`` dict)."""
        if self.display_for is not None and metrics is not None:
            return self.display_for(metrics)
        return self.fmt, self.unit

    def format_in(self, x: float | None, metrics: Any) -> str:
        """``x`` in the display format this metric takes next to ``metrics``."""
        return format_value(x, self.display(metrics)[0])


def ledger(*fields: str) -> Callable[[SimulationResult], np.ndarray]:
    """Per-path sum over protocols of one or more ledger fields (:class:`~optimizer.engine.ledger.Ledger`
    arrays of (paths, P)). A result whose ledger lacks one of them (its venues do not declare it) skips
    the metric."""

    def compute(res: SimulationResult) -> np.ndarray:
        return sum(getattr(res.raw, f).sum(1) for f in fields)

    compute.__doc__ = " + ".join(fields)
    compute.ledger_fields = fields  # type: ignore[attr-defined]
    return compute


def _needs(*fields: str) -> Callable[[Callable], Callable]:
    """Mark a compute function with the ledger fields it reads (see :func:`ledger`)."""

    def mark(fn: Callable) -> Callable:
        fn.ledger_fields = fields  # type: ignore[attr-defined]
        return fn

    return mark


def ledger_metric(field: Any) -> MetricSpec:
    """A metric for a ledger field a venue declares (``LedgerField.metric``) that :data:`METRICS` does not
    list: its per-path sum over protocols, mean ± se and p99, per protocol too."""
    return MetricSpec(field.name, field.unit, field.description, compute=ledger(field.name),
                      fmt="usd" if field.unit == "USD" else "count", table=False,
                      by_protocol=_protocol_column(field.name))


def _protocol_column(field: str) -> Callable[[SimulationResult, int], np.ndarray]:
    return lambda res, j: getattr(res.raw, field)[:, j]


def _bad_debt_share(res: SimulationResult) -> np.ndarray:
    bad = res.raw.bad_debt_usd.sum(1)
    debt0 = res.raw.initial_debt_usd.sum(1)
    return np.where(debt0 > 0, bad / np.where(debt0 > 0, debt0, 1), 0.0)


def _amplification(res: SimulationResult) -> np.ndarray:
    a = res.primary_asset()
    exo_dd = 1.0 - res.raw.exo_low_min[:, a]
    mkt_dd = 1.0 - res.raw.market_low_min[:, a]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(exo_dd > 1e-12, mkt_dd / exo_dd, 1.0)


def _time_to_stabilise(res: SimulationResult) -> np.ndarray:
    r = res.raw
    step_h = res.scenario.step_s / 3600
    return np.where(r.first_liquidation_step >= 0, (r.last_liquidation_step - r.first_liquidation_step + 1) * step_h,
                    0.0)


@_needs("liquidator_bonus_usd", "protocol_fee_usd")
def _borrower_penalty_usd(res: SimulationResult) -> np.ndarray:
    """Per path: the liquidation penalty borrowers paid (the user-harm metric), USD.

    ``liquidator_bonus_usd + protocol_fee_usd``, summed over protocols. By each liquidation's
    accounting identity (``collateral_seized = debt_repaid + liquidator_bonus + protocol_fee +
    returned_to_owner``, checked per venue by the contract suite and tests/engine/test_accounting.py)
    this is exactly the collateral value a borrower gave up beyond the debt it repaid and what it got
    back:

    * Aave v3: ``seized - repaid = repaid x (LB - 1)`` at the oracle, the liquidator's bonus net of the
      treasury's ``liquidationProtocolFee`` plus that fee;
    * Comet: the ``absorb`` penalty ``sum V_i x (1 - liquidationFactor_i)``, split between the
      storefront discount (``x storeFrontPriceFactor``) and the reserves;
    * Maker: per ``take``, collateral bought at the market price minus the DAI paid (the auction
      discount to the keeper) plus the DAI paid above the debt (``chop``, to surplus); keeper
      incentives (``tip``/``chip``) are paid by the protocol, not the vault owner, and are not in it.

    Debt written off as bad debt is the protocol's loss, not a penalty, and is not in it.
    """
    return (res.raw.liquidator_bonus_usd + res.raw.protocol_fee_usd).sum(1)


@_needs("liquidator_bonus_usd", "protocol_fee_usd")
def _borrower_penalty_share(res: SimulationResult) -> np.ndarray:
    pen = _borrower_penalty_usd(res)
    debt0 = res.raw.initial_debt_usd.sum(1)
    return np.where(debt0 > 0, pen / np.where(debt0 > 0, debt0, 1), 0.0)


@_needs("liquidator_bonus_usd", "protocol_fee_usd")
def _borrower_penalty_share_of_collateral(res: SimulationResult) -> np.ndarray:
    pen = _borrower_penalty_usd(res)
    coll = res.capital_efficiency()["collateral_usd"]
    return pen / coll if coll > 0 else np.zeros_like(pen)


def _capital_efficiency(res: SimulationResult) -> dict[str, float]:
    return res.capital_efficiency()


PERP_EFFICIENCY_UNIT = "x (notional the margin carries at the maximum leverage / margin)"


def has_perp_metrics(metrics: Any) -> bool:
    """True for the ``metrics()`` dict of a scenario with a perp venue (its perp metrics are declared)."""
    return isinstance(metrics, dict) and "p_adl" in metrics


def efficiency_family(metrics: Any) -> str:
    """Whose figures a ``metrics()`` dict's capital efficiency headlines: ``"lending"`` or ``"perp"``
    (its ``family`` entry; a stored result from before that entry: perp when perp metrics are declared)."""
    entry = metrics.get("capital_efficiency") if isinstance(metrics, dict) else None
    fam = entry.get("family") if isinstance(entry, dict) else None
    if fam in ("lending", "perp"):
        return fam
    return "perp" if has_perp_metrics(metrics) else "lending"


def _capital_efficiency_display(metrics: Any) -> tuple[str, str]:
    """A share of collateral for lending venues; a leverage multiple (``20.17×``) for perp venues, whose
    capital efficiency is the notional their margin carries at the venue's maximum leverage / the margin."""
    return ("leverage", PERP_EFFICIENCY_UNIT) if efficiency_family(metrics) == "perp" else ("pct", "fraction of collateral")


def capital_efficiency_text(metrics: Any, family: str | None = None) -> str:
    """The capital efficiency of a ``metrics()`` dict in its display unit (``80.00 %`` or ``20.17×``):
    the headline family's, or ``family``'s when the scenario has both."""
    entry = (metrics or {}).get("capital_efficiency") if isinstance(metrics, dict) else None
    if not isinstance(entry, dict):
        return metric("capital_efficiency").format_in(None, metrics)
    if family is not None and family != efficiency_family(metrics):
        fig = (entry.get("by_family") or {}).get(family) or {}
        ratio = fig.get("ratio")
        return format_value(ratio, "leverage" if family == "perp" else "pct") if ratio is not None else "-"
    return metric("capital_efficiency").format_in(entry.get("ratio"), metrics)


def family_efficiency(entry: Any, family: str) -> dict[str, float] | None:
    """One family's capital-efficiency figures from a ``capital_efficiency`` entry (its headline when it
    is that family's, else its ``by_family`` part; None when the scenario has no such venue)."""
    if not isinstance(entry, dict):
        return None
    by = entry.get("by_family")
    if by:
        return by.get(family)
    return entry if entry.get("family", family) == family else None


# Perp venues (optimizer.engine.venues.perp.PERP_FIELDS): shown only for scenarios with a perp venue.


@_needs("insurance_fund_depleted")
def _p_insurance_depletion(res: SimulationResult) -> np.ndarray:
    """1 on paths where a perp venue's insurance fund ran dry (a deficit it should pay exceeded it)."""
    return (res.raw.insurance_fund_depleted.max(1) > 0).astype(float)


@_needs("adl_steps")
def _p_adl(res: SimulationResult) -> np.ndarray:
    """1 on paths with at least one auto-deleveraging on any perp venue."""
    return (res.raw.adl_steps.sum(1) > 0).astype(float)


@_needs("perp_liquidated_long_usd", "perp_liquidated_short_usd")
def _p_perp_liquidation(res: SimulationResult) -> np.ndarray:
    return ((res.raw.perp_liquidated_long_usd + res.raw.perp_liquidated_short_usd).sum(1) > 0).astype(float)


PERP_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("perp_liquidated_long_usd", "USD", "Notional of perp longs closed by liquidation (at the mark)",
               compute=ledger("perp_liquidated_long_usd"), fmt="usd", label="perp longs liquidated",
               table_stats=("mean", "p99"), by_protocol=_protocol_column("perp_liquidated_long_usd")),
    MetricSpec("perp_liquidated_short_usd", "USD", "Notional of perp shorts closed by liquidation (at the mark)",
               compute=ledger("perp_liquidated_short_usd"), fmt="usd", label="perp shorts liquidated",
               table_stats=("mean", "p99"), by_protocol=_protocol_column("perp_liquidated_short_usd")),
    MetricSpec("p_perp_liquidation", "probability", "Probability of at least one perp liquidation on a path",
               compute=_p_perp_liquidation, summary="probability", fmt="prob", label="P(perp liquidation)",
               table=False),
    MetricSpec("perp_deficit_usd", "USD", "Perp losses beyond margin (fills worse than bankruptcy): what the "
               "insurance fund, the backstop and ADL must cover", compute=ledger("perp_deficit_usd"), summary="tail",
               fmt="usd", risk=+1, label="perp deficit", table_stats=("mean", "var_99"),
               by_protocol=_protocol_column("perp_deficit_usd")),
    MetricSpec("insurance_fund_drawdown_usd", "USD", "Largest fall of the insurance fund below its starting balance",
               compute=ledger("insurance_fund_drawdown_usd"), summary="tail", fmt="usd", risk=+1,
               label="insurance fund drawdown", table_stats=("mean", "var_99", "p_positive"),
               by_protocol=_protocol_column("insurance_fund_drawdown_usd")),
    MetricSpec("p_insurance_depletion", "probability", "Probability that an insurance fund runs dry (a deficit it "
               "should pay exceeds what is left)", compute=_p_insurance_depletion, summary="probability",
               fmt="prob", risk=+1, label="P(insurance fund depleted)"),
    MetricSpec("p_adl", "probability", "Probability of auto-deleveraging (a deficit beyond the insurance fund and "
               "the backstop reaches the opposite side)", compute=_p_adl, summary="probability", fmt="prob", risk=+1,
               label="P(ADL)"),
    MetricSpec("adl_volume_usd", "USD", "Deficit covered by auto-deleveraging winners on the opposite side",
               compute=ledger("adl_volume_usd"), summary="tail", fmt="usd", risk=+1, label="ADL volume",
               table_stats=("mean", "var_99"), by_protocol=_protocol_column("adl_volume_usd")),
    MetricSpec("adl_overshoot_usd", "USD", "Profit the ADL queue seized beyond the deficit (whole positions closed)",
               compute=ledger("adl_overshoot_usd"), fmt="usd", risk=+1, label="ADL overshoot", table_stats=("mean",)),
    MetricSpec("backstop_loss_usd", "USD", "Backstop losses: deficits the vault or pool paid plus its loss on the "
               "positions it took over (at the final close)", compute=ledger("backstop_loss_usd"), summary="tail",
               fmt="usd", risk=+1, label="backstop loss", table_stats=("mean", "var_99"),
               by_protocol=_protocol_column("backstop_loss_usd")),
    MetricSpec("critical_move", "fraction of price",
               "Smallest instantaneous move of every non-stable asset that starts a perp cascade: a fall (longs) "
               "and a rise (shorts), each to the first liquidation and to the first ADL",
               summary="analysis", fmt="pct", risk=-1, label="critical move",
               headline=(("fall_first_liquidation", "critical fall: first perp liquidation"),
                         ("rise_first_liquidation", "critical rise: first perp liquidation"))),
    MetricSpec("perp_liquidation_clusters", "fraction of price",
               "The liquidation map by price level for longs and shorts: the fall (longs) and the rise (shorts) "
               "with the most perp notional first liquidatable there (static, closed-form liquidation prices; "
               "the whole map is in liquidation_map and its figure)", summary="analysis", fmt="pct", risk=0,
               label="perp liquidation clusters",
               headline=(("long_cluster_fall", "long liquidation cluster: fall"),
                         ("short_cluster_rise", "short liquidation cluster: rise"))),
)


# Forced-flow sources (optimizer.engine.flows): shown only for scenarios with that [[forced_flows]] model.


def _selling_share(source: str) -> Callable[[SimulationResult], np.ndarray]:
    """Per path: what ``source``'s forced flows sold / all forced selling of the cascade (USD at the round's
    market close; 0 on a path with no forced selling). The shares of every source and of the venues' own
    liquidation sales add up to 1 on a path with selling."""

    @_needs(f"{source}_sold_usd", "forced_sold_usd")
    def share(res: SimulationResult) -> np.ndarray:
        total = res.raw.forced_sold_usd
        sold = res.raw[f"{source}_sold_usd"]
        return np.where(total > 0, sold / np.where(total > 0, total, 1.0), 0.0)

    return share


FLOW_METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("dealers_selling_share", "fraction of forced selling",
               "Option dealers' delta-hedging sales as a share of all forced selling (liquidations and every "
               "forced flow, USD)", compute=_selling_share("dealers"), fmt="pct", risk=+1,
               label="dealers' share of selling", table_stats=("mean", "p99")),
    MetricSpec("leverage_targeting_selling_share", "fraction of forced selling",
               "Leverage-targeting holders' deleveraging sales (the leverage spiral) as a share of all forced "
               "selling (USD)", compute=_selling_share("leverage_targeting"), fmt="pct", risk=+1,
               label="leverage targeters' share of selling", table_stats=("mean", "p99")),
    MetricSpec("stops_selling_share", "fraction of forced selling",
               "Stop-loss clusters' sales as a share of all forced selling (USD)", compute=_selling_share("stops"),
               fmt="pct", risk=+1, label="stops' share of selling", table_stats=("mean", "p99")),
)


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("bad_debt_usd", "USD", "Realised deficit, open underwater debt at the horizon, and the certain "
               "deficit of accounts left liquidatable at the horizon (horizon_exposure_usd)",
               compute=lambda res: res.raw.bad_debt_usd.sum(1), summary="tail", fmt="usd", risk=+1,
               label="bad debt", plot="distribution", by_protocol=lambda res, j: res.raw.bad_debt_usd[:, j]),
    MetricSpec("bad_debt_share", "fraction of debt", "Bad debt divided by the book's initial debt",
               compute=_bad_debt_share, summary="tail", fmt="share", risk=+1, label="bad debt / debt",
               table_stats=("mean", "var_99", "es_99")),
    MetricSpec("liquidated_usd", "USD", "Collateral seized by liquidations (oracle value; on perp venues the margin their liquidations "
               "release, the notional closed is perp_liquidated_long_usd / _short_usd)",
               compute=ledger("collateral_seized_usd"), fmt="usd", risk=0, label="liquidated collateral", table_stats=("mean",),
               by_protocol=_protocol_column("collateral_seized_usd")),
    MetricSpec("liquidations", "calls", "Liquidation calls (each venue's liquidation action: a close-factor call, an absorb, a bark, "
               "a perp position closed)",
               compute=ledger("liquidations"), fmt="count", risk=0, label="liquidation calls",
               table_stats=("mean",)),
    MetricSpec("amplification", "ratio", "Market drawdown / exogenous drawdown of the main collateral asset",
               compute=_amplification, fmt="ratio", risk=+1, label="amplification",
               table_stats=("mean", "p99")),
    MetricSpec("time_to_stabilise_h", "hours", "From the first to the last liquidation of a path",
               compute=_time_to_stabilise, fmt="hours", risk=0, label="time to stabilise",
               table_stats=("mean",)),
    MetricSpec("debt_repaid_usd", "USD", "Debt repaid by liquidators", compute=ledger("debt_repaid_usd"),
               fmt="usd", table=False, label="debt repaid"),
    MetricSpec("liquidator_bonus_usd", "USD", "Liquidation bonus earned by liquidators (paid by borrowers)",
               compute=ledger("liquidator_bonus_usd"), fmt="usd", label="liquidator bonus", table=False),
    MetricSpec("protocol_fee_usd", "USD", "Share of the bonus taken by the protocol treasury",
               compute=ledger("protocol_fee_usd"), fmt="usd", table=False, label="protocol fee"),
    MetricSpec("realised_bad_debt_usd", "USD", "Deficit written off during the horizon (no collateral left)",
               compute=ledger("realised_bad_debt_usd"), fmt="usd", risk=+1, table=False,
               label="realised bad debt"),
    MetricSpec("unrealised_bad_debt_usd", "USD", "Open underwater debt at the horizon",
               compute=ledger("unrealised_bad_debt_usd"), fmt="usd", risk=+1, table=False,
               label="unrealised bad debt"),
    MetricSpec("horizon_exposure_usd", "USD",
               "Certain deficit of accounts left liquidatable at the horizon (nobody liquidated them: gas above "
               "the bonus, the call cap): what a liquidation at the final prices would leave uncovered beyond "
               "their underwater part; included in bad debt", compute=ledger("horizon_exposure_usd"), fmt="usd",
               risk=+1, table=False, label="horizon exposure", by_protocol=_protocol_column("horizon_exposure_usd")),
    MetricSpec("inventory_usd", "USD", "Collateral the protocol holds unsold at the horizon (Comet)",
               compute=ledger("inventory_usd"), fmt="usd", table=False, label="protocol inventory"),
    MetricSpec("borrower_penalty_usd", "USD",
               "Liquidation penalty paid by borrowers: collateral given up beyond the debt repaid and returned",
               compute=_borrower_penalty_usd, summary="tail", fmt="usd", risk=+1, label="borrower penalty",
               table_stats=("mean",)),
    MetricSpec("borrower_penalty_share", "fraction of debt", "Borrower penalty divided by the book's initial debt",
               compute=_borrower_penalty_share, summary="tail", fmt="share", risk=+1, table=False,
               label="borrower penalty / debt"),
    MetricSpec("borrower_penalty_share_of_collateral", "fraction of collateral",
               "Borrower penalty divided by the book's collateral value at t0",
               compute=_borrower_penalty_share_of_collateral, summary="tail", fmt="share", risk=+1, table=False,
               label="borrower penalty / collateral"),
    MetricSpec("critical_drop", "fraction of price",
               "Smallest instantaneous drop of every non-stable asset that starts a cascade (first liquidation "
               "and market drop >= 1.1 x exogenous)", summary="analysis", fmt="pct", risk=-1,
               label="critical drop", headline=(("first_liquidation", "critical drop: first liquidation"),
                                                 ("cascade", "critical drop: cascade starts"))),
    MetricSpec("capital_efficiency", "fraction of collateral",
               "Borrowing power the parameters give the book at t0 / its collateral value (not an estimate)",
               summary="exact", fmt="pct", risk=0, label="capital efficiency", value=_capital_efficiency,
               headline=(("ratio", "capital efficiency"),), display_for=_capital_efficiency_display),
    *PERP_METRICS,
    *FLOW_METRICS,
)


def metric(name: str) -> MetricSpec:
    """The declaration of ``name``."""
    for spec in METRICS:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown metric '{name}' (declared: {', '.join(s.name for s in METRICS)})")


def monte_carlo_metrics(specs: Sequence[MetricSpec] = METRICS) -> tuple[MetricSpec, ...]:
    return tuple(s for s in specs if s.monte_carlo)


def headline_value(spec: MetricSpec, entry: Any, key: str | None = None) -> float | None:
    """The number a table shows for an exact/analysis metric entry of ``metrics()`` (its first headline)."""
    if entry is None:
        return None
    if isinstance(entry, dict):
        return entry.get(key or (spec.headline[0][0] if spec.headline else ""))
    return entry
