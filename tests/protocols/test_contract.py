"""The contract every adapter passes (like optuna's sampler/storage suites).

Parametrised over ``protocols.LENDING_ADAPTERS``; each adapter provides ``_factory_<name>.make_book``
(perp venues have their own suite, ``test_perp_contract.py``).
"""

import importlib

import numpy as np
import pytest

from optimizer.snapshots import load_adapter
from protocols import LENDING_ADAPTERS, InvalidParameters, Prices

N = 400


@pytest.fixture(scope="module", params=sorted(LENDING_ADAPTERS))
def case(request):
    adapter = load_adapter(request.param)
    factory = importlib.import_module(f"_factory_{request.param}")
    book, prices = factory.make_book(adapter, np.random.default_rng(7), N)
    return adapter, book, prices


def test_factory_book_straddles_the_boundary(case):
    adapter, book, prices = case
    hf = adapter.health(book, prices)
    assert 0.1 < (hf < 1).mean() < 0.9, "the suite needs both healthy and liquidatable positions"


def test_health_is_monotone_in_each_collateral_price(case):
    adapter, book, prices = case
    base = adapter.health(book, prices)
    for a in range(len(book.collateral_assets)):
        up = np.array(prices.collateral_usd, float, copy=True)
        up[..., a] *= 1.1
        higher = adapter.health(book, Prices(up, prices.debt_usd))
        assert np.all(higher >= base * (1 - 1e-12)), book.collateral_assets[a]
        held = book.collateral_tokens[:, a] > 0
        assert np.all(higher[held & np.isfinite(base)] > base[held & np.isfinite(base)])


def test_liquidation_only_touches_liquidatable_positions(case):
    adapter, book, prices = case
    out = adapter.liquidate(book, prices)
    healthy = ~adapter.liquidatable(book, prices)
    assert not out.liquidated[healthy].any()
    np.testing.assert_array_equal(out.book.collateral_tokens[healthy], book.collateral_tokens[healthy])
    np.testing.assert_array_equal(out.book.debt_tokens[healthy], book.debt_tokens[healthy])
    assert out.liquidated.sum() > 0


def test_liquidation_never_increases_debt_and_seizes_at_most_what_is_there(case):
    adapter, book, prices = case
    out = adapter.liquidate(book, prices)
    assert np.all(out.book.debt_tokens <= book.debt_tokens)
    assert np.all(out.collateral_seized_tokens <= book.collateral_tokens)
    assert np.all(out.book.collateral_tokens >= 0) and np.all(out.book.debt_tokens >= 0)
    np.testing.assert_allclose(out.book.collateral_tokens, book.collateral_tokens - out.collateral_seized_tokens,
                               rtol=1e-12, atol=1e-12)


def test_value_is_conserved(case):
    """seized = repaid + liquidator bonus + protocol fee + returned; debt removed = repaid + bad debt."""
    adapter, book, prices = case
    out = adapter.liquidate(book, prices)
    scale = np.maximum(out.collateral_seized_usd, 1.0)
    lhs = out.collateral_seized_usd
    rhs = out.debt_repaid_usd + out.liquidator_bonus_usd + out.protocol_fee_usd + out.returned_to_owner_usd
    assert np.all(np.abs(lhs - rhs) <= 1e-9 * scale)
    pd = np.broadcast_to(prices.debt_usd, book.debt_tokens.shape)
    removed_usd = ((book.debt_tokens - out.book.debt_tokens) * pd).sum(axis=1)
    np.testing.assert_allclose(removed_usd, out.debt_repaid_usd + out.bad_debt_usd, rtol=1e-9, atol=1e-6)
    seized_usd = (out.collateral_seized_tokens * np.broadcast_to(prices.collateral_usd,
                                                                  book.collateral_tokens.shape)).sum(axis=1)
    np.testing.assert_allclose(seized_usd, out.collateral_seized_usd, rtol=1e-12, atol=1e-9)
    for k in ("debt_repaid_usd", "bad_debt_usd", "protocol_fee_usd", "keeper_incentive_usd",
              "returned_to_owner_usd"):
        assert np.all(getattr(out, k) >= 0), k


def test_liquidation_price_drop_lands_on_health_one(case):
    adapter, book, prices = case
    hf = adapter.health(book, prices)
    a = int(np.argmax((book.collateral_tokens > 0).sum(0)))
    drop = adapter.liquidation_price_drop(book, prices, book.collateral_assets[a])
    ok = np.isfinite(drop) & (drop > 0) & (hf > 1)
    assert ok.sum() > 10
    moved = np.array(prices.collateral_usd, float, copy=True)
    moved = np.broadcast_to(moved, book.collateral_tokens.shape).copy()
    moved[ok, a] = moved[ok, a] * (1 - drop[ok])
    at = adapter.health(book, Prices(moved, prices.debt_usd))
    np.testing.assert_allclose(at[ok], 1.0, rtol=1e-9)


