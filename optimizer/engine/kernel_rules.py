"""The venue rules the fast kernel mirrors, on accounts of several collateral and debt legs (numba).

Each function mirrors one adapter rule operation by operation (same float operations, legs summed in
book-column order as NumPy sums the book's columns), so the kernel and the reference engine take the
same decisions:

* :func:`account_health` -- Aave ``calculateUserAccountData`` (value-weighted LT over the counted
  collaterals, per eMode through the per-leg LT) and Comet ``isLiquidatable`` (liquidateCF);
* :func:`aave_call` -- one Aave v3.3 ``liquidationCall`` as :meth:`protocols.AaveV3.liquidate` makes it:
  the largest counted collateral and the largest debt by value, the close factor on the whole debt, the
  bonus, the treasury fee, the dust rule (or the largest call that leaves no dust) and the bad-debt
  cleanup when no counted collateral is left; paused assets refuse the call;
* :func:`absorb` -- Comet ``absorb`` of the whole account, every collateral leg.

Legs are flat arrays in CSR layout: account ``i`` owns collateral legs ``coff[i]:coff[i+1]`` and debt
legs ``doff[i]:doff[i+1]`` (book-column order). Prices are ``(venues, assets)`` arrays of the
venue's oracle for the collateral side (``pc``) and the debt side (``pd``).
"""

from __future__ import annotations

import numpy as np
from numba import njit

KEY_TOL = 1e-12  # keys are a pre-filter; the exact health check decides


@njit(cache=True, inline="always")
def account_health(i, j, coff, doff, ca, c, lt, da, d, pc, pd):
    """Health of account ``i`` at venue ``j``'s oracle prices: Σ (c·P)·LT / Σ d·P (+inf without debt)."""
    w = 0.0
    for q in range(coff[i], coff[i + 1]):
        w += (c[q] * pc[j, ca[q]]) * lt[q]
    debt = 0.0
    for q in range(doff[i], doff[i + 1]):
        debt += d[q] * pd[j, da[q]]
    if not debt > 0.0:
        return np.inf
    return w / debt


@njit(cache=True, inline="always")
def account_key(i, coff, doff, ca, c, lt, da, d, p0):
    """Sort key of account ``i``: 1 / health at the initial prices (-1: no debt, never liquidatable).

    With ``r_a = P_a / P0_a`` the health at any prices is at least ``min_coll r / max_debt r`` over the
    account's legs divided by this key, so an account can be liquidatable only while its group's ratio
    (:func:`group_ratio`) is below its key.
    """
    w = 0.0
    for q in range(coff[i], coff[i + 1]):
        w += (c[q] * p0[ca[q]]) * lt[q]
    debt = 0.0
    for q in range(doff[i], doff[i + 1]):
        debt += d[q] * p0[da[q]]
    if not debt > 0.0:
        return -1.0
    if not w > 0.0:
        return np.inf
    return debt / w


@njit(cache=True, inline="always")
def pair_key(cq, dq, p0c, p0d, ltq):
    """:func:`account_key` of a single-pair account from its two legs' scalars (the same float operations:
    its other collateral legs are not counted and add exact zeros). Scalars only: the kernel calls it once
    per waiting account per step, where binding the leg arrays of :func:`account_key` costs a reference
    count per array."""
    w = 0.0
    w += (cq * p0c) * ltq
    debt = 0.0
    debt += dq * p0d
    if not debt > 0.0:
        return -1.0
    if not w > 0.0:
        return np.inf
    return debt / w


@njit(cache=True, inline="always")
def group_ratio(g, j, gc_off, gc, gd_off, gd, pc, pd, p0):
    """min over the group's collateral assets of P/P0 over max over its debt assets of P/P0."""
    lo = np.inf
    for q in range(gc_off[g], gc_off[g + 1]):
        a = gc[q]
        lo = min(lo, pc[j, a] / p0[a])
    if gc_off[g + 1] == gc_off[g]:
        lo = 0.0  # no counted collateral: liquidatable whatever the prices
    hi = 0.0
    for q in range(gd_off[g], gd_off[g + 1]):
        b = gd[q]
        hi = max(hi, pd[j, b] / p0[b])
    return lo / hi


