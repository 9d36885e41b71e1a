"""Fast perp kernel (numba): :class:`~optimizer.engine.venues.PerpVenue` on the cascade kernel's market loop.

It mirrors, with the same float operations where the order of a sum does not matter, what the reference
engine does with a perp venue whose adapter declares a :class:`protocols.MarketOrderRule` (its
``liquidatable`` / ``liquidate`` / ``adl_score`` as plain data), see :mod:`optimizer.engine.venues.perp`:

* **Marks**: longs at the round's market low, shorts at its high, of the position's mark asset (or the
  lagged close with an oracle lag).
* **Who**: an isolated position's liquidation price is fixed until the position changes (margin and size
  fixed; the requirement is piecewise affine in the mark, one piece per tier, the adapter's closed form
  ``liquidation_price_usd``), and being liquidatable is monotone in the mark (equity rises faster than the
  requirement). So each (venue, mark asset, side) *lane* of isolated positions is sorted once by that price
  and each path walks one pointer per lane as the mark crosses it: a round costs O(lanes + candidates), not
  O(positions). Every candidate is confirmed with the adapter's exact comparison (the sort only bounds);
  positions a partial liquidation or a pro-rata ADL haircut changed (their price moved) are checked one by
  one in a touched list, and cross-margin accounts (their equity sums several positions) are all checked.
  Each lane also keeps a bound on its touched rows' liquidation prices (:func:`row_bound`), so a round whose
  marks reach neither a lane's pointer nor that bound is skipped without binding the structs
  (:func:`perp_quiet`).
* **Fills**: each pool's sells and buys of the round execute together through the pool's impact law
  (:func:`optimizer.engine._market.proceeds_usd` / ``purchase_usd``) from its state at the round's start.
* **Settle**: ``PerpAdapter._settle`` per closed row (margin released, realised PnL, fee, returned,
  backstop takeover, deficit), then the loss waterfall of the round in book order (margin, insurance fund
  with its fee income, backstop, the rest to ADL); nothing in a round reads the fund, so the waterfall
  runs after each round in the order the reference settles its rounds at the end of the step.
* **End of step**: ADL of the opposite side at the step's close (queue by the adapter's score, or
  pro-rata), the queue's overshoot to the insurance fund, what no winner covers to realised bad debt.
* **Horizon**: underwater margin pools at the final close, insurance-fund drawdown and depletion, the
  backstop's loss (deficits paid + the vault's positions marked at the final close).

Inputs are NamedTuples of arrays (:class:`KPerpVenues`, :class:`KPerpPositions`, :class:`KPerpOut`); the
cascade kernel (:mod:`optimizer.engine.kernel`) calls the hooks :func:`perp_start_path`,
:func:`perp_start_step` (written out at its call site), :func:`perp_round` (in each round, next to the lending
venues, at the round's starting market, unless :func:`perp_quiet`), :func:`perp_end_step` (when
:func:`perp_adl_due`) and :func:`perp_end_path`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from ._market import proceeds_usd, purchase_usd

#: relative slack around a lane's liquidation prices (the closed form's rounding); the exact test decides
LP_TOL = 1e-7
_EPS_USD = 1e-9
ADL_QUEUE, ADL_PRO_RATA = 0, 1
SCORE_PROFIT_LEVERAGE, SCORE_LEVERAGE_PNL = 0, 1
ADL_POLICIES = {"queue": ADL_QUEUE, "pro_rata": ADL_PRO_RATA}
SCORES = {"profit_leverage": SCORE_PROFIT_LEVERAGE, "leverage_pnl": SCORE_LEVERAGE_PNL}
#: per-venue state columns (``KPerp`` scratch ``vs``)
_FUND, _FUND_MIN, _BACKSTOP, _BACKSTOP_PAID, _TAKEOVER, _DEPLETED = 0, 1, 2, 3, 4, 5


class KPerpVenues(NamedTuple):
    """Per perp venue (VP of them): its ledger column, its rows, its rule's constants."""

    col: np.ndarray  # int64 (VP,) ledger column (protocol index)
    off: np.ndarray  # (VP+1,) positions of venue v: off[v]:off[v+1] (book order)
    goff: np.ndarray  # (VP+1,) ADL groups of venue v (2 per book market: 2*market + long)
    flag_eq: np.ndarray  # bool: liquidatable at equity == requirement
    offset_neg: np.ndarray  # bool: a pool with negative value is offset by ADL (no trade)
    backstop_frac: np.ndarray  # value < this x requirement -> backstop takeover (-inf: none)
    partial_thr: np.ndarray  # USD notional above which one order closes partial_frac
    partial_frac: np.ndarray
    cooldown_s: np.ndarray
    fees_to_fund: np.ndarray  # bool
    policy: np.ndarray  # int64 ADL_QUEUE / ADL_PRO_RATA
    score: np.ndarray  # int64 SCORE_*
    fund0: np.ndarray
    backstop0: np.ndarray
    lag: np.ndarray  # int64 oracle lag, steps
    rounds: np.ndarray  # int64 liquidation passes per step


class KPerpPositions(NamedTuple):
    """Perp positions of every perp venue in book order, their tier tables, lanes and cross accounts."""

    row: np.ndarray  # int64 (n,) book row
    venue: np.ndarray  # int64 perp venue
    side: np.ndarray  # float64 +1 / -1
    size0: np.ndarray  # base units
    entry: np.ndarray
    margin0: np.ndarray  # isolated margin, USD (0 on cross rows)
    cross: np.ndarray  # bool
    account: np.ndarray  # int64 global account
    pool: np.ndarray  # int64 market asset its orders trade in
    mark_asset: np.ndarray  # int64 market asset its mark reads
    tier: np.ndarray  # int64 row of the tier tables
    fee_rate: np.ndarray  # fee cap per closed notional at the fill
    wgroup: np.ndarray  # int64 its ADL group as a winner (global)
    tgroup: np.ndarray  # int64 the group that covers its deficit (opposite side, global)
    floor: np.ndarray  # (K, T) tier tables
    rate: np.ndarray
    ded: np.ndarray
    coll0: np.ndarray  # (NA,) cross collateral per global account
    lane_off: np.ndarray  # (L+1,) isolated rows of lane l: lane_pos[lane_off[l]:lane_off[l+1]]
    lane_pos: np.ndarray  # position indices, longs by liquidation price descending, shorts ascending
    lane_lp: np.ndarray  # their liquidation prices at the start
    lane_long: np.ndarray  # bool (L,)
    lane_venue: np.ndarray  # int64 (L,)
    lane_mark: np.ndarray  # int64 (L,) mark asset
    x_off: np.ndarray  # (X+1,) rows of cross account x: x_rows[x_off[x]:x_off[x+1]] (book order)
    x_rows: np.ndarray
    x_account: np.ndarray  # (X,) global account
    x_venue: np.ndarray  # (X,)
    x_of: np.ndarray  # (n,) cross account index of each row (-1: isolated)
    w_off: np.ndarray  # (G+1,) rows of ADL winner group g: w_pos[w_off[g]:w_off[g+1]]
    w_pos: np.ndarray  # longs by entry ascending, shorts descending (a row in profit comes before one that is not)


