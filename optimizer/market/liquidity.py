"""Market liquidity and price impact of liquidation sales.

The cascade engines keep, per path and per pool, one scalar state ``flow`` (``sold_tokens`` below): the
cumulative *net signed* tokens forced flows moved through the pool -- positive for sales into it
(liquidated collateral), negative for purchases from it (a liquidator buying the debt asset it repays,
a liquidated short buying back) -- decaying back to 0 with the recovery half-life (arbitrage and fresh
liquidity refill the book). From that state they ask three things, all answered here by numba-jitted
scalar functions on plain floats:

* :func:`price_factor` -- market price / exogenous price at state ``flow`` (< 1 after net sales, > 1 after
  net purchases);
* :func:`sale_proceeds_usd` -- USD raised by selling ``dq`` more tokens at the current exogenous price;
* :func:`purchase_cost_usd` -- USD paid to buy ``dq`` tokens at the current exogenous price.

Models and parameter packing
----------------------------
A liquidity model is ``(model, params)`` with ``model`` one of :data:`AMM`, :data:`SQRT`, :data:`LINEAR`
and ``params`` four floats (a tuple or a float64 array; :meth:`Liquidity.as_array` packs
``[model, p0, p1, p2, p3]`` for the kernel):

============  ===========================================================  ==============================
model         params                                                       config keys
============  ===========================================================  ==============================
AMM = 0       ``(token_reserve, usd_reserve, fee, 0)``                     ``reserve_usd``, ``fee``
SQRT = 1      ``(y, daily_sigma, daily_volume_usd, p0_usd)``               ``y``, ``daily_sigma``,
                                                                           ``daily_volume_usd``
LINEAR = 2    ``(depth_usd_2pct, p0_usd, 0, 0)``                           ``depth_usd_2pct``
============  ===========================================================  ==============================

``token_reserve = reserve_usd / price_usd`` and ``p0_usd = price_usd`` (the scenario's initial price);
USD amounts of sold tokens are always valued at that initial price (``Q_usd = sold_tokens * p0``), so the
impact state is in tokens and does not drift with the exogenous price.

AMM convention (decided here, exact and path independent)
----------------------------------------------------------
A Uniswap v2 pool with reserves ``x`` tokens and ``y`` USD (``k = x*y``, ``p0 = y/x``) and no arbitrage
during the cascade. The swap fee is charged on the input exactly as ``getAmountOut`` does, but the fee
tokens are *not* compounded into the pool: the pool moves along the curve ``x*y = k`` with effective input
``(1 - fee) * sold``. So at state ``s`` the reserves are

    R_in(s) = x + (1 - fee) * s            R_out(s) = k / R_in(s)            (USD at price level p0)

and the on-chain price is ``R_out/R_in``, giving ``price_factor = (x / (x + (1 - fee) s))**2``. With this
choice (i) every sale is the exact ``getAmountOut`` on the reserves of its state, (ii) any split of a sale
raises exactly what one aggregate swap of the same size on the original pool raises (real v2 compounds
the fee into ``k``, which makes splits path dependent by O(fee * s / x)), and (iii) ``price_factor`` is
exactly the ratio of marginal proceeds per token. Without fee it is the textbook
``p -> p * (x / (x + dx))**2`` of oracles.md §1. The USD side is scaled by ``exo_price / p0``: outside
arbitrage re-centres the pool on the exogenous price, while the liquidation-sold inventory stays.

SQRT and LINEAR are *price* laws (oracles.md §6): ``1 - y*sigma*sqrt(Q_usd/V)`` and
``1 - 0.02 * Q_usd / depth_usd_2pct`` (selling ``depth_usd_2pct`` USD moves the price -2 %), floored at
:data:`MIN_PRICE_FACTOR` so prices stay positive; a sale raises the integral of the price over the sale.
LINEAR is exactly linear in USD sold above the floor, as the leverage-spiral oracle (§5) requires.

Signed flows (purchases)
------------------------
The state may be negative (net purchases). Below 0 the laws continue upwards: AMM ``(x / (x + s))**2`` (the
tokens bought leave the pool, so its token reserve is ``x + s``; the swap fee is charged on the USD paid
in), SQRT ``1 + y*sigma*sqrt(-s*p0/V)``, LINEAR ``1 - 0.02*s*p0/depth_usd_2pct`` (symmetric, no cap).
Prices move continuously through 0. A sale that starts below 0 raises the integral of the price over the
states it crosses (AMM: after the fee); a purchase of ``dq`` from state ``s`` pays the integral of the
price over ``[s - dq, s]`` (AMM: divided by ``1 - fee``), so buying back what was just sold costs at least
what the sale raised. ``dq >= 0`` always; ``sale_proceeds_usd`` from a state ``>= 0`` is unchanged from the
one-sided model. Because the state is a *net* flow, a sale and a purchase in one pool offset each other
before the law is applied (the fee is not charged twice); that is the model, not an AMM's exact path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numba import njit

from ..errors import InputError

AMM = 0
SQRT = 1
LINEAR = 2

MODEL_CODES: dict[str, int] = {"amm": AMM, "sqrt": SQRT, "linear": LINEAR}
MODEL_NAMES: dict[int, str] = {v: k for k, v in MODEL_CODES.items()}

MIN_PRICE_FACTOR = 1e-6
"""Floor of the SQRT and LINEAR price factors: those laws cross zero, a market price must not."""

UNISWAP_V2_FEE = 0.003

# Config keys per model (besides the shared ``model`` and ``recovery_half_life_min``).
_REQUIRED = {
    "amm": ("reserve_usd",),
    "sqrt": ("daily_volume_usd", "daily_sigma"),
    "linear": ("depth_usd_2pct",),
}
# Conventional constants get their textbook value when omitted: Uniswap v2's fixed 0.30 % fee and the
# square-root law's order-one prefactor.
_DEFAULTS = {
    "amm": {"fee": UNISWAP_V2_FEE},
    "sqrt": {"y": 1.0},
    "linear": {},
}
_SHARED = ("model", "recovery_half_life_min")


# ----------------------------------------------------------------------------------------------------
# numba core (scalar, plain floats)
# ----------------------------------------------------------------------------------------------------


@njit(cache=True)
def decay(sold_tokens, dt_s, half_life_s):
    """Recover the market: ``sold_tokens * 0.5 ** (dt_s / half_life_s)``.

    Parameters
    ----------
    sold_tokens : float
        Cumulative net tokens sold by liquidations.
    dt_s : float
        Elapsed time in seconds (>= 0).
    half_life_s : float
        Recovery half-life in seconds. ``0`` means full recovery every step, ``inf`` no recovery.

    Returns
    -------
    float
        The decayed state in tokens.
    """
    if half_life_s <= 0.0:
        return 0.0
    if dt_s <= 0.0 or half_life_s == np.inf:
        return sold_tokens
    return sold_tokens * 0.5 ** (dt_s / half_life_s)


@njit(cache=True)
def get_amount_out_float(amount_in, reserve_in, reserve_out, fee=UNISWAP_V2_FEE):
    """Real-valued Uniswap v2 ``getAmountOut``: ``in*(1-fee)*R_out / (R_in + in*(1-fee))``.

    No integer floor: on wei-scale amounts it matches :func:`get_amount_out` to < 1e-12 relative; on
    raw amounts of a few units the integer floor dominates (2 into 100/100 gives 1.955 vs 1).

    Parameters
    ----------
    amount_in, reserve_in, reserve_out : float
        Amounts in token units (any consistent scale). Pass floats: huge Python ints overflow int64.
    fee : float
        Swap fee as a fraction of the input (Uniswap v2: 0.003).

    Returns
    -------
    float
        Output amount in the units of ``reserve_out``.
    """
    a = amount_in * (1.0 - fee)
    return a * reserve_out / (reserve_in + a)


@njit(cache=True)
def _floored_sqrt_integral(c, a, d):
    """Integral of ``max(1 - c*sqrt(u), MIN_PRICE_FACTOR)`` over ``[a, a + d]``; ``a, d >= 0``, ``c > 0``.

    Works with the sale length ``d`` rather than ``(a + d) - a`` so small sales on a large state keep
    full precision.
    """
    return floored_sqrt_integral_at(c, sqrt_floor_state(c), a, d)


@njit(cache=True, inline="always")
def sqrt_floor_state(c):
    """Where the square-root law ``1 - c*sqrt(u)`` reaches the floor ``MIN_PRICE_FACTOR`` (``c > 0``)."""
    return ((1.0 - MIN_PRICE_FACTOR) / c) ** 2


@njit(cache=True, inline="always")
def floored_sqrt_integral_at(c, u_star, a, d):
    """:func:`_floored_sqrt_integral` with the floor state ``u_star = sqrt_floor_state(c)`` given: a caller
    that sells into one pool many times (the kernel, once per liquidation call) computes it once."""
    d_law = min(d, max(u_star - a, 0.0))  # part of the sale above the floor
    total = MIN_PRICE_FACTOR * (d - d_law)
    if d_law > 0.0:
        b = a + d_law
        sa = math.sqrt(a)
        sb = math.sqrt(b)
        # (b^1.5 - a^1.5)/(b - a) = (a + sqrt(ab) + b)/(sqrt a + sqrt b): no cancellation
        mean_sqrt = (a + sa * sb + b) / (sa + sb)
        total += d_law * (1.0 - (2.0 / 3.0) * c * mean_sqrt)
    return total


@njit(cache=True, inline="always")
def sqrt_impact_per_sqrt_token(params):
    """The square-root law's ``c`` (impact per sqrt(token)) from its packed parameters."""
    return params[0] * params[1] * math.sqrt(params[3] / params[2])


