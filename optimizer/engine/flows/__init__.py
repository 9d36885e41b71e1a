"""Forced-flow sources on the cascade loop and the one registry that maps a scenario model name to one.

The loop asks :func:`flow_sources` for the scenario's ``[[forced_flows]]`` and drives them next to the
venues (:mod:`optimizer.engine.flows.base` has the lifecycle); it knows no model name. A new source
registers its class with :func:`register_flow_source`; the scenario loader accepts every registered
name (``model = "..."``) and validates the table with the class's ``build``.
"""

from __future__ import annotations

from typing import Any

from .base import FORCED_SOLD_FIELD, MAX_ROUNDS_PER_STEP, FlowContext, FlowSource
from .dealers import DealerFlows
from .leverage_targeting import LeverageTargetingFlows
from .stops import StopFlows

#: scenario model name -> flow-source class
FLOW_SOURCES: dict[str, type[FlowSource]] = {c.name: c for c in (DealerFlows, LeverageTargetingFlows, StopFlows)}


def register_flow_source(cls: type[FlowSource]) -> None:
    """Make ``cls`` the source of scenario tables with ``model = cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, FlowSource)):
        raise TypeError(f"{cls!r} is not a FlowSource subclass")
    FLOW_SOURCES[cls.name] = cls


def flow_source_class(model: str) -> type[FlowSource]:
    try:
        return FLOW_SOURCES[model]
    except KeyError:
        raise KeyError(f"no forced-flow source '{model}' (known: {', '.join(sorted(FLOW_SOURCES))})") from None


def flow_sources(bound: Any) -> list[FlowSource]:
    """One source per ``[[forced_flows]]`` table of the bound scenario (in table order)."""
    prep = bound.prepared
    sc = prep.scenario
    assets = prep.market.assets
    out = []
    for i, ff in enumerate(getattr(sc, "forced_flows", ())):
        a = assets.index(ff.asset)
        ctx = FlowContext(i, ff.id, ff.model, a, int(prep.market.price_pool[a]), sc.step_s, ff.min_trade_usd)
        out.append(flow_source_class(ff.kind)(ctx))
    return out


__all__ = ["FLOW_SOURCES", "FORCED_SOLD_FIELD", "MAX_ROUNDS_PER_STEP", "DealerFlows", "FlowContext", "FlowSource",
           "LeverageTargetingFlows", "StopFlows", "flow_source_class", "flow_sources", "register_flow_source"]
