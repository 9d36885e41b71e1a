"""The kernel's auction rule (numba): Liquidations 2.0 -- Dog ``bark``, Clipper ``kick``/``redo``/``take``, abacus.

A venue simulator whose liquidations are Dutch auctions declares it through ``KernelSpec.auctions``
(:class:`~optimizer.engine.venues.base.AuctionTerms`, built from the adapter's public ilk rules); its vaults
then live here (:class:`KAuctions`), not in the kernel's call/absorb accounts, and the kernel's step loop
(:func:`optimizer.engine.kernel._run_path`) calls four hooks:

* :func:`auction_start_path` -- reset vaults, auctions, ``dirt``/``Dirt`` and the Clipper ``stopped`` levels;
* :func:`auction_trip` -- at round 0 of each step, the circuit breaker (ClipperMom): ``stopped = 2`` when the
  next feed price is below ``tolerance`` x the current OSM price;
* :func:`auction_round` -- in every round, before the storefronts: redo, bark, take, in this order, exactly
  as :class:`optimizer.engine.maker_auctions.MakerAuctions` does (the reference stays the definition);
* :func:`auction_end_path` -- the horizon: open underwater vaults, running auctions (inventory at the final
  close, the debt they cannot cover as unrealised bad debt), debt removed, vaults barked.

Each rule mirrors a function of ``protocols.maker`` on one vault or one auction at a time (same float
operations): :func:`bark_vault` (``bark``: the limits, the partial bark that fills its binding room exactly,
the dusty-remainder rule), :func:`auction_price` (``auction_price``), :func:`needs_redo`, :func:`purchase`
(``purchase``: the chost rule) and :func:`take_auction` (``take``). Keepers take from the auctions whose
price makes a purchase pay (proceeds of selling the slice into the collateral's pool minus the DAI paid, gas
and the minimum profit), the most profitable first, up to the venue's per-step call cap.

Auctions are records (:data:`AUCTION_DTYPE`) in a per-chunk table, append-only within a path as in the
reference (an auction's index orders ties between keepers' equal profits). The table's capacity is a
parameter; when a path overflows it, :func:`auction_round` stops kicking, raises the overflow flag and the
caller runs again with a larger table.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ._market import proceeds_usd, storefront_quantity

#: the kernel rule index of Dutch-auction liquidations (see :data:`optimizer.engine.kernel.RULES`)
RULE_AUCTION = 2
#: abacus kinds, in the order of ``protocols.maker.CALC_TYPES``
LINEAR, STAIRSTEP, EXPONENTIAL = 0, 1, 2
#: Clipper ``stopped`` levels (each blocks what the lower ones block)
LIVE, NO_KICK, NO_REDO, NO_TAKE = 0, 1, 2, 3
PAR = 1.0
#: trigger prices are a pre-filter; the exact health decides
KEY_TOL = 1e-12
#: a take smaller than this share of the lot is float noise of the partial-buy search (as the reference)
MIN_SLICE = 1e-12

AUCTION_DTYPE = np.dtype([
    ("venue", np.int64), ("ilk", np.int64), ("vault", np.int64), ("tab", np.float64), ("lot", np.float64),
    ("top", np.float64), ("tic", np.float64), ("due", np.float64),
])

__all__ = ["AUCTION_DTYPE", "RULE_AUCTION", "KAuctionOut", "KAuctionState", "KAuctions", "auction_inputs",
           "auction_outputs", "auction_price", "bark_vault", "finish_auction_ledger", "needs_redo", "purchase",
           "take_auction"]


class KAuctions(NamedTuple):
    """Auction venues (``v``), their ilks (``i``, contiguous per venue) and vaults (``x``, book order per venue)."""

    venue: np.ndarray  # (Vm,) kernel venue index
    Hole: np.ndarray  # (Vm,) DAI
    dai: np.ndarray  # (Vm,) market asset of the debt (its market close turns DAI into USD)
    feed_lag: np.ndarray  # (Vm,) steps
    ilk_off: np.ndarray  # (Vm+1,)
    vault_off: np.ndarray  # (Vm+1,)
    asset: np.ndarray  # (I,) market asset (and pool) of the ilk's token
    column: np.ndarray  # (I,) book column
    mat: np.ndarray
    chop: np.ndarray
    dust: np.ndarray
    chost: np.ndarray
    hole: np.ndarray
    buf: np.ndarray
    tail: np.ndarray
    cusp: np.ndarray
    chip: np.ndarray
    tip: np.ndarray
    tol: np.ndarray  # nan: no breaker
    stopped0: np.ndarray  # int64
    calc: np.ndarray  # int64 abacus kind
    cut: np.ndarray
    step_s: np.ndarray
    tau_s: np.ndarray
    ilk: np.ndarray  # (N,) global ilk index of each vault
    row: np.ndarray  # (N,) book row
    ink0: np.ndarray  # (N,) collateral tokens
    art0: np.ndarray  # (N,) DAI debt (rate = 1)
    by_key: np.ndarray  # (N,) vaults per ilk by trigger price art·mat/ink, highest first
    ilk_voff: np.ndarray  # (I+1,) ilk i's vaults: by_key[ilk_voff[i]:ilk_voff[i+1]]
    key: np.ndarray  # (N,) the initial trigger price (unsafe about when the OSM price is below it)


class KAuctionState(NamedTuple):
    """One chunk's scratch state (reset per path)."""

    ink: np.ndarray
    art: np.ndarray
    once: np.ndarray  # bool (N,): barked on this path
    counts: np.ndarray  # int64 (N,): paths on which the vault was barked (over the chunk)
    dirt: np.ndarray  # (I,)
    stopped: np.ndarray  # int64 (I,)
    Dirt: np.ndarray  # (Vm,)
    book: np.ndarray  # AUCTION_DTYPE (capacity,)
    n: np.ndarray  # int64 (2,): auctions in the table, first index that may still run
    take_e: np.ndarray  # take candidates: auction, profit, amount
    take_profit: np.ndarray
    take_amt: np.ndarray
    ptr: np.ndarray  # (I,) next vault in by_key not yet passed (its trigger price is below every price seen)
    pend: np.ndarray  # (N,) per venue, from vault_off[v]: vaults passed and still owing, by book row
    npend: np.ndarray  # (Vm,)


