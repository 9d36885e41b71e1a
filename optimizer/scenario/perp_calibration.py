"""Forced-liquidation flows of a perp market and the static liquidation map they calibrate.

Data
----
A flows CSV (``data/flows/``) has one row per minute:
``timestamp,bid_usd,ask_usd,long_liquidated_base,short_liquidated_base`` -- the minute's mean best bid
and ask (USD; USDT taken as USD) and the base units (ETH) of longs and shorts the venue force-closed
in it. ``timestamp`` is ISO-8601 UTC (the mean time of the minute's quotes in the bundled file).
:func:`read_liquidation_flows_csv` reads it through the one checked reader.

Model
-----
A book standing at a price high has its long liquidation prices spread below it: the *static
liquidation map*. When the price then falls by a relative depth ``x`` below the high (and no new
positions open), the longs liquidated are those whose liquidation price lies within ``x``:
``L(x) = OI * rho * max(x - d0, 0)`` for a map with a dead band ``d0`` (positions opened near the high
at the venue's highest leverage still need a move of about ``1/L_max - mmr``) and a constant density
``rho`` beyond it. The data measure ``L`` directly: for every minute ``t``, take the highest mid
price of the trailing ``window`` minutes (the reference high ``h``), the deepest fall below it since
``h``, ``x_t = 1 - min_{h<=s<=t} mid_s / mid_h``, and the longs liquidated after the high,
``C_t = sum_{h<s<=t} long_liquidated_s``. The hinge ``C = slope * max(x - d0, 0)`` is fitted by least
squares over all minutes (``slope`` in closed form, ``d0`` on a 0.05 % grid). Shorts: the same with
price rises from the trailing low. The window is the time a book is taken to stand still: positions
opened during a fall are liquidated by it too, so longer windows give steeper slopes (the tool
reports the sensitivity); 240 minutes matches the few-hour stress windows the simulator replays.

Uncertainty: the minutes of one day are strongly dependent (overlapping windows, one episode), so
the fit is bootstrapped by resampling whole UTC days with replacement (``n_boot`` times, one seeded
Generator); the report gives the bootstrap standard error and the 2.5 / 97.5 % percentiles of
``slope`` and ``d0``. The per-day sufficient statistics make a replicate a weighted sum.

The slope is in base units per unit of relative move; divided by the market's open interest (an
outside reference, stated with its source in the calibration file) it becomes the share of open
interest per unit of move that :mod:`optimizer.scenario.perp_book` uses to draw calibrated books.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import read_text
from .history import _check_order, _parse_times
from .perp_book import csv_columns, parse_numbers

FLOW_COLUMNS = ("timestamp", "bid_usd", "ask_usd", "long_liquidated_base", "short_liquidated_base")
DEAD_BAND_GRID = np.round(np.arange(0.0, 0.1 + 1e-12, 0.0005), 6)
_CHUNK = 4096  # rows per block when scanning trailing windows (bounds memory to CHUNK x window)


@dataclass(frozen=True, eq=False)
class LiquidationFlows:
    """Per-minute quotes and forced liquidations of one perp market (arrays read-only)."""

    timestamps: np.ndarray  # datetime64[s]
    bid_usd: np.ndarray
    ask_usd: np.ndarray
    long_liquidated_base: np.ndarray
    short_liquidated_base: np.ndarray
    source: str

    def __len__(self) -> int:
        return int(self.timestamps.shape[0])

    @property
    def mid_usd(self) -> np.ndarray:
        return 0.5 * (self.bid_usd + self.ask_usd)

    def liquidated_base(self, side: str) -> np.ndarray:
        return self.long_liquidated_base if side == "long" else self.short_liquidated_base


def read_liquidation_flows_csv(path: str | Path, *, label: str | None = None) -> LiquidationFlows:
    """Read and validate a flows CSV (format: module docstring).

    Raises
    ------
    InputError
        Naming the file, the line and the column: missing column, non-numbers, NaN/inf, bid or ask
        <= 0, ask below bid, negative liquidations, timestamps that are not ISO-8601 UTC, unsorted or
        duplicate, fewer than 2 rows.
    """
    file = label or str(path)
    lines, cols = csv_columns(read_text(path, label=label), file, FLOW_COLUMNS)
    if len(lines) < 2:
        raise InputError(f"needs at least 2 data rows (got {len(lines)})", file=file)
    ts = _parse_times(cols["timestamp"], lines, file)
    x = {c: parse_numbers(cols[c], c, lines, file) for c in FLOW_COLUMNS[1:]}
    for c in ("bid_usd", "ask_usd"):
        bad = np.flatnonzero(~(x[c] > 0))
        if bad.size:
            raise InputError(f"must be > 0, got {x[c][bad[0]]:g}", file=file,
                             field=f"line {int(lines[bad[0]])}, column {c}")
    bad = np.flatnonzero(x["ask_usd"] < x["bid_usd"])
    if bad.size:
        i = int(bad[0])
        raise InputError(f"ask {x['ask_usd'][i]:g} is below bid {x['bid_usd'][i]:g}", file=file,
                         field=f"line {int(lines[i])}, column ask_usd")
    for c in ("long_liquidated_base", "short_liquidated_base"):
        bad = np.flatnonzero(x[c] < 0)
        if bad.size:
            raise InputError(f"must be >= 0, got {x[c][bad[0]]:g}", file=file,
                             field=f"line {int(lines[bad[0]])}, column {c}")
    _check_order(ts, lines, file)
    for a in (ts, *x.values()):
        a.setflags(write=False)
    return LiquidationFlows(ts, x["bid_usd"], x["ask_usd"], x["long_liquidated_base"], x["short_liquidated_base"], file)


def depth_since_extreme(price: np.ndarray, liquidated: np.ndarray, window: int, side: str
                        ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Deepest adverse move since the trailing extreme, and what liquidated since, for every row.

    Parameters
    ----------
    price : (n,) float
        Mid prices, one per minute.
    liquidated : (n,) float
        Base units liquidated of the side in each minute.
    window : int
        Rows (minutes) of the trailing window in which the reference extreme is taken (>= 1).
    side : ``"long"`` or ``"short"``
        Longs: the trailing high and the deepest fall below it; shorts: the trailing low and the
        highest rise above it.

    Returns
    -------
    depth : (n,)
        ``1 - min(price[h..t]) / price[h]`` (longs) or ``max(price[h..t]) / price[h] - 1`` (shorts).
    liquidated_since : (n,)
        ``sum(liquidated[h+1..t])``.
    reference : (n,) int
        ``h``, the row of the extreme (the first one if it repeats).
    """
    if side not in ("long", "short"):
        raise ValueError(f"side must be 'long' or 'short', got {side!r}")
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    x = np.log(np.asarray(price, dtype=np.float64))
    x = x if side == "long" else -x  # a fall of x is the adverse move either way
    n = x.shape[0]
    pad = np.concatenate([np.full(window - 1, -np.inf), x])
    ref = np.empty(n, dtype=np.int64)
    low = np.empty(n)
    cols = np.arange(window)
    for a in range(0, n, _CHUNK):
        b = min(n, a + _CHUNK)
        w = np.lib.stride_tricks.sliding_window_view(pad, window)[a:b]
        k = np.argmax(w, axis=1)
        ref[a:b] = k + np.arange(a, b) - (window - 1)
        low[a:b] = np.where(cols[None, :] >= k[:, None], w, np.inf).min(axis=1)
    move = np.exp(low - x[ref])  # min/high for longs; for shorts high/low inverted
    depth = 1.0 - move if side == "long" else 1.0 / move - 1.0
    cum = np.concatenate([[0.0], np.cumsum(np.asarray(liquidated, dtype=np.float64))])
    return depth, cum[np.arange(n) + 1] - cum[ref + 1], ref


