"""Aave v3.3+ rules: hand-worked examples and the exact liquidation identity (oracles.md §2)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from optimizer.snapshots import load_adapter
from protocols import Book, InvalidParameters, Prices
from protocols.aave_v3 import DUST, OK


@pytest.fixture(scope="module")
def aave():
    return load_adapter("aave_v3")


def weth_usdc(weth, usdc, category=0):
    return Book(("WETH",), ("USDC",), np.array([[weth]], float), np.array([[usdc]], float),
                category=np.array([category]))


def px(weth_usd):
    return Prices(np.array([weth_usd]), np.array([1.0]))


def test_snapshot_values_are_the_current_ones(aave):
    # WETH in Ethereum Core: LTV 80.5 %, LT 83 %, bonus 5 %, fee 10 % of the bonus (base snapshot 2023-10-31).
    p = aave.params
    assert (p["WETH.ltv_bps"], p["WETH.liquidation_threshold_bps"], p["WETH.liquidation_bonus_bps"],
            p["WETH.liquidation_protocol_fee_bps"]) == (8050, 8300, 10500, 1000)
    assert (p["emode1.ltv_bps"], p["emode1.liquidation_threshold_bps"]) == (9300, 9500)
    assert p["close_factor"] == 0.5 and p["close_factor_hf_threshold"] == 0.95


def test_position_through_50_then_100_percent_close_factor(aave):
    # 10 WETH, 16,000 USDC debt. At $1,900: C = 19,000, HF = 19,000*0.83/16,000 = 0.985625 > 0.95
    # and both sides >= $2,000, so at most 50 % of the whole debt = 8,000 USDC may be repaid.
    book = weth_usdc(10.0, 16_000.0)
    out1 = aave.liquidate(book, px(1900.0))
    assert aave.health(book, px(1900.0))[0] == pytest.approx(0.985625, rel=1e-15)
    assert out1.extra["close_factor_applied"][0]
    assert out1.debt_repaid_tokens[0, 0] == pytest.approx(8000.0, rel=1e-15)
    # seize = 8,000/1,900 * 1.05 = 4.4210526... WETH = $8,400; bonus part $400; fee 10 % of it = $40.
    assert out1.collateral_seized_tokens[0, 0] == pytest.approx(8000 / 1900 * 1.05, rel=1e-15)
    assert out1.collateral_seized_usd[0] == pytest.approx(8400.0, rel=1e-12)
    assert out1.protocol_fee_usd[0] == pytest.approx(40.0, rel=1e-12)
    assert out1.liquidator_bonus_usd[0] == pytest.approx(360.0, rel=1e-12)
    assert out1.bad_debt_usd[0] == 0.0
    # After: 5.5789... WETH ($10,600), 8,000 USDC: HF = 10,600*0.83/8,000 = 1.09975.
    assert aave.health(out1.book, px(1900.0))[0] == pytest.approx(1.09975, rel=1e-12)

    # At $1,500: C = 8,368.42, HF = 0.868224 <= 0.95 -> 100 % close factor. Seizing 8,000/1,500*1.05 = 5.6 WETH
    # exceeds the 5.5789 WETH left, so all of it is taken and repay = 5.5789*1,500/1.05 = 7,969.92 USDC.
    # No collateral is left: the remaining 30.075 USDC is burned as deficit (bad debt).
    out2 = aave.liquidate(out1.book, px(1500.0))
    coll_left = 10 - 8000 / 1900 * 1.05
    assert not out2.extra["close_factor_applied"][0]
    assert out2.collateral_seized_tokens[0, 0] == coll_left
    assert out2.debt_repaid_tokens[0, 0] == pytest.approx(coll_left * 1500 / 1.05, rel=1e-12)
    assert out2.bad_debt_usd[0] == pytest.approx(8000 - coll_left * 1500 / 1.05, rel=1e-9)
    assert out2.bad_debt_usd[0] == pytest.approx(30.0751879699, rel=1e-9)
    assert out2.book.collateral_tokens[0, 0] == 0.0 and out2.book.debt_tokens[0, 0] == 0.0


def test_small_positions_get_100_percent_close_factor(aave):
    # Debt below $2,000: the whole reserve debt may be repaid even though HF > 0.95.
    book = weth_usdc(1.0, 1900.0)
    out = aave.liquidate(book, px(2270.0))  # HF = 2270*0.83/1900 = 0.9916
    assert out.debt_repaid_tokens[0, 0] == pytest.approx(1900.0)
    assert out.book.debt_tokens[0, 0] == 0.0


def test_dust_rule_reverts_explicit_call_and_liquidator_adapts(aave):
    # 3 WETH at $2,000 ($6,000), debt 5,500 USDC: HF = 0.905 -> 100 % allowed. Repaying 5,000 would leave
    # $500 of debt (< $1,000) while collateral remains: MustNotLeaveDust.
    book = weth_usdc(3.0, 5500.0)
    out = aave.liquidate(book, px(2000.0), debt_to_cover_tokens=np.array([5000.0]))
    assert out.extra["reason"][0] == DUST and not out.liquidated[0]
    assert out.book.debt_tokens[0, 0] == 5500.0
    # Default (max) call: repaying everything is allowed (closes the debt side).
    full = aave.liquidate(book, px(2000.0))
    assert full.extra["reason"][0] == OK and full.book.debt_tokens[0, 0] == 0.0


def test_emode_parameters_replace_reserve_ones(aave):
    # WETH in eMode 1 (ETH correlated): LT 95 %, bonus 1 %.
    book = weth_usdc(10.0, 18_000.0, category=1)
    assert aave.health(book, px(2000.0))[0] == pytest.approx(20_000 * 0.95 / 18_000)
    out = aave.liquidate(book, px(1880.0))
    assert out.collateral_seized_usd[0] == pytest.approx(out.debt_repaid_usd[0] * 1.01, rel=1e-12)


@given(
    c=st.floats(1e4, 1e8), lt=st.floats(0.3, 0.93), beta=st.floats(0.005, 0.07),
    hf=st.floats(0.3, 0.999), r_share=st.floats(0.01, 0.5),
)
def test_liquidation_identity_property(aave, c, lt, beta, hf, r_share):
    """oracles.md §2: HF' − HF = r(HF − LT(1+β))/(B − r) and C' − B' = C − B − β·r, to 1e-12."""
    lt_bps, lb_bps = round(lt * 1e4), round((1 + beta) * 1e4)
    if lt_bps * lb_bps > 1e8:  # the invariant LT x LB <= 100 % would refuse this candidate
        return
    cand = aave.with_params({"WETH.liquidation_threshold_bps": lt_bps, "WETH.ltv_bps": min(lt_bps, 8050),
                             "WETH.liquidation_bonus_bps": lb_bps})
    lt, beta = lt_bps / 1e4, lb_bps / 1e4 - 1
    b = c * lt / hf
    r = r_share * b
    if r * (1 + beta) > c:  # not seizable in full; the identity assumes an uncapped seizure
        return
    book = weth_usdc(c, b)
    out = cand.liquidate(book, px(1.0), debt_to_cover_tokens=np.array([r]))
    if c - r * (1 + beta) < 1000 or b - r < 1000:  # would leave dust on a side it does not close
        assert out.extra["reason"][0] == DUST and not out.liquidated[0]
        return
    assert out.liquidated[0]
    hf1 = cand.health(out.book, px(1.0))[0]
    c1, b1 = out.book.collateral_tokens[0, 0], out.book.debt_tokens[0, 0]
    assert hf1 - hf == pytest.approx(r * (hf - lt * (1 + beta)) / (b - r), rel=1e-9, abs=1e-12)
    assert (c1 - b1) - (c - b - beta * r) == pytest.approx(0.0, abs=1e-12 * c)
    if c / b < 1 + beta:  # below C/B = 1+β a liquidation never rescues the position
        assert hf1 < hf < 1.0


