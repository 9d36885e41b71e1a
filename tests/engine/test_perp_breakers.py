"""Perp circuit breakers on the cascade loop: a price band halts liquidations for its window and they resume
after; a stress margin multiplier liquidates exactly the positions whose equity falls below k x maintenance;
each breaker is a tunable parameter with bounds; both run on the fast kernel as on the reference engine."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from optimizer.engine import bind, prepare
from optimizer.engine.reference import run_reference
from optimizer.engine.simulate import kernel_unsupported_reason, run_kernel
from optimizer.engine.testing import assert_ledgers_match
from optimizer.scenario.config import load_scenario
from optimizer.snapshots import data_dir, load_adapter
from protocols import InvalidParameters

P0 = 100_000.0
MARKET = "BTCUSDT"


def _scenario(tmp_path: Path, closes: list[float], levs: list[float], params: str) -> Path:
    """1-minute bars (each flat at its close: low = high = close) after an open at P0, no price impact, and
    isolated Binance longs of 0.01 BTC at the given leverages, entered at P0."""
    rows = [f"2025-01-01T00:{i:02d}:00Z,{p},{p},{p},{p},1" for i, p in enumerate(closes)]
    (tmp_path / "bars.csv").write_text("timestamp,open_usd,high_usd,low_usd,close_usd,volume_base\n"
                                       + "\n".join(rows) + "\n")
    (tmp_path / "book.csv").write_text("account,venue,market,side,size,entry_price,margin,margin_mode\n" + "\n".join(
        f"a{i},binance_usdm,{MARKET},long,0.01,{P0},{0.01 * P0 / lev!r},isolated" for i, lev in enumerate(levs)) + "\n")
    path = tmp_path / "s.toml"
    path.write_text(f"""
[scenario]
name = "breakers"
step_min = 1
paths = 1

[assets.BTC]
model = "replay"
csv = "bars.csv"