def test_parameters_round_trip(case):
    adapter, _, _ = case
    schema = adapter.schema()
    assert adapter.params == schema.current()
    again = adapter.with_params(adapter.params)
    assert again.params == adapter.params and again is not adapter
    spec = schema.specs[0]
    moved = adapter.with_params({spec.name: spec.current})
    assert moved.params[spec.name] == spec.current
    for s in schema.specs:
        assert s.lower <= s.current <= s.upper, s.name
        assert s.unit, s.name


def test_a_candidate_has_the_schema_its_snapshot_gives(case):
    """with_params reuses the schema it read from the same snapshot: the one a fresh adapter builds."""
    adapter, _, _ = case
    spec = adapter.schema().specs[-1]
    cand = adapter.with_params({spec.name: spec.current}).with_params({})
    fresh = type(adapter)(adapter._snapshot, cand.params)
    assert cand.schema().specs == fresh.schema().specs
    assert [(i.rule, i.params) for i in cand.schema().invariants] == \
        [(i.rule, i.params) for i in fresh.schema().invariants]  # (their checks are closures: compared by name)
    assert cand.params == fresh.params


def test_out_of_bounds_values_are_refused_naming_the_parameter(case):
    adapter, _, _ = case
    for spec in adapter.schema().specs[:25]:
        if np.isfinite(spec.upper):
            with pytest.raises(InvalidParameters, match=rf"^{spec.name}=.*outside its bounds"):
                adapter.with_params({spec.name: spec.upper + max(1.0, abs(spec.upper))})
        with pytest.raises(InvalidParameters, match=rf"^{spec.name}=.*(outside its bounds|whole number)"):
            adapter.with_params({spec.name: spec.lower - 1.0})


