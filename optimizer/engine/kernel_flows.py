"""Forced-flow sources on the fast kernel (numba): :mod:`optimizer.engine.flows` in the kernel's round loop.

It mirrors, with the same float operations (numpy's pairwise summation over a model's strikes, groups or
clusters written out), what :class:`~optimizer.engine.flows.FlowSource` does on the reference loop:

* **per path** (:func:`flows_start_path`): each source's state at the path's start price (dealers hedged at
  ``-D(S0, 0)``; holders at their target leverage; stops already crossed at the start counted as fired);
* **per round** (:func:`flows_round`), after the venues' liquidations and before their settle phase, at the
  round's starting market: each source trades at its asset's market close (stops: the round's market low
  and high) into its asset's pool (+ sold, - bought: the engine's convention, the models' is the opposite);
  a trade worth less than ``min_trade_usd`` is not sent and the source keeps its state; a source trades in
  at most :data:`~optimizer.engine.flows.MAX_ROUNDS_PER_STEP` rounds of a step; a trade makes the loop run
  another round. Ledger: per field name ``<model>_sold_usd`` / ``<model>_bought_usd`` (USD at the round's
  market close) and the source's sales in ``forced_sold_usd``.

The rules, per model (their definitions are in :mod:`optimizer.behaviour`):

* :data:`FLOW_DEALERS`: ``D(S, t) = sum_k q_k N(d1_k)`` (puts ``N(d1) - 1``; at or after expiry ``1{S > K}``
  and ``-1{S < K}``), ``d1 = (ln(S/K) + vol^2 tau / 2) / (vol sqrt(tau))``, zero rates; the dealers trade
  ``hedge_fraction x (-D(S, t) - hedge)`` and hold the hedge they traded to. ``N`` is :func:`ndtr` (the
  cephes branches of ``scipy.special.ndtr`` over libm's ``erf``/``erfc``: within 1e-15 of scipy's).
* :data:`FLOW_LEVERAGE`: back to the target leverage at the price (``exact``: exposure and equity
  revalued; ``first_order``: ``(L - 1) N0 dp / p0``).
* :data:`FLOW_STOPS`: every live cluster whose level the round's low (sell stops) or high (buy stops)
  reached fires its whole size, once.

Inputs: :class:`KFlows` (built by :func:`build_flow_inputs` from the sources' :meth:`kernel_spec`), the
outputs :class:`KFlowOut` (views of the ledger's fields).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

#: the kernel's flow models (a source's :meth:`~optimizer.engine.flows.FlowSource.kernel_spec` names one)
FLOW_DEALERS, FLOW_LEVERAGE, FLOW_STOPS = 0, 1, 2
#: columns of a source's data rows (``KFlows.rows``), per model:
#: dealers (strike_usd, expiry_s, implied_vol, position_base, is_call); leverage (exposure_usd, target_leverage);
#: stops (level_usd, size_base, side: -1 sell, +1 buy)
ROW_WIDTH = 5
YEAR_S = 365.0 * 86_400.0
_SQRT1_2 = 0.7071067811865476


class KFlowSpec(NamedTuple):
    """What a flow source hands the kernel (its :meth:`kernel_spec`): its model, data rows and scalars."""

    model: int  # FLOW_*
    rows: np.ndarray  # (n, ROW_WIDTH) float64
    par: float  # dealers: hedge_fraction; leverage: 1.0 first_order, 0.0 exact; stops: unused


class KFlows(NamedTuple):
    """The scenario's forced-flow sources (S of them, in table order)."""

    model: np.ndarray  # int64 (S,) FLOW_*
    asset: np.ndarray  # int64 (S,) market asset = pool it trades
    min_trade: np.ndarray  # (S,) USD
    col: np.ndarray  # int64 (S,) output column of its sold / bought fields (one per distinct field name)
    off: np.ndarray  # int64 (S+1,) its data rows rows[off[s]:off[s+1]]
    rows: np.ndarray  # (R, ROW_WIDTH)
    par: np.ndarray  # (S,)
    soff: np.ndarray  # int64 (S+1,) its state st[soff[s]:soff[s+1]] (per path, scratch)
    max_rounds: np.ndarray  # int64 (S,) rounds of a step it may trade in (flows.MAX_ROUNDS_PER_STEP)


class KFlowOut(NamedTuple):
    sold: np.ndarray  # (P, C) USD per sold field
    bought: np.ndarray  # (P, C)
    forced_sold: np.ndarray  # (P,) forced_sold_usd


def no_flows() -> KFlows:
    z = np.zeros(0, np.int64)
    return KFlows(z, z, np.zeros(0), z, np.zeros(1, np.int64), np.zeros((0, ROW_WIDTH)), np.zeros(0),
                  np.zeros(1, np.int64), z)


def state_size(model: int, n_rows: int) -> int:
    """Per-path state of one source: dealers their hedge; holders price, start price, exposure and equity per
    group; stops a fired flag per cluster."""
    if model == FLOW_DEALERS:
        return 1
    if model == FLOW_LEVERAGE:
        return 2 + 2 * n_rows
    return n_rows


