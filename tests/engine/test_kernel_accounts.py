"""The fast kernel on accounts of several collaterals and debts: the same results as the reference engine.

End to end (kernel vs reference on the same paths): the real Aave v3 wstETH book, multi-asset Aave books
with eModes and a paused asset, multi-asset Aave v2 books (an inactive reserve, no deficit booking),
multi-collateral Comet accounts, both venues sharing the market. Per mirrored rule, a hypothesis parity test
on one-row books: the kernel's health, Aave v3 and v2 calls and Comet absorb against the adapters' own
``health`` / ``liquidate``.
"""

import json
import math
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optimizer.engine import bind, prepare
from optimizer.engine.kernel_rules import (
    aave_call,
    absorb,
    account_health,
    account_key,
    group_ratio,
    health_heap,
    health_heap_pop,
    order_by_health,
)
from optimizer.engine.reference import run_reference
from optimizer.engine.simulate import build_kernel_inputs, kernel_unsupported_reason, run_kernel
from optimizer.engine.testing import assert_ledgers_match
from optimizer.scenario.config import load_scenario
from optimizer.snapshots import data_dir, load_adapter
from protocols import Book, Prices

FULL = os.environ.get("CASCADE_FULL_TESTS") == "1"
RTOL, ATOL = 1e-9, 1e-6


def _agree(bound, min_liqs: int = 10) -> None:
    assert kernel_unsupported_reason(bound) is None
    kern, ev_k = run_kernel(bound, events=True)
    events_r: list[tuple] = []
    ref = run_reference(bound, events=events_r)
    assert ref.liquidations.sum() >= min_liqs, "the case must exercise liquidations"
    assert_ledgers_match(kern, ref, RTOL, ATOL)
    assert ev_k is not None
    key_k = sorted(tuple(int(x) for x in e.tolist()[:5]) for e in ev_k)  # path, step, venue, position, column
    key_r = sorted(tuple(int(x) for x in e[:5]) for e in events_r)
    assert key_k == key_r


# ------------------------------------------------------------------------------ end to end

def test_real_wsteth_book_runs_on_the_kernel_and_matches_the_reference(tmp_path):
    """The bundled real book (eMode loops, several collaterals and debts): kernel == reference."""
    src = data_dir() / "scenarios" / "aave_v3_wsteth_book_2023-06-19.toml"
    text = src.read_text().replace("paths = 100", "paths = 2").replace("horizon_h = 24", "horizon_h = 12")
    text = text.replace('path = "books/', f'path = "{data_dir()}/books/').replace(
        'snapshot = "protocols/', f'snapshot = "{data_dir()}/protocols/')
    # a harder fall than the bundled one so that the eMode loops and the mixed accounts both liquidate
    text = text.replace("drop = 0.10", "drop = 0.25").replace("drop = 0.145", "drop = 0.32")
    (tmp_path / "s.toml").write_text(text)
    bound = bind(prepare(load_scenario(tmp_path / "s.toml")))
    book = bound.books[0].book
    assert ((book.collateral_tokens > 0).sum(1) > 1).sum() > 50, "the real book has multi-collateral accounts"
    _agree(bound, min_liqs=40)


_SCEN = """
[scenario]
name = "kernel-accounts"
horizon_h = {horizon_h}
step_min = 10
paths = {paths}
seed = {seed}

[assets.WETH]
price_usd = 3000
model = "merton"
sigma_annual = 1.0
jump_intensity_per_day = 6.0
jump_mean = -0.05
jump_std = 0.05
shocks = [{{ at_h = 1.0, drop = 0.2 }}]
[assets.WETH.liquidity]
model = "sqrt"
daily_volume_usd = 2e8
daily_sigma = 0.045
recovery_half_life_min = 30

[assets.wstETH]
price_usd = 3400
model = "merton"
sigma_annual = 1.0
jump_intensity_per_day = 6.0
jump_mean = -0.05
jump_std = 0.05
shocks = [{{ at_h = 1.0, drop = 0.24 }}]
[assets.wstETH.liquidity]
model = "sqrt"
daily_volume_usd = 5e7
daily_sigma = 0.045
recovery_half_life_min = 30

[assets.WBTC]
price_usd = 60000
model = "gbm"
sigma_annual = 0.8
shocks = [{{ at_h = 1.5, drop = 0.15 }}]
[assets.WBTC.liquidity]
model = "sqrt"
daily_volume_usd = 1e8
daily_sigma = 0.04
recovery_half_life_min = 30

[assets.USDC]
price_usd = 1.0
model = "constant"

[correlation]
assets = ["WETH", "wstETH", "WBTC"]
matrix = [[1.0, 0.95, 0.6], [0.95, 1.0, 0.6], [0.6, 0.6, 1.0]]

[liquidators]
gas_per_call = 400000
gas_gwei = {gas_gwei}
gas_token = "WETH"
max_calls_per_step = {max_calls}
reaction_delay_steps = {delay}

[oracle]
lag_steps = {lag}
"""

