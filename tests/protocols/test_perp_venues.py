"""Venue rules against their sources: the exact vectors of ``oracles.md`` §4 and hand-computed cases."""

import numpy as np
import pytest

from optimizer.snapshots import load_adapter
from protocols import CROSS, ISOLATED, OpenInterest, PerpBook
from protocols.gmx_v2 import price_impact_usd


def iso(markets, side, size, entry, margin, market=0):
    return PerpBook(markets, [market], [side], [size], [entry], [margin], [ISOLATED], [0], [0.0])


# --------------------------------------------------------------------------------------------- Binance


@pytest.fixture(scope="module")
def binance():
    return load_adapter("binance_usdm")


def test_binance_vector_of_oracles_md(binance):
    """WB 1000, Q 1, EP 10,000, MMR 0.4 %, cum 0, long -> LP 9036.1446; margin balance = 0.4 % notional."""
    book = iso(("BTCUSDT",), 1, 1.0, 10_000.0, 1_000.0)
    lp = binance.liquidation_price_usd(book, np.array([10_000.0]))[0]
    assert round(lp, 4) == 9036.1446
    assert lp == pytest.approx((1000 + 0 - 1 * 1 * 10_000) / (1 * 0.004 - 1 * 1), rel=1e-12)
    balance = binance.equity_usd(book, np.array([lp]))[0]
    assert balance == pytest.approx(0.004 * lp, rel=1e-12)


@pytest.mark.parametrize("side", [1, -1])
def test_binance_formula_in_a_higher_bracket(binance, side):
    # 30 BTC at 50,000 ($1.5M, bracket 4: MMR 2.5 %, cum 16,300), 10x isolated
    q, ep, wb = 30.0, 50_000.0, 150_000.0
    book = iso(("BTCUSDT",), side, q, ep, wb)
    lp = binance.liquidation_price_usd(book, np.array([ep]))[0]
    assert lp == pytest.approx((wb + 16_300 - side * q * ep) / (q * 0.025 - side * q), rel=1e-12)
    assert 1e6 <= q * lp < 1e7


def test_binance_maintenance_amounts_are_the_published_cum_values(binance):
    np.testing.assert_allclose(binance.maintenance_amount_usd("BTCUSDT"),
                               [0, 50, 1300, 16300, 266300, 1266300, 2516300, 5016300, 25016300, 100016300])


def test_binance_initial_margin_follows_the_bracket_leverage(binance):
    lev = binance.max_leverage(np.array([0, 0, 0, 0]), np.array([1, 1, 1, 1]), np.array([1e4, 5e4, 2e6, 6e8]))
    np.testing.assert_array_equal(lev[:3], [125, 100, 20])
    assert np.isnan(lev[3])  # beyond the last bracket's cap: not allowed


def test_binance_flags_at_a_margin_ratio_of_exactly_100_percent(binance):
    # MM = 40, margin balance = 40 at mark 10,000: marginRatio = 100 % -> liquidated
    book = iso(("BTCUSDT",), 1, 1.0, 10_000.0, 40.0)
    assert binance.liquidatable(book, np.array([10_000.0]))[0]
    assert not binance.liquidatable(book.with_state(margin_usd=np.array([40.01])), np.array([10_000.0]))[0]


def test_binance_clearance_fee_is_capped_by_what_margin_is_left(binance):
    book = iso(("BTCUSDT",), 1, 1.0, 10_000.0, 1_000.0)
    out = binance.liquidate(book, np.array([9_030.0]), fill_price_usd=np.array([9_030.0]))
    # surplus over bankruptcy (9,000) is 30; the 1.25 % fee would be 112.9: the fund gets 30, the trader 0
    assert out.fee_usd[0] == pytest.approx(30.0) and out.returned_to_owner_usd[0] == 0.0
    assert out.bankruptcy_price_usd[0] == pytest.approx(9_000.0)
    out = binance.liquidate(book.with_state(margin_usd=np.array([200.0]), size_base=np.array([0.1]),
                                            entry_price_usd=np.array([10_000.0])), np.array([8_020.0]))
    assert out.deficit_usd[0] == 0.0
    assert out.fee_usd[0] + out.returned_to_owner_usd[0] == pytest.approx(200 - 0.1 * 1_980)


