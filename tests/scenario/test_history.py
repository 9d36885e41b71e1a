"""Price/gas CSV readers: bundled data reads back, every bad input names file, line and column."""

import numpy as np
import pytest

from optimizer import InputError, data_dir
from optimizer.scenario.history import (
    align_returns,
    log_return_series,
    log_returns,
    read_gas_csv,
    read_price_csv,
)

HEADER = "timestamp,open,high,low,close,volume\n"
GOOD = [
    "2020-03-12T00:00:00Z,100,110,95,105,1.5",
    "2020-03-12T01:00:00Z,105,106,90,92,2",
    "2020-03-12T02:00:00Z,92,100,91,99,0",
]


def write(tmp_path, rows, header=HEADER, name="p.csv"):
    p = tmp_path / name
    p.write_text(header + "\n".join(rows) + "\n")
    return p


def bad(tmp_path, rows, header=HEADER):
    """The InputError for a CSV; asserts it names the file."""
    p = write(tmp_path, rows, header)
    with pytest.raises(InputError) as ei:
        read_price_csv(p)
    assert ei.value.file == str(p) and str(p) in str(ei.value)
    return ei.value


def test_reads_shared_and_project_column_names(tmp_path):
    h = read_price_csv(write(tmp_path, GOOD))
    assert len(h) == 3 and h.bar_s == 3600
    assert h.timestamps[1] == np.datetime64("2020-03-12T01:00:00")
    np.testing.assert_array_equal(h.close, [105, 92, 99])
    np.testing.assert_array_equal(h.volume, [1.5, 2, 0])
    proj = read_price_csv(write(tmp_path, GOOD, "timestamp,open_usd,high_usd,low_usd,close_usd,volume_base\n",
                                "q.csv"))
    np.testing.assert_array_equal(proj.low, h.low)
    # volume optional, +00:00 and naive timestamps are UTC too
    rows = [r.rsplit(",", 1)[0].replace("Z", "+00:00") for r in GOOD]
    nov = read_price_csv(write(tmp_path, rows, "timestamp,open,high,low,close\n", "r.csv"))
    assert nov.volume is None and np.array_equal(nov.timestamps, h.timestamps)
    with pytest.raises(ValueError):
        h.close[0] = 1.0  # read-only


def test_bundled_windows_read_back():
    d = data_dir()
    h = read_price_csv(d / "prices" / "eth_usd_10m_2020-03-12.csv")
    assert len(h) == 144 and h.bar_s == 600 and h.is_contiguous()
    assert h.open[0] == 195.21 and h.close[-1] == 107.52 and h.low.min() == 101.01  # CoinAPI 10-minute low of the day
    eth = read_price_csv(d / "prices" / "eth_usdt_1h_2020-02_2020-04.csv")
    assert eth.low.min() == 86.0  # Black Thursday low on Binance (SOURCES.md)
    g = read_gas_csv(d / "gas" / "eth_gas_gwei_10m_2020-03-12.csv")
    assert len(g) == 144 and g.bar_s == 600 and g.gas_gwei[0] == 9.9


@pytest.mark.parametrize("rows, header, where, rule", [
    (GOOD[:1] + ["2020-03-12T01:00:00Z,105,abc,90,92,2"], HEADER, "line 3, column high", "not a number: 'abc'"),
    (GOOD[:2] + ["2020-03-12T02:00:00Z,92,100,91,nan,0"], HEADER, "line 4, column close", "not a finite"),
    (GOOD[:2] + ["2020-03-12T02:00:00Z,92,100,91,inf,0"], HEADER, "line 4, column close", "not a finite"),
    (["2020-03-12T00:00:00Z,-1,110,-5,105,1"] + GOOD[1:], HEADER, "line 2, column open", "must be > 0"),
    (GOOD[:1] + ["2020-03-12T01:00:00Z,105,106,90,92,-2"], HEADER, "line 3, column volume", "must be >= 0"),
    (GOOD[:1] + ["2020-03-12T01:00:00Z,105,89,90,92,2"], HEADER, "line 3, column high", "high 89 < low 90"),
    (GOOD[:1] + ["2020-03-12T01:00:00Z,107,106,90,92,2"], HEADER, "line 3, column open", "outside [low 90, high 106]"),
    (GOOD[:1] + ["2020-03-12T01:00:00Z,105,106,90,80,2"], HEADER, "line 3, column close", "outside"),
    ([GOOD[1], GOOD[0], GOOD[2]], HEADER, "line 3, column timestamp", "not sorted"),
    (GOOD[:2] + [GOOD[1]], HEADER, "line 4, column timestamp", "duplicate timestamp 2020-03-12T01:00:00Z"),
    (GOOD[:1] + ["12/03/2020 01:00,105,106,90,92,2"], HEADER, "line 3, column timestamp", "not an ISO-8601"),
    (GOOD[:1] + ["2020-03-12T01:00:00+02:00,105,106,90,92,2"], HEADER, "line 3, column timestamp", "not UTC"),
    (GOOD[:1] + ["2020-03-12T01:00:00Z,105,106,90"], HEADER, "line 3", "expected 6 fields, got 4"),
    (GOOD, "timestamp,open,high,low,volume\n", "line 1", "missing column(s) close/close_usd"),
])
def test_bad_rows_name_file_line_and_column(tmp_path, rows, header, where, rule):
    err = bad(tmp_path, rows, header)
    assert err.field == where, str(err)
    assert rule in err.rule, str(err)


