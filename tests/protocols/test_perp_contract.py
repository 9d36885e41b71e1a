"""The contract every perp adapter passes (parametrised over ``protocols.PERP_ADAPTERS``).

Closed-form liquidation prices equal the price at which the venue's margin rule first flags the
account; one liquidation step conserves value; parameters round-trip; bounds and invariants are
enforced with messages naming the parameter and the rule.
"""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.snapshots import load_adapter
from protocols import CROSS, ISOLATED, PERP_ADAPTERS, InvalidParameters, OpenInterest, PerpBook
from protocols._perp import first_row_per_account

N = 600
REL = 1e-9
PRICE = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "XRP": 0.6}


def _price(adapter, i):
    return PRICE.get(adapter.base_assets[i], 100.0)


def make_book(adapter, rng, n, cross_share=0.3):
    """A random book straddling the liquidation boundary: tiers from $1k to $300M of notional,
    leverage from 1.2x to the venue's maximum, isolated positions and two-market cross accounts."""
    m = len(adapter.markets)
    market = rng.integers(0, m, n)
    side = rng.choice([-1, 1], n)
    ref = np.array([_price(adapter, i) for i in range(m)])
    entry = ref[market] * np.exp(rng.normal(0, 0.03, n))
    notional = np.exp(rng.uniform(np.log(1e3), np.log(3e8), n))
    size = notional / entry
    max_lev = np.nan_to_num(adapter.max_leverage(market, side, notional), nan=1.5)
    lev = 1.2 + rng.uniform(0, 1, n) * (np.minimum(max_lev, 200.0) - 1.2)
    margin = notional / lev
    cross = (rng.uniform(0, 1, n) < cross_share) if adapter.supports_cross_margin else np.zeros(n, bool)
    # cross rows pair up into accounts holding one position in each of two different markets
    account = np.arange(n)
    idx = np.flatnonzero(cross)
    for a, b in zip(idx[0::2], idx[1::2], strict=False):
        if market[a] != market[b]:
            account[b] = account[a]
    mode = np.where(cross, CROSS, ISOLATED)
    coll = np.zeros(n)
    np.add.at(coll, account[cross], margin[cross])
    book = PerpBook(tuple(adapter.markets), market, side, size, entry, np.where(cross, 0.0, margin), mode,
                    account, coll)
    mark = ref[market] * np.exp(rng.normal(0, 0.05, n))
    # one mark per market and account: cross rows of an account sit in different markets, so any per-row
    # mark is a consistent market mark for that account
    return book, mark


@pytest.fixture(scope="module", params=sorted(PERP_ADAPTERS))
def case(request):
    adapter = load_adapter(request.param)
    book, mark = make_book(adapter, np.random.default_rng(11), N)
    return adapter, book, mark


def test_factory_book_straddles_the_boundary(case):
    adapter, book, mark = case
    flagged = adapter.liquidatable(book, mark)
    assert 0.1 < flagged.mean() < 0.9
    assert book.is_cross.any() == adapter.supports_cross_margin


def _first_flag_checks(adapter, book, mark, rows):
    """At LP*(1-REL) a long is flagged and at LP*(1+REL) it is not (a short the other way round)."""
    lp = adapter.liquidation_price_usd(book, mark)
    rows = rows & np.isfinite(lp) & (lp > 0)
    assert rows.sum() > 0
    long_ = book.side > 0
    below = np.where(rows, lp * (1 - REL), mark)
    above = np.where(rows, lp * (1 + REL), mark)
    flag_below = adapter.liquidatable(book, below)
    flag_above = adapter.liquidatable(book, above)
    np.testing.assert_array_equal(flag_below[rows], long_[rows])
    np.testing.assert_array_equal(flag_above[rows], ~long_[rows])
    return lp, rows


