"""Leverage-targeting holders as a flow source (:mod:`optimizer.behaviour.leverage_targeting` on the loop).

Each round the holders trade back to their target leverage at the round's market close of their asset:
a fall makes them sell, their sale moves the pool, the next round sees the lower price and they sell
again -- the leverage spiral of ``oracles.md`` §5, now through the engine's synchronous rounds. With a
constant exogenous price, LINEAR liquidity and the ``first_order`` convention the market price after
round ``n`` is exactly ``p0 * (1 + r0 * sum_{k<n} m^k)`` (``tests/engine/test_forced_flows.py``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...behaviour.leverage_targeting import leverage_targeters
from ..kernel_flows import FLOW_LEVERAGE, ROW_WIDTH, KFlowSpec
from ..venues.base import MarketView
from .base import FlowSource


class LeverageTargetingFlows(FlowSource):
    name = "leverage_targeting"
    data_keys = ("holders", "convention")
    build = staticmethod(leverage_targeters)

    def reset(self, price_usd: float) -> Any:
        return self.ctx.model.start(1, price_usd)

    def trade(self, state: Any, view: MarketView) -> tuple[float, Any]:
        flow, nxt = self.ctx.model.step(state, np.array([view.close[self.ctx.asset]]))
        return float(flow[0]), nxt

    def kernel_spec(self) -> KFlowSpec:
        """The holder groups as rows (exposure USD, target leverage); 1.0 for the first-order convention."""
        h = self.ctx.model
        rows = np.zeros((h.exposure_usd.size, ROW_WIDTH))
        rows[:, 0], rows[:, 1] = h.exposure_usd, h.target_leverage
        return KFlowSpec(FLOW_LEVERAGE, rows, 1.0 if h.convention == "first_order" else 0.0)
