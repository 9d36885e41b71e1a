"""Liquidity models and price impact: Uniswap v2 vectors (oracles.md §1), the leverage spiral (§5),
fire-sale conventions (§6), monotonicity properties and config validation."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numba import njit

from optimizer.errors import InputError
from optimizer.market import (
    AMM,
    LINEAR,
    MIN_PRICE_FACTOR,
    SQRT,
    Liquidity,
    decay,
    depth_usd_2pct_for_kappa,
    exponential_inverse_demand_alpha,
    get_amount_out,
    get_amount_out_float,
    leverage_spiral,
    price_factor,
    sale_proceeds_usd,
    spiral_diverges,
    spiral_multiplier,
    spiral_total_return,
    sqrt_impact,
    tokens_to_move_price,
)

E18 = 10**18
FILE = "scenarios/stress.toml"

# oracles.md §1: (amount in, reserve in, reserve out) x 1e18, expected out in wei.
V2_VECTORS = [
    (1, 5, 10, 1662497915624478906),
    (1, 10, 5, 453305446940074565),
    (2, 5, 10, 2851015155847869602),
    (2, 10, 5, 831248957812239453),
    (1, 10, 10, 906610893880149131),
    (1, 100, 100, 987158034397061298),
    (1, 1000, 1000, 996006981039903216),
]

PRICE = 3000.0
CONFIGS = {
    AMM: {"model": "amm", "reserve_usd": 50e6, "fee": 0.003, "recovery_half_life_min": 30},
    SQRT: {"model": "sqrt", "daily_volume_usd": 2e9, "daily_sigma": 0.04, "y": 1.0,
           "recovery_half_life_min": 30},
    LINEAR: {"model": "linear", "depth_usd_2pct": 30e6, "recovery_half_life_min": 30},
}
SIZE_KEY = {AMM: "reserve_usd", SQRT: "daily_volume_usd", LINEAR: "depth_usd_2pct"}


def liq(model, scale=1.0):
    cfg = dict(CONFIGS[model])
    cfg[SIZE_KEY[model]] *= scale
    return Liquidity.from_config("WETH", cfg, PRICE, FILE)


# ---------------------------------------------------------------------------------------------------
# Uniswap v2 exact math
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("a, r_in, r_out, expected", V2_VECTORS)
def test_v2_vectors_integer_exact_and_float_close(a, r_in, r_out, expected):
    assert get_amount_out(a * E18, r_in * E18, r_out * E18) == expected
    f = get_amount_out_float(float(a * E18), float(r_in * E18), float(r_out * E18))
    assert abs(f - expected) / expected < 1e-12


def test_v2_raw_units_vector():
    assert get_amount_out(2, 100, 100) == 1
    # The float version has no integer floor: 2*997*100/(100000 + 1994) = 1.955..., floored it is 1.
    f = get_amount_out_float(2.0, 100.0, 100.0)
    assert f == pytest.approx(199400 / 101994, rel=1e-15) and math.floor(f) == 1


def test_v2_integer_rejects_bad_input():
    with pytest.raises(TypeError):
        get_amount_out(1.0, 100, 100)
    with pytest.raises(ValueError, match="INSUFFICIENT_INPUT_AMOUNT"):
        get_amount_out(0, 100, 100)
    with pytest.raises(ValueError, match="INSUFFICIENT_LIQUIDITY"):
        get_amount_out(1, 0, 100)


def test_no_fee_sale_that_moves_price_5_percent():
    params = (1000.0, 1000.0 * PRICE, 0.0, 0.0)
    dx = tokens_to_move_price(AMM, params, 0.05)
    assert abs(dx - 1000.0 * (1.0 / math.sqrt(0.95) - 1.0)) < 1e-9
    assert round(dx, 3) == 25.978
    assert price_factor(AMM, params, dx) == pytest.approx(0.95, rel=1e-12)
    # textbook p -> p (x/(x+dx))^2 without fee
    assert price_factor(AMM, params, 10.0) == pytest.approx((1000.0 / 1010.0) ** 2, rel=1e-15)


def test_amm_one_sale_on_wei_pool_matches_integer_getamountout():
    # 1000/1000 pool at p0 = 1 with the 0.30 % fee: selling 1 token is the last §1 vector.
    params = (1000.0, 1000.0, 0.003, 0.0)
    assert sale_proceeds_usd(AMM, params, 0.0, 1.0, 1.0) == pytest.approx(0.996006981039903216, rel=1e-12)


@given(st.floats(0.0, 5e4), st.floats(1e-6, 5e4), st.floats(100.0, 1e5))
def test_amm_proceeds_is_getamountout_on_scaled_reserves(sold, dq, exo):
    lq = liq(AMM)
    x, y, fee, _ = lq.params
    r_in = x + (1.0 - fee) * sold
    r_out = x * y / r_in * exo / (y / x)
    got = sale_proceeds_usd(AMM, lq.params, sold, dq, exo)
    assert got == pytest.approx(get_amount_out_float(dq, r_in, r_out, fee), rel=1e-12)


@pytest.mark.parametrize("model", [AMM, SQRT, LINEAR])
@given(sold=st.floats(0.0, 1e6), d1=st.floats(0.0, 1e5), d2=st.floats(0.0, 1e5), exo=st.floats(100.0, 1e4))
def test_two_pieces_raise_the_same_as_one(model, sold, d1, d2, exo):
    p = liq(model).params
    split = sale_proceeds_usd(model, p, sold, d1, exo) + sale_proceeds_usd(model, p, sold + d1, d2, exo)
    whole = sale_proceeds_usd(model, p, sold, d1 + d2, exo)
    assert split == pytest.approx(whole, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("model", [AMM, SQRT, LINEAR])
@pytest.mark.parametrize("sold", [0.0, 10.0, 1e3, 2e4])
def test_price_factor_is_ratio_of_marginal_prices(model, sold):
    p = liq(model).params
    h = 1e-7

    def marginal(s):
        return sale_proceeds_usd(model, p, s, h, PRICE) / h

    assert marginal(sold) / marginal(0.0) == pytest.approx(price_factor(model, p, sold), rel=1e-6)
    if model == AMM:  # exact: on-chain price R_out/R_in at the state over the initial one
        x, y, fee, _ = p
        r_in = x + (1.0 - fee) * sold
        assert (x * y / r_in / r_in) / (y / x) == pytest.approx(price_factor(AMM, p, sold), rel=1e-14)


# ---------------------------------------------------------------------------------------------------
# Leverage spiral (oracles.md §5) and fire-sale conventions (§6)
# ---------------------------------------------------------------------------------------------------


def test_leverage_spiral_round_by_round():
    r0, kappa, lev, a, d = -0.05, 1.0, 10.0, 1e9, 2e10
    m = spiral_multiplier(kappa, lev, a, d)
    assert m == pytest.approx(0.45, rel=1e-15)
    out = leverage_spiral(r0, kappa, lev, a, d, 80)
    expected = r0 * np.cumsum(m ** np.arange(80))
    np.testing.assert_allclose(out, expected, rtol=0, atol=1e-12)
    assert out[1] == pytest.approx(-0.0725, abs=1e-15)
    assert spiral_total_return(r0, kappa, lev, a, d) == pytest.approx(-0.05 / 0.55, rel=1e-15)
    assert round(100 * spiral_total_return(r0, kappa, lev, a, d), 4) == -9.0909
    assert abs(out[-1] - r0 / (1 - m)) < 1e-12
    assert not spiral_diverges(kappa, lev, a, d)


@pytest.mark.parametrize("kappa, lev, a, d", [(2.0, 3.0, 1e9, 4e9), (0.5, 20.0, 1e8, 1e9), (1.0, 1.0, 1e9, 1e9)])
def test_leverage_spiral_other_parameters(kappa, lev, a, d):
    r0 = -0.02
    m = spiral_multiplier(kappa, lev, a, d)
    out = leverage_spiral(r0, kappa, lev, a, d, 30)
    np.testing.assert_allclose(out, r0 * np.cumsum(m ** np.arange(30)), rtol=0, atol=1e-12)


def test_leverage_spiral_divergence_flag():
    assert spiral_diverges(1.0, 21.0, 1e9, 2e10)  # m = 1
    assert spiral_total_return(-0.05, 1.0, 21.0, 1e9, 2e10) == -math.inf
    assert spiral_diverges(1.0, 31.0, 1e9, 2e10)  # m = 1.5
    out = leverage_spiral(-0.01, 1.0, 31.0, 1e9, 2e10, 12)
    np.testing.assert_allclose(out[:8], -0.01 * np.cumsum(1.5 ** np.arange(8)), rtol=0, atol=1e-12)
    steps = np.diff(out)
    assert np.all(steps[:8] < 0) and np.all(np.diff(steps[:8]) < 0)  # each round falls further
    # the LINEAR floor stops the spiral once the price factor cannot fall any more
    assert out[-1] == pytest.approx(-0.01 + MIN_PRICE_FACTOR - 1.0, abs=1e-12)


def test_linear_model_is_exactly_linear_in_usd_sold():
    kappa, d = 1.5, 2e10
    p = (depth_usd_2pct_for_kappa(kappa, d), 1.0, 0.0, 0.0)
    for q in (1e6, 3.3e7, 5e8):
        assert 1.0 - price_factor(LINEAR, p, q) == pytest.approx(kappa * q / d, rel=1e-14)
    lq = liq(LINEAR)
    a, b = 123.0, 4567.0
    lhs = price_factor(LINEAR, lq.params, a + b) - 1.0
    rhs = (price_factor(LINEAR, lq.params, a) - 1.0) + (price_factor(LINEAR, lq.params, b) - 1.0)
    assert lhs == pytest.approx(rhs, rel=1e-13)
    # selling depth_usd_2pct USD moves the price -2 %
    assert price_factor(LINEAR, lq.params, 30e6 / PRICE) == pytest.approx(0.98, rel=1e-15)


def test_sqrt_law_example_and_model():
    assert sqrt_impact(1.0, 0.04, 0.01) == pytest.approx(0.004, rel=1e-15)
    lq = liq(SQRT)
    q_tokens = 0.01 * 2e9 / PRICE
    assert price_factor(SQRT, lq.params, q_tokens) == pytest.approx(1.0 - 0.004, rel=1e-15)
    assert tokens_to_move_price(SQRT, lq.params, 0.004) == pytest.approx(q_tokens, rel=1e-12)


def test_exponential_inverse_demand_alpha():
    alpha = exponential_inverse_demand_alpha(0.05, 0.05)
    assert round(alpha, 5) == 1.02587
    assert math.exp(-alpha * 0.05) == pytest.approx(0.95, rel=1e-15)
    with pytest.raises(ValueError):
        exponential_inverse_demand_alpha(1.0, 0.05)


# ---------------------------------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------------------------------

models = st.sampled_from([AMM, SQRT, LINEAR])


@given(models, st.floats(0.0, 1e6), st.floats(1e-3, 10.0))
def test_more_sold_lowers_price_factor(model, sold, frac):
    p = liq(model).params
    more = sold * (1.0 + frac) + 1.0
    before, after = price_factor(model, p, sold), price_factor(model, p, more)
    assert MIN_PRICE_FACTOR <= after <= before <= 1.0
    if before > MIN_PRICE_FACTOR:
        assert after < before


@given(models, st.floats(0.0, 1e6), st.floats(1e-3, 10.0), st.floats(1e-3, 1e5))
def test_more_sold_lowers_marginal_proceeds_per_token(model, sold, frac, dq):
    p = liq(model).params
    more = sold * (1.0 + frac) + 1.0
    per_token_before = sale_proceeds_usd(model, p, sold, dq, PRICE) / dq
    per_token_after = sale_proceeds_usd(model, p, more, dq, PRICE) / dq
    assert 0.0 < per_token_after <= per_token_before * (1.0 + 1e-12)
    assert per_token_before <= PRICE  # never better than the exogenous price
    if per_token_before > PRICE * MIN_PRICE_FACTOR * (1.0 + 1e-6):
        assert per_token_after < per_token_before


@given(models, st.floats(1.0, 1e6), st.floats(0.05, 0.95))
def test_thinner_liquidity_lowers_price_factor(model, sold, scale):
    deep, thin = liq(model).params, liq(model, scale).params
    assert price_factor(model, thin, sold) <= price_factor(model, deep, sold)
    if price_factor(model, thin, sold) > MIN_PRICE_FACTOR:
        assert price_factor(model, thin, sold) < price_factor(model, deep, sold)


@pytest.mark.parametrize("model", [AMM, SQRT, LINEAR])
@pytest.mark.parametrize("fraction", [0.001, 0.05, 0.3, 0.9])
def test_tokens_to_move_price_inverts_price_factor(model, fraction):
    p = liq(model).params
    q = tokens_to_move_price(model, p, fraction)
    assert price_factor(model, p, q) == pytest.approx(1.0 - fraction, rel=1e-12)
    assert tokens_to_move_price(model, p, 0.0) == 0.0
    assert tokens_to_move_price(model, p, 1.0) == math.inf


@given(st.floats(0.0, 1e9), st.floats(1.0, 1e5))
def test_decay_halves_at_one_half_life(sold, half_life_s):
    assert decay(sold, half_life_s, half_life_s) == 0.5 * sold
    assert decay(sold, 2 * half_life_s, half_life_s) == pytest.approx(0.25 * sold, rel=1e-15)
    assert decay(decay(sold, 300.0, half_life_s), 700.0, half_life_s) == pytest.approx(
        decay(sold, 1000.0, half_life_s), rel=1e-12)
    assert decay(sold, 300.0, 0.0) == 0.0  # full recovery every step
    assert decay(sold, 300.0, math.inf) == sold  # no recovery


def test_kernel_style_call_from_njit():
    table = np.stack([liq(m).as_array() for m in (AMM, SQRT, LINEAR)])
    assert table.shape == (3, 5) and table.dtype == np.float64

    @njit
    def step(table, sold, dq, exo):
        out = np.empty((table.shape[0], 2))
        for a in range(table.shape[0]):
            model = int(table[a, 0])
            out[a, 0] = price_factor(model, table[a, 1:], sold[a])
            out[a, 1] = sale_proceeds_usd(model, table[a, 1:], sold[a], dq, exo)
            sold[a] = decay(sold[a] + dq, 300.0, 1800.0)
        return out

    sold = np.array([100.0, 100.0, 100.0])
    out = step(table, sold, 10.0, PRICE)
    for i, m in enumerate((AMM, SQRT, LINEAR)):
        p = liq(m).params
        assert out[i, 0] == pytest.approx(price_factor(m, p, 100.0), rel=1e-15)
        assert out[i, 1] == pytest.approx(sale_proceeds_usd(m, p, 100.0, 10.0, PRICE), rel=1e-15)
    np.testing.assert_allclose(sold, 110.0 * 0.5 ** (300 / 1800), rtol=1e-15)
    with pytest.raises(ValueError):
        price_factor(7, (1.0, 1.0, 1.0, 1.0), 1.0)


# ---------------------------------------------------------------------------------------------------
# Config layer
# ---------------------------------------------------------------------------------------------------


def test_from_config_packing():
    amm = liq(AMM)
    assert amm.model == AMM and amm.model_name == "amm"
    assert amm.params == pytest.approx((50e6 / PRICE, 50e6, 0.003, 0.0), rel=1e-15)
    assert amm.recovery_half_life_s == 1800.0
    np.testing.assert_array_equal(amm.as_array(), np.array([0.0, *amm.params]))
    assert liq(SQRT).params == (1.0, 0.04, 2e9, PRICE)
    assert liq(LINEAR).params == (30e6, PRICE, 0.0, 0.0)
    # conventional constants default: Uniswap v2 fee, square-root prefactor Y = 1
    d = Liquidity.from_config("WETH", {"model": "amm", "reserve_usd": 1e6, "recovery_half_life_min": 0},
                              PRICE, FILE)
    assert d.params[2] == 0.003 and d.recovery_half_life_s == 0.0
    s = Liquidity.from_config("WETH", {"model": "sqrt", "daily_volume_usd": 1e9, "daily_sigma": 0.05,
                                       "recovery_half_life_min": float("inf")}, PRICE, FILE)
    assert s.params[0] == 1.0 and s.recovery_half_life_s == math.inf


BAD = [
    ({"model": "orderbook", "recovery_half_life_min": 30}, "model", "unknown model"),
    ({"reserve_usd": 1e6, "recovery_half_life_min": 30}, "model", "missing"),
    ({"model": "amm", "recovery_half_life_min": 30}, "reserve_usd", "missing"),
    ({"model": "amm", "reserve_usd": 1e6}, "recovery_half_life_min", "missing"),
    ({"model": "sqrt", "daily_sigma": 0.04, "recovery_half_life_min": 30}, "daily_volume_usd", "missing"),
    ({"model": "linear", "recovery_half_life_min": 30}, "depth_usd_2pct", "missing"),
    ({"model": "amm", "reserve_usd": -1e6, "recovery_half_life_min": 30}, "reserve_usd", "positive"),
    ({"model": "amm", "reserve_usd": 0, "recovery_half_life_min": 30}, "reserve_usd", "positive"),
    ({"model": "amm", "reserve_usd": 1e6, "fee": 1.0, "recovery_half_life_min": 30}, "fee", "[0, 1)"),
    ({"model": "amm", "reserve_usd": 1e6, "fee": -0.01, "recovery_half_life_min": 30}, "fee", "[0, 1)"),
    ({"model": "amm", "reserve_usd": 1e6, "recovery_half_life_min": -1}, "recovery_half_life_min", ">= 0"),
    ({"model": "amm", "reserve_usd": 1e6, "recovery_half_life_min": 30, "slippage": 0.1, "depth": 2},
     "depth", "unknown key: depth, slippage"),
    ({"model": "amm", "reserve_usd": 1e6, "recovery_half_life_min": 30, "depth_usd_2pct": 1e6},
     "depth_usd_2pct", "not used by model 'amm'"),
    ({"model": "amm", "reserve_usd": "1e6", "recovery_half_life_min": 30}, "reserve_usd", "number"),
    ({"model": "linear", "depth_usd_2pct": True, "recovery_half_life_min": 30}, "depth_usd_2pct", "number"),
    ({"model": "sqrt", "daily_volume_usd": 1e9, "daily_sigma": math.inf, "recovery_half_life_min": 30},
     "daily_sigma", "finite"),
    ({"model": "sqrt", "daily_volume_usd": 1e9, "daily_sigma": 0.04, "y": 0, "recovery_half_life_min": 30},
     "y", "positive"),
]


@pytest.mark.parametrize("cfg, key, rule", BAD)
def test_bad_config_names_file_field_and_rule(cfg, key, rule):
    with pytest.raises(InputError) as err:
        Liquidity.from_config("WETH", cfg, PRICE, FILE)
    assert err.value.file == FILE
    assert err.value.field == f"assets.WETH.liquidity.{key}"
    assert rule in err.value.rule
    assert str(err.value).startswith(f"{FILE}: assets.WETH.liquidity.{key}: ")


def test_bad_price_and_table():
    cfg = CONFIGS[AMM]
    with pytest.raises(InputError) as err:
        Liquidity.from_config("WETH", cfg, 0.0, FILE)
    assert err.value.field == "assets.WETH.price_usd" and err.value.file == FILE
    with pytest.raises(InputError) as err:
        Liquidity.from_config("WETH", 5, PRICE, FILE)
    assert err.value.field == "assets.WETH.liquidity"


# ---------------------------------------------------------------------------------------------------
# Signed flows: purchases push the price up, continuously through 0, and a round trip never pays
# ---------------------------------------------------------------------------------------------------

from optimizer.market import purchase_cost_usd  # noqa: E402


@pytest.mark.parametrize("model", [AMM, SQRT, LINEAR])
def test_price_factor_is_continuous_through_zero_and_above_one_after_purchases(model):
    p = liq(model).params
    eps = 1e-9
    assert price_factor(model, p, -eps) == pytest.approx(1.0, abs=1e-6)
    assert price_factor(model, p, eps) == pytest.approx(1.0, abs=1e-6)
    assert price_factor(model, p, -100.0) > 1.0 > price_factor(model, p, 100.0)
    assert price_factor(model, p, -1000.0) > price_factor(model, p, -100.0)


def test_purchase_branch_laws():
    lq = liq(SQRT)
    q = 5e6 / PRICE  # $5M against $2bn a day at 4 % sigma: +0.2 %
    assert price_factor(SQRT, lq.params, -q) == pytest.approx(1.0 + 0.04 * math.sqrt(5e6 / 2e9), rel=1e-12)
    lin = liq(LINEAR)
    assert price_factor(LINEAR, lin.params, -30e6 / PRICE) == pytest.approx(1.02, rel=1e-12)  # symmetric
    amm = liq(AMM)
    x = amm.params[0]
    assert price_factor(AMM, amm.params, -0.1 * x) == pytest.approx((1 / 0.9) ** 2, rel=1e-12)


@given(st.floats(100.0, 5e4), st.floats(100.0, 1e4))
def test_amm_purchase_is_exact_get_amount_in(dq, exo):
    """From state 0: USD paid = (Y(x - dq) - Y(x)) / (1 - fee), Y = k / reserve rescaled by exo / p0."""
    p = liq(AMM).params
    x, y, fee, _ = p
    dq = min(dq, 0.5 * x)
    usd_in = (x * y / (x - dq) - y) * (exo * x / y) / (1.0 - fee)
    assert purchase_cost_usd(AMM, p, 0.0, dq, exo) == pytest.approx(usd_in, rel=1e-12)


@pytest.mark.parametrize("model", [AMM, SQRT, LINEAR])
@given(state=st.floats(-2e4, 2e4), q=st.floats(1e-3, 1e4))
def test_buying_back_what_was_sold_costs_at_least_the_proceeds(model, state, q):
    p = liq(model).params
    sold = sale_proceeds_usd(model, p, state, q, PRICE)  # state -> state + q
    cost = purchase_cost_usd(model, p, state + q, q, PRICE)  # and back
    assert cost >= sold * (1 - 1e-12)
    if model != AMM:  # price laws: exactly the same integral
        assert cost == pytest.approx(sold, rel=1e-9)


@pytest.mark.parametrize("model", [AMM, SQRT, LINEAR])
@given(state=st.floats(-2e4, 2e4), d1=st.floats(1e-3, 1e4), d2=st.floats(1e-3, 1e4))
def test_purchases_split_like_sales(model, state, d1, d2):
    p = liq(model).params
    whole = purchase_cost_usd(model, p, state, d1 + d2, PRICE)
    split = purchase_cost_usd(model, p, state, d1, PRICE) + purchase_cost_usd(model, p, state - d1, d2, PRICE)
    assert split == pytest.approx(whole, rel=1e-9, abs=1e-9)
    assert whole / (d1 + d2) >= PRICE * price_factor(model, p, state) * (1 - 1e-9)  # the price only rises


@pytest.mark.parametrize("model", [AMM, SQRT, LINEAR])
@given(state=st.floats(-2e4, -1e-3), d=st.floats(1e-3, 4e4))
def test_a_sale_from_a_bought_up_state_raises_more_than_at_the_exogenous_price(model, state, d):
    """Below 0 the market is above the exogenous price: selling there raises the higher branch."""
    p = liq(model).params
    got = sale_proceeds_usd(model, p, state, d, PRICE)
    zero = sale_proceeds_usd(model, p, 0.0, d, PRICE)
    assert got >= zero * (1 - 1e-12)
