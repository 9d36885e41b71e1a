"""The loss waterfall and the ADL policies: value conservation, exact coverage, reported overshoot."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.snapshots import load_adapter
from protocols import (
    PERP_ADAPTERS,
    adl_pro_rata,
    adl_queue,
    apply_adl,
    deficits_by_group,
    loss_waterfall,
    waterfall_of,
    winner_groups,
)
from protocols._perp_losses import AdlOutcome

money = st.floats(0, 1e7, allow_nan=False, allow_infinity=False)


@settings(max_examples=60)
@given(loss=st.lists(money, min_size=1, max_size=30), data=st.data(), fund=money, backstop=money)
def test_waterfall_conserves_value_in_settlement_order(loss, data, fund, backstop):
    k = len(loss)
    margin = np.array(data.draw(st.lists(money, min_size=k, max_size=k)))
    fee = np.array(data.draw(st.lists(st.floats(0, 1e4), min_size=k, max_size=k)))
    eligible = np.array(data.draw(st.lists(st.booleans(), min_size=k, max_size=k)))
    loss = np.array(loss)
    wf = loss_waterfall(loss, margin, fund, backstop, fee_income_usd=fee, insurance_eligible=eligible)
    np.testing.assert_allclose(wf.from_margin_usd + wf.from_insurance_usd + wf.from_backstop_usd + wf.to_adl_usd,
                               loss, rtol=1e-12, atol=1e-6)
    for part in (wf.from_margin_usd, wf.from_insurance_usd, wf.from_backstop_usd, wf.to_adl_usd):
        assert np.all(part >= -1e-9)
    assert np.all(wf.from_insurance_usd[~eligible] == 0)
    assert abs(wf.insurance_fund_after_usd - (fund + fee.sum() - wf.from_insurance_usd.sum())) <= 1e-6
    assert wf.insurance_fund_after_usd >= -1e-6 and wf.backstop_after_usd >= -1e-6
    # sequential reference: each event settles against the fund as it stands after the previous one
    bal, bs = fund, backstop
    for i in range(k):
        deficit = loss[i] - min(loss[i], margin[i])
        bal += fee[i]
        take = min(deficit, bal) if eligible[i] else 0.0
        bal -= take
        rest = deficit - take
        b = min(rest, bs)
        bs -= b
        assert wf.from_insurance_usd[i] == pytest.approx(take, rel=1e-9, abs=1e-6)
        assert wf.from_backstop_usd[i] == pytest.approx(b, rel=1e-9, abs=1e-6)
        assert wf.to_adl_usd[i] == pytest.approx(rest - b, rel=1e-9, abs=1e-6)


def test_waterfall_layers_in_order():
    wf = loss_waterfall(np.array([150.0, 80.0, 500.0]), np.array([100.0, 100.0, 100.0]), 30.0, 200.0)
    np.testing.assert_allclose(wf.from_margin_usd, [100, 80, 100])
    np.testing.assert_allclose(wf.from_insurance_usd, [30, 0, 0])
    np.testing.assert_allclose(wf.from_backstop_usd, [20, 0, 180])
    np.testing.assert_allclose(wf.to_adl_usd, [0, 0, 220])
    assert wf.insurance_fund_after_usd == 0 and wf.backstop_after_usd == 0


winners = st.lists(st.tuples(st.floats(0, 1e6), st.floats(-10, 10)), min_size=1, max_size=40)


@settings(max_examples=80)
@given(w=winners, frac=st.floats(0.01, 0.99))
def test_pro_rata_covers_exactly_the_deficit(w, frac):
    u = np.array([x for x, _ in w])
    if u.sum() <= 0:
        return
    deficit = np.array([frac * u.sum()])
    out = adl_pro_rata(deficit, np.zeros(len(u), dtype=int), u)
    assert out.covered_usd[0] == pytest.approx(deficit[0], rel=1e-12)
    assert out.seized_usd[0] == pytest.approx(deficit[0], rel=1e-12)
    assert out.overshoot_usd[0] <= 1e-9 * deficit[0] and out.uncovered_usd[0] <= 1e-9 * deficit[0]
    assert np.all(out.haircut_usd <= u * (1 + 1e-12)) and not out.closed.any()
    # every winner loses the same fraction of its profit
    live = u > 0
    np.testing.assert_allclose(out.haircut_usd[live] / u[live], frac, rtol=1e-9)


@settings(max_examples=80)
@given(w=winners, frac=st.floats(0.01, 0.99))
def test_queue_closes_whole_positions_in_rank_order_and_reports_the_overshoot(w, frac):
    u = np.array([x for x, _ in w])
    score = np.array([s for _, s in w])
    if u.sum() <= 0:
        return
    deficit = np.array([frac * u.sum()])
    out = adl_queue(deficit, np.zeros(len(u), dtype=int), u, score, size_base=np.ones(len(u)))
    assert out.covered_usd[0] == pytest.approx(deficit[0], rel=1e-12)
    assert out.overshoot_usd[0] >= 0
    np.testing.assert_allclose(out.seized_usd, out.covered_usd + out.overshoot_usd, rtol=1e-12)
    # closed winners give up all their profit; the last one closed is what tips the sum over the deficit
    np.testing.assert_array_equal(out.haircut_usd[out.closed], u[out.closed])
    assert np.all(out.haircut_usd[~out.closed] == 0)
    np.testing.assert_array_equal(out.closed_size_base, out.closed.astype(float))
    order = np.lexsort((np.arange(len(u)), -score))
    order = order[u[order] > 0]
    taken = out.closed[order]
    assert taken[0] and (not taken.any() or taken.sum() == np.argmin(np.append(taken, False)))
    ahead = np.cumsum(u[order]) - u[order]
    np.testing.assert_array_equal(taken, ahead < deficit[0])


def test_queue_overshoots_where_pro_rata_does_not():
    u = np.array([60.0, 50.0, 40.0])
    score = np.array([3.0, 2.0, 1.0])
    d = np.array([70.0])
    q = adl_queue(d, np.zeros(3, dtype=int), u, score)
    p = adl_pro_rata(d, np.zeros(3, dtype=int), u)
    np.testing.assert_array_equal(q.closed, [True, True, False])
    assert q.seized_usd[0] == 110.0 and q.overshoot_usd[0] == 40.0 and q.covered_usd[0] == 70.0
    assert p.overshoot_usd[0] == 0.0 and p.seized_usd[0] == pytest.approx(70.0, rel=1e-15)
    np.testing.assert_allclose(p.haircut_usd, u * 70.0 / 150.0)


def test_not_enough_winners_leaves_the_rest_uncovered():
    u = np.array([10.0, 0.0, -5.0])
    for out in (adl_queue(np.array([25.0]), np.zeros(3, dtype=int), u, np.zeros(3)),
                adl_pro_rata(np.array([25.0]), np.zeros(3, dtype=int), u)):
        assert out.covered_usd[0] == 10.0 and out.uncovered_usd[0] == 15.0 and out.overshoot_usd[0] == 0.0


def test_groups_are_independent():
    # group 0: deficit 5 covered by two winners; group 1: deficit 0 touches nobody; -1 never participates
    g = np.array([0, 0, 1, -1])
    u = np.array([4.0, 4.0, 100.0, 100.0])
    q = adl_queue(np.array([5.0, 0.0]), g, u, np.array([1.0, 0.0, 9.0, 9.0]))
    np.testing.assert_array_equal(q.closed, [True, True, False, False])
    p = adl_pro_rata(np.array([5.0, 0.0]), g, u)
    np.testing.assert_allclose(p.haircut_usd, [2.5, 2.5, 0.0, 0.0])


@pytest.mark.parametrize("name", sorted(PERP_ADAPTERS))
@pytest.mark.parametrize("policy", ["queue", "pro_rata"])
def test_liquidation_waterfall_and_adl_conserve_value_end_to_end(name, policy):
    """Liquidate a stressed book with bad fills, run the waterfall, cover what is left by ADL of the
    opposite side: the venue's money (pools + funds) changes only by what was uncovered."""
    from test_perp_contract import make_book

    adapter = load_adapter(name)
    book, mark = make_book(adapter, np.random.default_rng(5), 400)
    fill = mark * np.where(book.side > 0, 0.9, 1.1)
    out = adapter.liquidate(book, mark, fill_price_usd=fill)
    fund = 5_000.0
    wf = waterfall_of(out, fund, 2_000.0, fees_to_insurance=adapter.fee_recipient == "insurance_fund")
    np.testing.assert_allclose(wf.deficit_usd, out.deficit_usd, rtol=1e-12, atol=1e-9)
    after = out.book
    group, n_groups = winner_groups(after)
    need = deficits_by_group(after, wf.to_adl_usd)
    assert need.shape == (n_groups,)
    capacity = np.where(after.size_base > 0, np.maximum(after.unrealized_pnl_usd(mark), 0.0), 0.0)
    if policy == "queue":
        adl = adl_queue(need, group, capacity, adapter.adl_score(after, mark), after.size_base)
    else:
        adl = adl_pro_rata(need, group, capacity, after.size_base)
    assert isinstance(adl, AdlOutcome)
    np.testing.assert_allclose(adl.covered_usd + adl.uncovered_usd, need, rtol=1e-12, atol=1e-9)
    final = apply_adl(after, adl, mark)
    # trader-side equity at the mark falls by exactly what ADL seized
    equity = lambda b: b.margin_usd.sum() + b.cross_collateral_usd.sum() + b.unrealized_pnl_usd(mark).sum()
    assert equity(final) == pytest.approx(equity(after) - adl.seized_usd.sum(), rel=1e-9, abs=1e-6)
    if policy == "pro_rata":
        assert adl.overshoot_usd.sum() <= 1e-9 * max(need.sum(), 1.0)
    # the whole loss beyond margin was placed: insurance + backstop + ADL + uncovered
    placed = wf.from_insurance_usd.sum() + wf.from_backstop_usd.sum() + adl.covered_usd.sum() + adl.uncovered_usd.sum()
    assert placed == pytest.approx(out.deficit_usd.sum(), rel=1e-9, abs=1e-6)