class KAuctionOut(NamedTuple):
    keeper_incentive_usd: np.ndarray  # (paths, V)
    vaults_barked: np.ndarray  # int64 (chunks, N)
    overflow: np.ndarray  # int64 (1,)
    capacity: int  # auction table rows per chunk


# ---------------------------------------------------------------------------------------------
# the rules, one vault / one auction at a time (protocols.maker, same float operations)
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def auction_price(kind, cut, step_s, tau_s, top, dur):
    """``Abacus.price(top, dur)``: linear to 0 at ``tau``, stairstep ``top·cut^floor(dur/step)``, exponential."""
    if kind == LINEAR:
        if dur >= tau_s:
            return 0.0
        return top * (tau_s - dur) / tau_s
    if kind == STAIRSTEP:
        return top * cut ** np.floor(dur / step_s)
    return top * cut**dur


@njit(cache=True)
def needs_redo(tab, lot, top, tic, now_s, kind, cut, step_s, tau_s, tail_s, cusp):
    """``Clipper.getStatus``: ``(needsRedo, price)`` of one auction (the strict ``>`` on tail)."""
    running = tab > 0.0 and lot > 0.0
    dur = now_s - tic if running else 0.0
    price = auction_price(kind, cut, step_s, tau_s, top, dur)
    ratio = price / top if top > 0.0 else 0.0
    return running and (dur > tail_s or ratio < cusp), price


@njit(cache=True)
def purchase(tab, lot, price, amt, chost):
    """The arithmetic of ``Clipper.take``: ``(owe_dai, slice, ok)`` (see ``protocols.maker.purchase``)."""
    slc = min(lot, amt)
    owe = slc * price
    over = owe > tab
    near = (not over) and owe < tab and slc < lot and tab - owe < chost
    ok = ((not near) or tab > chost) and not ((over or near) and price <= 0.0)
    if over:
        owe = tab
    elif near:
        owe = tab - chost
    if over or near:
        slc = min(owe / price, lot) if price != 0.0 else lot
    if not ok:
        return 0.0, 0.0, False
    return owe, slc, True