def test_binance_adl_score_is_leverage_pnl(binance):
    book = iso(("BTCUSDT",), -1, 1.0, 10_000.0, 1_000.0)
    mark = np.array([9_000.0])  # short in profit by 1,000; MM = 36; balance 2,000
    score = binance.adl_score(book, mark)[0]
    assert score == pytest.approx(1_000 / 1_000 * (36 / 2_000))


# ----------------------------------------------------------------------------------------- Hyperliquid


@pytest.fixture(scope="module")
def hl():
    return load_adapter("hyperliquid")


def test_hyperliquid_vector_of_oracles_md(hl):
    """Long 1 BTC at 100,000, isolated margin 10,000, max leverage 40 -> liq 91,139.24, equity = MM."""
    book = iso(("BTC",), 1, 1.0, 100_000.0, 10_000.0)
    mark = np.array([100_000.0])
    lp = hl.liquidation_price_usd(book, mark)[0]
    assert round(lp, 2) == 91_139.24
    assert hl.equity_usd(book, np.array([lp]))[0] == pytest.approx(1_139.24, abs=0.005)
    assert hl.maintenance_margin_usd(book, np.array([lp]))[0] == pytest.approx(hl.equity_usd(book, np.array([lp]))[0],
                                                                           rel=1e-12)
    # the docs' formula: price - side * margin_available / size / (1 - l * side), l = 1 / (2 * 40)
    l_ = 1 / 80
    available = 10_000 - 100_000 * l_
    assert lp == pytest.approx(100_000 - 1 * available / 1 / (1 - l_ * 1), rel=1e-12)


def test_hyperliquid_docs_formula_for_a_short(hl):
    book = iso(("ETH",), -1, 10.0, 3_000.0, 2_000.0)
    lp = hl.liquidation_price_usd(book, np.array([3_000.0]))[0]
    l_ = 1 / 50  # ETH 25x
    available = 2_000 - 10 * 3_000 * l_
    assert lp == pytest.approx(3_000 + available / 10 / (1 + l_), rel=1e-12)


def test_hyperliquid_deductions_keep_maintenance_continuous(hl):
    np.testing.assert_allclose(hl.maintenance_deduction_usd("BTC"), [0, 1_875_000])
    np.testing.assert_allclose(hl.maintenance_deduction_usd("ETH"), [0, 1_333_333.33], atol=0.01)
    floor = 150e6
    book = PerpBook(("BTC",), [0, 0], [1, 1], [floor / 1e5 * (1 - 1e-12), floor / 1e5 * (1 + 1e-12)],
                    [1e5, 1e5], [1e7, 1e7], [ISOLATED] * 2, [0, 1], [0.0, 0.0])
    mm = hl.maintenance_margin_usd(book, np.array([1e5, 1e5]))
    assert mm[0] == pytest.approx(mm[1], rel=1e-9) and mm[0] == pytest.approx(floor * 0.0125, rel=1e-9)


@pytest.mark.parametrize("mark, route", [(90_950.0, "market"), (90_700.0, "backstop"), (89_000.0, "adl")])
def test_hyperliquid_market_then_backstop_then_adl(hl, mark, route):
    book = iso(("BTC",), 1, 1.0, 100_000.0, 10_000.0)
    out = hl.liquidate(book, np.array([mark]))
    equity = 10_000 + mark - 100_000
    assert out.closed_size_base[0] == 1.0  # $91k notional: below the partial threshold
    if route == "market":
        assert out.market_flow_base[0] == -1.0 and out.returned_to_owner_usd[0] == pytest.approx(equity)
    elif route == "backstop":
        assert out.backstop_size_base[0] == 1.0 and out.market_flow_base[0] == 0.0
        assert out.backstop_takeover_usd[0] == pytest.approx(equity) and out.returned_to_owner_usd[0] == 0.0
    else:
        assert out.offset_size_base[0] == 1.0 and out.deficit_usd[0] == pytest.approx(-equity)
        assert not out.insurance_eligible[0]
    assert out.fee_usd[0] == 0.0


