"""Simulated liquidations beside real ones: per time bin and in total, with relative errors and a figure.

:func:`compare` takes two :class:`~optimizer.backtest.events.Events` (simulated, actual) and bins both on
the same grid (default one hour, aligned to whole bins since the epoch, from the first to the last
event of either). Per bin and in total it reports:

- ``count``: number of liquidation events;
- ``collateral_seized_usd``: Σ collateral_seized_tokens × collateral_price_usd;
- ``debt_repaid_usd``: Σ debt_repaid_tokens × debt_price_usd;
- ``bad_debt_usd``: Σ bad_debt_usd;

and the timing of the **first wave** (the first event) and of the **largest wave** (the start of the
bin with the most collateral seized; the earliest on ties). Relative errors are
``(simulated − actual) / |actual|`` (0 when both are 0, ``inf`` when only the actual is 0); a timing
error is the shift ``simulated − actual`` in seconds and, as a relative error, that shift over the
length of the compared window.
"""

from __future__ import annotations

import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .events import Events

METRICS = ("count", "collateral_seized_usd", "debt_repaid_usd", "bad_debt_usd")


def relative_error(sim: float, actual: float) -> float:
    """``(sim − actual)/|actual|``; 0 when both are 0, ±inf when only ``actual`` is 0."""
    if actual == 0:
        return 0.0 if sim == 0 else float(np.sign(sim)) * float("inf")
    return (sim - actual) / abs(actual)


def _per_bin(ev: Events, edges_s: np.ndarray) -> dict[str, np.ndarray]:
    k = edges_s.shape[0] - 1
    b = np.searchsorted(edges_s, ev.timestamp_s, side="right") - 1
    inside = (b >= 0) & (b < k)
    b = b[inside]
    out = {"count": np.bincount(b, minlength=k).astype(np.float64)}
    for name, values in (("collateral_seized_usd", ev.collateral_seized_usd), ("debt_repaid_usd", ev.debt_repaid_usd),
                         ("bad_debt_usd", ev.bad_debt_usd)):
        out[name] = np.bincount(b, weights=values[inside], minlength=k)
    return out


def _waves(ev: Events, per_bin: dict[str, np.ndarray], edges_s: np.ndarray) -> dict[str, int | None]:
    inside = (ev.timestamp_s >= edges_s[0]) & (ev.timestamp_s < edges_s[-1])
    first = int(ev.timestamp_s[inside].min()) if inside.any() else None
    seized = per_bin["collateral_seized_usd"]
    largest = int(edges_s[int(np.argmax(seized))]) if seized.size and seized.max() > 0 else None
    return {"first_wave_s": first, "largest_wave_s": largest}


