"""Venue simulators and the one registry that maps an adapter to its simulator.

The cascade loop asks :func:`simulator_for` for each protocol's simulator and knows no venue name.
A venue gets a specific wrapper only where its liquidators or balance sheet differ from the generic
:class:`LendingVenue` (which runs any :class:`protocols.Adapter` through its ``health`` and
``liquidate``); a new venue registers its wrapper with :func:`register_venue`.
"""

from __future__ import annotations

from protocols import AaveV2, AaveV3, Adapter, CompoundV3, Maker, MakerLiq12, PerpAdapter

from .aave_v2 import AaveV2Venue
from .aave_v3 import AaveV3Venue
from .base import (
    NOTHING,
    AuctionTerms,
    FinalView,
    KernelSpec,
    MarketView,
    OracleSpec,
    PathContext,
    RoundResult,
    VenueContext,
    VenueSimulator,
)
from .compound_v3 import CometVenue
from .lending import LendingVenue
from .maker import MakerVenue
from .maker_flip import MakerFlipVenue
from .perp import PERP_FIELDS, PerpVenue

#: adapter class -> venue simulator class (looked up along the adapter's MRO)
VENUES: dict[type, type[VenueSimulator]] = {
    AaveV3: AaveV3Venue,
    CompoundV3: CometVenue,
    Maker: MakerVenue,
    AaveV2: AaveV2Venue,
    MakerLiq12: MakerFlipVenue,
    Adapter: LendingVenue,
    PerpAdapter: PerpVenue,
}


def register_venue(adapter_cls: type, simulator_cls: type[VenueSimulator]) -> None:
    """Make ``simulator_cls`` the simulator of ``adapter_cls`` and its subclasses."""
    if not (isinstance(simulator_cls, type) and issubclass(simulator_cls, VenueSimulator)):
        raise TypeError(f"{simulator_cls!r} is not a VenueSimulator subclass")
    VENUES[adapter_cls] = simulator_cls


def simulator_class(adapter: object) -> type[VenueSimulator]:
    """The simulator class registered for ``adapter``'s class (or its nearest base)."""
    for cls in type(adapter).__mro__:
        if cls in VENUES:
            return VENUES[cls]
    raise TypeError(f"no venue simulator registered for {type(adapter).__name__}")


def simulator_for(ctx: VenueContext) -> VenueSimulator:
    """The simulator of one protocol of a bound candidate."""
    return simulator_class(ctx.adapter)(ctx)


__all__ = [
    "NOTHING", "VENUES", "AaveV2Venue", "AaveV3Venue", "AuctionTerms", "CometVenue", "FinalView", "KernelSpec", "LendingVenue", "MakerFlipVenue", "MakerVenue",
    "MarketView", "OracleSpec", "PathContext", "RoundResult", "VenueContext", "VenueSimulator", "register_venue",
    "simulator_class", "simulator_for",
]
__all__ += ["PERP_FIELDS", "PerpVenue"]
