"""Perp books at load time: a calibration file is read by ``load_scenario`` (``prepare`` does no I/O), and a
synthetic book whose distributions can open a position already liquidatable at the start is refused with a
one-line error naming the field and the rule."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from optimizer.engine import prepare
from optimizer.errors import InputError
from optimizer.scenario.config import load_scenario, parse_scenario
from optimizer.snapshots import data_dir

HEADER = """
[scenario]
name = "perp-load-rules"
description = "t"
horizon_h = 0.5
step_min = 1
paths = 2
seed = 3

[assets.BTC]
price_usd = 60000
model = "gbm"
sigma_annual = 0.6

[[protocols]]
adapter = "{adapter}"
[protocols.book]
kind = "perp_synthetic"
positions = 300
open_interest_usd = {{ {market} = 2.0e8 }}
long_share = 0.6
size_usd = {{ dist = "lognormal", median = 20000, sigma = 1.0, max = 1.0e6 }}
"""


def _write(tmp_path, body: str, adapter: str = "binance_usdm", market: str = "BTCUSDT"):
    p = tmp_path / "s.toml"
    p.write_text(HEADER.format(adapter=adapter, market=market) + body)
    return p


def test_calibration_is_read_at_load_and_prepare_reads_no_file(tmp_path, monkeypatch):
    cal = data_dir() / "flows" / "eth_usdt_perp_liquidation_map_2021-01.json"
    p = _write(tmp_path, f'calibration = "{cal}"\n')
    sc = load_scenario(p)
    maps = sc.protocols[0].perp_calibration
    assert set(maps) == {"long", "short"} and maps["long"].slope > 0
    import optimizer.io
    import optimizer.snapshots

    def no_io(*a, **k):
        raise AssertionError("prepare read a file")

    monkeypatch.setattr(optimizer.snapshots, "read_json", no_io)
    monkeypatch.setattr(optimizer.io, "read_text", no_io)
    prep = prepare(sc)
    d = prep.draws["binance_usdm"]
    assert d.mode == "calibration" and np.isfinite(d.level).any()


@pytest.mark.parametrize("lev, offset, ok", [
    # Binance BTCUSDT bracket 1: 125x, MMR 0.4 %: at 100x (1 % margin) an entry 1 % above the start leaves
    # equity 0 < maintenance; at 50x (2 %) it leaves ~1 %, above 0.4 %
    ("leverage = { dist = \"lognormal\", median = 10, sigma = 0.7, min = 1, max = 100 }", 0.01, False),
    ("leverage = { dist = \"lognormal\", median = 10, sigma = 0.7, min = 1, max = 50 }", 0.01, True),
    ("leverage_fraction = { dist = \"beta\", a = 2.0, b = 5.0 }", 0.005, False),  # up to 125x: 0.8 % margin - 0.5 % < 0.4 %
    ("leverage_fraction = { dist = \"beta\", a = 2.0, b = 5.0, max = 0.5 }", 0.005, True),  # 62.5x: 1.6 % - 0.5 %
])
def test_books_that_open_liquidatable_are_refused_at_load(tmp_path, lev, offset, ok):
    p = _write(tmp_path, f"{lev}\nentry_offset = {{ dist = \"uniform\", low = -{offset}, high = {offset} }}\n")
    if ok:
        load_scenario(p)
        return
    with pytest.raises(InputError) as e:
        load_scenario(p)
    msg = str(e.value)
    assert "\n" not in msg and "protocols[0].book.entry_offset" in msg and str(p) in msg
    assert "liquidatable on binance_usdm at once" in msg and "above maintenance" in msg


def test_the_bundled_perp_scenarios_pass_the_start_check():
    for f in sorted((data_dir() / "scenarios").glob("perp_*.toml")):
        data = tomllib.loads(f.read_text())
        parse_scenario(data, file=str(f), base_dir=f.parent)
        load_scenario(f)