_PRICES = {"WETH": 3000.0, "wstETH": 3400.0, "WBTC": 60000.0, "USDC": 1.0}


def _aave_book(n: int, seed: int) -> str:
    """Aave accounts with 1-4 collaterals and 1-2 debts, a third in eMode 1 (ETH-correlated)."""
    rng = np.random.default_rng(seed)
    lines = ["account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount,emode"]
    for i in range(n):
        emode = int(rng.random() < 0.33)
        colls = ["WETH", "wstETH"] if emode else list(rng.choice(["WETH", "wstETH", "WBTC", "USDC"],
                                                                  rng.integers(1, 5), replace=False))
        debts = ["WETH"] if emode else list(rng.choice(["USDC", "WETH"], rng.integers(1, 3), replace=False))
        value_usd = float(rng.lognormal(math.log(20000), 1.2)) + 500
        w = rng.dirichlet(np.ones(len(colls)))
        debt_usd = value_usd * (rng.uniform(0.80, 0.91) if emode else rng.uniform(0.55, 0.80))
        wd = rng.dirichlet(np.ones(len(debts)))
        for k in range(max(len(colls), len(debts))):
            c = f"{colls[k]},{value_usd * w[k] / _PRICES[colls[k]]:.10f}" if k < len(colls) else ","
            d = f"{debts[k]},{debt_usd * wd[k] / _PRICES[debts[k]]:.10f}" if k < len(debts) else ","
            lines.append(f"a{i},aave_v3,{c},{d},{emode}")
    return "\n".join(lines) + "\n"


def _comet_book(n: int, seed: int) -> str:
    rng = np.random.default_rng(seed)
    lines = ["account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount"]
    for i in range(n):
        colls = list(rng.choice(["WETH", "wstETH", "WBTC"], rng.integers(1, 4), replace=False))
        value_usd = float(rng.lognormal(math.log(30000), 1.2)) + 500
        w = rng.dirichlet(np.ones(len(colls)))
        debt_usd = value_usd * rng.uniform(0.6, 0.8)
        for k, c in enumerate(colls):
            d = f"USDC,{debt_usd:.6f}" if k == 0 else ","
            lines.append(f"c{i},compound_v3,{c},{value_usd * w[k] / _PRICES[c]:.10f},{d}")
    return "\n".join(lines) + "\n"


def _write(tmp_path, venues=("aave",), paused=(), horizon_h=6, paths=2, seed=7, max_calls=60, delay=0, lag=0,
           n=400, gas_gwei=20.0):
    text = _SCEN.format(horizon_h=horizon_h, paths=paths, seed=seed, max_calls=max_calls, delay=delay, lag=lag,
                        gas_gwei=gas_gwei)
    if "aave" in venues:
        (tmp_path / "aave.csv").write_text(_aave_book(n, seed))
        text += '\n[[protocols]]\nadapter = "aave_v3"\n'
        if paused:
            snap = json.loads((data_dir() / "protocols" / "aave_v3_ethereum_core.json").read_text())
            for a in paused:
                snap["assets"][a]["paused"] = True
            (tmp_path / "aave.json").write_text(json.dumps(snap))
            text += 'snapshot = "aave.json"\n'
        text += '[protocols.book]\nkind = "csv"\npath = "aave.csv"\n'
    if "comet" in venues:
        (tmp_path / "comet.csv").write_text(_comet_book(n, seed + 1))
        text += '\n[[protocols]]\nadapter = "compound_v3"\nreserves_usd = 1e6\n'
        text += '[protocols.book]\nkind = "csv"\npath = "comet.csv"\n'
    (tmp_path / "s.toml").write_text(text)
    return bind(prepare(load_scenario(tmp_path / "s.toml")))


