"""Fast cascade kernel (numba): the model of :mod:`optimizer.engine.reference`, without scanning the book.

Positions with one collateral and one debt asset are liquidatable exactly when the oracle ratio
``P_coll / P_debt`` falls below their *liquidation ratio* ``debt / (collateral · LT)``. Positions are
sorted once by that ratio per (protocol, collateral, debt) group; each path walks a pointer down the
sorted array as prices fall, so a step costs O(groups + liquidations), not O(positions). Positions
that survive a partial liquidation (Aave's 50 % close factor) or that were examined but were
healthy go into a per-group max-heap keyed by their current ratio; positions skipped for the call
cap, the reaction delay or profit wait in a pending list for the next step. Every candidate is
confirmed with the adapters' exact health formula (same float operations), so both engines find the
same liquidations.

Paths run in parallel in ``n_chunks`` chunks, each with its own scratch state; results do not
depend on the number of threads.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ..market.liquidity import decay
from ._market import impact_factor, proceeds_usd, storefront_quantity

KIND_AAVE, KIND_COMET = 0, 1
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
def _oracle(j, t, proto_lag, low_hist, hist, a):
    """Protocol j's oracle price of asset a at (completed or current) step t."""
    if proto_lag[j] == 0:
        return low_hist[t, a]
    return hist[max(t - proto_lag[j], 0), a]


