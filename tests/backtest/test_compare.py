"""The backtest comparison on a tiny hand-made events file whose answer is worked out by hand, and the
events reader's one-line errors."""

import json

import numpy as np
import pytest
from matplotlib.image import imread

from optimizer.backtest import Events, compare, read_events, relative_error
from optimizer.errors import InputError

HERE = __import__("pathlib").Path(__file__).parent / "data"
HOUR = 3600
T10 = int(np.datetime64("2020-03-12T10:00:00", "s").astype(np.int64))


@pytest.fixture(scope="module")
def result():
    return compare(read_events(HERE / "simulated_tiny.csv"), read_events(HERE / "actual_tiny.csv"),
                   protocol="maker_liq12")


def test_reader_sorts_and_fills_defaults():
    ev = read_events(HERE / "simulated_tiny.csv")
    assert ev.account.tolist() == ["urn-1", "urn-2", "urn-3"]  # sorted by time; +00:00, Z and no zone are UTC
    assert ev.timestamp_s.tolist() == [T10 + 900, T10 + 4800, T10 + 6600]
    act = read_events(HERE / "actual_tiny.csv")
    assert act.n == 4 and act.debt_price_usd.tolist() == [1.0] * 4 and act.bad_debt_usd[act.protocol == "aave_v2"] == 0


def test_per_hour_bins_match_the_hand_computation(result):
    """Hours 10, 11, 12. Actual: 10 ETH x 120 + 20 x 100 = 3,200 at 10h, 50 x 90 = 4,500 at 12h; simulated:
    12 x 110 = 1,320 at 10h, 20 x 95 + 30 x 95 = 4,750 at 11h."""
    assert result.bin_start_s.tolist() == [T10, T10 + HOUR, T10 + 2 * HOUR]
    assert result.actual["count"].tolist() == [2, 0, 1] and result.simulated["count"].tolist() == [1, 2, 0]
    assert result.actual["collateral_seized_usd"].tolist() == [3_200, 0, 4_500]
    assert result.simulated["collateral_seized_usd"].tolist() == [1_320, 4_750, 0]
    assert result.actual["debt_repaid_usd"].tolist() == [2_500, 0, 0]
    assert result.simulated["debt_repaid_usd"].tolist() == [1_100, 3_600, 0]
    assert result.actual["bad_debt_usd"].tolist() == [500, 0, 4_000]
    assert result.simulated["bad_debt_usd"].tolist() == [0, 1_000, 0]
    assert result.rows()[1] == {"bin_start": "2020-03-12T11:00:00Z", "count_simulated": 2.0, "count_actual": 0.0,
                                "collateral_seized_usd_simulated": 4750.0, "collateral_seized_usd_actual": 0.0,
                                "debt_repaid_usd_simulated": 3600.0, "debt_repaid_usd_actual": 0.0,
                                "bad_debt_usd_simulated": 1000.0, "bad_debt_usd_actual": 0.0}


def test_totals_and_relative_errors(result):
    t = result.totals()
    assert (t["count"]["simulated"], t["count"]["actual"], t["count"]["relative_error"]) == (3, 3, 0.0)
    assert t["collateral_seized_usd"]["relative_error"] == pytest.approx((6_070 - 7_700) / 7_700, rel=1e-15)
    assert t["debt_repaid_usd"]["relative_error"] == pytest.approx(0.88, rel=1e-15)
    assert t["bad_debt_usd"]["relative_error"] == pytest.approx(-3_500 / 4_500, rel=1e-15)


def test_timing_of_the_first_and_largest_waves(result):
    """First event: 10:15 simulated vs 10:05 actual (+600 s); largest wave: the 11h bin simulated vs the
    12h bin actual (-3,600 s); the window is 3 h."""
    tm = result.timing()
    assert tm["first_wave"] == {"simulated": "2020-03-12T10:15:00Z", "actual": "2020-03-12T10:05:00Z",
                                "shift_s": 600, "relative_error": 600 / 10_800}
    assert tm["largest_wave"]["simulated"] == "2020-03-12T11:00:00Z"
    assert tm["largest_wave"]["actual"] == "2020-03-12T12:00:00Z"
    assert tm["largest_wave"]["shift_s"] == -3_600
    summary = json.loads(json.dumps(result.summary()))
    assert summary["start"] == "2020-03-12T10:00:00Z" and summary["end"] == "2020-03-12T13:00:00Z"