@njit(cache=True)
def _floored_linear_integral(c, a, d):
    """Integral of ``max(1 - c*u, MIN_PRICE_FACTOR)`` over ``[a, a + d]``; ``a, d >= 0``, ``c > 0``."""
    u_star = (1.0 - MIN_PRICE_FACTOR) / c
    d_law = min(d, max(u_star - a, 0.0))
    total = MIN_PRICE_FACTOR * (d - d_law)
    if d_law > 0.0:
        total += d_law * (1.0 - c * (a + 0.5 * d_law))  # exact: the price at the midpoint
    return total


@njit(cache=True)
def _amm_buy_integral(x, lo, hi):
    """Integral of ``(x / (x + s))**2`` over ``[lo, hi]`` with ``lo <= hi <= 0`` (the purchase branch)."""
    return x * x * (1.0 / (x + lo) - 1.0 / (x + hi))


@njit(cache=True)
def _amm_reserve_floor(x):
    """Smallest token reserve the purchase branch reaches: buying the whole pool is impossible."""
    return x * 1e-9


@njit(cache=True)
def _buy_side_integral(model, params, lo, hi):
    """Integral of the price factor over ``[lo, hi]`` with ``lo <= hi <= 0`` (net purchases)."""
    if hi <= lo:
        return 0.0
    if model == AMM:
        x = params[0]
        floor = _amm_reserve_floor(x) - x  # states below this are clamped (price factor at its cap)
        if lo < floor:
            capped = min(hi, floor) - lo
            r = x / _amm_reserve_floor(x)
            return capped * r * r + (_amm_buy_integral(x, floor, hi) if hi > floor else 0.0)
        return _amm_buy_integral(x, lo, hi)
    elif model == SQRT:
        c = params[0] * params[1] * math.sqrt(params[3] / params[2])
        a = -hi  # substitute u = -s: integral of 1 + c*sqrt(u) over [a, b]
        b = -lo
        sa = math.sqrt(a)
        sb = math.sqrt(b)
        mean_sqrt = (a + sa * sb + b) / (sa + sb) if sb > 0.0 else 0.0
        return (b - a) * (1.0 + (2.0 / 3.0) * c * mean_sqrt)
    elif model == LINEAR:
        c = 0.02 * params[1] / params[0]
        return (hi - lo) * (1.0 - c * 0.5 * (lo + hi))
    raise ValueError("unknown liquidity model code")