@njit(cache=True)
def _run_path(path, k, close, low, liq, hl, step_s, gas_usd_per_call, gas_token, gas_gwei,
              pos_proto, pos_row, pos_ca, pos_da, pos_group, c0, d0, lt, lb, fee,
              proto_kind, proto_lag, close_factor, cf_hf, min_base, floor, sf, target_res, res0,
              comet_cols, comet_lf,
              grp_proto, grp_ca, grp_da, goff, gorder, gkey,
              max_calls, delay, min_profit,
              # scratch
              c_cur, d_cur, touched_flag, touched_list, liq_once, hkey, hpos, pend, back, hist, low_hist,
              # outputs
              o_liqs, o_repaid, o_seized, o_bonus, o_fee, o_rbad, o_ubad, o_inv, o_ret, o_drem, o_first, o_last,
              o_mlow, o_elow, o_acct, ev, ev_n, ev_cap):
    n_assets = close.shape[2]
    T = close.shape[1] - 1
    n_groups = grp_proto.shape[0]
    n_proto = proto_kind.shape[0]
    ptr = goff[:-1].copy()
    hsize = np.zeros(n_groups, np.int64)
    sold = np.zeros(n_assets)
    n_pend = 0
    tl_n = 0
    inventory = np.zeros((n_proto, n_assets))
    reserves = res0.copy()
    for a in range(n_assets):
        hist[0, a] = close[path, 0, a]
        low_hist[0, a] = close[path, 0, a]
    # Path bounds for pruning positions that can never be profitable to liquidate.
    max_px = np.empty(n_assets)
    for a in range(n_assets):
        m = close[path, 0, a]
        for t in range(1, T + 1):
            m = max(m, close[path, t, a])
        max_px[a] = m
    gas_step_usd = np.zeros(T + 1)  # one liquidation call's gas in USD at each step
    if gas_token >= 0:
        for t in range(1, T + 1):
            gas_step_usd[t] = gas_usd_per_call * gas_gwei[t] * 1e-9 * close[path, t, gas_token]
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
    round_sales = np.empty(n_assets)
    calls_left = np.empty(n_proto, np.int64)

    for t in range(1, T + 1):
        for a in range(n_assets):
            sold[a] = decay(sold[a], step_s, hl[a])
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
                low_hist[t, a] = mkt_low[a]
            for g in range(n_groups):
                j = grp_proto[g]
                if proto_lag[j] == 0:
                    oc[g] = mkt_low[grp_ca[g]]
                    od[g] = mkt_close[grp_da[g]]
                else:
                    h = max(t - proto_lag[j], 0)
                    oc[g] = hist[h, grp_ca[g]]
                    od[g] = hist[h, grp_da[g]]
                ratio = oc[g] / od[g]
                if delay > 0:  # liquidators act on what was already liquidatable `delay` steps ago
                    pc_past[g] = _oracle(j, tp, proto_lag, low_hist, hist, grp_ca[g])
                    # debt assets at the close (no lag) or the lagged close
                    pd_past[g] = hist[tp, grp_da[g]] if proto_lag[j] == 0 else \
                        _oracle(j, tp, proto_lag, low_hist, hist, grp_da[g])
                    ratio = max(ratio, pc_past[g] / pd_past[g])
                thr[g] = ratio * (1.0 - KEY_TOL)
            for a in range(n_assets):
                round_sales[a] = 0.0
            executed_any = False
            n_back = 0
            for j in range(n_proto):
                # Work down protocol j's liquidatable positions by (health, book row) while calls remain.
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
                    c = c_cur[i]
                    d = d_cur[i]
                    if proto_kind[j] == KIND_AAVE:
                        ok, new_c, new_d, repay, seize, fee_tok, deficit = _aave_call(
                            c, d, pc, pd, lt[i], lb[i], fee[i], close_factor[j], cf_hf[j], min_base[j], floor[j])
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
                        if not profit >= 0.0:
                            # With no oracle lag slippage is >= 0, so the bonus on the whole debt at the path's
                            # highest debt price bounds every future profit: below the path's cheapest gas the
                            # position can never be liquidated and is dropped instead of re-examined.
                            ub = d * max_px[pos_da[i]] * (lb[i] - 1.0) * (1.0 - fee[i]) - gas_min - min_profit
                            if not (proto_lag[j] == 0 and ub < 0.0):
                                pend[n_pend] = i
                                n_pend += 1
                            continue
                        repaid_usd = repay * pd
                        bad_usd = deficit * pd
                        round_sales[a] += sell
                    else:  # Comet absorb: the whole account; the absorber is paid nothing and needs no profit
                        value = c * pc
                        lfi = lb[i]
                        penalty = value * (1.0 - lfi)
                        credit = value * lfi
                        owed = d * pd
                        repaid_usd = min(credit, owed)
                        seized_usd = value
                        bonus_usd = penalty * sf[j]
                        fee_usd = penalty * (1.0 - sf[j])
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
                            ev[e, 0] = path
                            ev[e, 1] = t
                            ev[e, 2] = j
                            ev[e, 3] = pos_row[i]
                            ev[e, 4] = repaid_usd
                            ev[e, 5] = seized_usd
                            ev[e, 6] = bonus_usd
                            ev[e, 7] = fee_usd
                            ev[e, 8] = bad_usd
                            ev[e, 9] = pc
                        ev_n[0] = e + 1
                    if _key(new_c, new_d, lt[i]) >= 0.0:  # survived (partial): may go again next round
                        back[n_back] = i
                        n_back += 1
            # ---- Comet storefront: buyers take absorbed collateral while reserves < target and it pays
            for j in range(n_proto):
                if proto_kind[j] != KIND_COMET or reserves[j] >= target_res[j]:
                    continue
                for cc in range(comet_cols.shape[1]):
                    a = comet_cols[j, cc]
                    if a < 0 or not inventory[j, a] > 0.0:
                        continue
                    opx = mkt_low[a] if proto_lag[j] == 0 else hist[max(t - proto_lag[j], 0), a]
                    store_px = opx * (1.0 - sf[j] * (1.0 - comet_lf[j, cc]))
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
            r = low_hist[t, a] / close[path, 0, a]
            o_mlow[k, a] = min(o_mlow[k, a], r)
            r = low[path, t, a] / close[path, 0, a]
            o_elow[k, a] = min(o_elow[k, a], r)
    # ---- horizon: open underwater debt and unsold inventory at the final market close.
    # Untouched positions keep their sorted keys; one underwater at the end has d/c > P_c/P_d, hence
    # key = d/(c*lt) > P_c/P_d (lt <= 1): a prefix of its group. Touched ones are checked one by one.
    for g in range(n_groups):
        ratio = hist[T, grp_ca[g]] / hist[T, grp_da[g]]
        for p in range(goff[g], goff[g + 1]):
            if not gkey[p] > ratio:
                break
            i = gorder[p]
            if not touched_flag[i]:
                shortfall = d0[i] * hist[T, pos_da[i]] - c0[i] * hist[T, pos_ca[i]]
                if shortfall > 0.0:
                    o_ubad[k, pos_proto[i]] += shortfall
    for q in range(tl_n):
        i = touched_list[q]
        o_drem[k, pos_proto[i]] += (d0[i] - d_cur[i]) * hist[T, pos_da[i]]
        shortfall = d_cur[i] * hist[T, pos_da[i]] - c_cur[i] * hist[T, pos_ca[i]]
        if shortfall > 0.0:
            o_ubad[k, pos_proto[i]] += shortfall
    for j in range(n_proto):
        for a in range(n_assets):
            o_inv[k, j] += inventory[j, a] * hist[T, a]
    o_first[k] = first_step
    o_last[k] = last_step
    # ---- reset scratch for the next path (only what was touched)
    for q in range(tl_n):
        i = touched_list[q]
        if liq_once[i]:
            o_acct[i] += 1
        c_cur[i] = c0[i]
        d_cur[i] = d0[i]
        touched_flag[i] = False
        liq_once[i] = False


