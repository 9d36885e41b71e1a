"""Compound III (Comet) on the cascade loop: absorb, then the storefront (``buyCollateral``).

Absorbs need no profit (the absorber is paid nothing) and move nothing on the market: the absorbed
collateral goes to the protocol's inventory and each absorb takes ``max(debt, credit)`` from reserves.
In each round's settle phase, while reserves are below ``targetReserves``, storefront buyers take
inventory at ``oracle·(1 − storeFrontPriceFactor·(1 − liquidationFactor))`` and sell it into the
collateral's pool until the pool's marginal price (after the round's other flows) falls to the store
price; each sale adds its USD to reserves. At the horizon unsold inventory is ``inventory_usd``. The
kernel mirrors absorb (whole multi-collateral accounts) + storefront (``kernel.RULE_ABSORB``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols import CompoundV3, LiquidationOutcome, Prices

from .._market import storefront_quantity
from ..kernel import RULE_ABSORB
from .base import NOTHING, FinalView, KernelSpec, MarketView, PathContext, RoundResult
from .lending import LendingVenue


class CometVenue(LendingVenue):
    """Absorb into inventory; sell through the storefront while reserves are below target."""

    needs_profit = False
    buys_debt = False

    def start_path(self, path: PathContext) -> None:
        super().start_path(path)
        self.inventory = np.zeros(len(self.book.collateral_assets))
        self.reserves_usd = float(self.ctx.reserves_usd)

    def sold_tokens(self, out: LiquidationOutcome) -> np.ndarray:
        return np.zeros_like(out.collateral_seized_tokens)  # absorbed: nothing reaches the market yet

    def after_liquidation(self, view: MarketView, out: LiquidationOutcome, go: np.ndarray, prices: Prices,
                          before: Any) -> None:
        self.inventory += out.collateral_seized_tokens[go].sum(0)
        credit = out.extra["absorbed_credit_usd"]
        pd = np.broadcast_to(prices.debt_usd, before.debt_tokens.shape)
        debt_usd = (before.debt_tokens * pd).sum(1)
        self.reserves_usd -= np.maximum(debt_usd, credit)[go].sum()

    def settle(self, view: MarketView) -> RoundResult:
        ad = self.ctx.adapter
        assert isinstance(ad, CompoundV3)
        if not self.inventory.any() or self.reserves_usd >= ad.target_reserves_usd:
            return NOTHING
        ctx = self.ctx
        lf = ad.liquidation_factor[ad.column_index(self.book)]
        flows = np.zeros(self.n_pools(view))
        acted = False
        for c in np.flatnonzero(self.inventory > 0):
            a, p = ctx.coll_market[c], ctx.coll_pool[c]
            oracle_px = view.oracle(self.oracle_spec, "collateral", a)
            store_px = oracle_px * (1.0 - ad.store_front_price_factor * (1.0 - lf[c]))
            q = storefront_quantity(view.liquidity, p, view.flow[p] + (view.round_flow[p] + flows[p]),
                                    view.exo_low[a], store_px, self.inventory[c])
            if q <= 0:
                continue
            self.inventory[c] -= q
            flows[p] += q
            self.reserves_usd += q * store_px
            acted = True
        return RoundResult(acted, False, flows if acted else None)

    def end_path(self, final: FinalView) -> dict[str, Any]:
        out = super().end_path(final)
        out["inventory_usd"] = (self.inventory * final.close[self.ctx.coll_market]).sum()
        return out

    def kernel_spec(self) -> KernelSpec | str:
        ad = self.ctx.adapter
        assert isinstance(ad, CompoundV3)
        reason = self.kernel_market_reason()
        if reason:
            return reason
        book = self.ctx.book.book
        terms = ad.position_terms(book)
        return KernelSpec(RULE_ABSORB, lt=np.where(terms.seizable, terms.health_weight, 0.0), lb=terms.recovery,
                          fee=np.zeros_like(terms.recovery),
                          constants={"sf": ad.store_front_price_factor, "target": ad.target_reserves_usd},
                          store_factor=ad.liquidation_factor[ad.column_index(book)])
