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
* **Breakers**: the price band (:func:`perp_band`) halts a market's lanes, touched rows and cross accounts;
  under the stress margin (:func:`perp_stress`, per venue market at each round) a market's rows read the
  stressed tier tables (rate x k, deduction x k: rows K.. of the tables, as ``with_margin_multiplier``), each
  lane walks a second order, by the liquidation prices under stress, with its own pointer (rows either sweep
  closed or touched are skipped by both), and touched rows skip their x1 bound. Where k x rate reaches 1 on a
  tier a long can reach (``lane_cap``: from there its margin outruns its equity and the order no longer bounds
  it), the lane is tested row by row.
* **Backstop unwind** (``backstop_unwind_steps``): a step's first round is, for a venue whose vault holds
  something, the vault's unwind instead of a liquidation pass (:func:`_unwind`).
* **Fills**: each pool's sells and buys of the round execute together through the pool's impact law
  (:func:`optimizer.engine._market.proceeds_usd` / ``purchase_usd``) from its state at the round's start.
* **Settle**: ``PerpAdapter._settle`` per closed row (margin released, realised PnL, fee, returned,
  backstop takeover, deficit), then the loss waterfall of the round in book order (margin, insurance fund
  with its fee income, backstop, the rest to ADL); nothing in a round reads the fund, so the waterfall
  runs after each round in the order the reference settles its rounds at the end of the step.
