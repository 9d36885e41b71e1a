"""Fast cascade kernel (numba): the model of :mod:`optimizer.engine.reference`, without scanning the book.

Positions with one collateral and one debt asset are liquidatable exactly when the oracle ratio
``P_coll / P_debt`` falls below their *liquidation ratio* ``debt / (collateral · LT)``. Positions are
sorted once by that ratio per (venue, collateral, debt) group; each path walks a pointer down the
sorted array as prices fall, so a step costs O(groups + liquidations), not O(positions). Positions
that survive a partial liquidation (Aave's 50 % close factor) or that were examined but were
healthy go into a per-group max-heap keyed by their current ratio; positions skipped for the call
cap, the reaction delay or profit wait in a pending list for the next step. Every candidate is
confirmed with the adapters' exact health formula (same float operations), so both engines find the
same liquidations.

The kernel mirrors venue rules, not venues: each venue simulator that it can run declares which
rule (:data:`RULES`) and hands over the per-position terms (``KernelSpec``, built from the adapters'
public ``position_terms``). Inputs are named structs (NamedTuples of arrays): :class:`KMarket`,
:class:`KPositions`, :class:`KVenues`, :class:`KGroups`, :class:`KLiquidators`, :class:`KOut`.

Paths run in parallel in ``n_chunks`` chunks, each with its own scratch state; results do not
depend on the number of threads.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from ..market.liquidity import decay
from ._market import impact_factor, proceeds_usd, purchase_usd, storefront_quantity

#: Aave-style liquidationCall (close factor, bonus, protocol fee, dust rule, v3.3 deficit cleanup) on the
#: position's one collateral and one debt, by profit-seeking liquidators who sell the collateral minus
#: the fee share and buy the debt they repay
RULE_CLOSE_FACTOR_CALL = 0
#: Comet-style absorb of the whole position into the venue's inventory (no profit needed), sold later
#: through a storefront while reserves are below target
RULE_ABSORB = 1
RULES = (RULE_CLOSE_FACTOR_CALL, RULE_ABSORB)
#: per-venue constants a KernelSpec may give (absent ones are 0; ``target`` defaults to +inf)
VENUE_CONSTANTS = ("close_factor", "cf_hf", "min_base", "floor", "sf", "target")


class KMarket(NamedTuple):
    """Price paths (exogenous), pools (one per asset) and gas."""

    close: np.ndarray  # (P, T+1, A)
    low: np.ndarray
    high: np.ndarray
    liq: np.ndarray  # (A, 5) liquidity rows
    hl: np.ndarray  # (A,) recovery half-lives, s
    step_s: float
    gas_usd_per_call: float  # gas units x 1e-9 (gwei -> native) per call
    gas_token: int  # asset pricing gas, -1 = free
    gas_gwei: np.ndarray  # (T+1,)


class KPositions(NamedTuple):
    """One row per position with collateral and debt, stored in walk order (group, ratio)."""

    venue: np.ndarray  # int64
    row: np.ndarray  # book row
    ca: np.ndarray  # market asset of the collateral
    da: np.ndarray  # market asset of the debt
    cc: np.ndarray  # book column of the collateral
    group: np.ndarray
    c0: np.ndarray  # float64 tokens
    d0: np.ndarray
    lt: np.ndarray  # health weight
    lb: np.ndarray  # rule's liquidation multiplier (bonus; absorb: liquidation factor)
    fee: np.ndarray  # protocol share of the bonus


class KVenues(NamedTuple):
    rule: np.ndarray  # int64 (V,)
    lag: np.ndarray  # int64 oracle lag, steps
    close_factor: np.ndarray
    cf_hf: np.ndarray
    min_base: np.ndarray
    floor: np.ndarray
    sf: np.ndarray
    target_res: np.ndarray
    res0: np.ndarray
    store_cols: np.ndarray  # int64 (V, Cmax): market asset of each book column (-1: none)
    store_lf: np.ndarray  # (V, Cmax)


class KGroups(NamedTuple):
    venue: np.ndarray
    ca: np.ndarray
    da: np.ndarray
    off: np.ndarray  # (G+1,)
    order: np.ndarray  # (n,) position index in walk order
    key: np.ndarray  # (n,) initial liquidation ratio, descending within a group


class KLiquidators(NamedTuple):
    max_calls: int
    delay: int
    min_profit: float


class KOut(NamedTuple):
    """Ledger arrays the kernel fills: (paths, V) per venue, (paths,) per path, (paths, A) per asset."""

    liquidations: np.ndarray
    debt_repaid_usd: np.ndarray
    collateral_seized_usd: np.ndarray
    liquidator_bonus_usd: np.ndarray
    protocol_fee_usd: np.ndarray
    realised_bad_debt_usd: np.ndarray
    unrealised_bad_debt_usd: np.ndarray
    horizon_exposure_usd: np.ndarray
    inventory_usd: np.ndarray
    returned_to_owner_usd: np.ndarray
    debt_removed_usd: np.ndarray
    first_liquidation_step: np.ndarray
    last_liquidation_step: np.ndarray
    market_low_min: np.ndarray
    exo_low_min: np.ndarray
    events: np.ndarray  # EVENT_DTYPE records
    n_events: np.ndarray  # (1,) int64: events counted (stored up to events.shape[0])
    events_cap: int  # -1: events off

KEY_TOL = 1e-12  # keys are a pre-filter; the exact health check decides


# ---------------------------------------------------------------------------------------------
# per-position rules (mirror protocols/aave_v3.py and protocols/compound_v3.py operation by operation)
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def _health(c, d, pc, pd, lt):
    if d <= 0.0:
        return np.inf
    return (c * pc * lt) / (d * pd)


@njit(cache=True)
def _repay_and_seize(dtc, c, pc, pd, lb):
    max_seize = dtc * pd / pc * lb
    if max_seize > c:
        return c * pc / pd / lb, c
    return dtc, max_seize


@njit(cache=True)
def _aave_call(c, d, pc, pd, lt, lb, fee, close_factor, cf_hf, min_base, floor):
    """One liquidationCall (single collateral/debt). Returns ok, new_c, new_d, repay, seize, fee_tok, deficit."""
    if c <= 0.0 or d <= 0.0:
        return False, c, d, 0.0, 0.0, 0.0, 0.0
    coll_val = c * pc
    debt_val = d * pd
    hf = (coll_val * lt) / debt_val
    partial = coll_val >= min_base and debt_val >= min_base and hf > cf_hf
    cap_usd = debt_val * close_factor
    max_debt = cap_usd / pd if (partial and debt_val > cap_usd) else d
    repay, seize = _repay_and_seize(max_debt, c, pc, pd, lb)
    dusty = repay < d and seize < c and ((d - repay) * pd < floor or (c - seize) * pc < floor)
    if dusty:
        alt = min(d - floor / pd, (c - floor / pc) * pc / (pd * lb))
        alt = min(alt, max_debt)
        if alt > 0.0:
            repay, seize = _repay_and_seize(alt, c, pc, pd, lb)
        else:
            return False, c, d, 0.0, 0.0, 0.0, 0.0
    lbd = lb if lb > 0.0 else 1.0
    bonus_tok = seize - seize / lbd
    fee_tok = bonus_tok * fee
    new_c = 0.0 if seize >= c else c - seize
    new_d = 0.0 if repay >= d else d - repay
    deficit = 0.0
    if new_c == 0.0:  # v3.3 bad-debt cleanup: no collateral left -> the rest of the debt is a deficit
        deficit = new_d
        new_d = 0.0
    return True, new_c, new_d, repay, seize, fee_tok, deficit


# ---------------------------------------------------------------------------------------------
# heap (max by key) on a slice of flat arrays
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def _heap_push(hkey, hpos, base, size, key, pos):
    i = size
    hkey[base + i] = key
    hpos[base + i] = pos
    while i > 0:
        parent = (i - 1) // 2
        if hkey[base + parent] >= hkey[base + i]:
            break
        hkey[base + parent], hkey[base + i] = hkey[base + i], hkey[base + parent]
        hpos[base + parent], hpos[base + i] = hpos[base + i], hpos[base + parent]
        i = parent
    return size + 1


@njit(cache=True)
def _heap_pop(hkey, hpos, base, size):
    pos = hpos[base]
    size -= 1
    hkey[base] = hkey[base + size]
    hpos[base] = hpos[base + size]
    i = 0
    while True:
        left = 2 * i + 1
        if left >= size:
            break
        child = left
        if left + 1 < size and hkey[base + left + 1] > hkey[base + left]:
            child = left + 1
        if hkey[base + i] >= hkey[base + child]:
            break
        hkey[base + i], hkey[base + child] = hkey[base + child], hkey[base + i]
        hpos[base + i], hpos[base + child] = hpos[base + child], hpos[base + i]
        i = child
    return pos, size


@njit(cache=True)
def _mark(i, touched_flag, touched_list, tl_n):
    """Remember that position i's scratch state changed this path (reset at the end)."""
    if touched_flag[i]:
        return tl_n
    touched_flag[i] = True
    touched_list[tl_n] = i
    return tl_n + 1


