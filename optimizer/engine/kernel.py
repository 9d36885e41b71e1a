"""Fast cascade kernel (numba): the model of :mod:`optimizer.engine.reference`, without scanning the book.

Accounts hold any number of collateral and debt legs. With ``r_a = P_a / P0_a`` an asset's price
relative to the start, an account's health is at least ``min_coll r / max_debt r`` (over its legs)
divided by its *key* ``1 / health at P0``: it can be liquidatable only while its group's ratio is below
its key. Accounts are grouped by (venue, collateral assets, debt assets) and sorted once per group by key;
each path walks a pointer down the sorted array as the group's ratio falls, so a step costs
O(groups + candidates), not O(accounts). For a single-pair account the bound is exact (the ratio is the
oracle ratio ``P_coll / P_debt`` rescaled). Single-pair accounts that survived a partial liquidation
(Aave's close factor) or were examined but were healthy go into a per-group max-heap keyed by their
current key; multi-asset ones go into the group's *parking lots* (:data:`N_LOTS`), each keyed against the
prices its accounts were examined at, so a healthy account is re-examined only after the prices moved
against it (not in every round while the market stays down). Accounts skipped for the call cap, the
reaction delay or profit wait in a pending list for the next step (single-pair ones rejoin their heap,
multi-asset ones are candidates of the next step's first round without parking); with no oracle lag a
waiting account whose bonus on its whole debt at the step's highest debt prices cannot cover the step's
gas is not examined that step, and one whose bonus can never cover the rest of the path's cheapest gas is
dropped; with no reaction delay either, a waiting single-pair account that the step's first round would
examine is examined as it comes back, at the first round's prices, and one whose call is refused or does
not pay waits on without rejoining its heap. None of this changes which accounts are liquidated: the filters only
skip accounts that could not be liquidated (unhealthy but unprofitable, or healthy), and within a round
prices are fixed, so calls are independent except for the cap, which takes them in (health, book row)
order.

Per round, each venue's candidates are collected from its groups in one batch, confirmed with the
adapters' exact health formula (:mod:`optimizer.engine.kernel_rules`, same float operations), and worked
down by (health, book row) while calls remain (multi-asset candidates from a min-heap, so a cap that takes
few of many sorts only those it takes), as the reference engine's liquidators do; so both engines
find the same liquidations.

The kernel mirrors venue rules, not venues: each venue simulator that it can run declares which
rule (:data:`RULES`) and hands over the per-leg terms (``KernelSpec``, built from the adapters'
public ``position_terms``). Inputs are named structs (NamedTuples of arrays): :class:`KMarket`,
:class:`KPositions`, :class:`KVenues`, :class:`KGroups`, :class:`KLiquidators`, :class:`KOut`.

Paths run in parallel in ``n_chunks`` chunks, each with its own scratch state; results do not
depend on the number of threads.

Perp venues (:mod:`optimizer.engine.kernel_perp`) run inside this loop through five hooks (path start,
step start, each round next to the lending venues at the round's starting market, step end, horizon;
called only when the candidate has a perp venue, as the auction hooks only with an auction venue):
their orders join the round's flows, so lending and perps share the market within each step in the
reference loop's order.

Forced-flow sources (``[[forced_flows]]``: :mod:`optimizer.engine.kernel_flows`) trade in each round after
the lending, auction and perp venues (the reference's ``round`` phase) and before the storefronts (its
``settle`` phase, which sees their flows), at the round's starting market; their trades make the loop run
another round. With sources, ``forced_sold_usd`` counts each hook's sales per pool at the round's market
close: the close-factor venue's (at most one: the reference nets per venue), the auction and perp venues'
(the difference of ``round_sales`` across the hook; at most one perp venue), each source's and each
storefront sale.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
from numba import njit

from ..market.liquidity import SQRT, floored_sqrt_integral_at, sqrt_floor_state, sqrt_impact_per_sqrt_token
from ._market import impact_factor, proceeds_row, purchase_row, storefront_quantity
from .kernel_auctions import (
    RULE_AUCTION,
    auction_collect,
    auction_end_path,
    auction_round,
    auction_scratch,
    auction_start_path,
    auction_trip,
)
from .kernel_flows import flows_round, flows_scratch, flows_start_path
from .kernel_perp import (
    PS_CNT,
    PS_GF,
    PS_LANE_LP,
    PS_LCAP,
    PS_LFUND,
    PS_LN,
    PS_LTB,
    PS_VF,
    PS_VI,
    PS_XI,
    UNW_DUE,
    UNW_PENDING,
    W_ROUNDS,
    W_ROUNDS0,
    perp_adl_due,
    perp_band,
    perp_end_path,
    perp_end_step,
    perp_fund,
    perp_quiet,
    perp_round,
    perp_scratch,
    perp_start_path,
    perp_stress,
)
from .kernel_rules import (
    KEY_TOL,
    aave_call,
    absorb,
    account_health,
    account_key,
    call_pair,
    counted_left,
    group_ratio,
    health_heap,
    heap_pop,
    heap_push,
    lot_ratios,
    pair_key,
)

#: Aave-style liquidationCall (close factor, bonus, protocol fee, dust rule, v3.3 deficit cleanup) on the
#: account's largest counted collateral and largest debt, by profit-seeking liquidators who sell the
#: collateral minus the fee share and buy the debt they repay; the constants ``cf_on_reserve`` and
#: ``no_deficit`` make it Aave v2's call (close factor on the repaid reserve's debt on every call, no deficit)
RULE_CLOSE_FACTOR_CALL = 0
#: Comet-style absorb of the whole account (every collateral leg) into the venue's inventory (no profit
#: needed), sold later through a storefront while reserves are below target
RULE_ABSORB = 1
#: RULE_AUCTION: Dutch auctions (Dog/Clipper Liquidations 2.0), whose vaults and auctions live in
#: :mod:`optimizer.engine.kernel_auctions` (hooks at the path's start, each round and the horizon)
RULES = (RULE_CLOSE_FACTOR_CALL, RULE_ABSORB, RULE_AUCTION)
#: per-venue constants a KernelSpec may give (absent ones are 0; ``target`` defaults to +inf). Close-factor
#: call: ``cf_on_reserve`` 1 -- the close factor is a share of the repaid debt leg on every call
#: (:func:`~optimizer.engine.kernel_rules.call_pair`); ``no_deficit`` 1 -- a call that takes the account's last
#: counted collateral leaves the rest of its debt on the account (counted in ``unbacked_debt_usd``, never
#: called again: it has nothing to seize) instead of booking it as realised bad debt
VENUE_CONSTANTS = ("close_factor", "cf_hf", "min_base", "floor", "sf", "target", "cf_on_reserve", "no_deficit")
#: parking lots per multi-asset group (accounts examined and found healthy wait in a lot keyed against the
#: prices they were examined at); a lot whose reference drifted by more than LOT_SLACK gets a fresh one, as
#: does one whose assets moved apart by more than LOT_SLACK since its reference (best / worst ratio): a parked
#: account's bound loses that spread, so a healthy account near 1 would otherwise be re-examined every round
N_LOTS = 8
LOT_SLACK = 0.005
#: relative slack of the profit bound that lets a waiting account skip a step (float rounding of the call)
PROFIT_TOL = 1e-9

__all__ = ["KEY_TOL", "RULES", "RULE_ABSORB", "RULE_CLOSE_FACTOR_CALL", "VENUE_CONSTANTS", "KGroups", "KLiquidators",
           "KMarket", "KOut", "KPositions", "KVenues", "run_paths"]


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
    p0: np.ndarray  # (A,) initial prices (every path starts there), the keys' reference


class KPositions(NamedTuple):
    """Accounts (walk order: group, then key descending) and their legs in CSR layout.

    Account ``i`` owns collateral legs ``coff[i]:coff[i+1]`` and debt legs ``doff[i]:doff[i+1]``, in
    book-column order.
    """

    venue: np.ndarray  # int64 (n,)
    row: np.ndarray  # book row
    group: np.ndarray
    coff: np.ndarray  # (n+1,)
    doff: np.ndarray  # (n+1,)
    ca: np.ndarray  # (L,) market asset of each collateral leg
    cc: np.ndarray  # book column
    c0: np.ndarray  # tokens
    lt: np.ndarray  # health weight (0: not counted, not seizable)
    lb: np.ndarray  # rule's liquidation multiplier (bonus; absorb: liquidation factor)
    fee: np.ndarray  # protocol share of the bonus
    cpaused: np.ndarray  # bool: liquidations of this asset are paused
    da: np.ndarray  # (M,) market asset of each debt leg
    dc: np.ndarray  # book column
    d0: np.ndarray  # tokens
    dpaused: np.ndarray
    pair_c: np.ndarray  # (n,) the one counted collateral leg of a single-pair account (-1: several or none)
    pair_d: np.ndarray  # (n,) its one debt leg (-1: several)


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
    cf_on_reserve: np.ndarray  # bool (V,): VENUE_CONSTANTS
    no_deficit: np.ndarray  # bool (V,)


class KGroups(NamedTuple):
    """Groups of accounts with the same venue and assets, contiguous per venue."""

    venue: np.ndarray  # (G,)
    venue_off: np.ndarray  # (V+1,) groups of venue j: venue_off[j]:venue_off[j+1]
    off: np.ndarray  # (G+1,) accounts of group g: off[g]:off[g+1]
    gc_off: np.ndarray  # (G+1,) the group's counted collateral assets gc[gc_off[g]:gc_off[g+1]]
    gc: np.ndarray
    gd_off: np.ndarray  # (G+1,) its debt assets
    gd: np.ndarray
    key: np.ndarray  # (n,) initial key, descending within a group


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
    unbacked_debt_usd: np.ndarray  # no_deficit venues: debt left with no counted collateral, at the call's prices
    events: np.ndarray  # EVENT_DTYPE records
    n_events: np.ndarray  # (1,) int64: events counted (stored up to events.shape[0])
    events_cap: int  # -1: events off


# ---------------------------------------------------------------------------------------------
# one path
# ---------------------------------------------------------------------------------------------


@njit(cache=True, inline="always")
def _horizon(k, i, j, rule, coff, doff, ca, da, lt, lb, c, d, pT, o_ubad, o_expo):
    """One open account at the horizon (final close): underwater debt, and its exposure when liquidatable.

    (Inlined, with the leg arrays passed one by one: a call that takes the ``KPositions`` struct copies and
    reference-counts its every array, which cost more than the arithmetic once per account at the horizon.)
    """
    coll = 0.0
    w = 0.0
    covered = 0.0
    for q in range(coff[i], coff[i + 1]):
        v = c[q] * pT[ca[q]]
        coll += v
        w += v * lt[q]
        if lt[q] > 0.0:
            if rule == RULE_CLOSE_FACTOR_CALL:  # seize everything: covers value / bonus of the debt
                covered += v / (lb[q] if lb[q] > 0.0 else 1.0)
            else:  # absorb: credit = value x liquidation factor
                covered += v * lb[q]
    debt = 0.0
    for q in range(doff[i], doff[i + 1]):
        debt += d[q] * pT[da[q]]
    under = debt - coll
    if under > 0.0:
        o_ubad[k, j] += under
    if debt > 0.0 and w / debt < 1.0:
        exposure = max(debt - covered, 0.0) - max(under, 0.0)
        if exposure > 0.0:
            o_expo[k, j] += exposure


@njit(cache=True, inline="always")
def _hf(i, j, pair_c, pair_d, coff, doff, ca, c, lt, da, d, pc, pd):
    """Account health (:func:`~optimizer.engine.kernel_rules.account_health`), one-pair accounts inline
    (the same float operations: the other columns add exact zeros)."""
    kc = pair_c[i]
    kd = pair_d[i]
    if kc >= 0 and kd >= 0:
        debt = d[kd] * pd[j, da[kd]]
        if not debt > 0.0:
            return np.inf
        return ((c[kc] * pc[j, ca[kc]]) * lt[kc]) / debt
    return account_health(i, j, coff, doff, ca, c, lt, da, d, pc, pd)


@njit(cache=True)
def _run_path(path, k, m, pos, ven, grp, lq, out, acct,
              c_cur, d_cur, touched_flag, touched_list, liq_once, hkey, hpos, pend, hot, back, back_hf, cand,
              cand_hf, cand_row, hist, low_hist, high_hist, lkey, lpos, f_cap, acc_mb, acc_lbhi, au, aus, au_out, pv,
              pp, po, ps, pacct, pr_i, pr_f, mr_off, mr_i, mr_f, hot_v, hot_row, fl, fo, fst, frounds, ftmp, ftmp2):
    close, low, high, liq, hl, p0 = m.close, m.low, m.high, m.liq, m.hl, m.p0
    coff, doff, ca, da, lt, lb, fee = pos.coff, pos.doff, pos.ca, pos.da, pos.lt, pos.lb, pos.fee
    c0, d0, cpaused, dpaused, pair_c, pair_d = pos.c0, pos.d0, pos.cpaused, pos.dpaused, pos.pair_c, pos.pair_d
    pos_venue, pos_row, pos_cc, pos_group = pos.venue, pos.row, pos.cc, pos.group
    grp_venue, vgoff, goff, gkey = grp.venue, grp.venue_off, grp.off, grp.key
    gc_off, gc, gd_off, gd = grp.gc_off, grp.gc, grp.gd_off, grp.gd
    rule, lag = ven.rule, ven.lag
    v_cf, v_cf_hf, v_min_base, v_floor, v_sf = ven.close_factor, ven.cf_hf, ven.min_base, ven.floor, ven.sf
    v_target, store_cols, store_lf = ven.target_res, ven.store_cols, ven.store_lf
    v_cfr, v_nodef = ven.cf_on_reserve, ven.no_deficit
    max_calls, delay, min_profit = lq.max_calls, lq.delay, lq.min_profit
    ev, ev_n, ev_cap = out.events, out.n_events, out.events_cap
    # outputs as locals (an array read through a tuple field in the hot loop costs a refcount each time)
    o_liqs, o_repaid, o_seized, o_bonus = out.liquidations, out.debt_repaid_usd, out.collateral_seized_usd, \
        out.liquidator_bonus_usd
    o_fee, o_rbad, o_ret, o_drem = out.protocol_fee_usd, out.realised_bad_debt_usd, out.returned_to_owner_usd, \
        out.debt_removed_usd
    o_inv, o_mlow, o_elow = out.inventory_usd, out.market_low_min, out.exo_low_min
    o_ubad, o_expo = out.unrealised_bad_debt_usd, out.horizon_exposure_usd
    o_unb = out.unbacked_debt_usd
    n_assets = close.shape[2]
    T = close.shape[1] - 1
    n_groups = grp_venue.shape[0]
    n_venues = rule.shape[0]
    ptr = goff[:-1].copy()
    hsize = np.zeros(n_groups, np.int64)
    sold = np.zeros(n_assets)  # net signed flow per pool (one pool per asset)
    n_pend = 0
    tl_n = 0
    inventory = np.zeros((n_venues, n_assets))
    reserves = ven.res0.copy()
    for a in range(n_assets):
        hist[0, a] = close[path, 0, a]
        low_hist[0, a] = close[path, 0, a]
        high_hist[0, a] = close[path, 0, a]
    # Path bounds for pruning accounts that can never be profitable to liquidate: the highest debt price
    # and the cheapest gas from each step to the horizon.
    max_px = np.empty((T + 2, n_assets))  # max_px[t, a]: highest bar high of asset a over steps t..T
    for a in range(n_assets):
        max_px[T + 1, a] = 0.0
        for t in range(T, -1, -1):
            max_px[t, a] = max(max_px[t + 1, a], high[path, t, a])
    gas_step_usd = np.zeros(T + 1)  # one liquidation call's gas in USD at each step
    if m.gas_token >= 0:
        for t in range(1, T + 1):
            gas_step_usd[t] = m.gas_usd_per_call * m.gas_gwei[t] * 1e-9 * close[path, t, m.gas_token]
    gas_min = np.empty(T + 2)  # gas_min[t]: cheapest gas over steps t..T
    gas_min[T + 1] = np.inf
    for t in range(T, 0, -1):
        gas_min[t] = min(gas_min[t + 1], gas_step_usd[t])
    gas_min[0] = gas_min[1]
    first_step = -1
    last_step = -1
    # each pool's recovery over one step: decay's factor, computed once (-1: full recovery every step)
    dec_f = np.empty(n_assets)
    for a in range(n_assets):
        if hl[a] <= 0.0:
            dec_f[a] = -1.0
        elif m.step_s <= 0.0 or hl[a] == np.inf:
            dec_f[a] = 1.0
        else:
            dec_f[a] = 0.5 ** (m.step_s / hl[a])
    # square-root pools: the law's constants (sale_proceeds_usd computes them at every sale; 0: not such a pool)
    sq_c = np.zeros(n_assets)
    sq_u = np.zeros(n_assets)
    for a in range(n_assets):
        if liq[a, 0] >= 0 and int(liq[a, 0]) == SQRT:
            c_sq = sqrt_impact_per_sqrt_token((liq[a, 1], liq[a, 2], liq[a, 3], liq[a, 4]))
            if c_sq > 0.0:
                sq_c[a] = c_sq
                sq_u[a] = sqrt_floor_state(c_sq)
    oc = np.empty((n_venues, n_assets))  # each venue's oracle: collateral side, debt side
    od = np.empty((n_venues, n_assets))
    pc_past = np.empty((n_venues, n_assets))
    pd_past = np.empty((n_venues, n_assets))
    thr = np.empty(n_groups)
    mkt_low = np.empty(n_assets)
    mkt_close = np.empty(n_assets)
    mkt_high = np.empty(n_assets)
    round_sales = np.empty(n_assets)
    f_at = np.full(n_assets, np.nan)  # each pool's impact factor f_val, computed at state f_at (NaN: not yet)
    f_val = np.ones(n_assets)
    calls_left = np.empty(n_venues, np.int64)
    gexact = np.empty(n_groups, np.bool_)  # one counted collateral asset, one debt asset: health ~ 1 / key
    for g in range(n_groups):
        gexact[g] = gc_off[g + 1] - gc_off[g] == 1 and gd_off[g + 1] - gd_off[g] == 1
    act = np.empty(n_groups, np.int64)
    n_acc = pos.venue.shape[0]
    lsize = np.zeros((n_groups, N_LOTS), np.int64)
    lot_cur = np.full(n_groups, -1, np.int64)
    lot_rc = np.ones((n_groups, N_LOTS, n_assets))
    lot_rd = np.ones((n_groups, N_LOTS, n_assets))
    head_i = np.full(n_groups, -1, np.int64)
    head_hf = np.empty(n_groups)
    head_row = np.empty(n_groups, np.int64)
    head_heap = np.zeros(n_groups, np.bool_)
    park_tag = np.full(n_groups, -1, np.int64)
    park_up = np.empty(n_groups)
    park_round = 0
    mheap = np.empty(max(n_acc, 1), np.int64)
    hot_hf = np.empty(max(n_acc, 1))  # a waiting multi-asset account's health at its first round (-1: not known)
    # Hooks run only where the candidate has such venues: each call binds every array of the NamedTuples it
    # takes (a reference-count increment and decrement each), which cost more than the empty loops inside.
    has_au = au.venue.shape[0] > 0
    has_perp = pv.col.shape[0] > 0
    has_band = False
    has_stress = False
    for pvi in range(pv.band_w.shape[0]):
        has_band = has_band or pv.band_w[pvi] > 0
        has_stress = has_stress or pv.stress_w[pvi] > 0
    has_fund = False  # a perp venue with scenario funding
    has_unw = False  # a perp venue whose backstop vault unwinds
    for pvi in range(pv.fund_interval_s.shape[0]):
        has_fund = has_fund or pv.fund_interval_s[pvi] > 0.0
        has_unw = has_unw or pv.unwind_steps[pvi] > 0
    if has_au:
        auction_start_path(au, aus)
    if has_perp:
        perp_start_path(ps)  # perp venues (optimizer.engine.kernel_perp): their own state
    has_ff = fl.model.shape[0] > 0  # forced-flow sources (optimizer.engine.kernel_flows)
    if has_ff:
        flows_start_path(fl, fst, close[path, 0], ftmp)
    ff_pre = np.zeros(n_assets)  # round_sales before a hook (its flows: the difference; forced_sold_usd)
    o_ffsold = fo.forced_sold
    # what the per-step and per-round perp hooks read, as locals: perp_start_step written out and perp_quiet
    # given the few arrays it reads (a call binds each array it is given, a reference count each way)
    p_vi, p_ln, p_lp, p_cnt, p_gf, p_ltb = ps[PS_VI], ps[PS_LN], ps[PS_LANE_LP], ps[PS_CNT], ps[PS_GF], ps[PS_LTB]
    p_lcap = ps[PS_LCAP]
    p_lfund, p_vf = ps[PS_LFUND], ps[PS_VF]
    p_frate, p_fint = pv.fund_rate, pv.fund_interval_s  # perp_fund reads these, not the whole struct
    p_nx = ps[PS_XI].shape[0]

    for t in range(1, T + 1):
        for a in range(n_assets):
            f = dec_f[a]
            sold[a] = sold[a] * f if f >= 0.0 else 0.0
        for j in range(n_venues):
            calls_left[j] = max_calls
        gas_usd = gas_step_usd[t]
        if has_perp:  # perp_start_step
            for pvi in range(p_vi.shape[0]):
                p_vi[pvi, W_ROUNDS] = p_vi[pvi, W_ROUNDS0]
            if has_unw:  # an unwind round is due where the vault holds something to unwind
                for pvi in range(p_vi.shape[0]):
                    if p_vf[pvi, UNW_PENDING] != 0.0:
                        p_vf[pvi, UNW_DUE] = 1.0
                        p_cnt[3] += 1
        if has_ff:
            frounds[:] = 0
        tp = max(t - delay, 0)
        first_round = True
        while True:
            for a in range(n_assets):
                if sold[a] != f_at[a]:  # the factor is a function of the pool's state alone
                    f_at[a] = sold[a]
                    f_val[a] = impact_factor(liq, a, sold[a])
                f = f_val[a]
                mkt_low[a] = low[path, t, a] * f
                mkt_close[a] = close[path, t, a] * f
                mkt_high[a] = high[path, t, a] * f
                low_hist[t, a] = mkt_low[a]
            for j in range(n_venues):
                h = max(t - lag[j], 0)
                hp = max(tp - lag[j], 0)
                for a in range(n_assets):
                    if lag[j] == 0:  # collateral at the bar's low, debt at its high
                        oc[j, a] = mkt_low[a]
                        od[j, a] = mkt_high[a]
                        pc_past[j, a] = low_hist[tp, a]
                        pd_past[j, a] = high_hist[tp, a]
                    else:
                        oc[j, a] = hist[h, a]
                        od[j, a] = hist[h, a]
                        pc_past[j, a] = hist[hp, a]
                        pd_past[j, a] = hist[hp, a]
            if first_round and has_au:  # auction venues' circuit breakers read the step's round-0 prices
                auction_trip(au, aus, t, oc, mkt_close, hist)
            for g in range(n_groups):
                j = grp_venue[g]
                # group_ratio written out (per group and round; a helper binds its arrays again at each call)
                lo = np.inf
                for x in range(gc_off[g], gc_off[g + 1]):
                    a = gc[x]
                    lo = min(lo, oc[j, a] / p0[a])
                if gc_off[g + 1] == gc_off[g]:
                    lo = 0.0
                hi = 0.0
                for x in range(gd_off[g], gd_off[g + 1]):
                    b = gd[x]
                    hi = max(hi, od[j, b] / p0[b])
                ratio = lo / hi
                if delay > 0:  # liquidators act on what was already liquidatable `delay` steps ago
                    ratio = max(ratio, group_ratio(g, j, gc_off, gc, gd_off, gd, pc_past, pd_past, p0))
                thr[g] = ratio * (1.0 - KEY_TOL)
            if first_round:
                first_round = False
                # Accounts that waited (unprofitable, refused, beyond the call cap) come back for this step:
                # single-pair ones through their group's heap, multi-asset ones as candidates of the first round
                # (``hot``). With no oracle lag a call's profit is at most the bonus on the whole debt at this
                # step's highest debt prices (see the drop rule below), so one that cannot cover this step's gas
                # waits on without being examined, and one that cannot cover the rest of the path's cheapest gas
                # is dropped. With no reaction delay either, a single-pair one that the first round examines
                # (liquidatable at its prices, its key past the group's threshold) is examined here, at those
                # prices: if its call is refused or does not pay it waits on (or is dropped) as the first round
                # would have it, without entering the heap; the first round's calls are independent (prices and
                # pool states fixed) and one the cap does not reach waits for the next step either way. (Not the
                # multi-asset ones: they are candidates anyway, and most wait for the cap, not for profit.)
                n_keep = 0
                n_hot = 0
                for q in range(n_pend):
                    i = pend[q]
                    # A single-pair account's terms do not change while it waits (it is in no stream): its
                    # record (group, venue, assets, amounts, LT, key, bonus bounds; built at its first
                    # examination here) moves with it to its kept slot n_keep <= q, so the checks that decide
                    # most waiting accounts (the drop rule, the gas bound, and the partial call's bound below)
                    # read one row instead of a dozen scattered arrays. The same float operations as below;
                    # any other case falls through to the full examination.
                    g = pr_i[q, 0]
                    if g >= 0:
                        if n_keep != q:
                            for x in range(5):
                                pr_i[n_keep, x] = pr_i[q, x]
                            for x in range(7):
                                pr_f[n_keep, x] = pr_f[q, x]
                    else:
                        # A multi-asset one (not an exact group) at a close-factor venue with no oracle lag and no
                        # reaction delay: the checks below (the drop rule, the gas bound, the health, the call's
                        # bound) read its packed record (group, row, bonus bounds, each leg's asset, paused flag,
                        # LT and starting amount: mr_off/mr_i/mr_f, built per chunk) instead of a dozen scattered
                        # arrays; an account untouched this path still holds its starting amounts (every write to
                        # c_cur/d_cur marks it touched first, and the path's reset restores them), a touched one's
                        # are read from c_cur/d_cur. The same float operations in the same order.
                        o = mr_off[i]
                        g = mr_i[o]
                        j = grp_venue[g]
                        if delay == 0 and not gexact[g] and rule[j] == RULE_CLOSE_FACTOR_CALL and lag[j] == 0:
                            pr_i[n_keep, 0] = -1
                            nc = mr_i[o + 1]
                            nd = mr_i[o + 2]
                            ob = o + 6 + 3 * nc  # its debt legs
                            tch = touched_flag[i]
                            co = coff[i] if tch else 0
                            do_ = doff[i] if tch else 0
                            mb = mr_f[o + 4]
                            mb_tol = mr_f[o + 5]
                            debt_now = 0.0
                            debt_hi = 0.0
                            for y in range(nd):
                                dda = mr_i[ob + 2 * y] >> 1
                                dq = d_cur[do_ + y] if tch else mr_f[ob + 2 * y + 1]
                                debt_now += dq * high[path, t, dda] * f_cap[dda]
                                debt_hi += dq * max_px[t, dda] * f_cap[dda]
                            if debt_hi * mb_tol - gas_min[t] - min_profit < 0.0:
                                continue
                            if debt_now * mb_tol - gas_usd - min_profit < 0.0:
                                pend[n_keep] = i
                                n_keep += 1
                                continue
                            # the health and aave_call's choice of legs in one pass per side (the same products)
                            w = 0.0
                            kc = -1
                            best = 0.0
                            for y in range(nc):
                                e = o + 6 + 3 * y
                                cq = c_cur[co + y] if tch else mr_f[e + 2]
                                ltq = mr_f[e + 1]
                                v = cq * oc[j, mr_i[e] >> 1]
                                w += v * ltq
                                v = v * (1.0 if ltq > 0.0 else 0.0)
                                if v > best:
                                    best, kc = v, y
                            debt = 0.0
                            kd = -1
                            bestd = 0.0
                            for y in range(nd):
                                e = ob + 2 * y
                                dq = d_cur[do_ + y] if tch else mr_f[e + 1]
                                v = dq * od[j, mr_i[e] >> 1]
                                debt += v
                                if v > bestd:
                                    bestd, kd = v, y
                            hf = w / debt if debt > 0.0 else np.inf
                            hot_hf[n_hot] = hf
                            if hf < 1.0:
                                lim = min(bestd, best)
                                if hf > v_cf_hf[j] and best >= v_min_base[j] and bestd >= v_min_base[j]:
                                    lim = min(lim, debt * v_cf[j])
                                if kc >= 0 and kd >= 0 and not ((mr_i[o + 6 + 3 * kc] & 1) != 0 or
                                                                (mr_i[ob + 2 * kd] & 1) != 0) and \
                                        lim * mb_tol - gas_usd - min_profit < 0.0:
                                    debt_hi = 0.0
                                    for y in range(nd):
                                        dda = mr_i[ob + 2 * y] >> 1
                                        dq = d_cur[do_ + y] if tch else mr_f[ob + 2 * y + 1]
                                        debt_hi += dq * max_px[t + 1, dda] * f_cap[dda]
                                    if not debt_hi * mb - gas_min[t + 1] - min_profit < 0.0:
                                        pend[n_keep] = i
                                        n_keep += 1
                                    continue
                            hot[n_hot] = i
                            hot_v[n_hot] = j
                            hot_row[n_hot] = mr_i[o + 3]
                            n_hot += 1
                            continue
                        g = pos_group[i]
                        j = pos_venue[i]
                        kc = pair_c[i]
                        kd = pair_d[i]
                        if gexact[g] and kc >= 0 and kd >= 0 and rule[j] == RULE_CLOSE_FACTOR_CALL and lag[j] == 0 \
                                and delay == 0:
                            pr_i[n_keep, 0] = g
                            pr_i[n_keep, 1] = j
                            pr_i[n_keep, 2] = ca[kc]
                            pr_i[n_keep, 3] = da[kd]
                            pr_i[n_keep, 4] = c_cur[kc] > 0.0 and d_cur[kd] > 0.0 and not (cpaused[kc] or dpaused[kd])
                            pr_f[n_keep, 0] = c_cur[kc]
                            pr_f[n_keep, 1] = d_cur[kd]
                            pr_f[n_keep, 2] = lt[kc]
                            pr_f[n_keep, 3] = pair_key(c_cur[kc], d_cur[kd], p0[ca[kc]], p0[da[kd]], lt[kc])
                            pr_f[n_keep, 4] = acc_mb[i]
                            pr_f[n_keep, 5] = acc_mb[i] + PROFIT_TOL * acc_lbhi[i]
                            pr_f[n_keep, 6] = lb[kc]
                        else:
                            pr_i[n_keep, 0] = -1
                            g = -1
                    if g >= 0:
                        j = pr_i[n_keep, 1]
                        a = pr_i[n_keep, 2]
                        dda = pr_i[n_keep, 3]
                        dd = pr_f[n_keep, 1]
                        mb = pr_f[n_keep, 4]
                        mb_tol = pr_f[n_keep, 5]
                        debt_now = 0.0
                        debt_now += dd * high[path, t, dda] * f_cap[dda]
                        debt_hi = 0.0
                        debt_hi += dd * max_px[t, dda] * f_cap[dda]
                        if debt_hi * mb_tol - gas_min[t] - min_profit < 0.0:
                            continue
                        if debt_now * mb_tol - gas_usd - min_profit < 0.0:
                            pend[n_keep] = i
                            n_keep += 1
                            continue
                        cq = pr_f[n_keep, 0]
                        pdv = od[j, dda]
                        debt = dd * pdv
                        hf = ((cq * oc[j, a]) * pr_f[n_keep, 2]) / debt if debt > 0.0 else np.inf
                        if hf < 1.0 and pr_f[n_keep, 3] > thr[g] and pr_i[n_keep, 4] != 0:
                            dv = dd * pdv
                            cv = cq * oc[j, a]
                            lbk = pr_f[n_keep, 6]
                            # The partial call's bound (the examination's, below), or one for a call of any size: it
                            # seizes at most the collateral, so its bonus is at most cv (1 - 1/LB)(1 - fee) <= cv mb / LB
                            # (mb_tol: with the float rounding); these are the full-close accounts left under water. A
                            # call the dust rule would refuse waits there instead of facing the drop rule: dropped or
                            # waiting, an account that can never pay is never liquidated.
                            if (hf > v_cf_hf[j] and dv >= v_min_base[j] and cv >= v_min_base[j] and
                                    dv * v_cf[j] * mb_tol - gas_usd - min_profit < 0.0) or \
                                    (lbk > 1.0 and cv * (mb_tol / lbk) - gas_usd - min_profit < 0.0):
                                debt_hi = 0.0
                                debt_hi += dd * max_px[t + 1, dda] * f_cap[dda]
                                if not debt_hi * mb - gas_min[t + 1] - min_profit < 0.0:
                                    pend[n_keep] = i
                                    n_keep += 1
                                continue
                    j = pos_venue[i]
                    g = pos_group[i]
                    kc = pair_c[i]
                    kd = pair_d[i]
                    hot_hf[n_hot] = -1.0  # its health if it waits on in ``hot``: unknown unless the check below finds it
                    if rule[j] == RULE_CLOSE_FACTOR_CALL and lag[j] == 0:
                        mb = acc_mb[i]
                        lb_hi = acc_lbhi[i]
                        debt_now = 0.0
                        debt_hi = 0.0
                        for x in range(doff[i], doff[i + 1]):
                            dda = da[x]
                            debt_now += d_cur[x] * high[path, t, dda] * f_cap[dda]
                            debt_hi += d_cur[x] * max_px[t, dda] * f_cap[dda]
                        mb_tol = mb + PROFIT_TOL * lb_hi  # the float rounding of the call's own arithmetic
                        if debt_hi * mb_tol - gas_min[t] - min_profit < 0.0:
                            continue
                        if debt_now * mb_tol - gas_usd - min_profit < 0.0:
                            pend[n_keep] = i
                            n_keep += 1
                            continue
                        if delay == 0 and not gexact[g]:
                            # A multi-asset one that the first round finds liquidatable and whose call (aave_call's
                            # choice of legs) cannot pay its gas: the drop rule decides here, without the
                            # candidates' health heap and the call's arithmetic (most multi-asset accounts that
                            # wait, wait for profit, step after step: a call takes one leg pair, not the debt).
                            w = 0.0
                            for x in range(coff[i], coff[i + 1]):
                                w += (c_cur[x] * oc[j, ca[x]]) * lt[x]
                            debt = 0.0
                            for x in range(doff[i], doff[i + 1]):
                                debt += d_cur[x] * od[j, da[x]]
                            hf = w / debt if debt > 0.0 else np.inf
                            hot_hf[n_hot] = hf  # the candidates' health check reads it (same prices, same legs)
                            if hf < 1.0:
                                kc = -1
                                best = 0.0
                                for x in range(coff[i], coff[i + 1]):
                                    v = c_cur[x] * oc[j, ca[x]] * (1.0 if lt[x] > 0.0 else 0.0)
                                    if v > best:
                                        best, kc = v, x
                                kd = -1
                                bestd = 0.0
                                total_debt = 0.0
                                for x in range(doff[i], doff[i + 1]):
                                    v = d_cur[x] * od[j, da[x]]
                                    total_debt += v
                                    if v > bestd:
                                        bestd, kd = v, x
                                # call_pair repays at most the chosen debt leg (less, under the close factor, in its
                                # partial case) and seizes at most the chosen collateral leg: the bonus is at most
                                # the smaller of the two values times the bonus share
                                lim = min(bestd, best)
                                if hf > v_cf_hf[j] and best >= v_min_base[j] and bestd >= v_min_base[j]:
                                    lim = min(lim, total_debt * v_cf[j])
                                if kc >= 0 and kd >= 0 and not (cpaused[kc] or dpaused[kd]) and \
                                        lim * mb_tol - gas_usd - min_profit < 0.0:
                                    debt_hi = 0.0
                                    for x in range(doff[i], doff[i + 1]):
                                        debt_hi += d_cur[x] * max_px[t + 1, da[x]] * f_cap[da[x]]
                                    if not debt_hi * mb - gas_min[t + 1] - min_profit < 0.0:
                                        pend[n_keep] = i
                                        n_keep += 1
                                    continue
                                kc = pair_c[i]
                                kd = pair_d[i]
                        if delay == 0 and gexact[g]:  # the first round's examination, as the merge makes it
                            if kc >= 0 and kd >= 0:
                                debt = d_cur[kd] * od[j, da[kd]]
                                hf = ((c_cur[kc] * oc[j, ca[kc]]) * lt[kc]) / debt if debt > 0.0 else np.inf
                            else:
                                hf = account_health(i, j, coff, doff, ca, c_cur, lt, da, d_cur, oc, od)
                            seen = hf < 1.0
                            if seen:
                                if kc >= 0 and kd >= 0:
                                    key = pair_key(c_cur[kc], d_cur[kd], p0[ca[kc]], p0[da[kd]], lt[kc])
                                else:
                                    key = account_key(i, coff, doff, ca, c_cur, lt, da, d_cur, p0)
                                seen = key > thr[g]
                            if seen:
                                short = False
                                if kc >= 0 and kd >= 0:
                                    if c_cur[kc] > 0.0 and d_cur[kd] > 0.0 and not (cpaused[kc] or dpaused[kd]):
                                        pdv = od[j, da[kd]]
                                        dv = d_cur[kd] * pdv
                                        # Most accounts that wait for profit are partial calls (call_pair's
                                        # close-factor case): the call repays at most close_factor x the debt, so
                                        # its bonus is at most that times the bonus share (mb_tol: with the float
                                        # rounding of the call's arithmetic). Below gas it does not pay whatever
                                        # the dust rule makes of it: skip the call's arithmetic (a refused call
                                        # would wait instead of facing the drop rule; dropped or waiting, an
                                        # account that can never pay is never liquidated).
                                        short = hf > v_cf_hf[j] and dv >= v_min_base[j] and \
                                            c_cur[kc] * oc[j, ca[kc]] >= v_min_base[j] and \
                                            dv * v_cf[j] * mb_tol - gas_usd - min_profit < 0.0
                                        if short:
                                            ok, repay, seize = True, 0.0, 0.0
                                        else:
                                            ok, kc, kd, repay, seize = call_pair(
                                                c_cur[kc], d_cur[kd], oc[j, ca[kc]], pdv, lb[kc], hf, dv, v_cf[j],
                                                v_cf_hf[j], v_min_base[j], v_floor[j], v_cfr[j], kc, kd)
                                    else:
                                        ok, repay, seize = False, 0.0, 0.0
                                else:
                                    ok, kc, kd, repay, seize = aave_call(i, j, coff, doff, ca, c_cur, lt, lb, cpaused,
                                                                         da, d_cur, dpaused, oc, od, hf, v_cf[j],
                                                                         v_cf_hf[j], v_min_base[j], v_floor[j],
                                                                         v_cfr[j])
                                if not ok:  # refused: waits
                                    pend[n_keep] = i
                                    n_keep += 1
                                    continue
                                if short:
                                    profit = -np.inf
                                else:
                                    a = ca[kc]
                                    dda = da[kd]
                                    pc = oc[j, a]
                                    pdx = od[j, dda]
                                    lbd = lb[kc] if lb[kc] > 0.0 else 1.0
                                    bonus_tok = seize - seize / lbd
                                    fee_tok = bonus_tok * fee[kc]
                                    seized_usd = seize * pc
                                    fee_usd = fee_tok * pc
                                    bonus_usd = (bonus_tok - fee_tok) * pc
                                    keep = fee_usd / seized_usd if seized_usd > 0.0 else 0.0
                                    sell = seize * (1.0 - keep)
                                    profit = bonus_usd - gas_usd - min_profit
                                    if not profit + PROFIT_TOL * (sell * pc + repay * pdx) < 0.0:
                                        if sell != 0.0:
                                            profit -= sell * pc - proceeds_row(liq[a, 0], (liq[a, 1], liq[a, 2],
                                                                               liq[a, 3], liq[a, 4]), sold[a], sell,
                                                                               low[path, t, a])
                                        if repay != 0.0:
                                            profit -= purchase_row(liq[dda, 0], (liq[dda, 1], liq[dda, 2],
                                                                   liq[dda, 3], liq[dda, 4]), sold[dda], repay,
                                                                   high[path, t, dda]) - repay * pdx
                                if not profit >= 0.0:  # does not pay: waits, or is dropped (the rule below)
                                    debt_hi = 0.0
                                    for x in range(doff[i], doff[i + 1]):
                                        debt_hi += d_cur[x] * max_px[t + 1, da[x]] * f_cap[da[x]]
                                    if not debt_hi * mb - gas_min[t + 1] - min_profit < 0.0:
                                        pend[n_keep] = i
                                        n_keep += 1
                                    continue
                                kc = pair_c[i]
                                kd = pair_d[i]
                    if not gexact[g]:
                        hot[n_hot] = i
                        hot_v[n_hot] = j
                        hot_row[n_hot] = pos_row[i]
                        n_hot += 1
                        continue
                    if kc >= 0 and kd >= 0:
                        key = pair_key(c_cur[kc], d_cur[kd], p0[ca[kc]], p0[da[kd]], lt[kc])
                    else:
                        key = account_key(i, coff, doff, ca, c_cur, lt, da, d_cur, p0)
                    # heap_push written out (a call binds hkey and hpos, a reference count each, once per push)
                    hb_ = goff[g]
                    hx_ = hsize[g]
                    hkey[hb_ + hx_] = key
                    hpos[hb_ + hx_] = i
                    while hx_ > 0:
                        hp_ = (hx_ - 1) // 2
                        if hkey[hb_ + hp_] >= hkey[hb_ + hx_]:
                            break
                        hkey[hb_ + hp_], hkey[hb_ + hx_] = hkey[hb_ + hx_], hkey[hb_ + hp_]
                        hpos[hb_ + hp_], hpos[hb_ + hx_] = hpos[hb_ + hx_], hpos[hb_ + hp_]
                        hx_ = hp_
                    hsize[g] = hsize[g] + 1
                n_pend = n_keep
            for a in range(n_assets):
                round_sales[a] = 0.0
            executed_any = False
            n_back = 0
            for j in range(n_venues):
                if calls_left[j] <= 0:
                    continue
                # ---- the venue's candidates as ordered streams, merged by (health, row) while calls remain.
                # Single-pair groups: health is monotone in the key, so each group's stream is its pointer
                # and heap in key order and only its head is examined (O(calls + groups), however long the
                # queue behind the cap). Multi-asset groups: every account whose key passes the group's
                # ratio, confirmed with the exact health and put in one min-heap by (health, row) (the bound
                # is not an order; a cap that takes few of many orders only those it takes).
                n_c = 0
                n_act = 0
                for q in range(n_hot):  # multi-asset accounts that waited since the last step
                    if hot_v[q] == j:
                        cand[n_c] = hot[q]
                        cand_hf[n_c] = hot_hf[q]
                        cand_row[n_c] = hot_row[q]
                        n_c += 1
                n_hc = n_c
                for g in range(vgoff[j], vgoff[j + 1]):
                    th = thr[g]
                    if gexact[g]:  # its head is found when the merge below first looks at it
                        act[n_act] = g
                        n_act += 1
                        continue
                    p = ptr[g]
                    end = goff[g + 1]
                    while p < end and gkey[p] > th:
                        cand[n_c] = p
                        n_c += 1
                        p += 1
                    ptr[g] = p
                    while hsize[g] > 0 and hkey[goff[g]] > th:
                        i, hsize[g] = heap_pop(hkey, hpos, goff[g], hsize[g])
                        cand[n_c] = i
                        n_c += 1
                    for lot in range(N_LOTS):  # parked accounts whose prices moved against them enough
                        sz = lsize[g, lot]
                        if sz == 0:
                            continue
                        # the lot's worst ratio (lot_ratios) and its heap pops written out: this runs per group, lot
                        # and round, and a helper binds its array arguments again at each call
                        lo = np.inf
                        for x in range(gc_off[g], gc_off[g + 1]):
                            a = gc[x]
                            lo = min(lo, oc[j, a] / lot_rc[g, lot, a])
                        if gc_off[g + 1] == gc_off[g]:
                            lo = 0.0
                        hi = 0.0
                        for x in range(gd_off[g], gd_off[g + 1]):
                            b = gd[x]
                            hi = max(hi, od[j, b] / lot_rd[g, lot, b])
                        lth = (lo / hi) * (1.0 - KEY_TOL)
                        base = lot * n_acc + goff[g]
                        while sz > 0 and lkey[base] > lth:
                            cand[n_c] = lpos[base]
                            n_c += 1
                            sz -= 1
                            # the last entry sifts down from the root, held aside while the larger children move up
                            # (the same comparisons and final places; the child's choice without a branch)
                            kx_ = lkey[base + sz]
                            px_ = lpos[base + sz]
                            x = 0
                            while True:
                                lch = 2 * x + 1
                                if lch >= sz:
                                    break
                                child = lch
                                if lch + 1 < sz:
                                    child = lch + (lkey[base + lch + 1] > lkey[base + lch])
                                kch = lkey[base + child]
                                if kx_ >= kch:
                                    break
                                lkey[base + x] = kch
                                lpos[base + x] = lpos[base + child]
                                x = child
                            lkey[base + x] = kx_
                            lpos[base + x] = px_
                        lsize[g, lot] = sz
                n_ok = 0
                for q in range(n_c):
                    i = cand[q]
                    # account_health written out (the same float operations): this runs once per candidate
                    # examination, and an inlined helper binds its every array argument again
                    hf = cand_hf[q] if q < n_hc else -1.0  # a waiting one's, from the first round's check
                    rw = cand_row[q] if q < n_hc else -1
                    if hf < 0.0:  # (from its packed record, as the first round's check reads it)
                        o = mr_off[i]
                        nc = mr_i[o + 1]
                        ob = o + 6 + 3 * nc
                        tch = touched_flag[i]
                        co = coff[i] if tch else 0
                        do_ = doff[i] if tch else 0
                        w = 0.0
                        for y in range(nc):
                            e = o + 6 + 3 * y
                            cq = c_cur[co + y] if tch else mr_f[e + 2]
                            w += (cq * oc[j, mr_i[e] >> 1]) * mr_f[e + 1]
                        debt = 0.0
                        for y in range(mr_i[o + 2]):
                            e = ob + 2 * y
                            dq = d_cur[do_ + y] if tch else mr_f[e + 1]
                            debt += dq * od[j, mr_i[e] >> 1]
                        hf = w / debt if debt > 0.0 else np.inf
                        rw = mr_i[o + 3]
                    if hf < 1.0 and (delay == 0 or account_health(i, j, coff, doff, ca, c_cur, lt, da, d_cur,
                                                                  pc_past, pd_past) < 1.0):
                        cand_row[n_ok] = rw  # (n_ok <= q)
                        cand[n_ok] = i
                        cand_hf[n_ok] = hf
                        n_ok += 1
                    else:  # within the bound but not liquidatable: back after the round (its health known)
                        back[n_back] = i
                        back_hf[n_back] = hf
                        n_back += 1
                if n_ok == 0 and n_act == 0:
                    continue
                # the confirmed multi-asset candidates as a min-heap by (health, row): the cap takes them in that
                # order, and those it does not reach wait in any order (the next step sorts them again)
                # (built once per venue and round; the pop below is written out: it runs once per call taken)
                m_size = health_heap(mheap, cand_hf, cand_row, n_ok)
                n_s = 0  # act[:n_s]: the single-pair groups with a head, by the head's (health, row); act[n_s:n_act]: to place
                while calls_left[j] > 0:
                    for q in range(n_s, n_act):  # every group at the first look, then the one taken from last
                        g = act[q]
                        # The group's next account (pointer or heap, the larger key) and its health, written out here
                        # rather than in an inlined helper: numba binds an inlined function's array arguments to new
                        # variables, one reference-count increment and decrement per array per call, and this runs
                        # once per liquidation attempt.
                        p = ptr[g]
                        ks = gkey[p] if p < goff[g + 1] else -1.0
                        kh = hkey[goff[g]] if hsize[g] > 0 else -1.0
                        if not (ks > thr[g] or kh > thr[g]):
                            head_i[g] = -1  # none left this round (the round adds none: prices and streams are fixed)
                            continue
                        from_heap = kh > ks
                        ih = hpos[goff[g]] if from_heap else p
                        head_i[g] = ih
                        head_heap[g] = from_heap
                        kc = pair_c[ih]
                        kd = pair_d[ih]
                        if kc >= 0 and kd >= 0:  # one pair (the other columns add exact zeros)
                            debt = d_cur[kd] * od[j, da[kd]]
                            hg = ((c_cur[kc] * oc[j, ca[kc]]) * lt[kc]) / debt if debt > 0.0 else np.inf
                        else:
                            hg = account_health(ih, j, coff, doff, ca, c_cur, lt, da, d_cur, oc, od)
                        rg = pos_row[ih]
                        head_hf[g] = hg
                        head_row[g] = rg
                        # its place among the others (rows are distinct: a strict order, the scan's minimum first)
                        # (counted and shifted without data-dependent branches: the place is as good as random)
                        x = 0
                        for y in range(n_s):
                            ha = head_hf[act[y]]
                            x += (ha < hg) | ((ha == hg) & (head_row[act[y]] < rg))
                        for y in range(n_s, 0, -1):
                            act[y] = act[y - (y > x)]
                        act[x] = g
                        n_s += 1
                    n_act = n_s
                    best_g = act[0] if n_s > 0 else -1
                    best_hf = head_hf[best_g] if n_s > 0 else np.inf
                    best_row = head_row[best_g] if n_s > 0 else 0
                    top = mheap[0]
                    if m_size > 0 and (best_g < 0 or cand_hf[top] < best_hf or (
                            cand_hf[top] == best_hf and cand_row[top] < best_row)):
                        i = cand[top]
                        hf = cand_hf[top]
                        # health_heap_pop written out (kernel_rules._health_sift: the same sift as the build above; a
                        # call binds its arrays once per call taken)
                        m_size -= 1
                        ix = mheap[m_size]
                        hx = cand_hf[ix]
                        rx = cand_row[ix]
                        x = 0
                        while True:
                            lch = 2 * x + 1
                            if lch >= m_size:
                                break
                            child = lch
                            if lch + 1 < m_size:
                                ia = mheap[lch + 1]
                                ib = mheap[lch]
                                ha = cand_hf[ia]
                                hb = cand_hf[ib]
                                child = lch + ((ha < hb) | ((ha == hb) & (cand_row[ia] < cand_row[ib])))
                            ia = mheap[child]
                            ha = cand_hf[ia]
                            if not ((ha < hx) | ((ha == hx) & (cand_row[ia] < rx))):
                                break
                            mheap[x] = ia
                            x = child
                        mheap[x] = ix
                    elif best_g >= 0:
                        g = best_g
                        i = head_i[g]
                        hf = head_hf[g]
                        if head_heap[g]:  # heap_pop written out (a call binds hkey and hpos)
                            # the last entry sifts down from the root, held aside while the larger children move up
                            # (the swaps' comparisons and final places; the child's choice without a branch)
                            hb_ = goff[g]
                            hz_ = hsize[g] - 1
                            kx_ = hkey[hb_ + hz_]
                            px_ = hpos[hb_ + hz_]
                            hx_ = 0
                            while True:
                                lch = 2 * hx_ + 1
                                if lch >= hz_:
                                    break
                                child = lch
                                if lch + 1 < hz_:
                                    child = lch + (hkey[hb_ + lch + 1] > hkey[hb_ + lch])
                                kch = hkey[hb_ + child]
                                if kx_ >= kch:
                                    break
                                hkey[hb_ + hx_] = kch
                                hpos[hb_ + hx_] = hpos[hb_ + child]
                                hx_ = child
                            hkey[hb_ + hx_] = kx_
                            hpos[hb_ + hx_] = px_
                            hsize[g] = hz_
                        else:
                            ptr[g] += 1
                        for y in range(1, n_s):  # its next head is placed at the next look
                            act[y - 1] = act[y]
                        n_s -= 1
                        act[n_s] = g
                        if not hf < 1.0 or (delay > 0 and not _hf(i, j, pair_c, pair_d, coff, doff, ca, c_cur, lt,
                                                                  da, d_cur, pc_past, pd_past) < 1.0):
                            back[n_back] = i  # within the key tolerance but not liquidatable: back after the round
                            back_hf[n_back] = hf
                            n_back += 1
                            continue
                    else:
                        break
                    if rule[j] == RULE_CLOSE_FACTOR_CALL:
                        kc = pair_c[i]
                        kd = pair_d[i]
                        if kc >= 0 and kd >= 0:  # one pair: the liquidator's choice is made
                            if c_cur[kc] > 0.0 and d_cur[kd] > 0.0 and not (cpaused[kc] or dpaused[kd]):
                                pdv = od[j, da[kd]]
                                ok, kc, kd, repay, seize = call_pair(
                                    c_cur[kc], d_cur[kd], oc[j, ca[kc]], pdv, lb[kc], hf, d_cur[kd] * pdv, v_cf[j],
                                    v_cf_hf[j], v_min_base[j], v_floor[j], v_cfr[j], kc, kd)
                            else:
                                ok, repay, seize = False, 0.0, 0.0
                        else:  # aave_call written out (the same operations; a call binds its 12 array arguments)
                            kc = -1
                            best = 0.0
                            for x in range(coff[i], coff[i + 1]):
                                v = c_cur[x] * oc[j, ca[x]] * (1.0 if lt[x] > 0.0 else 0.0)
                                if v > best:
                                    best, kc = v, x
                            kd = -1
                            bestd = 0.0
                            total_debt = 0.0
                            for x in range(doff[i], doff[i + 1]):
                                v = d_cur[x] * od[j, da[x]]
                                total_debt += v
                                if v > bestd:
                                    bestd, kd = v, x
                            if kc < 0 or kd < 0 or cpaused[kc] or dpaused[kd]:
                                ok, repay, seize = False, 0.0, 0.0
                            else:
                                ok, kc, kd, repay, seize = call_pair(
                                    c_cur[kc], d_cur[kd], oc[j, ca[kc]], od[j, da[kd]], lb[kc], hf, total_debt,
                                    v_cf[j], v_cf_hf[j], v_min_base[j], v_floor[j], v_cfr[j], kc, kd)
                        if not ok:  # refused (no pair, paused, dust): not again this step
                            pend[n_pend] = i
                            pr_i[n_pend, 0] = -1
                            n_pend += 1
                            continue
                        a = ca[kc]
                        dda = da[kd]
                        pc = oc[j, a]
                        pdx = od[j, dda]
                        lbd = lb[kc] if lb[kc] > 0.0 else 1.0
                        bonus_tok = seize - seize / lbd
                        fee_tok = bonus_tok * fee[kc]
                        seized_usd = seize * pc
                        fee_usd = fee_tok * pc
                        bonus_usd = (bonus_tok - fee_tok) * pc
                        keep = fee_usd / seized_usd if seized_usd > 0.0 else 0.0
                        sell = seize * (1.0 - keep)
                        profit = bonus_usd - gas_usd - min_profit
                        # With no oracle lag the oracle prices are the market's at the round's pool states, so the
                        # sale's slippage and the purchase's cost above the oracle are >= 0 (the drop rule below):
                        # a bonus below gas + min_profit (beyond the float rounding of the two integrals) is a loss
                        # without them.
                        if lag[j] != 0 or not profit + PROFIT_TOL * (sell * pc + repay * pdx) < 0.0:
                            # (the pool's row as scalars: passing the liq array to a helper costs a reference
                            # count per call, and this runs once per liquidation call)
                            if sell != 0.0:
                                if sq_c[a] > 0.0 and not sold[a] < 0.0 and sell > 0.0:  # sale_proceeds_usd's case
                                    proc = low[path, t, a] * floored_sqrt_integral_at(sq_c[a], sq_u[a], sold[a], sell)
                                else:
                                    proc = proceeds_row(liq[a, 0], (liq[a, 1], liq[a, 2], liq[a, 3], liq[a, 4]), sold[a],
                                                        sell, low[path, t, a])
                                profit -= sell * pc - proc
                            if repay != 0.0:  # the liquidator buys the debt it repays
                                profit -= purchase_row(liq[dda, 0], (liq[dda, 1], liq[dda, 2], liq[dda, 3], liq[dda, 4]),
                                                       sold[dda], repay, high[path, t, dda]) - repay * pdx
                        if not profit >= 0.0:
                            # With no oracle lag the sale's slippage and the purchase's cost above the oracle
                            # are >= 0, and the debt's market price is at most its bar high times the impact of
                            # buying back every debt token of the books (f_cap), so the bonus on the whole debt
                            # at the rest of the path's highest debt prices bounds every future profit: below the
                            # rest of the path's cheapest gas the account can never be liquidated and is dropped
                            # instead of re-examined every step.
                            drop = lag[j] == 0
                            debt_hi = 0.0
                            for q in range(doff[i], doff[i + 1]):
                                debt_hi += d_cur[q] * max_px[t + 1, da[q]] * f_cap[da[q]]
                            mb = acc_mb[i]
                            if not (drop and debt_hi * mb - gas_min[t + 1] - min_profit < 0.0):
                                pend[n_pend] = i
                                pr_i[n_pend, 0] = -1
                                n_pend += 1
                            continue
                        new_c = 0.0 if seize >= c_cur[kc] else c_cur[kc] - seize
                        new_d = 0.0 if repay >= d_cur[kd] else d_cur[kd] - repay
                        if not touched_flag[i]:  # _mark written out (a call binds its two arrays)
                            touched_flag[i] = True
                            touched_list[tl_n] = i
                            tl_n += 1
                        c_cur[kc] = new_c
                        d_cur[kd] = new_d
                        repaid_usd = repay * pdx
                        bad_usd = 0.0
                        # one pair: its counted leg is kc (counted_left, without binding the arrays again)
                        left_c = c_cur[kc] != 0.0 if pair_c[i] >= 0 else counted_left(i, coff, c_cur, lt)
                        again = left_c  # with no counted collateral left no call can take anything again
                        if not left_c and v_nodef[j]:  # v2: the rest of the debt stays, unbacked
                            unb = 0.0
                            for q in range(doff[i], doff[i + 1]):
                                unb += d_cur[q] * od[j, da[q]]
                            o_unb[k, j] += unb
                        elif not left_c:  # v3.3 cleanup: the rest of the debt is a deficit
                            for q in range(doff[i], doff[i + 1]):
                                bad_usd += d_cur[q] * od[j, da[q]]
                                d_cur[q] = 0.0
                        round_sales[a] += sell
                        round_sales[dda] -= repay
                        col = pos_cc[kc]
                    else:  # absorb: the whole account; the absorber is paid nothing and needs no profit
                        value, credit, bonus_usd, fee_usd, owed, kc = absorb(i, j, coff, doff, ca, c_cur, lb, da,
                                                                             d_cur, oc, od, v_sf[j])
                        if kc >= 0:
                            col, pc = pos_cc[kc], oc[j, ca[kc]]
                        else:  # nothing to seize: column 0, as argmax over an all-zero row
                            col, pc = 0, (oc[j, store_cols[j, 0]] if store_cols[j, 0] >= 0 else 0.0)
                        for q in range(coff[i], coff[i + 1]):
                            inventory[j, ca[q]] += c_cur[q]
                        repaid_usd = min(credit, owed)
                        seized_usd = value
                        bad_usd = max(owed - credit, 0.0)
                        o_ret[k, j] += max(credit - owed, 0.0)
                        reserves[j] -= max(owed, credit)
                        tl_n = _mark(i, touched_flag, touched_list, tl_n)
                        for q in range(coff[i], coff[i + 1]):
                            c_cur[q] = 0.0
                        for q in range(doff[i], doff[i + 1]):
                            d_cur[q] = 0.0
                        again = False
                    executed_any = True
                    calls_left[j] -= 1
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
                            ev[e].collateral = col
                            ev[e].debt_repaid_usd = repaid_usd
                            ev[e].collateral_seized_usd = seized_usd
                            ev[e].bonus_usd = bonus_usd
                            ev[e].protocol_fee_usd = fee_usd
                            ev[e].bad_debt_usd = bad_usd
                            ev[e].price = pc
                        ev_n[0] = e + 1
                    left = False
                    for q in range(doff[i], doff[i + 1]):
                        left = left or d_cur[q] > 0.0
                    if left and again:  # survived (partial): may go again next round
                        back[n_back] = i
                        back_hf[n_back] = np.nan  # its health changed
                        n_back += 1
                for q in range(m_size):  # not reached this step (the cap): candidates of the next step
                    pend[n_pend] = cand[mheap[q]]
                    pr_i[n_pend, 0] = -1
                    n_pend += 1
            n_hot = 0
            if has_ff:  # forced_sold_usd: the close-factor venue's sales of the round (at most one such venue)
                for a in range(n_assets):
                    o_ffsold[k] += max(round_sales[a], 0.0) * mkt_close[a]
                    ff_pre[a] = round_sales[a]
            if has_au:  # auction venues: redo, bark, take (at the round's starting prices)
                did, marked = auction_round(au, aus, au_out, out, k, t, t * m.step_s, path, oc, pc_past, delay, mkt_low,
                                            mkt_close, low[path, t], sold, liq, gas_usd, min_profit, calls_left,
                                            round_sales)
                executed_any = executed_any or did
                if marked:
                    if first_step < 0:
                        first_step = t
                    last_step = t
            # ---- perp venues at the round's starting market (their orders join the round's flows)
            if has_stress:  # the perp venues' stress margins: this round's tier tables per market
                perp_stress(t, pv, ps, mkt_low, mkt_high, hist)
            if has_band:  # the perp venues' price bands trip (or not) at every round with a pass left
                perp_band(t, t * m.step_s, pv, ps, mkt_low, mkt_high, hist)
            if has_perp and not perp_quiet(t, p_ln, p_lp, p_vi, p_nx, p_cnt, mkt_low, mkt_high, hist, p_ltb, p_lcap,
                                           p_lfund):
                acted = perp_round(path, k, t, t * m.step_s, ps, mkt_low, mkt_high, hist, low[path, t],
                                   high[path, t], liq, sold, round_sales, ev, ev_n, ev_cap)
                if acted > 0:  # 1: only a backstop unwind traded (not a liquidation)
                    executed_any = True
                if acted > 1:
                    if first_step < 0:
                        first_step = t
                    last_step = t
            # ---- forced-flow sources: after the venues' liquidations, before the settle phase (the storefronts)
            if has_ff:
                for a in range(n_assets):  # the auction and perp venues' flows (all sales / one perp venue)
                    o_ffsold[k] += max(round_sales[a] - ff_pre[a], 0.0) * mkt_close[a]
                if flows_round(k, t, t * m.step_s, fl, fst, frounds, ftmp, ftmp2, mkt_low, mkt_close, mkt_high,
                               round_sales, fo):
                    executed_any = True
            # ---- storefronts (absorb rule): buyers take inventory while reserves < target and it pays
            for j in range(n_venues):
                if rule[j] != RULE_ABSORB or reserves[j] >= v_target[j]:
                    continue
                for cc in range(store_cols.shape[1]):
                    a = store_cols[j, cc]
                    if a < 0 or not inventory[j, a] > 0.0:
                        continue
                    opx = oc[j, a]
                    store_px = opx * (1.0 - v_sf[j] * (1.0 - store_lf[j, cc]))
                    qty = storefront_quantity(liq, a, sold[a] + round_sales[a], low[path, t, a], store_px,
                                              inventory[j, a])
                    if qty <= 0.0:
                        continue
                    inventory[j, a] -= qty
                    round_sales[a] += qty
                    reserves[j] += qty * store_px
                    executed_any = True
                    if has_ff:
                        o_ffsold[k] += qty * mkt_close[a]
            park_round += 1  # the parks below share this round's prices
            for q in range(n_back):
                i = back[q]
                g = pos_group[i]
                if gexact[g]:
                    kc = pair_c[i]
                    kd = pair_d[i]
                    if kc >= 0 and kd >= 0:
                        key = pair_key(c_cur[kc], d_cur[kd], p0[ca[kc]], p0[da[kd]], lt[kc])
                    else:
                        key = account_key(i, coff, doff, ca, c_cur, lt, da, d_cur, p0)
                    # heap_push written out (a call binds hkey and hpos, a reference count each, once per push)
                    hb_ = goff[g]
                    hx_ = hsize[g]
                    hkey[hb_ + hx_] = key
                    hpos[hb_ + hx_] = i
                    while hx_ > 0:
                        hp_ = (hx_ - 1) // 2
                        if hkey[hb_ + hp_] >= hkey[hb_ + hx_]:
                            break
                        hkey[hb_ + hp_], hkey[hb_ + hx_] = hkey[hb_ + hx_], hkey[hb_ + hp_]
                        hpos[hb_ + hp_], hpos[hb_ + hx_] = hpos[hb_ + hx_], hpos[hb_ + hp_]
                        hx_ = hp_
                    hsize[g] = hsize[g] + 1
                else:  # _park written out (a call binds its ~25 array arguments; this runs once per re-park)
                    j = grp_venue[g]
                    hb = back_hf[q]
                    if hb != hb:  # its health changed (a partial liquidation): at this round's prices
                        w = 0.0
                        for x in range(coff[i], coff[i + 1]):
                            w += (c_cur[x] * oc[j, ca[x]]) * lt[x]
                        debt = 0.0
                        for x in range(doff[i], doff[i + 1]):
                            debt += d_cur[x] * od[j, da[x]]
                        hb = w / debt if debt > 0.0 else np.inf
                    if hb == np.inf:  # no debt left: never liquidatable
                        continue
                    cur = lot_cur[g]
                    if park_tag[g] == park_round:
                        up = park_up[g]
                    else:
                        up = 0.0
                        worst = 0.0
                        if cur >= 0 and lsize[g, cur] > 0:
                            worst, up = lot_ratios(g, j, cur, gc_off, gc, gd_off, gd, oc, od, lot_rc, lot_rd)
                        switched = False
                        if cur < 0 or lsize[g, cur] == 0 or up > 1.0 + LOT_SLACK or up > worst * (1.0 + LOT_SLACK):
                            fresh = -1
                            for lt_ in range(N_LOTS):
                                if lsize[g, lt_] == 0 and (fresh < 0 or lt_ == cur):
                                    fresh = lt_
                            if fresh >= 0:  # a lot referenced to the prices now
                                cur = fresh
                                lot_cur[g] = cur
                                for a in range(n_assets):
                                    lot_rc[g, cur, a] = oc[j, a]
                                    lot_rd[g, cur, a] = od[j, a]
                                up = 1.0
                                switched = True
                        if not switched:
                            park_tag[g] = park_round
                            park_up[g] = up
                    key = up / hb if hb > 0.0 else np.inf
                    lsize[g, cur] = heap_push(lkey, lpos, cur * n_acc + goff[g], lsize[g, cur], key, i)
            if not executed_any:
                break
            for a in range(n_assets):
                sold[a] += round_sales[a]
        for a in range(n_assets):
            if sold[a] != f_at[a]:
                f_at[a] = sold[a]
                f_val[a] = impact_factor(liq, a, sold[a])
            f = f_val[a]
            hist[t, a] = close[path, t, a] * f
            low_hist[t, a] = low[path, t, a] * f
            high_hist[t, a] = high[path, t, a] * f
            r = low_hist[t, a] / close[path, 0, a]
            o_mlow[k, a] = min(o_mlow[k, a], r)
            r = low[path, t, a] / close[path, 0, a]
            o_elow[k, a] = min(o_elow[k, a], r)
        if has_fund:  # funding at the step's close, before its ADL (PerpVenue.end_step's order)
            perp_fund(t, m.step_s, p_frate, p_fint, ps, hist)
        if has_perp and perp_adl_due(p_gf, p_vi):
            perp_end_step(k, t, ps, hist)  # the perp venues' ADL at the step's close
    # ---- horizon: open underwater debt, the exposure of accounts left liquidatable and unsold inventory at
    # the final market close. An untouched account that is liquidatable (or underwater) at the end has a key
    # above its group's final ratio: a prefix of its group (the exact health decides). Touched ones one by one.
    pT = hist[T]
    for j in range(n_venues):
        for a in range(n_assets):
            oc[j, a] = pT[a]
    for g in range(n_groups):
        j = grp_venue[g]
        thr_end = group_ratio(g, j, gc_off, gc, gd_off, gd, oc, oc, p0) * (1.0 - KEY_TOL)
        for p in range(goff[g], goff[g + 1]):
            if not gkey[p] > thr_end:
                break
            if not touched_flag[p]:
                _horizon(k, p, j, rule[j], coff, doff, ca, da, lt, lb, c_cur, d_cur, pT, o_ubad, o_expo)
    # Touched ones, in one pass with their reset for the next path (the account's legs are read once, while in
    # cache; the hooks below read none of them and add only to their own venues' cells, so every sum keeps its
    # order): what the path removed, the horizon's terms, the path count, then the scratch back to the start.
    for q in range(tl_n):
        i = touched_list[q]
        j = pos_venue[i]
        for x in range(doff[i], doff[i + 1]):
            o_drem[k, j] += (d0[x] - d_cur[x]) * pT[da[x]]
        _horizon(k, i, j, rule[j], coff, doff, ca, da, lt, lb, c_cur, d_cur, pT, o_ubad, o_expo)
        if liq_once[i]:
            acct[i] += 1
        for x in range(coff[i], coff[i + 1]):
            c_cur[x] = c0[x]
        for x in range(doff[i], doff[i + 1]):
            d_cur[x] = d0[x]
        touched_flag[i] = False
        liq_once[i] = False
    for j in range(n_venues):
        for a in range(n_assets):
            o_inv[k, j] += inventory[j, a] * pT[a]
    if has_au:
        auction_end_path(au, aus, out, k, pT)
    if has_perp:
        perp_end_path(k, po, ps, pT, pacct)
    o_first, o_last = out.first_liquidation_step, out.last_liquidation_step
    o_first[k] = first_step
    o_last[k] = last_step


@njit(cache=True, inline="always")
def _mark(i, touched_flag, touched_list, tl_n):
    """Remember that account i's scratch state changed this path (reset at the end)."""
    if touched_flag[i]:
        return tl_n
    touched_flag[i] = True
    touched_list[tl_n] = i
    return tl_n + 1