@njit(cache=True, inline="always")
def lot_ratios(g, j, lot, gc_off, gc, gd_off, gd, pc, pd, refc, refd):
    """A parking lot's ratios now against its reference prices ``refc/refd[g, lot]``: the worst move
    ``min_coll (P/R) / max_debt (P/R)`` and the best ``max_coll (P/R) / min_debt (P/R)``.

    An account parked with health ``h`` at prices P has health at later prices P' at least
    ``h · worst(P') / best(P)``, so it can be liquidatable only while ``worst(P') < best(P) / h``.
    """
    lo = np.inf
    up = 0.0
    for q in range(gc_off[g], gc_off[g + 1]):
        a = gc[q]
        r = pc[j, a] / refc[g, lot, a]
        lo = min(lo, r)
        up = max(up, r)
    if gc_off[g + 1] == gc_off[g]:
        lo = 0.0
        up = 1.0
    hi = 0.0
    dn = np.inf
    for q in range(gd_off[g], gd_off[g + 1]):
        b = gd[q]
        r = pd[j, b] / refd[g, lot, b]
        hi = max(hi, r)
        dn = min(dn, r)
    return lo / hi, up / dn


@njit(cache=True, inline="always")
def repay_and_seize(dtc, c, pc, pd, lb):
    """_calculateAvailableCollateralToLiquidate: seize = repay·P_d/P_c·LB, capped at the balance."""
    max_seize = dtc * pd / pc * lb
    if max_seize > c:
        return c * pc / pd / lb, c
    return dtc, max_seize


@njit(cache=True, inline="always")
def call_pair(cq, dq, p_c, p_d, lb, hf, total_debt, close_factor, cf_hf, min_base, floor, kc, kd):
    """The call on a chosen collateral ``kc`` / debt ``kd`` (amounts, oracle prices, bonus), the account's
    health and total debt (USD): close factor, bonus, dust rule or the largest dust-free call."""
    coll_val = cq * p_c
    debt_val = dq * p_d
    partial = coll_val >= min_base and debt_val >= min_base and hf > cf_hf
    cap_usd = total_debt * close_factor
    max_debt = cap_usd / p_d if (partial and debt_val > cap_usd) else dq
    repay, seize = repay_and_seize(max_debt, cq, p_c, p_d, lb)
    dusty = repay < dq and seize < cq and ((dq - repay) * p_d < floor or (cq - seize) * p_c < floor)
    if dusty:
        alt = min(dq - floor / p_d, (cq - floor / p_c) * p_c / (p_d * lb))
        alt = min(alt, max_debt)
        if alt > 0.0:
            repay, seize = repay_and_seize(alt, cq, p_c, p_d, lb)
        else:
            return False, kc, kd, 0.0, 0.0
    return True, kc, kd, repay, seize


@njit(cache=True)
def aave_call(i, j, coff, doff, ca, c, lt, lb, cpaused, da, d, dpaused, pc, pd, hf, close_factor, cf_hf,
                 min_base, floor):
    """One liquidationCall on account ``i`` (health ``hf`` < 1) at venue ``j``'s oracle prices.

    Returns ``ok, kc, kd, repay, seize``: the collateral leg seized from, the debt leg repaid and the
    token amounts (``ok`` False: the call is refused -- no counted collateral, a paused asset, or no
    call that leaves no dust).
    """
    kc = -1
    best = 0.0
    for q in range(coff[i], coff[i + 1]):
        v = c[q] * pc[j, ca[q]] * (1.0 if lt[q] > 0.0 else 0.0)
        if v > best:
            best, kc = v, q
    kd = -1
    bestd = 0.0
    total_debt = 0.0
    for q in range(doff[i], doff[i + 1]):
        v = d[q] * pd[j, da[q]]
        total_debt += v
        if v > bestd:
            bestd, kd = v, q
    if kc < 0 or kd < 0:
        return False, kc, kd, 0.0, 0.0
    if cpaused[kc] or dpaused[kd]:
        return False, kc, kd, 0.0, 0.0
    return call_pair(c[kc], d[kd], pc[j, ca[kc]], pd[j, da[kd]], lb[kc], hf, total_debt, close_factor, cf_hf,
                      min_base, floor, kc, kd)


