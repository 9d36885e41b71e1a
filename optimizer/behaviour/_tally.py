"""What the forced-flow models share: a per-path tally of their flows and each source's share of the selling.

Every forced-flow model (:mod:`~optimizer.behaviour.dealers`, :mod:`~optimizer.behaviour.leverage_targeting`,
:mod:`~optimizer.behaviour.stops`) returns signed base-asset flows per path (``> 0`` buys, ``< 0`` sells,
the sign convention of perp liquidations' ``market_flow_base``), so a loop routes them into the same pools as
liquidations, and keeps a :class:`FlowTally` in its state that the loop adds to its ledger.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class FlowTally:
    """Cumulative flow of one source per path, in base units: sold (>= 0) and bought (>= 0)."""

    sold_base: np.ndarray  # (n_paths,)
    bought_base: np.ndarray  # (n_paths,)

    @classmethod
    def zeros(cls, n_paths: int) -> FlowTally:
        return cls(np.zeros(n_paths), np.zeros(n_paths))

    def add(self, flow_base: np.ndarray) -> FlowTally:
        """The tally after one more signed flow per path (``< 0`` sold, ``> 0`` bought)."""
        f = np.asarray(flow_base, dtype=np.float64)
        return FlowTally(self.sold_base + np.maximum(-f, 0.0), self.bought_base + np.maximum(f, 0.0))

    @property
    def net_base(self) -> np.ndarray:
        return self.bought_base - self.sold_base


def selling_shares(sold_base_by_source: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Each source's share of all selling, per path.

    Parameters
    ----------
    sold_base_by_source : mapping
        Source name -> base units it sold per path (e.g. ``{"liquidations": ..., "dealers":
        tally.sold_base, ...}``), all of one shape and one asset.

    Returns
    -------
    dict
        Source name -> ``sold / total sold`` per path; NaN on paths where nothing was sold. The
        shares of a path add up to 1.
    """
    sold = {k: np.asarray(v, dtype=np.float64) for k, v in sold_base_by_source.items()}
    total = sum(sold.values()) if sold else np.zeros(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {k: np.where(total > 0, v / total, np.nan) for k, v in sold.items()}
