"""Market helpers shared by both engines (numba-compiled, callable from Python too).

A liquidity row is ``liq[p] = (model, p1..p4)`` from :class:`optimizer.market.liquidity.Liquidity` for
pool ``p``; model -1 means an infinitely deep market (no impact). ``flow`` is the pool's net signed
state in tokens: positive after net sales into it, negative after net purchases (see
:mod:`optimizer.market.liquidity`).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..market.liquidity import price_factor, purchase_cost_usd, sale_proceeds_usd


@njit(cache=True)
def impact_factor(liq: np.ndarray, a: int, flow_tokens: float) -> float:
    """Market price / exogenous price of pool ``a`` at net signed flow ``flow_tokens``."""
    if liq[a, 0] < 0:
        return 1.0
    return price_factor(int(liq[a, 0]), liq[a, 1:], flow_tokens)


@njit(cache=True)
def proceeds_usd(liq: np.ndarray, a: int, flow_before: float, q_tokens: float, exo_price: float) -> float:
    """USD raised by selling ``q_tokens`` into pool ``a`` from state ``flow_before``."""
    if liq[a, 0] < 0:
        return q_tokens * exo_price
    return sale_proceeds_usd(int(liq[a, 0]), liq[a, 1:], flow_before, q_tokens, exo_price)


@njit(cache=True)
def purchase_usd(liq: np.ndarray, a: int, flow_before: float, q_tokens: float, exo_price: float) -> float:
    """USD paid to buy ``q_tokens`` from pool ``a`` at state ``flow_before`` (the state falls by ``q``)."""
    if liq[a, 0] < 0:
        return q_tokens * exo_price
    return purchase_cost_usd(int(liq[a, 0]), liq[a, 1:], flow_before, q_tokens, exo_price)


@njit(cache=True, inline="always")
def proceeds_row(model: float, params: tuple, flow_before: float, q_tokens: float, exo_price: float) -> float:
    """:func:`proceeds_usd` on one pool's row given as scalars: ``model = liq[a, 0]`` and the tuple
    ``liq[a, 1:5]`` (the same operations). The kernel calls it once per liquidation call, where passing the
    ``liq`` array would cost a reference-count increment and decrement each time."""
    if model < 0:
        return q_tokens * exo_price
    return sale_proceeds_usd(int(model), params, flow_before, q_tokens, exo_price)


@njit(cache=True, inline="always")
def purchase_row(model: float, params: tuple, flow_before: float, q_tokens: float, exo_price: float) -> float:
    """:func:`purchase_usd` on one pool's row given as scalars (see :func:`proceeds_row`)."""
    if model < 0:
        return q_tokens * exo_price
    return purchase_cost_usd(int(model), params, flow_before, q_tokens, exo_price)


@njit(cache=True)
def storefront_quantity(liq: np.ndarray, a: int, sold: float, exo: float, store_px: float,
                        available: float) -> float:
    """Tokens buyers take from a store (Comet storefront, a Clipper auction) and sell into pool ``a``:
    until the market's marginal price falls to the store price."""
    if impact_factor(liq, a, sold) * exo <= store_px:
        return 0.0
    if liq[a, 0] < 0 or impact_factor(liq, a, sold + available) * exo >= store_px:
        return available
    lo, hi = 0.0, available
    for _ in range(60):  # bisection: the impact factor is monotone in the amount sold
        mid = 0.5 * (lo + hi)
        if impact_factor(liq, a, sold + mid) * exo >= store_px:
            lo = mid
        else:
            hi = mid
    return lo
