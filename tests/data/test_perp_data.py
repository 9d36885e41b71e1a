"""Bundled perp data: the Binance BTCUSDT perpetual 1-minute windows replay bar by bar with their lows and
highs (a perp book's adverse marks), and the January 2021 ETHUSDT forced-liquidation flows read back with the
figures their source states."""

import json

import numpy as np
import pytest

from optimizer.scenario.perp_book import liquidation_maps
from optimizer.scenario.perp_calibration import read_liquidation_flows_csv
from optimizer.scenario.prices import Replay, generate_paths, model_from_config
from optimizer.snapshots import data_dir, load_adapter
from protocols import ISOLATED, PerpBook

WINDOWS = [  # file, bars, first open, low and its bar, high and its bar (shared/data/SOURCES.md; Binance klines)
    ("btc_usdt_perp_1m_2025-10-10_1913-2229.csv", 197, 116_935.6, 101_516.5, "2025-10-10T21:20", 117_145.3,
     "2025-10-10T20:44"),
    ("btc_usdt_perp_1m_2024-08-05_0013-0226.csv", 134, 57_636.8, 52_222.0, "2024-08-05T01:13", 58_242.9,
     "2024-08-05T00:17"),
    ("btc_usdt_perp_1m_2024-08-05_0502-0715.csv", 134, 53_308.0, 48_888.0, "2024-08-05T06:24", 53_843.6,
     "2024-08-05T05:33"),
]


@pytest.mark.parametrize("name,bars,first_open,low,low_at,high,high_at", WINDOWS, ids=[w[0][17:32] for w in WINDOWS])
def test_perp_window_replays_minute_by_minute_with_its_lows_and_highs(name, bars, first_open, low, low_at, high,
                                                                      high_at):
    scenario = str(data_dir() / "scenarios" / "perp.toml")  # named in errors; the CSV resolves to data/
    m = model_from_config("BTC", {"model": "replay", "csv": f"prices/{name}"}, scenario, step_s=60.0)
    assert isinstance(m, Replay) and m.n_steps == bars and m.initial_price_usd == first_open
    h = m.history
    assert h.bar_s == 60 and h.is_contiguous() and h.volume is not None
    paths = generate_paths({"BTC": m}, None, 2, bars, 60.0, np.random.default_rng(0), {"BTC": None})
    np.testing.assert_array_equal(paths.low[:, 1:, 0], np.broadcast_to(h.low, (2, bars)))
    np.testing.assert_array_equal(paths.close[:, 1:, 0], np.broadcast_to(h.close, (2, bars)))
    assert paths.timestamps[0] == h.timestamps[0] and paths.timestamps[-1] == h.timestamps[-1] + np.timedelta64(60, "s")
    i, j = int(np.argmin(h.low)), int(np.argmax(h.high))
    assert (h.low[i], str(h.timestamps[i])[:16]) == (low, low_at)
    assert (h.high[j], str(h.timestamps[j])[:16]) == (high, high_at)


def test_isolated_positions_are_flagged_in_the_first_minute_whose_low_or_high_crosses_their_price():
    """On the 10 Oct 2025 path: for every leverage from 2x to Binance's maximum, an isolated BTCUSDT long (short)
    opened at the first open is flagged by the venue, with the bar low (high) as its mark, first in the bar whose
    low (high) reaches its closed-form liquidation price."""
    m = model_from_config("BTC", {"model": "replay", "csv": f"prices/{WINDOWS[0][0]}"},
                          str(data_dir() / "scenarios" / "perp.toml"), step_s=60.0)
    h, p0 = m.history, m.initial_price_usd
    adapter = load_adapter("binance_usdm")
    lev = np.concatenate([np.arange(2.0, 126.0), np.arange(2.0, 126.0)])
    side = np.repeat([1, -1], 124)
    n = lev.size
    book = PerpBook(("BTCUSDT",), np.zeros(n, int), side, np.full(n, 0.5), np.full(n, p0), 0.5 * p0 / lev,
                    np.full(n, ISOLATED), np.arange(n), np.zeros(n))
    lp = adapter.liquidation_price_usd(book, np.full(n, p0))
    flagged = np.stack([adapter.liquidatable(book, book.adverse_marks(np.array([lo]), np.array([hi])))
                        for lo, hi in zip(h.low, h.high, strict=True)])  # (bars, positions)
    crossed = np.where(side[None, :] > 0, h.low[:, None] <= lp[None, :], h.high[:, None] >= lp[None, :])
    first_flag = np.where(flagged.any(0), flagged.argmax(0), -1)
    first_cross = np.where(crossed.any(0), crossed.argmax(0), -1)
    np.testing.assert_array_equal(first_flag, first_cross)
    assert (first_flag[side > 0] >= 0).sum() >= 100  # longs above ~8x die in the 21:20 crash; shorts mostly live


def test_flows_file_reads_back_with_its_stated_figures():
    f = read_liquidation_flows_csv(data_dir() / "flows" / "eth_usdt_perp_1m_liquidations_2021-01.csv")
    assert len(f) == 43_173
    minutes = f.timestamps.astype("datetime64[m]")
    assert np.unique(minutes).size == len(f)  # one row per minute
    gaps = np.diff(minutes.astype(np.int64))
    assert (gaps > 1).sum() == 3 and gaps.max() == 3  # three holes of at most two minutes in the source
    i = int(np.argmax(f.long_liquidated_base))
    assert f.long_liquidated_base[i] == 15_147.072 and str(f.timestamps[i]) == "2021-01-11T03:37:30"
    assert f.long_liquidated_base.sum() == pytest.approx(1_002_062.324, abs=1e-3)
    assert f.short_liquidated_base.sum() == pytest.approx(352_972.044, abs=1e-3)
    assert (f.ask_usd >= f.bid_usd).all() and 715 < f.mid_usd.min() < f.mid_usd.max() < 1472


def test_calibration_file_is_a_valid_liquidation_map():
    path = data_dir() / "flows" / "eth_usdt_perp_liquidation_map_2021-01.json"
    maps = liquidation_maps(json.loads(path.read_text()), file=str(path))
    assert 0 < maps["short"].slope < maps["long"].slope < 1
    assert maps["long"].levered_share == pytest.approx(maps["long"].slope * (1 - maps["long"].dead_band))