def test_candidate_breaking_invariants_is_refused_with_named_rule(aave):
    with pytest.raises(InvalidParameters, match=r"WETH\.ltv_bps=8400.*WETH\.liquidation_threshold_bps=8300.*"
                                                r"ltv <= liquidation threshold"):
        aave.with_params({"WETH.ltv_bps": 8400})
    with pytest.raises(InvalidParameters, match=r"liquidation threshold x liquidation bonus <= 100 %"):
        aave.with_params({"WETH.liquidation_bonus_bps": 12100})  # 0.83 * 1.21 > 1
    with pytest.raises(InvalidParameters, match=r"emode1\.ltv_bps=0.*eMode ltv > 0"):
        aave.with_params({"emode1.ltv_bps": 0})
    with pytest.raises(InvalidParameters, match=r"unknown parameter 'WETH\.ltv'"):
        aave.with_params({"WETH.ltv": 0.5})
    with pytest.raises(InvalidParameters, match=r"whole number"):
        aave.with_params({"WETH.ltv_bps": 7999.5})


def test_paused_reserve_blocks_liquidation(aave):
    snap = dict(aave._snapshot)
    snap["assets"] = {**snap["assets"], "WETH": {**snap["assets"]["WETH"], "paused": True}}
    paused = type(aave)(snap)
    out = paused.liquidate(weth_usdc(10.0, 16_000.0), px(1500.0))
    assert not out.liquidated.any() and "WETH" in paused.circuit_breakers().liquidations_paused
