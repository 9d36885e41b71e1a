"""Historical price and gas series read from CSV (the I/O edge of the price models).

Price CSVs have one bar per row, ``timestamp,open,high,low,close[,volume]`` (the shared research
format) or the project's own ``timestamp,open_usd,high_usd,low_usd,close_usd[,volume_base]``.
``timestamp`` is the bar's *open* time, ISO-8601 UTC (``2020-03-12T00:00:00Z``; ``+00:00`` or no
offset are accepted, fractional seconds are truncated). Every problem raises
:class:`~optimizer.errors.InputError` naming the file, the line and the column.

Log returns are always taken between bar *closes*; a bar that opens at ``t`` closes at ``t + bar``.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from .limits import MAX_GAS_GWEI, MAX_PRICE_USD

PRICE_COLUMNS = ("open", "high", "low", "close")
# project column name -> canonical name
PRICE_ALIASES = {
    "open_usd": "open",
    "high_usd": "high",
    "low_usd": "low",
    "close_usd": "close",
    "volume_base": "volume",
}
# relative slack for open/close inside [low, high] (text round-trips of the same float)
_OHLC_RTOL = 1e-9


def _readonly(a: np.ndarray) -> np.ndarray:
    a.setflags(write=False)
    return a


@dataclass(frozen=True, eq=False)
class PriceHistory:
    """OHLC(V) bars of one CSV, sorted by time, validated; arrays are read-only.

    Attributes
    ----------
    timestamps : np.ndarray
        Bar open times, ``datetime64[s]`` UTC, strictly increasing.
    open, high, low, close : np.ndarray
        Prices (float64, > 0) in the CSV's quote currency (USD or USDT).
    volume : np.ndarray or None
        Base-asset volume per bar (float64, >= 0), ``None`` when the CSV has no volume column.
    source : str
        The file the bars were read from (used in error messages).
    """

    timestamps: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray | None
    source: str

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def bar_s(self) -> int:
        """The bar interval in seconds: the most common spacing (gaps don't change it)."""
        return bar_interval_s(self.timestamps)

    @property
    def end_times(self) -> np.ndarray:
        """Bar close times (``timestamps + bar_s``), ``datetime64[s]``."""
        return self.timestamps + np.timedelta64(self.bar_s, "s")

    def is_contiguous(self) -> bool:
        """True when every bar follows the previous one by exactly ``bar_s`` (no gaps)."""
        return bool(np.all(np.diff(self.timestamps.astype(np.int64)) == self.bar_s))


@dataclass(frozen=True, eq=False)
class GasHistory:
    """Average gas price per bar (``timestamp,avg_gas_gwei``); arrays are read-only."""

    timestamps: np.ndarray
    gas_gwei: np.ndarray
    source: str

    def __len__(self) -> int:
        return len(self.timestamps)

    @property
    def bar_s(self) -> int:
        """The bar interval in seconds (most common spacing)."""
        return bar_interval_s(self.timestamps)


def bar_interval_s(timestamps: np.ndarray) -> int:
    """Most common spacing of ``timestamps`` in whole seconds (the bar interval despite gaps)."""
    d = np.diff(timestamps.astype("datetime64[s]").astype(np.int64))
    values, counts = np.unique(d, return_counts=True)
    return int(values[np.argmax(counts)])


# ----------------------------------------------------------------------------------- reading

def _read_columns(path: str | Path, required: tuple[str, ...], optional: tuple[str, ...],
                  aliases: dict[str, str]) -> tuple[np.ndarray, dict[str, list[str]], str]:
    """Read a CSV (through the one checked reader, :func:`optimizer.io.read_text`) into raw string
    columns; returns (line numbers, columns, source)."""
    from ..io import read_text

    src = str(path)
    text = read_text(path, label=src)
    with io.StringIO(text, newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader, None)
            while header is not None and not any(c.strip() for c in header):
                header = next(reader, None)
            if header is None:
                raise InputError("empty file (expected a header line)", file=src)
            names = [aliases.get(h.strip().lower(), h.strip().lower()) for h in header]
            missing = [c for c in required if c not in names]
            if missing:
                accepted = [c + "".join(f"/{a}" for a, v in aliases.items() if v == c) for c in missing]
                raise InputError(f"missing column(s) {', '.join(accepted)} (found: {', '.join(header)})",
                                 file=src, field=f"line {reader.line_num}")
            dup = sorted({n for n in names if names.count(n) > 1 and n in required + optional})
            if dup:
                raise InputError(f"column(s) given twice: {', '.join(dup)}", file=src,
                                 field=f"line {reader.line_num}")
            wanted = {c: names.index(c) for c in required + optional if c in names}
            cols: dict[str, list[str]] = {c: [] for c in wanted}
            lines: list[int] = []
            width = len(header)
            for row in reader:
                if not any(c.strip() for c in row):
                    continue  # blank line
                if len(row) != width:
                    raise InputError(f"expected {width} fields, got {len(row)}", file=src,
                                     field=f"line {reader.line_num}")
                lines.append(reader.line_num)
                for c, i in wanted.items():
                    cols[c].append(row[i].strip())
        except csv.Error as e:
            raise InputError(f"malformed CSV ({e})", file=src, field=f"line {reader.line_num}") from None
    if len(lines) < 2:
        raise InputError(f"needs at least 2 data rows (got {len(lines)})", file=src)
    return np.asarray(lines), cols, src


def _where(src: str, lines: np.ndarray, i: int, col: str) -> dict:
    return {"file": src, "field": f"line {int(lines[i])}, column {col}"}


def _parse_times(raw: list[str], lines: np.ndarray, src: str) -> np.ndarray:
    """ISO-8601 UTC strings -> datetime64[s]; vectorised, with a per-row pass to name a bad row."""
    cleaned = []
    for i, s in enumerate(raw):
        if s.endswith(("Z", "z")):
            s = s[:-1]
        elif s.endswith("+00:00"):
            s = s[:-6]
        elif len(s) > 10 and (s[-6] in "+-") and s[-3] == ":":
            raise InputError(f"timestamp '{raw[i]}' is not UTC (use Z or +00:00)",
                             **_where(src, lines, i, "timestamp"))
        cleaned.append(s)
    try:
        ts = np.array(cleaned, dtype="datetime64[s]")
    except ValueError:
        for i, s in enumerate(cleaned):
            try:
                np.datetime64(s, "s")
            except ValueError:
                raise InputError(f"not an ISO-8601 timestamp: '{raw[i]}'",
                                 **_where(src, lines, i, "timestamp")) from None
        raise  # pragma: no cover - the per-row pass always finds the culprit
    nat = np.flatnonzero(np.isnat(ts))
    if nat.size:
        i = int(nat[0])
        raise InputError(f"not an ISO-8601 timestamp: '{raw[i]}'", **_where(src, lines, i, "timestamp"))
    return ts


def _parse_floats(raw: list[str], col: str, lines: np.ndarray, src: str) -> np.ndarray:
    try:
        x = np.array(raw, dtype=np.float64)
    except ValueError:
        for i, s in enumerate(raw):
            try:
                float(s)
            except ValueError:
                raise InputError(f"not a number: '{s}'", **_where(src, lines, i, col)) from None
        raise  # pragma: no cover
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"not a finite number: '{raw[i]}'", **_where(src, lines, i, col))
    return x