@njit(cache=True)
def _key(c, d, lt):
    if c <= 0.0 or d <= 0.0:
        return -1.0
    return d / (c * lt)


# ---------------------------------------------------------------------------------------------
# one path
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def _oracle(j, t, lag, low_hist, hist, a):
    """Venue j's collateral-side oracle price of asset a at (completed or current) step t."""
    if lag[j] == 0:
        return low_hist[t, a]
    return hist[max(t - lag[j], 0), a]


@njit(cache=True)
def _horizon(k, i, c, d, pc, pd, lt_i, lb_i, rule, j, o_ubad, o_expo):
    """One open position at the horizon: underwater debt, and its exposure when liquidatable."""
    shortfall = d * pd - c * pc
    if shortfall > 0.0:
        o_ubad[k, j] += shortfall
    if d > 0.0 and _health(c, d, pc, pd, lt_i) < 1.0:
        debt_usd = d * pd
        if rule == RULE_CLOSE_FACTOR_CALL:  # seize everything: covers value / bonus of the debt
            covered = c * pc / (lb_i if lb_i > 0.0 else 1.0)
        else:  # absorb: credit = value x liquidation factor
            covered = c * pc * lb_i
        short = max(debt_usd - covered, 0.0)
        exposure = short - max(debt_usd - c * pc, 0.0)
        if exposure > 0.0:
            o_expo[k, j] += exposure