@njit(parallel=True, cache=True)
def run_paths(n_chunks, close, low, liq, hl, step_s, gas_usd_per_call, gas_token, gas_gwei,
              pos_proto, pos_row, pos_ca, pos_da, pos_group, c0, d0, lt, lb, fee,
              proto_kind, proto_lag, close_factor, cf_hf, min_base, floor, sf, target_res, res0,
              comet_cols, comet_lf, grp_proto, grp_ca, grp_da, goff, gorder, gkey,
              max_calls, delay, min_profit,
              o_liqs, o_repaid, o_seized, o_bonus, o_fee, o_rbad, o_ubad, o_inv, o_ret, o_drem, o_first, o_last,
              o_mlow, o_elow, o_acct_chunks, ev, ev_n, ev_cap):
    n_paths = close.shape[0]
    n = c0.shape[0]
    T = close.shape[1] - 1
    n_assets = close.shape[2]
    for ch in prange(n_chunks):
        c_cur = c0.copy()
        d_cur = d0.copy()
        touched_flag = np.zeros(n, np.bool_)
        touched_list = np.empty(n, np.int64)  # each position at most once per path
        liq_once = np.zeros(n, np.bool_)
        hkey = np.empty(n)
        hpos = np.empty(n, np.int64)
        pend = np.empty(n, np.int64)
        back = np.empty(n, np.int64)
        hist = np.empty((T + 1, n_assets))
        low_hist = np.empty((T + 1, n_assets))
        for path in range(ch, n_paths, n_chunks):
            _run_path(path, path, close, low, liq, hl, step_s, gas_usd_per_call, gas_token, gas_gwei,
                      pos_proto, pos_row, pos_ca, pos_da, pos_group, c0, d0, lt, lb, fee,
                      proto_kind, proto_lag, close_factor, cf_hf, min_base, floor, sf, target_res, res0,
                      comet_cols, comet_lf, grp_proto, grp_ca, grp_da, goff, gorder, gkey,
                      max_calls, delay, min_profit,
                      c_cur, d_cur, touched_flag, touched_list, liq_once, hkey, hpos, pend, back, hist, low_hist,
                      o_liqs, o_repaid, o_seized, o_bonus, o_fee, o_rbad, o_ubad, o_inv, o_ret, o_drem, o_first, o_last,
                      o_mlow, o_elow, o_acct_chunks[ch], ev, ev_n, ev_cap)