[[protocols]]
adapter = "binance_usdm"
params = {{ {params} }}
[protocols.book]
kind = "perp_csv"
path = "book.csv"
""")
    return path


def _first_steps(path: Path) -> tuple[dict[int, int], object, object]:
    bound = bind(prepare(load_scenario(path)))
    ev: list[tuple] = []
    ledger = run_reference(bound, events=ev)
    first: dict[int, int] = {}
    for e in ev:
        first.setdefault(int(e[3]), int(e[1]))
    return first, ledger, bound


def test_a_price_band_halts_liquidations_during_its_window_and_they_resume_after(tmp_path):
    """A 10 % fall in bar 2 trips a 5 % / 60 s band (step 2, t = 120 s): the 15x longs, liquidatable from
    step 2 on, are not liquidated at steps 2-4 (120-240 s < 120 + 180 s) and are at step 5 (300 s), when the
    band (the close of step 4 is the reference) no longer trips."""
    closes = [P0, 0.9 * P0, 0.9 * P0, 0.9 * P0, 0.9 * P0, 0.9 * P0, 0.9 * P0]
    levs = [15.0, 20.0, 2.0]
    off, _, _ = _first_steps(_scenario(tmp_path, closes, levs, '"insurance_fund_usd" = 1e9'))
    assert off == {0: 2, 1: 2}  # no band: the step of the fall; the 2x long survives
    on = ('"insurance_fund_usd" = 1e9, "breakers.price_band_move" = 0.05, "breakers.price_band_window_s" = 60, '
          '"breakers.price_band_halt_s" = 180')
    first, ledger, _ = _first_steps(_scenario(tmp_path, closes, levs, on))
    assert first == {0: 5, 1: 5}
    assert ledger.price_band_trips[0, 0] == 1
    # a fall smaller than the band: no trip, liquidated at once
    small = [P0, 0.96 * P0, 0.96 * P0, 0.96 * P0]
    first, ledger, _ = _first_steps(_scenario(tmp_path, small, [30.0], on))
    assert first == {0: 2} and ledger.price_band_trips[0, 0] == 0


def test_a_stress_margin_multiplier_liquidates_exactly_the_positions_below_k_times_maintenance(tmp_path):
    """A 6 % fall in bar 2 holds the stress condition (> 5 % within 60 s) at step 2 only: with k = 2 the longs
    liquidated at step 2 are exactly those with equity <= 2 x maintenance at the mark (Binance flags
    marginRatio >= 100 %); with k = 1 only those with equity <= maintenance; nobody after step 2."""
    closes = [P0, 0.94 * P0, 0.94 * P0, 0.94 * P0]
    levs = np.round(np.arange(12.0, 17.01, 0.25), 2).tolist()
    base = '"breakers.stress_move" = 0.05, "breakers.stress_window_s" = 60'
    got = {}
    for k in (1.0, 2.0):
        first, ledger, bound = _first_steps(_scenario(tmp_path, closes, levs, f'{base}, '
                                                      f'"breakers.stress_margin_multiplier" = {k}'))
        assert set(first.values()) <= {2}
        got[k] = sorted(first)
        if k == 2.0:
            assert ledger.stress_margin_steps[0, 0] == 1
    ad = load_adapter("binance_usdm")
    book = bound.books[0].book
    mark = np.full(book.n_positions, 0.94 * P0)
    eq, mm = ad.equity_usd(book, mark), ad.requirement_usd(book, mark)
    assert not np.isclose(eq, mm).any() and not np.isclose(eq, 2 * mm).any()  # no ties at the boundaries
    assert got[1.0] == np.flatnonzero(eq <= mm).tolist()
    assert got[2.0] == np.flatnonzero(eq <= 2 * mm).tolist()
    assert 3 <= len(got[2.0]) - len(got[1.0]) and len(got[2.0]) < len(levs)  # the multiplier bites, not on all


def test_the_stress_step_is_counted_on_every_path_of_a_chunk(tmp_path):
    """A replay's paths are the same path: the stress condition holds at step 2 on each, and each path counts it
    once (the kernel reuses its scratch from path to path; the step counted last on a path must not carry over
    into the next one), on both engines."""
    closes = [P0, 0.94 * P0, 0.94 * P0, 0.94 * P0]
    params = ('"breakers.stress_move" = 0.05, "breakers.stress_window_s" = 60, '
              '"breakers.stress_margin_multiplier" = 2')
    path = _scenario(tmp_path, closes, [12.0, 14.0, 16.0], params)
    path.write_text(path.read_text().replace("paths = 1", "paths = 3"))
    bound = bind(prepare(load_scenario(path)))
    assert kernel_unsupported_reason(bound) is None
    ref = run_reference(bound)
    for chunks in (1, 2):
        led, _ = run_kernel(bound, n_chunks=chunks)
        np.testing.assert_array_equal(led.stress_margin_steps[:, 0], [1.0, 1.0, 1.0])
        assert_ledgers_match(led, ref)
    np.testing.assert_array_equal(ref.stress_margin_steps[:, 0], [1.0, 1.0, 1.0])


def test_breakers_are_tunable_parameters_with_bounds_on_every_perp_venue():
    for venue in ("binance_usdm", "dydx_v4", "gmx_v2", "hyperliquid"):
        ad = load_adapter(venue)
        sch = ad.schema()
        for name, lo, hi, cur in (("price_band_move", 0.001, 1.0, 1.0), ("price_band_halt_s", 0.0, 86_400.0, 300.0),
                                  ("stress_margin_multiplier", 1.0, 10.0, 1.0), ("stress_move", 0.001, 1.0, 0.05)):
            s = sch.spec(f"breakers.{name}")
            assert (s.lower, s.upper, s.current) == (lo, hi, cur) and s.unit and s.source
        cb = ad.circuit_breakers()
        assert not cb.price_band_on and not cb.stress_margin_on  # off at the current values
        on = ad.with_params({"breakers.price_band_move": 0.1, "breakers.stress_margin_multiplier": 1.5})
        assert on.circuit_breakers().price_band_on and on.circuit_breakers().stress_margin_multiplier == 1.5
        with pytest.raises(InvalidParameters, match=r"^breakers.stress_margin_multiplier=0.5 is outside"):
            ad.with_params({"breakers.stress_margin_multiplier": 0.5})
    # the venues' own limits are kept next to them
    assert load_adapter("binance_usdm").circuit_breakers().price_band_ratio == 0.05
    assert load_adapter("hyperliquid").circuit_breakers().partial_liquidation_cooldown_s == 30.0


# ---------------------------------------------------------------------------------------------
# the breakers on the fast kernel
# ---------------------------------------------------------------------------------------------

_BAND = {"breakers.price_band_move": 0.02, "breakers.price_band_window_s": 300.0,
         "breakers.price_band_halt_s": 600.0}


def _kernel_vs_reference(bound, k: int):
    """The kernel's ledger and events on paths 0..k-1 equal the reference engine's; returns both ledgers and
    the kernel's events."""
    assert kernel_unsupported_reason(bound) is None
    p = bound.prepared.paths
    kern, ev = run_kernel(bound, close=p.close[:k], low=p.low[:k], high=p.bar_high[:k], events=True)
    evs: list[tuple] = []
    ref = run_reference(bound, path_indices=np.arange(k), events=evs)
    assert_ledgers_match(kern, ref, 1e-9, 1e-6)
    assert sorted(tuple(int(x) for x in e.tolist()[:5]) for e in ev) == sorted(tuple(int(x) for x in e[:5])
                                                                             for e in evs)
    return kern, ref, ev