@njit(cache=True)
def _path_bounds(m, pos):
    """What every path shares: each pool's highest impact factor, and per account its largest bonus share
    and largest LB over its counted collateral legs (the profit bounds of waiting accounts)."""
    n = pos.venue.shape[0]
    n_assets = m.close.shape[2]
    # the highest impact factor a pool can reach: every debt token of the books bought back at once
    f_cap = np.zeros(n_assets)
    for q in range(pos.d0.shape[0]):
        f_cap[pos.da[q]] += pos.d0[q]
    for a in range(n_assets):
        f_cap[a] = max(impact_factor(m.liq, a, -f_cap[a]), 1.0)
    # per account: the largest bonus share (LB - 1)(1 - fee) and the largest LB over its counted collateral
    # legs (the profit bounds of waiting accounts)
    acc_mb = np.zeros(n)
    acc_lbhi = np.ones(n)
    for i in range(n):
        for x in range(pos.coff[i], pos.coff[i + 1]):
            if pos.lt[x] > 0.0:
                acc_mb[i] = max(acc_mb[i], (pos.lb[x] - 1.0) * (1.0 - pos.fee[x]))
                acc_lbhi[i] = max(acc_lbhi[i], pos.lb[x])
    return f_cap, acc_mb, acc_lbhi


@njit(cache=True, nogil=True)
def _run_chunk(ch, n_chunks, m, pos, ven, grp, lq, out, acct_chunks, au, au_out, pv, pp, po, pacct_chunks, fl, fo,
               f_cap, acc_mb, acc_lbhi):
    """Paths ch, ch + n_chunks, ... of ``m`` (one thread's share; the GIL is released)."""
    n_paths = m.close.shape[0]
    n = pos.venue.shape[0]
    T = m.close.shape[1] - 1
    n_assets = m.close.shape[2]
    # Thread-private copies of the read-only arrays the helpers take: a helper call binds its array
    # arguments (a reference count each), and counts on an array both threads share bounce between cores.
    pos_ch = KPositions(pos.venue, pos.row, pos.group, pos.coff.copy(), pos.doff.copy(), pos.ca.copy(), pos.cc,
                        pos.c0, pos.lt.copy(), pos.lb.copy(), pos.fee, pos.cpaused.copy(), pos.da.copy(), pos.dc,
                        pos.d0, pos.dpaused.copy(), pos.pair_c, pos.pair_d)
    grp_ch = KGroups(grp.venue, grp.venue_off, grp.off.copy(), grp.gc_off.copy(), grp.gc.copy(),
                     grp.gd_off.copy(), grp.gd.copy(), grp.key)
    m_ch = KMarket(m.close, m.low, m.high, m.liq.copy(), m.hl, m.step_s, m.gas_usd_per_call, m.gas_token,
                   m.gas_gwei, m.p0.copy())
    c_cur = pos.c0.copy()
    d_cur = pos.d0.copy()
    touched_flag = np.zeros(n, np.bool_)
    touched_list = np.empty(n, np.int64)  # each account at most once per path
    liq_once = np.zeros(n, np.bool_)
    hkey = np.empty(n)
    hpos = np.empty(n, np.int64)
    pend = np.empty(n, np.int64)
    pr_i = np.empty((n, 5), np.int64)  # a waiting single-pair account's record, per pend slot (see _run_path)
    pr_f = np.empty((n, 7))
    # each account's packed record for the waiting multi-asset checks (see _run_path): at mr_off[i], its group,
    # leg counts, row, bonus share bound and the same + PROFIT_TOL x LB bound (floats through the mr_f view);
    # then per collateral leg its asset x 2 + paused, LT and starting amount; per debt leg asset x 2 + paused
    # and starting amount
    mr_off = np.empty(n + 1, np.int64)
    sz = 0
    for i in range(n):
        mr_off[i] = sz
        sz += 6 + 3 * (pos.coff[i + 1] - pos.coff[i]) + 2 * (pos.doff[i + 1] - pos.doff[i])
    mr_off[n] = sz
    mr_i = np.zeros(max(sz, 1), np.int64)
    mr_f = mr_i.view(np.float64)
    for i in range(n):
        o = mr_off[i]
        nc = pos.coff[i + 1] - pos.coff[i]
        mr_i[o] = pos.group[i]
        mr_i[o + 1] = nc
        mr_i[o + 2] = pos.doff[i + 1] - pos.doff[i]
        mr_i[o + 3] = pos.row[i]
        mr_f[o + 4] = acc_mb[i]
        mr_f[o + 5] = acc_mb[i] + PROFIT_TOL * acc_lbhi[i]
        for y in range(nc):
            x = pos.coff[i] + y
            mr_i[o + 6 + 3 * y] = pos.ca[x] * 2 + (1 if pos.cpaused[x] else 0)
            mr_f[o + 7 + 3 * y] = pos.lt[x]
            mr_f[o + 8 + 3 * y] = pos.c0[x]
        for y in range(mr_i[o + 2]):
            x = pos.doff[i] + y
            mr_i[o + 6 + 3 * nc + 2 * y] = pos.da[x] * 2 + (1 if pos.dpaused[x] else 0)
            mr_f[o + 7 + 3 * nc + 2 * y] = pos.d0[x]
    hot = np.empty(n, np.int64)
    hot_v = np.empty(n, np.int64)
    hot_row = np.empty(n, np.int64)
    back = np.empty(n, np.int64)
    back_hf = np.empty(n)
    cand = np.empty(n, np.int64)
    cand_hf = np.empty(n)
    cand_row = np.empty(n, np.int64)
    hist = np.empty((T + 1, n_assets))
    low_hist = np.empty((T + 1, n_assets))
    high_hist = np.empty((T + 1, n_assets))
    lkey = np.empty(N_LOTS * n)
    lpos = np.empty(N_LOTS * n, np.int64)
    aus = auction_scratch(au, au_out.capacity)
    ps = perp_scratch(pv, pp, n_assets)
    fst, frounds, ftmp, ftmp2 = flows_scratch(fl)
    for path in range(ch, n_paths, n_chunks):
        _run_path(path, path, m_ch, pos_ch, ven, grp_ch, lq, out, acct_chunks[ch],
                  c_cur, d_cur, touched_flag, touched_list, liq_once, hkey, hpos, pend, hot, back, back_hf, cand,
                  cand_hf, cand_row, hist, low_hist, high_hist, lkey, lpos, f_cap, acc_mb, acc_lbhi, au, aus,
                  au_out, pv, pp, po, ps, pacct_chunks[ch], pr_i, pr_f, mr_off, mr_i, mr_f, hot_v, hot_row, fl, fo, fst,
                  frounds, ftmp, ftmp2)
    auction_collect(aus, au_out, ch)


def run_paths(n_chunks, m, pos, ven, grp, lq, out, acct_chunks, au, au_out, pv, pp, po, pacct_chunks, fl, fo):
    """All paths of ``m`` in ``n_chunks`` chunks, one thread each; ``acct_chunks[ch]`` counts per account.

    The chunks run on Python threads over the nogil :func:`_run_chunk` rather than in a numba ``prange``
    loop: the same work and the same results (each path's outputs are its own rows; the counts are per
    chunk), and the parallel loop's lowering cost about half of the whole kernel's first compile.
    """
    f_cap, acc_mb, acc_lbhi = _path_bounds(m, pos)
    args = (n_chunks, m, pos, ven, grp, lq, out, acct_chunks, au, au_out, pv, pp, po, pacct_chunks, fl, fo,
            f_cap, acc_mb, acc_lbhi)
    if n_chunks <= 1:
        _run_chunk(0, *args)
        return
    with ThreadPoolExecutor(max_workers=n_chunks, thread_name_prefix="cascade-kernel") as ex:
        for f in [ex.submit(_run_chunk, ch, *args) for ch in range(n_chunks)]:
            f.result()