def test_every_invariant_violation_is_refused_with_its_rule(case):
    """For each invariant, push one of its parameters to a value that breaks it; the adapter must refuse
    with a message naming a parameter and a rule."""
    adapter, _, _ = case
    schema = adapter.schema()
    exercised = set()
    for inv in schema.invariants:
        for name in inv.params:
            spec = schema.spec(name)
            for v in (spec.lower, spec.upper, spec.current / 2, spec.current * 2, spec.current + 1, 0.0, 1.0):
                if not (spec.lower <= v <= spec.upper) or (spec.integer and v != int(v)):
                    continue
                cand = {**adapter.params, name: v}
                if inv.check(cand):
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
    assert len(exercised) >= max(2, len(rules) // 2), sorted(rules - exercised)


def test_adapters_are_immutable(case):
    adapter, book, prices = case
    before = dict(adapter.params)
    name = adapter.schema().specs[0].name
    adapter.with_params({name: adapter.schema().specs[0].current})
    adapter.liquidate(book, prices)
    assert adapter.params == before


# ------------------------------------------------------------------------------ public venue facts

def test_position_terms_reproduce_health_and_borrow_capacity(case):
    """health = Σ C·P·health_weight / D and borrow capacity = Σ C·P·borrow_weight (per position)."""
    adapter, book, prices = case
    t = adapter.position_terms(book)
    shape = book.collateral_tokens.shape
    for name in ("health_weight", "borrow_weight", "liquidation_bonus", "recovery", "protocol_share", "seizable"):
        assert getattr(t, name).shape == shape, name
    pc = np.broadcast_to(prices.collateral_usd, shape)
    pd = np.broadcast_to(prices.debt_usd, book.debt_tokens.shape)
    value = book.collateral_tokens * pc
    debt = (book.debt_tokens * pd).sum(1)
    with np.errstate(divide="ignore", invalid="ignore"):
        hf = np.where(debt > 0, np.where(t.seizable, value * t.health_weight, 0.0).sum(1) / debt, np.inf)
    np.testing.assert_allclose(hf, adapter.health(book, prices), rtol=1e-12)
    np.testing.assert_allclose(np.where(t.seizable, value * t.borrow_weight, 0.0).sum(1),
                               adapter.borrow_capacity_usd(book, prices), rtol=1e-12, atol=1e-9)
    assert np.all((t.recovery > 0) <= t.seizable) and np.all(t.recovery <= 1.0) and np.all(t.protocol_share <= 1.0)


def test_liquidation_price_is_the_price_where_health_reaches_one(case):
    adapter, book, prices = case
    a = int(np.argmax((book.collateral_tokens > 0).sum(0)))
    asset = book.collateral_assets[a]
    px = adapter.liquidation_price_usd(book, prices, asset)
    hf = adapter.health(book, prices)
    p_now = np.broadcast_to(prices.collateral_usd, book.collateral_tokens.shape)[:, a]
    ok = (px > 0) & (hf > 1)
    assert ok.sum() > 10
    assert np.all(px[hf < 1] == p_now[hf < 1])  # already liquidatable: the current price
    moved = np.broadcast_to(prices.collateral_usd, book.collateral_tokens.shape).copy()
    moved[:, a] = np.where(ok, px, moved[:, a])
    np.testing.assert_allclose(adapter.health(book, Prices(moved, prices.debt_usd))[ok], 1.0, rtol=1e-9)


def test_liquidation_shortfall_is_what_a_full_liquidation_writes_off(case):
    """On positions where one call takes all collateral, the call's bad debt is the shortfall; everywhere the
    shortfall is at least the underwater part and at most the debt."""
    adapter, book, prices = case
    short = adapter.liquidation_shortfall_usd(book, prices)
    pc = np.broadcast_to(prices.collateral_usd, book.collateral_tokens.shape)
    pd = np.broadcast_to(prices.debt_usd, book.debt_tokens.shape)
    coll = (book.collateral_tokens * pc).sum(1)
    debt = (book.debt_tokens * pd).sum(1)
    assert np.all(short >= np.maximum(debt - coll, 0.0) - 1e-6) and np.all(short <= debt + 1e-6)
    out = adapter.liquidate(book, prices)
    emptied = out.liquidated & (out.book.collateral_tokens.sum(1) == 0) & (out.book.debt_tokens.sum(1) == 0) \
        & ((book.collateral_tokens > 0).sum(1) == 1) & ((book.debt_tokens > 0).sum(1) == 1)
    if emptied.any():  # Aave / Comet: one call closed the account (Maker's auction settles at the market)
        np.testing.assert_allclose(out.bad_debt_usd[emptied], short[emptied], rtol=1e-9, atol=1e-6)


def test_venue_facts_name_real_parameters(case):
    adapter, book, _ = case
    names = set(adapter.schema().names)
    fields = {n.rsplit(".", 1)[-1] for n in names}
    assert set(adapter.default_search_fields) <= fields
    assert set(adapter.default_steward_limits) <= fields
    for pair in adapter.liquidation_buffer_pairs:
        assert {pair.lower, pair.upper} <= fields and pair.bps_per_unit > 0
    levers = [adapter.risk_levers(a) for a in book.collateral_assets]
    assert any(lv is not None for lv in levers)
    for a, lv in zip(book.collateral_assets, levers, strict=True):
        if lv is None:
            continue
        assert lv.ltv_param in names and lv.ltv_param.startswith(f"{a}.")
        assert 0.0 <= lv.ltv <= lv.liquidation_threshold + 1e-12 and lv.liquidator_incentive >= 0.0
    assert adapter.risk_levers("NOT_AN_ASSET") is None
    for col in book.collateral_assets:
        assert isinstance(adapter.priced_asset(col), str)
    adapter.check_categories(book.category)
    with pytest.raises(ValueError):
        adapter.check_categories(np.array([987654]))


@pytest.mark.parametrize("name", sorted(__import__("protocols").ADAPTERS))
def test_every_adapter_states_its_bundled_snapshot_and_it_loads(name):
    """The adapter class names its shipped snapshot (no name table outside protocols/); it loads as that adapter."""
    from optimizer.snapshots import data_dir, snapshot_path
    from protocols import ADAPTERS

    cls = ADAPTERS[name]
    assert cls.bundled_snapshot and (data_dir() / cls.bundled_snapshot).is_file()
    assert snapshot_path(name) == data_dir() / cls.bundled_snapshot
    assert type(load_adapter(name)) is cls


def test_held_assets_contain_the_borrowable_and_counted_ones_and_books_of_them_evaluate(case):
    """What an existing position may hold is at least what a new one may; a leg outside the counted set
    (held collateral that does not count) leaves health unchanged."""
    adapter, book, prices = case
    assert set(adapter.collateral_assets) <= set(adapter.held_collateral_assets)
    assert set(adapter.debt_assets) <= set(adapter.held_debt_assets)
    extra = [a for a in adapter.held_collateral_assets if a not in adapter.collateral_assets]
    if not extra:
        return
    a = extra[0]
    wider = type(book)((*book.collateral_assets, a), book.debt_assets,
                       np.c_[book.collateral_tokens, np.full(len(book.collateral_tokens), 1e6)],
                       book.debt_tokens, category=book.category)
    px = Prices(np.r_[prices.collateral_usd, 1.0], prices.debt_usd)
    np.testing.assert_allclose(adapter.health(wider, px), adapter.health(book, prices), rtol=1e-12)


@pytest.mark.parametrize("name", sorted(n for n, c in __import__("protocols").ADAPTERS.items() if c.governance))
def test_governance_vocabulary_names_real_parameters_of_its_adapter(name):
    """Each adapter's governance vocabulary is its own and maps only to fields its schema holds."""
    from protocols import ADAPTERS

    vocab = ADAPTERS[name].governance
    assert vocab.adapter == name and name in vocab.names
    fields = {n.rsplit(".", 1)[-1] for n in load_adapter(name).schema().names}
    mapped = {t.field for t in vocab.terms if t.field is not None and t.modelled}
    assert mapped and mapped <= fields, sorted(mapped - fields)