@dataclass(frozen=True)
class HingeFit:
    """``liquidated_since = slope * max(depth - dead_band, 0)`` fitted by least squares, with a day bootstrap.

    ``slope`` is in base units per unit of relative move (``slope / 100`` per 1 % move).
    """

    side: str
    window_min: int
    slope_base: float
    dead_band: float
    r2_uncentered: float
    n_minutes: int
    n_days: int
    max_depth: float
    boot_slope_base: np.ndarray  # (n_boot,)
    boot_dead_band: np.ndarray  # (n_boot,)

    @property
    def slope_se_base(self) -> float:
        return float(np.std(self.boot_slope_base, ddof=1))

    @property
    def slope_ci95_base(self) -> tuple[float, float]:
        lo, hi = np.percentile(self.boot_slope_base, [2.5, 97.5])
        return float(lo), float(hi)

    @property
    def dead_band_ci95(self) -> tuple[float, float]:
        lo, hi = np.percentile(self.boot_dead_band, [2.5, 97.5])
        return float(lo), float(hi)

    def predict(self, depth: np.ndarray) -> np.ndarray:
        return self.slope_base * np.maximum(np.asarray(depth, dtype=np.float64) - self.dead_band, 0.0)


def _hinge_stats(depth: np.ndarray, y: np.ndarray, group: np.ndarray, n_groups: int, grid: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per group and grid value: sum(x*y), sum(x*x) with ``x = max(depth - d0, 0)``; and sum(y*y) per group."""
    sxy = np.empty((grid.size, n_groups))
    sxx = np.empty((grid.size, n_groups))
    for g, d0 in enumerate(grid):
        xg = np.maximum(depth - d0, 0.0)
        sxy[g] = np.bincount(group, weights=xg * y, minlength=n_groups)
        sxx[g] = np.bincount(group, weights=xg * xg, minlength=n_groups)
    return sxy, sxx, np.bincount(group, weights=y * y, minlength=n_groups)


def _solve(sxy: np.ndarray, sxx: np.ndarray, syy: np.ndarray, w: np.ndarray) -> tuple[float, int, float]:
    a, b, c = sxy @ w, sxx @ w, float(syy @ w)
    with np.errstate(divide="ignore", invalid="ignore"):
        slope = np.where(b > 0, a / b, 0.0)
        sse = np.where(b > 0, c - a * slope, np.inf)
    g = int(np.argmin(sse))
    return float(slope[g]), g, (1.0 - float(sse[g]) / c) if c > 0 else float("nan")


def fit_liquidation_map(flows: LiquidationFlows, side: str, window_min: int = 240, *, n_boot: int = 2000,
                        seed: int = 20210111, grid: np.ndarray = DEAD_BAND_GRID) -> HingeFit:
    """Fit one side's static liquidation map to the flows (model and bootstrap: module docstring).

    Parameters
    ----------
    flows : LiquidationFlows
    side : ``"long"`` or ``"short"``
    window_min : int
        Trailing window of the reference extreme, in rows (one per minute).
    n_boot : int
        Day-bootstrap replicates (>= 2).
    seed : int
        Seed of the bootstrap's one Generator (same inputs, same result).
    grid : array
        Candidate dead bands (relative moves).
    """
    depth, cum, _ = depth_since_extreme(flows.mid_usd, flows.liquidated_base(side), window_min, side)
    day = flows.timestamps.astype("datetime64[D]")
    days, group = np.unique(day, return_inverse=True)
    group = group.reshape(-1)
    usable = grid[grid < depth.max()]
    sxy, sxx, syy = _hinge_stats(depth, cum, group, days.size, usable)
    slope, g, r2 = _solve(sxy, sxx, syy, np.ones(days.size))
    rng = np.random.default_rng(seed)
    bs = np.empty(n_boot)
    bd = np.empty(n_boot)
    for b in range(n_boot):
        w = np.bincount(rng.integers(0, days.size, days.size), minlength=days.size).astype(np.float64)
        bs[b], gb, _ = _solve(sxy, sxx, syy, w)
        bd[b] = usable[gb]
    return HingeFit(side, int(window_min), slope, float(usable[g]), r2, len(flows), int(days.size),
                    float(depth.max()), bs, bd)


def calibration_record(fit: HingeFit, open_interest_base: float) -> dict[str, float | list[float] | int]:
    """One side's entry of a calibration file: the fit in base units and as a share of open interest."""
    se = fit.slope_se_base
    lo, hi = fit.slope_ci95_base
    dlo, dhi = fit.dead_band_ci95
    return {
        "window_min": fit.window_min,
        "dead_band": fit.dead_band,
        "dead_band_ci95": [dlo, dhi],
        "slope_base_per_unit_move": fit.slope_base,
        "slope_base_per_unit_move_se": se,
        "slope_base_per_unit_move_ci95": [lo, hi],
        "slope_share_of_open_interest_per_unit_move": fit.slope_base / open_interest_base,
        "slope_share_of_open_interest_per_unit_move_se": se / open_interest_base,
        "slope_share_of_open_interest_per_unit_move_ci95": [lo / open_interest_base, hi / open_interest_base],
        "r2_uncentered": fit.r2_uncentered,
        "max_move_observed": fit.max_depth,
        "minutes": fit.n_minutes,
        "days": fit.n_days,
    }
