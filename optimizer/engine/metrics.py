"""Risk metrics, each declared once: how it is computed per path and how it is summarised with its error.

Monte Carlo estimates carry a standard error (means, probabilities) or a distribution-free 95 %
confidence interval from order statistics (quantiles); expected shortfall gets a standard error from
a seeded bootstrap, so the same inputs give the same numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats

Z95 = 1.959963984540054
ES_BOOTSTRAP = 400


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


@dataclass(frozen=True)
class MetricSpec:
    name: str
    unit: str
    description: str


METRICS: tuple[MetricSpec, ...] = (
    MetricSpec("bad_debt_usd", "USD", "Realised deficit, open underwater debt at the horizon, and the certain "
               "deficit of accounts left liquidatable at the horizon (horizon_exposure_usd)"),
    MetricSpec("bad_debt_share", "fraction of debt", "Bad debt divided by the book's initial debt"),
    MetricSpec("liquidated_usd", "USD", "Collateral seized by liquidations (oracle value)"),
    MetricSpec("liquidations", "calls", "Liquidation calls (Aave liquidationCall, Comet absorb, Maker bark)"),
    MetricSpec("amplification", "ratio", "Market drawdown / exogenous drawdown of the main collateral asset"),
    MetricSpec("time_to_stabilise_h", "hours", "From the first to the last liquidation of a path"),
)
