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