def test_too_few_rows_and_missing_file(tmp_path):
    assert "at least 2 data rows (got 1)" in str(bad(tmp_path, GOOD[:1]))
    assert "empty file" in str(bad(tmp_path, [], header=""))
    with pytest.raises(InputError, match="file not found"):
        read_price_csv(tmp_path / "nope.csv")


def test_gas_csv_validation(tmp_path):
    p = write(tmp_path, ["2021-05-19T00:00:00Z,77.7", "2021-05-19T00:10:00Z,oops"], "timestamp,avg_gas_gwei\n")
    with pytest.raises(InputError) as ei:
        read_gas_csv(p)
    assert ei.value.file == str(p) and ei.value.field == "line 3, column avg_gas_gwei"
    p = write(tmp_path, ["2021-05-19T00:00:00Z,77.7", "2021-05-19T00:00:00Z,70"], "timestamp,avg_gas_gwei\n")
    with pytest.raises(InputError, match="line 3, column timestamp: duplicate"):
        read_gas_csv(p)
    p = write(tmp_path, ["2021-05-19T00:00:00Z,77.7"], "timestamp,gwei\n")
    with pytest.raises(InputError, match="missing column.*avg_gas_gwei"):
        read_gas_csv(p)


def test_log_returns_resample_finer_csv_on_the_hour():
    h = read_price_csv(data_dir() / "prices" / "eth_usd_10m_2020-03-12.csv")
    np.testing.assert_allclose(log_returns(h, 600), np.diff(np.log(h.close)), rtol=0, atol=0)
    t, r = log_return_series(h, 3600)
    # the 10-minute bar opening at :50 closes on the hour: hourly closes are every 6th bar from index 5
    hourly = h.close[5::6]
    np.testing.assert_array_equal(r, np.diff(np.log(hourly)))
    assert t[0] == np.datetime64("2020-03-12T02:00:00") and r.size == 23


def test_log_returns_skip_gaps_and_reject_coarser_or_misaligned_steps():
    h = read_price_csv(data_dir() / "prices" / "eth_usdt_1h_2021-04_2023-12.csv")
    t, r = log_return_series(h, 3600)
    n_gaps = int(np.sum(np.diff(h.timestamps.astype(np.int64)) != 3600))
    assert n_gaps == 5 and r.size == len(h) - 1 - n_gaps  # no return stretched across a gap
    assert np.all(np.diff(t.astype(np.int64)) >= 3600)
    with pytest.raises(InputError, match="coarser than the 300 s step") as ei:
        log_returns(h, 300)
    assert ei.value.file == h.source
    h10 = read_price_csv(data_dir() / "prices" / "eth_usd_10m_2020-03-12.csv")
    with pytest.raises(InputError, match="not a whole multiple"):
        log_returns(h10, 900)


def test_align_returns_keeps_common_dates():
    d = data_dir() / "prices"
    eth = log_return_series(read_price_csv(d / "eth_usdt_1h_2021-04_2023-12.csv"), 3600)
    btc = log_return_series(read_price_csv(d / "btc_usdt_1h_2021-04_2023-12.csv"), 3600)
    t, r = align_returns({"ETH": eth, "BTC": btc})
    assert r.shape == (t.size, 2) and t.size <= min(eth[0].size, btc[0].size)
    i = np.searchsorted(eth[0], t[100])
    assert r[100, 0] == eth[1][i]
    assert 0.7 < np.corrcoef(r.T)[0, 1] < 0.95