def test_the_kernel_halts_and_resumes_liquidations_under_a_price_band_as_the_reference_does(tmp_path):
    closes = [P0, 0.9 * P0, 0.9 * P0, 0.9 * P0, 0.9 * P0, 0.9 * P0, 0.9 * P0]
    on = ('"insurance_fund_usd" = 1e9, "breakers.price_band_move" = 0.05, "breakers.price_band_window_s" = 60, '
          '"breakers.price_band_halt_s" = 180')
    bound = bind(prepare(load_scenario(_scenario(tmp_path, closes, [15.0, 20.0, 2.0], on))))
    kern, _, ev = _kernel_vs_reference(bound, 1)
    assert kern.price_band_trips[0, 0] == 1
    assert sorted(int(e["step"]) for e in ev) == [5, 5]  # halted at steps 2-4, liquidated at step 5


def test_the_kernel_runs_a_price_band_on_a_monte_carlo_book_exactly_as_the_reference():
    """The bundled synthetic crash (3,000 Binance positions, jumps, a -13 % crash) with a 2 % / 5 min band that
    halts for 10 min: the band trips on most paths and changes what is liquidated, and the kernel's ledger
    (trips included) and events equal the reference engine's."""
    prep = prepare(load_scenario(data_dir() / "scenarios" / "perp_binance_btc_synthetic_crash_3h.toml")
                   .with_overrides(paths=4))
    pid = prep.scenario.protocols[0].id
    on, off = bind(prep, {pid: _BAND}), bind(prep, {})
    kern, _, _ = _kernel_vs_reference(on, 4)
    assert (kern.price_band_trips[:, 0] > 0).sum() >= 2
    base, _ = run_kernel(off)
    assert not np.array_equal(base.liquidations, kern.liquidations)  # the band bites


_BAND_ON = {"breakers.price_band_move": 0.05, "breakers.price_band_window_s": 60, "breakers.price_band_halt_s": 180}


def _two_market_scenario(tmp_path: Path, cross_markets: tuple[str, ...], params: dict | None = None,
                         btc_fall: float = 0.9, levs: tuple[float, ...] = (15.0, 2.0, 15.0)) -> Path:
    """Hyperliquid on BTC and ETH (flat 1-minute bars, BTC -10 % in bar 2, ETH flat), isolated longs on both
    (BTC, BTC, ETH at ``levs``) and one cross account holding a long on each of ``cross_markets`` ($100 of
    collateral: on BTC alone the fall takes it all), with ``params`` (default: a 5 % / 60 s band halting 180 s)."""
    for name, p0, fall in (("btc", P0, 0.9), ("eth", 4_000.0, 1.0)):
        fall = btc_fall if name == "btc" else fall
        rows = [f"2025-01-01T00:{i:02d}:00Z,{p},{p},{p},{p},1" for i, p in enumerate([p0] + [fall * p0] * 6)]
        (tmp_path / f"{name}.csv").write_text("timestamp,open_usd,high_usd,low_usd,close_usd,volume_base\n"
                                             + "\n".join(rows) + "\n")
    size = {"BTC": (0.01, P0), "ETH": (0.25, 4_000.0)}
    book = ["account,venue,market,side,size,entry_price,margin,margin_mode"]
    for i, (m, lev) in enumerate(zip(("BTC", "BTC", "ETH"), levs, strict=True)):
        q, px = size[m]
        book.append(f"a{i},hyperliquid,{m},long,{q},{px},{q * px / lev!r},isolated")
    for m in cross_markets:  # the account's collateral, $100, repeated on each of its rows
        q, px = size[m]
        book.append(f"x,hyperliquid,{m},long,{q},{px},100.0,cross")
    (tmp_path / "book.csv").write_text("\n".join(book) + "\n")
    path = tmp_path / "s.toml"
    given = "\n".join(f'"{k}" = {v}' for k, v in (_BAND_ON if params is None else params).items())
    path.write_text(f"""
[scenario]
name = "breakers-two-markets"
step_min = 1
paths = 1

[assets.BTC]
model = "replay"
csv = "btc.csv"

[assets.ETH]
model = "replay"
csv = "eth.csv"

[[protocols]]
adapter = "hyperliquid"
[protocols.params]
{given}
[protocols.book]
kind = "perp_csv"
path = "book.csv"
""")
    return path