* **End of step**: scenario funding at a funding time (:func:`perp_fund`: every open row pays through its
  margin or cross collateral at the close; each lane widens its pointer's comparison by how far funding can
  have moved its untouched rows' liquidation prices), then ADL of the opposite side at the step's close (queue
  by the adapter's score, or pro-rata), the queue's overshoot to the insurance fund, what no winner covers to
  realised bad debt.
* **Horizon**: underwater margin pools at the final close, insurance-fund drawdown and depletion, the
  backstop's loss (deficits paid + the vault's positions marked at the final close).

Inputs are NamedTuples of arrays (:class:`KPerpVenues`, :class:`KPerpPositions`, :class:`KPerpOut`); the
cascade kernel (:mod:`optimizer.engine.kernel`) calls the hooks :func:`perp_start_path`,
:func:`perp_start_step` (written out at its call site), :func:`perp_round` (in each round, next to the lending
venues, at the round's starting market, unless :func:`perp_quiet`), :func:`perp_fund` (at each step's close,
with funding), :func:`perp_end_step` (when :func:`perp_adl_due`) and :func:`perp_end_path`.
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
#: the backstop unwind's per-venue state: the vault's result realised at its unwind fills, 1 while it holds
#: something to unwind, 1 when an unwind round is due in this step (set at the step's start); ``_STRESS_STEP``
#: the last step counted in ``stress_margin_steps`` (-1 at a path's start)
_VAULT_REAL, UNW_PENDING, UNW_DUE, _STRESS_STEP = 6, 7, 15, 16


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
    band_move: np.ndarray  # price band: the move that trips it (fraction)
    band_w: np.ndarray  # int64 its window in completed steps (0: no band)
    band_halt: np.ndarray  # its halt, s
    band_nm: np.ndarray  # int64 (VP, n_assets): the venue's markets whose mark is that asset (each trips on its own)
    stress_move: np.ndarray  # stress margin: the move that holds its condition (fraction)
    stress_w: np.ndarray  # int64 its window in completed steps (0: no stress margin)
    stress_nm: np.ndarray  # int64 (VP, n_assets): as band_nm, for the stress condition
    fund_rate: np.ndarray  # scenario funding: the rate per interval
    fund_interval_s: np.ndarray  # its interval, s (0: no funding)
    unwind_steps: np.ndarray  # int64 backstop_unwind_steps (0: the vault holds what it took over)


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
    lane_pos_s: np.ndarray  # with a stress margin: each lane's rows again, by their liquidation price under stress
    lane_lp_s: np.ndarray  # (empty without one); the stressed tier tables are rows K.. of floor / rate / ded
    lane_cap: np.ndarray  # (L, 2) the lowest mark at which a long row of the lane reaches a tier whose margin rises
    # at least as fast as its equity (rate x multiplier >= 1; +inf: none, and for shorts), at x1 and under stress


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
    price_band_trips: np.ndarray
    stress_margin_steps: np.ndarray
    perp_funding_paid_usd: np.ndarray
    perp_funding_received_usd: np.ndarray
    perp_funding_external_usd: np.ndarray
    backstop_unwound_base: np.ndarray


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
# per-chunk scratch: a few packed arrays (each array a call binds costs a reference count each way, and the
# round runs ~50 times a path, usually with nothing to do), rows' fields side by side (a liquidated row's
# state in two or three cache lines, not one line per field)
# ---------------------------------------------------------------------------------------------

#: ``rf`` (n, 12) float64 per row: inputs, then state (``R_BOUND``: the :func:`row_bound` of a touched lane row,
#: set whenever its size or margin changes)
R_SIDE, R_ENTRY, R_SIZE0, R_MARGIN0, R_FEE, R_SIZE, R_MARGIN, R_UNTIL, R_VSIZE, R_VPX, R_MARK, R_BOUND = range(12)
#: ``ri`` (n, 16) int32 per row: inputs, then flags (0 / 1); ``I_ORIG`` its index in :class:`KPerpPositions`,
#: ``I_WSLOT`` its slot in the ADL winners' order (``w_pos``, ``wf``)
(I_ROW, I_VENUE, I_ACCOUNT, I_POOL, I_MARK, I_TIER, I_WGROUP, I_TGROUP, I_XOF, I_LANE, I_CROSS, I_TOUCHED,
 I_LIQ, I_DIRTY, I_ORIG, I_WSLOT) = range(16)
#: ``wf`` (n, 4) float64 and ``wi`` (n, 4) int32 per slot of ``w_pos`` (the ADL winners, group by group): the
#: inputs the queue's scan reads, side by side in scan order (a group's candidates in consecutive cache lines,
#: not scattered over ``rf`` / ``ri``); ``wd`` (n,) uint8 per slot: ``I_DIRTY``'s copy (a row whose size and
#: margin are still ``WF_SIZE0`` / ``WF_MARGIN0`` unless set: every change of them marks the row dirty, and
#: :func:`perp_end_path` resets both)
WF_SIDE, WF_ENTRY, WF_SIZE0, WF_MARGIN0 = range(4)
WI_ORIG, WI_POOL, WI_TIER, WI_XOF = range(4)
#: ``li`` (5, n) int64 lists: touched rows, the round's rows, their routes, the waterfall's / ADL queue's order,
#: rows changed on this path
L_TLIST, L_BUF, L_ROUTE, L_ORDER, L_DLIST = range(5)
#: ``lf`` (5, n) float64 per entry of the round's list (mark, closed size, equity, requirement), ADL score
F_MARK, F_C, F_EQ, F_REQ, F_SCORE = range(5)
#: ``ln`` (L, 10) int64 per lane; ``N_*_S``: its stressed order (``lane_pos`` / ``lane_lp`` after the x1 orders),
#: ``N_STR`` 1 while its market is under stress
N_LO, N_HI, N_VENUE, N_MARK, N_LONG, N_PTR, N_LO_S, N_HI_S, N_PTR_S, N_STR = range(10)
#: ``vf`` (VP, 17) float64 per venue: state (:data:`_FUND` ...), then inputs, then :data:`UNW_DUE` and
#: :data:`_STRESS_STEP`
V_BFRAC, V_PTHR, V_PFRAC, V_COOL, V_FUND0, V_BACK0, V_UNW = range(8, 15)
#: ``vi`` (VP, 13) int64 per venue
(W_COL, W_LAG, W_ROUNDS0, W_ROUNDS, W_POLICY, W_SCORE, W_OFF_LO, W_OFF_HI, W_G_LO, W_G_HI, W_FLAG_EQ, W_OFFNEG,
 W_FEES_IN) = range(13)
#: ``xi`` (X, 4) int64 per cross account
X_LO, X_HI, X_ACC, X_VEN = range(4)
#: ``af`` (NA, 3) float64 per account; ``gf`` (G, 2) per ADL group; ``qf`` (n_assets, 2) per pool
A_COLL, A_COLL0, A_DELTA = range(3)
G_D, G_SEIZED = range(2)
Q_SELL, Q_BUY = range(2)
#: ``oa`` (VP, 21) float64: the ledger's perp sums of the path so far, added to :class:`KPerpOut` by
#: :func:`perp_flush` (every one of those ledger cells starts the path at 0 and only the perp hooks add to it,
#: so 0 + (0 + a + b ...) is the same float as 0 + a + b ...)
(O_LIQS, O_SEIZED, O_LONG, O_SHORT, O_SOLD, O_BOUGHT, O_REL, O_REAL, O_FEE, O_RET, O_TKO, O_DFC, O_TAKEN, O_INS,
 O_FIN, O_BPAID, O_CLOSED, O_ADLV, O_OVER, O_STEPS, O_RBAD, O_TRIPS, O_STRESS, O_FPAID, O_FRECV, O_FEXT,
 O_UNW) = range(27)
_N_OA = 27
#: positions in the scratch tuple (:func:`perp_scratch`); ``PS_NID``: the scratch's row of each row of
#: :class:`KPerpPositions`
PS_RF, PS_RI, PS_LI, PS_LF, PS_LANE_LP, PS_LN, PS_LTB, PS_VI, PS_XI, PS_AF, PS_GF, PS_CNT = 0, 1, 2, 3, 5, 6, 7, 9, 10, 17, 18, 20
PS_NID = 22
PS_WF, PS_WI, PS_WD = 23, 24, 25
#: ``halt`` (VP, n_assets) float64: until when the price band halts liquidations on the venue's market of that mark
#: asset (-inf: not halted)
PS_HALT = 26
#: ``soff`` (VP, n_assets) int64: the offset of the tier tables now in effect on the venue's market of that mark asset
#: (0: x1, K: the stressed tables); ``lcap`` (L, 2): ``KPerpPositions.lane_cap``
PS_SOFF, PS_LCAP = 27, 28
PS_VF = 8
#: ``lfund`` (L, 4) float64 per lane: ``LF_SHIFT`` how far funding can have moved an untouched row's liquidation
#: price from its sorted ``lane_lp`` on this path (:func:`perp_fund`), ``LF_COEF`` the lane's price move per
#: USD of funding per base unit; ``LF_SHIFT_S`` / ``LF_COEF_S`` the same for its stressed order (the stressed
#: tier tables' rates)
PS_LFUND = 29
LF_SHIFT, LF_COEF, LF_SHIFT_S, LF_COEF_S = 0, 1, 2, 3
#: ``uf`` (n, 2) float64 per row: the backstop unwind's signed base still to trade back, and its slice per step
PS_UNW = 30
U_LEFT, U_RATE = 0, 1


@njit(cache=True)
def perp_scratch(pv, pp, n_assets):
    """Scratch state and packed inputs of one chunk of paths (reset per path by :func:`perp_start_path` and
    :func:`perp_end_path`): the tuple (rf, ri, li, lf, lane_pos, lane_lp, ln, ltb, vf, vi, xi, x_rows, w_off,
    w_pos, floor, rate, ded, af, gf, qf, cnt, oa, nid, wf, wi, wd, halt, soff, lcap, lfund, uf) (columns: the
    ``R_`` / ``I_`` / ... constants).

    The scratch numbers the rows in lane order (lane by lane, each by liquidation price; then the rows in no
    lane, in book order): the round's pointer sweep reads consecutive rows, not rows scattered over the book.
    ``nid`` maps a row of :class:`KPerpPositions` to its scratch row, ``ri[:, I_ORIG]`` back; what depends on
    book order (the waterfall's order, the ADL queue's ties, pro-rata's sums, the account counts) reads
    ``I_ORIG`` or walks the book through ``nid``."""
    n = pp.row.shape[0]
    n_v = pv.col.shape[0]
    n_g = pv.goff[n_v] if n_v > 0 else 0
    n_l = pp.lane_off.shape[0] - 1
    n_x = pp.x_account.shape[0]
    n_a = pp.coll0.shape[0]
    rf = np.zeros((n, 12))
    ri = np.zeros((n, 16), np.int32)  # int32: a row's fields in 64 bytes
    nid = np.empty(n, np.int64)
    in_lane = np.zeros(n, np.bool_)
    n_in = pp.lane_pos.shape[0]
    for p in range(n_in):
        nid[pp.lane_pos[p]] = p
        in_lane[pp.lane_pos[p]] = True
    m = n_in
    for o in range(n):
        if not in_lane[o]:
            nid[o] = m
            m += 1
    wf = np.zeros((n, 4))
    wi = np.zeros((n, 4), np.int32)  # as ri
    wslot = np.empty(n, np.int64)
    for w in range(pp.w_pos.shape[0]):
        o = pp.w_pos[w]
        wslot[o] = w
        wf[w, WF_SIDE] = pp.side[o]
        wf[w, WF_ENTRY] = pp.entry[o]
        wf[w, WF_SIZE0] = pp.size0[o]
        wf[w, WF_MARGIN0] = pp.margin0[o]
        wi[w, WI_ORIG] = o
        wi[w, WI_POOL] = pp.pool[o]
        wi[w, WI_TIER] = pp.tier[o]
        wi[w, WI_XOF] = pp.x_of[o]
    for o in range(n):
        i = nid[o]
        ri[i, I_ORIG] = o
        ri[i, I_WSLOT] = wslot[o]
        rf[i, R_SIDE] = pp.side[o]
        rf[i, R_ENTRY] = pp.entry[o]
        rf[i, R_SIZE0] = pp.size0[o]
        rf[i, R_MARGIN0] = pp.margin0[o]
        rf[i, R_FEE] = pp.fee_rate[o]
        rf[i, R_SIZE] = pp.size0[o]
        rf[i, R_MARGIN] = pp.margin0[o]
        rf[i, R_UNTIL] = -np.inf
        ri[i, I_ROW] = pp.row[o]
        ri[i, I_VENUE] = pp.venue[o]
        ri[i, I_ACCOUNT] = pp.account[o]
        ri[i, I_POOL] = pp.pool[o]
        ri[i, I_MARK] = pp.mark_asset[o]
        ri[i, I_TIER] = pp.tier[o]
        ri[i, I_WGROUP] = pp.wgroup[o]
        ri[i, I_TGROUP] = pp.tgroup[o]
        ri[i, I_XOF] = pp.x_of[o]
        ri[i, I_LANE] = -1
        ri[i, I_CROSS] = 1 if pp.cross[o] else 0
    ln = np.zeros((n_l, 10), np.int64)
    ltb = np.empty(n_l)
    n_s = pp.lane_pos_s.shape[0]  # the stressed orders follow the x1 ones in lane_pos / lane_lp
    k_s = pp.floor.shape[0] // 2  # and the stressed tier tables the x1 ones
    lfund = np.zeros((n_l, 4))
    for lane in range(n_l):
        ln[lane, N_LO] = pp.lane_off[lane]
        ln[lane, N_HI] = pp.lane_off[lane + 1]
        ln[lane, N_VENUE] = pp.lane_venue[lane]
        ln[lane, N_MARK] = pp.lane_mark[lane]
        ln[lane, N_LONG] = 1 if pp.lane_long[lane] else 0
        ln[lane, N_PTR] = pp.lane_off[lane]
        if n_s > 0:
            ln[lane, N_LO_S] = n_in + pp.lane_off[lane]
            ln[lane, N_HI_S] = n_in + pp.lane_off[lane + 1]
            ln[lane, N_PTR_S] = n_in + pp.lane_off[lane]
        ltb[lane] = -np.inf if pp.lane_long[lane] else np.inf
        # funding of u USD per base unit moves a row's liquidation price by at most u / (1 - largest rate) for a
        # long, u / (1 + smallest rate) for a short, over the tiers its table can select (perp_fund)
        # (LF_COEF_S: the same over the stressed tables, rows k_s.. of the tier tables)
        r_ext = -np.inf if pp.lane_long[lane] else np.inf
        r_ext_s = r_ext
        for p in range(pp.lane_off[lane], pp.lane_off[lane + 1]):
            ri[p, I_LANE] = lane
            kt = pp.tier[pp.lane_pos[p]]
            for c in range(pp.floor.shape[1]):
                if c > 0 and pp.floor[kt, c] == np.inf:  # a padding column: never selected
                    continue
                r_ext = max(r_ext, pp.rate[kt, c]) if pp.lane_long[lane] else min(r_ext, pp.rate[kt, c])
                if n_s > 0:
                    r_s = pp.rate[kt + k_s, c]
                    r_ext_s = max(r_ext_s, r_s) if pp.lane_long[lane] else min(r_ext_s, r_s)
        den = 1.0 - r_ext if pp.lane_long[lane] else 1.0 + r_ext
        lfund[lane, LF_COEF] = 1.0 / den if den > 0.0 else np.inf
        den = 1.0 - r_ext_s if pp.lane_long[lane] else 1.0 + r_ext_s
        lfund[lane, LF_COEF_S] = 1.0 / den if den > 0.0 else np.inf
    vf = np.zeros((n_v, 17))
    vi = np.zeros((n_v, 13), np.int64)
    for v in range(n_v):
        vf[v, V_BFRAC] = pv.backstop_frac[v]
        vf[v, V_PTHR] = pv.partial_thr[v]
        vf[v, V_PFRAC] = pv.partial_frac[v]
        vf[v, V_COOL] = pv.cooldown_s[v]
        vf[v, V_FUND0] = pv.fund0[v]
        vf[v, V_BACK0] = pv.backstop0[v]
        vf[v, V_UNW] = pv.unwind_steps[v]
        vi[v, W_COL] = pv.col[v]
        vi[v, W_LAG] = pv.lag[v]
        vi[v, W_ROUNDS0] = pv.rounds[v]
        vi[v, W_POLICY] = pv.policy[v]
        vi[v, W_SCORE] = pv.score[v]
        vi[v, W_OFF_LO] = pv.off[v]
        vi[v, W_OFF_HI] = pv.off[v + 1]
        vi[v, W_G_LO] = pv.goff[v]
        vi[v, W_G_HI] = pv.goff[v + 1]
        vi[v, W_FLAG_EQ] = 1 if pv.flag_eq[v] else 0
        vi[v, W_OFFNEG] = 1 if pv.offset_neg[v] else 0
        vi[v, W_FEES_IN] = 1 if pv.fees_to_fund[v] else 0
    xi = np.zeros((n_x, 4), np.int64)
    for x in range(n_x):
        xi[x, X_LO] = pp.x_off[x]
        xi[x, X_HI] = pp.x_off[x + 1]
        xi[x, X_ACC] = pp.x_account[x]
        xi[x, X_VEN] = pp.x_venue[x]
    af = np.zeros((n_a, 3))
    for a in range(n_a):
        af[a, A_COLL] = pp.coll0[a]
        af[a, A_COLL0] = pp.coll0[a]
    lane_pos = np.arange(n_in)
    lane_lp = pp.lane_lp
    if n_s > 0:
        lane_pos = np.concatenate((lane_pos, nid[pp.lane_pos_s]))
        lane_lp = np.concatenate((lane_lp, pp.lane_lp_s))
    return (rf, ri, np.zeros((5, n), np.int64), np.zeros((5, n)), lane_pos, lane_lp, ln, ltb, vf, vi, xi,
            nid[pp.x_rows], pp.w_off, nid[pp.w_pos], pp.floor, pp.rate, pp.ded, af, np.zeros((max(n_g, 1), 2)),
            np.zeros((n_assets, 2)), np.zeros(4, np.int64), np.zeros((n_v, _N_OA)), nid, wf, wi, np.zeros(n, np.uint8),
            np.full((n_v, n_assets), -np.inf), np.zeros((n_v, n_assets), np.int64), pp.lane_cap, lfund, np.zeros((n, 2)))


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
def touched_bounds(li, cnt, rf, ri, ln, ltb):
    """Per lane, the bound (:func:`row_bound`, kept per row in ``R_BOUND``) of its open touched rows (largest for
    longs, smallest for shorts), for :func:`perp_quiet`; ``cnt[2]`` counts open touched rows in no lane (then no
    round is quiet). Called whenever touched rows changed (a round that settled, an ADL step)."""
    for lane in range(ltb.shape[0]):
        ltb[lane] = -np.inf if ln[lane, N_LONG] != 0 else np.inf
    cnt[2] = 0
    for q in range(cnt[0]):
        i = li[L_TLIST, q]
        if not rf[i, R_SIZE] > 0.0:
            continue
        lane = ri[i, I_LANE]
        if lane < 0:
            cnt[2] += 1
            continue
        b = rf[i, R_BOUND]
        if ln[lane, N_LONG] != 0:
            ltb[lane] = max(ltb[lane], b)
        else:
            ltb[lane] = min(ltb[lane], b)


@njit(cache=True)
def perp_start_path(ps):
    """Per-venue state, lane pointers and the path's sums back to the start (rows are reset by
    :func:`perp_end_path`)."""
    ln, vf, cnt, oa, halt, soff, lfund = ps[6], ps[8], ps[20], ps[21], ps[PS_HALT], ps[PS_SOFF], ps[PS_LFUND]
    lfund[:, LF_SHIFT] = 0.0
    lfund[:, LF_SHIFT_S] = 0.0
    cnt[0] = 0
    cnt[1] = 0
    cnt[3] = 0
    halt[:] = -np.inf
    soff[:] = 0
    for v in range(vf.shape[0]):
        vf[v, _FUND] = vf[v, V_FUND0]
        vf[v, _FUND_MIN] = vf[v, V_FUND0]
        vf[v, _BACKSTOP] = vf[v, V_BACK0]
        for x in range(3, 8):
            vf[v, x] = 0.0
        vf[v, UNW_DUE] = 0.0
        vf[v, _STRESS_STEP] = -1.0  # no step counted yet on this path
        for x in range(oa.shape[1]):
            oa[v, x] = 0.0
    for lane in range(ln.shape[0]):
        ln[lane, N_PTR] = ln[lane, N_LO]
        ln[lane, N_PTR_S] = ln[lane, N_LO_S]
        ln[lane, N_STR] = 0


@njit(cache=True)
def perp_start_step(ps):
    vi = ps[9]
    for v in range(vi.shape[0]):
        vi[v, W_ROUNDS] = vi[v, W_ROUNDS0]


@njit(cache=True)
def perp_flush(k, po, ps):
    """Adds the path's perp sums so far to the ledger row ``k`` and clears them (:func:`perp_end_path` calls it)."""
    vi, oa = ps[9], ps[21]
    for v in range(vi.shape[0]):
        j = vi[v, W_COL]
        po.liquidations[k, j] += oa[v, O_LIQS]
        po.collateral_seized_usd[k, j] += oa[v, O_SEIZED]
        po.perp_liquidated_long_usd[k, j] += oa[v, O_LONG]
        po.perp_liquidated_short_usd[k, j] += oa[v, O_SHORT]
        po.perp_market_sold_base[k, j] += oa[v, O_SOLD]
        po.perp_market_bought_base[k, j] += oa[v, O_BOUGHT]
        po.perp_margin_released_usd[k, j] += oa[v, O_REL]
        po.perp_realized_pnl_usd[k, j] += oa[v, O_REAL]
        po.perp_fee_usd[k, j] += oa[v, O_FEE]
        po.perp_returned_to_owner_usd[k, j] += oa[v, O_RET]
        po.perp_backstop_takeover_usd[k, j] += oa[v, O_TKO]
        po.perp_deficit_usd[k, j] += oa[v, O_DFC]
        po.backstop_taken_base[k, j] += oa[v, O_TAKEN]
        po.insurance_fund_paid_usd[k, j] += oa[v, O_INS]
        po.insurance_fee_income_usd[k, j] += oa[v, O_FIN]
        po.backstop_paid_usd[k, j] += oa[v, O_BPAID]
        po.adl_closed_notional_usd[k, j] += oa[v, O_CLOSED]
        po.adl_volume_usd[k, j] += oa[v, O_ADLV]
        po.adl_overshoot_usd[k, j] += oa[v, O_OVER]
        po.adl_steps[k, j] += oa[v, O_STEPS]
        po.realised_bad_debt_usd[k, j] += oa[v, O_RBAD]
        po.price_band_trips[k, j] += oa[v, O_TRIPS]
        po.stress_margin_steps[k, j] += oa[v, O_STRESS]
        po.perp_funding_paid_usd[k, j] += oa[v, O_FPAID]
        po.perp_funding_received_usd[k, j] += oa[v, O_FRECV]
        po.perp_funding_external_usd[k, j] += oa[v, O_FEXT]
        po.backstop_unwound_base[k, j] += oa[v, O_UNW]
        for x in range(oa.shape[1]):
            oa[v, x] = 0.0


# ---------------------------------------------------------------------------------------------
# one round
# ---------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def market_moved(t, a, w, move, lag, mkt_low, mkt_high, hist):
    """``PerpVenue.moved`` for the market of mark asset ``a``: its oracle low is more than ``move`` below, or its
    oracle high more than ``move`` above, a market close of the ``w`` completed steps before step ``t``."""
    hi = -np.inf
    lo = np.inf
    for s in range(max(t - w, 0), t):
        hi = max(hi, hist[s, a])
        lo = min(lo, hist[s, a])
    o_lo = hist[max(t - lag, 0), a] if lag > 0 else mkt_low[a]
    o_hi = hist[max(t - lag, 0), a] if lag > 0 else mkt_high[a]
    return o_lo < (1.0 - move) * hi or o_hi > (1.0 + move) * lo


@njit(cache=True)
def perp_band(t, now_s, pv, ps, mkt_low, mkt_high, hist):
    """The price band of each perp venue that has one, at the round's starting market (``PerpVenue.band_allows``,
    every round in which the venue still has a pass left, whether or not anything is liquidatable): a market
    not halted whose oracle low is more than the move below, or whose oracle high more than the move above, a
    market close of the window's completed steps trips, halting its liquidations until ``now + halt``; each
    trip counts once per venue market with that mark."""
    vi, oa, halt = ps[9], ps[21], ps[PS_HALT]
    for v in range(vi.shape[0]):
        w = pv.band_w[v]
        if w <= 0 or vi[v, W_ROUNDS] <= 0:
            continue
        lag = vi[v, W_LAG]
        move = pv.band_move[v]
        for a in range(halt.shape[1]):
            nm = pv.band_nm[v, a]
            if nm == 0 or not now_s >= halt[v, a]:
                continue
            if market_moved(t, a, w, move, lag, mkt_low, mkt_high, hist):
                halt[v, a] = now_s + pv.band_halt[v]
                oa[v, O_TRIPS] += nm


@njit(cache=True)
def perp_stress(t, pv, ps, mkt_low, mkt_high, hist):
    """The stress margin of each perp venue that has one, at the round's starting market (``PerpVenue.round_adapter``,
    every round in which the venue still has a pass left): each venue market that moved (the band's measure, over
    the stress window) reads the stressed tier tables this round (``with_margin_multiplier``: rate x k and
    deduction x k, every tier), the others the venue's; ``stress_margin_steps`` counts the step once, at its first
    round with a market under stress."""
    ln, vf, vi, oa, soff = ps[6], ps[8], ps[9], ps[21], ps[PS_SOFF]
    k_s = ps[14].shape[0] // 2  # the stressed tables follow the x1 ones
    for v in range(vi.shape[0]):
        w = pv.stress_w[v]
        if w <= 0 or vi[v, W_ROUNDS] <= 0:
            continue
        lag = vi[v, W_LAG]
        move = pv.stress_move[v]
        stressed = False
        for a in range(soff.shape[1]):
            if pv.stress_nm[v, a] == 0:
                continue
            on = market_moved(t, a, w, move, lag, mkt_low, mkt_high, hist)
            soff[v, a] = k_s if on else 0
            stressed = stressed or on
        if stressed and vf[v, _STRESS_STEP] != t:
            vf[v, _STRESS_STEP] = t
            oa[v, O_STRESS] += 1.0
        for lane in range(ln.shape[0]):
            if ln[lane, N_VENUE] == v:
                ln[lane, N_STR] = 1 if soff[v, ln[lane, N_MARK]] != 0 else 0


@njit(cache=True)
def perp_quiet(t, ln, lane_lp, vi, n_x, cnt, mkt_low, mkt_high, hist, ltb, lcap, lfund):
    """True when :func:`perp_round` cannot liquidate anything this round: no cross accounts, no lane's mark
    reached the liquidation price at its pointer (where the lane sweep would stop), widened by the lane's funding
    shift (``lfund``), nor the bound of its touched rows (``ltb``, :func:`touched_bounds`; every touched row is
    still confirmed exactly by the round), nor its ``lcap``. A lane under stress reads its stressed order, pointer
    and funding shift; its touched rows have no bound at the stressed margin (``ltb`` is at x1), so with touched
    rows such a round is not quiet. O(lanes).

    The cascade kernel asks this before each round with the few arrays it reads; ``cnt[3]`` counts the venues
    whose backstop unwind is due (never quiet then)."""
    if cnt[2] > 0 or n_x > 0 or cnt[3] > 0:
        return False
    for lane in range(ln.shape[0]):
        v = ln[lane, N_VENUE]
        if vi[v, W_ROUNDS] <= 0:
            continue
        a = ln[lane, N_MARK]
        long_ = ln[lane, N_LONG] != 0
        lag = vi[v, W_LAG]
        mk = hist[max(t - lag, 0), a] if lag > 0 else (mkt_low[a] if long_ else mkt_high[a])
        st = ln[lane, N_STR]
        if st != 0:
            if cnt[0] > 0:
                return False
            p, end = ln[lane, N_PTR_S], ln[lane, N_HI_S]
        else:
            tb = ltb[lane]
            if long_:
                if tb > mk * (1.0 - LP_TOL):
                    return False
            elif tb < mk * (1.0 + LP_TOL):
                return False
            p, end = ln[lane, N_PTR], ln[lane, N_HI]
        if long_ and mk >= lcap[lane, st] * (1.0 - LP_TOL):
            return False
        if p >= end:
            continue
        lp = lane_lp[p]
        sh = lfund[lane, LF_SHIFT_S if st != 0 else LF_SHIFT]
        if long_:
            if lp > mk * (1.0 - LP_TOL) - sh:
                return False
        elif lp < mk * (1.0 + LP_TOL) + sh:
            return False
    return True


@njit(cache=True, inline="always")
def pool_fills(qf, liq, flow, exo_low, exo_high):
    """Each pool's aggregate sell and buy orders of the round (``qf`` base units, ``Q_SELL`` / ``Q_BUY``) become
    their average fills, USD per base unit, through the pool's impact law from its state at the round's start
    (``PerpVenue.fill_prices``): the liquidation orders and the backstop unwind trade through it."""
    for a in range(qf.shape[0]):
        qs = qf[a, Q_SELL]
        if qs > 0.0:
            qf[a, Q_SELL] = proceeds_usd(liq, a, flow[a], qs, exo_low[a]) / qs
        qb = qf[a, Q_BUY]
        if qb > 0.0:
            qf[a, Q_BUY] = purchase_usd(liq, a, flow[a], qb, exo_high[a]) / qb


@njit(cache=True)
def perp_round(path, k, t, now_s, ps, mkt_low, mkt_high, hist, exo_low, exo_high, liq, flow, round_sales, ev, ev_n,
               ev_cap):
    """Every perp venue's liquidation pass at the round's starting market (``flow`` the pools' state at the
    round's start), or its backstop unwind (:func:`_unwind`) where one is due; adds the round's market orders to
    ``round_sales``. Returns 2 when anything was liquidated, 1 when only an unwind traded, else 0."""
    (rf, ri, li, lf, lane_pos, lane_lp, ln, ltb, vf, vi, xi, x_rows, _w_off, _w_pos, floor, rate, ded, af, gf, qf,
     cnt, oa, _nid, _wf, _wi, wd, halt, soff, lcap, lfund, uf) = ps
    n_x = xi.shape[0]
    n_pools = qf.shape[0]
    # closed rows leave the touched list (a partial close is usually finished in the next round)
    keep = 0
    for q in range(cnt[0]):
        i = li[L_TLIST, q]
        if rf[i, R_SIZE] > 0.0:
            li[L_TLIST, keep] = i
            keep += 1
        else:
            ri[i, I_TOUCHED] = 0
    cnt[0] = keep
    any_liq = False
    unwound = False
    for v in range(vi.shape[0]):
        if vf[v, UNW_DUE] != 0.0:  # the step's first round is the vault's unwind, not a liquidation pass
            vf[v, UNW_DUE] = 0.0
            cnt[3] -= 1
            unwound = _unwind(v, ps, flow, exo_low, exo_high, liq, round_sales) or unwound
            continue
        if vi[v, W_ROUNDS] <= 0:
            continue
        j = vi[v, W_COL]
        lag = vi[v, W_LAG]
        flag_eq = vi[v, W_FLAG_EQ] != 0
        nb = 0
        # ---- who: lanes of isolated rows (pointer sweep), touched rows, cross accounts
        for lane in range(ln.shape[0]):
            if ln[lane, N_VENUE] != v:
                continue
            a = ln[lane, N_MARK]
            if now_s < halt[v, a]:  # the price band halts its market's liquidations
                continue
            long_ = ln[lane, N_LONG] != 0
            mk = hist[max(t - lag, 0), a] if lag > 0 else (mkt_low[a] if long_ else mkt_high[a])
            st = ln[lane, N_STR]  # under stress: the stressed order, its pointer and tier tables
            c_ptr = N_PTR_S if st != 0 else N_PTR
            so = soff[v, a]
            # a row funding moved is still a candidate (its lane_lp within the lane's shift of the mark)
            sh = lfund[lane, LF_SHIFT_S if st != 0 else LF_SHIFT]
            thr = mk * (1.0 - LP_TOL) - sh if long_ else mk * (1.0 + LP_TOL) + sh
            # a long mark that reaches a tier where the margin outruns equity: every row of the lane is tested
            full = long_ and mk >= lcap[lane, st] * (1.0 - LP_TOL)
            p = ln[lane, c_ptr]
            advance = True
            end = ln[lane, N_HI_S] if st != 0 else ln[lane, N_HI]
            while p < end:
                lp = lane_lp[p]
                if (long_ and not lp > thr) or (not long_ and not lp < thr):
                    if not full:
                        break
                    advance = False
                i = lane_pos[p]
                q_i = rf[i, R_SIZE]
                if q_i > 0.0 and ri[i, I_TOUCHED] == 0:
                    eq = rf[i, R_MARGIN] + (rf[i, R_SIDE] * q_i * (mk - rf[i, R_ENTRY]) - 0.0)
                    req = maintenance_usd(floor, rate, ded, ri[i, I_TIER] + so, q_i * mk)
                    if flagged(eq, req, flag_eq):
                        li[L_BUF, nb] = i
                        lf[F_MARK, nb] = mk
                        lf[F_EQ, nb] = eq
                        lf[F_REQ, nb] = req
                        nb += 1
                    else:
                        advance = False  # within the slack, not (yet) liquidatable: stays a candidate
                if advance:
                    ln[lane, c_ptr] = p + 1
                p += 1
        for q in range(cnt[0]):
            i = li[L_TLIST, q]
            q_i = rf[i, R_SIZE]
            if ri[i, I_VENUE] != v or q_i <= 0.0 or ri[i, I_CROSS] != 0:
                continue
            a = ri[i, I_MARK]
            if now_s < halt[v, a]:
                continue
            s_i = rf[i, R_SIDE]
            if lag > 0:
                mk = hist[max(t - lag, 0), a]
            else:
                mk = mkt_low[a] if s_i > 0.0 else mkt_high[a]
            so = soff[v, a]
            if ri[i, I_LANE] >= 0 and so == 0:  # beyond its x1 bound (perp_quiet's test, row by row): not liquidatable
                if s_i > 0.0:
                    if not rf[i, R_BOUND] > mk * (1.0 - LP_TOL):
                        continue
                elif not rf[i, R_BOUND] < mk * (1.0 + LP_TOL):
                    continue
            eq = rf[i, R_MARGIN] + (s_i * q_i * (mk - rf[i, R_ENTRY]) - 0.0)
            req = maintenance_usd(floor, rate, ded, ri[i, I_TIER] + so, q_i * mk)
            if flagged(eq, req, flag_eq):
                li[L_BUF, nb] = i
                lf[F_MARK, nb] = mk
                lf[F_EQ, nb] = eq
                lf[F_REQ, nb] = req
                nb += 1
        for x in range(n_x):
            if xi[x, X_VEN] != v:
                continue
            if now_s < halt[v, ri[x_rows[xi[x, X_LO]], I_MARK]]:  # (with a band: its rows on one market)
                continue
            upnl = 0.0
            mm = 0.0
            n_open = 0
            for r in range(xi[x, X_LO], xi[x, X_HI]):
                i = x_rows[r]
                a = ri[i, I_MARK]
                s_i = rf[i, R_SIDE]
                if lag > 0:
                    mk = hist[max(t - lag, 0), a]
                else:
                    mk = mkt_low[a] if s_i > 0.0 else mkt_high[a]
                rf[i, R_MARK] = mk
                q_i = rf[i, R_SIZE]
                upnl += s_i * q_i * (mk - rf[i, R_ENTRY]) - 0.0
                if q_i > 0.0:
                    mm += maintenance_usd(floor, rate, ded, ri[i, I_TIER] + soff[v, a], q_i * mk)
                    n_open += 1
            if n_open == 0:
                continue
            eq = af[xi[x, X_ACC], A_COLL] + upnl
            if flagged(eq, mm, flag_eq):
                for r in range(xi[x, X_LO], xi[x, X_HI]):
                    i = x_rows[r]
                    if rf[i, R_SIZE] > 0.0:
                        li[L_BUF, nb] = i
                        lf[F_MARK, nb] = rf[i, R_MARK]
                        lf[F_EQ, nb] = eq
                        lf[F_REQ, nb] = mm
                        nb += 1
        if nb == 0:
            continue
        # ---- routes and sizes; the round's market orders per pool
        for a in range(n_pools):
            qf[a, Q_SELL] = 0.0
            qf[a, Q_BUY] = 0.0
        offset_neg, bfrac, pthr, pfrac = vi[v, W_OFFNEG] != 0, vf[v, V_BFRAC], vf[v, V_PTHR], vf[v, V_PFRAC]
        for b in range(nb):
            i = li[L_BUF, b]
            r = route_of(lf[F_EQ, b], lf[F_REQ, b], offset_neg, bfrac)
            q_i = rf[i, R_SIZE]
            c = q_i
            if r == 0 and q_i * lf[F_MARK, b] > pthr and now_s >= rf[i, R_UNTIL]:
                c = min(pfrac * q_i, q_i)
            li[L_ROUTE, b] = r
            lf[F_C, b] = c
            if r == 0:
                if rf[i, R_SIDE] > 0.0:
                    qf[ri[i, I_POOL], Q_SELL] += c
                else:
                    qf[ri[i, I_POOL], Q_BUY] += c
        pool_fills(qf, liq, flow, exo_low, exo_high)
        # ---- settle (every row against the book as it was at the round's start); the path's running sums in
        # locals, added in the same order as one += per row
        vi[v, W_ROUNDS] -= 1
        any_liq = True
        cool = vf[v, V_COOL]
        s_liqs, s_seized, s_long, s_short = oa[v, O_LIQS], oa[v, O_SEIZED], oa[v, O_LONG], oa[v, O_SHORT]
        s_sold, s_bought, s_rel, s_real = oa[v, O_SOLD], oa[v, O_BOUGHT], oa[v, O_REL], oa[v, O_REAL]
        s_fee, s_ret, s_tko, s_dfc = oa[v, O_FEE], oa[v, O_RET], oa[v, O_TKO], oa[v, O_DFC]
        s_taken, s_vtko = oa[v, O_TAKEN], vf[v, _TAKEOVER]
        for b in range(nb):
            i = li[L_BUF, b]
            mk = lf[F_MARK, b]
            r = li[L_ROUTE, b]
            c = lf[F_C, b]
            b_eq = lf[F_EQ, b]
            b_req = lf[F_REQ, b]
            s_i = rf[i, R_SIDE]
            q_i = rf[i, R_SIZE]
            pool_i = ri[i, I_POOL]
            cross_i = ri[i, I_CROSS] != 0
            fill = mk
            if r == 0:  # the average fill of its side's aggregate order in its pool
                fill = qf[pool_i, Q_SELL] if s_i > 0.0 else qf[pool_i, Q_BUY]
            fee_cap = rf[i, R_FEE] * q_i * fill
            left = q_i - c
            if not cross_i and left == 0.0:  # an isolated row closed whole releases all of its equity
                share = 1.0
            else:  # the maintenance requirement the closed part releases, at the mark (this round's tables)
                kt = ri[i, I_TIER] + soff[v, ri[i, I_MARK]]
                mm_before = maintenance_usd(floor, rate, ded, kt, q_i * mk) if q_i > 0.0 else 0.0
                mm_after = maintenance_usd(floor, rate, ded, kt, left * mk) if left > 0.0 else 0.0
                share = (mm_before - mm_after) / b_req
            left, rel, real, fee, ret, tko, dfc, new_m, to_acc = settle_row(
                s_i, q_i, rf[i, R_ENTRY], rf[i, R_MARGIN], cross_i, mk, fill, c, r, b_eq, b_req, fee_cap, share)
            if r == 0 and left > 0.0 and cool > 0.0:
                rf[i, R_UNTIL] = now_s + cool
            closed_usd = c * mk
            if r == 1:
                rf[i, R_VSIZE] += s_i * c
                rf[i, R_VPX] = mk
                s_vtko += tko
                s_taken += c
                if vf[v, V_UNW] > 0.0:  # the vault trades it back in V_UNW slices, from the next step
                    uf[i, U_LEFT] += s_i * c
                    uf[i, U_RATE] = uf[i, U_LEFT] / vf[v, V_UNW]
                    vf[v, UNW_PENDING] = 1.0
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
                round_sales[pool_i] += s_i * c
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
                    ev[e].position = ri[i, I_ROW]
                    ev[e].collateral = -1
                    ev[e].debt_repaid_usd = closed_usd
                    ev[e].collateral_seized_usd = rel
                    ev[e].bonus_usd = 0.0
                    ev[e].protocol_fee_usd = fee
                    ev[e].bad_debt_usd = dfc
                    ev[e].price = mk if r != 0 else fill
                ev_n[0] = e + 1
            # the waterfall's inputs of this row (its loss, margin used, fee income, eligibility)
            lf[F_EQ, b] = real
            lf[F_REQ, b] = dfc
            lf[F_MARK, b] = fee
            rf[i, R_SIZE] = left
            rf[i, R_MARGIN] = new_m
            if left > 0.0 and ri[i, I_LANE] >= 0:  # its bound for touched_bounds, at its state after the round
                rf[i, R_BOUND] = row_bound(s_i, left, new_m, rf[i, R_ENTRY], floor, rate, ded, ri[i, I_TIER])
            af[ri[i, I_ACCOUNT], A_DELTA] += to_acc
            ri[i, I_LIQ] = 1
            if ri[i, I_DIRTY] == 0:  # rows whose state changed on this path
                ri[i, I_DIRTY] = 1
                wd[ri[i, I_WSLOT]] = 1
                li[L_DLIST, cnt[1]] = i
                cnt[1] += 1
            if left > 0.0 and ri[i, I_TOUCHED] == 0:
                ri[i, I_TOUCHED] = 1
                li[L_TLIST, cnt[0]] = i
                cnt[0] += 1
        oa[v, O_LIQS], oa[v, O_SEIZED], oa[v, O_LONG], oa[v, O_SHORT] = s_liqs, s_seized, s_long, s_short
        oa[v, O_SOLD], oa[v, O_BOUGHT], oa[v, O_REL], oa[v, O_REAL] = s_sold, s_bought, s_rel, s_real
        oa[v, O_FEE], oa[v, O_RET], oa[v, O_TKO], oa[v, O_DFC] = s_fee, s_ret, s_tko, s_dfc
        oa[v, O_TAKEN] = s_taken
        vf[v, _TAKEOVER] = s_vtko
        for b in range(nb):
            a = ri[li[L_BUF, b], I_ACCOUNT]
            if af[a, A_DELTA] != 0.0:
                af[a, A_COLL] = af[a, A_COLL] + af[a, A_DELTA]
                af[a, A_DELTA] = 0.0
        ins_sum, fee_sum, back_sum = _waterfall(v, nb, li, lf, ri, vi[v, W_FEES_IN] != 0, vf, gf)
        oa[v, O_INS] += ins_sum
        oa[v, O_FIN] += fee_sum
        oa[v, O_BPAID] += back_sum
    touched_bounds(li, cnt, rf, ri, ln, ltb)
    return 2 if any_liq else (1 if unwound else 0)


@njit(cache=True)
def _unwind(v, ps, flow, exo_low, exo_high, liq, round_sales):
    """``PerpVenue._unwind_round`` of venue ``v``: each row the vault holds trades back its slice (``U_RATE``, or
    what is left when less) into its pool, every pool's sells and buys together at the average fill of the
    aggregate order from the pool's state at the round's start; the vault's result realises at those fills.
    The rows it holds are rows this path changed (a takeover liquidated them). True when anything traded."""
    rf, ri, li, lf, vf, qf, cnt, oa, uf = ps[0], ps[1], ps[2], ps[3], ps[8], ps[19], ps[20], ps[21], ps[PS_UNW]
    n_pools = qf.shape[0]
    for a in range(n_pools):
        qf[a, Q_SELL] = 0.0
        qf[a, Q_BUY] = 0.0
    nb = 0
    for q in range(cnt[1]):
        i = li[L_DLIST, q]
        left = uf[i, U_LEFT]
        if ri[i, I_VENUE] != v or left == 0.0:
            continue
        u_rate = uf[i, U_RATE]
        amt = u_rate if abs(u_rate) < abs(left) else left
        if amt == 0.0:
            continue
        li[L_BUF, nb] = i
        lf[F_C, nb] = amt
        nb += 1
        if amt > 0.0:
            qf[ri[i, I_POOL], Q_SELL] += amt
        else:
            qf[ri[i, I_POOL], Q_BUY] += -amt
    if nb == 0:
        vf[v, UNW_PENDING] = 0.0
        return False
    pool_fills(qf, liq, flow, exo_low, exo_high)
    real = 0.0
    moved = 0.0
    pending = 0.0
    for b in range(nb):
        i = li[L_BUF, b]
        amt = lf[F_C, b]
        pool_i = ri[i, I_POOL]
        fill = qf[pool_i, Q_SELL] if rf[i, R_SIDE] > 0.0 else qf[pool_i, Q_BUY]
        uf[i, U_LEFT] = uf[i, U_LEFT] - amt
        rf[i, R_VSIZE] = rf[i, R_VSIZE] - amt
        real += amt * (fill - rf[i, R_VPX])
        moved += abs(amt)
        round_sales[pool_i] += amt
        if uf[i, U_LEFT] != 0.0:
            pending = 1.0
    vf[v, _VAULT_REAL] += real
    vf[v, UNW_PENDING] = pending
    oa[v, O_UNW] += moved
    return True


@njit(cache=True)
def _waterfall(v, nb, li, lf, ri, fees_in, vf, gf):
    """``waterfall_of`` of one round, in book order (the same running sums as ``loss_waterfall``); returns the
    round's (insurance paid, fee income, backstop paid). The round's list: rows ``li[L_BUF]``, realised PnL
    ``lf[F_EQ]``, deficit ``lf[F_REQ]``, fee ``lf[F_MARK]``, route ``li[L_ROUTE]``.

    Only rows with a loss beyond their margin (``dw > 0``) or a fee into the fund change a running sum: a row
    with neither adds +0.0 to ``cum``, ``used``, ``d_grp`` and the three sums (all >= +0.0, so bit-unchanged),
    leaves ``running`` and ``low`` as they were and so ``before = running - low`` as the previous row set it
    (``fund`` itself when first: ``fund >= 0``), and draws 0. So those rows are dropped and only the others are
    put in book order (usually none or a few: no sort of the whole round)."""
    na = 0
    for b in range(nb):
        dfc = lf[F_REQ, b]
        margin_used = max(-lf[F_EQ, b] - dfc, 0.0)
        loss = max(margin_used + dfc, 0.0)
        fee = max(lf[F_MARK, b], 0.0) if fees_in else 0.0
        dw = loss - min(loss, max(margin_used, 0.0))
        if dw != 0.0 or fee != 0.0 or dw != dw or fee != fee:
            li[L_ORDER, na] = ri[li[L_BUF, b], I_ORIG] * nb + b  # book order, then the round's index (rows distinct)
            na += 1
    fund = vf[v, _FUND]
    backstop = vf[v, _BACKSTOP]
    fund0 = vf[v, V_FUND0]
    cum = 0.0
    low = 0.0
    before = fund
    used = 0.0
    fee_sum = 0.0
    ins_sum = 0.0
    back_sum = 0.0
    if na > 1:
        li[L_ORDER, :na].sort()
    for q in range(na):
        b = li[L_ORDER, q] % nb
        dfc = lf[F_REQ, b]
        margin_used = max(-lf[F_EQ, b] - dfc, 0.0)
        loss = max(margin_used + dfc, 0.0)
        fee = max(lf[F_MARK, b], 0.0) if fees_in else 0.0
        eligible = li[L_ROUTE, b] != 2
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
        gf[ri[li[L_BUF, b], I_TGROUP], G_D] += rest - from_back
        if fund0 > 0.0 and (draw - from_ins) > _EPS_USD:
            vf[v, _DEPLETED] = 1.0
        fee_sum += fee
        ins_sum += from_ins
        back_sum += from_back
    fund = max(fund + fee_sum - ins_sum, 0.0)
    vf[v, _FUND] = fund
    vf[v, _FUND_MIN] = min(vf[v, _FUND_MIN], fund)
    vf[v, _BACKSTOP] = max(backstop - back_sum, 0.0)
    vf[v, _BACKSTOP_PAID] += back_sum
    return ins_sum, fee_sum, back_sum


# ---------------------------------------------------------------------------------------------
# end of step: ADL
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def perp_fund(t, step_s, fund_rate, fund_interval_s, ps, hist):
    """Scenario funding (``PerpVenue._fund``) at the end of step ``t``, before the step's ADL as the reference
    runs it: at a funding time (the path's clock reached a multiple of the interval, ``times`` of them in this
    step) every open row pays ``side * (rate * times) * size * close`` (``protocols.funding_payments_usd``, its
    mark asset's market close) out of its isolated margin or its cross account's collateral (the account's
    payments summed in book order, ``protocols.apply_funding``'s bincount), and every such row is marked dirty
    (the ADL scan and the path's reset read its state from ``rf``).

    Candidates stay complete without re-sorting a lane: an untouched row's liquidation price is the root of
    equity - requirement, increasing in the mark with slope at least ``size * (1 - rate)`` (long; ``1 + rate``
    for a short) on each tier's piece, so a margin ``u * size`` lower moves it by at most ``u * LF_COEF`` (the
    lane's extreme tier rate), whatever its size; a receiver's only moves away. Each lane keeps the sum of
    those moves (``LF_SHIFT``), and the lane sweep, :func:`perp_quiet` and the horizon widen their pointer's
    comparison by it (every candidate is still confirmed by the exact comparison). Touched rows get their
    :func:`row_bound` again."""
    (rf, ri, li, _lf, _lane_pos, _lane_lp, ln, ltb, _vf, vi, xi, _x_rows, _w_off, _w_pos, floor, rate, ded, af, _gf,
     _qf, cnt, oa, nid, _wf, _wi, wd, _halt, _soff, _lcap, lfund, _uf) = ps
    moved = False
    for v in range(vi.shape[0]):
        iv = fund_interval_s[v]
        r0 = fund_rate[v]
        if not iv > 0.0:
            continue
        times = int(np.floor(t * step_s / iv + 1e-9)) - int(np.floor((t - 1) * step_s / iv + 1e-9))
        if times <= 0 or r0 == 0.0:
            continue
        moved = True
        rt = r0 * times
        paid = 0.0
        got = 0.0
        for o in range(vi[v, W_OFF_LO], vi[v, W_OFF_HI]):  # book order (the accounts' sums)
            i = nid[o]
            q_i = rf[i, R_SIZE]
            if not q_i > 0.0:
                continue
            pay = rf[i, R_SIDE] * rt * q_i * hist[t, ri[i, I_MARK]]
            paid += max(pay, 0.0)
            got += max(-pay, 0.0)
            if ri[i, I_CROSS] != 0:
                af[ri[i, I_ACCOUNT], A_DELTA] += pay
            else:
                rf[i, R_MARGIN] = rf[i, R_MARGIN] - pay
                if ri[i, I_TOUCHED] != 0 and ri[i, I_LANE] >= 0:
                    rf[i, R_BOUND] = row_bound(rf[i, R_SIDE], q_i, rf[i, R_MARGIN], rf[i, R_ENTRY], floor, rate, ded,
                                               ri[i, I_TIER])
            _dirty(i, ri, li, cnt, wd)
        for x in range(xi.shape[0]):
            a = xi[x, X_ACC]
            if xi[x, X_VEN] == v and af[a, A_DELTA] != 0.0:
                af[a, A_COLL] = af[a, A_COLL] - af[a, A_DELTA]
                af[a, A_DELTA] = 0.0
        oa[v, O_FPAID] += paid
        oa[v, O_FRECV] += got
        oa[v, O_FEXT] += paid - got
        for lane in range(ln.shape[0]):
            if ln[lane, N_VENUE] != v:
                continue
            u = (rt if ln[lane, N_LONG] != 0 else -rt) * hist[t, ln[lane, N_MARK]]  # USD per base unit paid
            if u > 0.0:
                lfund[lane, LF_SHIFT] += u * lfund[lane, LF_COEF]
                lfund[lane, LF_SHIFT_S] += u * lfund[lane, LF_COEF_S]
    if moved:
        touched_bounds(li, cnt, rf, ri, ln, ltb)


@njit(cache=True)
def perp_adl_due(gf, vi):
    """True when some perp venue has a deficit for :func:`perp_end_step`'s ADL; otherwise clears the groups'
    sub-threshold rests (as that function does) and the cascade kernel skips the call."""
    for v in range(vi.shape[0]):
        tot = 0.0
        for g in range(vi[v, W_G_LO], vi[v, W_G_HI]):
            tot += gf[g, G_D]
        if tot > _EPS_USD:
            return True
    for g in range(gf.shape[0]):
        gf[g, G_D] = 0.0
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
def _pop_heap(order, score, n, d, csum, n_pop, seq, t, hist, nid, rf, ri):
    """Heapify ``n`` ADL queue entries (book row ``order``, score ``score``) and pop them in the queue's order
    (score descending, then book row), continuing the running sum ``csum`` of the profits seized, while it is
    below the deficit ``d`` before a row: each such row's scratch row goes to ``seq[n_pop]``. Returns (n_pop,
    covered, csum)."""
    for q in range(n // 2 - 1, -1, -1):
        _sift(order, score, q, n)
    n_h = n
    while n_h > 0:
        i = nid[order[0]]
        n_h -= 1
        order[0], score[0] = order[n_h], score[n_h]
        _sift(order, score, 0, n_h)
        u = rf[i, R_SIDE] * rf[i, R_SIZE] * (hist[t, ri[i, I_POOL]] - rf[i, R_ENTRY])
        csum += u
        if not csum - u < d:
            return n_pop, True, csum
        seq[n_pop] = i
        n_pop += 1
    return n_pop, False, csum


@njit(cache=True)
def _queue(order, score, gain, n_live, any_nan, d, seq, t, hist, nid, rf, ri):
    """The ADL queue of one group: its candidates (book row ``order``, score ``score``, profit ``gain``, ``n_live``
    of them) popped in the queue's order (score descending, then book row) while the profit seized before each
    is below the deficit ``d``; writes the scratch rows to close, in that order, to ``seq`` and returns their
    count.

    The queue usually stops after a few of many candidates, so the candidates are split at a score ``tau``: A
    those with score >= tau, B the others. Every entry of A comes before every entry of B in the queue's order
    (without a NaN score it is a total order), so the queue is A's heap order, then B's: A is popped first and B
    is heapified only if A does not cover the deficit (the same rows in the same order, so the same running
    sum). ``tau`` is read off a sample of the scores: the score down to which the sampled profits, scaled up,
    reach 4 x the deficit (so B is rarely needed)."""
    n_a = n_live
    if not any_nan and n_live > 1024:
        st = n_live // 256
        m = (n_live + st - 1) // st
        samp = np.empty(m)
        for r in range(m):
            samp[r] = score[r * st]
        ix = np.argsort(samp)
        acc = 0.0
        for r in range(m - 1, -1, -1):
            acc += gain[ix[r] * st] * st
            if acc >= 4.0 * d:
                tau = samp[ix[r]]
                n_a = 0
                for q in range(n_live):  # A to the front
                    if score[q] >= tau:
                        order[n_a], order[q] = order[q], order[n_a]
                        score[n_a], score[q] = score[q], score[n_a]
                        n_a += 1
                break
    n_pop, covered, csum = _pop_heap(order, score, n_a, d, 0.0, 0, seq, t, hist, nid, rf, ri)
    if covered or n_a == n_live:
        return n_pop
    n_b = n_live - n_a
    for q in range(n_b):
        order[q] = order[n_a + q]
        score[q] = score[n_a + q]
    n_pop, covered, csum = _pop_heap(order, score, n_b, d, csum, n_pop, seq, t, hist, nid, rf, ri)
    return n_pop


@njit(cache=True)
def _dirty(i, ri, li, cnt, wd):
    """Row i's state changed on this path (reset at its end)."""
    if ri[i, I_DIRTY] == 0:
        ri[i, I_DIRTY] = 1
        wd[ri[i, I_WSLOT]] = 1
        li[L_DLIST, cnt[1]] = i
        cnt[1] += 1


@njit(cache=True)
def perp_end_step(k, t, ps, hist):
    """The step's ADL per perp venue, at the step's close of each row's pool asset."""
    (rf, ri, li, lf, _lane_pos, _lane_lp, ln, ltb, vf, vi, xi, x_rows, w_off, w_pos, floor, rate, ded, af, gf, _qf,
     cnt, oa, nid, wf, wi, wd, _halt, _soff, _lcap, _lfund, _uf) = ps
    order = li[L_ORDER]
    score = lf[F_SCORE]
    gain = lf[F_C]  # a queue candidate's profit (the same float as the pop's)
    for v in range(vi.shape[0]):
        g0, g1 = vi[v, W_G_LO], vi[v, W_G_HI]
        tot = 0.0
        for g in range(g0, g1):
            tot += gf[g, G_D]
        if not tot > _EPS_USD:
            for g in range(g0, g1):
                gf[g, G_D] = 0.0
            continue
        prof_lev = vi[v, W_SCORE] == SCORE_PROFIT_LEVERAGE
        pro_rata = vi[v, W_POLICY] == ADL_PRO_RATA
        lo, hi = vi[v, W_OFF_LO], vi[v, W_OFF_HI]
        for g in range(g0, g1):
            gf[g, G_SEIZED] = 0.0
        n_live = 0
        if pro_rata:
            for o in range(lo, hi):  # the venue's rows in book order
                i = nid[o]
                rf[i, R_MARK] = hist[t, ri[i, I_POOL]]
            for o in range(lo, hi):
                i = nid[o]
                if rf[i, R_SIZE] > 0.0:
                    u = max(rf[i, R_SIDE] * rf[i, R_SIZE] * (rf[i, R_MARK] - rf[i, R_ENTRY]), 0.0)
                    gf[ri[i, I_WGROUP], G_SEIZED] += u  # capacity per group, for now
            for o in range(lo, hi):
                i = nid[o]
                score[i] = 0.0
                if rf[i, R_SIZE] > 0.0:
                    g = ri[i, I_WGROUP]
                    u = max(rf[i, R_SIDE] * rf[i, R_SIZE] * (rf[i, R_MARK] - rf[i, R_ENTRY]), 0.0)
                    frac = min(1.0, gf[g, G_D] / gf[g, G_SEIZED]) if gf[g, G_SEIZED] > 0.0 else 0.0
                    score[i] = u * frac  # the haircut
            for g in range(g0, g1):
                gf[g, G_SEIZED] = 0.0
            for o in range(lo, hi):
                i = nid[o]
                if rf[i, R_SIZE] > 0.0:
                    gf[ri[i, I_WGROUP], G_SEIZED] += score[i]
        else:
            # pool sums of cross accounts at these marks (for the scores)
            n_x = xi.shape[0]
            x_upnl = np.zeros(n_x)
            x_not = np.zeros(n_x)
            x_mm = np.zeros(n_x)
            for x in range(n_x):
                if xi[x, X_VEN] != v:
                    continue
                for r in range(xi[x, X_LO], xi[x, X_HI]):
                    i = x_rows[r]
                    mk = hist[t, ri[i, I_POOL]]
                    rf[i, R_MARK] = mk
                    x_upnl[x] += rf[i, R_SIDE] * rf[i, R_SIZE] * (mk - rf[i, R_ENTRY]) - 0.0
                    x_not[x] += rf[i, R_SIZE] * mk
                    if rf[i, R_SIZE] > 0.0:
                        x_mm[x] += maintenance_usd(floor, rate, ded, ri[i, I_TIER], rf[i, R_SIZE] * mk)
            seq = li[L_BUF]  # the rows the queue closes, in its order
            for g in range(g0, g1):  # the queue, group by group (winners of a group without deficit keep all)
                if not gf[g, G_D] > 0.0:
                    continue
                n_live = 0
                any_nan = False
                # only the group's rows whose entry is on the profitable side of the mark can rank (one pool
                # per group, so one mark): a prefix of w_pos, each still tested exactly; the heap's total
                # order (score, then row) makes the queue independent of the order rows are pushed. Read in scan
                # order from the slots (wf, wi: the same values as rf / ri), size and margin from rf only for
                # rows this path changed (wd)
                for p in range(w_off[g], w_off[g + 1]):
                    mk = hist[t, wi[p, WI_POOL]]
                    s_i = wf[p, WF_SIDE]
                    e_i = wf[p, WF_ENTRY]
                    if (s_i > 0.0 and not e_i < mk) or (s_i < 0.0 and not e_i > mk):
                        break
                    if wd[p] != 0:
                        q_i = rf[w_pos[p], R_SIZE]
                        m_i = rf[w_pos[p], R_MARGIN]
                    else:
                        q_i = wf[p, WF_SIZE0]
                        m_i = wf[p, WF_MARGIN0]
                    if not q_i > 0.0:
                        continue
                    upnl = s_i * q_i * (mk - e_i)
                    if not upnl > 0.0:
                        continue
                    x = wi[p, WI_XOF]
                    if x >= 0:  # a cross row: the pool's terms; its requirement only where the score reads it
                        wb = af[ri[w_pos[p], I_ACCOUNT], A_COLL]
                        eq, notional, mm = wb + x_upnl[x], x_not[x], x_mm[x]
                    else:
                        wb = m_i
                        eq, notional = wb + (upnl - 0.0), q_i * mk
                        mm = 0.0 if prof_lev else maintenance_usd(floor, rate, ded, wi[p, WI_TIER], q_i * mk)
                    if prof_lev:
                        e = max(eq, 1e-12)
                        sc = upnl / e * (notional / e)
                    else:
                        ratio = mm / eq if eq > 0.0 else 0.0
                        sc = upnl / max(wb, 1.0) * ratio
                    order[n_live] = wi[p, WI_ORIG]  # the queue's ties by book order
                    score[n_live] = sc
                    gain[n_live] = upnl
                    any_nan = any_nan or sc != sc
                    n_live += 1
                n_pop = _queue(order, score, gain, n_live, any_nan, gf[g, G_D], seq, t, hist, nid, rf, ri)
                for m in range(n_pop):  # closed whole, its whole profit seized
                    i = seq[m]
                    mk = hist[t, ri[i, I_POOL]]
                    rf[i, R_MARK] = mk
                    u = rf[i, R_SIDE] * rf[i, R_SIZE] * (mk - rf[i, R_ENTRY])
                    gf[g, G_SEIZED] += u
                    oa[v, O_CLOSED] += rf[i, R_SIZE] * mk
                    delta = u - u  # apply_adl: it realises its PnL at the mark and gives up that PnL
                    a = ri[i, I_ACCOUNT]
                    if ri[i, I_CROSS] != 0:
                        af[a, A_COLL] += delta
                    else:
                        af[a, A_COLL] += rf[i, R_MARGIN] + delta
                    rf[i, R_MARGIN] = 0.0
                    rf[i, R_SIZE] = 0.0
                    _dirty(i, ri, li, cnt, wd)
        if pro_rata:
            for o in range(lo, hi):
                i = nid[o]
                h = score[i]
                if h > 0.0:
                    delta = 0.0 - h
                    _dirty(i, ri, li, cnt, wd)
                    if ri[i, I_CROSS] != 0:
                        af[ri[i, I_ACCOUNT], A_COLL] += delta
                    else:
                        rf[i, R_MARGIN] = rf[i, R_MARGIN] + delta
                        if ri[i, I_LANE] >= 0:
                            rf[i, R_BOUND] = row_bound(rf[i, R_SIDE], rf[i, R_SIZE], rf[i, R_MARGIN], rf[i, R_ENTRY],
                                                       floor, rate, ded, ri[i, I_TIER])
                        if ri[i, I_TOUCHED] == 0:
                            ri[i, I_TOUCHED] = 1
                            li[L_TLIST, cnt[0]] = i
                            cnt[0] += 1
        cov = 0.0
        unc = 0.0
        over = 0.0
        for g in range(g0, g1):
            c = min(gf[g, G_SEIZED], gf[g, G_D])
            cov += c
            unc += gf[g, G_D] - c
            over += gf[g, G_SEIZED] - c
            gf[g, G_D] = 0.0
        vf[v, _FUND] += over
        oa[v, O_ADLV] += cov
        oa[v, O_OVER] += over
        oa[v, O_STEPS] += 1.0
        oa[v, O_RBAD] += unc
        oa[v, O_FIN] += over
    # a pro-rata haircut moved its rows' bounds; a queue closed rows (their bounds only loosen until the next round)
    touched_bounds(li, cnt, rf, ri, ln, ltb)


# ---------------------------------------------------------------------------------------------
# horizon
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def perp_end_path(k, po, ps, close_T, acct):
    """Adds the path's perp sums to the ledger (:func:`perp_flush`); underwater pools at the final close, the
    fund's drawdown and depletion, the backstop's loss; counts the positions liquidated on this path into
    ``acct`` and resets the rows the path changed.

    O(rows changed + lane rows past their pointer at the final mark): an untouched isolated row that is
    underwater at the final close is liquidatable there, so it sits at or past its lane's pointer within the
    final mark's slack."""
    perp_flush(k, po, ps)
    (rf, ri, li, _lf, lane_pos, lane_lp, ln, ltb, vf, vi, xi, x_rows, _w_off, _w_pos, _floor, _rate, _ded, af, _gf,
     _qf, cnt, _oa, _nid, _wf, _wi, wd, _halt, _soff, _lcap, lfund, uf) = ps
    n_d = cnt[1]
    for v in range(vi.shape[0]):
        j = vi[v, W_COL]
        under = 0.0
        vault = vf[v, _TAKEOVER] + vf[v, _VAULT_REAL]
        for q in range(n_d):  # rows this path changed
            i = li[L_DLIST, q]
            if ri[i, I_VENUE] != v:
                continue
            mk = close_T[ri[i, I_MARK]]
            vault += rf[i, R_VSIZE] * (mk - rf[i, R_VPX])
            if rf[i, R_SIZE] > 0.0 and ri[i, I_CROSS] == 0:
                under += max(-(rf[i, R_MARGIN] + (rf[i, R_SIDE] * rf[i, R_SIZE] * (mk - rf[i, R_ENTRY]) - 0.0)), 0.0)
        for lane in range(ln.shape[0]):  # untouched isolated rows past the lane's pointer
            if ln[lane, N_VENUE] != v:
                continue
            mk = close_T[ln[lane, N_MARK]]
            long_ = ln[lane, N_LONG] != 0
            sh = lfund[lane, LF_SHIFT]
            thr = mk * (1.0 - LP_TOL) - sh if long_ else mk * (1.0 + LP_TOL) + sh
            for p in range(ln[lane, N_PTR], ln[lane, N_HI]):
                lp = lane_lp[p]
                if (long_ and not lp > thr) or (not long_ and not lp < thr):
                    break
                i = lane_pos[p]
                if ri[i, I_DIRTY] != 0 or not rf[i, R_SIZE] > 0.0:
                    continue
                under += max(-(rf[i, R_MARGIN] + (rf[i, R_SIDE] * rf[i, R_SIZE] * (mk - rf[i, R_ENTRY]) - 0.0)), 0.0)
        for x in range(xi.shape[0]):
            if xi[x, X_VEN] != v:
                continue
            upnl = 0.0
            n_open = 0
            for r in range(xi[x, X_LO], xi[x, X_HI]):
                i = x_rows[r]
                upnl += rf[i, R_SIDE] * rf[i, R_SIZE] * (close_T[ri[i, I_MARK]] - rf[i, R_ENTRY]) - 0.0
                if rf[i, R_SIZE] > 0.0:
                    n_open += 1
            if n_open > 0:
                under += max(-(af[xi[x, X_ACC], A_COLL] + upnl), 0.0)
        po.unrealised_bad_debt_usd[k, j] += under
        po.insurance_fund_drawdown_usd[k, j] += max(vf[v, V_FUND0] - vf[v, _FUND_MIN], 0.0)
        po.insurance_fund_depleted[k, j] += vf[v, _DEPLETED]
        po.backstop_loss_usd[k, j] += vf[v, _BACKSTOP_PAID] + max(-vault, 0.0)
    for q in range(n_d):  # count, then reset what the path changed
        i = li[L_DLIST, q]
        if ri[i, I_LIQ] != 0:
            acct[ri[i, I_ORIG]] += 1
        rf[i, R_SIZE] = rf[i, R_SIZE0]
        rf[i, R_MARGIN] = rf[i, R_MARGIN0]
        wd[ri[i, I_WSLOT]] = 0
        a = ri[i, I_ACCOUNT]
        af[a, A_COLL] = af[a, A_COLL0]
        rf[i, R_UNTIL] = -np.inf
        rf[i, R_VSIZE] = 0.0
        rf[i, R_VPX] = 0.0
        uf[i, U_LEFT] = 0.0
        uf[i, U_RATE] = 0.0
        ri[i, I_LIQ] = 0
        ri[i, I_TOUCHED] = 0
        ri[i, I_DIRTY] = 0
    cnt[0] = 0
    cnt[1] = 0
    cnt[2] = 0
    for lane in range(ltb.shape[0]):
        ltb[lane] = -np.inf if ln[lane, N_LONG] != 0 else np.inf


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
                                            "pool", "mark_asset", "tier", "fee_rate", "wgroup", "tgroup", "lp",
                                            "lp_s")}
    tables: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    mults: list[float] = []  # per table: its venue's stress margin multiplier (1: none)
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
        ven["band_move"].append(spec.band_move)
        ven["band_w"].append(spec.band_window_steps)
        ven["band_halt"].append(spec.band_halt_s)
        ven["stress_move"].append(spec.stress_move)
        ven["stress_w"].append(spec.stress_window_steps)
        ma = np.asarray(spec.breaker_market_asset if spec.breaker_market_asset is not None else [], np.int64)
        nm = np.bincount(ma[ma >= 0], minlength=n_assets)[:n_assets]
        ven["band_nm"].append(nm if spec.band_window_steps > 0 else np.zeros(n_assets, np.int64))
        ven["stress_nm"].append(nm if spec.stress_window_steps > 0 else np.zeros(n_assets, np.int64))
        ven["fund_rate"].append(spec.funding_rate)
        ven["fund_interval_s"].append(spec.funding_interval_s)
        ven["unwind_steps"].append(spec.unwind_steps)
        side = book.side.astype(f64)
        lp = np.full(n, np.nan)
        iso = ~book.is_cross & (book.size_base > 0)
        lp_s = lp
        if iso.any():
            lp = ad.liquidation_price_usd(book, book.entry_price_usd)
            lp_s = lp
            if spec.stress_window_steps > 0:  # under stress (the reference's stressed adapter's closed form)
                lp_s = ad.with_margin_multiplier(spec.stress_multiplier).liquidation_price_usd(book, book.entry_price_usd)
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
        pos["lp_s"].append(np.where(iso, lp_s, np.nan))
        tables.append((np.asarray(rule.floor_usd, f64), np.asarray(rule.rate, f64), np.asarray(rule.deduction_usd, f64)))
        mults.append(float(spec.stress_multiplier) if spec.stress_window_steps > 0 else 1.0)
        coll0.append(book.cross_collateral_usd)
        n_tab += tables[-1][0].shape[0]
        n_acc += book.n_accounts
        off.append(off[-1] + n)
        goff.append(goff[-1] + 2 * len(book.markets))
    p = {k: (np.concatenate(x) if x else np.zeros(0)) for k, x in pos.items()}
    n = p["row"].shape[0]
    width = max([t[0].shape[1] for t in tables], default=1)
    # with a stress margin the stressed tables follow (rows n_tab..): Tiers(floor, rate x k, deduction x k), the
    # products with_margin_multiplier forms
    stress = any(x > 0 for x in ven["stress_w"])
    n_rows = max(n_tab, 1) * (2 if stress else 1)
    floor = np.full((n_rows, width), np.inf)
    rate = np.zeros((n_rows, width))
    ded = np.zeros((n_rows, width))
    for r0, stressed in ((0, False), (max(n_tab, 1), True)) if stress else ((0, False),):
        for (f, r, d), mult in zip(tables, mults, strict=True):
            floor[r0:r0 + f.shape[0], :f.shape[1]] = f
            rate[r0:r0 + f.shape[0], :f.shape[1]] = r * mult if stressed else r
            ded[r0:r0 + f.shape[0], :f.shape[1]] = d * mult if stressed else d
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
    lane_pos_s = np.zeros(0, i64)
    if stress:  # the same lanes, each by its liquidation prices under stress
        lp_s = p["lp_s"].astype(f64)
        order_s = np.lexsort((iso, np.where(p["side"][iso] > 0, -lp_s[iso], lp_s[iso]), lane_key))
        lane_pos_s = iso[order_s]
    # per lane, x1 and stressed: the lowest mark at which a long row's notional reaches the first tier whose rate is
    # >= 1 (from there its margin rises at least as fast as its equity, so a lane's order no longer bounds it)
    lane_cap = np.full((keys.size, 2), np.inf)
    if iso.size:
        side_l, q_l, kt_l = p["side"][iso], p["size0"][iso].astype(f64), p["tier"][iso].astype(i64)
        real = (np.arange(width) == 0) | np.isfinite(floor[:max(n_tab, 1)])
        for c, r0 in ((0, 0), (1, max(n_tab, 1) if stress else 0)):
            steep = real & (rate[r0:r0 + max(n_tab, 1)] >= 1.0)
            f_at = np.where(np.arange(width) == 0, 0.0, floor[:max(n_tab, 1)])
            reach = np.where(steep, f_at, np.inf).min(1)  # per table row: the notional of the first such tier
            cap = np.where(side_l > 0, reach[kt_l] / q_l, np.inf)
            np.minimum.at(lane_cap[:, c], np.repeat(np.arange(keys.size), np.diff(lane_off)), cap)
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
        backstop0=np.array(ven["backstop0"], f64), lag=np.array(ven["lag"], i64), rounds=np.array(ven["rounds"], i64),
        band_move=np.array(ven["band_move"], f64), band_w=np.array(ven["band_w"], i64),
        band_halt=np.array(ven["band_halt"], f64),
        band_nm=np.array(ven["band_nm"], i64).reshape(len(ven["col"]), n_assets),
        stress_move=np.array(ven["stress_move"], f64), stress_w=np.array(ven["stress_w"], i64),
        stress_nm=np.array(ven["stress_nm"], i64).reshape(len(ven["col"]), n_assets),
        fund_rate=np.array(ven["fund_rate"], f64), fund_interval_s=np.array(ven["fund_interval_s"], f64),
        unwind_steps=np.array(ven["unwind_steps"], i64))
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
        w_pos=w_pos, lane_pos_s=lane_pos_s.astype(i64), lane_lp_s=(lp_s[lane_pos_s] if stress else np.zeros(0)).astype(f64),
        lane_cap=lane_cap)
    return venues, positions


def perp_out(ledger, n_paths: int, n_venues: int) -> KPerpOut:
    """The ledger's arrays for :class:`KPerpOut` (zeros where the ledger has no such field)."""
    return KPerpOut(*(ledger[f] if f in ledger else np.zeros((n_paths, n_venues)) for f in KPerpOut._fields))
