"""The liquidation-map calibration: the trailing-extreme statistic by hand, the hinge fit on known data, the
committed calibration file equals a re-fit of the bundled flows, and a synthetic book drawn from it reproduces
the fitted slope through every perp venue's closed-form liquidation prices."""

import json

import numpy as np
import pytest

from optimizer.errors import InputError
from optimizer.scenario.perp_book import draw_perp_synthetic, materialize_perp, static_liquidation_map
from optimizer.scenario.perp_calibration import (
    HingeFit,
    LiquidationFlows,
    calibration_record,
    depth_since_extreme,
    fit_liquidation_map,
    read_liquidation_flows_csv,
)
from optimizer.snapshots import data_dir, load_adapter
from protocols import PERP_ADAPTERS

CALIBRATION = "flows/eth_usdt_perp_liquidation_map_2021-01.json"


@pytest.fixture(scope="module")
def calibration():
    return json.loads((data_dir() / CALIBRATION).read_text())


@pytest.fixture(scope="module")
def flows():
    return read_liquidation_flows_csv(data_dir() / "flows" / "eth_usdt_perp_1m_liquidations_2021-01.csv")


def test_depth_since_extreme_by_hand():
    price = np.array([100.0, 110.0, 99.0, 104.5, 88.0, 120.0])
    liq = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    depth, since, ref = depth_since_extreme(price, liq, 3, "long")
    # trailing 3-row high: 100, 110, 110, 110, 104.5 (110 left the window), 120
    np.testing.assert_array_equal(ref, [0, 1, 1, 1, 3, 5])
    np.testing.assert_allclose(depth, [0, 0, 1 - 99 / 110, 1 - 99 / 110, 1 - 88 / 104.5, 0], rtol=1e-14)
    np.testing.assert_array_equal(since, [0, 0, 3, 7, 5, 0])
    depth, since, ref = depth_since_extreme(price, liq, 3, "short")
    np.testing.assert_array_equal(ref, [0, 0, 2, 2, 4, 4])  # trailing lows 100, 100, 99, 99, 88, 88
    np.testing.assert_allclose(depth, [0, 0.1, 0, 104.5 / 99 - 1, 0, 120 / 88 - 1], rtol=1e-14)
    np.testing.assert_array_equal(since, [0, 2, 0, 4, 0, 6])