def _check_order(ts: np.ndarray, lines: np.ndarray, src: str) -> None:
    d = np.diff(ts.astype(np.int64))
    bad = np.flatnonzero(d <= 0)
    if bad.size:
        i = int(bad[0])
        j = i + 1
        if d[i] == 0:
            raise InputError(f"duplicate timestamp {ts[j]}Z (same as line {int(lines[i])})",
                             **_where(src, lines, j, "timestamp"))
        raise InputError(f"timestamps not sorted: {ts[j]}Z comes after {ts[i]}Z (line {int(lines[i])})",
                         **_where(src, lines, j, "timestamp"))


def _check_min(x: np.ndarray, col: str, lines: np.ndarray, src: str, *, strict: bool) -> None:
    bad = np.flatnonzero(x <= 0 if strict else x < 0)
    if bad.size:
        i = int(bad[0])
        rule = "> 0" if strict else ">= 0"
        raise InputError(f"must be {rule} (got {x[i]:g})", **_where(src, lines, i, col))


def _check_max(x: np.ndarray, col: str, lines: np.ndarray, src: str, hi: float) -> None:
    bad = np.flatnonzero(x > hi)
    if bad.size:
        i = int(bad[0])
        raise InputError(f"must be <= {hi:g} (got {x[i]:g})", **_where(src, lines, i, col))


def read_price_csv(path: str | Path) -> PriceHistory:
    """Read and validate a price CSV.

    Parameters
    ----------
    path : str or Path
        CSV with a header ``timestamp,open,high,low,close[,volume]`` or the project's
        ``timestamp,open_usd,high_usd,low_usd,close_usd[,volume_base]`` (extra columns ignored).

    Returns
    -------
    PriceHistory

    Raises
    ------
    InputError
        Naming the file, the line and the column: missing column, unparsable number or timestamp,
        NaN/inf, price <= 0, negative volume, high < low, open/close outside [low, high],
        unsorted or duplicate timestamps, fewer than 2 rows.
    """
    lines, cols, src = _read_columns(path, ("timestamp",) + PRICE_COLUMNS, ("volume",), PRICE_ALIASES)
    ts = _parse_times(cols["timestamp"], lines, src)
    px = {c: _parse_floats(cols[c], c, lines, src) for c in PRICE_COLUMNS}
    for c in PRICE_COLUMNS:
        _check_min(px[c], c, lines, src, strict=True)
        _check_max(px[c], c, lines, src, MAX_PRICE_USD)
    o, h, lo, c = px["open"], px["high"], px["low"], px["close"]
    bad = np.flatnonzero(h < lo)
    if bad.size:
        i = int(bad[0])
        raise InputError(f"high {h[i]:g} < low {lo[i]:g}", **_where(src, lines, i, "high"))
    for name, x in (("open", o), ("close", c)):
        slack = _OHLC_RTOL * h
        bad = np.flatnonzero((x < lo - slack) | (x > h + slack))
        if bad.size:
            i = int(bad[0])
            raise InputError(f"{name} {x[i]:g} outside [low {lo[i]:g}, high {h[i]:g}]",
                             **_where(src, lines, i, name))
    vol = None
    if "volume" in cols:
        vol = _parse_floats(cols["volume"], "volume", lines, src)
        _check_min(vol, "volume", lines, src, strict=False)
        vol = _readonly(vol)
    _check_order(ts, lines, src)
    return PriceHistory(_readonly(ts), _readonly(o), _readonly(h), _readonly(lo), _readonly(c), vol, src)


