"""Lending venues: any :class:`protocols.Adapter` liquidated through ``adapter.health`` / ``liquidate``.

:class:`LendingVenue` is the generic simulator every lending adapter gets; the venue modules next to it
subclass it only where a venue's liquidators or balance sheet differ (Comet's absorb and storefront,
Maker's auctions). Per round of step ``t``, with the venue's oracle prices (collateral at the bar's low,
debt at its high, or the lagged close):

1. Candidates: health < 1 now and, with a reaction delay of d steps, also at the oracle prices of d
   steps ago (liquidators act on what they have seen for d steps), not passed over earlier in the step.
2. One ``adapter.liquidate`` call per candidate at the round's prices.
3. Liquidators who need a profit (``needs_profit``) act only when the bonus covers the slippage of
   selling the collateral they receive into its pool, the cost above the oracle of buying the debt they
   repay from its pool (``buys_debt``: a flash swap collateral -> debt asset), gas and
   ``min_profit_usd``, all from the round's starting pool states.
4. Liquidators work down the candidates by (health, book row) until the per-step call cap; refused and
   unprofitable candidates they pass are skipped for the rest of the step.
5. The calls' flows go to the market together at the round's end: + collateral sold per collateral
   pool, − debt bought per debt pool.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols import LiquidationOutcome, Prices

from .._market import proceeds_usd, purchase_usd
from ..kernel import RULE_CLOSE_FACTOR_CALL
from ..ledger import LENDING_FIELDS
from .base import NOTHING, FinalView, KernelSpec, MarketView, PathContext, RoundResult, VenueSimulator


class LendingVenue(VenueSimulator):
    """Liquidations through the adapter's own vectorised rules (see the module docstring)."""

    ledger_fields = LENDING_FIELDS
    #: liquidators act only when the liquidation pays (bonus >= slippage + gas + min profit)
    needs_profit = True
    #: liquidators buy the debt asset they repay from its pool (a signed flow into the market)
    buys_debt = True
    #: the per-step call cap applies to every liquidation the venue makes
    capped = True

    def kernel_market_reason(self) -> str | None:
        """Why the kernel cannot run this venue's market wiring (None when it can): the kernel routes each
        asset's flows to the asset's own pool and reads collateral at the bar's low, debt at its high."""
        if not (np.array_equal(self.ctx.coll_pool, self.ctx.coll_market)
                and np.array_equal(self.ctx.debt_pool, self.ctx.debt_market)):
            return f"{self.ctx.id} routes flows to pools other than its assets' own"
        if self.oracle_spec.collateral_side != "low" or self.oracle_spec.debt_side != "high":
            return f"{self.ctx.id} reads other bar sides than the kernel's (collateral low, debt high)"
        return None

    def close_factor_spec(self, constants: dict[str, float]) -> KernelSpec | str:
        """The kernel's close-factor call (``kernel.RULE_CLOSE_FACTOR_CALL``) on this venue's book with the
        rule's ``constants`` (``kernel.VENUE_CONSTANTS``): the adapter's per-leg terms (a leg not seizable
        counts for nothing), bonus and fee share, and its paused assets refusing the call; or the market
        wiring's reason."""
        reason = self.kernel_market_reason()
        if reason:
            return reason
        ad, book = self.ctx.adapter, self.ctx.book.book
        terms = ad.position_terms(book)
        paused = ad.circuit_breakers().liquidations_paused
        return KernelSpec(RULE_CLOSE_FACTOR_CALL, lt=np.where(terms.seizable, terms.health_weight, 0.0),
                          lb=terms.liquidation_bonus, fee=terms.protocol_share, constants=constants,
                          collateral_paused=np.array([x in paused for x in book.collateral_assets], bool),
                          debt_paused=np.array([x in paused for x in book.debt_assets], bool))

    # ------------------------------------------------------------------ per path / step
    def start_path(self, path: PathContext) -> None:
        super().start_path(path)
        self.book = self.ctx.book.book
        self.liquidated_once = np.zeros(self.book.n_positions, bool)

    def start_step(self, view: MarketView) -> None:
        self.calls_left = self.ctx.liquidators.max_calls_per_step
        self.excluded = np.zeros(self.book.n_positions, bool)

    # ------------------------------------------------------------------ prices and candidates
    def oracle_prices(self, view: MarketView) -> Prices:
        s = self.oracle_spec
        return Prices(view.oracle(s, "collateral", self.ctx.coll_market), view.oracle(s, "debt", self.ctx.debt_market))

    def candidates(self, view: MarketView, prices: Prices) -> tuple[np.ndarray, np.ndarray]:
        """Health at the round's oracle prices and the candidate mask."""
        ad, book = self.ctx.adapter, self.book
        hf = ad.health(book, prices)
        cand = (hf < 1.0) & ~self.excluded
        delay = self.ctx.liquidators.reaction_delay_steps
        if delay > 0:
            s = self.oracle_spec
            past = Prices(view.past_oracle(s, "collateral", self.ctx.coll_market, delay),
                          view.past_oracle(s, "debt", self.ctx.debt_market, delay))
            cand &= ad.health(book, past) < 1.0
        return hf, cand

    def sold_tokens(self, out: LiquidationOutcome) -> np.ndarray:
        """Collateral tokens (n, C) the liquidators sell into the market (default: all they seized)."""
        return out.collateral_seized_tokens

    # ------------------------------------------------------------------ one round
    def round(self, view: MarketView) -> RoundResult:
        if self.capped and self.calls_left <= 0:
            return NOTHING
        prices = self.oracle_prices(view)
        hf, cand = self.candidates(view, prices)
        if not cand.any():
            return NOTHING
        ctx, lc, book = self.ctx, self.ctx.liquidators, self.book
        out = ctx.adapter.liquidate(book, prices, cand)
        good = out.liquidated.copy()
        sell = self.sold_tokens(out)
        if self.needs_profit:
            profit = out.liquidator_bonus_usd - view.gas_usd - lc.min_profit_usd
            cm, cp = ctx.coll_market, ctx.coll_pool
            dp = ctx.debt_pool
            repaid = out.debt_repaid_tokens
            for i in np.flatnonzero(good):
                for c in np.flatnonzero(sell[i]):
                    q = sell[i, c]
                    profit[i] -= q * prices.collateral_usd[c] - proceeds_usd(view.liquidity, cp[c], view.flow[cp[c]], q,
                                                                             view.exo_low[cm[c]])
                if self.buys_debt:
                    for d in np.flatnonzero(repaid[i]):
                        q = repaid[i, d]
                        profit[i] -= purchase_usd(view.liquidity, dp[d], view.flow[dp[d]], q,
                                                  view.exo_high[ctx.debt_market[d]]) - q * prices.debt_usd[d]
            good &= profit >= 0.0
        # Liquidators work down the list by (health, row) until the call cap: refused and
        # unprofitable positions they pass are skipped for the rest of the step.
        idx = np.flatnonzero(cand)
        idx = idx[np.lexsort((idx, hf[idx]))]
        taken = np.cumsum(good[idx])
        if self.capped and taken[-1] >= self.calls_left:
            examined = idx[: int(np.searchsorted(taken, self.calls_left)) + 1]
        else:
            examined = idx
        go = np.zeros(book.n_positions, bool)
        go[examined] = good[examined]
        self.excluded[examined[~good[examined]]] = True
        if not go.any():
            return NOTHING
        g2 = go[:, None]
        self.book = book.with_balances(np.where(g2, out.book.collateral_tokens, book.collateral_tokens),
                                       np.where(g2, out.book.debt_tokens, book.debt_tokens))
        self.calls_left -= int(go.sum())
        self.liquidated_once |= go
        deltas = {
            "liquidations": float(go.sum()),
            "debt_repaid_usd": out.debt_repaid_usd[go].sum(),
            "collateral_seized_usd": out.collateral_seized_usd[go].sum(),
            "liquidator_bonus_usd": out.liquidator_bonus_usd[go].sum(),
            "protocol_fee_usd": out.protocol_fee_usd[go].sum(),
            "realised_bad_debt_usd": out.bad_debt_usd[go].sum(),
            "returned_to_owner_usd": out.returned_to_owner_usd[go].sum(),
        }
        flows = np.zeros(self.n_pools(view))
        np.add.at(flows, ctx.coll_pool, sell[go].sum(0))
        if self.buys_debt:
            np.subtract.at(flows, ctx.debt_pool, out.debt_repaid_tokens[go].sum(0))
        self.after_liquidation(view, out, go, prices, book)
        if self.path.events is not None:
            for i in np.flatnonzero(go):
                c = int(np.argmax(out.collateral_seized_tokens[i]))
                self.emit((self.path.path, view.t, ctx.index, int(i), c, out.debt_repaid_usd[i],
                           out.collateral_seized_usd[i], out.liquidator_bonus_usd[i], out.protocol_fee_usd[i],
                           out.bad_debt_usd[i], float(prices.collateral_usd[c])))
        return RoundResult(True, True, flows, deltas)

    def after_liquidation(self, view: MarketView, out: LiquidationOutcome, go: np.ndarray, prices: Prices,
                          before: Any) -> None:
        """Hook: the venue's own balance sheet after the round's calls (Comet: inventory, reserves)."""

    # ------------------------------------------------------------------ horizon
    def end_path(self, final: FinalView) -> dict[str, Any]:
        """At the final market close: open underwater debt, and the horizon exposure of accounts left
        liquidatable (the venue's ``liquidation_shortfall_usd`` beyond their underwater part)."""
        ctx, b = self.ctx, self.book
        f = final.close
        coll_usd = (b.collateral_tokens * f[ctx.coll_market]).sum(1)
        debt_usd = (b.debt_tokens * f[ctx.debt_market]).sum(1)
        under = np.maximum(debt_usd - coll_usd, 0.0)
        prices = Prices(f[ctx.coll_market], f[ctx.debt_market])
        open_ = ctx.adapter.health(b, prices) < 1.0
        exposure = 0.0
        if open_.any():
            short = ctx.adapter.liquidation_shortfall_usd(b, prices)
            exposure = np.maximum(short - under, 0.0)[open_].sum()
        return {"unrealised_bad_debt_usd": under.sum(),
                "horizon_exposure_usd": exposure,
                "debt_removed_usd": ((ctx.book.book.debt_tokens - b.debt_tokens) * f[ctx.debt_market]).sum(),
                "account_liquidated": self.liquidated_once}
