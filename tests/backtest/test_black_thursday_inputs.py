"""The inputs of the bundled Black Thursday backtest: the 48-hour window (12 March as the source bars,
13 March from Binance hours with the DAI and gas assumptions data/README.md states), the ETH-A book
against the public totals of that day, and the rule set in force on both days."""

from __future__ import annotations

import json

import numpy as np
import pytest

from optimizer.engine import bind, prepare
from optimizer.scenario.config import load_scenario
from optimizer.scenario.history import read_gas_csv, read_price_csv
from optimizer.snapshots import data_dir

D = data_dir()
DAY2 = np.datetime64("2020-03-13T00:00:00")


def test_the_window_covers_12_and_13_march_from_the_cited_sources():
    eth = read_price_csv(D / "prices" / "eth_usd_10m_2020-03-12_13.csv")
    eth12 = read_price_csv(D / "prices" / "eth_usd_10m_2020-03-12.csv")
    hourly = read_price_csv(D / "prices" / "eth_usdt_1h_2020-02_2020-04.csv")
    assert len(eth) == 288 and eth.timestamps[0] == np.datetime64("2020-03-12T00:00:00")
    assert np.all(np.diff(eth.timestamps.astype(np.int64)) == 600)
    # 12 March: the CoinAPI 10-minute bars, unchanged
    for col in ("open", "high", "low", "close"):
        np.testing.assert_array_equal(getattr(eth, col)[:144], getattr(eth12, col))
    # 13 March: each Binance hour in six bars, the hour's open/close at its ends and its extremes on every bar
    sel = (hourly.timestamps >= DAY2) & (hourly.timestamps < DAY2 + np.timedelta64(1, "D"))
    np.testing.assert_array_equal(eth.close[144:][5::6], hourly.close[sel])
    np.testing.assert_array_equal(eth.open[144:][0::6], hourly.open[sel])
    np.testing.assert_array_equal(eth.low[144:].reshape(24, 6).min(1), hourly.low[sel])
    np.testing.assert_array_equal(eth.high[144:].reshape(24, 6).max(1), hourly.high[sel])
    assert eth.low.min() == 86.0  # Binance's low of 2020-03-13 02:00 (SOURCES.md)
    dai = read_price_csv(D / "prices" / "dai_usd_10m_2020-03-12_13.csv")
    dai12 = read_price_csv(D / "prices" / "dai_usd_10m_2020-03-12.csv")
    np.testing.assert_array_equal(dai.close[:144], dai12.close)
    assert np.all(dai.close[144:] == dai12.close[-1])  # assumed: the last observed value held
    gas = read_gas_csv(D / "gas" / "eth_gas_gwei_10m_2020-03-12_13.csv")
    gas12 = read_gas_csv(D / "gas" / "eth_gas_gwei_10m_2020-03-12.csv")
    np.testing.assert_array_equal(gas.gas_gwei[:144], gas12.gas_gwei)
    assert np.all(gas.gas_gwei[144:] == round(float(np.median(gas12.gas_gwei[108:])), 3))


@pytest.fixture(scope="module")
def bound():
    return bind(prepare(load_scenario(D / "scenarios" / "maker_eth_a_black_thursday_liq12.toml")))


def test_the_eth_a_book_matches_the_public_totals_and_starts_safe(bound):
    """~2.4M ETH (CoinDesk, 12 Mar 2020) and ~110M DAI (data/README.md: DAI supply of Feb 2020 less the other
    ilks; range 95-125M); collateral ratios lognormal, none below mat at the start."""
    book = bound.books[0].book
    eth0 = float(read_price_csv(D / "prices" / "eth_usd_10m_2020-03-12_13.csv").open[0])
    eth_tokens = float(book.collateral_tokens.sum())
    debt_dai = float(book.debt_tokens.sum())
    assert 2.1e6 < eth_tokens < 2.7e6
    assert 95e6 < debt_dai < 125e6
    cr = book.collateral_tokens[:, 0] * eth0 / book.debt_tokens[:, 0]
    assert cr.min() >= 1.5 * (1 - 1e-12)
    assert 3.6 < eth_tokens * eth0 / debt_dai < 5.0
    # there are vaults between 150 % and 170 % (the first pass floored the book at ~175 %)
    assert (cr < 1.7).sum() >= 10


def test_the_rule_set_is_the_one_in_force_on_both_days(bound):
    snap = json.loads((D / "protocols" / "maker_liq12_eth_a_2020-03-12.json").read_text())
    assert snap["cat_version"] == snap["flipper_version"] == "1.0"
    assert snap["valid_from"] <= "2020-03-12" and snap["valid_to"] >= "2020-03-13"
    ad = bound.adapters[0]
    assert ad.cat_version == "1.0"
    assert ad.params["ETH-A.lump_tokens"] == 50 and ad.params["ETH-A.ttl_s"] == 600
    assert ad.params["ETH-A.tau_s"] == pytest.approx(3 * 86400)