class KPerpOut(NamedTuple):
    """Ledger arrays (paths, V) the perp kernel adds to (the core ones shared with the lending kernel)."""

    liquidations: np.ndarray
    collateral_seized_usd: np.ndarray
    realised_bad_debt_usd: np.ndarray
    unrealised_bad_debt_usd: np.ndarray
    perp_liquidated_long_usd: np.ndarray
    perp_liquidated_short_usd: np.ndarray
    perp_market_sold_base: np.ndarray
    perp_market_bought_base: np.ndarray
    perp_margin_released_usd: np.ndarray
    perp_realized_pnl_usd: np.ndarray
    perp_fee_usd: np.ndarray
    perp_returned_to_owner_usd: np.ndarray
    perp_backstop_takeover_usd: np.ndarray
    perp_deficit_usd: np.ndarray
    insurance_fund_paid_usd: np.ndarray
    insurance_fee_income_usd: np.ndarray
    insurance_fund_drawdown_usd: np.ndarray
    insurance_fund_depleted: np.ndarray
    backstop_paid_usd: np.ndarray
    backstop_loss_usd: np.ndarray
    adl_volume_usd: np.ndarray
    adl_overshoot_usd: np.ndarray
    adl_closed_notional_usd: np.ndarray
    adl_steps: np.ndarray
    backstop_taken_base: np.ndarray  # base units the backstop vault took over (|size|)


# ---------------------------------------------------------------------------------------------
# rules (the adapters' float operations)
# ---------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def maintenance_usd(floor, rate, ded, k, notional):
    """``Tiers.maintenance_usd``: ``notional * rate[t] - deduction[t]``, t the last tier with floor <= notional.

    Inlined: in the round's lane sweep, touched loop and settle loop it runs per row, and an inlined call
    measured as fast as the copies written out there before (interleaved single-thread pairs)."""
    t = -1
    for x in range(floor.shape[1]):
        if floor[k, x] <= notional:
            t += 1
    if t < 0:
        t = 0
    return notional * rate[k, t] - ded[k, t]


@njit(cache=True)
def flagged(eq, req, flag_eq):
    """The venue's comparison (``_flag``): ``eq < req`` (``req >= eq`` with ``flag_eq``) and ``req > 0``."""
    if flag_eq:
        return req >= eq and req > 0.0
    return eq < req and req > 0.0


@njit(cache=True)
def route_of(eq, req, offset_neg, backstop_frac):
    """0 market order, 1 backstop takeover, 2 ADL offset (``liquidate``'s choice per pool)."""
    if offset_neg and eq < 0.0:
        return 2
    if eq < backstop_frac * req:
        return 1
    return 0


@njit(cache=True)
def settle_row(s, q, entry, margin, is_cross, mark, fill, c, route, eq, req, fee_cap, share):
    """``PerpAdapter._settle`` for one closed row of a flagged pool (``req > 0``); ``share`` is the row's share
    of the pool's equity: 1 for an isolated row closed whole, else (maintenance of ``q`` - maintenance of
    ``q - c``, both at the mark) / ``req`` (computed by the caller: scalars only, so the call binds no array).

    Returns (left, margin_released, realized, fee, returned, takeover, deficit, new_margin, to_account).
    """
    left = q - c
    equity_share = eq * share if c > 0.0 else 0.0
    fill0 = (mark if route != 0 else fill) if c > 0.0 else 0.0
    pnl_mark = s * c * (mark - entry)
    released = equity_share - pnl_mark
    realized = s * c * (fill0 - entry)
    surplus = released + realized
    takeover = max(surplus, 0.0) if route == 1 else 0.0
    fee = min(max(surplus, 0.0), max(fee_cap, 0.0)) if route == 0 else 0.0
    returned = max(surplus - fee, 0.0) if route != 1 else 0.0
    deficit = max(-surplus, 0.0)
    iso_done = (not is_cross) and left == 0.0 and c > 0.0
    delta_pool = returned - released
    if is_cross:
        to_account = delta_pool
    elif iso_done:
        to_account = returned
    else:
        to_account = 0.0
    if is_cross or iso_done:
        new_margin = 0.0
    else:
        new_margin = margin + (delta_pool if c > 0.0 else 0.0)
    return left, released, realized, fee, returned, takeover, deficit, new_margin, to_account


# ---------------------------------------------------------------------------------------------
# per-chunk scratch
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def perp_scratch(pv, pp, n_assets):
    """Scratch state of one chunk of paths (reset per path by :func:`perp_start_path`)."""
    n = pp.row.shape[0]
    n_v = pv.col.shape[0]
    n_g = pv.goff[n_v] if n_v > 0 else 0
    return (pp.size0.copy(), pp.margin0.copy(), pp.coll0.copy(),  # size, margin, coll (reset per path: dirty rows)
            np.zeros(n, np.bool_), np.empty(n, np.int64), np.zeros(4, np.int64),  # touched, touched list, counters
            np.full(n, -np.inf), np.zeros(n), np.zeros(n), np.zeros(n, np.bool_),  # partial_until, vault, liq_once
            np.zeros((n_v, 8)), np.zeros(n_v, np.int64), np.zeros(pp.lane_off.shape[0], np.int64),  # vs, rounds, ptr
            np.empty(n, np.int64), np.empty(n), np.empty(n, np.int64), np.empty(n),  # buf, b_mark, b_route, b_c
            np.empty(n), np.empty(n),  # b_eq, b_req
            np.zeros(max(n_g, 1)), np.zeros(max(n_g, 1)), np.zeros(pp.coll0.shape[0]),  # d, cap/seized, acct delta
            np.empty(n), np.empty(n, np.int64), np.empty(n),  # score, order, per-row scratch
            np.zeros(n_assets), np.zeros(n_assets),  # per pool: the round's sells, buys (then their fills)
            np.zeros(n, np.bool_), np.empty(n, np.int64),  # dirty: rows whose state changed on this path
            _lane_of(pp.lane_off, pp.lane_pos, n), _no_bounds(pp.lane_long))  # lane of each row, touched bounds


@njit(cache=True)
def _lane_of(lane_off, lane_pos, n):
    """The lane of each row (-1: in none, a cross or closed row)."""
    out = np.full(n, -1, np.int64)
    for ln in range(lane_off.shape[0] - 1):
        for p in range(lane_off[ln], lane_off[ln + 1]):
            out[lane_pos[p]] = ln
    return out


@njit(cache=True)
def _no_bounds(lane_long):
    """Per lane, the bound of its touched rows when it has none (no mark reaches it)."""
    out = np.empty(lane_long.shape[0])
    for ln in range(lane_long.shape[0]):
        out[ln] = -np.inf if lane_long[ln] else np.inf
    return out


