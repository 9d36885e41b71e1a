"""Build the 48-hour Black Thursday window (2020-03-12 00:00 - 2020-03-13 23:50 UTC, 10-minute bars).

Run by hand: `python tools/build_black_thursday_window.py` (reads the project's own data/ files; not run
by CI; its output is committed). Writes, in the project's formats (data/README.md):

- prices/eth_usd_10m_2020-03-12_13.csv: 12 March = the 144 CoinAPI 10-minute bars of
  prices/eth_usd_10m_2020-03-12.csv, unchanged; 13 March = the 24 Binance ETH/USDT 1-hour bars of
  prices/eth_usdt_1h_2020-02_2020-04.csv (USDT taken as USD), each cut into six 10-minute bars whose
  open/close are interpolated linearly from the hour's open to its close and whose high/low are the
  hour's (so no hourly extreme is lost; the path inside the hour is not known); volume = hour / 6;
- prices/dai_usd_10m_2020-03-12_13.csv: 12 March = the 144 CoinAPI DAI/USD bars unchanged; 13 March =
  ASSUMED (no DAI/USD series of that day in the shared data): every bar at the last observed close of
  the 12th (23:50 bar), volume = the 12th's mean volume per bar;
- gas/eth_gas_gwei_10m_2020-03-12_13.csv: 12 March unchanged; 13 March = ASSUMED (no gas series of that
  day): the median of the 12th's last six hours (18:00-23:50) for every bar.

Each output is read back through the project's readers and the 12 March part checked identical to its
source.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optimizer.scenario.history import read_gas_csv, read_price_csv
from tools.import_prices import _iso, _num, _write

DATA = ROOT / "data"
DAY2 = np.datetime64("2020-03-13T00:00:00")
STEP = np.timedelta64(600, "s")
SUB = 6  # 10-minute bars per hour


def _day2_times() -> np.ndarray:
    return DAY2 + STEP * np.arange(24 * SUB)


def _price_file(dst: Path, ts, o, h, lo, c, v) -> None:
    _write(dst, ["timestamp", "open_usd", "high_usd", "low_usd", "close_usd", "volume_base"],
           [_iso(ts)] + [[_num(x) for x in col] for col in (o, h, lo, c, v)])


def eth() -> None:
    d1 = read_price_csv(DATA / "prices/eth_usd_10m_2020-03-12.csv")
    hr = read_price_csv(DATA / "prices/eth_usdt_1h_2020-02_2020-04.csv")
    sel = (hr.timestamps >= DAY2) & (hr.timestamps < DAY2 + np.timedelta64(1, "D"))
    assert sel.sum() == 24, "13 March needs 24 hourly bars"
    o_h, h_h, l_h, c_h = hr.open[sel], hr.high[sel], hr.low[sel], hr.close[sel]
    v_h = hr.volume[sel] if hr.volume is not None else np.full(24, np.nan)
    k = np.arange(SUB)
    o2 = np.round((o_h[:, None] + (c_h - o_h)[:, None] * k / SUB).ravel(), 6)
    c2 = np.round((o_h[:, None] + (c_h - o_h)[:, None] * (k + 1) / SUB).ravel(), 6)
    c2[SUB - 1::SUB] = c_h  # the hour's close exactly
    h2 = np.repeat(h_h, SUB)
    l2 = np.repeat(l_h, SUB)
    v2 = np.repeat(np.round(v_h / SUB, 8), SUB)
    vol1 = d1.volume if d1.volume is not None else np.full(len(d1), np.nan)
    dst = DATA / "prices/eth_usd_10m_2020-03-12_13.csv"
    _price_file(dst, np.concatenate([d1.timestamps, _day2_times()]), np.concatenate([d1.open, o2]),
                np.concatenate([d1.high, h2]), np.concatenate([d1.low, l2]), np.concatenate([d1.close, c2]),
                np.concatenate([vol1, v2]))
    back = read_price_csv(dst)
    assert np.array_equal(back.close[:len(d1)], d1.close) and len(back) == 288, dst


def dai() -> None:
    d1 = read_price_csv(DATA / "prices/dai_usd_10m_2020-03-12.csv")
    last = float(d1.close[-1])
    n = 24 * SUB
    flat = np.full(n, last)
    vol = np.full(n, round(float(np.mean(d1.volume)), 5))
    dst = DATA / "prices/dai_usd_10m_2020-03-12_13.csv"
    _price_file(dst, np.concatenate([d1.timestamps, _day2_times()]), np.concatenate([d1.open, flat]),
                np.concatenate([d1.high, flat]), np.concatenate([d1.low, flat]), np.concatenate([d1.close, flat]),
                np.concatenate([d1.volume, vol]))
    back = read_price_csv(dst)
    assert np.array_equal(back.close[:len(d1)], d1.close) and len(back) == 288, dst


def gas() -> None:
    g = read_gas_csv(DATA / "gas/eth_gas_gwei_10m_2020-03-12.csv")
    tail = g.gas_gwei[g.timestamps >= np.datetime64("2020-03-12T18:00:00")]
    assert tail.size == 36
    held = round(float(np.median(tail)), 3)
    dst = DATA / "gas/eth_gas_gwei_10m_2020-03-12_13.csv"
    ts = np.concatenate([g.timestamps, _day2_times()])
    vals = np.concatenate([g.gas_gwei, np.full(24 * SUB, held)])
    _write(dst, ["timestamp", "avg_gas_gwei"], [_iso(ts), [_num(v) for v in vals]])
    assert np.array_equal(read_gas_csv(dst).gas_gwei[:len(g)], g.gas_gwei), dst
    print(f"13 March gas held at {held:g} gwei")


if __name__ == "__main__":
    eth()
    dai()
    gas()
