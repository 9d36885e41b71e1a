"""The Smart LTV baseline: the formula against hand-computed values, and its inputs from a scenario."""

from __future__ import annotations

import math

import pytest
from search_helpers import scenario

from optimizer.engine import bind, prepare
from optimizer.scenario.config import load_scenario
from optimizer.search import smart_ltv, smart_ltv_table


def test_smart_ltv_formula_by_hand():
    # exp(-2.33 * 0.05 * sqrt(4e7 / 1e8)) - 0.05 = exp(-0.0736811...) - 0.05
    f = lambda sigma, liq, d, beta, c=2.33: smart_ltv(sigma=sigma, liquidity_usd=liq, debt_usd=d, beta=beta, c=c)
    assert f(0.05, 1e8, 4e7, 0.05, 2.33) == pytest.approx(0.8789679228, rel=1e-9)
    assert f(0.05, math.inf, 4e7, 0.05) == pytest.approx(0.95)
    assert f(0.05, 1e8, 0.0, 0.075) == pytest.approx(0.925)
    assert f(0.10, 1e8, 4e7, 0.05) < f(0.05, 1e8, 4e7, 0.05)  # more volatile, lower LTV
    assert f(0.05, 1e7, 4e7, 0.05) < f(0.05, 1e8, 4e7, 0.05)  # thinner, lower LTV


# The vectors of the on-chain implementation's tests (backstop-protocol/smart-ltv,
# test/unit/core/SmartLTV.t.sol: testLTVCalculationExact, testLTVCalculationMaxMantissa).
def test_published_vector_exact():
    ltv = smart_ltv(liquidity_usd=1_000_000, sigma=0.10, debt_usd=200_000, beta=0.05, c=3.0)
    assert ltv == pytest.approx(0.82444657, abs=1e-8)


def test_published_vector_clamps_to_zero():
    assert smart_ltv(liquidity_usd=1e7, sigma=9.99, debt_usd=1e7, beta=0.19, c=4.9) == 0.0


def test_no_liquidity_gives_zero_not_minus_beta():
    assert smart_ltv(sigma=0.5, liquidity_usd=0.0, debt_usd=1e6, beta=0.05) == 0.0
    assert smart_ltv(sigma=0.5, liquidity_usd=-1.0, debt_usd=1e6, beta=0.05) == 0.0
    assert smart_ltv(sigma=0.5, liquidity_usd=1e6, debt_usd=0.0, beta=1.2) == 0.0


def test_positional_calls_are_refused():
    with pytest.raises(TypeError):
        smart_ltv(1e7, 9.99, 1e7, 0.19, 4.9)  # the paper's (l, sigma, d, beta, c) order


def test_table_inputs_from_the_scenario(tmp_path):
    sc = load_scenario(scenario(tmp_path, "", horizon_h=24))
    prep = prepare(sc)
    b = bind(prep)
    table = smart_ltv_table(b, b, c=2.33, horizon_h=None)
    rows = {r["asset"]: r for r in table["collaterals"]}
    weth, wbtc = rows["WETH"], rows["WBTC"]
    # WETH: merton sigma 0.9, 4 jumps/day of N(-0.04, 0.05^2): sigma^2 = 0.81 + 4*365*(0.0016+0.0025), over 24 h
    assert weth["sigma"] == pytest.approx(math.sqrt((0.81 + 4 * 365 * 0.0041) / 365))
    assert wbtc["sigma"] == pytest.approx(0.7 / math.sqrt(365))
    # sqrt impact y*sigma_d*sqrt(Q/V) = beta  =>  Q = V (beta / (y sigma_d))^2 (WETH: V 2e9, sigma_d 0.045)
    assert weth["beta"] == pytest.approx(0.05)
    assert weth["liquidity_usd"] == pytest.approx(2e9 * (0.05 / 0.045) ** 2, rel=1e-9)
    assert wbtc["liquidity_usd"] == pytest.approx(5e8 * (0.05 / 0.04) ** 2, rel=1e-9)
    debt = sum(r["debt_usd"] for r in rows.values())
    assert debt == pytest.approx(b.books[0].book.debt_tokens.sum())  # USDC debt at $1, all allocated
    assert weth["smart_ltv"] == pytest.approx(smart_ltv(sigma=weth["sigma"], liquidity_usd=weth["liquidity_usd"],
                                                        debt_usd=weth["debt_usd"], beta=0.05))
    assert weth["optimised_ltv"] == weth["current_ltv"] == 0.805