@njit(cache=True)
def row_bound(s, q, margin, entry, floor, rate, ded, k):
    """A bound on the mark at which an isolated row (side s, size q > 0) can be liquidatable: a long only below
    it, a short only above it (up to the rounding :data:`LP_TOL` absorbs).

    Per tier t its line ``margin + s*q*(x - entry) < q*x*rate[t] - ded[t]`` holds exactly below (long) or above
    (short) its root; the requirement at x is one of those lines (the tier of ``q*x``), so a mark that
    liquidates the row is past that tier's root, hence past the largest (long) or smallest (short) root of all
    tiers the table can select. (For a convex table, deductions continuous at the floors, the requirement is
    the largest line and the bound is the liquidation price itself.) No positive slack: +inf for a long, -inf
    for a short (never quiet)."""
    b = -np.inf if s > 0.0 else np.inf
    for t in range(floor.shape[1]):
        if t > 0 and floor[k, t] == np.inf:  # a padding column: never selected
            continue
        if s > 0.0:
            den = q * (1.0 - rate[k, t])
            if not den > 0.0:
                return np.inf
            b = max(b, (q * entry - margin - ded[k, t]) / den)
        else:
            den = q * (1.0 + rate[k, t])
            if not den > 0.0:
                return -np.inf
            b = min(b, (margin + q * entry + ded[k, t]) / den)
    if b != b:
        return np.inf if s > 0.0 else -np.inf
    return b


@njit(cache=True)
def touched_bounds(tlist, cnt, size, margin, side, entry, tier, floor, rate, ded, lane_of, lane_long, lane_tb):
    """Per lane, the bound (:func:`row_bound`) of its open touched rows (largest for longs, smallest for shorts),
    for :func:`perp_quiet`; ``cnt[2]`` counts open touched rows in no lane (then no round is quiet). Called
    whenever touched rows changed (a round that settled, an ADL step)."""
    for ln in range(lane_tb.shape[0]):
        lane_tb[ln] = -np.inf if lane_long[ln] else np.inf
    cnt[2] = 0
    for q in range(cnt[0]):
        i = tlist[q]
        if not size[i] > 0.0:
            continue
        ln = lane_of[i]
        if ln < 0:
            cnt[2] += 1
            continue
        b = row_bound(side[i], size[i], margin[i], entry[i], floor, rate, ded, tier[i])
        if lane_long[ln]:
            lane_tb[ln] = max(lane_tb[ln], b)
        else:
            lane_tb[ln] = min(lane_tb[ln], b)


@njit(cache=True)
def perp_start_path(pv, pp, ps):
    """Per-venue state and lane pointers back to the start (rows are reset by :func:`perp_end_path`)."""
    cnt, vs, ptr = ps[5], ps[10], ps[12]
    cnt[0] = 0
    cnt[1] = 0
    for v in range(vs.shape[0]):
        vs[v, _FUND] = pv.fund0[v]
        vs[v, _FUND_MIN] = pv.fund0[v]
        vs[v, _BACKSTOP] = pv.backstop0[v]
        for x in range(3, 8):
            vs[v, x] = 0.0
    for ln in range(ptr.shape[0] - 1):
        ptr[ln] = pp.lane_off[ln]


@njit(cache=True)
def perp_start_step(pv, ps):
    rounds = ps[11]
    for v in range(rounds.shape[0]):
        rounds[v] = pv.rounds[v]


@njit(cache=True)
def _dirty(i, dirty, dlist, cnt):
    """Row i's state changed on this path (reset at its end)."""
    if not dirty[i]:
        dirty[i] = True
        dlist[cnt[1]] = i
        cnt[1] += 1


@njit(cache=True)
def _touch(i, touched, tlist, cnt):
    if not touched[i]:
        touched[i] = True
        tlist[cnt[0]] = i
        cnt[0] += 1


@njit(cache=True)
def _mark(i, t, lag, side, mkt_low, mkt_high, hist, mark_asset):
    a = mark_asset[i]
    if lag > 0:
        return hist[max(t - lag, 0), a]
    return mkt_low[a] if side[i] > 0.0 else mkt_high[a]


# ---------------------------------------------------------------------------------------------
# one round
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def perp_quiet(t, lag_v, lane_off, lane_lp, lane_venue, lane_mark, lane_long, n_x, cnt, rounds, ptr, mkt_low, mkt_high,
               hist, lane_tb):
    """True when :func:`perp_round` cannot liquidate anything this round: no cross accounts, no lane's mark
    reached the liquidation price at its pointer (where the lane sweep would stop) nor the bound of its touched
    rows (``lane_tb``, :func:`touched_bounds`; every touched row is still confirmed exactly by the round). O(lanes).

    The cascade kernel asks this before each round with the few arrays it reads: a call that binds the perp
    NamedTuples (about 100 arrays, a reference count each way) costs more than a quiet round's work."""
    if cnt[2] > 0 or n_x > 0:
        return False
    for ln in range(lane_off.shape[0] - 1):
        v = lane_venue[ln]
        if rounds[v] <= 0:
            continue
        a = lane_mark[ln]
        long_ = lane_long[ln]
        lag = lag_v[v]
        mk = hist[max(t - lag, 0), a] if lag > 0 else (mkt_low[a] if long_ else mkt_high[a])
        tb = lane_tb[ln]
        if long_:
            if tb > mk * (1.0 - LP_TOL):
                return False
        elif tb < mk * (1.0 + LP_TOL):
            return False
        p = ptr[ln]
        if p >= lane_off[ln + 1]:
            continue
        lp = lane_lp[p]
        if long_:
            if lp > mk * (1.0 - LP_TOL):
                return False
        elif lp < mk * (1.0 + LP_TOL):
            return False
    return True