@njit(cache=True)
def absorb(i, j, coff, doff, ca, c, lf, da, d, pc, pd, sf):
    """Comet ``absorb`` of account ``i`` at venue ``j``'s oracle prices, every collateral leg.

    Returns ``value, credit, bonus, fee, owed, leg``: the collateral value seized, the credit
    ``Σ V·LF``, the buyers' discount ``Σ V·sf·(1 − LF)``, the reserves' share ``Σ V·(1 − sf)·(1 − LF)``,
    the debt owed (USD) and the leg with the most tokens (the event's column; -1: none).
    """
    value = 0.0
    credit = 0.0
    bonus = 0.0
    fee = 0.0
    leg = -1
    best = 0.0
    for q in range(coff[i], coff[i + 1]):
        v = c[q] * pc[j, ca[q]]
        penalty = v * (1.0 - lf[q])
        value += v
        credit += v * lf[q]
        bonus += penalty * sf
        fee += penalty * (1.0 - sf)
        if c[q] > best:
            best, leg = c[q], q
    owed = 0.0
    for q in range(doff[i], doff[i + 1]):
        owed += d[q] * pd[j, da[q]]
    return value, credit, bonus, fee, owed, leg


@njit(cache=True, inline="always")
def counted_left(i, coff, c, lt):
    """True when account ``i`` still holds counted (LT > 0) collateral."""
    for q in range(coff[i], coff[i + 1]):  # noqa: SIM110 - a numba loop, not a generator
        if c[q] * (1.0 if lt[q] > 0.0 else 0.0) != 0.0:
            return True
    return False


# ---------------------------------------------------------------------------------------------
# heap (max by key) on a slice of flat arrays
# ---------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def heap_push(hkey, hpos, base, size, key, pos):
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


@njit(cache=True, inline="always")
def heap_pop(hkey, hpos, base, size):
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


@njit(cache=True, inline="always")
def _first(a, b, hf, rows):
    """Candidate ``a`` is worked before ``b``: lower health, then lower book row."""
    return hf[a] < hf[b] or (hf[a] == hf[b] and rows[a] < rows[b])


@njit(cache=True)
def _health_sift(idx, n, x, hf, rows):
    """Sift ``idx[x]`` down the heap ``idx[:n]``: the entry is held aside while the first of its children moves
    up, and the child is chosen without a branch (the order is as good as random); the comparisons of a swap per
    level, so the same heap."""
    ix = idx[x]
    hx = hf[ix]
    rx = rows[ix]
    while True:
        left = 2 * x + 1
        if left >= n:
            break
        child = left
        if left + 1 < n:
            ia = idx[left + 1]
            ib = idx[left]
            ha = hf[ia]
            hb = hf[ib]
            child = left + ((ha < hb) | ((ha == hb) & (rows[ia] < rows[ib])))
        ia = idx[child]
        ha = hf[ia]
        if not ((ha < hx) | ((ha == hx) & (rows[ia] < rx))):
            break
        idx[x] = ia
        x = child
    idx[x] = ix


@njit(cache=True)
def health_heap(idx, hf, rows, n):
    """``idx[:n]`` := the candidates ``0..n-1`` as a min-heap by (health, row) (the order of
    :func:`order_by_health`, which a cap that takes few of many need not sort in full); returns ``n``."""
    for q in range(n):
        idx[q] = q
    for x in range(n // 2 - 1, -1, -1):
        _health_sift(idx, n, x, hf, rows)
    return n


@njit(cache=True)
def health_heap_pop(idx, hf, rows, n):
    """Remove the first candidate ``idx[0]`` of the heap ``idx[:n]``; returns the new size."""
    n -= 1
    idx[0] = idx[n]
    _health_sift(idx, n, 0, hf, rows)
    return n


@njit(cache=True)
def order_by_health(hf, rows, n):
    """Permutation of the first ``n`` candidates by (health, book row), as the liquidators work."""
    perm = np.argsort(hf[:n], kind="mergesort")
    s = 0
    while s < n:
        e = s + 1
        while e < n and hf[perm[e]] == hf[perm[s]]:
            e += 1
        for x in range(s + 1, e):  # ties: by row (insertion sort, runs are short)
            y = x
            while y > s and rows[perm[y]] < rows[perm[y - 1]]:
                perm[y], perm[y - 1] = perm[y - 1], perm[y]
                y -= 1
        s = e
    return perm
