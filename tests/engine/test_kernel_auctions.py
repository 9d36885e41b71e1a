"""The kernel's auction rule (optimizer.engine.kernel_auctions) against the adapter and the reference engine.

Per mirrored rule, hypothesis parity against ``protocols.maker`` (the reference engine's rules): the
abacus, ``needs_redo``, ``purchase``, ``take`` at random auction times and prices, and ``bark`` on one-vault
books and on short books barked in order (the adapter's vectorised runs vs the kernel's vault-by-vault
loop). Then whole runs: the kernel equals the reference engine on hand-built vault books (partial barks
under hole/Hole, resets at tail, ClipperMom trips, expensive gas, a thin market, a reaction delay) and on
the bundled Maker scenarios. Exhaustive variants run with ``CASCADE_FULL_TESTS=1``.
"""

from __future__ import annotations

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_maker_engine import BOOK, DROP, P0, scenario

from optimizer.engine import kernel_auctions as ka
from optimizer.engine import prepare
from optimizer.engine.ledger import events_array
from optimizer.engine.model import bind
from optimizer.engine.reference import run_reference
from optimizer.engine.simulate import kernel_unsupported_reason, run, run_kernel
from optimizer.engine.testing import assert_ledgers_match
from optimizer.scenario.config import load_scenario
from optimizer.snapshots import data_dir
from protocols.maker import CALC_TYPES, OK, Auctions, Calc, auction_price, bark, needs_redo, purchase, take

FULL = os.environ.get("CASCADE_FULL_TESTS") == "1"
EXAMPLES = 400 if FULL else 60
HYP = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

usd = st.floats(0.0, 1e7, allow_nan=False)
pos = st.floats(1e-3, 1e7, allow_nan=False)


def _calc(kind: int, cut: float, step_s: float, tau_s: float) -> Calc:
    return Calc(CALC_TYPES[kind], cut=cut, step_s=step_s, tau_s=tau_s)


calcs = st.tuples(st.integers(0, 2), st.floats(0.5, 0.9999), st.floats(1.0, 600.0), st.floats(60.0, 86_400.0))


# ------------------------------------------------------------------------------ per-rule parity


@HYP
@given(calc=calcs, top=pos, dur=st.floats(0.0, 2e5))
def test_abacus_price_equals_the_adapter(calc, top, dur):
    # numba's pow may differ from NumPy's by an ulp for a fractional exponent: prices agree to 1e-14
    assert ka.auction_price(*calc, top, dur) == pytest.approx(float(auction_price(_calc(*calc), top, dur)),
                                                             rel=1e-14, abs=0.0)


@HYP
@given(calc=calcs, tab=usd, lot=usd, top=pos, elapsed=st.floats(0.0, 3e4), tail=st.floats(60.0, 2e4),
       cusp=st.floats(0.05, 0.95))
def test_needs_redo_equals_the_adapter(calc, tab, lot, top, elapsed, tail, cusp):
    now = 1e5
    done, price = ka.needs_redo(tab, lot, top, now - elapsed, now, *calc, tail, cusp)
    d_ref, p_ref = needs_redo(Auctions(tab, lot, top, now - elapsed), _calc(*calc), now, tail_s=tail, cusp=cusp)
    assert done == bool(d_ref[0]) and price == pytest.approx(float(p_ref[0]), rel=1e-14, abs=0.0)


@HYP
@given(tab=pos, lot=pos, price=st.floats(0.0, 1e5), share=st.floats(0.0, 1.5), chost=st.floats(0.0, 1e5))
def test_purchase_equals_the_adapter(tab, lot, price, share, chost):
    amt = lot * share
    owe, slc, ok = ka.purchase(tab, lot, price, amt, chost)
    o_ref, s_ref, ok_ref = purchase(np.array([tab]), np.array([lot]), np.array([price]), np.array([amt]), chost)
    assert ok == bool(ok_ref[0])
    assert (owe, slc) == (float(o_ref[0]), float(s_ref[0]))


@HYP
@given(calc=calcs, tab=pos, lot=pos, top=pos, elapsed=st.floats(0.0, 7200.0), share=st.floats(0.01, 1.2),
       chost=st.floats(0.0, 5e4))
def test_take_at_random_times_and_prices_equals_the_adapter(calc, tab, lot, top, elapsed, share, chost):
    now = 5e4
    a = Auctions(tab, lot, top, now - elapsed)
    tk = take(a, _calc(*calc), now, lot * share, tail_s=1e9, cusp=0.0, chost_dai=chost)
    price = float(tk.price[0])  # the abacus price (compared on its own above): the take's arithmetic here
    ok, owe, slc, ret, digs, tab_after, lot_after = ka.take_auction(tab, lot, price, lot * share, chost)
    assert ok == (int(tk.reason[0]) == OK)
    if ok:
        assert (owe, slc, ret, digs) == (float(tk.owe_dai[0]), float(tk.slice[0]), float(tk.returned[0]),
                                         float(tk.digs_dai[0]))
        assert (tab_after, lot_after) == (float(tk.auctions.tab[0]), float(tk.auctions.lot[0]))


