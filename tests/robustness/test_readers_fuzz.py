"""Arbitrary bytes into every reader: an InputError or a valid object out, never anything else.

Raw bytes exercise the checked reader and the parsers' first lines; structured inputs (CSV rows
of tricky cells, TOML documents built from a bundled scenario with random values swapped in)
reach the validators behind them.
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import mutations as m
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer.errors import InputError
from optimizer.scenario.book import ProtocolBook, read_csv_book
from optimizer.scenario.config import Scenario, parse_scenario
from optimizer.scenario.history import GasHistory, PriceHistory, read_gas_csv, read_price_csv
from optimizer.snapshots import load_adapter

FUZZ = settings(max_examples=2000 if m.FULL else 120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                         HealthCheck.too_slow])
CELLS = st.one_of(st.sampled_from(["", "x", "nan", "inf", "-inf", "-1", "0", "1e308", "1e-320", "2020-03-12T00:00:00Z",
                                   "2020-03-12T00:10:00+02:00", "WETH", "USDC", "aave_v3", '"', "\u00e9", "1,2"]),
                  st.floats(allow_nan=True, allow_infinity=True).map(repr), st.text(max_size=8))


def _accepts_or_refuses(fn, path, kind):
    try:
        out = fn(path)
    except InputError as e:
        assert "\n" not in str(e) and str(e)
        return None
    assert isinstance(out, kind)
    return out


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


@FUZZ
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_as_a_scenario(tmp_path, data):
    from optimizer.scenario.config import load_scenario

    _accepts_or_refuses(load_scenario, _write(tmp_path, "s.toml", data), Scenario)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_as_a_snapshot(tmp_path, data):
    _accepts_or_refuses(lambda p: load_adapter("compound_v3", p), _write(tmp_path, "s.json", data), object)


@FUZZ
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_as_price_and_gas_csvs(tmp_path, data):
    p = _write(tmp_path, "p.csv", data)
    _accepts_or_refuses(read_price_csv, p, PriceHistory)
    _accepts_or_refuses(read_gas_csv, p, GasHistory)


def _book(p: Path):
    adapter = load_adapter("aave_v3")
    return read_csv_book(p, "aave_v3", adapter, {"WETH", "USDC", "WBTC"})


@FUZZ
@given(data=st.binary(max_size=2048))
def test_arbitrary_bytes_as_a_csv_book(tmp_path, data):
    _accepts_or_refuses(_book, _write(tmp_path, "b.csv", data), ProtocolBook)


@FUZZ
@given(rows=st.lists(st.lists(CELLS, min_size=5, max_size=7), min_size=0, max_size=8))
def test_tricky_rows_in_a_csv_book(tmp_path, rows):
    text = "account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount\n"
    text += "\n".join(",".join(r) for r in rows) + "\n"
    book = _accepts_or_refuses(_book, _write(tmp_path, "b.csv", text.encode()), ProtocolBook)
    if book is not None:
        for a in (book.book.collateral_tokens, book.book.debt_tokens):
            assert np.isfinite(a).all() and (a >= 0).all()


@FUZZ
@given(rows=st.lists(st.lists(CELLS, min_size=5, max_size=6), min_size=0, max_size=8))
def test_tricky_rows_in_a_price_csv(tmp_path, rows):
    text = "timestamp,open,high,low,close,volume\n" + "\n".join(",".join(r) for r in rows) + "\n"
    h = _accepts_or_refuses(read_price_csv, _write(tmp_path, "p.csv", text.encode()), PriceHistory)
    if h is not None:
        assert np.isfinite(h.close).all() and (h.low > 0).all() and (h.high >= h.low).all()


_BASE = m.shrink_scenario(tomllib.loads((m.DATA / "scenarios" / "aave_v3_core_24h_jumps.toml").read_text()))
_LEAVES = [p for p, _ in m.leaves(_BASE)]
VALUES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**63, max_value=2**63 - 1),
                   st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=6),
                   st.lists(st.integers(-3, 3), max_size=3), st.dictionaries(st.sampled_from(["dist", "min", "x"]),
                                                                             st.integers(-2, 2), max_size=2))


@settings(FUZZ, max_examples=1000 if m.FULL else 60)
@given(changes=st.lists(st.tuples(st.sampled_from(_LEAVES), VALUES), min_size=1, max_size=3))
def test_random_values_in_a_bundled_scenario(tmp_path, changes):
    """Load and prepare (price models, paths, liquidity, books): an InputError, or finite arrays throughout."""
    from optimizer.engine import bind, prepare

    data = _BASE
    for path, v in changes:
        try:
            data = m._set(data, path, m.MISSING if v is None else v)
        except (KeyError, TypeError, IndexError):  # an earlier change removed or replaced its parent
            continue
    try:
        sc = parse_scenario(data, file="s.toml", base_dir=tmp_path)
    except InputError as e:
        assert str(e).startswith("s.toml") and "\n" not in str(e)
        return
    assert isinstance(sc, Scenario)
    assert sc.paths >= 1 and sc.step_s > 0 and (sc.horizon_h is None or math.isfinite(sc.horizon_h))
    for a in sc.assets.values():
        assert a.price_usd is None or 1e-12 <= a.price_usd <= 1e12
    try:
        prepared = prepare(sc.with_overrides(paths=2))
        b = bind(prepared)
    except InputError as e:
        assert "\n" not in str(e)
        return
    assert np.isfinite(prepared.paths.close).all() and (prepared.paths.low > 0).all()
    for pb in b.books:
        assert np.isfinite(pb.book.collateral_tokens).all() and np.isfinite(pb.book.debt_tokens).all()