def test_hyperliquid_partial_liquidation_above_100k_unless_in_cooldown(hl):
    book = iso(("BTC",), -1, 10.0, 100_000.0, 30_000.0)  # $1M short
    mark = np.array([101_900.0])  # equity 11,000; MM 12,737.5; 2/3 MM 8,491.7 -> market liquidation
    out = hl.liquidate(book, mark)
    assert out.closed_size_base[0] == pytest.approx(2.0) and out.market_flow_base[0] == pytest.approx(2.0)
    assert out.book.size_base[0] == pytest.approx(8.0)
    whole = hl.liquidate(book, mark, partial_allowed=np.array([False]))
    assert whole.closed_size_base[0] == 10.0
    assert hl.circuit_breakers().partial_liquidation_cooldown_s == 30.0


def test_hyperliquid_cross_backstop_takes_every_cross_position(hl):
    book = PerpBook(("BTC", "ETH"), [0, 1], [1, 1], [1.0, 10.0], [100_000.0, 3_000.0], [0.0, 0.0],
                    [CROSS, CROSS], [0, 0], [4_000.0])
    mark = np.array([97_500.0, 2_950.0])  # equity 4,000 - 2,500 - 500 = 1,000 < 2/3 of MM 1,808.75
    out = hl.liquidate(book, mark)
    np.testing.assert_allclose(out.backstop_size_base, [1.0, 10.0])
    assert out.backstop_takeover_usd.sum() == pytest.approx(1_000.0)
    assert out.book.cross_collateral_usd[0] == pytest.approx(0.0, abs=1e-9)


# ------------------------------------------------------------------------------------------------ dYdX


@pytest.fixture(scope="module")
def dydx():
    return load_adapter("dydx_v4")


def test_dydx_oimf_scales_initial_margin_with_open_interest(dydx):
    # Large-Cap has OIMF off (upper cap 0): 50x whatever the open interest
    assert dydx.max_leverage(np.array([0]), np.array([1]), np.array([1e6]),
                              OpenInterest(np.array([1e12, 1e12]), np.array([0.0, 0.0])))[0] == pytest.approx(50.0)
    cand = dydx.with_params({"Large-Cap.open_interest_lower_cap_usd": 20e6,
                             "Large-Cap.open_interest_upper_cap_usd": 50e6})
    imf = cand.initial_margin_fraction(np.array([0, 0, 0, 0]), np.array([10e6, 20e6, 35e6, 60e6]))
    np.testing.assert_allclose(imf, [0.02, 0.02, 0.02 + 0.5 * 0.98, 1.0])


def test_dydx_fillable_and_bankruptcy_prices_follow_liquidations_go(dydx):
    # cross subaccount: long 2 BTC at 100k and short 20 ETH at 3k, collateral 6,000
    book = PerpBook(("BTC-USD", "ETH-USD"), [0, 1], [1, -1], [2.0, 20.0], [100_000.0, 3_000.0], [0.0, 0.0],
                    [CROSS, CROSS], [0, 0], [6_000.0])
    mark = np.array([97_500.0, 3_050.0])
    tnc = 6_000 + 2 * (97_500 - 100_000) - 20 * (3_050 - 3_000)  # 0
    mmr = np.array([2 * 97_500, 20 * 3_050]) * 0.012
    tmmr = mmr.sum()
    assert dydx.liquidatable(book, mark).all()
    abr = np.clip(1.0 * (1 - tnc / tmmr), 0, 1)
    np.testing.assert_allclose(dydx.fillable_price_usd(book, mark),
                               mark * (1 - np.array([1, -1]) * abr * 1.5 * 0.012), rtol=1e-12)
    out = dydx.liquidate(book, mark)
    # one position per subaccount per block (the first), 10 % of its $195k notional = $19.5k
    assert out.closed_size_base[0] == pytest.approx(0.2) and out.closed_size_base[1] == 0.0
    c, m = 0.2, mark[0]
    bankruptcy_quote = c * m - tnc * (c * m * 0.012) / tmmr  # -DNNV - TNC*|DMMR|/TMMR
    assert out.bankruptcy_price_usd[0] == pytest.approx(bankruptcy_quote / c, rel=1e-12)