def build_flow_inputs(specs: list[KFlowSpec], assets: list[int], min_trade: list[float],
                      cols: list[int], max_rounds: int) -> KFlows:
    """The kernel's struct from the sources' specs (in table order)."""
    if not specs:
        return no_flows()
    n = [s.rows.shape[0] for s in specs]
    off = np.zeros(len(specs) + 1, np.int64)
    np.cumsum(n, out=off[1:])
    soff = np.zeros(len(specs) + 1, np.int64)
    np.cumsum([state_size(s.model, k) for s, k in zip(specs, n, strict=True)], out=soff[1:])
    rows = np.ascontiguousarray(np.concatenate([np.asarray(s.rows, np.float64).reshape(-1, ROW_WIDTH)
                                                for s in specs]))
    return KFlows(np.array([s.model for s in specs], np.int64), np.array(assets, np.int64),
                  np.array(min_trade, np.float64), np.array(cols, np.int64), off, rows,
                  np.array([s.par for s in specs], np.float64), soff, np.full(len(specs), max_rounds, np.int64))


# ---------------------------------------------------------------------------------------------
# the models' arithmetic
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def ndtr(a):
    """Standard normal CDF with the branches of cephes ``ndtr`` (scipy.special): ``0.5 + 0.5 erf(a/sqrt2)`` near
    0, ``0.5 erfc(|a|/sqrt2)`` (or one minus it) in the tails, so the tails keep their relative precision."""
    x = a * _SQRT1_2
    z = abs(x)
    if z < _SQRT1_2:
        return 0.5 + 0.5 * math.erf(x)
    y = 0.5 * math.erfc(z)
    return 1.0 - y if x > 0.0 else y


@njit(cache=True)
def bs_delta_one(s, k, tau, vol, is_call):
    """One option's Black-Scholes delta, zero rates (:func:`optimizer.behaviour.dealers.bs_delta`'s operations)."""
    if tau > 0.0:
        sd = vol * math.sqrt(tau)
        d1 = (math.log(s / k) + 0.5 * sd * sd) / sd
        call = ndtr(d1)
        return call if is_call else call - 1.0
    if is_call:
        return 1.0 if s > k else 0.0
    return -1.0 if s < k else 0.0


@njit(cache=True)
def _block_sum(x, lo, n):
    """numpy's pairwise_sum on a block of at most 128: a plain loop below 8, else 8 partial sums."""
    if n < 8:
        r = 0.0
        for i in range(lo, lo + n):
            r += x[i]
        return r
    r0, r1, r2, r3 = x[lo], x[lo + 1], x[lo + 2], x[lo + 3]
    r4, r5, r6, r7 = x[lo + 4], x[lo + 5], x[lo + 6], x[lo + 7]
    i = 8
    while i < n - n % 8:
        r0 += x[lo + i]
        r1 += x[lo + i + 1]
        r2 += x[lo + i + 2]
        r3 += x[lo + i + 3]
        r4 += x[lo + i + 4]
        r5 += x[lo + i + 5]
        r6 += x[lo + i + 6]
        r7 += x[lo + i + 7]
        i += 8
    r = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    while i < n:
        r += x[lo + i]
        i += 1
    return r


@njit(cache=True)
def pairwise_sum(x, lo, n):
    """numpy's pairwise summation of ``x[lo:lo+n]`` (``ndarray.sum``): blocks of up to 128 summed by
    :func:`_block_sum`, a longer run split at ``n // 2`` rounded down to a multiple of 8 and the halves
    added; the recursion written as a stack (numba's cache does not keep recursive functions)."""
    if n <= 128:
        return _block_sum(x, lo, n)
    s_lo = np.empty(64, np.int64)
    s_n = np.empty(64, np.int64)
    s_stage = np.zeros(64, np.int64)  # 0: not split yet, 1: left half running, 2: right half running
    s_left = np.empty(64)
    d = 0
    s_lo[0], s_n[0] = lo, n
    while True:
        m = s_n[d]
        if m > 128:  # split: the left half first
            s_stage[d] = 1
            h = m // 2
            h -= h % 8
            d += 1
            s_lo[d], s_n[d], s_stage[d] = s_lo[d - 1], h, 0
            continue
        ret = _block_sum(x, s_lo[d], m)
        d -= 1
        while d >= 0:  # hand the sum up: a left half starts its right half, a right half adds up
            if s_stage[d] == 1:
                s_left[d] = ret
                s_stage[d] = 2
                h = s_n[d] // 2
                h -= h % 8
                d += 1
                s_lo[d], s_n[d], s_stage[d] = s_lo[d - 1] + h, s_n[d - 1] - h, 0
                break
            ret = s_left[d] + ret
            d -= 1
        if d < 0:
            return ret


@njit(cache=True)
def dealer_delta(rows, lo, hi, s, now_s, tmp):
    """The dealers' option delta ``D(S, t)`` over their options rows[lo:hi] (``tmp``: scratch of hi - lo)."""
    for q in range(lo, hi):
        tau = (rows[q, 1] - now_s) / YEAR_S
        tmp[q - lo] = rows[q, 3] * bs_delta_one(s, rows[q, 0], tau, rows[q, 2], rows[q, 4] > 0.5)
    return pairwise_sum(tmp, 0, hi - lo)