def read_gas_csv(path: str | Path) -> GasHistory:
    """Read and validate a gas CSV ``timestamp,avg_gas_gwei`` (gwei >= 0, sorted, unique, >= 2 rows).

    Raises
    ------
    InputError
        Naming the file, the line and the column (same rules as :func:`read_price_csv`).
    """
    lines, cols, src = _read_columns(path, ("timestamp", "avg_gas_gwei"), (), {})
    ts = _parse_times(cols["timestamp"], lines, src)
    gas = _parse_floats(cols["avg_gas_gwei"], "avg_gas_gwei", lines, src)
    _check_min(gas, "avg_gas_gwei", lines, src, strict=False)
    _check_max(gas, "avg_gas_gwei", lines, src, MAX_GAS_GWEI)
    _check_order(ts, lines, src)
    return GasHistory(_readonly(ts), _readonly(gas), src)


# ----------------------------------------------------------------------------------- returns

def log_return_series(history: PriceHistory, step_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Log returns of the closes at ``step_s``, with the time each return ends.

    A CSV finer than the step is resampled by keeping the closes that fall on the step grid
    (anchored at the Unix epoch, so series from different files align; if no bar closes on that
    grid, anchored at the first close instead). Returns spanning a gap in the data are dropped,
    never stretched over the gap.

    Parameters
    ----------
    history : PriceHistory
    step_s : float
        The step in seconds; must equal the bar interval or be a whole multiple of it.

    Returns
    -------
    end_times : np.ndarray
        ``datetime64[s]`` close time of each return.
    returns : np.ndarray
        ``log(close_t / close_{t-step})``, float64.

    Raises
    ------
    InputError
        If the CSV is coarser than the step, the step is not a multiple of the bar interval, or
        fewer than 2 returns remain.
    """
    bar = history.bar_s
    step = round(step_s)
    if abs(step - step_s) > 1e-9 or step <= 0:
        raise InputError(f"step {step_s} s must be a positive whole number of seconds", file=history.source)
    if step < bar:
        raise InputError(f"bars are {bar} s apart, coarser than the {step} s step "
                         "(use a finer CSV or a step that is a multiple of the bars)", file=history.source)
    if step % bar:
        raise InputError(f"step {step} s is not a whole multiple of the {bar} s bars", file=history.source)
    end = history.timestamps.astype(np.int64) + bar
    close = np.asarray(history.close)
    if step != bar:
        on_grid = end % step == 0
        if not on_grid.any():
            on_grid = (end - end[0]) % step == 0
        end, close = end[on_grid], close[on_grid]
    r = np.diff(np.log(close))
    ok = np.diff(end) == step
    out_t, out_r = end[1:][ok].astype("datetime64[s]"), r[ok]
    if out_r.size < 2:
        raise InputError(f"fewer than 2 log returns at the {step} s step", file=history.source)
    return out_t, out_r


def log_returns(history: PriceHistory, step_s: float) -> np.ndarray:
    """Log returns of the closes at ``step_s`` (see :func:`log_return_series`), float64."""
    return log_return_series(history, step_s)[1]


def align_returns(series: dict[str, tuple[np.ndarray, np.ndarray]]) -> tuple[np.ndarray, np.ndarray]:
    """Keep the return times common to every series.

    Parameters
    ----------
    series : dict
        ``name -> (end_times, returns)`` as returned by :func:`log_return_series`.

    Returns
    -------
    end_times : np.ndarray
        The common times, sorted.
    returns : np.ndarray
        ``(n_common, n_series)`` in the dict's order.
    """
    names = list(series)
    common = series[names[0]][0]
    for n in names[1:]:
        common = np.intersect1d(common, series[n][0], assume_unique=True)
    cols = [r[np.isin(t, common, assume_unique=True)] for t, r in (series[n] for n in names)]
    return common, np.column_stack(cols) if cols else np.empty((len(common), 0))
