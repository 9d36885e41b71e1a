"""Maker/Sky Liquidations 2.0 on the cascade loop: Dog.bark and Clipper auctions through time.

The venue's unsafe vaults (health < 1 at the OSM price, and ``reaction_delay_steps`` ago) are barked in
every round and their auctions run through time by :class:`optimizer.engine.maker_auctions.MakerAuctions`
(ClipperMom at the start of each step, redo, bark, keeper takes whose purchases are sold into the
collateral's pool). The per-step call cap limits takes only; barks and redos need no profit.

The fast kernel mirrors these rules (:mod:`optimizer.engine.kernel_auctions`): :meth:`MakerVenue.kernel_spec`
declares the auction rule with the adapter's ilk terms.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols import Maker
from protocols.maker import CALC_TYPES

from ..kernel_auctions import RULE_AUCTION
from ..ledger import LENDING_FIELDS, LedgerField
from ..maker_auctions import MakerAuctions
from .base import AuctionTerms, FinalView, KernelSpec, MarketView, PathContext, RoundResult
from .lending import LendingVenue

KEEPER_INCENTIVE = LedgerField("keeper_incentive_usd", "USD", "venue",
                               "Keeper incentives paid from surplus on kick and redo (tip + chip x tab)")


class MakerVenue(LendingVenue):
    """Barks and auctions (see the module docstring)."""

    ledger_fields = (*LENDING_FIELDS, KEEPER_INCENTIVE)
    capped = False  # the cap limits takes (inside the auctions), not barks

    def kernel_spec(self) -> KernelSpec | str:
        """The kernel's auction rule with the adapter's ilk rules (:class:`AuctionTerms`)."""
        ad = self.ctx.adapter
        assert isinstance(ad, Maker)
        reason = self.kernel_market_reason()
        if reason:
            return reason
        book = self.ctx.book.book
        rules = [ad.ilk(i) for i in book.collateral_assets]

        def per(get) -> np.ndarray:
            return np.array([get(r) for r in rules], np.float64)

        terms = ad.position_terms(book)
        auctions = AuctionTerms(
            mat=per(lambda r: r.mat), chop=per(lambda r: r.chop), dust_dai=per(lambda r: r.dust_dai),
            chost_dai=per(lambda r: r.chost_dai), hole_dai=per(lambda r: r.hole_dai), buf=per(lambda r: r.buf),
            tail_s=per(lambda r: r.tail_s), cusp=per(lambda r: r.cusp), chip=per(lambda r: r.chip),
            tip_dai=per(lambda r: r.tip_dai),
            tolerance=per(lambda r: np.nan if r.clipper_mom_tolerance is None else r.clipper_mom_tolerance),
            stopped=np.array([r.stopped for r in rules], np.int64),
            calc_kind=np.array([CALC_TYPES.index(r.calc.kind) for r in rules], np.int64),
            cut=per(lambda r: r.calc.cut), step_s=per(lambda r: r.calc.step_s), tau_s=per(lambda r: r.calc.tau_s),
            Hole_dai=float(ad.params["Hole_dai"]), vault_column=ad.vault_ilk(book),
            feed_lag_steps=self.oracle_spec.feed_lag_steps)
        return KernelSpec(RULE_AUCTION, lt=terms.health_weight, lb=terms.liquidation_bonus, fee=terms.protocol_share,
                          constants={}, auctions=auctions)

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