def test_dydx_insurance_fee_is_min_of_cap_and_surplus(dydx):
    book = iso(("BTC-USD",), 1, 1.0, 100_000.0, 2_500.0)
    mark = np.array([98_600.0])  # TNC 1,100 < MMR 1,183.2
    out = dydx.liquidate(book, mark, fill_price_usd=mark)
    # $98.6k notional: 10 % = $9,860 > $1k minimum -> 0.1 BTC closed
    assert out.closed_size_base[0] == pytest.approx(0.1)
    surplus = 0.1 * (98_600 - out.bankruptcy_price_usd[0])
    assert out.fee_usd[0] == pytest.approx(min(0.015 * 0.1 * 98_600, surplus))


@pytest.mark.parametrize("notional, closed_notional", [(5e6, 1e5), (5e3, 1e3), (8e2, 8e2), (5e5, 5e4)])
def test_dydx_block_limits(dydx, notional, closed_notional):
    book = iso(("BTC-USD",), 1, notional / 1e5, 1e5, notional * 0.005)
    out = dydx.liquidate(book, np.array([1e5]))
    assert out.closed_size_base[0] * 1e5 == pytest.approx(closed_notional)


def test_dydx_unfillable_negative_tnc_is_deleveraged_without_the_insurance_fund(dydx):
    book = iso(("BTC-USD",), 1, 1.0, 100_000.0, 2_000.0)
    mark = np.array([97_000.0])  # TNC -1,000
    out = dydx.liquidate(book, mark, fill_price_usd=mark * 0.9)  # worse than the fillable price: IOC fails
    assert out.extra["unfilled"][0] and out.market_flow_base[0] == 0.0
    assert out.offset_size_base[0] == 1.0 and out.deficit_usd[0] == pytest.approx(1_000.0)
    assert not out.insurance_eligible[0]
    healthy_tnc = iso(("BTC-USD",), 1, 1.0, 100_000.0, 4_000.0)
    out = dydx.liquidate(healthy_tnc, mark, fill_price_usd=mark * 0.9)  # TNC 1,000 >= 0: retried next block
    assert not out.liquidated.any() and out.extra["unfilled"][0]


def test_dydx_refuses_a_fill_the_insurance_fund_may_not_pay(dydx):
    book = iso(("BTC-USD",), 1, 0.005, 100_000.0, 10.0)  # $470 of notional: closed whole
    mark = np.array([94_000.0])  # TNC -20: the fund would pay 20 for a fill at the mark
    out = dydx.liquidate(book, mark)
    assert out.market_flow_base[0] == -0.005 and out.deficit_usd[0] == pytest.approx(20.0)
    capped = dydx.with_params({"max_insurance_fund_loss_per_block_usd": 10.0})
    out = capped.liquidate(book, mark)
    assert out.extra["unfilled"][0] and out.market_flow_base[0] == 0.0
    assert out.offset_size_base[0] == 0.005 and out.deficit_usd[0] == pytest.approx(20.0)


# ------------------------------------------------------------------------------------------------- GMX


@pytest.fixture(scope="module")
def gmx():
    return load_adapter("gmx_v2")


