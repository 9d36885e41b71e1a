"""Scenario funding on a perp venue: longs pay shorts ``rate x notional`` through margin at each funding time;
the transfer is conserved (what the book's payers pay, its receivers get, plus the counterparty outside the
book when its sides do not match). The fast perp kernel runs funding as the reference engine does: on the
small books below (both engines) and on the 3,000-position synthetic crash with funding large enough to
liquidate at funding times (isolated and cross rows, both signs, intervals that are and are not multiples of
the step, several funding times in one step); the perp_fund rule itself: tests/engine/test_perp_kernel.py."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.engine import bind, evaluate, prepare
from optimizer.engine.reference import run_reference
from optimizer.engine.simulate import kernel_unsupported_reason, run_kernel
from optimizer.engine.testing import assert_ledgers_match
from optimizer.errors import InputError
from optimizer.scenario.config import load_scenario
from optimizer.snapshots import data_dir
from protocols import CROSS, ISOLATED, PerpBook, apply_funding, funding_payments_usd


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([1, -1]), st.floats(0.01, 50), st.booleans()), min_size=1, max_size=12),
       st.floats(-0.01, 0.01), st.floats(1_000, 200_000))
def test_funding_moves_exactly_the_payments_through_margin(rows, rate, mark):
    n = len(rows)
    side = np.array([r[0] for r in rows])
    size = np.array([r[1] for r in rows])
    cross = np.array([r[2] for r in rows])
    # one cross account per market side pair is not needed: every cross row is its own account
    book = PerpBook(("BTC",), np.zeros(n, int), side, size, np.full(n, mark), np.where(cross, 0.0, 1e4),
                    np.where(cross, CROSS, ISOLATED), np.arange(n), np.where(cross, 1e4, 0.0))
    pay = funding_payments_usd(book, np.full(n, mark), np.array([rate]))
    np.testing.assert_allclose(pay, side * rate * size * mark)
    after = apply_funding(book, pay)
    before_total = book.margin_usd.sum() + book.cross_collateral_usd.sum()
    after_total = after.margin_usd.sum() + after.cross_collateral_usd.sum()
    assert after_total == pytest.approx(before_total - pay.sum(), abs=1e-6)
    np.testing.assert_allclose(after.pool_collateral_usd(), book.pool_collateral_usd() - pay, atol=1e-6)


SCENARIO = """
[scenario]
name = "perp-funding"
description = "t"
horizon_h = 1.5
step_min = 5
paths = 1
seed = 1

[assets.BTC]
price_usd = 60000
model = "gbm"
sigma_annual = 0.0