@njit(cache=True)
def price_factor(model, params, sold_tokens):
    """Market price / exogenous price after ``sold_tokens`` were sold into the market.

    Parameters
    ----------
    model : int
        :data:`AMM`, :data:`SQRT` or :data:`LINEAR`.
    params : tuple of 4 floats or float64 array (length >= 4)
        Packed parameters, see the module docstring.
    sold_tokens : float
        Cumulative net tokens sold (>= 0; negatives are treated as 0).

    Returns
    -------
    float
        AMM: ``(x / (x + (1 - fee) * sold))**2`` (on-chain price ratio, no arbitrage);
        SQRT: ``max(1 - y*sigma*sqrt(sold*p0/V), MIN_PRICE_FACTOR)``;
        LINEAR: ``max(1 - 0.02*sold*p0/depth_usd_2pct, MIN_PRICE_FACTOR)``.
        A negative state (net purchases) gives a factor above 1: AMM ``(x / (x + s))**2`` (the token
        reserve is floored at ``1e-9 x``), SQRT ``1 + y*sigma*sqrt(-s*p0/V)``, LINEAR ``1 - 0.02*s*p0/depth``.
    """
    if sold_tokens < 0.0:
        b = -sold_tokens
        if model == AMM:
            x = params[0]
            r = x / max(x - b, _amm_reserve_floor(x))
            return r * r
        elif model == SQRT:
            return 1.0 + params[0] * params[1] * math.sqrt(b * params[3] / params[2])
        elif model == LINEAR:
            return 1.0 + 0.02 * (b * params[1]) / params[0]
        raise ValueError("unknown liquidity model code")
    q = sold_tokens
    if model == AMM:
        x = params[0]
        r = x / (x + (1.0 - params[2]) * q)
        return r * r
    elif model == SQRT:
        f = 1.0 - params[0] * params[1] * math.sqrt(q * params[3] / params[2])
        return max(f, MIN_PRICE_FACTOR)
    elif model == LINEAR:
        f = 1.0 - 0.02 * (q * params[1]) / params[0]
        return max(f, MIN_PRICE_FACTOR)
    raise ValueError("unknown liquidity model code")


