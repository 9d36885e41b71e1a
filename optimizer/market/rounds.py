"""Reference leverage spiral with linear impact (oracles.md §5), built on the LINEAR liquidity model.

Holders with assets ``A`` (USD) target leverage ``L``. A first return ``r0 <= 0`` makes them sell
``(L - 1) * A * |r0|`` USD to restore ``L``; that sale moves the price by ``-kappa * sold / D``, which makes
them sell again, in synchronous rounds. Returns add up (the oracle's first-order convention, assets ``A``
not revalued): after ``n`` rounds the cumulative return is ``r0 * sum_{k<n} m**k`` with
``m = kappa * (L - 1) * A / D``, converging to ``r0 / (1 - m)`` iff ``m < 1``.

Mapping ``kappa`` to the LINEAR model: ``kappa`` is "return per (USD sold / D)" while LINEAR's parameter is
the USD that moves the price 2 %, so ``depth_usd_2pct = 0.02 * D / kappa`` (see
:func:`depth_usd_2pct_for_kappa`); then ``1 - price_factor(LINEAR, (depth_usd_2pct, 1, 0, 0), Q)`` is
exactly ``kappa * Q / D``. Prices are in units of the initial price (``p0 = 1``) so tokens equal USD.
"""

from __future__ import annotations

import math

import numpy as np

from .liquidity import LINEAR, price_factor


def depth_usd_2pct_for_kappa(kappa: float, depth_usd: float) -> float:
    """LINEAR ``depth_usd_2pct`` equivalent to impact ``kappa * sold / depth_usd``: ``0.02 * D / kappa``."""
    if not kappa > 0.0 or not depth_usd > 0.0:
        raise ValueError(f"kappa and depth_usd must be > 0, got {kappa!r}, {depth_usd!r}")
    return 0.02 * depth_usd / kappa


def spiral_multiplier(kappa: float, leverage: float, assets_usd: float, depth_usd: float) -> float:
    """Round-to-round ratio ``m = kappa * (L - 1) * A / D``."""
    return kappa * (leverage - 1.0) * assets_usd / depth_usd


def spiral_diverges(kappa: float, leverage: float, assets_usd: float, depth_usd: float) -> bool:
    """True iff the spiral does not converge (``m >= 1``)."""
    return spiral_multiplier(kappa, leverage, assets_usd, depth_usd) >= 1.0


def spiral_total_return(r0: float, kappa: float, leverage: float, assets_usd: float,
                        depth_usd: float) -> float:
    """Closed-form limit ``r0 / (1 - m)``; ``-inf`` (sign of ``r0``) when ``m >= 1`` and ``r0 != 0``."""
    m = spiral_multiplier(kappa, leverage, assets_usd, depth_usd)
    if m >= 1.0:
        return 0.0 if r0 == 0.0 else math.copysign(math.inf, r0)
    return r0 / (1.0 - m)


def leverage_spiral(r0: float, kappa: float, leverage: float, assets_usd: float, depth_usd: float,
                    rounds: int) -> np.ndarray:
    """Cumulative return after each synchronous round of deleveraging sales.

    Parameters
    ----------
    r0 : float
        Exogenous first return (<= 0: a loss triggers sales).
    kappa : float
        Linear impact: return per (USD sold / ``depth_usd``), > 0.
    leverage : float
        Target leverage ``L`` (>= 1).
    assets_usd : float
        Holders' assets ``A`` in USD (>= 0).
    depth_usd : float
        Market depth ``D`` in USD (> 0).
    rounds : int
        Number of rounds, counting the exogenous shock as round 1 (>= 1).

    Returns
    -------
    np.ndarray
        float64[rounds]; entry ``i`` is the cumulative return after ``i + 1`` rounds,
        ``r0 * sum_{k<=i} m**k`` while above the LINEAR floor. Once the price factor hits
        ``MIN_PRICE_FACTOR`` (only for diverging spirals) further sales no longer move it.
    """
    if r0 > 0.0:
        raise ValueError(f"r0 must be <= 0 (a loss starts a fire sale), got {r0!r}")
    if not leverage >= 1.0 or not assets_usd >= 0.0:
        raise ValueError(f"need leverage >= 1 and assets_usd >= 0, got {leverage!r}, {assets_usd!r}")
    if rounds < 1:
        raise ValueError(f"rounds must be >= 1, got {rounds!r}")
    params = (depth_usd_2pct_for_kappa(kappa, depth_usd), 1.0, 0.0, 0.0)

    out = np.empty(rounds, dtype=np.float64)
    out[0] = r0
    sold_usd = 0.0          # cumulative USD sold = tokens at p0 = 1
    factor = 1.0            # price_factor(sold_usd)
    r_prev = r0
    for i in range(1, rounds):
        sold_usd += (leverage - 1.0) * assets_usd * abs(r_prev)  # restore leverage L after a loss |r|
        new_factor = price_factor(LINEAR, params, sold_usd)
        r_prev = new_factor - factor  # this round's impact return (= -kappa * sale / D above the floor)
        factor = new_factor
        out[i] = r0 + (factor - 1.0)
    return out
