"""Maker Liquidations 2.0 through time in the reference engine: Dog.bark, Clipper auctions, keepers.

One :class:`MakerAuctions` per path and Maker protocol holds the auction state (arrays over
auctions: ilk column, ``tab``, ``lot``, ``top``, ``tic``, owner row, debt still to cover) plus
``dirt`` per ilk, ``Dirt`` and the Clipper ``stopped`` level per ilk. The Maker venue simulator
(:class:`optimizer.engine.venues.maker.MakerVenue`) calls :meth:`MakerAuctions.trip` at the start of
every step, :meth:`MakerAuctions.round` in every round, in place of ``adapter.liquidate``, and
:meth:`MakerAuctions.finish` at the horizon; each returns its ledger deltas in ``deltas``. The contract rules are the adapter's pure functions
(:func:`protocols.maker.bark`, ``kick``, ``needs_redo``, ``redo``, ``purchase``, ``take``,
``trip_breaker``); this module only drives them through time and does the accounting.

Per round of step ``t`` (time ``now = t·step_s``), in this order:

1. **ClipperMom** (at the start of the step, at round-0 prices): the OSM's current price ``peek`` is the oracle
   price the engine computes for the protocol (market close ``lag`` steps ago, lag = OSM hop /
   step + ``oracle.lag_steps``); its next price ``peep`` is the feed the OSM reads now: the current
   market close (the close ``oracle.lag_steps`` ago when the scenario adds a lag). An ilk with a
   tolerance trips to ``stopped = 2`` when ``peep < tolerance·peek``: no new kicks, no redo; takes
   go on. A trip is never undone (governance resets are not modelled).
2. **redo**: running auctions that need it (``now − tic > tail`` or ``price/top < cusp``) restart
   at ``top = OSM·buf`` unless ``stopped >= 2``; the incentive ``tip + chip·tab`` is paid only when
   ``tab >= chost`` and ``lot·OSM >= chost``. Redo is called whether or not the incentive covers
   gas (the protocol and its keepers call it; the incentive is sized for that).
3. **bark**: vaults with health < 1 at the OSM price (and, with a reaction delay, also ``d`` steps
   ago: the engine's candidates) are barked in book order with the running ``Dirt``/``dirt``, so
   ``hole``/``Hole`` are the throughput limit; a vault that does not fit (limit hit, dusty partial)
   waits for room, which takes free (``Dog.digs``). Each bark kicks an auction at ``top = OSM·buf``
   and pays ``tip + chip·tab``. Barks need no profit and no call budget (as redo).
4. **take**: keepers buy from running auctions that do not need a reset. For each, with the
   auction price ``p`` (abacus at ``now − tic``, DAI per token, ``p·P_DAI`` in USD) and the
   market of the ilk's underlying token from the round's starting state (exogenous price = the
   bar's low, as for the other protocols), they consider the profit-maximising partial buy (tokens
   until the marginal market price falls to ``p``) and the whole lot, each through the Clipper's
   ``purchase`` arithmetic (capped at ``tab``, chost rule), with profit = sale proceeds
   (:func:`proceeds_usd`) − DAI paid − gas per call − ``min_profit_usd``, and keep the better
   one if its profit is > 0. Takes run in order of profit (then auction id) up to the step's
   call budget (``max_calls_per_step`` per protocol, shared by all rounds). The bought tokens are
   sold into the market together with the round's other sales (``round_sales``): the impact feeds
   the other protocols and the next rounds.

Accounting of one take (USD; ``P`` = the market price of the token at the round's start at the
bar's low, ``P_DAI`` = the market close of DAI). Each auction carries ``due`` = the debt the bark
removed from the vault (``tab = due·chop``):

* ``debt_repaid`` = the part of the DAI paid that covers the auction's remaining ``due``;
  ``protocol_fee`` = the DAI paid above it (the penalty, to surplus);
* ``returned_to_owner`` = lot given back when ``tab`` is fully paid, valued at ``P``;
* ``collateral_seized`` = (tokens bought + tokens returned)·``P``;
* ``liquidator_bonus`` = tokens bought·``P`` − DAI paid (negative when the keeper overpaid
  relative to ``P``: recorded as is);
* a take that empties the lot with ``tab`` left ends the auction: the unpaid ``due`` is realised
  bad debt. The unpaid rest of ``tab`` above ``due`` is penalty that was never earned, not a loss.

So per take and per path ``collateral_seized = debt_repaid + liquidator_bonus + protocol_fee +
returned_to_owner`` exactly (up to float rounding), and over a path the debt removed from the
vaults (``debt_removed_usd``) = ``debt_repaid`` + realised bad debt + ``due`` still in running
auctions at the horizon (all at ``P_DAI`` = 1 in the bundled books).

At the horizon, running auctions' lots are ``inventory_usd`` (at the final market close) and their
remaining ``due`` minus that value, if positive, is unrealised bad debt (the engine adds the open
underwater vaults as for the other protocols). Keeper incentives (kick and redo) are
``keeper_incentive_usd``, paid from surplus and outside the identity.

``liquidations`` counts barks (auctions kicked), ``account_liquidated`` vaults barked at least
once; ``first``/``last_liquidation_step`` cover barks and takes (a liquidation lasts until its
auction settles). Event rows (``events=``) are one per take: position = the vault, price = the
auction price in USD. ``trace`` (a list, optional) receives one dict per trip, kick, redo and take.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from protocols import Book
from protocols.maker import (
    LIVE,
    NO_KICK,
    NO_TAKE,
    OK,
    Auctions,
    Maker,
    bark,
    kick,
    needs_redo,
    purchase,
    redo,
    take,
    trip_breaker,
)

from ._market import proceeds_usd, storefront_quantity

_MIN_SLICE = 1e-12  # relative to the lot: smaller buys are float noise of the partial-buy search


class MakerAuctions:
    """Auction state of one Maker protocol on one path (see the module docstring)."""

    def __init__(self, adapter: Maker, book: Book, coll_market: np.ndarray, debt_market: np.ndarray,
                 coll_pool: np.ndarray | None = None, *, j: int, path: int, liquidated_once: np.ndarray,
                 liq: np.ndarray, min_profit_usd: float, events: list[tuple] | None = None,
                 trace: list[dict] | None = None):
        self.book = book
        self.cm, self.dm = np.asarray(coll_market), np.asarray(debt_market)
        self.cp = self.cm if coll_pool is None else np.asarray(coll_pool)  # pool of each ilk's token
        self.j, self.path = j, int(path)
        self.deltas: dict[str, float] = {}  # ledger deltas since the caller last took them
        self.marked = False  # a bark or take happened since the caller last looked
        self.liquidated_once = liquidated_once
        self.liq, self.min_profit = liq, float(min_profit_usd)
        self.events, self.trace = events, trace
        ilks = book.collateral_assets
        self.ilks = ilks
        rules = [adapter.ilk(i) for i in ilks]
        self.calc = [r.calc for r in rules]

        def per(name: str) -> np.ndarray:
            return np.array([getattr(r, name) for r in rules], np.float64)

        self.chop, self.dust, self.hole = per("chop"), per("dust_dai"), per("hole_dai")
        self.buf, self.tail, self.cusp = per("buf"), per("tail_s"), per("cusp")
        self.chip, self.tip, self.chost = per("chip"), per("tip_dai"), per("chost_dai")
        self.tol = np.array([np.nan if r.clipper_mom_tolerance is None else r.clipper_mom_tolerance
                             for r in rules], np.float64)
        self.stopped = np.array([r.stopped for r in rules], np.int64)
        self.Hole = float(adapter.params["Hole_dai"])
        self.dirt = np.zeros(len(ilks))
        self.Dirt = 0.0
        self.col = adapter.vault_ilk(book)  # ilk column of each vault (fixed: a vault has one ilk)
        # auctions (append-only; finished ones keep tab = lot = 0)
        self.a_ilk = np.zeros(0, np.int64)
        self.a_owner = np.zeros(0, np.int64)
        self.tab = np.zeros(0)
        self.lot = np.zeros(0)
        self.top = np.zeros(0)
        self.tic = np.zeros(0)
        self.due = np.zeros(0)  # debt (DAI) the auction still has to cover

    # ------------------------------------------------------------------ helpers
    @property
    def running(self) -> np.ndarray:
        return (self.tab > 0) & (self.lot > 0)

    def _auctions(self, idx: np.ndarray) -> Auctions:
        return Auctions(self.tab[idx], self.lot[idx], self.top[idx], self.tic[idx])

    def _mark(self, t: int) -> None:
        self.marked = True

    def _add(self, name: str, value: float) -> None:
        self.deltas[name] = self.deltas.get(name, 0.0) + value

    def take_deltas(self) -> dict[str, float]:
        out, self.deltas = self.deltas, {}
        return out

    def _log(self, **row: Any) -> None:
        if self.trace is not None:
            self.trace.append({"path": self.path, "protocol": self.j, **row})

    # ------------------------------------------------------------------ one round
    def trip(self, t: int, osm_c: np.ndarray, osm_next_c: np.ndarray) -> None:
        """ClipperMom, once per step before the first round."""
        self._trip(t, osm_c, osm_next_c)

    def round(self, t: int, now_s: float, cand: np.ndarray, osm_c: np.ndarray, mkt_low: np.ndarray,
              mkt_close: np.ndarray, exo_low: np.ndarray, flow: np.ndarray, gas_usd: float, calls_left: int,
              round_sales: np.ndarray) -> tuple[bool, int]:
        """Redo, bark, take. ``flow`` is the pools' state at the round's start; the tokens keepers sell
        go to ``round_sales`` (per pool). Returns (anything changed, take calls used)."""
        p_dai = float(mkt_close[self.dm[0]])
        sold = flow
        did = self._redo(t, now_s, osm_c, p_dai)
        did |= self._bark(t, now_s, cand, osm_c, p_dai)
        used = self._take(t, now_s, mkt_low, p_dai, exo_low, sold, gas_usd, calls_left, round_sales)
        return did or used > 0, used

    def _trip(self, t: int, osm_c: np.ndarray, osm_next_c: np.ndarray) -> None:
        new = trip_breaker(self.stopped, osm_c, osm_next_c, self.tol)
        for c in np.flatnonzero(new != self.stopped):
            self._log(event="trip", step=t, ilk=self.ilks[c], peek=float(osm_c[c]), peep=float(osm_next_c[c]))
        self.stopped = np.asarray(new, np.int64)

    def _redo(self, t: int, now_s: float, osm_c: np.ndarray, p_dai: float) -> bool:
        run = self.running
        if not run.any():
            return False
        did = False
        for c in np.unique(self.a_ilk[run]):
            idx = np.flatnonzero(run & (self.a_ilk == c))
            r = redo(self._auctions(idx), self.calc[c], now_s, float(osm_c[c]), buf=self.buf[c],
                     tail_s=self.tail[c], cusp=self.cusp[c], tip_dai=self.tip[c], chip=self.chip[c],
                     chost_dai=self.chost[c], stopped=int(self.stopped[c]))
            go = r.reason == OK
            if not go.any():
                continue
            did = True
            self.top[idx], self.tic[idx] = r.auctions.top, r.auctions.tic
            self._add("keeper_incentive_usd", float(r.coin_dai.sum()) * p_dai)
            for i, coin in zip(idx[go], r.coin_dai[go], strict=True):
                self._log(event="redo", step=t, auction=int(i), vault=int(self.a_owner[i]), top=float(self.top[i]),
                          coin_dai=float(coin))
        return did

    def _bark(self, t: int, now_s: float, cand: np.ndarray, osm_c: np.ndarray, p_dai: float) -> bool:
        book = self.book
        col = self.col
        live = (self.stopped < NO_KICK) & (osm_c > 0)  # kick reverts when stopped; spot > 0 in Dog
        idx = np.flatnonzero(cand & live[col] & (book.debt_tokens[:, 0] > 0))
        if idx.size == 0:
            return False
        rows = np.arange(book.n_positions)
        ink = book.collateral_tokens[rows, col]
        art = book.debt_tokens[:, 0]  # rate = 1 (the adapter's no-stability-fee convention)
        b = bark(ink[idx], art[idx], col[idx], chop=self.chop, dust_dai=self.dust, hole_dai=self.hole,
                 Hole_dai=self.Hole, dirt_dai=self.dirt, Dirt_dai=self.Dirt)
        go = b.reason == OK
        if not go.any():
            return False
        g, cg = idx[go], col[idx[go]]
        dart, dink, due, tab = b.dart[go], b.dink[go], b.due_dai[go], b.tab_dai[go]
        auc, coin = kick(tab, dink, osm_c[cg], buf=self.buf[cg], tip_dai=self.tip[cg], chip=self.chip[cg],
                         now_s=now_s, stopped=LIVE)
        dirt_before, Dirt_before = self.dirt.copy(), self.Dirt
        self.dirt, self.Dirt = np.array(b.dirt_dai, np.float64), float(b.Dirt_dai)
        whole = dart >= art[g]
        new_c = book.collateral_tokens.copy()
        new_d = book.debt_tokens.copy()
        new_c[g, cg] = np.where(whole, 0.0, ink[g] - dink)
        new_d[g, 0] = np.where(whole, 0.0, art[g] - dart)
        self.book = book.with_balances(new_c, new_d)
        first_id = self.tab.size
        self.a_ilk = np.concatenate([self.a_ilk, cg])
        self.a_owner = np.concatenate([self.a_owner, g])
        self.tab = np.concatenate([self.tab, auc.tab])
        self.lot = np.concatenate([self.lot, auc.lot])
        self.top = np.concatenate([self.top, auc.top])
        self.tic = np.concatenate([self.tic, auc.tic])
        self.due = np.concatenate([self.due, due])
        self._add("liquidations", float(g.size))
        self._add("keeper_incentive_usd", float(coin.sum()) * p_dai)
        self.liquidated_once[g] = True
        self._mark(t)
        if self.trace is not None:  # dirt/Dirt: the counters each bark saw (before its own tab)
            for n, i in enumerate(g):
                self._log(event="kick", step=t, auction=first_id + n, vault=int(i), ilk=self.ilks[cg[n]],
                          tab=float(tab[n]), lot=float(dink[n]), due=float(due[n]), top=float(auc.top[n]),
                          coin_dai=float(coin[n]), whole=bool(whole[n]), dirt=float(dirt_before[cg[n]]),
                          Dirt=Dirt_before)
                dirt_before[cg[n]] += tab[n]
                Dirt_before += float(tab[n])
        return True

    def _take(self, t: int, now_s: float, mkt_low: np.ndarray, p_dai: float, exo_low: np.ndarray,
              sold: np.ndarray, gas_usd: float, calls_left: int, round_sales: np.ndarray) -> int:
        run = self.running & (self.stopped[self.a_ilk] < NO_TAKE)
        if calls_left <= 0 or not run.any():
            return 0
        # Abacus price and reset status, per ilk (one calc per ilk).
        price = np.zeros(self.tab.size)
        stuck = np.zeros(self.tab.size, bool)
        for c in np.unique(self.a_ilk[run]):
            idx = np.flatnonzero(run & (self.a_ilk == c))
            done, p = needs_redo(self._auctions(idx), self.calc[c], now_s, tail_s=self.tail[c], cusp=self.cusp[c])
            price[idx], stuck[idx] = p, done
        run &= ~stuck  # take reverts with Clipper/needs-reset
        a = self.cm[self.a_ilk]  # market asset (prices) and pool (flows) of each auction's token
        pool = self.cp[self.a_ilk]
        px_usd = price * p_dai
        # Upper bound of the profit (proceeds <= tokens x marginal price): cheap vectorised filter.
        with np.errstate(divide="ignore", invalid="ignore"):
            most = np.minimum(self.lot, np.where(price > 0, self.tab / price, self.lot))
        bound = most * (mkt_low[a] - px_usd) - gas_usd - self.min_profit
        cand = np.flatnonzero(run & (bound > 0))
        if cand.size == 0:
            return 0
        best_amt = np.zeros(cand.size)
        best_profit = np.full(cand.size, -np.inf)
        for n, i in enumerate(cand):
            ai, c, pi = int(a[i]), int(self.a_ilk[i]), int(pool[i])
            q = storefront_quantity(self.liq, pi, sold[pi], exo_low[ai], px_usd[i], self.lot[i])
            for amt in ((q,) if q >= self.lot[i] else (q, self.lot[i])):
                owe, slc, ok = purchase(self.tab[i], self.lot[i], price[i], amt, self.chost[c])
                owe, slc = float(owe), float(slc)
                if not ok or slc <= _MIN_SLICE * self.lot[i]:
                    continue
                profit = (proceeds_usd(self.liq, pi, sold[pi], slc, exo_low[ai]) - owe * p_dai - gas_usd
                          - self.min_profit)
                if profit > best_profit[n]:
                    best_profit[n], best_amt[n] = profit, amt
        pays = best_profit > 0
        cand, best_amt, best_profit = cand[pays], best_amt[pays], best_profit[pays]
        if cand.size == 0:
            return 0
        order = np.lexsort((cand, -best_profit))[:calls_left]
        cand, best_amt = cand[order], best_amt[order]
        j = self.j
        for c in np.unique(self.a_ilk[cand]):
            sel = self.a_ilk[cand] == c
            idx, amt = cand[sel], best_amt[sel]
            tk = take(self._auctions(idx), self.calc[c], now_s, amt, tail_s=self.tail[c], cusp=self.cusp[c],
                      chost_dai=self.chost[c], stopped=int(self.stopped[c]))
            assert (tk.reason == OK).all(), "take previewed as profitable reverted"
            ai = int(self.cm[c])
            P = float(mkt_low[ai])
            owe, slc, ret = tk.owe_dai, tk.slice, tk.returned
            repaid = np.minimum(owe, self.due[idx])
            fee = owe - repaid
            due_left = self.due[idx] - repaid
            gone = slc >= self.lot[idx]  # lot ran out (take's `lot == 0`): the unpaid due is written off
            bad = np.where(gone, due_left, 0.0)
            self.due[idx] = np.where(gone | (owe >= self.tab[idx]), 0.0, due_left)
            self.tab[idx], self.lot[idx] = tk.auctions.tab, tk.auctions.lot
            digs = float(tk.digs_dai.sum())
            self.dirt[c] = max(self.dirt[c] - digs, 0.0)
            self.Dirt = max(self.Dirt - digs, 0.0)
            seized = (slc + ret) * P
            bonus = slc * P - owe * p_dai
            self._add("debt_repaid_usd", float(repaid.sum()) * p_dai)
            self._add("protocol_fee_usd", float(fee.sum()) * p_dai)
            self._add("realised_bad_debt_usd", float(bad.sum()) * p_dai)
            self._add("collateral_seized_usd", float(seized.sum()))
            self._add("liquidator_bonus_usd", float(bonus.sum()))
            self._add("returned_to_owner_usd", float((ret * P).sum()))
            round_sales[int(self.cp[c])] += float(slc.sum())
            for n, i in enumerate(idx):
                if self.events is not None:
                    self.events.append((self.path, t, j, int(self.a_owner[i]), int(c), repaid[n] * p_dai,
                                        seized[n], bonus[n], fee[n] * p_dai, bad[n] * p_dai,
                                        float(tk.price[n]) * p_dai))
                self._log(event="take", step=t, auction=int(i), vault=int(self.a_owner[i]), price=float(tk.price[n]),
                          owe_dai=float(owe[n]), slice=float(slc[n]), returned=float(ret[n]),
                          bad_debt_dai=float(bad[n]), market_price=P, tab_left=float(self.tab[i]),
                          lot_left=float(self.lot[i]))
        self._mark(t)
        return int(cand.size)

    # ------------------------------------------------------------------ horizon
    def finish(self, final_close: np.ndarray) -> dict[str, float]:
        """Running auctions at the horizon: lot value -> inventory, uncovered due -> unrealised bad debt."""
        run = self.running
        if not run.any():
            return {}
        p_dai = float(final_close[self.dm[0]])
        value = self.lot[run] * final_close[self.cm[self.a_ilk[run]]]
        return {"inventory_usd": float(value.sum()),
                "unrealised_bad_debt_usd": float(np.maximum(self.due[run] * p_dai - value, 0.0).sum())}


__all__ = ["MakerAuctions"]