@njit(cache=True)
def _run_path(path, k, m, pos, ven, grp, lq, out, acct,
              c_cur, d_cur, touched_flag, touched_list, liq_once, hkey, hpos, pend, back, hist, low_hist,
              high_hist):
    close, low, high, liq, hl = m.close, m.low, m.high, m.liq, m.hl
    c0, d0, lt, lb, fee = pos.c0, pos.d0, pos.lt, pos.lb, pos.fee
    pos_proto, pos_row, pos_ca, pos_da, pos_group = pos.venue, pos.row, pos.ca, pos.da, pos.group
    grp_proto, grp_ca, grp_da, goff, gorder, gkey = grp.venue, grp.ca, grp.da, grp.off, grp.order, grp.key
    proto_kind, proto_lag = ven.rule, ven.lag
    v_cf, v_cf_hf, v_min_base, v_floor, v_sf = ven.close_factor, ven.cf_hf, ven.min_base, ven.floor, ven.sf
    v_target, store_cols, store_lf, pos_cc = ven.target_res, ven.store_cols, ven.store_lf, pos.cc
    max_calls, delay, min_profit = lq.max_calls, lq.delay, lq.min_profit
    ev, ev_n, ev_cap = out.events, out.n_events, out.events_cap
    # outputs as locals (an array read through a tuple field in the hot loop costs a refcount each time)
    o_liqs, o_repaid, o_seized, o_bonus = out.liquidations, out.debt_repaid_usd, out.collateral_seized_usd, \
        out.liquidator_bonus_usd
    o_fee, o_rbad, o_ret, o_drem = out.protocol_fee_usd, out.realised_bad_debt_usd, out.returned_to_owner_usd, \
        out.debt_removed_usd
    o_inv, o_mlow, o_elow = out.inventory_usd, out.market_low_min, out.exo_low_min
    o_ubad, o_expo = out.unrealised_bad_debt_usd, out.horizon_exposure_usd
    n_assets = close.shape[2]
    T = close.shape[1] - 1
    n_groups = grp_proto.shape[0]
    n_proto = proto_kind.shape[0]
    ptr = goff[:-1].copy()
    hsize = np.zeros(n_groups, np.int64)
    sold = np.zeros(n_assets)  # net signed flow per pool (one pool per asset)
    n_pend = 0
    tl_n = 0
    inventory = np.zeros((n_proto, n_assets))
    reserves = ven.res0.copy()
    for a in range(n_assets):
        hist[0, a] = close[path, 0, a]
        low_hist[0, a] = close[path, 0, a]
        high_hist[0, a] = close[path, 0, a]
    # Path bounds for pruning positions that can never be profitable to liquidate.
    max_px = np.empty(n_assets)
    for a in range(n_assets):
        mx = high[path, 0, a]
        for t in range(1, T + 1):
            mx = max(mx, high[path, t, a])
        max_px[a] = mx
    gas_step_usd = np.zeros(T + 1)  # one liquidation call's gas in USD at each step
    if m.gas_token >= 0:
        for t in range(1, T + 1):
            gas_step_usd[t] = m.gas_usd_per_call * m.gas_gwei[t] * 1e-9 * close[path, t, m.gas_token]
    gas_min = gas_step_usd[1:].min()
    first_step = -1
    last_step = -1
    oc = np.empty(n_groups)
    od = np.empty(n_groups)
    pc_past = np.empty(n_groups)
    pd_past = np.empty(n_groups)
    thr = np.empty(n_groups)
    mkt_low = np.empty(n_assets)
    mkt_close = np.empty(n_assets)
    mkt_high = np.empty(n_assets)
    round_sales = np.empty(n_assets)
    calls_left = np.empty(n_proto, np.int64)

    for t in range(1, T + 1):
        for a in range(n_assets):
            sold[a] = decay(sold[a], m.step_s, hl[a])
        for j in range(n_proto):
            calls_left[j] = max_calls
        gas_usd = gas_step_usd[t]
        # positions that waited (unprofitable, refused) rejoin their group's heap for this step
        for q in range(n_pend):
            i = pend[q]
            g = pos_group[i]
            hsize[g] = _heap_push(hkey, hpos, goff[g], hsize[g], _key(c_cur[i], d_cur[i], lt[i]), i)
        n_pend = 0
        tp = max(t - delay, 0)
        while True:
            for a in range(n_assets):
                f = impact_factor(liq, a, sold[a])
                mkt_low[a] = low[path, t, a] * f
                mkt_close[a] = close[path, t, a] * f
                mkt_high[a] = high[path, t, a] * f
                low_hist[t, a] = mkt_low[a]
            for g in range(n_groups):
                j = grp_proto[g]
                if proto_lag[j] == 0:  # collateral at the bar's low, debt at its high
                    oc[g] = mkt_low[grp_ca[g]]
                    od[g] = mkt_high[grp_da[g]]
                else:
                    h = max(t - proto_lag[j], 0)
                    oc[g] = hist[h, grp_ca[g]]
                    od[g] = hist[h, grp_da[g]]
                ratio = oc[g] / od[g]
                if delay > 0:  # liquidators act on what was already liquidatable `delay` steps ago
                    pc_past[g] = _oracle(j, tp, proto_lag, low_hist, hist, grp_ca[g])
                    # debt assets at the bar's high (no lag) or the lagged close
                    pd_past[g] = high_hist[tp, grp_da[g]] if proto_lag[j] == 0 else \
                        _oracle(j, tp, proto_lag, low_hist, hist, grp_da[g])
                    ratio = max(ratio, pc_past[g] / pd_past[g])
                thr[g] = ratio * (1.0 - KEY_TOL)
            for a in range(n_assets):
                round_sales[a] = 0.0
            executed_any = False
            n_back = 0
            for j in range(n_proto):
                # Work down venue j's liquidatable positions by (health, book row) while calls remain.
                while calls_left[j] > 0:
                    best_g = -1
                    best_hf = np.inf
                    best_row = 0
                    best_heap = False
                    for g in range(n_groups):
                        if grp_proto[g] != j:
                            continue
                        p = ptr[g]
                        ks = gkey[p] if p < goff[g + 1] else -1.0
                        kh = hkey[goff[g]] if hsize[g] > 0 else -1.0
                        if not (ks > thr[g] or kh > thr[g]):
                            continue
                        from_heap = kh > ks
                        i = hpos[goff[g]] if from_heap else gorder[p]
                        hf = _health(c_cur[i], d_cur[i], oc[g], od[g], lt[i])
                        if best_g < 0 or hf < best_hf or (hf == best_hf and pos_row[i] < best_row):
                            best_g, best_hf, best_row, best_heap = g, hf, pos_row[i], from_heap
                    if best_g < 0:
                        break
                    g = best_g
                    if best_heap:
                        i, hsize[g] = _heap_pop(hkey, hpos, goff[g], hsize[g])
                    else:
                        i = gorder[ptr[g]]
                        ptr[g] += 1
                    if not best_hf < 1.0 or (delay > 0 and not _health(c_cur[i], d_cur[i], pc_past[g],
                                                                      pd_past[g], lt[i]) < 1.0):
                        back[n_back] = i  # within the key tolerance but not liquidatable: back after the round
                        n_back += 1
                        continue
                    pc = oc[g]
                    pd = od[g]
                    a = pos_ca[i]
                    da = pos_da[i]
                    c = c_cur[i]
                    d = d_cur[i]
                    if proto_kind[j] == RULE_CLOSE_FACTOR_CALL:
                        ok, new_c, new_d, repay, seize, fee_tok, deficit = _aave_call(
                            c, d, pc, pd, lt[i], lb[i], fee[i], v_cf[j], v_cf_hf[j], v_min_base[j], v_floor[j])
                        if not ok:  # refused (dust): not again this step
                            pend[n_pend] = i
                            n_pend += 1
                            continue
                        lbd = lb[i] if lb[i] > 0.0 else 1.0
                        bonus_tok = seize - seize / lbd
                        seized_usd = seize * pc
                        fee_usd = fee_tok * pc
                        bonus_usd = (bonus_tok - fee_tok) * pc
                        keep = fee_usd / seized_usd if seized_usd > 0.0 else 0.0
                        sell = seize * (1.0 - keep)
                        profit = bonus_usd - gas_usd - min_profit
                        if sell != 0.0:
                            profit -= sell * pc - proceeds_usd(liq, a, sold[a], sell, low[path, t, a])
                        if repay != 0.0:  # the liquidator buys the debt it repays
                            profit -= purchase_usd(liq, da, sold[da], repay, high[path, t, da]) - repay * pd
                        if not profit >= 0.0:
                            # With no oracle lag slippage is >= 0 (and with a debt market of infinite depth the
                            # debt price is the bar's high), so the bonus on the whole debt at the path's
                            # highest debt price bounds every future profit: below the path's cheapest gas the
                            # position can never be liquidated and is dropped instead of re-examined.
                            ub = d * max_px[da] * (lb[i] - 1.0) * (1.0 - fee[i]) - gas_min - min_profit
                            if not (proto_lag[j] == 0 and liq[da, 0] < 0 and ub < 0.0):
                                pend[n_pend] = i
                                n_pend += 1
                            continue
                        repaid_usd = repay * pd
                        bad_usd = deficit * pd
                        round_sales[a] += sell
                        round_sales[da] -= repay
                    else:  # absorb: the whole account; the absorber is paid nothing and needs no profit
                        value = c * pc
                        lfi = lb[i]
                        penalty = value * (1.0 - lfi)
                        credit = value * lfi
                        owed = d * pd
                        repaid_usd = min(credit, owed)
                        seized_usd = value
                        bonus_usd = penalty * v_sf[j]
                        fee_usd = penalty * (1.0 - v_sf[j])
                        bad_usd = max(owed - credit, 0.0)
                        new_c = 0.0
                        new_d = 0.0
                        o_ret[k, j] += max(credit - owed, 0.0)
                        inventory[j, a] += c
                        reserves[j] -= max(owed, credit)
                    executed_any = True
                    calls_left[j] -= 1
                    tl_n = _mark(i, touched_flag, touched_list, tl_n)
                    c_cur[i] = new_c
                    d_cur[i] = new_d
                    liq_once[i] = True
                    o_liqs[k, j] += 1
                    o_repaid[k, j] += repaid_usd
                    o_seized[k, j] += seized_usd
                    o_bonus[k, j] += bonus_usd
                    o_fee[k, j] += fee_usd
                    o_rbad[k, j] += bad_usd
                    if first_step < 0:
                        first_step = t
                    last_step = t
                    if ev_cap >= 0:  # -1: events off; else count all, store up to ev_cap
                        e = ev_n[0]
                        if e < ev_cap:
                            ev[e].path = path
                            ev[e].step = t
                            ev[e].protocol = j
                            ev[e].position = pos_row[i]
                            ev[e].collateral = pos_cc[i]
                            ev[e].debt_repaid_usd = repaid_usd
                            ev[e].collateral_seized_usd = seized_usd
                            ev[e].bonus_usd = bonus_usd
                            ev[e].protocol_fee_usd = fee_usd
                            ev[e].bad_debt_usd = bad_usd
                            ev[e].price = pc
                        ev_n[0] = e + 1
                    if _key(new_c, new_d, lt[i]) >= 0.0:  # survived (partial): may go again next round
                        back[n_back] = i
                        n_back += 1
            # ---- storefronts (absorb rule): buyers take inventory while reserves < target and it pays
            for j in range(n_proto):
                if proto_kind[j] != RULE_ABSORB or reserves[j] >= v_target[j]:
                    continue
                for cc in range(store_cols.shape[1]):
                    a = store_cols[j, cc]
                    if a < 0 or not inventory[j, a] > 0.0:
                        continue
                    opx = mkt_low[a] if proto_lag[j] == 0 else hist[max(t - proto_lag[j], 0), a]
                    store_px = opx * (1.0 - v_sf[j] * (1.0 - store_lf[j, cc]))
                    qty = storefront_quantity(liq, a, sold[a] + round_sales[a], low[path, t, a], store_px,
                                              inventory[j, a])
                    if qty <= 0.0:
                        continue
                    inventory[j, a] -= qty
                    round_sales[a] += qty
                    reserves[j] += qty * store_px
                    executed_any = True
            for q in range(n_back):
                i = back[q]
                g = pos_group[i]
                hsize[g] = _heap_push(hkey, hpos, goff[g], hsize[g], _key(c_cur[i], d_cur[i], lt[i]), i)
            if not executed_any:
                break
            for a in range(n_assets):
                sold[a] += round_sales[a]
        for a in range(n_assets):
            f = impact_factor(liq, a, sold[a])
            hist[t, a] = close[path, t, a] * f
            low_hist[t, a] = low[path, t, a] * f
            high_hist[t, a] = high[path, t, a] * f
            r = low_hist[t, a] / close[path, 0, a]
            o_mlow[k, a] = min(o_mlow[k, a], r)
            r = low[path, t, a] / close[path, 0, a]
            o_elow[k, a] = min(o_elow[k, a], r)
    # ---- horizon: open underwater debt, the exposure of positions left liquidatable and unsold
    # inventory at the final market close. Untouched positions keep their sorted keys; one that is
    # liquidatable at the end has key = d/(c*lt) > P_c/P_d (underwater ones too, as lt <= 1): a prefix of
    # its group (the key tolerance widens it; the exact health decides). Touched ones one by one.
    for g in range(n_groups):
        pc_end = hist[T, grp_ca[g]]
        pd_end = hist[T, grp_da[g]]
        ratio = pc_end / pd_end
        thr_end = ratio * (1.0 - KEY_TOL)
        thr_sure = ratio * (1.0 + KEY_TOL)  # above it health < 1 without checking
        j = grp_proto[g]
        absorb = proto_kind[j] == RULE_ABSORB
        ubad = 0.0
        expo = 0.0
        for p in range(goff[g], goff[g + 1]):
            if not gkey[p] > thr_end:
                break
            i = gorder[p]
            if touched_flag[i]:
                continue
            cpc = c0[i] * pc_end
            dpd = d0[i] * pd_end
            if dpd - cpc > 0.0:
                ubad += dpd - cpc
            covered = cpc * lb[i] if absorb else cpc / (lb[i] if lb[i] > 0.0 else 1.0)
            if dpd > covered and (gkey[p] > thr_sure or _health(c0[i], d0[i], pc_end, pd_end, lt[i]) < 1.0):
                e = (dpd - covered) - max(dpd - cpc, 0.0)
                if e > 0.0:
                    expo += e
        o_ubad[k, j] += ubad
        o_expo[k, j] += expo
    for q in range(tl_n):
        i = touched_list[q]
        o_drem[k, pos_proto[i]] += (d0[i] - d_cur[i]) * hist[T, pos_da[i]]
        _horizon(k, i, c_cur[i], d_cur[i], hist[T, pos_ca[i]], hist[T, pos_da[i]], lt[i], lb[i],
                 proto_kind[pos_proto[i]], pos_proto[i], o_ubad, o_expo)
    for j in range(n_proto):
        for a in range(n_assets):
            o_inv[k, j] += inventory[j, a] * hist[T, a]
    o_first, o_last = out.first_liquidation_step, out.last_liquidation_step
    o_first[k] = first_step
    o_last[k] = last_step
    # ---- reset scratch for the next path (only what was touched)
    for q in range(tl_n):
        i = touched_list[q]
        if liq_once[i]:
            acct[i] += 1
        c_cur[i] = c0[i]
        d_cur[i] = d0[i]
        touched_flag[i] = False
        liq_once[i] = False


