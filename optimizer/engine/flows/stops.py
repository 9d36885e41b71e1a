"""Stop-loss clusters as a flow source (:mod:`optimizer.behaviour.stops` on the cascade loop).

Each round the clusters see the lowest and highest market price of their asset the round reaches: the
bar's market low and high (exogenous bar x the pool's impact at the round's start), so a stop inside a
bar's wick fires, and a cascade that pushes the market through a level in a later round fires it then.
Each cluster fires once, selling (sell stops) or buying (buy stops) its whole size.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...behaviour.stops import stop_clusters
from ..kernel_flows import FLOW_STOPS, ROW_WIDTH, KFlowSpec
from ..venues.base import MarketView
from .base import FlowSource


class StopFlows(FlowSource):
    name = "stops"
    data_keys = ("clusters",)
    build = staticmethod(stop_clusters)

    def reset(self, price_usd: float) -> Any:
        return self.ctx.model.start(1, price_usd)

    def trade(self, state: Any, view: MarketView) -> tuple[float, Any]:
        a = self.ctx.asset
        flow, nxt = self.ctx.model.step(state, np.array([view.low[a]]), np.array([view.high[a]]))
        return float(flow[0]), nxt

    def kernel_spec(self) -> KFlowSpec:
        """The clusters as rows (level USD, size base, side: -1 sell, +1 buy)."""
        c = self.ctx.model
        rows = np.zeros((c.level_usd.size, ROW_WIDTH))
        rows[:, 0], rows[:, 1], rows[:, 2] = c.level_usd, c.size_base, c.side.astype(np.float64)
        return KFlowSpec(FLOW_STOPS, rows, 0.0)
