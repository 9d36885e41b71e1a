"""Compound III (Comet) rules: hand-worked absorbs, the storefront, config checks, snapshot errors."""

import copy

import numpy as np
import pytest
from _factory_compound_v3 import make_book

from optimizer.snapshots import load_adapter, read_json, snapshot_path
from protocols import Book, InvalidParameters, Prices, SnapshotError
from protocols.compound_v3 import CompoundV3, truncate_factor

PRICES_USD = {"WETH": 2000.0, "WBTC": 60000.0, "wstETH": 2400.0, "cbBTC": 60000.0, "tBTC": 60000.0,
              "USDe": 1.0, "LINK": 10.0, "UNI": 8.0, "COMP": 50.0}


@pytest.fixture(scope="module")
def snapshot():
    return read_json(snapshot_path("compound_v3"))


@pytest.fixture(scope="module")
def comet():
    return load_adapter("compound_v3")


def accounts(comet, rows, debts_usdc):
    """A book from per-account {symbol: tokens} dicts and USDC debts."""
    tokens = np.array([[r.get(a, 0.0) for a in comet.collateral_assets] for r in rows], float)
    return Book(comet.collateral_assets, comet.debt_assets, tokens, np.array(debts_usdc, float)[:, None])


def prices(comet, **override):
    p = {**PRICES_USD, **override}
    return Prices(np.array([p[a] for a in comet.collateral_assets]), np.array([1.0]))


def assert_identity(out):
    rhs = out.debt_repaid_usd + out.liquidator_bonus_usd + out.protocol_fee_usd + out.returned_to_owner_usd
    np.testing.assert_allclose(out.collateral_seized_usd, rhs, rtol=1e-12, atol=1e-9)


# --------------------------------------------------------------------------------------------
# Snapshot and schema
# --------------------------------------------------------------------------------------------


def test_assets_and_current_values_come_from_the_snapshot(comet):
    assert comet.collateral_assets == ("WETH", "WBTC", "wstETH", "cbBTC", "tBTC", "USDe", "LINK", "UNI", "COMP")
    assert comet.debt_assets == ("USDC",)
    p = comet.params
    assert (p["WETH.borrow_collateral_factor"], p["WETH.liquidate_collateral_factor"],
            p["WETH.liquidation_factor"]) == (0.83, 0.88, 0.93)
    assert (p["store_front_price_factor"], p["target_reserves_usd"], p["base_borrow_min_usd"]) == (0.5, 2e7, 100)
    assert p["wstETH.supply_cap_tokens"] == 15_000
    assert p["WETH.supply_cap_tokens"] == 0  # null in the snapshot: no cap known


def test_specs_carry_units_source_and_as_of(comet):
    schema = comet.schema()
    spec = schema.spec("LINK.liquidation_factor")
    assert spec.unit == "fraction" and spec.as_of == "2026-04" and "gauntlet" in spec.source
    cap = schema.spec("WETH.supply_cap_tokens")
    assert cap.unit == "tokens" and cap.integer and "no cap known" in cap.description
    reserves = schema.spec("target_reserves_usd")
    assert reserves.unit == "USD" and reserves.as_of == "2024-02" and reserves.source.startswith("compound-finance")


# --------------------------------------------------------------------------------------------
# Health and borrow capacity
# --------------------------------------------------------------------------------------------


def test_health_and_borrow_capacity_by_hand(comet):
    # 5 WETH at $2,000 + 1,000 LINK at $10, debt 15,000 USDC:
    #   liquidation-weighted = 10,000*0.88 + 10,000*0.79 = 16,700 -> health 16,700/15,000
    #   borrow capacity      = 10,000*0.83 + 10,000*0.73 = 15,600
    book = accounts(comet, [{"WETH": 5, "LINK": 1000}, {"WETH": 1}], [15_000, 0])
    h = comet.health(book, prices(comet))
    assert h[0] == pytest.approx(16_700 / 15_000, rel=1e-14)
    assert h[1] == np.inf  # no debt: never liquidatable
    assert comet.borrow_capacity_usd(book, prices(comet))[0] == pytest.approx(15_600, rel=1e-14)