def _aave_v2_book(n: int, seed: int) -> str:
    """Aave v2 accounts with 1-3 collaterals and 1-3 debts (USDT debt: a borrow-only reserve), some close to
    their liquidation threshold so that a crash takes their last collateral (v2 books no deficit)."""
    rng = np.random.default_rng(seed)
    lines = ["account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount"]
    for i in range(n):
        colls = list(rng.choice(["WETH", "WBTC", "USDC"], rng.integers(1, 4), replace=False))
        debts = list(rng.choice(["USDC", "USDT", "WETH"], rng.integers(1, 4), replace=False))
        value_usd = float(rng.lognormal(math.log(20000), 1.2)) + 500
        w = rng.dirichlet(np.ones(len(colls)))
        debt_usd = value_usd * rng.uniform(0.55, 0.85)
        wd = rng.dirichlet(np.ones(len(debts)))
        for k in range(max(len(colls), len(debts))):
            c = f"{colls[k]},{value_usd * w[k] / _V2_PRICES[colls[k]]:.10f}" if k < len(colls) else ","
            d = f"{debts[k]},{debt_usd * wd[k] / _V2_PRICES[debts[k]]:.10f}" if k < len(debts) else ","
            lines.append(f"v{i},aave_v2,{c},{d}")
    return "\n".join(lines) + "\n"


_V2_PRICES = {**_PRICES, "USDT": 1.0}


def _write_v2(tmp_path, inactive=(), horizon_h=6, paths=2, seed=3, max_calls=60, delay=0, lag=0, n=400,
              gas_gwei=20.0):
    """Aave v2 books (several collaterals and debts) on the scenario above, with USDT for debt."""
    text = _SCEN.format(horizon_h=horizon_h, paths=paths, seed=seed, max_calls=max_calls, delay=delay, lag=lag,
                        gas_gwei=gas_gwei)
    text += '\n[assets.USDT]\nprice_usd = 1.0\nmodel = "constant"\n'
    (tmp_path / "v2.csv").write_text(_aave_v2_book(n, seed))
    text += '\n[[protocols]]\nadapter = "aave_v2"\n'
    if inactive:
        snap = json.loads((data_dir() / "protocols" / "aave_v2_ethereum_2021-05-19.json").read_text())
        for a in inactive:
            snap["assets"][a]["active"] = False
        (tmp_path / "v2.json").write_text(json.dumps(snap))
        text += 'snapshot = "v2.json"\n'
    text += '[protocols.book]\nkind = "csv"\npath = "v2.csv"\n'
    (tmp_path / "s.toml").write_text(text)
    return bind(prepare(load_scenario(tmp_path / "s.toml")))


V2_CASES = {
    "aave_v2_multi": {},
    "aave_v2_inactive_wbtc": {"inactive": ("WBTC",)},
    "aave_v2_cap_binds_costly_gas": {"max_calls": 12, "gas_gwei": 150.0},
    "aave_v2_delay_and_lag": {"delay": 1, "lag": 1},
}


@pytest.mark.parametrize("case", sorted(V2_CASES))
def test_aave_v2_multi_asset_books_kernel_matches_reference(tmp_path, case):
    """Aave v2 on the kernel (close factor of the repaid reserve's debt, no deficit booking): the reference
    engine's liquidations, events, per-account counts and ledger, ``unbacked_debt_usd`` included."""
    bound = _write_v2(tmp_path, **V2_CASES[case])
    _agree(bound)
    kern, _ = run_kernel(bound)
    assert kern.realised_bad_debt_usd.sum() == 0.0 and kern.protocol_fee_usd.sum() == 0.0
    if case == "aave_v2_multi":  # the crash takes some accounts' last collateral: their debt stays open
        assert kern.unbacked_debt_usd.sum() > 0.0
        assert kern.unrealised_bad_debt_usd.sum() > 0.0