@dataclass(frozen=True)
class Comparison:
    """Result of :func:`compare`. ``bin_start_s`` are the bins' start times (s since the epoch, UTC)."""

    bin_s: int
    bin_start_s: np.ndarray
    simulated: dict[str, np.ndarray]  # per-bin arrays, keys METRICS
    actual: dict[str, np.ndarray]
    protocol: str | None
    simulated_waves: dict[str, int | None]
    actual_waves: dict[str, int | None]

    @property
    def window_s(self) -> int:
        return int(self.bin_s * self.bin_start_s.shape[0])

    def totals(self) -> dict[str, dict[str, float]]:
        """``{metric: {"simulated", "actual", "relative_error"}}``."""
        out = {}
        for m in METRICS:
            s, a = float(self.simulated[m].sum()), float(self.actual[m].sum())
            out[m] = {"simulated": s, "actual": a, "relative_error": relative_error(s, a)}
        return out

    def timing(self) -> dict[str, dict[str, Any]]:
        """``{"first_wave"|"largest_wave": {"simulated", "actual" (ISO UTC), "shift_s", "relative_error"}}``."""
        out = {}
        for key in ("first_wave", "largest_wave"):
            s, a = self.simulated_waves[f"{key}_s"], self.actual_waves[f"{key}_s"]
            shift = None if s is None or a is None else s - a
            out[key] = {"simulated": _iso(s), "actual": _iso(a), "shift_s": shift,
                        "relative_error": None if shift is None else shift / self.window_s}
        return out

    def summary(self) -> dict[str, Any]:
        """JSON-ready summary (non-finite relative errors as ``None``)."""
        totals = {m: {k: (v if np.isfinite(v) else None) for k, v in d.items()} for m, d in self.totals().items()}
        return {"protocol": self.protocol, "bin_s": self.bin_s, "start": _iso(int(self.bin_start_s[0])),
                "end": _iso(int(self.bin_start_s[-1]) + self.bin_s), "totals": totals, "timing": self.timing()}

    def rows(self) -> list[dict[str, Any]]:
        """One row per bin: ``bin_start`` and ``<metric>_simulated`` / ``<metric>_actual``."""
        rows = []
        for i, t in enumerate(self.bin_start_s):
            row: dict[str, Any] = {"bin_start": _iso(int(t))}
            for m in METRICS:
                row[f"{m}_simulated"] = float(self.simulated[m][i])
                row[f"{m}_actual"] = float(self.actual[m][i])
            rows.append(row)
        return rows

    def plot(self, path: str | Path, *, title: str | None = None) -> Path:
        """Write a PNG (matplotlib, Agg) of both through time: collateral seized per bin, its cumulative
        sum, and the number of events per bin. Written atomically."""
        import matplotlib

        matplotlib.use("Agg", force=True)
        from matplotlib.figure import Figure

        t = (self.bin_start_s + self.bin_s / 2).astype("datetime64[s]").astype("datetime64[ms]").tolist()
        width_days = self.bin_s / 86_400 * 0.4
        fig = Figure(figsize=(9, 7.5), dpi=100)
        axes = fig.subplots(3, 1, sharex=True)
        for ax, metric, label in ((axes[0], "collateral_seized_usd", "collateral seized\nper bin, $M"),
                                  (axes[2], "count", "liquidations per bin")):
            scale = 1e-6 if metric.endswith("_usd") else 1.0
            off = np.timedelta64(int(self.bin_s * 0.2), "s").astype("timedelta64[ms]").tolist()
            ax.bar([x - off for x in t], self.actual[metric] * scale, width=width_days, label="actual", color="0.35")
            ax.bar([x + off for x in t], self.simulated[metric] * scale, width=width_days, label="simulated",
                   color="tab:red")
            ax.set_ylabel(label, fontsize=8)
            ax.legend(loc="upper left", fontsize=8)
        axes[1].step(t, np.cumsum(self.actual["collateral_seized_usd"]) * 1e-6, where="mid", color="0.35",
                     label="actual")
        axes[1].step(t, np.cumsum(self.simulated["collateral_seized_usd"]) * 1e-6, where="mid", color="tab:red",
                     label="simulated")
        axes[1].set_ylabel("cumulative collateral\nseized, $M", fontsize=8)
        axes[1].legend(loc="upper left", fontsize=8)
        axes[2].set_xlabel("time (UTC)")
        tot = self.totals()["collateral_seized_usd"]
        fig.suptitle(title or f"{self.protocol or 'all protocols'}: simulated vs actual liquidations "
                     f"(collateral seized {tot['simulated'] / 1e6:.2f} vs {tot['actual'] / 1e6:.2f} $M)", fontsize=10)
        fig.autofmt_xdate()
        buf = io.BytesIO()
        fig.savefig(buf, format="png")
        return _atomic_write_bytes(Path(path), buf.getvalue())


def compare(simulated: Events, actual: Events, *, bin_s: int = 3600, start_s: int | None = None,
            end_s: int | None = None, protocol: str | None = None) -> Comparison:
    """Bin both event sets on one grid and compare them (see the module docstring).

    ``start_s``/``end_s`` (s since the epoch, UTC) fix the window; by default it runs from the bin of the
    first event to the end of the bin of the last one, over both sets. ``protocol`` keeps only that
    protocol's events in both.
    """
    if not bin_s > 0:
        raise InputError(f"must be > 0 seconds, got {bin_s}", field="bin_s")
    sim, act = simulated.for_protocol(protocol), actual.for_protocol(protocol)
    ts = np.concatenate([sim.timestamp_s, act.timestamp_s])
    if start_s is None or end_s is None:
        if ts.size == 0:
            raise InputError("no events to compare (both files are empty for this protocol)", field="protocol")
        lo = int(ts.min()) // bin_s * bin_s
        hi = (int(ts.max()) // bin_s + 1) * bin_s
        start_s = lo if start_s is None else start_s
        end_s = hi if end_s is None else end_s
    if not end_s > start_s:
        raise InputError(f"window end {_iso(end_s)} is not after its start {_iso(start_s)}", field="end")
    n_bins = -(-(end_s - start_s) // bin_s)
    edges = start_s + bin_s * np.arange(n_bins + 1, dtype=np.int64)
    s_bins, a_bins = _per_bin(sim, edges), _per_bin(act, edges)
    return Comparison(int(bin_s), edges[:-1], s_bins, a_bins, protocol, _waves(sim, s_bins, edges),
                      _waves(act, a_bins, edges))


def _iso(t: int | None) -> str | None:
    return None if t is None else f"{np.datetime64(int(t), 's')}Z"


def _atomic_write_bytes(path: Path, data: bytes) -> Path:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as e:
        raise InputError(f"cannot write ({e.strerror})", file=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