@njit(cache=True)
def _sale_from_nonnegative(model, params, a, d, exo_price):
    """Proceeds of selling ``d > 0`` tokens from a state ``a >= 0`` (the one-sided model)."""
    if model == AMM:
        x = params[0]
        y = params[1]
        fee = params[2]
        r_in = x + (1.0 - fee) * a
        r_out = (x * y / r_in) * (exo_price * x / y)  # k / R_in, USD side rescaled by exo/p0
        return get_amount_out_float(d, r_in, r_out, fee)
    elif model == SQRT:
        c = sqrt_impact_per_sqrt_token(params)  # impact per sqrt(token)
        return exo_price * _floored_sqrt_integral(c, a, d)
    elif model == LINEAR:
        c = 0.02 * params[1] / params[0]  # impact per token
        return exo_price * _floored_linear_integral(c, a, d)
    raise ValueError("unknown liquidity model code")


@njit(cache=True)
def sale_proceeds_usd(model, params, sold_before, dq, exo_price):
    """USD raised by selling ``dq`` tokens from state ``sold_before`` at exogenous price ``exo_price``.

    Parameters
    ----------
    model : int
        :data:`AMM`, :data:`SQRT` or :data:`LINEAR`.
    params : tuple of 4 floats or float64 array (length >= 4)
        Packed parameters, see the module docstring.
    sold_before : float
        State before the sale, tokens (>= 0).
    dq : float
        Tokens sold now (>= 0).
    exo_price : float
        Exogenous (reference) price in USD per token.

    Returns
    -------
    float
        AMM: ``getAmountOut(dq, R_in, R_out * exo_price/p0)`` in float with
        ``R_in = x + (1-fee)*sold_before``, ``R_out = k / R_in``, ``p0 = y/x``;
        SQRT / LINEAR: ``exo_price * integral of price_factor over [sold_before, sold_before + dq]``.
        The new state is ``sold_before + dq`` for every model. From a negative state (net purchases)
        the part of the sale below 0 raises the integral of the purchase branch (AMM: times ``1 - fee``).
    """
    d = max(dq, 0.0)
    if d == 0.0:
        return 0.0
    if sold_before < 0.0:
        hi = min(sold_before + d, 0.0)
        below = _buy_side_integral(model, params, sold_before, hi)
        if model == AMM:
            below *= 1.0 - params[2]
        rest = sold_before + d - hi  # the part of the sale above 0
        return exo_price * below + (_sale_from_nonnegative(model, params, 0.0, rest, exo_price) if rest > 0.0
                                    else 0.0)
    return _sale_from_nonnegative(model, params, sold_before, d, exo_price)


