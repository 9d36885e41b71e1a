"""Market helpers shared by both engines (numba-compiled, callable from Python too).

A liquidity row is ``liq[a] = (model, p1..p4)`` from :class:`optimizer.market.liquidity.Liquidity`;
model -1 means an infinitely deep market (no impact).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from ..market.liquidity import price_factor, sale_proceeds_usd


@njit(cache=True)
def impact_factor(liq: np.ndarray, a: int, sold_tokens: float) -> float:
    if liq[a, 0] < 0:
        return 1.0
    return price_factor(int(liq[a, 0]), liq[a, 1:], sold_tokens)


@njit(cache=True)
def proceeds_usd(liq: np.ndarray, a: int, sold_before: float, q_tokens: float, exo_price: float) -> float:
    if liq[a, 0] < 0:
        return q_tokens * exo_price
    return sale_proceeds_usd(int(liq[a, 0]), liq[a, 1:], sold_before, q_tokens, exo_price)


@njit(cache=True)
def storefront_quantity(liq: np.ndarray, a: int, sold: float, exo: float, store_px: float,
                        available: float) -> float:
    """Tokens buyers take from a Comet storefront: until the market's marginal price falls to the store price."""
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