@njit(cache=True)
def perp_round(path, k, t, now_s, pv, pp, po, ps, mkt_low, mkt_high, hist, exo_low, exo_high, liq, flow,
               round_sales, ev, ev_n, ev_cap):
    """Every perp venue's liquidation pass at the round's starting market (``flow`` the pools' state at the
    round's start); adds the round's market orders to ``round_sales``. True when anything was liquidated."""
    (size, margin, coll, touched, tlist, cnt, p_until, v_size, v_px, liq_once, vs, rounds, ptr,
     buf, b_mark, b_route, b_c, b_eq, b_req, d_grp, _cap, acct_delta, _score, _order, _tmp,
     q_sell, q_buy, dirty, dlist, lane_of, lane_tb) = ps
    side, entry, is_cross, account, pool, tier = pp.side, pp.entry, pp.cross, pp.account, pp.pool, pp.tier
    floor, rate, ded, mark_asset = pp.floor, pp.rate, pp.ded, pp.mark_asset
    lane_off, lane_pos, lane_lp = pp.lane_off, pp.lane_pos, pp.lane_lp
    lane_venue, lane_mark, lane_long = pp.lane_venue, pp.lane_mark, pp.lane_long
    x_account, x_venue, x_off, x_rows = pp.x_account, pp.x_venue, pp.x_off, pp.x_rows
    p_row, tgroup = pp.row, pp.tgroup
    # outputs as locals (an array read through a tuple field in the loop costs a reference count each time)
    o_liqs, o_seized, o_long, o_short = po.liquidations, po.collateral_seized_usd, po.perp_liquidated_long_usd, \
        po.perp_liquidated_short_usd
    o_sold, o_bought, o_rel, o_real = po.perp_market_sold_base, po.perp_market_bought_base, \
        po.perp_margin_released_usd, po.perp_realized_pnl_usd
    o_fee, o_ret, o_tko, o_dfc = po.perp_fee_usd, po.perp_returned_to_owner_usd, po.perp_backstop_takeover_usd, \
        po.perp_deficit_usd
    o_taken, o_ins, o_fin, o_bpaid = po.backstop_taken_base, po.insurance_fund_paid_usd, \
        po.insurance_fee_income_usd, po.backstop_paid_usd
    fee_rate, p_venue = pp.fee_rate, pp.venue
    v_col, v_lag, v_flag_eq, v_offset_neg, v_bfrac = pv.col, pv.lag, pv.flag_eq, pv.offset_neg, pv.backstop_frac
    v_pthr, v_pfrac, v_cool, v_fees_in, v_fund0 = pv.partial_thr, pv.partial_frac, pv.cooldown_s, pv.fees_to_fund, \
        pv.fund0
    n_x = x_account.shape[0]
    n_pools = q_sell.shape[0]
    # closed rows leave the touched list (a partial close is usually finished in the next round)
    keep = 0
    for q in range(cnt[0]):
        i = tlist[q]
        if size[i] > 0.0:
            tlist[keep] = i
            keep += 1
        else:
            touched[i] = False
    cnt[0] = keep
    any_liq = False
    for v in range(v_col.shape[0]):
        if rounds[v] <= 0:
            continue
        j = v_col[v]
        lag = v_lag[v]
        flag_eq = v_flag_eq[v]
        nb = 0
        # ---- who: lanes of isolated rows (pointer sweep), touched rows, cross accounts
        for ln in range(lane_off.shape[0] - 1):
            if lane_venue[ln] != v:
                continue
            a = lane_mark[ln]
            long_ = lane_long[ln]
            mk = hist[max(t - lag, 0), a] if lag > 0 else (mkt_low[a] if long_ else mkt_high[a])
            thr = mk * (1.0 - LP_TOL) if long_ else mk * (1.0 + LP_TOL)
            p = ptr[ln]
            advance = True
            end = lane_off[ln + 1]
            while p < end:
                lp = lane_lp[p]
                if long_:
                    if not lp > thr:
                        break
                elif not lp < thr:
                    break
                i = lane_pos[p]
                if size[i] > 0.0 and not touched[i]:
                    eq = margin[i] + (side[i] * size[i] * (mk - entry[i]) - 0.0)
                    req = maintenance_usd(floor, rate, ded, tier[i], size[i] * mk)
                    if flagged(eq, req, flag_eq):
                        buf[nb] = i
                        b_mark[nb] = mk
                        b_eq[nb] = eq
                        b_req[nb] = req
                        nb += 1
                    else:
                        advance = False  # within the slack, not (yet) liquidatable: stays a candidate
                if advance:
                    ptr[ln] = p + 1
                p += 1
        for q in range(cnt[0]):
            i = tlist[q]
            if p_venue[i] != v or size[i] <= 0.0 or is_cross[i]:
                continue
            # _mark written out (a call binds five arrays; this runs per touched row and round)
            a = mark_asset[i]
            if lag > 0:
                mk = hist[max(t - lag, 0), a]
            else:
                mk = mkt_low[a] if side[i] > 0.0 else mkt_high[a]
            eq = margin[i] + (side[i] * size[i] * (mk - entry[i]) - 0.0)
            req = maintenance_usd(floor, rate, ded, tier[i], size[i] * mk)
            if flagged(eq, req, flag_eq):
                buf[nb] = i
                b_mark[nb] = mk
                b_eq[nb] = eq
                b_req[nb] = req
                nb += 1
        for x in range(n_x):
            if x_venue[x] != v:
                continue
            upnl = 0.0
            mm = 0.0
            n_open = 0
            for r in range(x_off[x], x_off[x + 1]):
                i = x_rows[r]
                mk = _mark(i, t, lag, side, mkt_low, mkt_high, hist, mark_asset)
                _tmp[i] = mk
                upnl += side[i] * size[i] * (mk - entry[i]) - 0.0
                if size[i] > 0.0:
                    mm += maintenance_usd(floor, rate, ded, tier[i], size[i] * mk)
                    n_open += 1
            if n_open == 0:
                continue
            eq = coll[x_account[x]] + upnl
            if flagged(eq, mm, flag_eq):
                for r in range(x_off[x], x_off[x + 1]):
                    i = x_rows[r]
                    if size[i] > 0.0:
                        buf[nb] = i
                        b_mark[nb] = _tmp[i]
                        b_eq[nb] = eq
                        b_req[nb] = mm
                        nb += 1
        if nb == 0:
            continue
        # ---- routes and sizes; the round's market orders per pool
        for a in range(n_pools):
            q_sell[a] = 0.0
            q_buy[a] = 0.0
        offset_neg, bfrac, pthr, pfrac = v_offset_neg[v], v_bfrac[v], v_pthr[v], v_pfrac[v]
        for b in range(nb):
            i = buf[b]
            r = route_of(b_eq[b], b_req[b], offset_neg, bfrac)
            c = size[i]
            if r == 0 and size[i] * b_mark[b] > pthr and now_s >= p_until[i]:
                c = min(pfrac * size[i], size[i])
            b_route[b] = r
            b_c[b] = c
            if r == 0:
                if side[i] > 0.0:
                    q_sell[pool[i]] += c
                else:
                    q_buy[pool[i]] += c
        for a in range(n_pools):
            if q_sell[a] > 0.0:
                q_sell[a] = proceeds_usd(liq, a, flow[a], q_sell[a], exo_low[a]) / q_sell[a]
            if q_buy[a] > 0.0:
                q_buy[a] = purchase_usd(liq, a, flow[a], q_buy[a], exo_high[a]) / q_buy[a]
        # ---- settle (every row against the book as it was at the round's start); the ledger's running sums
        # in locals, added in the same order as one += per row
        rounds[v] -= 1
        any_liq = True
        cool = v_cool[v]
        s_liqs, s_seized, s_long, s_short = o_liqs[k, j], o_seized[k, j], o_long[k, j], o_short[k, j]
        s_sold, s_bought, s_rel, s_real = o_sold[k, j], o_bought[k, j], o_rel[k, j], o_real[k, j]
        s_fee, s_ret, s_tko, s_dfc = o_fee[k, j], o_ret[k, j], o_tko[k, j], o_dfc[k, j]
        s_taken, s_vtko = o_taken[k, j], vs[v, _TAKEOVER]
        for b in range(nb):
            i = buf[b]
            mk = b_mark[b]
            r = b_route[b]
            c = b_c[b]
            s_i = side[i]
            q_i = size[i]
            fill = mk
            if r == 0:  # the average fill of its side's aggregate order in its pool
                fill = q_sell[pool[i]] if s_i > 0.0 else q_buy[pool[i]]
            fee_cap = fee_rate[i] * q_i * fill
            left = q_i - c
            if not is_cross[i] and left == 0.0:  # an isolated row closed whole releases all of its equity
                share = 1.0
            else:  # the maintenance requirement the closed part releases, at the mark
                kt = tier[i]
                mm_before = maintenance_usd(floor, rate, ded, kt, q_i * mk) if q_i > 0.0 else 0.0
                mm_after = maintenance_usd(floor, rate, ded, kt, left * mk) if left > 0.0 else 0.0
                share = (mm_before - mm_after) / b_req[b]
            left, rel, real, fee, ret, tko, dfc, new_m, to_acc = settle_row(
                s_i, q_i, entry[i], margin[i], is_cross[i], mk, fill, c, r, b_eq[b], b_req[b], fee_cap, share)
            if r == 0 and left > 0.0 and cool > 0.0:
                p_until[i] = now_s + cool
            closed_usd = c * mk
            if r == 1:
                v_size[i] += s_i * c
                v_px[i] = mk
                s_vtko += tko
                s_taken += c
            s_liqs += 1.0
            s_seized += rel
            if s_i > 0.0:
                s_long += closed_usd
            else:
                s_short += closed_usd
            if r == 0:
                if s_i > 0.0:
                    s_sold += c
                else:
                    s_bought += c
                round_sales[pool[i]] += s_i * c
            s_rel += rel
            s_real += real
            s_fee += fee
            s_ret += ret
            s_tko += tko
            s_dfc += dfc
            if ev_cap >= 0:
                e = ev_n[0]
                if e < ev_cap:
                    ev[e].path = path
                    ev[e].step = t
                    ev[e].protocol = j
                    ev[e].position = p_row[i]
                    ev[e].collateral = -1
                    ev[e].debt_repaid_usd = closed_usd
                    ev[e].collateral_seized_usd = rel
                    ev[e].bonus_usd = 0.0
                    ev[e].protocol_fee_usd = fee
                    ev[e].bad_debt_usd = dfc
                    ev[e].price = mk if r != 0 else fill
                ev_n[0] = e + 1
            # the waterfall's inputs of this row (its loss, margin used, fee income, eligibility)
            b_eq[b] = real
            b_req[b] = dfc
            b_mark[b] = fee
            size[i] = left
            margin[i] = new_m
            acct_delta[account[i]] += to_acc
            liq_once[i] = True
            if not dirty[i]:  # _dirty and _touch written out (each call binds three arrays; this runs per row)
                dirty[i] = True
                dlist[cnt[1]] = i
                cnt[1] += 1
            if left > 0.0 and not touched[i]:
                touched[i] = True
                tlist[cnt[0]] = i
                cnt[0] += 1
        o_liqs[k, j], o_seized[k, j], o_long[k, j], o_short[k, j] = s_liqs, s_seized, s_long, s_short
        o_sold[k, j], o_bought[k, j], o_rel[k, j], o_real[k, j] = s_sold, s_bought, s_rel, s_real
        o_fee[k, j], o_ret[k, j], o_tko[k, j], o_dfc[k, j] = s_fee, s_ret, s_tko, s_dfc
        o_taken[k, j] = s_taken
        vs[v, _TAKEOVER] = s_vtko
        for b in range(nb):
            a = account[buf[b]]
            if acct_delta[a] != 0.0:
                coll[a] = coll[a] + acct_delta[a]
                acct_delta[a] = 0.0
        ins_sum, fee_sum, back_sum = _waterfall(v, nb, buf, b_eq, b_req, b_mark, b_route, _order, v_fees_in[v],
                                                v_fund0[v], tgroup, vs, d_grp)
        o_ins[k, j] += ins_sum
        o_fin[k, j] += fee_sum
        o_bpaid[k, j] += back_sum
    touched_bounds(tlist, cnt, size, margin, side, entry, tier, floor, rate, ded, lane_of, lane_long, lane_tb)
    return any_liq


