"""Perp books: the positions CSV (every rule a one-line error naming file, line, column; hypothesis: any
bytes give an InputError or a valid book) and synthetic books (exact open interest, common random numbers
across candidates, leverage caps and shares of the candidate's maximum)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.errors import InputError
from optimizer.scenario.perp_book import (
    PERP_CSV_COLUMNS,
    draw_perp_synthetic,
    materialize_perp,
    read_perp_csv,
)
from optimizer.snapshots import load_adapter
from protocols import CROSS, ISOLATED

HEADER = ",".join(PERP_CSV_COLUMNS)


@pytest.fixture(scope="module")
def binance():
    return load_adapter("binance_usdm")


@pytest.fixture(scope="module")
def dydx():
    return load_adapter("dydx_v4")


def write(tmp_path, *rows, header=HEADER, name="positions.csv"):
    p = tmp_path / name
    p.write_text("\n".join([header, *rows]) + "\n")
    return p


# ------------------------------------------------------------------------------------------ CSV, valid


def test_csv_reads_isolated_and_cross_rows_of_one_venue(tmp_path, dydx):
    p = write(tmp_path,
              "bob,dydx_v4,ETH-USD,short,10,3000,5000,cross",
              "alice,dydx_v4,BTC-USD,long,0.5,60000,3000,isolated",
              "bob,dydx_v4,BTC-USD,long,1,60000,5000,cross",
              "carol,binance_usdm,BTCUSDT,long,1,60000,1000,isolated")  # another venue's row: skipped
    pp = read_perp_csv(p, "dydx_v4", dydx)
    b = pp.book
    assert pp.venue == "dydx_v4" and list(pp.accounts) == ["alice", "bob"]
    assert b.markets == dydx.markets and b.n_positions == 3
    np.testing.assert_array_equal(b.market, [1, 0, 0])
    np.testing.assert_array_equal(b.side, [-1, 1, 1])
    np.testing.assert_array_equal(b.size_base, [10, 0.5, 1])
    np.testing.assert_array_equal(b.margin_mode, [CROSS, ISOLATED, CROSS])
    np.testing.assert_array_equal(b.margin_usd, [0, 3000, 0])  # cross rows carry no isolated margin
    np.testing.assert_array_equal(b.account, [1, 0, 1])
    np.testing.assert_array_equal(b.cross_collateral_usd, [0, 5000])  # one collateral per account


def test_csv_accepts_unit_suffixed_columns_and_any_case(tmp_path, binance):
    p = write(tmp_path, "a,binance_usdm,BTCUSDT,LONG,1,60000,600,Isolated",
              header="account,venue,market,side,size_base,entry_price_usd,margin_usd,margin_mode")
    b = read_perp_csv(p, "binance_usdm", binance).book
    assert b.side[0] == 1 and b.margin_usd[0] == 600  # 100x: the maximum at $60k (bracket 2)


def test_leverage_exactly_at_the_bracket_maximum_is_accepted_and_one_above_is_not(tmp_path, binance):
    # $40,000 notional: bracket 1 (125x); $60,000: bracket 2 (100x)
    ok = write(tmp_path, "a,binance_usdm,BTCUSDT,long,1,40000,320,isolated")
    assert read_perp_csv(ok, "binance_usdm", binance).book.n_positions == 1
    bad = write(tmp_path, "a,binance_usdm,BTCUSDT,long,1,60000,590,isolated")
    with pytest.raises(InputError, match=r"line 2, column margin: leverage 101.695x is above binance_usdm's "
                                         r"maximum 100x at 60000 USD of notional"):
        read_perp_csv(bad, "binance_usdm", binance)


# ------------------------------------------------------------------------------------------ CSV, bad input

BAD = [
    ("a,okx,BTCUSDT,long,1,60000,1000,isolated", "line 2, column venue: unknown perp venue 'okx' (known: "
                                                 "binance_usdm, dydx_v4, gmx_v2, hyperliquid)"),
    ("a,binance_usdm,ETHUSDT,long,1,3000,1000,isolated", "line 2, column market: 'ETHUSDT' is not a market of "
                                                         "binance_usdm (known: BTCUSDT)"),
    ("a,binance_usdm,BTCUSDT,long,-1,60000,1000,isolated", "line 2, column size: must be > 0 (base units of an "
                                                           "open position), got -1"),
    ("a,binance_usdm,BTCUSDT,buy,1,60000,1000,isolated", "line 2, column side: must be long or short, got 'buy'"),
    ("a,binance_usdm,BTCUSDT,long,1,60000,70000,isolated", "line 2, column margin: isolated margin 70000 USD is "
                                                           "above the notional 60000 USD (leverage 0.8571 < 1)"),
    ("a,binance_usdm,BTCUSDT,long,1,60000,100,isolated", "line 2, column margin: leverage 600x is above "
                                                         "binance_usdm's maximum 100x at 60000 USD of notional"),
    ("a,binance_usdm,BTCUSDT,long,1,60000,0,isolated", "line 2, column margin: leverage infinite (margin 0) is "
                                                       "above binance_usdm's maximum"),
    ("a,binance_usdm,BTCUSDT,long,nan,60000,1000,isolated", "line 2, column size: must be a finite number, got 'nan'"),
    ("a,binance_usdm,BTCUSDT,long,1,inf,1000,isolated", "line 2, column entry_price: must be a finite number, "
                                                        "got 'inf'"),
    ("a,binance_usdm,BTCUSDT,long,1,60000,1e3x,isolated", "line 2, column margin: not a number: '1e3x'"),
    ("a,binance_usdm,BTCUSDT,long,1,0,1000,isolated", "line 2, column entry_price: must be > 0 (USD), got 0"),
    ("a,binance_usdm,BTCUSDT,long,1,60000,-5,cross", "line 2, column margin: must be >= 0 (USD), got -5"),
    ("a,binance_usdm,BTCUSDT,long,1,60000,1000,portfolio", "line 2, column margin_mode: must be isolated or cross, "
                                                           "got 'portfolio'"),
    (",binance_usdm,BTCUSDT,long,1,60000,1000,isolated", "line 2, column account: empty account"),
    ("a,binance_usdm,BTCUSDT,long,9000,60000,6e7,isolated", "line 2, column size: notional 5.4e+08 USD is above the "
                                                            "largest position binance_usdm allows in BTCUSDT"),
    ("a,binance_usdm,BTCUSDT,long,1,60000,100,cross", "line 2, column margin: cross collateral 100 USD of account "
                                                      "'a' is below the initial margin 600 USD of its positions"),
]


@pytest.mark.parametrize("row,message", BAD, ids=[m.split(":")[0] + m.split(":")[1][:18] for _, m in BAD])
def test_every_bad_value_is_one_line_naming_file_line_and_column(tmp_path, binance, row, message):
    p = write(tmp_path, row)
    with pytest.raises(InputError) as e:
        read_perp_csv(p, "binance_usdm", binance)
    assert str(e.value).startswith(f"{p}: {message}")
    assert "\n" not in str(e.value)


def test_cross_rows_disagreeing_on_the_collateral_are_refused(tmp_path, dydx):
    p = write(tmp_path, "b,dydx_v4,BTC-USD,long,1,60000,5000,cross", "b,dydx_v4,ETH-USD,short,1,3000,4000,cross")
    with pytest.raises(InputError, match=r"line 3, column margin: cross collateral 4000 USD of account 'b' differs "
                                         r"from 5000 USD on line 2"):
        read_perp_csv(p, "dydx_v4", dydx)


def test_two_cross_positions_of_one_account_in_one_market_are_refused(tmp_path, dydx):
    p = write(tmp_path, "b,dydx_v4,BTC-USD,long,1,60000,5000,cross", "b,dydx_v4,BTC-USD,short,1,60000,5000,cross")
    with pytest.raises(InputError, match=r"line 3, column market: account 'b' has a second cross position in BTC-USD"):
        read_perp_csv(p, "dydx_v4", dydx)


def test_cross_rows_on_an_isolated_only_venue_are_refused(tmp_path):
    p = write(tmp_path, "a,gmx_v2,BTC-USD,long,1,60000,5000,cross")
    with pytest.raises(InputError, match=r"line 2, column margin_mode: gmx_v2 has isolated positions only"):
        read_perp_csv(p, "gmx_v2", load_adapter("gmx_v2"))


def test_structure_errors(tmp_path, binance):
    with pytest.raises(InputError, match=r"line 1: missing column 'margin_mode'"):
        read_perp_csv(write(tmp_path, header="account,venue,market,side,size,entry_price,margin"), "binance_usdm",
                      binance)
    with pytest.raises(InputError, match=r"no rows for venue 'binance_usdm' \(empty book\)"):
        read_perp_csv(write(tmp_path, "a,dydx_v4,BTC-USD,long,1,60000,5000,isolated"), "binance_usdm", binance)
    with pytest.raises(InputError, match=r"line 2: expected 8 fields, got 3"):
        read_perp_csv(write(tmp_path, "a,b,c"), "binance_usdm", binance)
    with pytest.raises(InputError, match=r"is a directory"):
        read_perp_csv(tmp_path, "binance_usdm", binance)


# ------------------------------------------------------------------------------------------ CSV, hypothesis

# (valid, invalid) tokens per column; a token is invalid about one time in seven, so many rows reach the deep rules
TOKENS = {
    "account": (["a", "b", "c d"], [""]),
    "venue": (["binance_usdm", "dydx_v4"], ["okx"]),
    "market": (["BTCUSDT"], ["ETHUSDT"]),
    "side": (["long", "short", "Long"], ["sell"]),
    "size": (["1", "0.01", "2.5", "1e4"], ["0", "-1", "nan", "x"]),
    "entry_price": (["60000", "100", "40000"], ["0", "inf"]),
    "margin": (["600", "1000", "50000", "2e5", "0"], ["1e12", "-1", "1e-300"]),
    "margin_mode": (["isolated", "cross", "CROSS"], ["both"]),
}
COLUMN = {c: st.sampled_from(valid * 6 + invalid) for c, (valid, invalid) in TOKENS.items()}


def _check_valid(pp, adapter):
    b = pp.book
    assert b.n_positions >= 1 and b.markets == adapter.markets
    assert np.isfinite(b.size_base).all() and (b.size_base > 0).all() and (b.entry_price_usd > 0).all()
    notional = b.size_base * b.entry_price_usd
    iso = b.margin_mode == ISOLATED
    assert (b.margin_usd[iso] <= notional[iso]).all() and (b.margin_usd[iso] > 0).all()
    lev = notional[iso] / b.margin_usd[iso]
    assert (lev <= adapter.max_leverage(b.market[iso], b.side[iso], notional[iso], None) * (1 + 1e-9)).all()


@settings(max_examples=120)
@given(data=st.binary(max_size=400))
def test_arbitrary_bytes_give_an_input_error_or_a_valid_book(tmp_path_factory, data):
    adapter = load_adapter("binance_usdm")
    p = tmp_path_factory.mktemp("fuzz") / "p.csv"
    p.write_bytes(data)
    try:
        pp = read_perp_csv(p, "binance_usdm", adapter)
    except InputError as e:
        assert "\n" not in str(e) and str(e).startswith(str(p))
    else:
        _check_valid(pp, adapter)


@settings(max_examples=120)
@given(rows=st.lists(st.fixed_dictionaries(COLUMN), min_size=1, max_size=6))
def test_csv_shaped_garbage_gives_an_input_error_or_a_valid_book(tmp_path_factory, rows):
    adapter = load_adapter("binance_usdm")
    p = tmp_path_factory.mktemp("fuzz") / "p.csv"
    p.write_text(HEADER + "\n" + "\n".join(",".join(r[c] for c in PERP_CSV_COLUMNS) for r in rows) + "\n")
    try:
        pp = read_perp_csv(p, "binance_usdm", adapter)
    except InputError as e:
        assert "\n" not in str(e) and str(e).startswith(f"{p}: ")
    else:
        _check_valid(pp, adapter)


# ------------------------------------------------------------------------------------------ synthetic

RAW = {"kind": "perp_synthetic", "positions": 4000, "open_interest_usd": {"BTC-USD": 3e8, "ETH-USD": 1e8},
       "long_share": 0.7, "size_usd": {"dist": "lognormal", "median": 20_000, "sigma": 1.2},
       "leverage": {"dist": "lognormal", "median": 12, "sigma": 0.8, "min": 1}, "cross_share": 0.25,
       "entry_offset": {"dist": "uniform", "low": -0.02, "high": 0.02}}
PRICES = {"BTC": 60_000.0, "ETH": 3_000.0}


def draw(raw, adapter, seed=7):
    return draw_perp_synthetic(raw, adapter, "s.toml", "protocols[0].book", np.random.default_rng(seed))


def test_synthetic_book_carries_exactly_its_open_interest_per_market_and_side(dydx):
    pp = materialize_perp(draw(RAW, dydx), dydx, dydx, PRICES)
    oi = pp.book.open_interest()  # at entry
    np.testing.assert_allclose(oi.long_usd, [0.7 * 3e8, 0.7 * 1e8], rtol=1e-12)
    np.testing.assert_allclose(oi.short_usd, [0.3 * 3e8, 0.3 * 1e8], rtol=1e-12)
    b = pp.book
    assert 0.2 < b.is_cross.mean() < 0.3 and b.n_accounts == b.n_positions == 4000
    lev = b.notional_usd(b.entry_price_usd) / b.pool_collateral_usd()
    assert lev.min() >= 1 and lev.max() <= 50 + 1e-9  # capped at dYdX Large-Cap 50x
    mark = b.position_marks(np.array([60_000.0, 3_000.0]))
    assert np.abs(np.log(b.entry_price_usd / mark)).max() <= 0.02


def test_draws_do_not_depend_on_the_candidate(binance):
    """Common random numbers: draws under two parameter sets are identical, so a candidate is bound to the
    same accounts; only margins move (capped at the candidate's lower maximum leverage)."""
    raw = {**RAW, "open_interest_usd": {"BTCUSDT": 5e8}, "cross_share": 0.0}
    low = binance.with_params({"BTCUSDT.bracket1.max_leverage": 20, "BTCUSDT.bracket2.max_leverage": 20,
                               "BTCUSDT.bracket3.max_leverage": 20})
    d_cur, d_low = draw(raw, binance), draw(raw, low)
    for f in ("market", "side", "notional_usd", "entry_log_offset", "cross", "level"):
        np.testing.assert_array_equal(getattr(d_cur, f), getattr(d_low, f))
    a = materialize_perp(d_cur, binance, binance, {"BTC": 60_000.0}).book
    b = materialize_perp(d_cur, low, binance, {"BTC": 60_000.0}).book
    np.testing.assert_array_equal(a.size_base, b.size_base)
    lev_a = a.notional_usd(a.entry_price_usd) / a.margin_usd
    lev_b = b.notional_usd(b.entry_price_usd) / b.margin_usd
    np.testing.assert_allclose(lev_b, np.minimum(lev_a, 20.0), rtol=1e-12)
    assert (lev_a > 20).sum() > 100  # the cap binds on a real share of the book


def test_leverage_fraction_scales_with_the_candidates_maximum(binance):
    raw = {k: v for k, v in RAW.items() if k not in ("leverage", "cross_share")}
    raw |= {"open_interest_usd": {"BTCUSDT": 5e8}, "leverage_fraction": {"dist": "beta", "a": 2, "b": 5}}
    d = draw(raw, binance)
    low = binance.with_params({"BTCUSDT.bracket1.max_leverage": 50, "BTCUSDT.bracket2.max_leverage": 50})
    for ad in (binance, low):
        b = materialize_perp(d, ad, binance, {"BTC": 60_000.0}).book
        notional = b.notional_usd(b.entry_price_usd)
        max_lev = ad.max_leverage(b.market, b.side, notional)
        np.testing.assert_allclose(notional / b.margin_usd, np.maximum(d.level * max_lev, 1.0), rtol=1e-12)


@pytest.mark.parametrize("change,field,rule", [
    ({"positions": 0}, "protocols[0].book.positions", "must be a whole number >= 1"),
    ({"open_interest_usd": {"BTC": 1e8}}, "protocols[0].book.open_interest_usd.BTC", "'BTC' is not a market of dydx_v4"),
    ({"open_interest_usd": {"BTC-USD": -1}}, "protocols[0].book.open_interest_usd.BTC-USD", "must be a positive"),
    ({"long_share": 1.5}, "protocols[0].book.long_share", "must be a number in [0, 1]"),
    ({"leverage": {"dist": "uniform", "low": 0.5, "high": 2}}, "protocols[0].book.leverage", "leverage must be >= 1"),
    ({"leverage_fraction": {"dist": "beta", "a": 1, "b": 1}}, "protocols[0].book", "give exactly one of leverage"),
    ({"levarage": 3}, "protocols[0].book.levarage", "unknown key"),
    ({"calibration": 3, "leverage": None}, "protocols[0].book.calibration", "must be the path of a liquidation-map"),
    ({"size_usd": {"dist": "lognormal", "median": 1e10, "sigma": 0.1}}, "protocols[0].book.size_usd",
     "a drawn position of"),
])
def test_synthetic_config_errors_name_the_key(binance, dydx, change, field, rule):
    raw = {**RAW, **change}
    raw = {k: v for k, v in raw.items() if v is not None}
    adapter = binance if "size_usd" in change else dydx
    if adapter is binance:
        raw |= {"open_interest_usd": {"BTCUSDT": 1e13}, "cross_share": 0.0}
    with pytest.raises(InputError) as e:
        draw(raw, adapter)
    assert str(e.value).startswith(f"s.toml: {field}: {rule}")


def test_a_market_side_without_positions_is_an_error(dydx):
    with pytest.raises(InputError, match=r"positions: no short position was drawn in (BTC|ETH)-USD; raise positions"):
        draw({**RAW, "positions": 3, "long_share": 0.9}, dydx)


def test_the_documented_synthetic_table_draws(binance):
    """The ``kind = "perp_synthetic"`` example of docs/scenario_format.md is a valid book (docs stay true)."""
    import re
    import tomllib
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "scenario_format.md").read_text()
    block = re.search(r"## Perp books.*?```toml\n(.*?)```", doc, re.S).group(1)
    tables = block.split("[protocols.book]")
    raw = tomllib.loads(tables[2])
    assert raw["kind"] == "perp_synthetic" and tomllib.loads(tables[1]) == {"kind": "perp_csv",
                                                                            "path": "books/perp_positions.csv"}
    pp = materialize_perp(draw(raw, binance), binance, binance, {"BTC": 60_000.0})
    assert pp.book.n_positions == raw["positions"]
    np.testing.assert_allclose(pp.book.open_interest().long_usd, [0.7 * 2e9], rtol=1e-12)