@njit(cache=True)
def purchase_cost_usd(model, params, state, dq, exo_price):
    """USD paid to buy ``dq`` tokens from the pool at state ``state`` and exogenous price ``exo_price``.

    Parameters
    ----------
    model : int
        :data:`AMM`, :data:`SQRT` or :data:`LINEAR`.
    params : tuple of 4 floats or float64 array (length >= 4)
        Packed parameters.
    state : float
        Signed state before the purchase, tokens (negative after net purchases).
    dq : float
        Tokens bought (>= 0); the new state is ``state - dq``.
    exo_price : float
        Exogenous (reference) price in USD per token.

    Returns
    -------
    float
        ``exo_price * integral of price_factor over [state - dq, state]`` (the price rises as the state
        falls); AMM: divided by ``1 - fee`` (the fee is charged on the USD paid in). Above 0 the
        integral runs over the sale branch (buying back tokens sold earlier), so a sale followed by the
        same purchase never makes money.
    """
    d = max(dq, 0.0)
    if d == 0.0:
        return 0.0
    lo = state - d
    total = 0.0
    if state > 0.0:  # buying back along the sale branch, down to 0
        above = min(d, state)
        total += _sale_from_nonnegative(model, params, state - above, above, 1.0)
        if model == AMM:
            total /= 1.0 - params[2]  # proceeds were after the fee; a buyer pays it on top
    if lo < 0.0:
        below = _buy_side_integral(model, params, lo, min(state, 0.0))
        if model == AMM:
            below /= 1.0 - params[2]
        total += below
    return exo_price * total


@njit(cache=True)
def tokens_to_move_price(model, params, fraction):
    """Tokens that, sold from state 0, move the market price down by ``fraction``.

    Inverse of :func:`price_factor`: ``price_factor(model, params, q) == 1 - fraction``.

    Parameters
    ----------
    model : int
        :data:`AMM`, :data:`SQRT` or :data:`LINEAR`.
    params : tuple of 4 floats or float64 array (length >= 4)
        Packed parameters.
    fraction : float
        Price move as a fraction (0.05 = -5 %).

    Returns
    -------
    float
        Tokens; 0 for ``fraction <= 0``; ``inf`` when the move is unreachable (``fraction >= 1``, or below
        the SQRT / LINEAR floor). AMM: ``x * (1/sqrt(1 - fraction) - 1) / (1 - fee)``.
    """
    if fraction <= 0.0:
        return 0.0
    if fraction >= 1.0:
        return np.inf
    if model == AMM:
        return params[0] * (1.0 / math.sqrt(1.0 - fraction) - 1.0) / (1.0 - params[2])
    if model != SQRT and model != LINEAR:
        raise ValueError("unknown liquidity model code")
    if 1.0 - fraction < MIN_PRICE_FACTOR:
        return np.inf
    if model == SQRT:
        z = fraction / (params[0] * params[1])
        return z * z * params[2] / params[3]
    return fraction * params[0] / (0.02 * params[1])


# ----------------------------------------------------------------------------------------------------
# Exact Uniswap v2 integer math
# ----------------------------------------------------------------------------------------------------