CASES = {
    "aave_multi_emode": {},
    "aave_paused_wbtc": {"paused": ("WBTC",)},
    "comet_multi": {"venues": ("comet",)},
    "aave_and_comet_cap_binds": {"venues": ("aave", "comet"), "max_calls": 12},
    "aave_delay_and_lag": {"delay": 1, "lag": 1},
}
DEFAULT_CASES = ("aave_multi_emode", "aave_paused_wbtc", "aave_and_comet_cap_binds")


@pytest.mark.parametrize("case", sorted(CASES) if FULL else DEFAULT_CASES)
def test_multi_asset_books_kernel_matches_reference(tmp_path, case):
    _agree(_write(tmp_path, **CASES[case]))


def test_accounts_waiting_for_gas_are_liquidated_as_the_reference_does(tmp_path):
    """Gas that the bonus of most accounts cannot cover, and a call cap that binds: the kernel's waiting list
    (accounts skipped while their profit bound is below the step's gas, dropped once it is below the rest of
    the path's cheapest gas, multi-asset ones beyond the cap carried to the next step) finds exactly the
    reference engine's liquidations, in which gas keeps accounts from being liquidated."""
    costly = _write(tmp_path, gas_gwei=300.0, max_calls=25, horizon_h=4)
    _agree(costly)
    (tmp_path / "free").mkdir()
    free, _ = run_kernel(_write(tmp_path / "free", gas_gwei=0.0, max_calls=25, horizon_h=4))
    waited, _ = run_kernel(costly)
    assert waited.liquidations.sum() < free.liquidations.sum()


@settings(max_examples=8 if FULL else 3, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(gas_gwei=st.sampled_from([60.0, 150.0, 300.0]), max_calls=st.integers(4, 40), seed=st.integers(0, 40))
def test_waiting_accounts_examined_as_they_come_back_are_liquidated_as_the_reference_does(tmp_path_factory, gas_gwei,
                                                                                       max_calls, seed):
    """Costly gas and a binding cap on books of single-pair and multi-asset accounts: waiting single-pair accounts
    that the step's first round would examine are examined as they come back (a refused or unprofitable one waits
    on without rejoining its heap), multi-asset candidates are taken from a min-heap, and the kernel still finds
    exactly the reference engine's liquidations, events and per-account counts."""
    tmp = tmp_path_factory.mktemp("waiting")
    _agree(_write(tmp, seed=seed, gas_gwei=gas_gwei, max_calls=max_calls, horizon_h=4, n=250), min_liqs=1)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.0, 0.5, 0.7, 0.7000000000000001, 0.99]) | st.floats(0.0, 1.0),
                          st.integers(0, 80)), max_size=70, unique_by=lambda x: x[1]))
def test_candidate_heap_takes_candidates_in_the_order_of_a_full_sort(cands):
    """The merge's min-heap of multi-asset candidates gives them in (health, book row) order, ties included."""
    hf = np.array([c[0] for c in cands], np.float64)
    rows = np.array([c[1] for c in cands], np.int64)
    n = len(cands)
    idx = np.empty(max(n, 1), np.int64)
    m = health_heap(idx, hf, rows, n)
    taken = []
    while m > 0:
        taken.append(int(idx[0]))
        m = health_heap_pop(idx, hf, rows, m)
    assert taken == [int(x) for x in order_by_health(hf, rows, n)]


def test_paused_asset_is_never_seized_or_repaid(tmp_path):
    bound = _write(tmp_path, paused=("WBTC",))
    _, ev = run_kernel(bound, events=True)
    book = bound.books[0].book
    wbtc = book.collateral_assets.index("WBTC")
    assert ev is not None and ev.size > 0
    assert not (ev["collateral"] == wbtc).any()
    other = tmp_path / "unpaused"
    other.mkdir()
    _, ev_open = run_kernel(_write(other), events=True)
    assert ev_open is not None and (ev_open["collateral"] == wbtc).any(), "unpaused, WBTC is seized"


# ------------------------------------------------------------------------------ parity per mirrored rule