def test_liquidation_price_is_where_the_margin_rule_first_flags(case):
    adapter, book, mark = case
    # move one position per margin pool at a time (a cross account's other position stays where it is)
    first = first_row_per_account(book, book.size_base > 0)
    lp, rows = _first_flag_checks(adapter, book, mark, first)
    gap = adapter.equity_usd(book, np.where(rows, lp, mark)) - adapter.requirement_usd(book, np.where(rows, lp, mark))
    scale = book.pool_sum(book.notional_usd(np.where(rows, lp, mark)))
    assert np.all(np.abs(gap[rows]) <= 1e-9 * scale[rows])
    second = ~first & book.is_cross & (book.size_base > 0)
    if second.any():
        _first_flag_checks(adapter, book, mark, second)


def test_liquidation_price_conventions_without_a_root(case):
    adapter, book, _ = case
    # a long with margin far above its notional is never liquidated (LP 0); a short always is, at a
    # high enough price (finite LP above the mark)
    one = PerpBook(book.markets, [0, 0], [1, -1], [1.0, 1.0], [100.0, 100.0], [1e6, 1e6],
                   [ISOLATED, ISOLATED], [0, 1], [0.0, 0.0])
    lp = adapter.liquidation_price_usd(one, np.array([100.0, 100.0]))
    assert lp[0] == 0.0 and np.isfinite(lp[1]) and lp[1] > 100.0


@settings(max_examples=40)
@given(data=st.data())
def test_liquidation_price_property_random_side_leverage_margin_tier(data):
    for name in sorted(PERP_ADAPTERS):
        adapter = load_adapter(name)
        m = data.draw(st.integers(0, len(adapter.markets) - 1), label=f"{name} market")
        side = data.draw(st.sampled_from([-1, 1]), label="side")
        entry = _price(adapter, m) * data.draw(st.floats(0.8, 1.25), label="entry factor")
        notional = data.draw(st.floats(1e3, 4e8), label="notional (tier)")
        lev_max = float(np.nan_to_num(adapter.max_leverage(np.array([m]), np.array([side]), np.array([notional])),
                                      nan=1.5)[0])
        lev = data.draw(st.floats(1.0, max(1.0, min(lev_max, 200.0))), label="leverage")
        cross = adapter.supports_cross_margin and data.draw(st.booleans(), label="cross")
        size = notional / entry
        margin = notional / lev
        if cross:
            other = (m + 1) % len(adapter.markets)
            two = other != m
            markets = [m, other] if two else [m]
            book = PerpBook(adapter.markets, markets, [side, -side][: len(markets)],
                            [size, size / 3][: len(markets)], [entry, _price(adapter, other)][: len(markets)],
                            [0.0] * len(markets), [CROSS] * len(markets), [0] * len(markets), [margin])
            mark = np.array([entry, _price(adapter, other) * 1.01][: len(markets)])
        else:
            book = PerpBook(adapter.markets, [m], [side], [size], [entry], [margin], [ISOLATED], [0], [0.0])
            mark = np.array([entry])
        lp = adapter.liquidation_price_usd(book, mark)[0]
        if not (np.isfinite(lp) and lp > 0):
            continue
        probe = mark.copy()
        probe[0] = lp * (1 - REL)
        below = adapter.liquidatable(book, probe)[0]
        probe[0] = lp * (1 + REL)
        above = adapter.liquidatable(book, probe)[0]
        assert below == (side > 0) and above == (side < 0), (name, side, lev, notional, cross, lp)


