"""Scenario funding on a perp venue: longs pay shorts ``rate x notional`` through margin at each funding time;
the transfer is conserved (what the book's payers pay, its receivers get, plus the counterparty outside the
book when its sides do not match)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.engine import evaluate, prepare
from optimizer.errors import InputError
from optimizer.scenario.config import load_scenario
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


def _run(tmp_path, funding: str, rows: str):
    (tmp_path / "book.csv").write_text("account,venue,market,side,size,entry_price,margin,margin_mode\n" + rows)
    (tmp_path / "s.toml").write_text(SCENARIO.format(funding=funding))
    return evaluate(prepare(load_scenario(tmp_path / "s.toml")), engine="reference").raw


def test_a_balanced_book_transfers_funding_from_longs_to_shorts_at_each_funding_time(tmp_path):
    rows = ("a,binance_usdm,BTCUSDT,long,2,60000,20000,isolated\n"
            "b,binance_usdm,BTCUSDT,short,1.5,60000,20000,isolated\n"
            "c,binance_usdm,BTCUSDT,short,0.5,60000,20000,isolated\n")
    r = _run(tmp_path, "funding = { rate_per_interval = 0.0001, interval_h = 0.5 }", rows)
    # 1.5 h at 5 min: funding times at 0.5, 1 and 1.5 h; the long pays 1e-4 x $120k three times
    assert float(r.perp_funding_paid_usd.sum()) == pytest.approx(3 * 1e-4 * 120_000, rel=1e-12)
    assert float(r.perp_funding_received_usd.sum()) == pytest.approx(float(r.perp_funding_paid_usd.sum()), rel=1e-12)
    assert float(r.perp_funding_external_usd.sum()) == pytest.approx(0.0, abs=1e-9)
    # an imbalanced book pays the rest of the venue the difference; without the table nothing moves
    r = _run(tmp_path, "funding = { rate_per_interval = -0.0002, interval_h = 8 }", rows.replace("1.5,", "1.0,"))
    assert float(r.perp_funding_paid_usd.sum()) == 0  # 1.5 h: no 8-hour funding time
    r = _run(tmp_path, "funding = { rate_per_interval = -0.0002, interval_h = 0.25 }", rows.replace("1.5,", "1.0,"))
    # a negative rate: shorts ($90k) pay longs ($120k) six times; the book receives 6 x 2e-4 x $30k from outside
    assert float(r.perp_funding_paid_usd.sum()) == pytest.approx(6 * 2e-4 * 90_000, rel=1e-12)
    assert float(r.perp_funding_external_usd.sum()) == pytest.approx(-6 * 2e-4 * 30_000, rel=1e-12)
    r = _run(tmp_path, "", rows)
    assert float(np.abs(r.perp_funding_paid_usd).sum()) == 0


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