def test_per_position_prices_match_shared_prices(comet):
    book, px = make_book(comet, np.random.default_rng(7), 50)
    px_rows = Prices(np.tile(px.collateral_usd, (50, 1)), np.tile(px.debt_usd, (50, 1)))
    np.testing.assert_array_equal(comet.health(book, px), comet.health(book, px_rows))
    out, out_rows = comet.liquidate(book, px), comet.liquidate(book, px_rows)
    np.testing.assert_array_equal(out.bad_debt_usd, out_rows.bad_debt_usd)
    np.testing.assert_array_equal(out.returned_to_owner_usd, out_rows.returned_to_owner_usd)


def test_factors_are_truncated_to_four_decimals_like_the_contract(comet):
    # getPackedAssetInternal stores factor / 1e14 as uint16: 0.87999 is used as 0.8799.
    c = comet.with_params({"WETH.liquidate_collateral_factor": 0.87999})
    book = accounts(comet, [{"WETH": 10}], [10_000])
    assert c.health(book, prices(comet))[0] == pytest.approx(20_000 * 0.8799 / 10_000, rel=1e-14)
    assert truncate_factor(0.0003) == 0.0003  # 0.0003 * 1e4 = 2.9999999999999996 in binary floats


# --------------------------------------------------------------------------------------------
# absorb
# --------------------------------------------------------------------------------------------


def test_absorb_with_shortfall_by_hand(comet):
    # 10 WETH at $2,000 = $20,000 of collateral, debt 19,000 USDC.
    #   isLiquidatable: 20,000*0.88 = 17,600 < 19,000                 -> yes (health 0.9263)
    #   credit   = 20,000*0.93 = 18,600 USDC < 19,000                 -> shortfall 400 paid by reserves
    #   storefront discount = sf*(1-LF) = 0.5*0.07 = 3.5 %             -> buyer bonus 20,000*0.035 = 700
    #   protocol keeps the rest of the 7 % penalty: 20,000*0.07*0.5    =  700
    #   identity: 20,000 = 18,600 repaid + 700 + 700 + 0 returned; debt removed = 18,600 + 400 = 19,000
    book = accounts(comet, [{"WETH": 10}], [19_000])
    px = prices(comet)
    assert comet.health(book, px)[0] == pytest.approx(17_600 / 19_000, rel=1e-14)
    out = comet.liquidate(book, px)
    assert out.liquidated.tolist() == [True]
    assert out.collateral_seized_usd[0] == pytest.approx(20_000, rel=1e-14)
    assert out.extra["absorbed_credit_usd"][0] == pytest.approx(18_600, rel=1e-14)
    assert out.debt_repaid_usd[0] == pytest.approx(18_600, rel=1e-14)
    assert out.debt_repaid_tokens[0, 0] == pytest.approx(18_600, rel=1e-14)
    assert out.bad_debt_usd[0] == pytest.approx(400, rel=1e-10)
    assert out.returned_to_owner_usd[0] == 0.0
    assert out.liquidator_bonus_usd[0] == pytest.approx(700, rel=1e-12)
    assert out.protocol_fee_usd[0] == pytest.approx(700, rel=1e-12)
    assert out.keeper_incentive_usd[0] == 0.0
    assert out.collateral_seized_tokens[0, comet.collateral_assets.index("WETH")] == 10.0
    assert out.book.collateral_tokens.sum() == 0.0 and out.book.debt_tokens.sum() == 0.0
    assert_identity(out)