def test_liquidation_acts_only_on_liquidatable_pools_and_conserves_value(case):
    adapter, book, mark = case
    out = adapter.liquidate(book, mark)
    flagged_pool = book.pool_sum(adapter.liquidatable(book, mark).astype(float)) > 0
    assert out.liquidated.sum() > 0
    assert not out.liquidated[~flagged_pool].any()
    np.testing.assert_array_equal(out.book.size_base[~flagged_pool], book.size_base[~flagged_pool])
    lhs = out.margin_released_usd + out.realized_pnl_usd
    rhs = out.fee_usd + out.returned_to_owner_usd + out.backstop_takeover_usd - out.deficit_usd
    scale = np.maximum(np.abs(out.realized_pnl_usd) + np.abs(out.margin_released_usd), 1.0)
    assert np.all(np.abs(lhs - rhs) <= 1e-9 * scale)
    for k in ("fee_usd", "returned_to_owner_usd", "backstop_takeover_usd", "deficit_usd", "closed_size_base"):
        assert np.all(getattr(out, k) >= 0), k
    bankrupt = out.deficit_usd > 0
    assert np.all(out.fee_usd[bankrupt] == 0) and np.all(out.returned_to_owner_usd[bankrupt] == 0)
    routes = np.abs(out.market_flow_base) + np.abs(out.backstop_size_base) + np.abs(out.offset_size_base)
    np.testing.assert_allclose(routes, out.closed_size_base, rtol=1e-12, atol=0)
    np.testing.assert_allclose(out.book.size_base, book.size_base - out.closed_size_base, rtol=0, atol=1e-12)
    # a liquidated long sells, a liquidated short buys
    assert np.all(out.market_flow_base * book.side <= 0)
    # money on the venue: what the pools hold changes by realised PnL - fees - takeovers + covered deficits
    cash = lambda b: b.margin_usd.sum() + b.cross_collateral_usd.sum()
    moved = (out.realized_pnl_usd - out.fee_usd - out.backstop_takeover_usd + out.deficit_usd).sum()
    assert abs(cash(out.book) - cash(book) - moved) <= 1e-9 * max(cash(book), 1.0)


def test_fill_worse_than_bankruptcy_is_a_deficit(case):
    adapter, book, mark = case
    out = adapter.liquidate(book, mark, fill_price_usd=mark * np.where(book.side > 0, 0.5, 1.5))
    assert (out.deficit_usd > 0).any()
    market = out.market_flow_base != 0
    worse = market & (book.side * (out.fill_price_usd - out.bankruptcy_price_usd) < 0)
    np.testing.assert_allclose(out.deficit_usd[worse],
                               np.abs(out.fill_price_usd - out.bankruptcy_price_usd)[worse]
                               * out.closed_size_base[worse], rtol=1e-9)
    # an ADL offset is never paid by the insurance fund
    assert not out.insurance_eligible[out.offset_size_base != 0].any()


def test_parameters_round_trip(case):
    adapter, _, _ = case
    schema = adapter.schema()
    assert adapter.params == schema.current()
    again = adapter.with_params(adapter.params)
    assert again.params == adapter.params and again is not adapter
    for s in schema.specs:
        assert s.lower <= s.current <= s.upper, s.name
        assert s.unit and s.source and s.as_of, s.name
    assert adapter.family == "perp"


def test_out_of_bounds_values_are_refused_naming_the_parameter(case):
    adapter, _, _ = case
    for spec in adapter.schema().specs[:30]:
        with pytest.raises(InvalidParameters, match=rf"^{spec.name}=.*(outside its bounds|whole number)"):
            adapter.with_params({spec.name: spec.upper + max(1.0, abs(spec.upper))})
        with pytest.raises(InvalidParameters, match=rf"^{spec.name}=.*(outside its bounds|whole number)"):
            adapter.with_params({spec.name: spec.lower - 1.0})


def test_every_invariant_violation_is_refused_with_its_rule(case):
    adapter, _, _ = case
    schema = adapter.schema()
    exercised = set()
    for inv in schema.invariants:
        for name in inv.params:
            spec = schema.spec(name)
            tries = (spec.lower, spec.upper, spec.current / 2, spec.current * 2, spec.current + 1, 0.0, 1.0)
            for v in tries:
                if not (spec.lower <= v <= spec.upper) or (spec.integer and v != int(v)):
                    continue
                if inv.check({**adapter.params, name: v}):
                    continue
                with pytest.raises(InvalidParameters, match=r"breaks '") as err:
                    adapter.with_params({name: v})
                assert any(p in str(err.value) for p in inv.params)
                exercised.add(inv.rule)
                break
            else:
                continue
            break
    rules = {inv.rule for inv in schema.invariants}
    assert rules and exercised == rules, sorted(rules - exercised)