def _kernel_bark_in_order(ink, art, ilk, chop, dust, hole, Hole, dirt0, Dirt0):
    dirt, Dirt = np.array(dirt0, float), float(Dirt0)
    out = []
    for x in range(len(ink)):
        i = ilk[x]
        ok, dart, dink, tab, dirt_i, Dirt = ka.bark_vault(ink[x], art[x], chop[i], dust[i], hole[i], dirt[i], Hole,
                                                           Dirt)
        dirt[i] = dirt_i
        out.append((ok, dart, dink, tab))
    return out, dirt, Dirt


vault = st.tuples(st.floats(0.0, 1e4), st.floats(0.0, 2e6), st.integers(0, 1))


@HYP
@given(v=vault, chop=st.floats(1.0, 1.3), dust=st.floats(0.0, 5e4), hole=st.floats(0.0, 3e6),
       Hole=st.floats(0.0, 4e6), dirt=st.floats(0.0, 3e6), Dirt=st.floats(0.0, 4e6))
def test_bark_of_one_vault_equals_the_adapter(v, chop, dust, hole, Hole, dirt, Dirt):
    ink, art, _ = v
    b = bark(np.array([ink]), np.array([art]), np.array([0]), chop=np.array([chop]), dust_dai=np.array([dust]),
             hole_dai=np.array([hole]), Hole_dai=Hole, dirt_dai=np.array([dirt]), Dirt_dai=Dirt)
    ok, dart, dink, tab, dirt_after, Dirt_after = ka.bark_vault(ink, art, chop, dust, hole, dirt, Hole, Dirt)
    assert ok == (int(b.reason[0]) == OK)
    assert (dart, dink, tab) == (float(b.dart[0]), float(b.dink[0]), float(b.tab_dai[0]))
    assert (dirt_after, Dirt_after) == (float(b.dirt_dai[0]), float(b.Dirt_dai))


@HYP
@given(vs=st.lists(vault, min_size=2, max_size=12), chop=st.floats(1.0, 1.2), dust=st.floats(0.0, 2e4),
       hole=st.tuples(st.floats(1e5, 5e6), st.floats(1e5, 5e6)), Hole=st.floats(2e5, 8e6))