@njit(cache=True)
def bark_vault(ink, art, chop, dust, hole, dirt, Hole, Dirt):
    """``Dog.bark`` of one unsafe vault against the counters ``dirt`` (its ilk) and ``Dirt``.

    Returns ``ok, dart, dink, tab, dirt_after, Dirt_after``. Refused (``ok`` False, counters unchanged):
    a limit already hit, a partial bark below ``dust``, nothing to auction. A partial bark fills its binding
    room exactly; a remainder below ``dust`` takes the whole vault (which may push ``dirt`` past ``hole``).
    """
    room_ilk = hole - dirt
    room_all = Hole - Dirt
    if room_all <= 0.0 or room_ilk <= 0.0 or not art > 0.0:
        return False, 0.0, 0.0, 0.0, dirt, Dirt
    room = min(room_all, room_ilk)
    tab_full = art * 1.0 * chop  # art·rate·chop, rate = 1
    if tab_full <= room:
        dart = art
    else:
        part = room / 1.0 / chop
        dart = art if (art - part) * 1.0 < dust else part
    if dart < art and dart * 1.0 < dust:
        return False, 0.0, 0.0, 0.0, dirt, Dirt
    if ink <= 0.0:
        return False, 0.0, 0.0, 0.0, dirt, Dirt
    if dart < art:  # partial: tab = the room, the binding counter reaches its cap
        tab = min(room_ilk, room_all)
        dirt_after = hole if room_ilk <= room_all else dirt + tab
        Dirt_after = Hole if room_all <= room_ilk else Dirt + tab
        dink = ink * dart / art
    else:
        tab = tab_full
        dirt_after = dirt + tab
        Dirt_after = Dirt + tab
        dink = ink
    return True, dart, dink, tab, dirt_after, Dirt_after


@njit(cache=True)
def take_auction(tab, lot, price, amt, chost):
    """``Clipper.take`` of ``amt`` from a running auction at ``price`` (the caller checked status and stop).

    Returns ``ok, owe, slice, returned, digs, tab_after, lot_after``: the lot running out removes the sale
    (the whole old tab is dug, the unpaid part stays bad debt); the tab reaching 0 returns the rest of the lot.
    """
    owe, slc, ok = purchase(tab, lot, price, amt, chost)
    if not ok:
        return False, 0.0, 0.0, 0.0, 0.0, tab, lot
    tab_new = 0.0 if owe >= tab else tab - owe
    lot_new = 0.0 if slc >= lot else lot - slc
    gone = lot_new == 0.0
    paid = (not gone) and tab_new == 0.0
    digs = tab if gone else owe
    returned = lot_new if paid else 0.0
    if gone or paid:
        tab_new, lot_new = 0.0, 0.0
    return True, owe, slc, returned, digs, tab_new, lot_new


# ---------------------------------------------------------------------------------------------
# hooks of the kernel's step loop
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def auction_scratch(au, capacity):
    """A chunk's :class:`KAuctionState` (allocated inside the kernel's parallel loop)."""
    n = au.ink0.shape[0]
    return KAuctionState(np.empty(n), np.empty(n), np.zeros(n, np.bool_), np.zeros(n, np.int64),
                         np.zeros(au.hole.shape[0]), np.zeros(au.hole.shape[0], np.int64),
                         np.zeros(au.Hole.shape[0]), np.zeros(capacity, AUCTION_DTYPE), np.zeros(2, np.int64),
                         np.empty(capacity, np.int64), np.empty(capacity), np.empty(capacity),
                         np.empty(au.hole.shape[0], np.int64), np.empty(n, np.int64),
                         np.zeros(au.Hole.shape[0], np.int64))


@njit(cache=True)
def auction_start_path(au, s):
    for x in range(au.ink0.shape[0]):
        s.ink[x] = au.ink0[x]
        s.art[x] = au.art0[x]
        s.once[x] = False
    for i in range(au.hole.shape[0]):
        s.dirt[i] = 0.0
        s.stopped[i] = au.stopped0[i]
        s.ptr[i] = au.ilk_voff[i]
    for v in range(au.Hole.shape[0]):
        s.Dirt[v] = 0.0
        s.npend[v] = 0
    s.n[0] = 0
    s.n[1] = 0


@njit(cache=True)
def auction_trip(au, s, t, oc, mkt_close, hist):
    """ClipperMom at round 0: ``stopped = 2`` where the next price is below tolerance x the OSM price."""
    for v in range(au.venue.shape[0]):
        j = au.venue[v]
        for i in range(au.ilk_off[v], au.ilk_off[v + 1]):
            a = au.asset[i]
            nxt = mkt_close[a] if au.feed_lag[v] == 0 else hist[max(t - au.feed_lag[v], 0), a]
            if s.stopped[i] < NO_REDO and nxt < oc[j, a] * au.tol[i]:
                s.stopped[i] = NO_REDO


