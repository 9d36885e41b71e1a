"""Aave v3 on the cascade loop: liquidationCall through :class:`protocols.AaveV3`, profit-seeking liquidators.

Liquidators sell the collateral they seize minus the treasury's fee share (the fee tokens go to the
treasury, not to the market) and buy the debt they repay. The kernel mirrors one liquidationCall on
single-collateral, single-debt positions (``kernel.RULE_CLOSE_FACTOR_CALL``).
"""

from __future__ import annotations

import numpy as np

from protocols import AaveV3, LiquidationOutcome

from ..kernel import RULE_CLOSE_FACTOR_CALL
from .base import KernelSpec
from .lending import LendingVenue


class AaveV3Venue(LendingVenue):
    """:class:`LendingVenue` with Aave's treasury fee kept out of the market."""

    def sold_tokens(self, out: LiquidationOutcome) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            keep = np.where(out.collateral_seized_usd > 0, out.protocol_fee_usd / out.collateral_seized_usd, 0.0)
        return out.collateral_seized_tokens * (1.0 - keep)[:, None]

    def kernel_spec(self) -> KernelSpec | str:
        ad, pb = self.ctx.adapter, self.ctx.book
        assert isinstance(ad, AaveV3)
        reason = single_pair_reason(self)
        if reason:
            return reason
        book = pb.book
        rows, ci = _held_rows(book)
        terms = ad.position_terms(book)
        if not terms.seizable[rows, ci].all():
            return f"{ad.title}: a position's only collateral has LT = 0"
        c = ad.constants
        return KernelSpec(RULE_CLOSE_FACTOR_CALL, lt=terms.health_weight[rows, ci], lb=terms.liquidation_bonus[rows, ci],
                          fee=terms.protocol_share[rows, ci],
                          constants={"close_factor": c["close_factor"], "cf_hf": c["close_factor_hf_threshold"],
                                     "min_base": c["min_base_max_close_factor_threshold_usd"],
                                     "floor": c["min_leftover_base_usd"]})


def _held_rows(book) -> tuple[np.ndarray, np.ndarray]:
    """Rows with both collateral and debt, and the column of their (one) collateral."""
    held = (book.collateral_tokens > 0).any(1) & (book.debt_tokens > 0).any(1)
    rows = np.flatnonzero(held)
    return rows, np.argmax(book.collateral_tokens[rows], axis=1)


def single_pair_reason(sim: LendingVenue) -> str | None:
    """Why the kernel's single-pair rules cannot run this venue's book (None when they can)."""
    ad, pb = sim.ctx.adapter, sim.ctx.book
    if not pb.single_pair:
        return f"{sim.ctx.id} book has accounts with several collaterals or debts"
    if ad.circuit_breakers().liquidations_paused & set(pb.book.collateral_assets + pb.book.debt_assets):
        return f"{sim.ctx.id} has paused assets in the book"
    if not (np.array_equal(sim.ctx.coll_pool, sim.ctx.coll_market)
            and np.array_equal(sim.ctx.debt_pool, sim.ctx.debt_market)):
        return f"{sim.ctx.id} routes flows to pools other than its assets' own"
    if sim.oracle_spec.collateral_side != "low" or sim.oracle_spec.debt_side != "high":
        return f"{sim.ctx.id} reads other bar sides than the kernel's (collateral low, debt high)"
    return None
