"""Stop-loss clusters at price levels: orders that fire once when the price crosses their level.

Traders rest stop orders at levels (often round numbers, recent lows and highs). A **sell stop** (a long
protecting itself) at level ``K`` becomes a market sell of ``size_base`` the first time the price trades
at or below ``K``; a **buy stop** (a short) becomes a market buy the first time the price trades at or
above ``K``. Each order fires once. A cascade that pushes the price through a cluster releases its
whole size at once: another forced flow on the same market as liquidations.

**Calling it.** :meth:`StopClusters.start` once per path set with the start price: stops already crossed
at the start (a sell stop at or above it, a buy stop at or below it) count as fired before the window and
never fire. Then :meth:`StopClusters.step` once per round or step with the lowest and the highest price
traded since the previous call (one per path: the bar low and high at the start of a step, then the price
each round's impact reaches); it returns the signed flow (``< 0`` sells) and the new :class:`StopState`,
whose :class:`~optimizer.behaviour.FlowTally` counts what the stops sold and bought. Vectorised over paths
and levels; no I/O except :func:`load_stop_clusters`.

Data: ``data/behaviour/stops_btc_example.json`` is an ILLUSTRATIVE set of clusters at round BTC levels
around the 10 Oct 2025 window; it is not measured order-book data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ._tally import FlowTally

SELL, BUY = -1, 1


@dataclass(frozen=True)
class StopState:
    """Per path and cluster: whether it has fired (or was crossed before the start); the flow tally."""

    fired: np.ndarray  # (n_paths, n_clusters) bool
    tally: FlowTally


@dataclass(frozen=True)
class StopClusters:
    """Stop orders grouped by level (arrays over clusters). Build with :func:`stop_clusters`."""

    level_usd: np.ndarray  # (k,)
    size_base: np.ndarray  # (k,) > 0
    side: np.ndarray  # (k,) int8: SELL (-1, fires at or below the level) or BUY (+1, at or above)
    sources: Mapping[str, str] = field(default_factory=dict)

    def start(self, n_paths: int, price_usd: float | np.ndarray) -> StopState:
        """Nothing fired yet, except stops already crossed at the start price (scalar or one per path)."""
        p = np.broadcast_to(np.asarray(price_usd, dtype=np.float64), (n_paths,))[:, None]
        crossed = np.where(self.side == SELL, p <= self.level_usd, p >= self.level_usd)
        return StopState(crossed, FlowTally.zeros(n_paths))

    def step(self, state: StopState, low_usd: np.ndarray, high_usd: np.ndarray) -> tuple[np.ndarray, StopState]:
        """Fire every live stop whose level the price reached since the last call.

        Parameters
        ----------
        state : StopState
        low_usd, high_usd : (n_paths,) or scalar
            Lowest and highest price traded since the previous call.

        Returns
        -------
        flow_base : (n_paths,)
            ``sum(side * size)`` over the stops fired now (sells < 0, buys > 0).
        state : StopState
        """
        n = state.fired.shape[0]
        lo = np.broadcast_to(np.asarray(low_usd, dtype=np.float64), (n,))[:, None]
        hi = np.broadcast_to(np.asarray(high_usd, dtype=np.float64), (n,))[:, None]
        reached = np.where(self.side == SELL, lo <= self.level_usd, hi >= self.level_usd)
        fire = reached & ~state.fired
        flow = (fire * (self.side * self.size_base)).sum(axis=1)
        return flow, StopState(state.fired | fire, state.tally.add(flow))


def stop_clusters(spec: Mapping[str, Any], *, file: str | None = None) -> StopClusters:
    """Build and validate clusters from a dict (the JSON format of ``data/behaviour/``).

    ``spec["clusters"]`` is a non-empty list of ``{"level_usd", "size_base", "side"}`` with ``side``
    ``sell`` (below the price, protecting longs) or ``buy`` (above, protecting shorts). A value may be given
    as ``{"value": x, "source": "..."}``. Errors are one-line :class:`InputError` naming the field.
    """
    items = spec.get("clusters")
    if not isinstance(items, list) or not items:
        raise InputError("must be a non-empty list of stop clusters", file=file, field="clusters")
    level, size, side = [], [], []
    for i, c in enumerate(items):
        where = f"clusters[{i}]."
        if not isinstance(c, Mapping):
            raise InputError("must be an object", file=file, field=where[:-1])
        s = c.get("side")
        if s not in ("sell", "buy"):
            raise InputError(f"must be sell or buy, got {s!r}", file=file, field=f"{where}side")
        for key, out in (("level_usd", level), ("size_base", size)):
            v = c.get(key)
            v = v.get("value") if isinstance(v, Mapping) else v
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or not v > 0:
                raise InputError(f"must be a positive number, got {v!r}", file=file, field=f"{where}{key}")
            out.append(float(v))
        side.append(SELL if s == "sell" else BUY)
    sources = {k: str(v["source"]) for k, v in spec.items() if isinstance(v, Mapping) and "source" in v}
    return StopClusters(np.array(level), np.array(size), np.array(side, dtype=np.int8), sources)


def load_stop_clusters(path: str | Path) -> StopClusters:
    """Read a stop-clusters JSON file (the I/O edge of this module)."""
    from ..snapshots import read_json

    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError("must be a JSON object", file=str(path))
    return stop_clusters(data, file=str(path))