def test_gmx_price_impact_matches_pricing_utils():
    f = lambda x, k, e: k * x**e
    # same side, worsening: 10M -> 12M of long skew, negative factor 9e-11, exponent 2
    impact, improved = price_impact_usd(np.array([30e6]), np.array([20e6]), np.array([32e6]), np.array([20e6]),
                                        np.array([3e-11]), np.array([9e-11]), np.array([1.0]), np.array([2.0]))
    assert impact[0] == pytest.approx(-(f(12e6, 9e-11, 2) - f(10e6, 9e-11, 2))) and not improved[0]
    # same side, improving: positive exponent capped at the negative one; factor 3e-11 (<= 9e-11)
    impact, improved = price_impact_usd(np.array([30e6]), np.array([20e6]), np.array([25e6]), np.array([20e6]),
                                        np.array([3e-11]), np.array([9e-11]), np.array([1.0]), np.array([2.0]))
    assert impact[0] == pytest.approx(f(10e6, 3e-11, 1) - f(5e6, 3e-11, 1)) and improved[0]
    # crossover: 10M long skew -> 5M short skew
    impact, _ = price_impact_usd(np.array([30e6]), np.array([20e6]), np.array([15e6]), np.array([20e6]),
                                 np.array([3e-11]), np.array([9e-11]), np.array([1.0]), np.array([2.0]))
    assert impact[0] == pytest.approx(f(10e6, 3e-11, 1) - f(5e6, 9e-11, 2))


def test_gmx_liquidation_rule_and_fees(gmx):
    # long 1 BTC at 100k with 10k collateral, the only position: closing it removes the whole skew,
    # so the balance improves -> position fee 0.04 %
    book = iso(("BTC-USD",), 1, 1.0, 100_000.0, 10_000.0)
    lp = gmx.liquidation_price_usd(book, np.array([100_000.0]))[0]
    # remaining = 10,000 - 40 + (x - 100,000) = 0.5 % x 100,000 (sizeInUsd)
    assert lp == pytest.approx(100_000 - 10_000 + 40 + 500, rel=1e-12)
    out = gmx.liquidate(book, np.array([lp - 1.0]))
    assert out.fee_usd[0] == pytest.approx(40 + 200)  # position fee + 0.2 % liquidation fee
    assert out.returned_to_owner_usd[0] == pytest.approx(500 - 1 - 200)
    # against a larger short side, closing the long worsens the balance -> 0.06 %
    oi = OpenInterest(np.array([1e6, 0.0]), np.array([3e6, 0.0]))
    assert gmx.liquidation_price_usd(book, np.array([1e5]), oi)[0] == pytest.approx(100_000 - 10_000 + 60 + 500)
    assert gmx.liquidation_flow_destination == "pool" and not gmx.supports_cross_margin


def test_gmx_min_collateral_usd_binds_small_positions(gmx):
    book = iso(("BTC-USD",), 1, 0.001, 100_000.0, 5.0)  # $100: 0.5 % is $0.50 < $1
    lp = gmx.liquidation_price_usd(book, np.array([100_000.0]))[0]
    assert lp == pytest.approx(100_000 - (5.0 - 0.04 - 1.0) / 0.001, rel=1e-12)


def test_gmx_open_interest_scales_the_collateral_factor_at_open(gmx):
    oi = OpenInterest(np.array([83_333_333.33, 0.0]), np.array([166_666_666.67, 0.0]))
    lev = gmx.max_leverage(np.array([0, 0]), np.array([1, -1]), np.array([1e4, 1e4]), oi)
    np.testing.assert_allclose(lev, [200.0, 100.0], rtol=1e-8)


def test_gmx_adl_realises_pnl_down_to_the_min_factor(gmx):
    v = 72e6
    assert gmx.adl_pnl_to_realize_usd("BTC-USD", 0.8 * v) == 0.0
    x = gmx.adl_pnl_to_realize_usd("BTC-USD", 0.9 * v)
    assert (0.9 * v - x) / (v - x) == pytest.approx(0.77, rel=1e-12)
    assert gmx.adl_trigger == "pnl_to_pool"


def test_gmx_refuses_cross_margin(gmx):
    book = PerpBook(("BTC-USD",), [0], [1], [1.0], [1e5], [0.0], [CROSS], [0], [1e4])
    with pytest.raises(ValueError, match="isolated positions only"):
        gmx.liquidatable(book, np.array([1e5]))