@njit(cache=True)
def auction_round(au, s, au_out, out, k, t, now_s, path, oc, pc_past, delay, mkt_low, mkt_close, exo_low, sold,
                  liq, gas_usd, min_profit, calls_left, round_sales):
    """One round of every auction venue: redo, bark, take. Returns (anything changed, a bark or take)."""
    acted = False
    marked = False
    # arrays as locals: a read through a tuple field in a loop costs a reference count each time
    book, ink, art, once, dirt, stopped, Dirt = s.book, s.ink, s.art, s.once, s.dirt, s.stopped, s.Dirt
    v_ilk, v_asset, mat = au.ilk, au.asset, au.mat
    ptr, pend, npend, by_key, vkey = s.ptr, s.pend, s.npend, au.by_key, au.key
    kinc, o_liqs = au_out.keeper_incentive_usd, out.liquidations
    for v in range(au.venue.shape[0]):
        j = au.venue[v]
        p_dai = mkt_close[au.dai[v]]
        # ---- redo: running auctions that need a reset restart at OSM·buf (not at stopped >= 2)
        lo = s.n[1]
        first_running = -1
        for e in range(lo, s.n[0]):
            au_e = book[e]
            if not (au_e.tab > 0.0 and au_e.lot > 0.0):
                continue
            if first_running < 0:
                first_running = e
            if au_e.venue != v:
                continue
            i = au_e.ilk
            if stopped[i] >= NO_REDO:
                continue
            done, _ = needs_redo(au_e.tab, au_e.lot, au_e.top, au_e.tic, now_s, au.calc[i], au.cut[i],
                                 au.step_s[i], au.tau_s[i], au.tail[i], au.cusp[i])
            if not done:
                continue
            feed = oc[j, au.asset[i]]
            book[e].top = feed * au.buf[i] / PAR
            book[e].tic = now_s
            acted = True
            if (au.tip[i] > 0.0 or au.chip[i] > 0.0) and au_e.tab >= au.chost[i] and au_e.lot * feed >= au.chost[i]:
                kinc[k, j] += (au.tip[i] + au.chip[i] * au_e.tab) * p_dai
        s.n[1] = first_running if first_running >= 0 else s.n[0]
        # ---- bark: unsafe vaults in book order, against the running dirt / Dirt. A vault not barked yet can be
        # unsafe only once the OSM price is below its trigger price: each ilk's pointer passes those into the
        # venue's pending list (kept by book row); pending vaults get the adapter's exact health,
        # ``(ink·P/(par·mat)) / art < 1`` (written out: an inlined helper binds its arrays anew).
        base = au.vault_off[v]
        n_p = npend[v]
        n_new = 0
        for i in range(au.ilk_off[v], au.ilk_off[v + 1]):
            a = v_asset[i]
            thr = oc[j, a]
            if delay > 0:
                thr = max(thr, pc_past[j, a])
            thr *= 1.0 - KEY_TOL
            p = ptr[i]
            end = au.ilk_voff[i + 1]
            while p < end and vkey[by_key[p]] > thr:
                pend[base + n_p + n_new] = by_key[p]
                n_new += 1
                p += 1
            ptr[i] = p
        if n_new > 0:
            n_p += n_new
            pend[base:base + n_p] = np.sort(pend[base:base + n_p])
        keep = 0
        for q in range(n_p):
            x = pend[base + q]
            art_x = art[x]
            if not art_x > 0.0:  # barked whole: leaves the list
                continue
            pend[base + keep] = x
            keep += 1
            i = v_ilk[x]
            a = v_asset[i]
            p_osm = oc[j, a]
            if not (stopped[i] < NO_KICK and p_osm > 0.0):
                continue
            if not ((ink[x] * p_osm) / (PAR * mat[i])) / art_x < 1.0:
                continue
            if delay > 0 and not ((ink[x] * pc_past[j, a]) / (PAR * mat[i])) / art_x < 1.0:
                continue
            ok, dart, dink, tab, dirt_after, Dirt_after = bark_vault(ink[x], art_x, au.chop[i], au.dust[i],
                                                                     au.hole[i], dirt[i], au.Hole[v], Dirt[v])
            if not ok:
                continue
            e = s.n[0]
            if e >= book.shape[0]:  # the table is full: the caller runs again with a larger one
                au_out.overflow[0] = 1
                continue
            if dart >= art_x:
                keep -= 1  # barked whole: leaves the list
            dirt[i] = dirt_after
            Dirt[v] = Dirt_after
            book[e].venue = v
            book[e].ilk = i
            book[e].vault = x
            book[e].tab = tab
            book[e].lot = dink
            book[e].top = oc[j, a] * au.buf[i] / PAR
            book[e].tic = now_s
            book[e].due = dart * 1.0
            s.n[0] = e + 1
            if dart >= art_x:
                ink[x] = 0.0
                art[x] = 0.0
            else:
                ink[x] = ink[x] - dink
                art[x] = art_x - dart
            once[x] = True
            o_liqs[k, j] += 1.0
            kinc[k, j] += (au.tip[i] + au.chip[i] * tab) * p_dai
            acted = True
            marked = True
        npend[v] = keep
        # ---- take: keepers buy where it pays, the most profitable first, up to the call cap
        if calls_left[j] <= 0:
            continue
        n_c = 0
        for e in range(s.n[1], s.n[0]):
            au_e = book[e]
            if au_e.venue != v or not (au_e.tab > 0.0 and au_e.lot > 0.0):
                continue
            i = au_e.ilk
            if stopped[i] >= NO_TAKE:
                continue
            done, price = needs_redo(au_e.tab, au_e.lot, au_e.top, au_e.tic, now_s, au.calc[i], au.cut[i],
                                     au.step_s[i], au.tau_s[i], au.tail[i], au.cusp[i])
            if done:
                continue
            a = au.asset[i]
            px_usd = price * p_dai
            most = min(au_e.lot, au_e.tab / price if price > 0.0 else au_e.lot)
            if not most * (mkt_low[a] - px_usd) - gas_usd - min_profit > 0.0:
                continue
            q = storefront_quantity(liq, a, sold[a], exo_low[a], px_usd, au_e.lot)
            best_profit = -np.inf
            best_amt = 0.0
            for n_amt in range(1 if q >= au_e.lot else 2):
                amt = q if n_amt == 0 else au_e.lot
                owe, slc, ok = purchase(au_e.tab, au_e.lot, price, amt, au.chost[i])
                if not ok or slc <= MIN_SLICE * au_e.lot:
                    continue
                profit = proceeds_usd(liq, a, sold[a], slc, exo_low[a]) - owe * p_dai - gas_usd - min_profit
                if profit > best_profit:
                    best_profit = profit
                    best_amt = amt
            if best_profit > 0.0:
                s.take_e[n_c] = e
                s.take_profit[n_c] = -best_profit
                s.take_amt[n_c] = best_amt
                n_c += 1
        if n_c == 0:
            continue
        order = np.argsort(s.take_profit[:n_c], kind="mergesort")  # ties: by auction index (stable)
        n_take = min(n_c, calls_left[j])
        calls_left[j] -= n_take
        marked = True
        acted = True
        for i in range(au.ilk_off[v], au.ilk_off[v + 1]):  # per ilk, as the reference takes per Clipper
            digs_sum = 0.0
            a = au.asset[i]
            P = mkt_low[a]
            for r in range(n_take):
                e = s.take_e[order[r]]
                if book[e].ilk != i:
                    continue
                au_e = book[e]
                _, price = needs_redo(au_e.tab, au_e.lot, au_e.top, au_e.tic, now_s, au.calc[i], au.cut[i],
                                      au.step_s[i], au.tau_s[i], au.tail[i], au.cusp[i])
                _, owe, slc, ret, digs, tab_after, lot_after = take_auction(au_e.tab, au_e.lot, price,
                                                                            s.take_amt[order[r]], au.chost[i])
                repaid = min(owe, au_e.due)
                fee = owe - repaid
                due_left = au_e.due - repaid
                gone = slc >= au_e.lot
                bad = due_left if gone else 0.0
                book[e].due = 0.0 if (gone or owe >= au_e.tab) else due_left
                book[e].tab = tab_after
                book[e].lot = lot_after
                digs_sum += digs
                seized = (slc + ret) * P
                bonus = slc * P - owe * p_dai
                out.debt_repaid_usd[k, j] += repaid * p_dai
                out.protocol_fee_usd[k, j] += fee * p_dai
                out.realised_bad_debt_usd[k, j] += bad * p_dai
                out.collateral_seized_usd[k, j] += seized
                out.liquidator_bonus_usd[k, j] += bonus
                out.returned_to_owner_usd[k, j] += ret * P
                round_sales[a] += slc
                if out.events_cap >= 0:
                    n_ev = out.n_events[0]
                    if n_ev < out.events_cap:
                        ev = out.events
                        ev[n_ev].path = path
                        ev[n_ev].step = t
                        ev[n_ev].protocol = j
                        ev[n_ev].position = au.row[au_e.vault]
                        ev[n_ev].collateral = au.column[i]
                        ev[n_ev].debt_repaid_usd = repaid * p_dai
                        ev[n_ev].collateral_seized_usd = seized
                        ev[n_ev].bonus_usd = bonus
                        ev[n_ev].protocol_fee_usd = fee * p_dai
                        ev[n_ev].bad_debt_usd = bad * p_dai
                        ev[n_ev].price = price * p_dai
                    out.n_events[0] = n_ev + 1
            if digs_sum != 0.0:
                dirt[i] = max(dirt[i] - digs_sum, 0.0)
                Dirt[v] = max(Dirt[v] - digs_sum, 0.0)
    return acted, marked