def test_a_price_band_with_a_cross_account_on_two_markets_declines_the_kernel_and_on_one_it_runs(tmp_path):
    """The kernel halts a market's cross accounts whole, so an account on two markets (one halted, one not)
    keeps the reference engine, with its reason; on one market each it runs on the kernel, as the reference."""
    two = bind(prepare(load_scenario(_two_market_scenario(tmp_path, ("BTC", "ETH")))))
    reason = kernel_unsupported_reason(two)
    assert reason is not None and "cross-margin accounts on several markets" in reason
    one = bind(prepare(load_scenario(_two_market_scenario(tmp_path, ("BTC",)))))
    kern, _, ev = _kernel_vs_reference(one, 1)
    assert kern.price_band_trips[0, 0] == 1  # BTC's band only: ETH did not move
    assert {int(e["position"]) for e in ev} >= {0, 3} and {int(e["step"]) for e in ev} == {5}  # after the halt


def test_the_kernel_liquidates_under_a_stress_margin_exactly_the_positions_the_reference_does(tmp_path):
    """The stress case above (k = 2 at step 2 only) on the kernel: the same rows at the same step, the step
    counted once; with k = 1 (off) fewer rows."""
    closes = [P0, 0.94 * P0, 0.94 * P0, 0.94 * P0]
    levs = np.round(np.arange(12.0, 17.01, 0.25), 2).tolist()
    base = '"breakers.stress_move" = 0.05, "breakers.stress_window_s" = 60'
    got = {}
    for k in (1.0, 2.0):
        bound = bind(prepare(load_scenario(_scenario(tmp_path, closes, levs, f'{base}, '
                                                     f'"breakers.stress_margin_multiplier" = {k}'))))
        kern, _, ev = _kernel_vs_reference(bound, 1)
        assert {int(e["step"]) for e in ev} == {2}
        got[k] = {int(e["position"]) for e in ev}
        if k == 2.0:
            assert kern.stress_margin_steps[0, 0] == 1
    assert got[1.0] < got[2.0]


_STRESS = {"breakers.stress_margin_multiplier": 2.0, "breakers.stress_move": 0.02,
           "breakers.stress_window_s": 300.0}


def _crash(paths: int = 4):
    return prepare(load_scenario(data_dir() / "scenarios" / "perp_binance_btc_synthetic_crash_3h.toml")
                   .with_overrides(paths=paths))


@pytest.mark.parametrize("params", [_STRESS, {**_STRESS, "breakers.stress_margin_multiplier": 10.0},
                                    {**_STRESS, "breakers.stress_move": 0.005, **_BAND}], ids=["k2", "k10", "k2+band"])
def test_the_kernel_runs_a_stress_margin_on_a_monte_carlo_book_exactly_as_the_reference(params):
    """The synthetic crash (3,000 Binance positions) with a stress margin over a 2 % / 5 min move: k = 2 changes
    what is liquidated on the paths, k = 10 lifts the $20M bracket's rate to 1 (from there a long's margin
    outruns its equity: the lanes are tested row by row), and over a 0.5 % move with the price band on as well
    (the stress acts before the band halts); the kernel's
    ledger (stress steps and band trips included) and events equal the reference engine's."""
    prep = _crash()
    pid = prep.scenario.protocols[0].id
    kern, _, _ = _kernel_vs_reference(bind(prep, {pid: params}), 4)
    assert (kern.stress_margin_steps[:, 0] > 0).all()
    base, _ = run_kernel(bind(prep, {pid: {k: v for k, v in params.items() if "stress" not in k}}))
    assert (base.liquidations[:, 0] < kern.liquidations[:, 0]).sum() >= 3  # the multiplier bites, path by path
    if "breakers.price_band_move" in params:
        assert (kern.price_band_trips[:, 0] > 0).sum() >= 2


