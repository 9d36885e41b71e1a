"""Aave v2: the snapshot, hand-worked liquidationCall examples and an integer transcription of the v2
contracts (``GenericLogic.calculateUserAccountData``, ``LendingPoolCollateralManager.liquidationCall``,
``_calculateAvailableCollateralToLiquidate``, aave/protocol-v2 @ 1.0.1) that the adapter must match."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.snapshots import data_dir, load_adapter, read_json
from protocols import AaveV2, Book, InvalidParameters, Prices, SnapshotError
from protocols.aave_v2 import COLLATERAL_CANNOT_BE_LIQUIDATED, CURRENCY_NOT_BORROWED, HEALTHY, OK

WAD = 10**18
PCT = 10_000


@pytest.fixture(scope="module")
def v2():
    return load_adapter("aave_v2")


def book(coll_assets, debt_assets, coll, debt):
    return Book(tuple(coll_assets), tuple(debt_assets), np.array(coll, float, ndmin=2), np.array(debt, float, ndmin=2))


def px(book_, prices):
    return Prices.from_mapping(book_, prices)


# ------------------------------------------------------------------ snapshot


def test_snapshot_holds_the_launch_values_and_states_its_date_range(v2):
    p = v2.params
    assert (p["WETH.ltv_bps"], p["WETH.liquidation_threshold_bps"], p["WETH.liquidation_bonus_bps"]) == (8000, 8250, 10500)
    assert (p["WBTC.liquidation_threshold_bps"], p["WBTC.liquidation_bonus_bps"]) == (7500, 11000)
    assert (p["DAI.liquidation_threshold_bps"], p["USDC.liquidation_threshold_bps"]) == (8000, 8500)
    assert (p["YFI.liquidation_bonus_bps"], p["xSUSHI.liquidation_threshold_bps"]) == (11500, 4500)
    assert p["close_factor"] == 0.5
    assert "USDT" not in v2.collateral_assets and "USDT" in v2.debt_assets
    assert "AAVE" in v2.collateral_assets and "AAVE" not in v2.debt_assets
    meta = v2.snapshot_meta
    assert (meta["valid_from"], meta["valid_to"], meta["as_of"]) == ("2021-01-25", "2021-09-04", "2021-05-19")
    assert meta["valid_from"] <= meta["as_of"] < meta["valid_to"]
    assert "7e39178e" in v2.schema().spec("WETH.ltv_bps").source or "AIP" in v2.schema().spec("WETH.ltv_bps").source
    assert v2.circuit_breakers().liquidations_paused == frozenset()


def test_snapshot_must_state_its_date_range():
    snap = copy.deepcopy(read_json(data_dir() / "protocols" / "aave_v2_ethereum_2021-05-19.json"))
    del snap["valid_to"]
    with pytest.raises(SnapshotError, match="valid_to: missing"):
        AaveV2(snap)


def test_configurator_rules_are_enforced(v2):
    with pytest.raises(InvalidParameters, match="ltv <= liquidation threshold"):
        v2.with_params({"WETH.ltv_bps": 8300})
    with pytest.raises(InvalidParameters, match=r"liquidation threshold x liquidation bonus <= 100 %"):
        v2.with_params({"WETH.liquidation_bonus_bps": 12200})  # 8250 x 1.22 = 10065 > 10000


# ------------------------------------------------------------------ hand-worked liquidationCall


def test_close_factor_is_half_of_the_reserve_debt_whatever_the_health_factor(v2):
    """10 ETH at $2,000 against 17,000 DAI: HF = 20,000 x 0.825 / 17,000 = 0.970588. One call repays
    8,500 DAI (50 %) and seizes 8,500 / 2,000 x 1.05 = 4.4625 ETH; the liquidator keeps the whole
    bonus 0.2125 ETH = $425. At HF 0.5 (below v3's 0.95 threshold) v2 still repays only 50 %."""
    b = book(["WETH"], ["DAI"], [[10.0], [10.0]], [[17_000.0], [33_000.0]])
    p = px(b, {"WETH": 2000.0, "DAI": 1.0})
    np.testing.assert_allclose(v2.health(b, p), [20_000 * 0.825 / 17_000, 20_000 * 0.825 / 33_000], rtol=1e-15)
    out = v2.liquidate(b, p)
    np.testing.assert_allclose(out.debt_repaid_tokens[:, 0], [8_500.0, 16_500.0], rtol=1e-15)
    np.testing.assert_allclose(out.collateral_seized_tokens[0, 0], 4.4625, rtol=1e-15)
    np.testing.assert_allclose(out.liquidator_bonus_usd[0], 425.0, rtol=1e-12)
    assert out.protocol_fee_usd[0] == 0 and out.bad_debt_usd[0] == 0
    np.testing.assert_allclose(v2.health(out.book, p)[0], 5.5375 * 2000 * 0.825 / 8500, rtol=1e-12)  # 1.075


def test_close_factor_is_per_debt_reserve_not_the_whole_position(v2):
    """DAI 10,000 + USDC 6,000 against $20,000 of WETH: the call on DAI repays 50 % of the DAI
    debt (5,000), not 50 % of the whole $16,000 position as Aave v3.3 allows."""
    b = book(["WETH"], ["DAI", "USDC"], [[10.0]], [[10_000.0, 6_000.0]])
    p = px(b, {"WETH": 2000.0, "DAI": 1.0, "USDC": 1.0})
    assert v2.health(b, p)[0] == pytest.approx(16_500 / 16_000)
    p = px(b, {"WETH": 1900.0, "DAI": 1.0, "USDC": 1.0})
    out = v2.liquidate(b, p)
    assert out.extra["debt_index"][0] == 0
    assert out.debt_repaid_tokens[0].tolist() == [5_000.0, 0.0]
    v3_cap = 0.5 * 16_000
    assert out.debt_repaid_usd[0] < v3_cap


def test_last_collateral_taken_leaves_the_debt_unbooked(v2):
    """1 WBTC at $30,000 against 60,000 USDC (HF 0.375): 50 % = 30,000 USDC would need 1.1 WBTC,
    so the whole 1 WBTC is seized for 30,000 / 1.1 = 27,272.73 USDC. The remaining 32,727.27 USDC has
    no collateral behind it and stays on the account: no deficit, bad_debt_usd = 0."""
    b = book(["WBTC"], ["USDC"], [[1.0]], [[60_000.0]])
    p = px(b, {"WBTC": 30_000.0, "USDC": 1.0})
    out = v2.liquidate(b, p)
    assert out.collateral_seized_tokens[0, 0] == 1.0 and out.book.collateral_tokens[0, 0] == 0.0
    np.testing.assert_allclose(out.debt_repaid_tokens[0, 0], 30_000 / 1.1, rtol=1e-15)
    np.testing.assert_allclose(out.book.debt_tokens[0, 0], 60_000 - 30_000 / 1.1, rtol=1e-15)
    assert out.bad_debt_usd[0] == 0.0
    np.testing.assert_allclose(out.extra["unbacked_debt_usd"][0], 60_000 - 30_000 / 1.1, rtol=1e-15)
    assert bool(out.extra["collateral_exhausted"][0])


def test_refusals_follow_validate_liquidation_call(v2):
    b = book(["WETH", "DAI"], ["DAI", "USDC"], [[10.0, 0.0], [0.0, 0.0], [10.0, 0.0]],
             [[1_000.0, 0.0], [500.0, 0.0], [17_000.0, 0.0]])
    p = px(b, {"WETH": 2000.0, "DAI": 1.0, "USDC": 1.0})
    out = v2.liquidate(b, p, debt_index=np.array([0, 0, 1]))
    assert out.extra["reason"].tolist() == [HEALTHY, COLLATERAL_CANNOT_BE_LIQUIDATED, CURRENCY_NOT_BORROWED]
    out = v2.liquidate(b, p)
    assert out.extra["reason"].tolist() == [HEALTHY, COLLATERAL_CANNOT_BE_LIQUIDATED, OK]


def test_explicit_debt_to_cover_below_the_cap_is_used_as_given(v2):
    b = book(["WETH"], ["DAI"], [[10.0]], [[17_000.0]])
    p = px(b, {"WETH": 2000.0, "DAI": 1.0})
    out = v2.liquidate(b, p, debt_to_cover_tokens=np.array([1_000.0]))
    assert out.debt_repaid_tokens[0, 0] == 1_000.0
    np.testing.assert_allclose(out.collateral_seized_tokens[0, 0], 1_000 / 2000 * 1.05, rtol=1e-15)


# ------------------------------------------------------------------ integer transcription of the contracts


def _percent_mul(v, p):
    return 0 if v == 0 or p == 0 else (v * p + PCT // 2) // PCT


def _percent_div(v, p):
    return (v * PCT + p // 2) // p


def _wad_div(a, b):
    return (a * WAD + b // 2) // b


def ref_health_factor(coll, coll_dec, coll_price, lt, debt, debt_dec, debt_price):
    """calculateUserAccountData + calculateHealthFactorFromBalances (balances in base units, prices in wei/ETH)."""
    total_coll = avg_lt = total_debt = 0
    for bal, dec, price, t in zip(coll, coll_dec, coll_price, lt, strict=True):
        if t != 0 and bal > 0:
            eth = price * bal // 10**dec
            total_coll += eth
            avg_lt += eth * t
    for bal, dec, price in zip(debt, debt_dec, debt_price, strict=True):
        total_debt += price * bal // 10**dec
    avg_lt = avg_lt // total_coll if total_coll else 0
    return _wad_div(_percent_mul(total_coll, avg_lt), total_debt) / WAD, avg_lt


def ref_liquidation(debt_bal, debt_dec, debt_price, coll_bal, coll_dec, coll_price, bonus):
    """liquidationCall with debtToCover = max: (actualDebtToLiquidate, maxCollateralToLiquidate)."""
    actual = _percent_mul(debt_bal, 5000)
    max_coll = _percent_mul(debt_price * actual * 10**coll_dec, bonus) // (coll_price * 10**debt_dec)
    if max_coll > coll_bal:
        coll_amt = coll_bal
        needed = _percent_div(coll_price * coll_amt * 10**debt_dec // (debt_price * 10**coll_dec), bonus)
    else:
        coll_amt, needed = max_coll, actual
    return min(actual, needed), coll_amt


ASSETS = {"WETH": 18, "WBTC": 8, "USDC": 6, "LINK": 18}  # collateral decimals in the reference


@settings(max_examples=60, deadline=None)
@given(
    eth_per_wbtc=st.floats(5, 40), eth_per_usdc=st.floats(1e-4, 1e-3), eth_per_link=st.floats(5e-3, 5e-2),
    coll_usd=st.lists(st.floats(0, 5e6), min_size=4, max_size=4),
    debt_usdc=st.floats(1e3, 5e6), single=st.booleans(),
)
def test_adapter_matches_the_integer_contracts(v2, eth_per_wbtc, eth_per_usdc, eth_per_link, coll_usd, debt_usdc,
                                               single):
    """HF, repaid debt and seized collateral equal the wei-level transcription of the v2 contracts.

    With one collateral (whole-bps average LT) HF matches to 1e-9; with several, the contracts truncate
    the average LT to whole bps, which the adapter does not: its HF is higher by less than 1 bps of LT.
    """
    names = list(ASSETS)
    price_eth = {"WETH": 1.0, "WBTC": eth_per_wbtc, "USDC": eth_per_usdc, "LINK": eth_per_link}
    coll_usd = [coll_usd[0] + 1e3] + ([0.0] * 3 if single else coll_usd[1:])
    usd_per_eth = 1.0 / eth_per_usdc
    coll_tokens = [c / usd_per_eth / price_eth[a] for c, a in zip(coll_usd, names, strict=True)]
    coll_wei = [int(t * 10**ASSETS[a]) for t, a in zip(coll_tokens, names, strict=True)]
    coll_tokens = [w / 10**ASSETS[a] for w, a in zip(coll_wei, names, strict=True)]  # exactly representable input
    price_wei = {a: int(price_eth[a] * WAD) for a in names}
    debt_wei = int(debt_usdc * 1e6)
    lt = [int(v2.params[f"{a}.liquidation_threshold_bps"]) for a in names]

    b = Book(tuple(names), ("USDC",), np.array([coll_tokens]), np.array([[debt_wei / 1e6]]))
    p = Prices(np.array([price_wei[a] / WAD for a in names]), np.array([price_wei["USDC"] / WAD]))
    hf = v2.health(b, p)[0]
    ref_hf, avg_lt = ref_health_factor(coll_wei, [ASSETS[a] for a in names], [price_wei[a] for a in names], lt,
                                       [debt_wei], [6], [price_wei["USDC"]])
    if single:
        assert hf == pytest.approx(ref_hf, rel=1e-9, abs=1e-15)
    else:
        assert ref_hf <= hf * (1 + 1e-9)
        assert hf - ref_hf <= hf / max(avg_lt, 1) + 1e-9

    if hf < 1.0 and ref_hf < 1.0:
        out = v2.liquidate(b, p)
        ci = int(out.extra["collateral_index"][0])
        repay_ref, seize_ref = ref_liquidation(debt_wei, 6, price_wei["USDC"], coll_wei[ci], ASSETS[names[ci]],
                                               price_wei[names[ci]], int(v2.params[f"{names[ci]}.liquidation_bonus_bps"]))
        assert out.debt_repaid_tokens[0, 0] == pytest.approx(repay_ref / 1e6, rel=1e-9, abs=2e-6)
        assert out.collateral_seized_tokens[0, ci] == pytest.approx(seize_ref / 10**ASSETS[names[ci]], rel=1e-9,
                                                                    abs=2 / 10**ASSETS[names[ci]])