@njit(cache=True)
def _waterfall(v, nb, buf, realized, deficit, fee_usd, route, order, fees_in, fund0, tgroup, vs, d_grp):
    """``waterfall_of`` of one round, in book order (the same running sums as ``loss_waterfall``); returns the
    round's (insurance paid, fee income, backstop paid).

    Only rows with a loss beyond their margin (``dw > 0``) or a fee into the fund change a running sum: a row
    with neither adds +0.0 to ``cum``, ``used``, ``d_grp`` and the three sums (all >= +0.0, so bit-unchanged),
    leaves ``running`` and ``low`` as they were and so ``before = running - low`` as the previous row set it
    (``fund`` itself when first: ``fund >= 0``), and draws 0. So those rows are dropped and only the others are
    put in book order (usually none or a few: no sort of the whole round)."""
    na = 0
    for b in range(nb):
        dfc = deficit[b]
        margin_used = max(-realized[b] - dfc, 0.0)
        loss = max(margin_used + dfc, 0.0)
        fee = max(fee_usd[b], 0.0) if fees_in else 0.0
        dw = loss - min(loss, max(margin_used, 0.0))
        if dw != 0.0 or fee != 0.0 or dw != dw or fee != fee:
            order[na] = buf[b] * nb + b  # book order, then the round's index (rows are distinct)
            na += 1
    fund = vs[v, _FUND]
    backstop = vs[v, _BACKSTOP]
    cum = 0.0
    low = 0.0
    before = fund
    used = 0.0
    fee_sum = 0.0
    ins_sum = 0.0
    back_sum = 0.0
    if na > 1:
        order[:na].sort()
    for q in range(na):
        b = order[q] % nb
        dfc = deficit[b]
        margin_used = max(-realized[b] - dfc, 0.0)
        loss = max(margin_used + dfc, 0.0)
        fee = max(fee_usd[b], 0.0) if fees_in else 0.0
        eligible = route[b] != 2
        dw = loss - min(loss, max(margin_used, 0.0))
        draw = dw if eligible else 0.0
        cum += fee - draw
        running = fund + cum
        low = min(low, min(running, 0.0))
        from_ins = min(dw, before + fee) if eligible else 0.0
        before = running - low
        rest = dw - from_ins
        from_back = min(max(backstop - used, 0.0), rest)
        used += rest
        d_grp[tgroup[buf[b]]] += rest - from_back
        if fund0 > 0.0 and (draw - from_ins) > _EPS_USD:
            vs[v, _DEPLETED] = 1.0
        fee_sum += fee
        ins_sum += from_ins
        back_sum += from_back
    fund = max(fund + fee_sum - ins_sum, 0.0)
    vs[v, _FUND] = fund
    vs[v, _FUND_MIN] = min(vs[v, _FUND_MIN], fund)
    vs[v, _BACKSTOP] = max(backstop - back_sum, 0.0)
    vs[v, _BACKSTOP_PAID] += back_sum
    return ins_sum, fee_sum, back_sum