# ---------------------------------------------------------------------------------------------
# hooks
# ---------------------------------------------------------------------------------------------


@njit(cache=True)
def flows_scratch(fl):
    """Per chunk: the sources' state, a per-source round count, and two scratch rows (as wide as the largest
    source's data)."""
    w = 1
    for s in range(fl.model.shape[0]):
        w = max(w, fl.off[s + 1] - fl.off[s])
    return np.zeros(fl.soff[-1]), np.zeros(fl.model.shape[0], np.int64), np.zeros(w), np.zeros(w)


@njit(cache=True)
def flows_start_path(fl, st, close0, tmp):
    """Every source's state at the path's start prices ``close0`` (per asset); ``tmp`` a scratch row."""
    rows = fl.rows
    for s in range(fl.model.shape[0]):
        lo, hi, o = fl.off[s], fl.off[s + 1], fl.soff[s]
        p = close0[fl.asset[s]]
        m = fl.model[s]
        if m == FLOW_DEALERS:
            st[o] = -dealer_delta(rows, lo, hi, p, 0.0, tmp)
        elif m == FLOW_LEVERAGE:
            st[o] = p
            st[o + 1] = p
            for q in range(lo, hi):
                g = q - lo
                st[o + 2 + 2 * g] = rows[q, 0] / p  # exposure, base units
                st[o + 3 + 2 * g] = rows[q, 0] / rows[q, 1]  # equity, USD
        else:
            for q in range(lo, hi):
                sell = rows[q, 2] < 0.0
                st[o + q - lo] = 1.0 if ((p <= rows[q, 0]) if sell else (p >= rows[q, 0])) else 0.0


@njit(cache=True)
def flows_round(k, t, now_s, fl, st, rounds, tmp, tmp2, mkt_low, mkt_close, mkt_high, round_sales, fo):
    """Every source's trade of one round (see the module docstring); returns whether any traded. Adds the
    engine-signed flows to ``round_sales`` and the ledger deltas to ``fo`` (row ``k``)."""
    rows = fl.rows
    acted = False
    for s in range(fl.model.shape[0]):
        if rounds[s] >= fl.max_rounds[s]:
            continue
        lo, hi, o = fl.off[s], fl.off[s + 1], fl.soff[s]
        a = fl.asset[s]
        price = mkt_close[a]
        m = fl.model[s]
        n = hi - lo
        if m == FLOW_DEALERS:
            hedge = st[o]
            flow = fl.par[s] * (-dealer_delta(rows, lo, hi, price, now_s, tmp) - hedge)
        elif m == FLOW_LEVERAGE:
            p = st[o]
            p0 = st[o + 1]
            for q in range(lo, hi):
                g = q - lo
                if fl.par[s] > 0.5:  # first_order: N0 = A / p0, not revalued
                    tmp[g] = (rows[q, 1] - 1.0) * (rows[q, 0] / p0) * (price - p) / p0
                else:
                    eq = st[o + 3 + 2 * g] + st[o + 2 + 2 * g] * (price - p)
                    tmp[g] = rows[q, 1] * max(eq, 0.0) / price - st[o + 2 + 2 * g]
            flow = pairwise_sum(tmp, 0, n)
        else:
            lo_px = mkt_low[a]
            hi_px = mkt_high[a]
            for q in range(lo, hi):
                g = q - lo
                side = rows[q, 2]
                reached = (lo_px <= rows[q, 0]) if side < 0.0 else (hi_px >= rows[q, 0])
                fire = reached and not st[o + g] > 0.5
                tmp2[g] = 1.0 if fire else 0.0
                tmp[g] = side * rows[q, 1] if fire else 0.0
            flow = pairwise_sum(tmp, 0, n)
        usd = abs(flow) * price
        if usd < fl.min_trade[s]:
            continue  # too small to send: the source keeps its state
        # commit the state the trade leads to
        if m == FLOW_DEALERS:
            st[o] = st[o] + flow
        elif m == FLOW_LEVERAGE:
            p = st[o]
            if not fl.par[s] > 0.5:
                for g in range(n):
                    eq = st[o + 3 + 2 * g] + st[o + 2 + 2 * g] * (price - p)
                    st[o + 3 + 2 * g] = max(eq, 0.0)
                    st[o + 2 + 2 * g] = st[o + 2 + 2 * g] + tmp[g]
            st[o] = price
        else:
            for g in range(n):
                if tmp2[g] > 0.0:
                    st[o + g] = 1.0
        rounds[s] += 1
        acted = True
        round_sales[a] -= flow  # the models' sells (< 0) are sales into the pool (+)
        c = fl.col[s]
        if flow < 0.0:
            fo.sold[k, c] += usd
            fo.forced_sold[k] += max(-flow, 0.0) * price
        else:
            fo.bought[k, c] += usd
    return acted