def test_absorb_with_excess_credit_over_two_assets_by_hand(comet):
    # 5 WETH ($10,000; LCF 0.88, LF 0.93) + 1,000 LINK ($10,000; LCF 0.79, LF 0.83), debt 17,000 USDC.
    #   isLiquidatable: 8,800 + 7,900 = 16,700 < 17,000               -> yes
    #   credit = 9,300 + 8,300 = 17,600 > 17,000                      -> 600 becomes the owner's USDC supply
    #   buyer bonus = 10,000*0.5*0.07 + 10,000*0.5*0.17 = 350 + 850 = 1,200; protocol fee the same 1,200
    #   identity: 20,000 = 17,000 + 1,200 + 1,200 + 600
    # A second account (10 WETH, 17,000 debt: 17,600 >= 17,000) is healthy and must be left alone.
    book = accounts(comet, [{"WETH": 5, "LINK": 1000}, {"WETH": 10}], [17_000, 17_000])
    out = comet.liquidate(book, prices(comet))
    assert out.liquidated.tolist() == [True, False]
    assert out.extra["absorbed_credit_usd"].tolist() == pytest.approx([17_600, 0], rel=1e-14)
    assert out.debt_repaid_usd.tolist() == pytest.approx([17_000, 0], rel=1e-14)
    assert out.returned_to_owner_usd.tolist() == pytest.approx([600, 0], rel=1e-10)
    assert out.bad_debt_usd.tolist() == [0.0, 0.0]
    assert out.liquidator_bonus_usd.tolist() == pytest.approx([1_200, 0], rel=1e-12)
    assert out.protocol_fee_usd.tolist() == pytest.approx([1_200, 0], rel=1e-12)
    np.testing.assert_array_equal(out.book.collateral_tokens[1], book.collateral_tokens[1])
    assert out.book.debt_tokens[:, 0].tolist() == [0.0, 17_000.0]
    assert_identity(out)


def test_storefront_split_follows_store_front_price_factor(comet):
    # sf = 1 (as on the WETH comets before 2024): the buyer gets the whole penalty, the protocol nothing.
    c = comet.with_params({"store_front_price_factor": 1.0})
    out = c.liquidate(accounts(comet, [{"WETH": 10}], [19_000]), prices(comet))
    assert out.liquidator_bonus_usd[0] == pytest.approx(1_400, rel=1e-12) and out.protocol_fee_usd[0] == 0.0
    assert_identity(out)


def test_mask_and_health_gate_absorb(comet):
    book = accounts(comet, [{"WETH": 10}, {"WETH": 10}], [19_000, 19_000])
    out = comet.liquidate(book, prices(comet), mask=np.array([False, True]))
    assert out.liquidated.tolist() == [False, True]
    assert out.book.debt_tokens[:, 0].tolist() == [19_000.0, 0.0]
    # No collateral at all but debt: liquidatable, the whole debt is shortfall.
    out = comet.liquidate(accounts(comet, [{}], [500]), prices(comet))
    assert out.liquidated[0] and out.bad_debt_usd[0] == 500 and out.debt_repaid_usd[0] == 0


def test_random_books_keep_the_identity_and_clear_absorbed_accounts(comet):
    book, px = make_book(comet, np.random.default_rng(3), 2_000)
    h = comet.health(book, px)
    assert 0.45 < h.min() and h.max() < 1.55 and (h < 1).any() and (h >= 1).any()
    out = comet.liquidate(book, px)
    np.testing.assert_array_equal(out.liquidated, h < 1)
    assert_identity(out)
    debt_usd = book.debt_tokens[:, 0] * px.debt_usd[0]
    np.testing.assert_allclose((out.debt_repaid_usd + out.bad_debt_usd)[out.liquidated], debt_usd[out.liquidated],
                               rtol=1e-12)
    assert (out.book.debt_tokens[out.liquidated] == 0).all()


# --------------------------------------------------------------------------------------------
# Storefront: quoteCollateral / buyCollateral
# --------------------------------------------------------------------------------------------


def test_quote_collateral_matches_the_formula(comet):
    # 1,000 USDC for WETH at $2,000: discount 0.5*(1-0.93) = 3.5 % -> price 1,930 -> 0.5181347 WETH.
    assert comet.quote_collateral_tokens("WETH", 1_000.0, 2_000.0, 1.0) == pytest.approx(1_000 / 1_930, rel=1e-14)
    # UNI, LF 0.85: discount 7.5 %; base priced at $0.999.
    q = comet.quote_collateral_tokens("UNI", np.array([100.0, 200.0]), 8.0, 0.999)
    np.testing.assert_allclose(q, np.array([100.0, 200.0]) * 0.999 / (8.0 * 0.925), rtol=1e-14)