def get_amount_out(amount_in: int, reserve_in: int, reserve_out: int) -> int:
    """Uniswap v2 ``UniswapV2Library.getAmountOut`` in exact integer arithmetic (0.30 % fee).

    ``floor(in*997*R_out / (R_in*1000 + in*997))``.

    Parameters
    ----------
    amount_in, reserve_in, reserve_out : int
        Raw token units (e.g. wei).

    Returns
    -------
    int
        Output amount in raw units of the output token.

    Raises
    ------
    TypeError
        For non-integers (floats would silently lose wei).
    ValueError
        ``amount_in <= 0`` or an empty reserve, with the Solidity revert reason.
    """
    for v in (amount_in, reserve_in, reserve_out):
        if not isinstance(v, int) or isinstance(v, bool):
            raise TypeError(f"get_amount_out takes ints, got {type(v).__name__}")
    if amount_in <= 0:
        raise ValueError("UniswapV2Library: INSUFFICIENT_INPUT_AMOUNT")
    if reserve_in <= 0 or reserve_out <= 0:
        raise ValueError("UniswapV2Library: INSUFFICIENT_LIQUIDITY")
    amount_in_with_fee = amount_in * 997
    return (amount_in_with_fee * reserve_out) // (reserve_in * 1000 + amount_in_with_fee)


# ----------------------------------------------------------------------------------------------------
# Config layer
# ----------------------------------------------------------------------------------------------------


def _number(value, file: str, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"must be a number, got {value!r}", file=file, field=field)
    v = float(value)
    if math.isnan(v):
        raise InputError("must be a number, got nan", file=file, field=field)
    return v


@dataclass(frozen=True)
class Liquidity:
    """Validated liquidity model of one asset.

    Attributes
    ----------
    model : int
        :data:`AMM`, :data:`SQRT` or :data:`LINEAR`.
    params : tuple[float, float, float, float]
        AMM ``(token_reserve, usd_reserve, fee, 0)``; SQRT ``(y, daily_sigma, daily_volume_usd, p0_usd)``;
        LINEAR ``(depth_usd_2pct, p0_usd, 0, 0)``.
    recovery_half_life_s : float
        Half-life in seconds of the decay of ``sold_tokens`` back to 0 (0: instant, inf: never).
    """

    model: int
    params: tuple[float, float, float, float]
    recovery_half_life_s: float

    def __post_init__(self) -> None:
        if self.model not in MODEL_NAMES:
            raise ValueError(f"unknown liquidity model code {self.model!r}")
        if len(self.params) != 4:
            raise ValueError(f"params must have 4 entries, got {len(self.params)}")

    @property
    def model_name(self) -> str:
        """``"amm"``, ``"sqrt"`` or ``"linear"``."""
        return MODEL_NAMES[self.model]

    def as_array(self) -> np.ndarray:
        """``float64[5]``: ``[model, p0, p1, p2, p3]`` for the numba kernel (``int(a[0])``, ``a[1:]``)."""
        return np.array((float(self.model), *self.params), dtype=np.float64)

    @classmethod
    def from_config(cls, asset: str, cfg: Mapping, price_usd: float, file: str) -> Liquidity:
        """Build from the ``[assets.<asset>.liquidity]`` table of a scenario.

        Parameters
        ----------
        asset : str
            Asset name (used in error fields).
        cfg : Mapping
            The parsed TOML table: ``model`` (``"amm"``/``"sqrt"``/``"linear"``),
            ``recovery_half_life_min`` (>= 0, may be ``inf``) and the model's keys: amm ``reserve_usd``
            (> 0), ``fee`` (in [0, 1), default 0.003); sqrt ``daily_volume_usd`` (> 0), ``daily_sigma``
            (> 0), ``y`` (> 0, default 1.0); linear ``depth_usd_2pct`` (> 0).
        price_usd : float
            Initial price of the asset in USD (> 0).
        file : str
            Scenario file, for error messages.

        Raises
        ------
        InputError
            Naming ``file`` and the field ``assets.<asset>.liquidity.<key>`` and the rule broken.
        """
        base = f"assets.{asset}.liquidity"
        if not isinstance(cfg, Mapping):
            raise InputError(f"must be a table, got {type(cfg).__name__}", file=file, field=base)
        p0 = _number(price_usd, file, f"assets.{asset}.price_usd")
        if not (0.0 < p0 < math.inf):
            raise InputError(f"must be positive and finite, got {price_usd!r}", file=file,
                             field=f"assets.{asset}.price_usd")

        if "model" not in cfg:
            raise InputError(f"missing key; one of {', '.join(MODEL_CODES)}", file=file, field=f"{base}.model")
        name = cfg["model"]
        if not isinstance(name, str) or name not in MODEL_CODES:
            raise InputError(f"unknown model {name!r}; one of {', '.join(MODEL_CODES)}"[:300], file=file,
                             field=f"{base}.model")

        allowed = set(_SHARED) | set(_REQUIRED[name]) | set(_DEFAULTS[name])
        unknown = sorted(str(k) for k in cfg if k not in allowed)
        if unknown:
            other = {k for m in MODEL_CODES if m != name for k in (*_REQUIRED[m], *_DEFAULTS[m])}
            why = ("not used by model " + repr(name)) if all(k in other for k in unknown) else "unknown key"
            raise InputError(f"{why}: {', '.join(unknown)}; allowed for model {name!r}: "
                             f"{', '.join(sorted(allowed))}", file=file, field=f"{base}.{unknown[0]}")
        for key in (*_REQUIRED[name], "recovery_half_life_min"):
            if key not in cfg:
                raise InputError(f"missing key (required for model {name!r})", file=file,
                                 field=f"{base}.{key}")

        vals = {**_DEFAULTS[name]}
        for key in cfg:
            if key != "model":
                vals[key] = _number(cfg[key], file, f"{base}.{key}")
        for key, v in vals.items():
            field = f"{base}.{key}"
            if key == "fee":
                if not 0.0 <= v < 1.0:
                    raise InputError(f"must be in [0, 1), got {v!r}", file=file, field=field)
            elif key == "recovery_half_life_min":
                if v < 0.0:  # 0 = instant recovery, inf = none: both meaningful
                    raise InputError(f"must be >= 0 (inf = no recovery), got {v!r}", file=file, field=field)
            elif not 0.0 < v < math.inf:
                raise InputError(f"must be positive and finite, got {v!r}", file=file, field=field)

        if name == "amm":
            params = (vals["reserve_usd"] / p0, vals["reserve_usd"], vals["fee"], 0.0)
        elif name == "sqrt":
            params = (vals["y"], vals["daily_sigma"], vals["daily_volume_usd"], p0)
        else:
            params = (vals["depth_usd_2pct"], p0, 0.0, 0.0)
        return cls(MODEL_CODES[name], params, vals["recovery_half_life_min"] * 60.0)