[[protocols]]
adapter = "binance_usdm"
{funding}
[protocols.book]
kind = "perp_csv"
path = "book.csv"
"""


def _run(tmp_path, funding: str, rows: str, engine: str = "reference"):
    (tmp_path / "book.csv").write_text("account,venue,market,side,size,entry_price,margin,margin_mode\n" + rows)
    (tmp_path / "s.toml").write_text(SCENARIO.format(funding=funding))
    return evaluate(prepare(load_scenario(tmp_path / "s.toml")), engine=engine).raw


def _kernel_vs_reference(path, k: int = 1):
    """The kernel's ledger (within the agreement tolerance) and events on paths 0..k-1 equal the reference's."""
    bound = bind(prepare(load_scenario(path).with_overrides(paths=k)))
    assert kernel_unsupported_reason(bound) is None
    kern, ev = run_kernel(bound, events=True)
    evs: list[tuple] = []
    ref = run_reference(bound, path_indices=np.arange(k), events=evs)
    assert_ledgers_match(kern, ref, 1e-9, 1e-6)
    assert sorted(tuple(int(x) for x in e.tolist()[:5]) for e in ev) == sorted(tuple(int(x) for x in e[:5])
                                                                             for e in evs)
    return kern, ref


@pytest.mark.parametrize("engine", ["reference", "kernel"])
def test_a_balanced_book_transfers_funding_from_longs_to_shorts_at_each_funding_time(tmp_path, engine):
    rows = ("a,binance_usdm,BTCUSDT,long,2,60000,20000,isolated\n"
            "b,binance_usdm,BTCUSDT,short,1.5,60000,20000,isolated\n"
            "c,binance_usdm,BTCUSDT,short,0.5,60000,20000,isolated\n")
    def run(funding, rows):
        return _run(tmp_path, funding, rows, engine)

    r = run("funding = { rate_per_interval = 0.0001, interval_h = 0.5 }", rows)
    # 1.5 h at 5 min: funding times at 0.5, 1 and 1.5 h; the long pays 1e-4 x $120k three times
    assert float(r.perp_funding_paid_usd.sum()) == pytest.approx(3 * 1e-4 * 120_000, rel=1e-12)
    assert float(r.perp_funding_received_usd.sum()) == pytest.approx(float(r.perp_funding_paid_usd.sum()), rel=1e-12)
    assert float(r.perp_funding_external_usd.sum()) == pytest.approx(0.0, abs=1e-9)
    # an imbalanced book pays the rest of the venue the difference; without the table nothing moves
    r = run("funding = { rate_per_interval = -0.0002, interval_h = 8 }", rows.replace("1.5,", "1.0,"))
    assert float(r.perp_funding_paid_usd.sum()) == 0  # 1.5 h: no 8-hour funding time
    r = run("funding = { rate_per_interval = -0.0002, interval_h = 0.25 }", rows.replace("1.5,", "1.0,"))
    # a negative rate: shorts ($90k) pay longs ($120k) six times; the book receives 6 x 2e-4 x $30k from outside
    assert float(r.perp_funding_paid_usd.sum()) == pytest.approx(6 * 2e-4 * 90_000, rel=1e-12)
    assert float(r.perp_funding_external_usd.sum()) == pytest.approx(-6 * 2e-4 * 30_000, rel=1e-12)
    r = run("", rows)
    assert float(np.abs(r.perp_funding_paid_usd).sum()) == 0


@pytest.mark.parametrize("funding,liquidated", [("funding = { rate_per_interval = 0.06, interval_h = 0.5 }", (13, 3)),
                                                ("funding = { rate_per_interval = -0.09, interval_h = 0.25 }", (10, 1))])
def test_the_kernel_liquidates_what_funding_pushed_under_water_as_the_reference(tmp_path, funding, liquidated):
    """A flat price: only funding moves margins. A thin long (10 % margin) pays 6 % of its notional every 30 min,
    or a short (22 %) pays 9 % every 15 min: after the funding time that takes its margin below the requirement
    (the 2nd, at step 12; the 3rd, at step 9) the next step's first round liquidates it on both engines, though
    its mark never reached its liquidation price at the start (the lane's funding shift)."""
    (tmp_path / "book.csv").write_text(
        "account,venue,market,side,size,entry_price,margin,margin_mode\n"
        "a,binance_usdm,BTCUSDT,long,2,60000,20000,isolated\nb,binance_usdm,BTCUSDT,short,1.5,60000,20000,isolated\n"
        "c,binance_usdm,BTCUSDT,short,0.5,60000,20000,isolated\nd,binance_usdm,BTCUSDT,long,0.5,60000,3000,isolated\n")
    (tmp_path / "s.toml").write_text(SCENARIO.format(funding=funding))
    kern, _ = _kernel_vs_reference(tmp_path / "s.toml")
    assert kern.liquidations.sum() == 1
    _, ev = run_kernel(bind(prepare(load_scenario(tmp_path / "s.toml"))), events=True)
    assert (int(ev[0]["step"]), int(ev[0]["position"])) == liquidated


_CRASH = [("funding = { rate_per_interval = 0.01, interval_h = 0.5 }", 0.0),  # a multiple of the 1-min step
          ("funding = { rate_per_interval = -0.01, interval_h = 0.5 }", 0.3),  # shorts pay; cross rows
          ("funding = { rate_per_interval = 0.004, interval_h = 0.0123 }", 0.3),  # 44 s: 1 or 2 times a step
          ("funding = { rate_per_interval = -0.006, interval_h = 0.0071 }", 0.2),  # 26 s: 2 or 3 times a step
          ("funding = { rate_per_interval = 0.02, interval_h = 0.123 }", 0.5)]  # 7.4 min: not a multiple


@pytest.mark.parametrize("funding,cross_share", _CRASH)
def test_the_kernel_runs_funding_on_the_synthetic_crash_as_the_reference(tmp_path, funding, cross_share):
    """The bundled synthetic crash (3,000 Binance positions) with a funding rate large enough to liquidate extra
    positions at funding times (or, received, to save some): ledger, events and per-position counts agree."""
    src = (data_dir() / "scenarios" / "perp_binance_btc_synthetic_crash_3h.toml").read_text()
    anchor, book = 'adapter = "binance_usdm"\n', "long_share = 0.65\n"
    assert anchor in src and book in src
    src = src.replace(anchor, anchor + funding + "\n", 1).replace(book, book + f"cross_share = {cross_share}\n", 1)
    (tmp_path / "s.toml").write_text(src)
    kern, _ = _kernel_vs_reference(tmp_path / "s.toml", 2)
    (tmp_path / "off.toml").write_text(src.replace(funding + "\n", ""))
    off, _ = run_kernel(bind(prepare(load_scenario(tmp_path / "off.toml").with_overrides(paths=2))))
    assert not np.array_equal(off.liquidations, kern.liquidations)  # funding changes what is liquidated
    assert kern.perp_funding_paid_usd.sum() > 0


@pytest.mark.parametrize("k", [2.0, 10.0])
def test_funding_under_a_stress_margin_runs_on_the_kernel_as_the_reference(tmp_path, k):
    """Funding moves the liquidation prices of both lane orders, the x1 one and the one under stress (its shift
    reads the stressed tier rates; at k = 10 a tier's k x rate reaches 1 and the lane is tested row by row):
    with both on, the synthetic crash's ledger, events and per-position counts agree with the reference."""
    src = (data_dir() / "scenarios" / "perp_binance_btc_synthetic_crash_3h.toml").read_text()
    anchor, book = 'params = { insurance_fund_usd = 2.0e6 }\n', "long_share = 0.65\n"
    assert anchor in src and book in src
    params = ('params = { insurance_fund_usd = 2.0e6, "breakers.stress_move" = 0.02, "breakers.stress_window_s" = 300, '
              f'"breakers.stress_margin_multiplier" = {k} }}\n'
              "funding = { rate_per_interval = 0.004, interval_h = 0.0123 }\n")
    (tmp_path / "s.toml").write_text(src.replace(anchor, params, 1).replace(book, book + "cross_share = 0.3\n", 1))
    kern, _ = _kernel_vs_reference(tmp_path / "s.toml", 2)
    assert kern.perp_funding_paid_usd.sum() > 0 and kern.stress_margin_steps.sum() > 0


def test_bad_funding_tables_are_one_line_errors(tmp_path):
    (tmp_path / "book.csv").write_text("account,venue,market,side,size,entry_price,margin,margin_mode\n"
                                       "a,binance_usdm,BTCUSDT,long,2,60000,20000,isolated\n")
    for table, field in (("funding = { rate_per_interval = 0.5, interval_h = 8 }", "rate_per_interval"),
                         ("funding = { rate_per_interval = 0.0001, interval_h = 0 }", "interval_h"),
                         ("funding = { rate = 0.0001, interval_h = 8 }", "funding")):
        (tmp_path / "s.toml").write_text(SCENARIO.format(funding=table))
        with pytest.raises(InputError) as e:
            load_scenario(tmp_path / "s.toml")
        assert "\n" not in str(e.value) and field in str(e.value)