def test_adapters_are_immutable(case):
    adapter, book, mark = case
    before = dict(adapter.params)
    adapter.liquidate(book, mark)
    assert adapter.params == before
    assert not book.size_base.flags.writeable


def test_unknown_market_is_refused(case):
    adapter, _, _ = case
    book = PerpBook(("NOPE-USD",), [0], [1], [1.0], [1.0], [1.0], [ISOLATED], [0], [0.0])
    with pytest.raises(ValueError, match="NOPE-USD"):
        adapter.liquidatable(book, np.array([1.0]))


def test_circuit_breakers_are_perp_data(case):
    from protocols import PerpCircuitBreakers

    adapter, _, _ = case
    assert isinstance(adapter.circuit_breakers(), PerpCircuitBreakers)


def test_health_and_marks_helpers(case):
    adapter, book, mark = case
    h = adapter.health(book, mark)
    flagged = adapter.liquidatable(book, mark)
    open_ = book.size_base > 0
    assert np.all(h[flagged & open_] <= 1.0) and np.all(h[~flagged & open_] >= 1.0)
    m = len(book.markets)
    low, high = np.arange(1.0, m + 1), np.arange(1.0, m + 1) * 10
    adverse = book.adverse_marks(low, high)
    np.testing.assert_array_equal(adverse, np.where(book.side > 0, low[book.market], high[book.market]))
    np.testing.assert_array_equal(book.position_marks(low), low[book.market])
    # initial margin is notional / max leverage, and the max leverage is at least 1
    oi = OpenInterest(np.full(len(adapter.markets), 1e6), np.full(len(adapter.markets), 2e6))
    im = adapter.initial_margin_usd(book, mark, oi)
    lev = adapter.max_leverage(adapter.market_index(book), book.side, book.notional_usd(mark), oi)
    ok = np.isfinite(lev) & open_
    np.testing.assert_allclose(im[ok], book.notional_usd(mark)[ok] / lev[ok], rtol=1e-12)
    assert np.all(lev[ok] >= 1.0)


def test_book_from_rows_and_validation():
    book = PerpBook.from_rows(("BTC", "ETH"), [0, 1, 0], [1, -1, 1], [1.0, 2.0, 3.0], [10.0, 20.0, 30.0],
                              [500.0, 500.0, 7.0], [CROSS, CROSS, ISOLATED], ["0xb", "0xb", "0xa"])
    np.testing.assert_array_equal(book.account, [1, 1, 0])
    np.testing.assert_array_equal(book.cross_collateral_usd, [0.0, 500.0])
    np.testing.assert_array_equal(book.margin_usd, [0.0, 0.0, 7.0])
    np.testing.assert_array_equal(book.pool_collateral_usd(), [500.0, 500.0, 7.0])
    with pytest.raises(ValueError, match="different cross collateral"):
        PerpBook.from_rows(("BTC", "ETH"), [0, 1], [1, 1], [1.0, 1.0], [1.0, 1.0], [5.0, 6.0], [CROSS, CROSS], [0, 0])
    bad = dict(markets=("BTC",), market=[0], side=[1], size_base=[1.0], entry_price_usd=[1.0], margin_usd=[1.0],
               margin_mode=[ISOLATED], account=[0], cross_collateral_usd=[0.0])
    for field, value, message in (("side", [0], "side"), ("size_base", [-1.0], "size_base"),
                                  ("entry_price_usd", [0.0], "entry_price_usd"), ("market", [1], "market index"),
                                  ("margin_mode", [2], "margin_mode"), ("account", [3], "account index")):
        with pytest.raises(ValueError, match=message):
            PerpBook(**{**bad, field: value})
    size = np.array([1.0])
    PerpBook(("BTC",), [0], [1], size, [1.0], [1.0], [ISOLATED], [0], [0.0])
    size[0] = 2.0  # the caller's array stays writeable; the book keeps its own frozen copy
    with pytest.raises(ValueError, match="one-way mode"):
        PerpBook(("BTC",), [0, 0], [1, -1], [1.0, 1.0], [1.0, 1.0], [0.0, 0.0], [CROSS, CROSS], [0, 0], [9.0])