def test_hinge_fit_recovers_a_known_map_exactly():
    """Two falls a day over 10 days, liquidations exactly 5000 * max(x - 2 %, 0) of the deepest fall so far."""
    day = np.repeat(np.arange(10), 1440)
    t = np.arange(day.size)
    phase = (t % 720) / 720
    depth = np.where(phase < 0.5, 0.08 * (1 + (t // 720) % 3) * phase, 0.0)  # falls of 4, 8, 12 %, then back
    price = 1000 * (1 - depth)
    cum = 5000 * np.maximum(np.maximum.accumulate(depth.reshape(-1, 720), axis=1).reshape(-1) - 0.02, 0)
    liq = np.diff(np.concatenate([[0.0], cum]))
    liq[t % 720 == 0] = 0.0
    ts = np.datetime64("2021-01-01T00:00:00") + t.astype("timedelta64[m]")
    flows = LiquidationFlows(ts, price, price, liq, np.zeros_like(liq), "synthetic")
    f = fit_liquidation_map(flows, "long", window_min=720, n_boot=50)
    assert f.slope_base == pytest.approx(5000, rel=1e-9) and f.dead_band == pytest.approx(0.02)
    assert f.r2_uncentered == pytest.approx(1.0, abs=1e-12) and f.n_days == 10
    assert f.slope_se_base < 1e-6  # exact data: every bootstrap replicate gives the same map


def test_committed_calibration_is_the_fit_of_the_bundled_flows(flows, calibration):
    assert len(flows) == calibration["long"]["minutes"] == 43_173
    for side in ("long", "short"):
        cal = calibration[side]
        f = fit_liquidation_map(flows, side, cal["window_min"], n_boot=calibration["bootstrap"]["replicates"],
                                seed=calibration["bootstrap"]["seed"])
        rec = calibration_record(f, calibration["reference_open_interest"]["value_base"])
        assert rec.keys() == cal.keys()
        for k, v in rec.items():
            np.testing.assert_allclose(v, cal[k], rtol=1e-9, err_msg=f"{side}.{k}")
    long_ = calibration["long"]
    # the headline numbers quoted in data/README.md
    assert round(long_["slope_base_per_unit_move"] / 100) == 4102
    assert [round(x / 100) for x in long_["slope_base_per_unit_move_ci95"]] == [3223, 4518]
    assert long_["dead_band"] == 0.036


def test_flows_reader_names_bad_values(tmp_path):
    p = tmp_path / "f.csv"
    head = "timestamp,bid_usd,ask_usd,long_liquidated_base,short_liquidated_base\n"
    p.write_text(head + "2021-01-01T00:00:00Z,10,11,0,0\n2021-01-01T00:01:00Z,10,9,0,0\n")
    with pytest.raises(InputError, match=r"f.csv: line 3, column ask_usd: ask 9 is below bid 10"):
        read_liquidation_flows_csv(p)
    p.write_text(head + "2021-01-01T00:00:00Z,10,11,0,0\n2021-01-01T00:01:00Z,10,11,-2,0\n")
    with pytest.raises(InputError, match=r"line 3, column long_liquidated_base: must be >= 0, got -2"):
        read_liquidation_flows_csv(p)
    p.write_text(head + "2021-01-01T00:01:00Z,10,11,0,0\n2021-01-01T00:00:00Z,10,11,0,0\n")
    with pytest.raises(InputError, match=r"line 3, column timestamp: timestamps not sorted"):
        read_liquidation_flows_csv(p)


@pytest.mark.parametrize("venue", sorted(PERP_ADAPTERS))
def test_a_calibrated_book_reproduces_the_fitted_map_through_each_venue(venue, calibration):
    """Draw a book from the calibration, take every position's closed-form liquidation price under the venue's
    rules, and read the liquidatable share of each side against the price move: it is 0 inside the dead band
    and rises with the fitted slope, within the fit's bootstrap error, over the moves the fit saw."""
    adapter = load_adapter(venue)
    market = adapter.markets[0]
    raw = {"kind": "perp_synthetic", "positions": 20_000, "open_interest_usd": {market: 1e9}, "long_share": 0.6,
           "size_usd": {"dist": "lognormal", "median": 20_000, "sigma": 1.0}, "calibration": CALIBRATION}
    draws = draw_perp_synthetic(raw, adapter, "s.toml", "book", np.random.default_rng(3))
    price = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "XRP": 0.6}
    book = materialize_perp(draws, adapter, adapter, price).book
    mark = book.position_marks(np.array([price[a] for a in adapter.base_assets]))
    for side, s in (("long", 1), ("short", -1)):
        cal = calibration[side]
        moves = np.linspace(0.0, cal["max_move_observed"], 88)
        share = static_liquidation_map(adapter, book, mark, moves, s) / book.size_base[book.side == s].sum()
        inside = moves < cal["dead_band"] * (1 - 1e-9)
        assert np.all(share[inside] == 0)
        x, y = moves[~inside] - cal["dead_band"], share[~inside]
        slope = float(x @ y / (x @ x))  # through the dead band's end
        target = cal["slope_share_of_open_interest_per_unit_move"]
        assert abs(slope - target) < cal["slope_share_of_open_interest_per_unit_move_se"], (side, slope)
        assert abs(slope / target - 1) < 0.05, (side, slope)  # and within the sampling noise of 20,000 draws
    if venue == "binance_usdm":  # the closed-form map is the venue's own flag, moved price by price
        for d in (0.05, 0.1, 0.2):
            flagged = adapter.liquidatable(book, mark * (1 - d)) & (book.side > 0)
            assert book.size_base[flagged].sum() == pytest.approx(
                static_liquidation_map(adapter, book, mark, np.array([d]), 1)[0], rel=1e-6)


def test_calibrated_margins_are_fixed_by_the_current_parameters():
    """A candidate keeps the calibrated book's margins (it moves its liquidation prices), except where its
    lower maximum leverage forces more margin."""
    adapter = load_adapter("hyperliquid")
    raw = {"kind": "perp_synthetic", "positions": 2000, "open_interest_usd": {"BTC": 1e8}, "long_share": 1.0,
           "size_usd": {"dist": "constant", "value": 1}, "calibration": CALIBRATION}
    draws = draw_perp_synthetic(raw, adapter, "s.toml", "book", np.random.default_rng(5))
    cand = adapter.with_params({"BTC.tier0.max_leverage": 10, "BTC.tier1.max_leverage": 10})
    cur = materialize_perp(draws, adapter, adapter, {"BTC": 60_000.0}).book
    new = materialize_perp(draws, cand, adapter, {"BTC": 60_000.0}).book
    np.testing.assert_allclose(new.margin_usd, np.maximum(cur.margin_usd, 1e8 / 2000 / 10), rtol=1e-12)
    assert (new.margin_usd > cur.margin_usd).any() and (new.margin_usd == cur.margin_usd).any()


def test_hinge_fit_interval_properties():
    f = HingeFit("long", 240, 10.0, 0.01, 0.9, 100, 3, 0.2, np.array([8.0, 10.0, 12.0]), np.array([0.0, 0.01, 0.02]))
    assert f.slope_se_base == pytest.approx(2.0) and f.slope_ci95_base == pytest.approx((8.1, 11.9))
    np.testing.assert_allclose(f.predict([0.0, 0.01, 0.11]), [0.0, 0.0, 1.0])