@njit(parallel=True, cache=True)
def run_paths(n_chunks, m, pos, ven, grp, lq, out, acct_chunks):
    """All paths of ``m`` in ``n_chunks`` parallel chunks; ``acct_chunks[ch]`` counts per position.

    (Writes go through :func:`_run_path`: numba's parallel backend drops item assignments to arrays
    reached through a tuple field inside a ``prange`` body.)
    """
    n_paths = m.close.shape[0]
    n = pos.c0.shape[0]
    T = m.close.shape[1] - 1
    n_assets = m.close.shape[2]
    for ch in prange(n_chunks):
        c_cur = pos.c0.copy()
        d_cur = pos.d0.copy()
        touched_flag = np.zeros(n, np.bool_)
        touched_list = np.empty(n, np.int64)  # each position at most once per path
        liq_once = np.zeros(n, np.bool_)
        hkey = np.empty(n)
        hpos = np.empty(n, np.int64)
        pend = np.empty(n, np.int64)
        back = np.empty(n, np.int64)
        hist = np.empty((T + 1, n_assets))
        low_hist = np.empty((T + 1, n_assets))
        high_hist = np.empty((T + 1, n_assets))
        for path in range(ch, n_paths, n_chunks):
            _run_path(path, path, m, pos, ven, grp, lq, out, acct_chunks[ch],
                      c_cur, d_cur, touched_flag, touched_list, liq_once, hkey, hpos, pend, back, hist, low_hist,
                      high_hist)