@pytest.mark.parametrize("cross_markets", [("BTC",), ("BTC", "ETH")], ids=["one-market", "two-markets"])
def test_a_stress_margin_on_one_market_of_a_cross_account_runs_on_the_kernel_as_the_reference(tmp_path,
                                                                                               cross_markets):
    """Hyperliquid on BTC (-4 %, stressed over 3 % / 60 s, k = 4) and ETH (flat, not stressed): isolated longs at
    15x on both and one cross account; the account's BTC row reads the stressed margin and its ETH row the
    venue's (a per-market multiplier within one account, as ``with_margin_multiplier``), and the kernel equals
    the reference: the BTC 15x long goes under stress only, the ETH one survives."""
    on = {"breakers.stress_margin_multiplier": 4.0, "breakers.stress_move": 0.03, "breakers.stress_window_s": 60}
    bound = bind(prepare(load_scenario(_two_market_scenario(tmp_path, cross_markets, on, btc_fall=0.96))))
    kern, _, ev = _kernel_vs_reference(bound, 1)
    assert kern.stress_margin_steps[0, 0] == 1
    assert 0 in {int(e["position"]) for e in ev} and 2 not in {int(e["position"]) for e in ev}
    off = bind(prepare(load_scenario(_two_market_scenario(tmp_path, cross_markets, {}, btc_fall=0.96))))
    _, _, ev_off = _kernel_vs_reference(off, 1)
    assert 0 not in {int(e["position"]) for e in ev_off}


def test_a_stress_margin_with_a_band_keeps_the_band_s_decline_for_cross_accounts_on_several_markets(tmp_path):
    """What still runs on the reference engine: a band with a cross account on two markets (the stress margin
    does not lift it)."""
    both = bind(prepare(load_scenario(_two_market_scenario(tmp_path, ("BTC", "ETH"), {**_BAND_ON, **{
        "breakers.stress_margin_multiplier": 2.0}}))))
    reason = kernel_unsupported_reason(both)
    assert reason is not None and "cross-margin accounts on several markets" in reason


def test_a_stress_margin_on_the_hyperliquid_replay_with_cross_accounts_and_partials_runs_as_the_reference(tmp_path):
    """The 10 Oct 2025 replay's Hyperliquid book (4,000 positions) with 30 % of them in cross accounts and a
    stress margin k = 3 over a 2 % / 5 min move: partial liquidations leave touched rows that later rounds test
    under stress, cross accounts sum stressed margins; the kernel's ledger and events equal the reference's."""
    src = (data_dir() / "scenarios" / "perp_hyperliquid_btc_2025-10-10.toml").read_text()
    anchor = 'adapter = "hyperliquid"\n'
    params = ('params = { "breakers.stress_margin_multiplier" = 3.0, "breakers.stress_move" = 0.02, '
              '"breakers.stress_window_s" = 300 }\n')
    book = 'kind = "perp_synthetic"\n'
    assert anchor in src and book in src
    f = tmp_path / "s.toml"
    f.write_text(src.replace(anchor, anchor + params, 1).replace(book, book + "cross_share = 0.3\n", 1)
                 .replace('csv = "', f'csv = "{data_dir()}/'))
    bound = bind(prepare(load_scenario(f)))
    kern, _, ev = _kernel_vs_reference(bound, 1)
    assert kern.stress_margin_steps[0, 0] > 0
    rows, times = np.unique(ev["position"], return_counts=True)
    assert (times > 1).any()  # partials: touched rows
    assert bound.books[0].book.is_cross[rows].any()  # cross accounts liquidated
    off, _ = run_kernel(bind(bound.prepared, {bound.prepared.scenario.protocols[0].id: {
        "breakers.stress_margin_multiplier": 1.0}}))
    assert off.liquidations[0, 0] < kern.liquidations[0, 0]  # the multiplier bites