def test_protocol_filter_and_no_filter():
    every = compare(read_events(HERE / "simulated_tiny.csv"), read_events(HERE / "actual_tiny.csv"))
    assert every.totals()["count"]["actual"] == 4 and every.actual["count"].tolist() == [2, 1, 1]
    assert every.totals()["collateral_seized_usd"]["actual"] == 7_700 + 500


def test_relative_error_edges():
    assert relative_error(0, 0) == 0 and relative_error(5, 0) == float("inf") and relative_error(2, -4) == 1.5
    empty = Events.from_columns(timestamp_s=np.zeros(0, np.int64), protocol=[], account=[], collateral_asset=[],
                                collateral_seized_tokens=[], debt_asset=[], debt_repaid_tokens=[], collateral_price_usd=[])
    res = compare(empty, read_events(HERE / "actual_tiny.csv"), protocol="maker_liq12")
    assert res.totals()["bad_debt_usd"]["relative_error"] == -1.0
    assert res.timing()["first_wave"]["shift_s"] is None
    assert res.summary()["totals"]["count"]["relative_error"] == -1.0
    res = compare(read_events(HERE / "actual_tiny.csv"), empty, protocol="maker_liq12")
    assert res.summary()["totals"]["count"]["relative_error"] is None  # inf: nothing actually happened


def test_figure_is_written(result, tmp_path):
    out = result.plot(tmp_path / "fig" / "backtest.png")
    img = imread(out)
    assert img.shape[:2] == (750, 900) and img.std() > 0.01
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # atomic: no temp file left


@pytest.mark.parametrize("content, fragment", [
    ("", "is empty: expected a header row"),
    ("timestamp,protocol\n", "missing column(s) account, collateral_asset"),
    ("{h}\n2020-03-12T10:00:00Z,m,a,ETH,abc,DAI,1,100\n", "line 2: collateral_seized_tokens: not a number ('abc')"),
    ("{h}\n2020-03-12T10:00:00Z,m,a,ETH,1,DAI,1,-3\n", "line 2: collateral_price_usd: must be > 0, got -3"),
    ("{h}\n2020-03-12T10:00:00Z,m,a,ETH,1,DAI,-1,100\n", "line 2: debt_repaid_tokens: must be >= 0, got -1"),
    ("{h}\n2020-03-12T10:00:00+02:00,m,a,ETH,1,DAI,1,100\n", "line 2: timestamp: '2020-03-12T10:00:00+02:00' has a UTC"),
    ("{h}\nyesterday,m,a,ETH,1,DAI,1,100\n", "line 2: timestamp: 'yesterday' is not an ISO 8601 time"),
    ("{h}\n2020-03-12T10:00:00Z,m,,ETH,1,DAI,1,100\n", "line 2: account: is empty"),
    ("{h}\n2020-03-12T10:00:00Z,m,a,ETH\n", "line 2: has 4 fields, the header has 8"),
    ("{h}\n2020-03-12T10:00:00Z,m,a,ETH,nan,DAI,1,100\n", "line 2: collateral_seized_tokens: must be finite"),
])
def test_bad_events_files_are_one_line_errors(tmp_path, content, fragment):
    from optimizer.backtest.events import REQUIRED

    f = tmp_path / "EVENTS.csv"
    f.write_text(content.replace("{h}", ",".join(REQUIRED)))
    with pytest.raises(InputError) as err:
        read_events(f)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(str(f)) and fragment in msg, msg


def test_a_directory_or_binary_file_is_refused(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        read_events(tmp_path)
    (tmp_path / "b.csv").write_bytes(b"\x00\x01\x02")
    with pytest.raises(InputError, match="binary"):
        read_events(tmp_path / "b.csv")
