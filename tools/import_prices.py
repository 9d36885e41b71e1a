"""Rebuild data/prices, data/gas, data/liquidity and data/flows from the shared research CSVs (../shared/data).

Run by hand when the shared files change: `python tools/import_prices.py ../shared`.
Each file is read and validated with the project's own readers (optimizer.scenario.history) and
rewritten in the project's column names, every row of the window kept, values unchanged:
  prices:    timestamp,open_usd,high_usd,low_usd,close_usd,volume_base   (USDT quotes taken as USD)
  gas:       timestamp,avg_gas_gwei
  liquidity: timestamp,reserve_dai,reserve_weth
  flows:     timestamp,bid_usd,ask_usd,long_liquidated_base,short_liquidated_base   (read back with
             optimizer.scenario.perp_calibration.read_liquidation_flows_csv)
Not run by CI; its output is committed. Sources: data/README.md and shared/data/SOURCES.md.
"""

from __future__ import annotations

import csv
import math
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optimizer.scenario.history import read_gas_csv, read_price_csv
from optimizer.scenario.perp_calibration import read_liquidation_flows_csv

PRICES = {
    "ETH-USD_10m_2020-03-12.csv": "eth_usd_10m_2020-03-12.csv",
    "ETH-USD_10m_2021-05-19.csv": "eth_usd_10m_2021-05-19.csv",
    "DAI-USD_10m_2020-03-12.csv": "dai_usd_10m_2020-03-12.csv",
    "ETH-USDT_spot_1h_2020-02-01_2020-04-30.csv": "eth_usdt_1h_2020-02_2020-04.csv",
    "ETH-USDT_spot_1h_2021-04-04_2023-12-30.csv": "eth_usdt_1h_2021-04_2023-12.csv",
    "BTC-USDT_spot_1h_2021-04-04_2023-12-30.csv": "btc_usdt_1h_2021-04_2023-12.csv",
    # Binance USD-M BTCUSDT perpetual, 1-minute last-trade klines (the perp replays of issue 12)
    "BTC-USDT_perp_1m_2025-10-10_1913-2229.csv": "btc_usdt_perp_1m_2025-10-10_1913-2229.csv",
    "BTC-USDT_perp_1m_2024-08-05_0013-0226.csv": "btc_usdt_perp_1m_2024-08-05_0013-0226.csv",
    "BTC-USDT_perp_1m_2024-08-05_0502-0715.csv": "btc_usdt_perp_1m_2024-08-05_0502-0715.csv",
}
GAS = {f"ethereum_gas_gwei_10m_{d}.csv": f"eth_gas_gwei_10m_{d}.csv" for d in ("2020-03-12", "2021-05-19")}
LIQUIDITY = {f"uniswap-v2_DAI-WETH_reserves_10m_{d}.csv": f"univ2_dai_weth_reserves_10m_{d}.csv"
             for d in ("2020-09-05", "2021-05-19")}
FLOWS = {"ETH-USDT_perp_1m_bidask_liquidations_2021-01.csv": "eth_usdt_perp_1m_liquidations_2021-01.csv"}


def _iso(ts: np.ndarray) -> list[str]:
    return [f"{t}Z" for t in ts.astype("datetime64[s]")]


def _num(x: float) -> str:
    return repr(float(x))  # shortest text that reads back as the same float


def _write(path: Path, header: list[str], columns: list[list[str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(header)
        w.writerows(zip(*columns, strict=False))
    print(f"wrote {path.relative_to(ROOT)} ({len(columns[0])} rows)")


def prices(src: Path, dst: Path) -> None:
    h = read_price_csv(src)
    vol = h.volume if h.volume is not None else np.full(len(h), np.nan)
    _write(dst, ["timestamp", "open_usd", "high_usd", "low_usd", "close_usd", "volume_base"],
           [_iso(h.timestamps)] + [[_num(v) for v in col] for col in (h.open, h.high, h.low, h.close, vol)])
    back = read_price_csv(dst)  # the copy must read back identical
    for name in ("timestamps", "open", "high", "low", "close"):
        assert np.array_equal(getattr(h, name), getattr(back, name)), (dst, name)


def gas(src: Path, dst: Path) -> None:
    g = read_gas_csv(src)
    _write(dst, ["timestamp", "avg_gas_gwei"], [_iso(g.timestamps), [_num(v) for v in g.gas_gwei]])
    assert np.array_equal(read_gas_csv(dst).gas_gwei, g.gas_gwei), dst


def liquidity(src: Path, dst: Path) -> None:
    with open(src, newline="") as fh:
        rows = list(csv.DictReader(fh))
    ts = np.array([r["timestamp"].rstrip("Z") for r in rows], dtype="datetime64[s]")
    dai = [float(r["reserve_dai"]) for r in rows]
    weth = [float(r["reserve_weth"]) for r in rows]
    assert np.all(np.diff(ts.astype(np.int64)) > 0), f"{src}: timestamps not increasing"
    assert all(math.isfinite(v) and v > 0 for v in dai + weth), f"{src}: reserves must be > 0"
    _write(dst, ["timestamp", "reserve_dai", "reserve_weth"], [_iso(ts), [_num(v) for v in dai],
                                                               [_num(v) for v in weth]])


def flows(src: Path, dst: Path) -> None:
    """Forced liquidations per minute: the shared columns bid, ask, long/short_liquidated_eth renamed with
    their units; every row and value kept (timestamps are the source's mean quote time of each minute)."""
    with open(src, newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = {"bid": "bid_usd", "ask": "ask_usd", "long_liquidated_eth": "long_liquidated_base",
            "short_liquidated_eth": "short_liquidated_base"}
    ts = np.array([r["timestamp"].rstrip("Z") for r in rows], dtype="datetime64[s]")
    values = {new: [float(r[old]) for r in rows] for old, new in cols.items()}
    _write(dst, ["timestamp", *cols.values()], [_iso(ts)] + [[_num(v) for v in values[c]] for c in cols.values()])
    back = read_liquidation_flows_csv(dst)  # validated by the project's reader, and identical
    assert np.array_equal(back.timestamps, ts), dst
    for new in cols.values():
        assert np.array_equal(getattr(back, new), np.array(values[new])), (dst, new)


def main(shared: Path, out: Path) -> None:
    d = shared / "data"
    for table, conv, sub, dst_sub in ((PRICES, prices, "prices", "prices"), (GAS, gas, "gas", "gas"),
                                      (LIQUIDITY, liquidity, "liquidity", "liquidity"), (FLOWS, flows, "flows", "flows")):
        for src, dst in table.items():
            conv(d / sub / src, out / dst_sub / dst)


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "../shared"), ROOT / "data")
