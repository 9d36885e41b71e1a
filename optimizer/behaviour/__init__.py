"""Behaviours the engine calls: pure, documented, data-driven models of market participants.

- :mod:`optimizer.behaviour.keepers`: keepers in Maker Flipper (Liquidations 1.x) auctions.
- Forced flows on the market liquidations trade on, each called once per round or step with the price it
  sees and returning signed base-asset flows (sell < 0) plus a :class:`FlowTally` of its own selling
  (:func:`selling_shares` turns tallies into shares of the total):

  - :mod:`optimizer.behaviour.dealers`: option dealers delta-hedging a gamma profile by strike;
  - :mod:`optimizer.behaviour.leverage_targeting`: holders who keep a target leverage (the leverage spiral);
  - :mod:`optimizer.behaviour.stops`: stop-loss clusters at price levels, each firing once.
"""

from ._tally import FlowTally, selling_shares
from .dealers import DealerBook, DealerState, dealer_book, load_dealer_book
from .leverage_targeting import HolderState, LeverageTargeters, leverage_targeters, load_leverage_targeters
from .stops import StopClusters, StopState, load_stop_clusters, stop_clusters

__all__ = [
    "DealerBook",
    "DealerState",
    "FlowTally",
    "HolderState",
    "LeverageTargeters",
    "StopClusters",
    "StopState",
    "dealer_book",
    "leverage_targeters",
    "load_dealer_book",
    "load_leverage_targeters",
    "load_stop_clusters",
    "selling_shares",
    "stop_clusters",
]