@njit(cache=True)
def auction_end_path(au, s, out, k, pT):
    """The horizon at the final close ``pT``: open underwater vaults, debt removed, running auctions."""
    for v in range(au.venue.shape[0]):
        j = au.venue[v]
        p_dai = pT[au.dai[v]]
        for x in range(au.vault_off[v], au.vault_off[v + 1]):
            under = s.art[x] * p_dai - s.ink[x] * pT[au.asset[au.ilk[x]]]
            if under > 0.0:
                out.unrealised_bad_debt_usd[k, j] += under
            out.debt_removed_usd[k, j] += (au.art0[x] - s.art[x]) * p_dai
            if s.once[x]:
                s.counts[x] += 1
    for e in range(s.n[1], s.n[0]):
        au_e = s.book[e]
        if not (au_e.tab > 0.0 and au_e.lot > 0.0):
            continue
        j = au.venue[au_e.venue]
        value = au_e.lot * pT[au.asset[au_e.ilk]]
        out.inventory_usd[k, j] += value
        short = au_e.due * pT[au.dai[au_e.venue]] - value
        if short > 0.0:
            out.unrealised_bad_debt_usd[k, j] += short


@njit(cache=True)
def auction_collect(s, au_out, ch):
    """A chunk's per-vault counts into the output (written here, not in the parallel loop's body)."""
    for x in range(s.counts.shape[0]):
        au_out.vaults_barked[ch, x] = s.counts[x]