_AAVE = load_adapter("aave_v3")
_AAVE_C = ("WETH", "wstETH", "WBTC", "USDC")
_AAVE_D = ("USDC", "WETH")
_COMET = load_adapter("compound_v3")


def _one_row(tokens_c, tokens_d):
    """CSR arrays for one account whose legs are the nonzero columns (asset = column)."""
    cols = np.flatnonzero(tokens_c > 0)
    dcols = np.flatnonzero(tokens_d > 0)
    return (np.array([0, cols.size]), np.array([0, dcols.size]), cols.astype(np.int64), dcols.astype(np.int64))


amounts = st.one_of(st.just(0.0), st.floats(1e-3, 5e3))


@st.composite
def aave_rows(draw):
    c = np.array([draw(amounts) for _ in _AAVE_C])
    d = np.array([draw(amounts) for _ in _AAVE_D])
    if not c.any():
        c[draw(st.integers(0, 3))] = draw(st.floats(0.01, 100.0))
    if not d.any():
        d[draw(st.integers(0, 1))] = draw(st.floats(0.01, 100.0))
    emode = draw(st.sampled_from([0, 1]))
    move = np.array([draw(st.floats(0.3, 1.3)) for _ in range(4)])
    scale = draw(st.floats(0.2, 3.0))  # debt size vs collateral: liquidatable or not
    paused = draw(st.sampled_from([(), ("WBTC",), ("USDC",)]))
    return c, d * scale, emode, move, paused


def _aave_with_paused(paused):
    if not paused:
        return _AAVE
    snap = json.loads(json.dumps(_AAVE._snapshot))
    for a in paused:
        snap["assets"][a]["paused"] = True
    return type(_AAVE)(snap)


