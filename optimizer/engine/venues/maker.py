"""Maker/Sky Liquidations 2.0 on the cascade loop: Dog.bark and Clipper auctions through time.

The venue's unsafe vaults (health < 1 at the OSM price, and ``reaction_delay_steps`` ago) are barked in
every round and their auctions run through time by :class:`optimizer.engine.maker_auctions.MakerAuctions`
(ClipperMom at the start of each step, redo, bark, keeper takes whose purchases are sold into the
collateral's pool). The per-step call cap limits takes only; barks and redos need no profit.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols import Maker

from ..ledger import LENDING_FIELDS, LedgerField
from ..maker_auctions import MakerAuctions
from .base import FinalView, MarketView, PathContext, RoundResult
from .lending import LendingVenue

KEEPER_INCENTIVE = LedgerField("keeper_incentive_usd", "USD", "venue",
                               "Keeper incentives paid from surplus on kick and redo (tip + chip x tab)")


class MakerVenue(LendingVenue):
    """Barks and auctions (see the module docstring)."""

    ledger_fields = (*LENDING_FIELDS, KEEPER_INCENTIVE)
    capped = False  # the cap limits takes (inside the auctions), not barks

    def kernel_spec(self) -> str:
        return f"{self.ctx.id} liquidations are auctions (reference engine)"

    def start_path(self, path: PathContext) -> None:
        super().start_path(path)
        ad = self.ctx.adapter
        assert isinstance(ad, Maker)
        self.auctions = MakerAuctions(ad, self.book, self.ctx.coll_market, self.ctx.debt_market, self.ctx.coll_pool,
                                      j=self.ctx.index, path=path.path, liquidated_once=self.liquidated_once,
                                      liq=np.empty((0, 5)), min_profit_usd=self.ctx.liquidators.min_profit_usd,
                                      events=path.events, trace=path.trace)

    def start_step(self, view: MarketView) -> None:
        super().start_step(view)
        s, cm = self.oracle_spec, self.ctx.coll_market
        self.auctions.liq = view.liquidity
        self.auctions.trip(view.t, view.oracle(s, "collateral", cm), view.feed(s, cm))

    def round(self, view: MarketView) -> RoundResult:
        prices = self.oracle_prices(view)
        _, cand = self.candidates(view, prices)
        flows = np.zeros(self.n_pools(view))
        did, used = self.auctions.round(view.t, view.t * self.ctx.step_s, cand, prices.collateral_usd, view.low,
                                        view.close, view.exo_low, view.flow, view.gas_usd, int(self.calls_left),
                                        flows)
        self.book = self.auctions.book
        self.calls_left -= used
        marked, self.auctions.marked = self.auctions.marked, False
        return RoundResult(did, marked, flows, self.auctions.take_deltas())

    def end_path(self, final: FinalView) -> dict[str, Any]:
        out = super().end_path(final)
        for k, v in self.auctions.finish(final.close).items():
            out[k] = out.get(k, 0.0) + v
        return out