# ---------------------------------------------------------------------------------------------
# inputs and outputs (Python)
# ---------------------------------------------------------------------------------------------


def auction_inputs(specs, sims, coll_market: list[np.ndarray], debt_market: list[np.ndarray]) -> KAuctions:
    """:class:`KAuctions` of the venues whose spec declares auctions (empty arrays when none does)."""
    i64, f64 = np.int64, np.float64
    per_v: dict[str, list] = {k: [] for k in ("venue", "Hole", "dai", "feed_lag", "n_ilks", "n_vaults")}
    per_i: dict[str, list] = {k: [] for k in ("asset", "column", "mat", "chop", "dust", "chost", "hole", "buf",
                                              "tail", "cusp", "chip", "tip", "tol", "stopped0", "calc", "cut",
                                              "step_s", "tau_s")}
    per_x: dict[str, list] = {k: [] for k in ("ilk", "row", "ink0", "art0", "key")}
    n_ilks = 0
    for j, (spec, sim) in enumerate(zip(specs, sims, strict=True)):
        terms = getattr(spec, "auctions", None)  # a perp venue's spec (PerpKernelSpec) has no auctions
        if terms is None:
            continue
        book = sim.ctx.book.book
        n_col = len(book.collateral_assets)
        rows = np.flatnonzero(book.debt_tokens[:, 0] > 0)
        col = np.asarray(terms.vault_column, i64)[rows]
        per_v["venue"].append(j)
        per_v["Hole"].append(float(terms.Hole_dai))
        per_v["dai"].append(int(debt_market[j][0]))
        per_v["feed_lag"].append(int(terms.feed_lag_steps))
        per_v["n_ilks"].append(n_col)
        per_v["n_vaults"].append(rows.size)
        per_i["asset"].append(np.asarray(coll_market[j], i64))
        per_i["column"].append(np.arange(n_col, dtype=i64))
        for name, src in (("mat", "mat"), ("chop", "chop"), ("dust", "dust_dai"), ("chost", "chost_dai"),
                          ("hole", "hole_dai"), ("buf", "buf"), ("tail", "tail_s"), ("cusp", "cusp"), ("chip", "chip"),
                          ("tip", "tip_dai"), ("tol", "tolerance"), ("stopped0", "stopped"), ("calc", "calc_kind"),
                          ("cut", "cut"), ("step_s", "step_s"), ("tau_s", "tau_s")):
            per_i[name].append(np.asarray(getattr(terms, src)))
        per_x["ilk"].append(n_ilks + col)
        per_x["row"].append(rows)
        per_x["ink0"].append(book.collateral_tokens[rows, col])
        per_x["art0"].append(book.debt_tokens[rows, 0])
        ink, art, mat = book.collateral_tokens[rows, col], book.debt_tokens[rows, 0], np.asarray(terms.mat)[col]
        with np.errstate(divide="ignore"):
            per_x["key"].append(np.where(ink > 0, art * (PAR * mat) / np.where(ink > 0, ink, 1.0), np.inf))
        n_ilks += n_col

    def cat(parts: list, dtype) -> np.ndarray:
        return np.ascontiguousarray(np.concatenate(parts) if parts else np.zeros(0), dtype)

    ilk_off = np.zeros(len(per_v["venue"]) + 1, i64)
    np.cumsum(per_v["n_ilks"], out=ilk_off[1:])
    vault_off = np.zeros(len(per_v["venue"]) + 1, i64)
    np.cumsum(per_v["n_vaults"], out=vault_off[1:])
    ints = {"asset", "column", "stopped0", "calc"}
    ilk = cat(per_x["ilk"], i64)
    key = cat(per_x["key"], f64)
    by_key = np.lexsort((np.arange(ilk.size), -key, ilk)).astype(i64)
    ilk_voff = np.zeros(n_ilks + 1, i64)
    np.cumsum(np.bincount(ilk, minlength=n_ilks), out=ilk_voff[1:])
    return KAuctions(venue=np.array(per_v["venue"], i64), Hole=np.array(per_v["Hole"], f64),
                     dai=np.array(per_v["dai"], i64), feed_lag=np.array(per_v["feed_lag"], i64), ilk_off=ilk_off,
                     vault_off=vault_off,
                     **{k: cat(v, i64 if k in ints else f64) for k, v in per_i.items()},
                     ilk=ilk, row=cat(per_x["row"], i64), ink0=cat(per_x["ink0"], f64),
                     art0=cat(per_x["art0"], f64), by_key=by_key, ilk_voff=ilk_voff, key=key)


