"""Option dealers' delta hedging as a flow source (:mod:`optimizer.behaviour.dealers` on the cascade loop).

Each round the dealers rebalance towards the delta-neutral hedge of their gamma profile at the round's
market close of their asset and the time since the start (``t * step_s``: charm moves the target as
time passes; expired strikes no longer trade). Short-gamma dealers sell into a fall and buy into a
rise; a move from ``S0`` to ``S1`` at a fixed time trades exactly ``-(D(S1) - D(S0))`` base units
(``hedge_fraction`` of the gap per round when below 1).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ...behaviour.dealers import dealer_book
from ..kernel_flows import FLOW_DEALERS, KFlowSpec
from ..venues.base import MarketView
from .base import FlowSource


class DealerFlows(FlowSource):
    name = "dealers"
    data_keys = ("options", "hedge_fraction")
    build = staticmethod(dealer_book)

    def reset(self, price_usd: float) -> Any:
        return self.ctx.model.start(1, price_usd)

    def trade(self, state: Any, view: MarketView) -> tuple[float, Any]:
        flow, nxt = self.ctx.model.step(state, np.array([view.close[self.ctx.asset]]), view.now_s)
        return float(flow[0]), nxt

    def kernel_spec(self) -> KFlowSpec:
        """The dealers' options as rows (strike, expiry s, vol, position, call) and their hedge fraction."""
        b = self.ctx.model
        rows = np.column_stack([b.strike_usd, b.expiry_s, b.implied_vol, b.position_base,
                                b.is_call.astype(np.float64)])
        return KFlowSpec(FLOW_DEALERS, rows, float(b.hedge_fraction))