def test_barks_in_book_order_equal_the_adapters_runs(vs, chop, dust, hole, Hole):
    """The adapter barks a book in vectorised runs; the kernel one vault after another: same barks."""
    ink, art, ilk = (np.array(c) for c in zip(*vs, strict=True))
    chops, dusts, holes = np.array([chop, chop * 1.01]), np.array([dust, dust / 2]), np.array(hole)
    b = bark(ink, art, ilk, chop=chops, dust_dai=dusts, hole_dai=holes, Hole_dai=Hole)
    out, dirt, Dirt = _kernel_bark_in_order(ink, art, ilk, chops, dusts, holes, Hole, [0.0, 0.0], 0.0)
    for x, (ok, dart, dink, tab) in enumerate(out):
        assert ok == (int(b.reason[x]) == OK), x
        np.testing.assert_allclose([dart, dink, tab], [b.dart[x], b.dink[x], b.tab_dai[x]], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(dirt, b.dirt_dai, rtol=1e-12, atol=1e-6)
    assert Dirt == pytest.approx(float(b.Dirt_dai), rel=1e-12, abs=1e-6)


# ------------------------------------------------------------------------------ whole runs vs the reference


def assert_engines_equal(bound, events=True):
    assert kernel_unsupported_reason(bound) is None
    ev_ref: list[tuple] = []
    ref = run_reference(bound, events=ev_ref if events else None)
    kern, ev = run_kernel(bound, events=events)
    assert_ledgers_match(kern, ref, 1e-9, 1e-6)
    if events:
        er = events_array(ev_ref)
        key = ("path", "step", "protocol", "position", "collateral")
        assert np.array_equal(np.sort(ev[list(key)], order=list(key)), np.sort(er[list(key)], order=list(key)))
        order_k = np.argsort(ev, order=list(key))
        order_r = np.argsort(er, order=list(key))
        for name in ("debt_repaid_usd", "collateral_seized_usd", "bonus_usd", "protocol_fee_usd", "bad_debt_usd",
                     "price"):
            np.testing.assert_allclose(ev[name][order_k], er[name][order_r], rtol=1e-9, atol=1e-6, err_msg=name)
    return kern, ref


def _book(n: int, seed: int, cr=(1.5, 2.2), ilks=("ETH-A",)):
    rng = np.random.default_rng(seed)
    coll = rng.lognormal(np.log(300), 1.0, n)
    ratio = rng.uniform(*cr, n)
    return [(f"v{i}", float(c), float(c * P0 / r), ilks[i % len(ilks)]) for i, (c, r) in
            enumerate(zip(coll, ratio, strict=True))]


THIN = {"model": "sqrt", "daily_volume_usd": 1e6, "daily_sigma": 0.1, "y": 1.0, "recovery_half_life_min": 60}
GBM = 'model = "gbm"\nsigma_annual = 3.0\nshocks = [{ at_h = 1.0, drop = 0.25 }]'

CASES = {
    # hole binds: partial barks wait for room that takes free; thin market, call cap, bad debt
    "hole_limited_thin_market": dict(book=_book(40, 3), shocks=((0.1, 0.35), (2.0, 0.2)), liquidity=THIN,
                                     max_calls=5, horizon_h=8.0, params={"ETH-A.hole_dai": 400_000}),
    # Hole (venue-wide) binds across two ilks with their own abacus step
    "Hole_limited_two_ilks": dict(book=_book(30, 4, ilks=("ETH-A", "ETH-B")), shocks=((0.1, 0.4),), liquidity=THIN,
                                  max_calls=4, horizon_h=6.0, params={"Hole_dai": 500_000}),
    # nobody takes (gas): resets at tail, keeper incentives, inventory at the horizon
    "resets_at_tail": dict(book=BOOK, gas_gwei=1e9),
    # ClipperMom trips on a 60 % hour: no kicks or redo after it, takes go on
    "breaker_trips": dict(book=[("v1", 1000.0, 50_000.0, "ETH-A"), ("v4", 1000.0, 30_000.0, "ETH-A")],
                          shocks=((0.1, DROP), (1.25, 0.60)), gas_gwei=1.0,
                          params={"ETH-A.cusp": 0.3, "ETH-A.tail_s": 14_400}),
    # random paths, a reaction delay, several paths through the parallel chunks
    "gbm_paths_delay": dict(book=_book(60, 5, cr=(1.5, 2.5)), eth_model=GBM, paths=4, horizon_h=8.0,
                            liquidity={**THIN, "daily_volume_usd": 5e7}, delay=1),
}


def _bound(tmp_path, case: dict):
    case = dict(case)
    delay = case.pop("delay", 0)
    book = case.pop("book")
    path = scenario(tmp_path, book=[b[:3] for b in book], **case)
    if any(len(b) > 3 for b in book):  # the ilk column of each vault
        rows = ["account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount"]
        rows += [f"{b[0]},maker,{b[3] if len(b) > 3 else 'ETH-A'},{b[1]},DAI,{b[2]}" for b in book]
        (tmp_path / "book.csv").write_text("\n".join(rows) + "\n")
    if delay:
        text = path.read_text().replace("[liquidators]", f"[liquidators]\nreaction_delay_steps = {delay}")
        path.write_text(text)
    return bind(prepare(load_scenario(path)))


@pytest.mark.parametrize("name", list(CASES))
def test_kernel_equals_reference_on_vault_books(tmp_path, name):
    kern, _ = assert_engines_equal(_bound(tmp_path, CASES[name]))
    assert kern.liquidations.sum() > 0


def test_auction_table_overflow_runs_again_with_a_larger_table(tmp_path, monkeypatch):
    bound = _bound(tmp_path, CASES["hole_limited_thin_market"])
    expected, _ = run_kernel(bound)
    import importlib

    sim = importlib.import_module("optimizer.engine.simulate")
    monkeypatch.setattr(sim, "default_capacity", lambda au: 1)  # one auction per path: overflows at once
    got, _ = run_kernel(bound)
    assert expected.liquidations.sum() > 4
    for name in ("liquidations", "debt_repaid_usd", "keeper_incentive_usd", "inventory_usd"):
        np.testing.assert_array_equal(got[name], expected[name], err_msg=name)


def test_auto_runs_maker_on_the_kernel(tmp_path):
    bound = _bound(tmp_path, CASES["resets_at_tail"])
    _, _, engine = run(bound)
    assert engine == "kernel"


@pytest.mark.parametrize("name", ["maker_eth_a_black_thursday", "maker_wbtc_vaults_24h"])
def test_kernel_equals_reference_on_the_bundled_maker_scenarios(name):
    sc = load_scenario(data_dir() / "scenarios" / f"{name}.toml")
    if not FULL:
        sc = sc.with_overrides(paths=min(sc.paths, 6))
    kern, _ = assert_engines_equal(bind(prepare(sc)))
    assert kern.liquidations.sum() > 100
    assert kern.keeper_incentive_usd.sum() > 0