# ---------------------------------------------------------------------------------------------
# end of step: ADL
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def perp_adl_due(d_grp, goff):
    """True when some perp venue has a deficit for :func:`perp_end_step`'s ADL; otherwise clears the groups'
    sub-threshold rests (as that function does) and the cascade kernel skips the call (it binds little)."""
    for v in range(goff.shape[0] - 1):
        tot = 0.0
        for g in range(goff[v], goff[v + 1]):
            tot += d_grp[g]
        if tot > _EPS_USD:
            return True
    for g in range(d_grp.shape[0]):
        d_grp[g] = 0.0
    return False


@njit(cache=True)
def _sift(idx, key, q, n):
    """Sift entry q down a max-heap of ``n`` entries ordered by key descending, then index ascending (the ADL
    queue; once per ADL winner, so a call's array binding does not matter)."""
    while True:
        c = 2 * q + 1
        if c >= n:
            return
        if c + 1 < n and (key[c + 1] > key[c] or (key[c + 1] == key[c] and idx[c + 1] < idx[c])):
            c += 1
        if key[c] > key[q] or (key[c] == key[q] and idx[c] < idx[q]):
            idx[c], idx[q] = idx[q], idx[c]
            key[c], key[q] = key[q], key[c]
            q = c
        else:
            return