# ----------------------------------------------------------------------------------------------------
# Calibration helpers (oracles.md §6)
# ----------------------------------------------------------------------------------------------------


def exponential_inverse_demand_alpha(move: float, share: float) -> float:
    """α of ``p = p0*exp(-α*sold/market_size)`` such that selling ``share`` of the market moves ``-move``.

    ``α = -ln(1 - move) / share`` (Cifuentes, Ferrucci & Shin 2005); 5 % / 5 % -> 1.02587.

    Parameters
    ----------
    move : float
        Price drop as a fraction, in (0, 1).
    share : float
        Sold fraction of the market, > 0.
    """
    if not 0.0 < move < 1.0:
        raise ValueError(f"move must be in (0, 1), got {move!r}")
    if not share > 0.0:
        raise ValueError(f"share must be > 0, got {share!r}")
    return -math.log1p(-move) / share


def sqrt_impact(y: float, sigma_daily: float, q_over_v: float) -> float:
    """Square-root law ``ΔP/P = Y * σ_daily * sqrt(Q/V_daily)`` as a fraction; (1, 4 %, 1 %) -> 0.40 %.

    Parameters
    ----------
    y : float
        Prefactor Y (order 1).
    sigma_daily : float
        Daily volatility as a fraction.
    q_over_v : float
        Order size over daily volume, >= 0.
    """
    if q_over_v < 0.0:
        raise ValueError(f"q_over_v must be >= 0, got {q_over_v!r}")
    return y * sigma_daily * math.sqrt(q_over_v)