@settings(max_examples=400 if FULL else 120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(aave_rows())
def test_kernel_aave_call_equals_adapter_liquidate(row):
    c, d, emode, move, paused = row
    ad = _aave_with_paused(paused)
    book = Book(_AAVE_C, _AAVE_D, c[None, :], d[None, :], np.array([emode]))
    base = np.array([_PRICES[a] for a in _AAVE_C])
    pcol = base * move
    pdebt = np.array([1.0, _PRICES["WETH"] * move[0]])
    prices = Prices(pcol, pdebt)
    terms = ad.position_terms(book)
    lt = np.where(terms.seizable, terms.health_weight, 0.0)[0]
    coff, doff, ca, da = _one_row(c, d)
    pc, pd = pcol[None, :], pdebt[None, :]
    hf = account_health(0, 0, coff, doff, ca, c[ca], lt[ca], da, d[da], pc, pd)
    assert hf == pytest.approx(float(ad.health(book, prices)[0]), rel=1e-12)
    out = ad.liquidate(book, prices)
    if not hf < 1.0:
        assert not out.liquidated[0]
        return
    k = ad.constants
    cpz = np.array([a in paused for a in _AAVE_C])[ca]
    dpz = np.array([a in paused for a in _AAVE_D])[da]
    ok, kc, kd, repay, seize = aave_call(0, 0, coff, doff, ca, c[ca].copy(), lt[ca], terms.liquidation_bonus[0, ca],
                                         cpz, da, d[da].copy(), dpz, pc, pd, hf, k["close_factor"],
                                         k["close_factor_hf_threshold"], k["min_base_max_close_factor_threshold_usd"],
                                         k["min_leftover_base_usd"], False)
    assert ok == bool(out.liquidated[0])
    if not ok:
        return
    assert ca[kc] == out.extra["collateral_index"][0] and da[kd] == out.extra["debt_index"][0]
    assert seize == pytest.approx(out.collateral_seized_tokens[0, ca[kc]], rel=1e-12)
    assert repay == pytest.approx(out.debt_repaid_tokens[0, da[kd]], rel=1e-12)


_AAVE2 = load_adapter("aave_v2")
_AAVE2_C = ("WETH", "WBTC", "USDC", "USDT")  # USDT: LT 0 (not counted, not seizable)
_AAVE2_D = ("USDC", "WETH", "USDT")


@st.composite
def aave_v2_rows(draw):
    c = np.array([draw(amounts) for _ in _AAVE2_C])
    d = np.array([draw(amounts) for _ in _AAVE2_D])
    if not c.any():
        c[draw(st.integers(0, 3))] = draw(st.floats(0.01, 100.0))
    if not d.any():
        d[draw(st.integers(0, 2))] = draw(st.floats(0.01, 100.0))
    move = np.array([draw(st.floats(0.3, 1.3)) for _ in range(2)])
    scale = draw(st.floats(0.2, 3.0))
    inactive = draw(st.sampled_from([(), ("WBTC",), ("USDC",)]))
    return c, d * scale, move, inactive


def _aave2_with_inactive(inactive):
    if not inactive:
        return _AAVE2
    snap = json.loads(json.dumps(_AAVE2._snapshot))
    for a in inactive:
        snap["assets"][a]["active"] = False
    return type(_AAVE2)(snap)


@settings(max_examples=400 if FULL else 150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(aave_v2_rows())
def test_kernel_aave_v2_call_equals_adapter_liquidate(row):
    """The kernel's call with the Aave v2 venue's constants (``cf_on_reserve``, no thresholds, no dust floor)
    is :meth:`protocols.AaveV2.liquidate` on one-row books of several collaterals and debts, bit for bit: the
    legs chosen, the debt repaid (50 % of the repaid reserve's debt, or what the seized balance covers) and the
    collateral seized; refused where the adapter refuses (no counted collateral, an inactive reserve)."""
    c, d, move, inactive = row
    ad = _aave2_with_inactive(inactive)
    book = Book(_AAVE2_C, _AAVE2_D, c[None, :], d[None, :])
    pcol = np.array([3000.0 * move[0], 60000.0 * move[1], 1.0, 1.0])
    pdebt = np.array([1.0, 3000.0 * move[0], 1.0])
    prices = Prices(pcol, pdebt)
    terms = ad.position_terms(book)
    lt = np.where(terms.seizable, terms.health_weight, 0.0)[0]
    coff, doff, ca, da = _one_row(c, d)
    pc, pd = pcol[None, :], pdebt[None, :]
    hf = account_health(0, 0, coff, doff, ca, c[ca], lt[ca], da, d[da], pc, pd)
    assert hf == float(ad.health(book, prices)[0])
    out = ad.liquidate(book, prices)
    if not hf < 1.0:
        assert not out.liquidated[0]
        return
    spec_cpz = np.array([a in inactive for a in _AAVE2_C])[ca]
    spec_dpz = np.array([a in inactive for a in _AAVE2_D])[da]
    ok, kc, kd, repay, seize = aave_call(0, 0, coff, doff, ca, c[ca].copy(), lt[ca], terms.liquidation_bonus[0, ca],
                                         spec_cpz, da, d[da].copy(), spec_dpz, pc, pd, hf, ad.params["close_factor"],
                                         -np.inf, 0.0, 0.0, True)
    assert ok == bool(out.liquidated[0])
    if not ok:
        return
    assert ca[kc] == out.extra["collateral_index"][0] and da[kd] == out.extra["debt_index"][0]
    assert seize == out.collateral_seized_tokens[0, ca[kc]]
    assert repay == out.debt_repaid_tokens[0, da[kd]]
    assert out.bad_debt_usd[0] == 0.0 and out.protocol_fee_usd[0] == 0.0


def test_aave_v2_kernel_spec_declares_the_v2_call(tmp_path):
    """The venue, not the engine, declares v2's constants: the close factor of the repaid reserve's debt with
    the v3 thresholds off, no dust floor, no fee and no deficit booking."""
    from optimizer.engine.kernel import RULE_CLOSE_FACTOR_CALL
    from optimizer.engine.reference import venue_simulators

    bound = _write_v2(tmp_path, n=30)
    spec = venue_simulators(bound)[0].kernel_spec()
    assert not isinstance(spec, str) and spec.rule == RULE_CLOSE_FACTOR_CALL
    k = spec.constants
    assert (k["close_factor"], k["cf_on_reserve"], k["no_deficit"], k["floor"]) == (0.5, 1.0, 1.0, 0.0)
    assert not spec.fee.any()
    v = build_kernel_inputs(bound).venues
    assert v.cf_on_reserve.tolist() == [True] and v.no_deficit.tolist() == [True]


comet_amounts = st.one_of(st.just(0.0), st.floats(1e-3, 500.0))


@settings(max_examples=300 if FULL else 100, deadline=None)
@given(st.lists(comet_amounts, min_size=len(_COMET.collateral_assets), max_size=len(_COMET.collateral_assets)),
       st.floats(1.0, 5e6), st.floats(0.2, 1.5))
def test_kernel_absorb_equals_adapter_liquidate(coll, debt, move):
    assets = _COMET.collateral_assets
    c = np.array(coll)
    book = Book(assets, _COMET.debt_assets, c[None, :], np.array([[debt]]))
    base = np.array([3000.0 * move if "ETH" in a else 60000.0 * move if "BTC" in a else 20.0 for a in assets])
    prices = Prices(base, np.array([1.0]))
    terms = _COMET.position_terms(book)
    coff, doff, ca, da = _one_row(c, np.array([debt]))
    hf = account_health(0, 0, coff, doff, ca, c[ca], terms.health_weight[0, ca], da, np.array([debt]), base[None, :],
                        np.array([[1.0]]))
    assert hf == pytest.approx(float(_COMET.health(book, prices)[0]), rel=1e-12)
    out = _COMET.liquidate(book, prices)
    assert out.liquidated[0] == (hf < 1.0)
    if not hf < 1.0:
        return
    value, credit, bonus, fee, owed, leg = absorb(0, 0, coff, doff, ca, c[ca], terms.recovery[0, ca], da,
                                                  np.array([debt]), base[None, :], np.array([[1.0]]),
                                                  _COMET.store_front_price_factor)
    assert value == pytest.approx(out.collateral_seized_usd[0], rel=1e-12, abs=1e-9)
    assert credit == pytest.approx(out.extra["absorbed_credit_usd"][0], rel=1e-12, abs=1e-9)
    assert bonus == pytest.approx(out.liquidator_bonus_usd[0], rel=1e-12, abs=1e-9)
    assert fee == pytest.approx(out.protocol_fee_usd[0], rel=1e-12, abs=1e-9)
    assert max(owed - credit, 0.0) == pytest.approx(out.bad_debt_usd[0], rel=1e-12, abs=1e-9)
    assert max(credit - owed, 0.0) == pytest.approx(out.returned_to_owner_usd[0], rel=1e-12, abs=1e-9)
    if leg >= 0:
        assert ca[leg] == int(np.argmax(out.collateral_seized_tokens[0]))


@settings(max_examples=200, deadline=None)
@given(aave_rows())
def test_key_bounds_health_for_any_prices(row):
    """The pre-filter is sound: health >= group ratio / key, so no liquidatable account is skipped."""
    c, d, emode, move, _ = row
    book = Book(_AAVE_C, _AAVE_D, c[None, :], d[None, :], np.array([emode]))
    lt = _AAVE.position_terms(book).health_weight[0]
    coff, doff, ca, da = _one_row(c, d)
    p0 = np.array([_PRICES[a] for a in _AAVE_C] + [1.0, _PRICES["WETH"]])  # assets: 4 collateral, 2 debt
    dam = da + 4
    p = p0 * np.concatenate([move, [1.0, move[0] * 1.1]])
    key = account_key(0, coff, doff, ca, c[ca], lt[ca], dam, d[da], p0)
    gc = ca[lt[ca] > 0]
    ratio = group_ratio(0, 0, np.array([0, gc.size]), gc, np.array([0, dam.size]), dam, p[None, :], p[None, :], p0)
    hf = account_health(0, 0, coff, doff, ca, c[ca], lt[ca], dam, d[da], p[None, :], p[None, :])
    if hf < 1.0:
        assert key > ratio * (1 - 1e-12)


def test_inputs_follow_the_initial_prices(tmp_path):
    """Kernel keys refer to the paths' start; other start prices rebuild the walk order."""
    bound = _write(tmp_path)
    inputs = build_kernel_inputs(bound)
    np.testing.assert_array_equal(inputs.p0, bound.prepared.paths.close[0, 0])
    g = inputs.groups
    for a, b in zip(g.off[:-1], g.off[1:], strict=True):
        assert (np.diff(g.key[a:b]) <= 0).all()
