"""Perpetual-futures venues on the cascade loop: a thin wrapper over a :class:`protocols.PerpAdapter`.

Perp accounts live in the same simulation as the lending positions and trade on the same pools: a
liquidated long SELLS its size into the pool of its market's asset, a liquidated short BUYS it back, so
a perp cascade moves the price every lending oracle on that asset reads, and the lending liquidators'
sales move the perp marks (contagion both ways). Everything a venue decides -- who is liquidatable, how
much of a position one pass closes, the route (market order, backstop takeover, ADL offset), fees and
the deficit beyond margin -- is the adapter's own ``liquidatable`` / ``liquidate``; the waterfall and ADL
are :mod:`protocols._perp_losses`. This module only sequences them over time and prices the fills.

Per path: the book, the insurance fund (``adapter.insurance_fund_usd``), the backstop capacity
(``adapter.backstop_usd``) and the vault's holdings reset to the scenario's start.

Backstop unwind (scenario ``backstop_unwind_steps`` = N, default 0: the vault holds to the horizon): the vault
trades what it took over back into the same pools in N equal slices, one per step (``_unwind_round``).

End of step, GMX (``adl_trigger = "pnl_to_pool"``): ADL by the PnL-to-pool factor (``_pnl_to_pool_adl``).

Funding (opt-in, scenario ``funding``): at each funding time longs pay shorts ``rate x notional`` through
their margin (``_fund``). No adapter defines its venue's funding rule: the project's venue docs
(``protocol_rules.md``) give none, and the data hold no premium index; the scenario gives the rate.

Per step:
the venue gets one liquidation pass per second of the step at most (``step_s`` rounds: dYdX's ~1 s
blocks; the adapters' per-pass limits, dYdX's 10 % / $100k per block, Hyperliquid's 20 % partials, are
per pass).

Per round, at the round's market:

1. **Marks.** With replayed last-trade bars a long is marked at the bar low and a short at the bar high
   of its market's asset (market price = exogenous bar x the pool's impact factor), through the venue's
   :class:`~optimizer.engine.venues.OracleSpec` (a scenario lag marks at the lagged close instead).
2. **Who.** ``adapter.liquidatable(book, mark)``; Hyperliquid's 30 s cooldown after a partial
   liquidation (``partial_liquidation_cooldown_s``) forces whole closes.
3. **Fills.** Liquidation orders of one round in one pool execute together: sells walk down the pool
   from its state at the round's start, buys walk up; each order gets the average price of its side's
   aggregate order (the pool's impact law, :func:`optimizer.engine._market.proceeds_usd` /
   ``purchase_usd``). The adapter is called once at the marks to learn the orders, then again with
   those fills (for dYdX the fill must be at least the fillable price, else the order does not fill).
   A pool venue (``liquidation_flow_destination = "pool"``, GMX) closes against its own pool at the
   oracle price: no market flow.
4. **Flows.** ``-market_flow_base`` per pool (the engine's convention: + sold into the pool). Backstop
   takeovers (the vault holds the position) and ADL offsets are no trade now.

End of step: the deficits of the step's liquidations go through the loss waterfall in the order they
happened (``waterfall_of``: margin, insurance fund -- with the fees it earns when the venue pays fees to
it -- then the backstop, then ADL); what is left per market and side is covered by ADL of the opposite
side at the step's closing mark, with the scenario's policy (``adl_policy``: ``"queue"``, the
production queue with the adapter's ``adl_score``, closes whole winners and overshoots; ``"pro_rata"``
haircuts every winner's profit by the same fraction). A queue's overshoot is credited to the insurance
fund (the convention of :mod:`protocols._perp_losses`); what no winner can cover is the venue's bad debt
(``realised_bad_debt_usd``).

End of path: open pools with negative equity at the final close (``unrealised_bad_debt_usd``), the
insurance fund's largest drawdown and whether it ran dry, the vault's result on the positions it took
over (marked at the final close), and which positions were liquidated.

Circuit breakers (``adapter.circuit_breakers()``; each a tunable ``breakers.*`` parameter, off at its
current value), per venue market, on the market's mark asset:

- **Price band.** At each round, when the oracle low (a fall) or high (a rise) of the market is more than
  ``price_band_move`` away from a market close of the last ``price_band_window_s`` seconds (the completed
  steps within the window, ``ceil(window / step)`` of them), the band trips: liquidations of positions on
  that market are refused in this round and until ``price_band_halt_s`` seconds later (steps with
  ``now < trip + halt``); then they resume, and the band is watched again. The engine's perp book trades
  only through liquidations, so halting liquidations and halting the market's trading coincide here; the
  waterfall of what was liquidated before the halt still settles.
- **Stress margin.** While the market moved more than ``stress_move`` within ``stress_window_s`` (the
  same measure), its maintenance margin is ``stress_margin_multiplier`` times the venue's
  (``adapter.with_margin_multiplier``): the positions whose equity falls below k x maintenance are the
  ones flagged, and the venue's own rules liquidate them.
- **Open-interest caps** (``max_open_interest_usd``, GMX) refuse OPENING beyond the cap. The engine opens
  no positions (a book is fixed at the start; liquidations and ADL only reduce open interest), so a cap
  cannot bind in a run: it matters only for opening flows.
- Binance's ``price_band_ratio`` (``marketTakeBound``) is reported as data and not enforced on the
  liquidation orders.

With a band or a stress margin on, the venue also fills ``price_band_trips`` and ``stress_margin_steps``.

Fast path: :meth:`PerpVenue.kernel_spec` hands the adapter's :class:`protocols.MarketOrderRule` (where its
liquidations have that form: Hyperliquid, Binance) to the perp kernel (:mod:`optimizer.engine.kernel_perp`),
which reproduces this loop; dYdX (fillable price), GMX (pool close with impact) and any scenario option the
kernel does not model decline with a reason, and ``auto`` runs them here. The price band runs on the kernel
(its trips per venue market, the halt of that market's lanes, touched rows and cross accounts), and so does the
stress margin (per venue market, the multiplied tier tables in that round: each lane of isolated positions walks
a second order by its liquidation prices under stress, touched rows and cross accounts read each row's own
market's tables), scenario funding (``kernel_perp.perp_fund``) and the backstop unwind; a band with cross
accounts spanning several markets, and a breaker with the backstop unwind, run here.

Events (``EVENT_DTYPE``): one per position closed in a round; ``collateral`` -1, ``debt_repaid_usd`` =
the notional closed at the mark, ``collateral_seized_usd`` = the margin released, ``protocol_fee_usd`` =
the liquidation fee, ``bad_debt_usd`` = the deficit beyond margin, ``price`` = the fill (the mark for
routes that do not trade).
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import numpy as np

from protocols import (
    PerpAdapter,
    PerpBook,
    PerpLiquidationOutcome,
    adl_pro_rata,
    adl_queue,
    apply_adl,
    apply_funding,
    deficits_by_group,
    funding_payments_usd,
    waterfall_of,
    winner_groups,
)

from .._market import proceeds_usd, purchase_usd
from ..ledger import LedgerField
from .base import NOTHING, FinalView, MarketView, PathContext, PerpKernelSpec, RoundResult, VenueSimulator

_EPS_USD = 1e-9

#: the ledger fields every perp venue fills (on top of the core fields), declared once
PERP_FIELDS: tuple[LedgerField, ...] = (
    LedgerField("perp_liquidated_long_usd", "USD", "venue", "Notional of long positions closed by liquidation "
                "(market orders, backstop takeovers, ADL offsets), at the mark", metric=True),
    LedgerField("perp_liquidated_short_usd", "USD", "venue", "Notional of short positions closed by liquidation, "
                "at the mark", metric=True),
    LedgerField("perp_market_sold_base", "tokens", "venue", "Base units liquidated longs sold into the market"),
    LedgerField("perp_market_bought_base", "tokens", "venue", "Base units liquidated shorts bought from the market"),
    LedgerField("perp_margin_released_usd", "USD", "venue", "Margin released by the closed parts of liquidated "
                "positions (side x closed x (entry - bankruptcy price))"),
    LedgerField("perp_realized_pnl_usd", "USD", "venue", "PnL realised by liquidations at their fills"),
    LedgerField("perp_fee_usd", "USD", "venue", "Liquidation fees taken"),
    LedgerField("perp_returned_to_owner_usd", "USD", "venue", "Margin left with the traders after liquidation"),
    LedgerField("perp_backstop_takeover_usd", "USD", "venue", "Equity handed to the backstop vault with the "
                "positions it took over"),
    LedgerField("perp_deficit_usd", "USD", "venue", "Losses beyond margin (fills worse than bankruptcy)",
                metric=True),
    LedgerField("insurance_fund_paid_usd", "USD", "venue", "Deficits the insurance fund paid"),
    LedgerField("insurance_fee_income_usd", "USD", "venue", "Liquidation fees (and ADL overshoot) paid into the "
                "insurance fund"),
    LedgerField("insurance_fund_drawdown_usd", "USD", "venue", "Largest fall of the insurance fund below its "
                "starting balance over the horizon", metric=True),
    LedgerField("insurance_fund_depleted", "paths", "venue", "1 when a deficit the fund should pay exceeded what "
                "was left in it (the fund ran dry); 0 for a venue without an insurance fund"),
    LedgerField("backstop_paid_usd", "USD", "venue", "Deficits the backstop (vault or pool) paid in the waterfall"),
    LedgerField("backstop_loss_usd", "USD", "venue", "Backstop losses: deficits it paid plus the vault's loss on "
                "the positions it took over, marked at the final close", metric=True),
    LedgerField("adl_volume_usd", "USD", "venue", "Deficit covered by auto-deleveraging the opposite side",
                metric=True),
    LedgerField("adl_overshoot_usd", "USD", "venue", "Profit an ADL queue seized beyond the deficit (closing whole "
                "positions)", metric=True),
    LedgerField("adl_closed_notional_usd", "USD", "venue", "Notional of winners closed by the ADL queue"),
    LedgerField("adl_steps", "steps", "venue", "Steps with an auto-deleveraging"),
    LedgerField("backstop_taken_base", "tokens", "venue", "Base units the backstop vault took over"),
    LedgerField("backstop_unwound_base", "tokens", "venue", "Base units the backstop vault traded back into the "
                "market (backstop_unwind_steps: it sells longs and buys back shorts it took over)"),
    LedgerField("perp_funding_paid_usd", "USD", "venue", "Funding the book's payers paid (scenario funding: "
                "longs at a positive rate, shorts at a negative one)"),
    LedgerField("perp_funding_received_usd", "USD", "venue", "Funding the book's receivers got"),
    LedgerField("perp_funding_external_usd", "USD", "venue", "Net funding the book paid to the rest of the venue "
                "(paid - received: its longs and shorts do not match; 0 for a balanced book)"),
    LedgerField("adl_pnl_realised_usd", "USD", "venue", "Profit realised by PnL-to-pool ADL orders (GMX: a side's "
                "pending PnL above maxPnlFactorForAdl of the pool), paid by the pool"),
)

#: filled only by venues with a price band or a stress margin on (``breakers.*``)
BREAKER_FIELDS: tuple[LedgerField, ...] = (
    LedgerField("price_band_trips", "trips", "venue", "Times a price band tripped and halted liquidations on a "
                "market"),
    LedgerField("stress_margin_steps", "steps", "venue", "Steps in which a market's maintenance margin was "
                "multiplied by the stress margin multiplier"),
)


class PerpVenue(VenueSimulator):
    """One perp venue's book on one path (see the module docstring)."""

    ledger_fields = PERP_FIELDS

    def __init__(self, ctx) -> None:
        super().__init__(ctx)
        ad = ctx.adapter
        if not isinstance(ad, PerpAdapter):
            raise TypeError(f"{type(ad).__name__} is not a perp adapter")
        self.adapter: PerpAdapter = ad
        self.book0: PerpBook = ctx.book.book
        b = self.book0
        self.asset = ctx.coll_market[b.market]  # (n,) market asset of each position
        self.pool = ctx.coll_pool[b.market]
        self.long = b.side > 0
        self.trades = ad.liquidation_flow_destination == "order_book"
        self.fees_to_fund = ad.fee_recipient == "insurance_fund"
        self.policy = ctx.options.get("adl_policy", "queue")
        self.cooldown_s = float(getattr(ad.circuit_breakers(), "partial_liquidation_cooldown_s", 0.0))
        self.rounds_per_step = max(1, int(math.ceil(ctx.step_s)))
        self.groups, _ = winner_groups(b)
        self.unwind_steps = int(ctx.options.get("backstop_unwind_steps", 0) or 0)  # 0: the vault holds
        self.funding = ctx.options.get("funding")  # (rate per interval, interval s) or None: no funding
        self.pnl_adl = ad.adl_trigger == "pnl_to_pool"  # GMX: ADL by the PnL-to-pool factor (_pnl_to_pool_adl)
        mm = ctx.options.get("mark_market")  # per adapter market: the asset of its mark series (-1: none)
        self.mark_asset = np.where(mm[b.market] >= 0, mm[b.market], self.asset) if mm is not None else self.asset
        # circuit breakers, per venue market (its mark asset; -1: a market no position holds)
        cb = ad.circuit_breakers()
        self.breakers = cb
        self.band_on, self.stress_on = cb.price_band_on, cb.stress_margin_on
        if self.band_on or self.stress_on:
            self.ledger_fields = PERP_FIELDS + BREAKER_FIELDS
            self.vm = ad.market_index(b)
            cm = np.asarray(ctx.coll_market, np.int64)
            self.market_asset = np.where(mm >= 0, mm, cm) if mm is not None else cm
            self._stressed: dict[bytes, PerpAdapter] = {}

    #: the scenario options (``ctx.options``) the perp kernel reproduces; any other one (a forced flow, a breaker
    #: wired in later) makes :meth:`kernel_spec` decline, so ``auto`` runs the reference engine
    KERNEL_OPTIONS: ClassVar[frozenset[str]] = frozenset({"adl_policy", "mark_market", "funding",
                                                                 "backstop_unwind_steps"})

    def kernel_spec(self) -> PerpKernelSpec | str:
        """The perp kernel's terms (:mod:`optimizer.engine.kernel_perp`), or why it cannot run this venue."""
        rule = self.adapter.market_order_rule()
        if rule is None:
            return (f"{self.ctx.id}: {self.adapter.title} liquidations are not market orders at the fill "
                    "(no MarketOrderRule); the perp kernel does not mirror them")
        if not self.trades:
            return f"{self.ctx.id}: liquidations close against a pool, not the market (no kernel rule)"
        # options the kernel does not model, when they are on (funding None, an unwind over 0 steps: off)
        extra = sorted(k for k, v in self.ctx.options.items() if k not in self.KERNEL_OPTIONS and v)
        if extra:
            return f"{self.ctx.id}: the perp kernel does not model {', '.join(extra)}"
        breakers: dict = {}
        if self.band_on or self.stress_on:
            # the kernel applies a market's breakers to the rows whose mark is that market's asset
            if not np.array_equal(self.market_asset[self.vm], self.mark_asset):
                return f"{self.ctx.id}: a breaker on markets whose rows mark other assets runs on the reference engine"
            breakers["breaker_market_asset"] = np.asarray(self.market_asset, np.int64)
        cb = self.breakers
        if self.stress_on:
            breakers |= {"stress_multiplier": float(cb.stress_margin_multiplier), "stress_move": float(cb.stress_move),
                         "stress_window_steps": self.window_steps(cb.stress_window_s)}
        if (self.band_on or self.stress_on) and self.unwind_steps > 0:  # the unwind round skips both breakers
            return (f"{self.ctx.id}: a price band or stress margin with the backstop unwind runs on the reference "
                    "engine")
        if self.band_on:
            # the band halts a market's liquidations: a cross account with positions on two markets could be
            # liquidated on one only, which the perp kernel's settle of whole accounts does not mirror
            b = self.book0
            cross = b.is_cross & (b.size_base > 0)
            pairs = np.unique(np.stack([b.account[cross], self.mark_asset[cross]]), axis=1)  # (account, mark)
            if np.unique(pairs[0]).size < pairs.shape[1]:
                return (f"{self.ctx.id}: a price band with cross-margin accounts on several markets runs "
                        "on the reference engine")
            breakers |= {"band_move": float(cb.price_band_move),
                         "band_window_steps": self.window_steps(cb.price_band_window_s),
                         "band_halt_s": float(cb.price_band_halt_s)}
        if self.policy not in ("queue", "pro_rata"):
            return f"{self.ctx.id}: ADL policy {self.policy!r} has no kernel rule"
        if self.oracle_spec.collateral_side != "low" or self.oracle_spec.debt_side != "high":
            return f"{self.ctx.id} marks other bar sides than the kernel's (longs low, shorts high)"
        if not np.array_equal(self.pool, self.asset):
            return f"{self.ctx.id} routes orders to pools other than its assets' own"
        fund = {"funding_rate": float(self.funding[0]), "funding_interval_s": float(self.funding[1])} \
            if self.funding is not None else {}
        fund["unwind_steps"] = self.unwind_steps
        return PerpKernelSpec(rule, self.policy, self.mark_asset.astype(np.int64), self.pool.astype(np.int64),
                              self.rounds_per_step, self.cooldown_s, self.fees_to_fund,
                              float(self.adapter.insurance_fund_usd), float(self.adapter.backstop_usd), **breakers,
                              **fund)

    def initial_debt_usd(self, close0: np.ndarray) -> float:
        """The book's exposure at the start: its open notional, USD."""
        return float((self.book0.size_base * close0[self.asset]).sum())

    # ------------------------------------------------------------------ per path / step
    def start_path(self, path: PathContext) -> None:
        super().start_path(path)
        n = self.book0.n_positions
        self.perp_book = self.book0
        self.fund0 = self.fund = self.fund_min = float(self.adapter.insurance_fund_usd)
        self.backstop = float(self.adapter.backstop_usd)
        self.backstop_paid = 0.0
        self.depleted = False
        self.vault_size = np.zeros(n)  # signed base units the vault took over, per book row
        self.vault_px = np.zeros(n)
        self.takeover_usd = 0.0
        self.partial_until = np.full(n, -np.inf)
        self.liquidated_once = np.zeros(n, bool)
        self.unwind_left = np.zeros(n)  # signed base the vault still has to trade back, per book row
        self.unwind_rate = np.zeros(n)  # signed base per step
        self.vault_realised_usd = 0.0
        self.unwind_due = False
        self.pending: list[PerpLiquidationOutcome] = []
        self.last_marks: np.ndarray | None = None
        if self.pnl_adl:  # the pool value backing each market (GMX pool_usd), moved by what it collects and pays
            self.pool_value = np.array([self.adapter.pool_usd(m) for m in self.adapter.markets], dtype=np.float64)
            self.venue_market = self.adapter.market_index(self.book0)
        self.halt_until = np.full(len(self.adapter.markets), -np.inf)

    def start_step(self, view: MarketView) -> None:
        self.rounds_left = self.rounds_per_step
        self.stress_counted = False
        self.unwind_due = self.unwind_steps > 0 and bool((self.unwind_left != 0).any())

    def _unwind_round(self, view: MarketView) -> RoundResult:
        """The backstop vault's unwind (scenario ``backstop_unwind_steps`` = N > 0; an assumption, the docs do not
        say how HLP disposes of what it takes over): each step, in the step's first round, it trades 1/N of what
        it took over back into the same pool as the liquidation orders would have (sells longs, buys back
        shorts), at the average fill of that aggregate order (the pool's impact law); a later takeover of a row
        spreads what is left of it over N steps again. The vault's result realises at those fills."""
        self.unwind_due = False
        amt = np.where(np.abs(self.unwind_rate) < np.abs(self.unwind_left), self.unwind_rate, self.unwind_left)
        if not (amt != 0).any():
            return NOTHING
        flow_base = -amt  # the venue's convention: a long the vault holds is sold (flow < 0)
        mark = self.marks(view)
        fill = self.fill_prices(view, flow_base, mark)
        self.unwind_left = self.unwind_left - amt
        self.vault_size = self.vault_size - amt
        self.vault_realised_usd += float((amt * (fill - self.vault_px)).sum())
        flows = np.zeros(self.n_pools(view))
        np.add.at(flows, self.pool, amt)  # + sold into the pool
        return RoundResult(True, False, flows, {"backstop_unwound_base": float(np.abs(amt).sum())})

    # ------------------------------------------------------------------ circuit breakers
    def window_steps(self, window_s: float) -> int:
        """The completed steps a breaker's window of ``window_s`` seconds reads: ``ceil(window / step)``, at least 1."""
        return max(1, int(math.ceil(window_s / self.ctx.step_s - 1e-9)))

    def moved(self, view: MarketView, window_s: float, move: float) -> np.ndarray:
        """Per venue market: the oracle low is more than ``move`` below, or the oracle high more than ``move``
        above, a market close of the completed steps of the last ``window_s`` seconds."""
        a = self.market_asset
        ok = a >= 0
        ai = np.where(ok, a, 0)
        w = self.window_steps(window_s)
        ref = view.hist_close[max(view.t - w, 0): view.t][:, ai]
        s = self.oracle_spec
        fell = view.oracle(s, "collateral", ai) < (1.0 - move) * ref.max(0)
        rose = view.oracle(s, "debt", ai) > (1.0 + move) * ref.min(0)
        return ok & (fell | rose)

    def band_allows(self, view: MarketView) -> np.ndarray:
        """Per position: its market's liquidations are not halted by the price band (trips it when due)."""
        cb = self.breakers
        free = view.now_s >= self.halt_until
        trip = free & self.moved(view, cb.price_band_window_s, cb.price_band_move)
        if trip.any():
            self.halt_until[trip] = view.now_s + cb.price_band_halt_s
            self.path.ledger.add(self.path.k, self.ctx.index, {"price_band_trips": float(trip.sum())})
        return (view.now_s >= self.halt_until)[self.vm]

    def round_adapter(self, view: MarketView) -> PerpAdapter:
        """The adapter of this round: the venue's, with the stress margin on the markets under stress."""
        if not self.stress_on:
            return self.adapter
        stressed = self.moved(view, self.breakers.stress_window_s, self.breakers.stress_move)
        if not stressed.any():
            return self.adapter
        if not self.stress_counted:
            self.stress_counted = True
            self.path.ledger.add(self.path.k, self.ctx.index, {"stress_margin_steps": 1.0})
        key = stressed.tobytes()
        if key not in self._stressed:
            k = np.where(stressed, self.breakers.stress_margin_multiplier, 1.0)
            self._stressed[key] = self.adapter.with_margin_multiplier(k)
        return self._stressed[key]

    # ------------------------------------------------------------------ marks and fills
    def marks(self, view: MarketView) -> np.ndarray:
        """Per position: bar low for longs, bar high for shorts (or the lagged close) of its market's asset, or
        of its mark series where the scenario gives one (``mark_assets``)."""
        s, a = self.oracle_spec, self.mark_asset
        return np.where(self.long, view.oracle(s, "collateral", a), view.oracle(s, "debt", a))

    def fill_prices(self, view: MarketView, flow_base: np.ndarray, mark: np.ndarray) -> np.ndarray:
        """Average fill of each pool's aggregate sell and buy order of the round (per position)."""
        fill = mark.copy()
        sold = np.maximum(-flow_base, 0.0)
        bought = np.maximum(flow_base, 0.0)
        for p in np.unique(self.pool[(sold > 0) | (bought > 0)]):
            rows = self.pool == p
            a = int(self.asset[rows][0])
            q = float(sold[rows].sum())
            if q > 0:
                px = proceeds_usd(view.liquidity, int(p), float(view.flow[p]), q, float(view.exo_low[a])) / q
                fill[rows & self.long] = px
            q = float(bought[rows].sum())
            if q > 0:
                px = purchase_usd(view.liquidity, int(p), float(view.flow[p]), q, float(view.exo_high[a])) / q
                fill[rows & ~self.long] = px
        return fill

    # ------------------------------------------------------------------ one round
    def round(self, view: MarketView) -> RoundResult:
        if self.unwind_due:
            return self._unwind_round(view)
        if self.rounds_left <= 0:
            return NOTHING
        ad, book = self.round_adapter(view), self.perp_book
        mark = self.marks(view)
        self.last_marks = mark
        flagged = ad.liquidatable(book, mark)
        if self.band_on:
            flagged &= self.band_allows(view)
        if not flagged.any():
            return NOTHING
        partial_ok = view.now_s >= self.partial_until
        out = ad.liquidate(book, mark, flagged, partial_allowed=partial_ok)
        if not out.liquidated.any():
            return NOTHING
        if self.trades and (out.market_flow_base != 0).any():
            fill = self.fill_prices(view, out.market_flow_base, mark)
            out = ad.liquidate(book, mark, flagged, fill_price_usd=fill, partial_allowed=partial_ok)
            if not out.liquidated.any():
                return NOTHING
        self.rounds_left -= 1
        go = out.liquidated
        self.perp_book = out.book
        partial = out.extra.get("partial")
        if partial is not None and self.cooldown_s > 0:
            self.partial_until = np.where(partial, view.now_s + self.cooldown_s, self.partial_until)
        self.liquidated_once |= go
        bs = out.backstop_size_base != 0
        if bs.any():
            self.vault_size[bs] += out.backstop_size_base[bs]
            self.vault_px[bs] = mark[bs]
            self.takeover_usd += float(out.backstop_takeover_usd.sum())
            if self.unwind_steps > 0:
                self.unwind_left[bs] += out.backstop_size_base[bs]
                self.unwind_rate[bs] = self.unwind_left[bs] / self.unwind_steps
        self.pending.append(out)
        if self.pnl_adl:  # the pool collects a liquidated trader's realised loss up to its margin (pays a profit)
            self.pool_value += np.bincount(self.venue_market[go], minlength=self.pool_value.size,
                                           weights=(-out.realized_pnl_usd - out.deficit_usd)[go])
        closed_usd = out.closed_size_base * mark
        flows = np.zeros(self.n_pools(view))
        sold = np.maximum(-out.market_flow_base, 0.0)
        bought = np.maximum(out.market_flow_base, 0.0)
        if self.trades:
            np.add.at(flows, self.pool, -out.market_flow_base)
        deltas = {
            "liquidations": float(go.sum()),
            "collateral_seized_usd": float(out.margin_released_usd[go].sum()),
            "perp_liquidated_long_usd": float(closed_usd[go & self.long].sum()),
            "perp_liquidated_short_usd": float(closed_usd[go & ~self.long].sum()),
            "perp_market_sold_base": float(sold.sum()) if self.trades else 0.0,
            "perp_market_bought_base": float(bought.sum()) if self.trades else 0.0,
            "perp_margin_released_usd": float(out.margin_released_usd[go].sum()),
            "perp_realized_pnl_usd": float(out.realized_pnl_usd[go].sum()),
            "perp_fee_usd": float(out.fee_usd[go].sum()),
            "perp_returned_to_owner_usd": float(out.returned_to_owner_usd[go].sum()),
            "perp_backstop_takeover_usd": float(out.backstop_takeover_usd[go].sum()),
            "perp_deficit_usd": float(out.deficit_usd[go].sum()),
            "backstop_taken_base": float(np.abs(out.backstop_size_base).sum()),
        }
        if self.path.events is not None:
            px = np.where(np.isfinite(out.fill_price_usd), out.fill_price_usd, mark)
            for i in np.flatnonzero(go):
                self.emit((self.path.path, view.t, self.ctx.index, int(i), -1, float(closed_usd[i]),
                           float(out.margin_released_usd[i]), 0.0, float(out.fee_usd[i]), float(out.deficit_usd[i]),
                           float(px[i])))
        return RoundResult(True, True, flows if self.trades else None, deltas)

    # ------------------------------------------------------------------ end of step: the waterfall
    def _pnl_to_pool_adl(self, view: MarketView) -> dict[str, float]:
        """GMX ADL at the step's closing marks: each market side whose pending PnL / pool value exceeds
        ``maxPnlFactorForAdl`` realises profit from its most profitable positions until the factor is
        ``minPnlFactorAfterAdl`` (``adapter.adl_orders``, pure rules); the pool pays the profit. Closes
        against the pool: no market flow. Pool value: the market's ``pool_usd`` at the start, plus the losses
        liquidated traders realised into it, less the ADL profit it paid (deposits, withdrawals and fees
        not modelled)."""
        book = self.perp_book
        mark = view.close[self.mark_asset]
        o = self.adapter.adl_orders(book, mark, self.pool_value)  # type: ignore[attr-defined]
        paid = o["pnl_realized_long_usd"] + o["pnl_realized_short_usd"]
        if not paid.sum() > _EPS_USD:
            return {}
        self.pool_value = self.pool_value - paid
        self.perp_book = o["book"]
        return {"adl_pnl_realised_usd": float(paid.sum()), "adl_steps": 1.0,
                "adl_closed_notional_usd": float((o["closed_size_base"] * mark).sum())}

    def _fund(self, view: MarketView) -> dict[str, float]:
        """Scenario funding (``funding = { rate_per_interval, interval_h }``) at each funding time: the end of
        the step in which the path's clock reaches a multiple of the interval. Every open position pays
        ``side * rate * notional`` at the step's closing mark (:func:`protocols.funding_payments_usd`) through
        its margin (:func:`protocols.apply_funding`); the next round's liquidation check sees the new margins."""
        rate, interval_s = self.funding
        t = view.t
        step_s = self.ctx.step_s
        times = int(math.floor(t * step_s / interval_s + 1e-9)) - int(math.floor((t - 1) * step_s / interval_s + 1e-9))
        if times <= 0 or rate == 0:
            return {}
        book = self.perp_book
        mark = view.close[self.mark_asset]
        rates = np.full(len(book.markets), rate * times)
        pay = funding_payments_usd(book, mark, rates)
        self.perp_book = apply_funding(book, pay)
        paid, got = float(np.maximum(pay, 0).sum()), float(np.maximum(-pay, 0).sum())
        return {"perp_funding_paid_usd": paid, "perp_funding_received_usd": got, "perp_funding_external_usd": paid - got}

    def end_step(self, view: MarketView) -> RoundResult:
        pool_adl = self._pnl_to_pool_adl(view) if self.pnl_adl else {}
        if self.funding is not None:
            pool_adl |= self._fund(view)
        if not self.pending:
            return RoundResult(False, False, None, pool_adl) if pool_adl else NOTHING
        outs, self.pending = self.pending, []
        to_adl = np.zeros(self.book0.n_positions)
        paid_ins = fees_in = paid_back = deficit = 0.0
        for out in outs:  # rounds settle against the fund in the order they happened
            wf = waterfall_of(out, self.fund, self.backstop, fees_to_insurance=self.fees_to_fund)
            need = np.where(out.insurance_eligible, wf.deficit_usd, 0.0)
            if self.fund0 > 0 and (need - wf.from_insurance_usd > _EPS_USD).any():
                self.depleted = True
            self.fund = max(wf.insurance_fund_after_usd, 0.0)  # float rounding of a fund paid out to zero
            self.fund_min = min(self.fund_min, self.fund)
            self.backstop = max(wf.backstop_after_usd, 0.0)
            paid_ins += float(wf.from_insurance_usd.sum())
            fees_in += float(wf.fee_income_usd.sum())
            paid_back += float(wf.from_backstop_usd.sum())
            deficit += float(wf.deficit_usd.sum())
            to_adl += wf.to_adl_usd
        self.backstop_paid += paid_back
        deltas = {"insurance_fund_paid_usd": paid_ins, "insurance_fee_income_usd": fees_in,
                  "backstop_paid_usd": paid_back}
        d = deficits_by_group(self.book0, to_adl)
        if d.sum() > _EPS_USD:
            book = self.perp_book
            mark = view.close[self.asset]
            upnl = book.unrealized_pnl_usd(mark)
            group = np.where(book.size_base > 0, self.groups, -1)
            cap = np.maximum(upnl, 0.0)
            if self.policy == "pro_rata":
                adl = adl_pro_rata(d, group, cap, book.size_base)
            else:
                adl = adl_queue(d, group, cap, self.adapter.adl_score(book, mark), book.size_base)
            self.perp_book = apply_adl(book, adl, mark)
            over = float(adl.overshoot_usd.sum())
            self.fund += over  # the queue's overshoot is credited to the insurance fund
            deltas |= {"adl_volume_usd": float(adl.covered_usd.sum()), "adl_overshoot_usd": over,
                       "adl_closed_notional_usd": float((adl.closed_size_base * mark).sum()),
                       "adl_steps": 1.0, "realised_bad_debt_usd": float(adl.uncovered_usd.sum())}
            deltas["insurance_fee_income_usd"] += over
        for k, v in pool_adl.items():
            deltas[k] = deltas.get(k, 0.0) + v
        deltas["adl_steps"] = min(deltas.get("adl_steps", 0.0), 1.0)
        return RoundResult(False, False, None, deltas)

    # ------------------------------------------------------------------ horizon
    def end_path(self, final: FinalView) -> dict[str, Any]:
        ad, book = self.adapter, self.perp_book
        mark = final.close[self.mark_asset]
        eq = ad.equity_usd(book, mark)
        open_ = book.size_base > 0
        # one value per margin pool: an isolated row, or the first open row of a cross account
        key = np.where(book.is_cross, book.account, book.n_accounts + np.arange(book.n_positions))
        first = np.zeros(book.n_positions, bool)
        idx = np.flatnonzero(open_)
        if idx.size:
            _, k = np.unique(key[idx], return_index=True)
            first[idx[k]] = True
        under = float(np.maximum(-eq[first], 0.0).sum())
        vault = (self.takeover_usd + self.vault_realised_usd
                 + float((self.vault_size * (mark - self.vault_px)).sum()))
        return {"unrealised_bad_debt_usd": under,
                "insurance_fund_drawdown_usd": max(self.fund0 - self.fund_min, 0.0),
                "insurance_fund_depleted": float(self.depleted),
                "backstop_loss_usd": self.backstop_paid + max(-vault, 0.0),
                "account_liquidated": self.liquidated_once}