def auction_outputs(ledger, au: KAuctions, n_chunks: int, capacity: int) -> KAuctionOut:
    """Output arrays for one kernel call: the ledger's keeper incentives (a scratch array when no venue
    declares the field) and per-chunk vault counts."""
    kinc = ledger["keeper_incentive_usd"] if "keeper_incentive_usd" in ledger else \
        np.zeros((ledger.n_paths, ledger.n_venues))
    return KAuctionOut(kinc, np.zeros((n_chunks, au.ink0.shape[0]), np.int64), np.zeros(1, np.int64), int(capacity))


def default_capacity(au: KAuctions) -> int:
    """Auction table rows per chunk to start with (a path barks most vaults once; partial barks add some)."""
    return 2 * au.ink0.shape[0] + 64


def finish_auction_ledger(ledger, au: KAuctions, au_out: KAuctionOut, close0: np.ndarray) -> None:
    """Per-path and per-vault ledger fields of the auction venues the kernel does not fill itself."""
    counts = au_out.vaults_barked.sum(0)
    for v, j in enumerate(au.venue.tolist()):
        sl = slice(au.vault_off[v], au.vault_off[v + 1])
        ledger.initial_debt_usd[:, j] = float((au.art0[sl] * close0[au.dai[v]]).sum())
        ledger.account_liquidated[j][au.row[sl]] = counts[sl]
