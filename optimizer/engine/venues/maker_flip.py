"""Maker Liquidations 1.0 / 1.2 on the cascade loop: Cat bites and Flipper English auctions with keepers.

The rules are :class:`protocols.MakerLiq12` (``Cat.bite``, 1.0 ``lump`` or 1.2 ``dunk``/``box``) and
:mod:`protocols.maker_flipper` (``kick``, ``tend``, ``dent``, ``deal``, ``tick``); who bids what is the
keeper model :mod:`optimizer.behaviour.keepers` (finite DAI, a gas-price limit per keeper, ``value``
and ``minimal`` strategies). Per step ``t`` at ``now = t × step`` (first round only):

1. **deal** every auction whose bid expired (``tic < now``) or that reached ``end``: the winner gets
   the lot, the auction's ``bid`` is what it raised; the Vow books ``min(bid, due)`` repaid,
   ``max(bid − due, 0)`` penalty income and ``max(due − bid, 0)`` bad debt (Vow ``sin`` that only
   debt auctions can cover), and 1.2 releases ``litter`` (``cat.claw``). **tick** the auctions that
   reached ``end`` with no bid (restart them for ``tau``);
2. keepers sell won collateral whose ``recycle_delay_min`` has passed into the collateral's pool (with
   its impact: the sale moves the price everyone sees next round) and get the proceeds in DAI at the
   market DAI/USD price; and buy DAI: ``dai_refill_share`` of the bar's DAI volume (the replayed DAI
   CSV's volume column; nothing when the market has no DAI volume);
3. **bite** every unsafe vault at the OSM price (the venue's oracle: the market close ``osm_hop`` ago)
   until none is left unsafe: Cat 1.0 cuts a vault into ``lump``-sized lots in one step (a bite
   leaves the rest of the vault exactly as unsafe, so keepers bite it again in the next block);
   Cat 1.2 bites ``dunk`` chunks while ``box − litter`` allows. Each bite kicks one auction
   (``tab = due × chop``, ``end = now + tau``);
4. **bid**: :func:`optimizer.behaviour.keepers.bid_step` once over the open auctions, at the market
   close of the collateral (what a keeper sells it for), the market DAI/USD close (the DAI squeeze
   replayed as an asset: a keeper short of DAI pays the premium), the step's gas price (keepers
   whose gas limit is below it get nothing mined) and gas cost.

With ``ttl`` = one step a bid nobody tops within its own step has won, so an auction whose only bidder
is a ``minimal`` keeper closes at that first bid: the zero-bid auctions of 12 March 2020 appear when
the ``value`` keepers are priced out by gas or out of DAI, and not when they are not.

Accounting (each auction is booked once, at its deal or at the horizon):

- a bite counts as a liquidation (``liquidations``) of the step it happened in, with no value yet;
- at the deal the auction books ``collateral_seized_usd`` = the lot at kick × the OSM price of the
  bite, ``debt_repaid_usd`` and ``protocol_fee_usd`` from the DAI raised (× the market DAI price of
  the deal step), ``returned_to_owner_usd`` = the collateral dent gave back × the bite price, and the
  rest of the seized value as ``liquidator_bonus_usd`` (the keepers' discount: the whole lot for a
  zero bid), ``realised_bad_debt_usd`` = ``max(due − bid, 0)`` × the DAI price. One event per
  auction, at its bite step;
- at the horizon a running auction's lot is ``inventory_usd`` (final close) and its
  ``max(due − max(bid, lot value), 0)`` is unrealised bad debt; it is reported as an event too.

Won collateral is sold into the collateral pool only with ``recycle_collateral``: at once at the market
price when ``recycle_delay_min`` is 0 (the flow still moves the pool), else ``recycle_delay_min`` after
the deal at the pool's impacted price (ledger ``keeper_collateral_sold_usd``); the venue never buys DAI
from a pool (keepers' DAI comes from their balances, these sales and the refill).

Without a ``keepers = "file.json"`` population the venue uses :data:`AMPLE_KEEPERS` (four ``value``
keepers with unlimited DAI and gas limit, 3 % margin): competitive auctions, the behaviour the
one-call settlement of :meth:`protocols.MakerLiq12.liquidate` assumes.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols import MakerLiq12
from protocols import maker_flipper as fl

from ...behaviour import keepers as kp
from .._market import proceeds_usd
from ..ledger import LENDING_FIELDS, LedgerField
from .base import NOTHING, FinalView, MarketView, PathContext, RoundResult
from .lending import LendingVenue

ZERO_BID_DAI = 1.0  # an auction that raised less than this won its lot "for zero DAI"
AUCTIONS_DEALT = LedgerField("auctions_dealt", "auctions", "venue", "Flipper auctions dealt within the horizon")
FIRST_BID_WINS = LedgerField("auctions_won_at_first_bid", "auctions", "venue",
                             "Dealt auctions whose first bid won (no competing bid landed)")
FIRST_BID_COLLATERAL = LedgerField("collateral_won_at_first_bid_usd", "USD", "venue",
                                   "Collateral (at the bite price) of auctions won at their first bid")
ZERO_BIDS = LedgerField("zero_bid_auctions", "auctions", "venue",
                        f"Dealt auctions that raised less than {ZERO_BID_DAI:g} DAI (won for ~nothing)")
ZERO_BID_COLLATERAL = LedgerField("collateral_won_at_zero_bid_usd", "USD", "venue",
                                  "Collateral (at the bite price) of the zero-bid auctions")
KEEPER_GAS = LedgerField("keeper_gas_usd", "USD", "venue", "Gas keepers spent on bids that landed")
KEEPER_SOLD = LedgerField("keeper_collateral_sold_usd", "USD", "venue",
                          "Won collateral keepers sold back into DAI in the market (after the recycle delay, with impact)")

#: the keepers a Maker 1.x venue gets without a population file: competitive, never short of DAI or gas
AMPLE_KEEPERS = kp.population({
    "keepers": [{"strategy": "value", "count": 4, "dai_capacity_dai": 1e10, "max_gas_gwei": 1e5, "margin": 0.03}],
    "recycle_collateral": True,
}, file="optimizer.engine.venues.maker_flip.AMPLE_KEEPERS")


class MakerFlipVenue(LendingVenue):
    """Cat bites, Flipper auctions and keepers through time (see the module docstring)."""

    ledger_fields = (*LENDING_FIELDS, AUCTIONS_DEALT, FIRST_BID_WINS, FIRST_BID_COLLATERAL, ZERO_BIDS,
                     ZERO_BID_COLLATERAL, KEEPER_GAS, KEEPER_SOLD)
    capped = False  # keepers bid in every open auction; bites need no profit
    needs_profit = False

    def kernel_spec(self) -> str:
        return f"{self.ctx.id} liquidations are Flipper auctions (reference engine)"

    # ------------------------------------------------------------------ per path
    def start_path(self, path: PathContext) -> None:
        super().start_path(path)
        ad = self.ctx.adapter
        assert isinstance(ad, MakerLiq12)
        self.ad = ad
        self.pop: kp.KeeperPopulation = self.ctx.keepers if self.ctx.keepers is not None else AMPLE_KEEPERS
        self.keepers = kp.KeeperState.start(self.pop)
        self.flips = fl.Flips.empty()
        self.litter_dai = 0.0
        self.ilk_col = ad.vault_ilk(self.book)
        self.rules = [ad.ilk(i) for i in self.book.collateral_assets]
        # per auction (append-only, like Flips)
        self.a_col = np.zeros(0, np.int64)  # ilk column
        self.a_step = np.zeros(0, np.int64)  # bite step
        self.a_price = np.zeros(0)  # OSM price at the bite, USD per token
        self.a_lot0 = np.zeros(0)  # lot at kick, tokens
        self.a_bids = np.zeros(0, np.int64)  # bids that landed
        # won lots waiting to be sold back into DAI (recycle_delay_min > 0)
        self.s_keeper = np.zeros(0, np.int64)
        self.s_col = np.zeros(0, np.int64)
        self.s_tokens = np.zeros(0)
        self.s_due_s = np.zeros(0)

    def start_step(self, view: MarketView) -> None:
        super().start_step(view)
        self.bid_done = False

    # ------------------------------------------------------------------ market inputs of a step
    def _dai_usd(self, view: MarketView) -> float:
        return float(view.close[self.ctx.debt_market[0]])

    def _gas(self, view: MarketView) -> tuple[float, float]:
        """(gwei, gas-token USD price) of the step; (0, 0) when the scenario prices no gas."""
        gwei = view.gas_gwei if np.isfinite(view.gas_gwei) else 0.0
        per_call = self.ctx.liquidators.gas_per_call
        token_usd = view.gas_usd / (per_call * 1e-9 * gwei) if gwei > 0 and per_call > 0 else 0.0
        return float(gwei), float(token_usd)

    def _version(self) -> str:
        return self.ad.flipper_version

    # ------------------------------------------------------------------ one round
    def round(self, view: MarketView) -> RoundResult:
        if not view.first_round:
            return NOTHING
        deltas: dict[str, float] = {}
        flows = np.zeros(self.n_pools(view))
        acted = self._deal_and_tick(view, deltas, flows)
        acted |= self._sell_won(view, deltas, flows)
        self._refill(view)
        bitten = self._bite(view, deltas)
        acted |= bitten
        acted |= self._bid(view, deltas)
        return RoundResult(acted, bitten, flows if flows.any() else None, deltas)

    def _deal_and_tick(self, view: MarketView, deltas: dict[str, float], flows: np.ndarray) -> bool:
        if self.flips.n == 0:
            return False
        now = view.now_s
        dai = self._dai_usd(view)
        p_mkt = view.close[self.ctx.coll_market[self.a_col]]
        self.flips, self.keepers, d = kp.deal_step(self.flips, self.pop, self.keepers, now_s=now, price_usd=p_mkt,
                                                  dai_usd=dai, version=self._version())
        go = d.reason == fl.OK
        if go.any():
            delayed = self.pop.recycle_delay_min > 0
            if self.pop.recycle_collateral and not delayed:  # winners sold the lot at once (deal_step credited them)
                np.add.at(flows, self.ctx.coll_pool[self.a_col[go]], d.lot_tokens[go])
            elif self.pop.recycle_collateral:  # sold recycle_delay_min later, in the market (_sell_won)
                won = go & (d.winner >= 0) & (d.lot_tokens > 0)
                self.s_keeper = np.concatenate([self.s_keeper, d.winner[won].astype(np.int64)])
                self.s_col = np.concatenate([self.s_col, self.a_col[won]])
                self.s_tokens = np.concatenate([self.s_tokens, d.lot_tokens[won]])
                self.s_due_s = np.concatenate([self.s_due_s, np.full(int(won.sum()), now + 60.0 * self.pop.recycle_delay_min)])
            self.litter_dai = max(self.litter_dai - float(d.claw_dai[go].sum()), 0.0)
            self._book(np.flatnonzero(go), d.raised_dai[go], d.lot_tokens[go], dai, deltas)
        tickable = fl.tickable(self.flips, now)
        acted = bool(go.any())
        if tickable.any():
            tau = np.array([r.tau_s for r in self.rules])[self.a_col]
            for c in np.unique(self.a_col[tickable]):
                m = tickable & (self.a_col == c)
                self.flips, _ = fl.tick(self.flips, now, tau_s=float(tau[m][0]), mask=m)
            acted = True
        return acted

    def _sell_won(self, view: MarketView, deltas: dict[str, float], flows: np.ndarray) -> bool:
        """Keepers sell the lots whose recycle delay has passed into the collateral's pool (in deal order,
        each at the pool state the earlier sales of the step left) and get the proceeds in DAI at the
        step's market DAI/USD price."""
        due = self.s_due_s <= view.now_s
        if not due.any():
            return False
        dai = self._dai_usd(view)
        idx = np.flatnonzero(due)
        got_dai = np.zeros(idx.size)
        for n, i in enumerate(idx):
            c = int(self.s_col[i])
            pool, asset = int(self.ctx.coll_pool[c]), int(self.ctx.coll_market[c])
            q = float(self.s_tokens[i])
            usd = proceeds_usd(view.liquidity, pool, float(view.flow[pool] + flows[pool]), q, float(view.exo_close[asset]))
            flows[pool] += q
            got_dai[n] = usd / dai
        self.keepers = kp.sell_collateral(self.keepers, self.s_keeper[idx], self.s_tokens[idx], got_dai)
        _adder(deltas)("keeper_collateral_sold_usd", float(got_dai.sum() * dai))
        keep = ~due
        self.s_keeper, self.s_col = self.s_keeper[keep], self.s_col[keep]
        self.s_tokens, self.s_due_s = self.s_tokens[keep], self.s_due_s[keep]
        return True

    def _book(self, idx: np.ndarray, raised_dai: np.ndarray, lot_won: np.ndarray, dai_usd: float,
              deltas: dict[str, float], *, final: bool = False) -> None:
        """Ledger and events of auctions ``idx`` that ended with ``raised_dai`` (dealt, or the horizon)."""
        due = self.flips.due_dai[idx] if not final else self._due_open[idx]
        seized = self.a_lot0[idx] * self.a_price[idx]
        returned = np.maximum(self.a_lot0[idx] - lot_won, 0.0) * self.a_price[idx]
        repaid = np.minimum(raised_dai, due) * dai_usd
        fee = np.maximum(raised_dai - due, 0.0) * dai_usd
        bad = np.maximum(due - raised_dai, 0.0) * dai_usd
        first = self.a_bids[idx] <= 1
        add = _adder(deltas)
        add("collateral_seized_usd", seized.sum())
        add("debt_repaid_usd", repaid.sum())
        add("protocol_fee_usd", fee.sum())
        add("returned_to_owner_usd", returned.sum())
        add("liquidator_bonus_usd", (seized - repaid - fee - returned).sum())
        if not final:
            add("realised_bad_debt_usd", bad.sum())
            add("auctions_dealt", float(idx.size))
            add("auctions_won_at_first_bid", float(first.sum()))
            add("collateral_won_at_first_bid_usd", seized[first].sum())
            zero = raised_dai < ZERO_BID_DAI
            add("zero_bid_auctions", float(zero.sum()))
            add("collateral_won_at_zero_bid_usd", seized[zero].sum())
        if self.path.events is not None:
            for n, i in enumerate(idx):
                self.emit((self.path.path, int(self.a_step[i]), self.ctx.index, int(self.flips.usr[i]),
                           int(self.a_col[i]), float(repaid[n]), float(seized[n]),
                           float(seized[n] - repaid[n] - fee[n] - returned[n]), float(fee[n]), float(bad[n]),
                           float(self.a_price[i])))

    def _refill(self, view: MarketView) -> None:
        vol = self.ctx.market_volume
        if vol is None or self.pop.dai_refill_share <= 0:
            return
        v = vol[self.ctx.debt_market[0], view.t]
        if np.isfinite(v) and v > 0:
            self.keepers = kp.refill(self.keepers, self.pop, dai_volume_dai=float(v))

    def _bite(self, view: MarketView, deltas: dict[str, float]) -> bool:
        prices = self.oracle_prices(view)
        _, cand = self.candidates(view, prices)
        if not cand.any():
            return False
        rows = np.arange(self.book.n_positions)
        price_col = np.broadcast_to(prices.collateral_usd, self.book.collateral_tokens.shape)
        n_bites = 0
        while cand.any():
            b = self.ad.bite(self.book, prices, cand, litter_dai=self.litter_dai)
            go = b.reason == 0
            if not go.any():
                break
            idx = np.flatnonzero(go)
            col = self.ilk_col[idx]
            ink, art = self.book.collateral_tokens[idx, col], self.book.debt_tokens[idx, 0]
            coll = self.book.collateral_tokens.copy()
            debt = self.book.debt_tokens.copy()
            coll[idx, col] = np.where(b.lot[idx] >= ink, 0.0, ink - b.lot[idx])
            debt[idx, 0] = np.where(b.art[idx] >= art, 0.0, art - b.art[idx])
            self.book = self.book.with_balances(coll, debt)
            if self.ad.cat_version == "1.2":
                self.litter_dai = b.litter_dai
            tau = np.array([self.rules[c].tau_s for c in col])
            new = fl.kick(b.tab_dai[idx], b.lot[idx], usr=idx, due_dai=b.due_dai[idx], now_s=view.now_s, tau_s=0.0)
            new = new.replace(end_s=view.now_s + tau)
            self.flips = self.flips.concat(new)
            self.a_col = np.concatenate([self.a_col, col])
            self.a_step = np.concatenate([self.a_step, np.full(idx.size, view.t)])
            self.a_price = np.concatenate([self.a_price, price_col[rows[idx], col]])
            self.a_lot0 = np.concatenate([self.a_lot0, b.lot[idx]])
            self.a_bids = np.concatenate([self.a_bids, np.zeros(idx.size, np.int64)])
            self.liquidated_once[idx] = True
            n_bites += idx.size
            cand = cand & (self.book.debt_tokens[:, 0] > 0) & (self.ad.health(self.book, prices) < 1.0)
        if n_bites:
            _adder(deltas)("liquidations", float(n_bites))
        return n_bites > 0

    def _bid(self, view: MarketView, deltas: dict[str, float]) -> bool:
        if self.bid_done or self.flips.n == 0:
            return False
        self.bid_done = True
        gwei, token_usd = self._gas(view)
        dai = self._dai_usd(view)
        p_mkt = view.close[self.ctx.coll_market[self.a_col]]
        gas0 = float(self.keepers.gas_spent_usd.sum())
        landed = np.zeros(self.flips.n, np.int64)
        for c in np.unique(self.a_col[self.flips.live]):
            r = self.rules[c]
            sub = np.flatnonzero(self.flips.live & (self.a_col == c))
            part = _take(self.flips, sub)
            part, self.keepers, rep = kp.bid_step(part, self.pop, self.keepers, now_s=view.now_s, price_usd=p_mkt[sub],
                                                  dai_usd=dai, gas_gwei=gwei, eth_usd=token_usd, beg=r.beg,
                                                  ttl_s=r.ttl_s, version=self._version())
            self.flips = _put(self.flips, sub, part)
            landed[sub] += rep.tends + rep.dents
        self.a_bids += landed
        gas = float(self.keepers.gas_spent_usd.sum()) - gas0
        if gas:
            _adder(deltas)("keeper_gas_usd", gas)
        return bool(landed.any())

    # ------------------------------------------------------------------ horizon
    def end_path(self, final: FinalView) -> dict[str, Any]:
        out = super().end_path(final)
        fl_ = self.flips
        live = np.flatnonzero(fl_.live)
        if live.size:
            dai = float(final.close[self.ctx.debt_market[0]])
            lot_usd = fl_.lot[live] * final.close[self.ctx.coll_market[self.a_col[live]]]
            # the high bid wins unless topped; with no bid the lot is still worth its market value
            outcome_dai = np.maximum(fl_.bid_dai[live], np.where(fl_.bid_dai[live] > 0, 0.0, lot_usd / dai))
            due = fl_.due_dai[live]
            out["inventory_usd"] = out.get("inventory_usd", 0.0) + float(lot_usd.sum())
            out["unrealised_bad_debt_usd"] = (out.get("unrealised_bad_debt_usd", 0.0)
                                              + float(np.maximum(due - outcome_dai, 0.0).sum() * dai))
            if self.path.events is not None:  # open auctions are reported at their bite, valued as above
                self._due_open = np.zeros(fl_.n)
                self._due_open[live] = due
                ev: dict[str, float] = {}
                raised = np.minimum(outcome_dai, fl_.tab_dai[live])
                self._book(live, raised, fl_.lot[live], dai, ev, final=True)
        return out


def _adder(deltas: dict[str, float]):
    def add(name: str, v: float) -> None:
        deltas[name] = deltas.get(name, 0.0) + float(v)
    return add


def _take(flips: fl.Flips, idx: np.ndarray) -> fl.Flips:
    from dataclasses import fields

    return fl.Flips(**{f.name: getattr(flips, f.name)[idx] for f in fields(flips)})


def _put(flips: fl.Flips, idx: np.ndarray, part: fl.Flips) -> fl.Flips:
    from dataclasses import fields

    out = {}
    for f in fields(flips):
        a = getattr(flips, f.name).copy()
        a[idx] = getattr(part, f.name)
        out[f.name] = a
    return fl.Flips(**out)


__all__ = ["AMPLE_KEEPERS", "MakerFlipVenue"]