def test_buy_collateral_refused_at_and_above_target_reserves(comet):
    reserves_usd = np.array([-1e6, 0.0, 19_999_999.0, 20_000_000.0, 25_000_000.0])
    got = comet.buy_collateral(reserves_usd, "WETH", 1_000.0, 2_000.0)
    quote = 1_000 / 1_930
    np.testing.assert_allclose(got, [quote, quote, quote, 0.0, 0.0], rtol=1e-14)
    assert comet.circuit_breakers().collateral_sales_stop_reserves_usd == 20_000_000


def test_buy_collateral_refused_beyond_protocol_collateral(comet):
    # InsufficientReserves: all-or-nothing against the protocol's own balance of the asset.
    got = comet.buy_collateral(0.0, "WETH", np.array([1_000.0, 1_000_000.0]), 2_000.0,
                               collateral_reserves_tokens=10.0)
    np.testing.assert_allclose(got, [1_000 / 1_930, 0.0], rtol=1e-14)


# --------------------------------------------------------------------------------------------
# Config checks
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "names"),
    [
        ({"WETH.borrow_collateral_factor": 0.88}, ("WETH.borrow_collateral_factor", "BorrowCFTooLarge")),
        ({"WETH.borrow_collateral_factor": 0.9}, ("WETH.liquidate_collateral_factor=0.88", "BorrowCFTooLarge")),
        # Different at full precision, equal once truncated to 4 decimals: the contract's second check.
        ({"WETH.borrow_collateral_factor": 0.88001, "WETH.liquidate_collateral_factor": 0.88009},
         ("WETH.borrow_collateral_factor", "truncation to 4 decimals", "BorrowCFTooLarge")),
        ({"WBTC.liquidate_collateral_factor": 1.01}, ("WBTC.liquidate_collateral_factor=1.01", "LiquidateCFTooLarge")),
        ({"store_front_price_factor": 1.2}, ("store_front_price_factor=1.2", "BadDiscount")),
        ({"LINK.liquidation_factor": 1.05}, ("LINK.liquidation_factor=1.05", "liquidation_factor <= 1")),
        ({"LINK.liquidation_factor": 0.0}, ("LINK.liquidation_factor=0", "0 < liquidation_factor")),
        ({"wstETH.supply_cap_tokens": 10.5}, ("wstETH.supply_cap_tokens", "whole number")),
    ],
)
def test_invalid_parameters_name_the_parameter_and_the_rule(comet, overrides, names):
    with pytest.raises(InvalidParameters) as err:
        comet.with_params(overrides)
    for name in names:
        assert name in str(err.value)


def test_valid_overrides_round_trip_without_touching_the_original(comet):
    c = comet.with_params({"WETH.liquidation_factor": 0.9, "target_reserves_usd": 5e6})
    assert c.params["WETH.liquidation_factor"] == 0.9 and comet.params["WETH.liquidation_factor"] == 0.93
    assert c.circuit_breakers().collateral_sales_stop_reserves_usd == 5e6
    assert c.with_params({}).params == c.params


# --------------------------------------------------------------------------------------------
# Malformed snapshots
# --------------------------------------------------------------------------------------------


def _broken(snapshot, path, value=KeyError):
    snap = copy.deepcopy(snapshot)
    *parents, leaf = path.split(".")
    node = snap
    for part in parents:
        node = node[part]
    if value is KeyError:
        del node[leaf]
    else:
        node[leaf] = value
    return snap


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("assets.WETH.liquidation_factor", KeyError, "assets.WETH.liquidation_factor: missing"),
        ("assets.LINK.borrow_collateral_factor", "0.73", "assets.LINK.borrow_collateral_factor: expected number"),
        ("market_params.store_front_price_factor", None, "market_params.store_front_price_factor: expected number"),
        ("market_params.target_reserves_usd", KeyError, "market_params.target_reserves_usd: missing"),
        ("base_asset.symbol", 5, "base_asset.symbol: expected str"),
        ("assets.UNI.supply_cap_tokens", "lots", "assets.UNI.supply_cap_tokens: expected number"),
        ("assets", [], "assets: expected dict"),
    ],
)
def test_malformed_snapshot_names_the_path(snapshot, path, value, message):
    with pytest.raises(SnapshotError, match=message.replace(".", r"\.")):
        CompoundV3(_broken(snapshot, path, value))