@njit(cache=True)
def perp_end_step(k, t, pv, pp, po, ps, hist):
    """The step's ADL per perp venue, at the step's close of each row's pool asset."""
    (size, margin, coll, touched, tlist, cnt, _pu, _vsz, _vpx, _lo, vs, _r, _p,
     _buf, _bm, _br, _bc, _be, _bq, d_grp, seized, _ad, score, order, mark, _qs, _qb, dirty, dlist, lane_of,
     lane_tb) = ps
    side, entry = pp.side, pp.entry
    wgroup, p_cross, p_account, p_pool = pp.wgroup, pp.cross, pp.account, pp.pool
    o_closed = po.adl_closed_notional_usd
    x_of, floor, rate, ded, p_tier = pp.x_of, pp.floor, pp.rate, pp.ded, pp.tier
    w_off, w_pos = pp.w_off, pp.w_pos
    for v in range(pv.col.shape[0]):
        g0, g1 = pv.goff[v], pv.goff[v + 1]
        tot = 0.0
        for g in range(g0, g1):
            tot += d_grp[g]
        if not tot > _EPS_USD:
            for g in range(g0, g1):
                d_grp[g] = 0.0
            continue
        j = pv.col[v]
        prof_lev = pv.score[v] == SCORE_PROFIT_LEVERAGE
        lo, hi = pv.off[v], pv.off[v + 1]
        for g in range(g0, g1):
            seized[g] = 0.0
        n_live = 0
        if pv.policy[v] == ADL_PRO_RATA:
            for i in range(lo, hi):
                mark[i] = hist[t, p_pool[i]]
            for i in range(lo, hi):
                if size[i] > 0.0:
                    u = max(side[i] * size[i] * (mark[i] - entry[i]), 0.0)
                    seized[wgroup[i]] += u  # capacity per group, for now
            for i in range(lo, hi):
                score[i] = 0.0
                if size[i] > 0.0:
                    g = wgroup[i]
                    u = max(side[i] * size[i] * (mark[i] - entry[i]), 0.0)
                    frac = min(1.0, d_grp[g] / seized[g]) if seized[g] > 0.0 else 0.0
                    score[i] = u * frac  # the haircut
            for g in range(g0, g1):
                seized[g] = 0.0
            for i in range(lo, hi):
                if size[i] > 0.0:
                    seized[wgroup[i]] += score[i]
        else:
            # pool sums of cross accounts at these marks (for the scores)
            n_x = pp.x_account.shape[0]
            x_upnl = np.zeros(n_x)
            x_not = np.zeros(n_x)
            x_mm = np.zeros(n_x)
            for x in range(n_x):
                if pp.x_venue[x] != v:
                    continue
                for r in range(pp.x_off[x], pp.x_off[x + 1]):
                    i = pp.x_rows[r]
                    mark[i] = hist[t, p_pool[i]]
                    x_upnl[x] += side[i] * size[i] * (mark[i] - entry[i]) - 0.0
                    x_not[x] += size[i] * mark[i]
                    if size[i] > 0.0:
                        x_mm[x] += maintenance_usd(pp.floor, pp.rate, pp.ded, pp.tier[i], size[i] * mark[i])
            for g in range(g0, g1):  # the queue, group by group (winners of a group without deficit keep all)
                if not d_grp[g] > 0.0:
                    continue
                n_live = 0
                # only the group's rows whose entry is on the profitable side of the mark can rank (one pool
                # per group, so one mark): a prefix of w_pos, each still tested exactly; the heap's total
                # order (score, then row) makes the queue independent of the order rows are pushed
                for p in range(w_off[g], w_off[g + 1]):
                    i = w_pos[p]
                    mk = hist[t, p_pool[i]]
                    if (side[i] > 0.0 and not entry[i] < mk) or (side[i] < 0.0 and not entry[i] > mk):
                        break
                    mark[i] = mk
                    if not size[i] > 0.0:
                        continue
                    upnl = side[i] * size[i] * (mark[i] - entry[i])
                    if not upnl > 0.0:
                        continue
                    if p_cross[i]:  # the pool's terms; its requirement only where the score reads it
                        x = x_of[i]
                        wb = coll[p_account[i]]
                        eq, notional, mm = wb + x_upnl[x], x_not[x], x_mm[x]
                    else:
                        wb = margin[i]
                        eq, notional = wb + (upnl - 0.0), size[i] * mark[i]
                        mm = 0.0 if prof_lev else maintenance_usd(floor, rate, ded, p_tier[i], size[i] * mark[i])
                    if prof_lev:
                        e = max(eq, 1e-12)
                        sc = upnl / e * (notional / e)
                    else:
                        ratio = mm / eq if eq > 0.0 else 0.0
                        sc = upnl / max(wb, 1.0) * ratio
                    order[n_live] = i
                    score[n_live] = sc
                    n_live += 1
                # a max-heap by (score, -row): pop winners in the queue's order until the deficit is covered
                for q in range(n_live // 2 - 1, -1, -1):
                    _sift(order, score, q, n_live)
                csum = 0.0
                n_h = n_live
                while n_h > 0:
                    i = order[0]
                    n_h -= 1
                    order[0], score[0] = order[n_h], score[n_h]
                    _sift(order, score, 0, n_h)
                    u = side[i] * size[i] * (mark[i] - entry[i])
                    csum += u
                    if not csum - u < d_grp[g]:
                        break
                    seized[g] += u  # closed whole, its whole profit seized
                    o_closed[k, j] += size[i] * mark[i]
                    delta = u - u  # apply_adl: it realises its PnL at the mark and gives up that PnL
                    if p_cross[i]:
                        coll[p_account[i]] += delta
                    else:
                        coll[p_account[i]] += margin[i] + delta
                    margin[i] = 0.0
                    size[i] = 0.0
                    _dirty(i, dirty, dlist, cnt)
        if pv.policy[v] == ADL_PRO_RATA:
            for i in range(lo, hi):
                h = score[i]
                if h > 0.0:
                    delta = 0.0 - h
                    _dirty(i, dirty, dlist, cnt)
                    if p_cross[i]:
                        coll[p_account[i]] += delta
                    else:
                        margin[i] = margin[i] + delta
                        _touch(i, touched, tlist, cnt)
        cov = 0.0
        unc = 0.0
        over = 0.0
        for g in range(g0, g1):
            c = min(seized[g], d_grp[g])
            cov += c
            unc += d_grp[g] - c
            over += seized[g] - c
            d_grp[g] = 0.0
        vs[v, _FUND] += over
        po.adl_volume_usd[k, j] += cov
        po.adl_overshoot_usd[k, j] += over
        po.adl_steps[k, j] += 1.0
        po.realised_bad_debt_usd[k, j] += unc
        po.insurance_fee_income_usd[k, j] += over
    # a pro-rata haircut moved its rows' bounds; a queue closed rows (their bounds only loosen until the next round)
    touched_bounds(tlist, cnt, size, margin, side, entry, pp.tier, floor, rate, ded, lane_of, pp.lane_long, lane_tb)


# ---------------------------------------------------------------------------------------------
# horizon
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def perp_end_path(k, pv, pp, po, ps, close_T, acct):
    """Underwater pools at the final close, the fund's drawdown and depletion, the backstop's loss; counts the
    positions liquidated on this path into ``acct`` and resets the rows the path changed.

    O(rows changed + lane rows past their pointer at the final mark): an untouched isolated row that is
    underwater at the final close is liquidatable there, so it sits at or past its lane's pointer within the
    final mark's slack."""
    size, margin, coll, touched, cnt = ps[0], ps[1], ps[2], ps[3], ps[5]
    p_until, v_size, v_px, liq_once, vs, ptr = ps[6], ps[7], ps[8], ps[9], ps[10], ps[12]
    dirty, dlist, lane_tb = ps[27], ps[28], ps[30]
    side, entry = pp.side, pp.entry
    p_venue, p_mark, p_cross, p_account, size0, margin0, coll0 = pp.venue, pp.mark_asset, pp.cross, pp.account, \
        pp.size0, pp.margin0, pp.coll0
    lane_off, lane_venue, lane_mark, lane_long, lane_lp, lane_pos = pp.lane_off, pp.lane_venue, pp.lane_mark, \
        pp.lane_long, pp.lane_lp, pp.lane_pos
    x_account, x_venue, x_off, x_rows = pp.x_account, pp.x_venue, pp.x_off, pp.x_rows
    n_d = cnt[1]
    for v in range(pv.col.shape[0]):
        j = pv.col[v]
        under = 0.0
        vault = vs[v, _TAKEOVER]
        for q in range(n_d):  # rows this path changed
            i = dlist[q]
            if p_venue[i] != v:
                continue
            mk = close_T[p_mark[i]]
            vault += v_size[i] * (mk - v_px[i])
            if size[i] > 0.0 and not p_cross[i]:
                under += max(-(margin[i] + (side[i] * size[i] * (mk - entry[i]) - 0.0)), 0.0)
        for ln in range(lane_off.shape[0] - 1):  # untouched isolated rows past the lane's pointer
            if lane_venue[ln] != v:
                continue
            mk = close_T[lane_mark[ln]]
            long_ = lane_long[ln]
            thr = mk * (1.0 - LP_TOL) if long_ else mk * (1.0 + LP_TOL)
            for p in range(ptr[ln], lane_off[ln + 1]):
                lp = lane_lp[p]
                if (long_ and not lp > thr) or (not long_ and not lp < thr):
                    break
                i = lane_pos[p]
                if dirty[i] or not size[i] > 0.0:
                    continue
                under += max(-(margin[i] + (side[i] * size[i] * (mk - entry[i]) - 0.0)), 0.0)
        for x in range(x_account.shape[0]):
            if x_venue[x] != v:
                continue
            upnl = 0.0
            n_open = 0
            for r in range(x_off[x], x_off[x + 1]):
                i = x_rows[r]
                upnl += side[i] * size[i] * (close_T[p_mark[i]] - entry[i]) - 0.0
                if size[i] > 0.0:
                    n_open += 1
            if n_open > 0:
                under += max(-(coll[x_account[x]] + upnl), 0.0)
        po.unrealised_bad_debt_usd[k, j] += under
        po.insurance_fund_drawdown_usd[k, j] += max(pv.fund0[v] - vs[v, _FUND_MIN], 0.0)
        po.insurance_fund_depleted[k, j] += vs[v, _DEPLETED]
        po.backstop_loss_usd[k, j] += vs[v, _BACKSTOP_PAID] + max(-vault, 0.0)
    for q in range(n_d):  # count, then reset what the path changed
        i = dlist[q]
        if liq_once[i]:
            acct[i] += 1
        size[i] = size0[i]
        margin[i] = margin0[i]
        coll[p_account[i]] = coll0[p_account[i]]
        p_until[i] = -np.inf
        v_size[i] = 0.0
        v_px[i] = 0.0
        liq_once[i] = False
        touched[i] = False
        dirty[i] = False
    cnt[0] = 0
    cnt[1] = 0
    cnt[2] = 0
    for ln in range(lane_tb.shape[0]):
        lane_tb[ln] = -np.inf if lane_long[ln] else np.inf


# ---------------------------------------------------------------------------------------------
# inputs (Python, once per candidate)
# ---------------------------------------------------------------------------------------------


def build_perp_inputs(sims: list, n_assets: int) -> tuple[KPerpVenues, KPerpPositions]:
    """The perp kernel's structs from the perp venues among ``sims`` (those whose ``kernel_spec`` is a
    :class:`~optimizer.engine.venues.PerpKernelSpec`), in scenario order."""
    from .venues import PerpKernelSpec

    i64, f64 = np.int64, np.float64
    ven: dict[str, list] = {k: [] for k in KPerpVenues._fields if k not in ("off", "goff")}
    pos: dict[str, list] = {k: [] for k in ("row", "venue", "side", "size0", "entry", "margin0", "cross", "account",
                                            "pool", "mark_asset", "tier", "fee_rate", "wgroup", "tgroup", "lp")}
    tables: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    coll0: list[np.ndarray] = []
    off, goff = [0], [0]
    n_tab = n_acc = 0
    for sim in sims:
        spec = sim.kernel_spec()
        if not isinstance(spec, PerpKernelSpec):
            continue
        v = len(off) - 1
        rule, book, ad = spec.rule, sim.book0, sim.adapter
        n = book.n_positions
        vm = ad.market_index(book)
        ven["col"].append(sim.ctx.index)
        ven["flag_eq"].append(rule.flag_at_equality)
        ven["offset_neg"].append(rule.negative_equity_offset)
        ven["backstop_frac"].append(rule.backstop_equity_fraction)
        ven["partial_thr"].append(rule.partial_threshold_usd)
        ven["partial_frac"].append(rule.partial_fraction)
        ven["cooldown_s"].append(spec.cooldown_s)
        ven["fees_to_fund"].append(spec.fees_to_fund)
        ven["policy"].append(ADL_POLICIES[spec.adl_policy])
        ven["score"].append(SCORES[rule.adl_score])
        ven["fund0"].append(spec.insurance_fund_usd)
        ven["backstop0"].append(spec.backstop_usd)
        ven["lag"].append(sim.oracle_spec.lag_steps)
        ven["rounds"].append(spec.rounds_per_step)
        side = book.side.astype(f64)
        lp = np.full(n, np.nan)
        iso = ~book.is_cross & (book.size_base > 0)
        if iso.any():
            lp = ad.liquidation_price_usd(book, book.entry_price_usd)
        pos["row"].append(np.arange(n))
        pos["venue"].append(np.full(n, v))
        pos["side"].append(side)
        pos["size0"].append(book.size_base)
        pos["entry"].append(book.entry_price_usd)
        pos["margin0"].append(book.margin_usd)
        pos["cross"].append(book.is_cross)
        pos["account"].append(book.account + n_acc)
        pos["pool"].append(spec.pool)
        pos["mark_asset"].append(spec.mark_asset)
        pos["tier"].append(vm + n_tab)
        pos["fee_rate"].append(np.asarray(rule.fee_rate, f64)[vm])
        pos["wgroup"].append(goff[-1] + 2 * book.market + (book.side > 0))
        pos["tgroup"].append(goff[-1] + 2 * book.market + (book.side < 0))
        pos["lp"].append(np.where(iso, lp, np.nan))
        tables.append((np.asarray(rule.floor_usd, f64), np.asarray(rule.rate, f64), np.asarray(rule.deduction_usd, f64)))
        coll0.append(book.cross_collateral_usd)
        n_tab += tables[-1][0].shape[0]
        n_acc += book.n_accounts
        off.append(off[-1] + n)
        goff.append(goff[-1] + 2 * len(book.markets))
    p = {k: (np.concatenate(x) if x else np.zeros(0)) for k, x in pos.items()}
    n = p["row"].shape[0]
    width = max([t[0].shape[1] for t in tables], default=1)
    floor = np.full((max(n_tab, 1), width), np.inf)
    rate = np.zeros((max(n_tab, 1), width))
    ded = np.zeros((max(n_tab, 1), width))
    r0 = 0
    for f, r, d in tables:
        floor[r0:r0 + f.shape[0], :f.shape[1]] = f
        rate[r0:r0 + f.shape[0], :f.shape[1]] = r
        ded[r0:r0 + f.shape[0], :f.shape[1]] = d
        r0 += f.shape[0]
    # lanes: isolated open rows per (venue, mark asset, side), by liquidation price (longs descending)
    lp = p["lp"].astype(f64)
    iso = np.flatnonzero(~np.isnan(lp))
    lane_key = (p["venue"][iso].astype(i64) * (n_assets + 1) + p["mark_asset"][iso].astype(i64)) * 2 \
        + (p["side"][iso] > 0)
    order = np.lexsort((iso, np.where(p["side"][iso] > 0, -lp[iso], lp[iso]), lane_key))
    iso, lane_key = iso[order], lane_key[order]
    keys, first = np.unique(lane_key, return_index=True)
    lane_off = np.append(first, iso.size).astype(i64)
    lane_rows = iso[first] if iso.size else np.zeros(0, i64)
    # cross accounts: their rows in book order
    xr = np.flatnonzero(p["cross"].astype(bool)) if n else np.zeros(0, i64)
    acc = p["account"][xr].astype(i64)
    xo = np.lexsort((xr, acc))
    xr, acc = xr[xo], acc[xo]
    x_acc, x_first = np.unique(acc, return_index=True)
    x_of = np.full(n, -1, i64)
    if xr.size:
        x_of[xr] = np.searchsorted(x_acc, acc)
    # ADL winners per group (goff's numbering), the ones in profit at any mark first (entry order by side; ties
    # in any order: the kernel tests each row and its queue orders by score, then row). An unstable sort by
    # entry, then a stable one by group: a third of a lexsort's time on 50k rows (measured).
    wg = p["wgroup"].astype(i64)
    by_entry = np.argsort(np.where(p["side"] > 0, p["entry"], -p["entry"]))
    w_pos = by_entry[np.argsort(wg[by_entry], kind="stable")].astype(i64)
    w_off = np.searchsorted(wg[w_pos], np.arange(goff[-1] + 1)).astype(i64)
    venues = KPerpVenues(
        col=np.array(ven["col"], i64), off=np.array(off, i64), goff=np.array(goff, i64),
        flag_eq=np.array(ven["flag_eq"], np.bool_), offset_neg=np.array(ven["offset_neg"], np.bool_),
        backstop_frac=np.array(ven["backstop_frac"], f64), partial_thr=np.array(ven["partial_thr"], f64),
        partial_frac=np.array(ven["partial_frac"], f64), cooldown_s=np.array(ven["cooldown_s"], f64),
        fees_to_fund=np.array(ven["fees_to_fund"], np.bool_), policy=np.array(ven["policy"], i64),
        score=np.array(ven["score"], i64), fund0=np.array(ven["fund0"], f64),
        backstop0=np.array(ven["backstop0"], f64), lag=np.array(ven["lag"], i64), rounds=np.array(ven["rounds"], i64))
    positions = KPerpPositions(
        row=p["row"].astype(i64), venue=p["venue"].astype(i64), side=p["side"].astype(f64),
        size0=p["size0"].astype(f64), entry=p["entry"].astype(f64), margin0=p["margin0"].astype(f64),
        cross=p["cross"].astype(np.bool_), account=p["account"].astype(i64), pool=p["pool"].astype(i64),
        mark_asset=p["mark_asset"].astype(i64), tier=p["tier"].astype(i64), fee_rate=p["fee_rate"].astype(f64),
        wgroup=p["wgroup"].astype(i64), tgroup=p["tgroup"].astype(i64), floor=floor, rate=rate, ded=ded,
        coll0=(np.concatenate(coll0) if coll0 else np.zeros(0)).astype(f64),
        lane_off=lane_off, lane_pos=iso.astype(i64), lane_lp=lp[iso].astype(f64),
        lane_long=(keys % 2 == 1).astype(np.bool_), lane_venue=p["venue"][lane_rows].astype(i64),
        lane_mark=p["mark_asset"][lane_rows].astype(i64),
        x_off=np.append(x_first, xr.size).astype(i64), x_rows=xr.astype(i64), x_account=x_acc.astype(i64),
        x_venue=p["venue"][xr[x_first]].astype(i64) if xr.size else np.zeros(0, i64), x_of=x_of, w_off=w_off,
        w_pos=w_pos)
    return venues, positions


def perp_out(ledger, n_paths: int, n_venues: int) -> KPerpOut:
    """The ledger's arrays for :class:`KPerpOut` (zeros where the ledger has no such field)."""
    return KPerpOut(*(ledger[f] if f in ledger else np.zeros((n_paths, n_venues)) for f in KPerpOut._fields))
