"""Forced-flow sources on the fast kernel (optimizer.engine.kernel_flows) agree with the reference loop.

* the bundled dealers scenario (book shrunk) and small scenarios of each source (stops, leverage targeting in
  both conventions, dealers, a perp liquidation next to a stop), and the mixed Aave + perp scenario with all
  three sources on its market: every ledger field (per-source sold / bought, ``forced_sold_usd`` included)
  within the engines' agreement tolerance, per-position counts and the liquidation events exactly;
* a source with no kernel mirror, or a candidate whose per-venue netting of ``forced_sold_usd`` the kernel does
  not reproduce, declines with a reason and ``auto`` runs the reference engine;
* hypothesis parity: the kernel's normal CDF and the dealers' delta against scipy's ``ndtr`` and
  :meth:`optimizer.behaviour.dealers.DealerBook.option_delta_base`.
"""

from __future__ import annotations

import tomllib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr as scipy_ndtr
from test_forced_flows import P0, _write

from optimizer.behaviour.dealers import dealer_book
from optimizer.engine import bind, evaluate, prepare
from optimizer.engine import flows as flows_mod
from optimizer.engine.flows import DealerFlows, FlowSource
from optimizer.engine.kernel_flows import dealer_delta, ndtr
from optimizer.engine.reference import run_reference
from optimizer.engine.simulate import kernel_unsupported_reason, run_kernel
from optimizer.engine.testing import assert_ledgers_match
from optimizer.scenario.config import load_scenario, parse_scenario
from optimizer.snapshots import data_dir

RTOL, ATOL = 1e-9, 1e-6  # the engines' agreement tolerance (tests/engine/test_engines_agree.py)


def _agree(bound, min_forced_usd: float = 1.0):
    assert kernel_unsupported_reason(bound) is None
    kern, ev_k = run_kernel(bound, events=True)
    events_r: list[tuple] = []
    ref = run_reference(bound, events=events_r)
    assert set(kern.names()) == set(ref.names())
    assert float(ref.forced_sold_usd.sum()) > min_forced_usd, "the case must exercise forced selling"
    assert_ledgers_match(kern, ref, rtol=RTOL, atol=ATOL)
    assert sorted(tuple(int(x) for x in e.tolist()[:5]) for e in ev_k) == sorted(tuple(e[:5]) for e in events_r)
    return kern, ref


def _scenario(name: str, positions: int, flows: list[dict] | None = None, paths: int | None = None):
    path = data_dir() / "scenarios" / f"{name}.toml"
    data = tomllib.loads(path.read_text())
    for pr in data["protocols"]:
        if pr["book"]["kind"] in ("synthetic", "perp_synthetic"):
            pr["book"]["positions"] = positions
    if flows is not None:
        data["forced_flows"] = flows
    sc = parse_scenario(data, file=str(path), base_dir=path.parent)
    return bind(prepare(sc if paths is None else sc.with_overrides(paths=paths)))


def test_the_bundled_dealers_scenario_agrees_with_the_reference_engine():
    _, ref = _agree(_scenario("perp_hyperliquid_btc_dealers_2025-10-10", 800))
    assert float(ref.dealers_sold_usd[0]) > 1e8 and float(ref.dealers_bought_usd[0]) > 1e8
    assert ref.liquidations.sum() > 10


STOP = '[[forced_flows]]\nmodel = "stops"\nasset = "BTC"\nclusters = [{ side = "sell", level_usd = 99000, size_base = 300 }]\n'
SMALL = {
    "stops_and_spiral_first_order": (
        f'[[forced_flows]]\nmodel = "stops"\nasset = "BTC"\nclusters = [{{ side = "sell", level_usd = {P0 * 0.999}, '
        f'size_base = 1e4 }}, {{ side = "buy", level_usd = {P0 * 1.5}, size_base = 5 }}]\n'
        '[[forced_flows]]\nmodel = "leverage_targeting"\nasset = "BTC"\nconvention = "first_order"\n'
        'holders = [{ exposure_usd = 1e9, target_leverage = 10 }]\n', {"low": P0 * 0.998}),
    "leverage_exact_two_groups": (
        '[[forced_flows]]\nmodel = "leverage_targeting"\nasset = "BTC"\n'
        'holders = [{ exposure_usd = 5e8, target_leverage = 5 }, { exposure_usd = 2e8, target_leverage = 30 }]\n',
        {"low": P0 * 0.97, "close": P0 * 0.97}),
    "dealers_partial_hedge_with_expiry": (
        '[[forced_flows]]\nmodel = "dealers"\nasset = "BTC"\nhedge_fraction = 0.5\noptions = ['
        '{ type = "put", strike_usd = 98000, expiry_days = 2, implied_vol = 0.6, dealer_position_base = -20000 },'
        '{ type = "call", strike_usd = 99000, expiry_days = 0.0005, implied_vol = 0.5, dealer_position_base = 300 }]\n',
        {"low": P0 * 0.98, "close": P0 * 0.98, "depth_usd": 2e11}),
    "perp_liquidation_next_to_a_stop": (STOP, {"low": P0 * 0.94, "rows": f"b,binance_usdm,BTCUSDT,long,2,{P0},"
                                                                             f"{2 * P0 / 20},isolated\n"}),
}


@pytest.mark.parametrize("case", sorted(SMALL))
def test_each_source_agrees_with_the_reference_engine(tmp_path, case):
    flows, bar = SMALL[case]
    _agree(bind(prepare(load_scenario(_write(tmp_path, flows, **bar)))))


def test_all_sources_next_to_a_lending_and_a_perp_venue_agree(tmp_path):
    """The mixed Aave + Hyperliquid ETH scenario with stops, holders and dealers on WETH: the close-factor venue's
    sales and purchases, the perp orders and the sources share the pool round by round."""
    sc = _scenario("perp_mixed_aave_hyperliquid_eth_12h", 300, paths=2)
    p0 = float(sc.prepared.paths.close[0, 0, sc.prepared.market.assets.index("WETH")])
    flows = [
        {"model": "stops", "asset": "WETH", "clusters": [{"side": "sell", "level_usd": p0 * 0.95, "size_base": 2e4},
                                                        {"side": "sell", "level_usd": p0 * 0.9, "size_base": 3e4}]},
        {"model": "leverage_targeting", "asset": "WETH", "holders": [{"exposure_usd": 3e8, "target_leverage": 4}]},
        {"model": "dealers", "asset": "WETH", "options": [
            {"type": "put", "strike_usd": p0 * 0.9, "expiry_days": 3, "implied_vol": 0.7, "dealer_position_base": -5e4},
            {"type": "call", "strike_usd": p0 * 1.1, "expiry_days": 3, "implied_vol": 0.6, "dealer_position_base": 2e4}]},
    ]
    _, ref = _agree(_scenario("perp_mixed_aave_hyperliquid_eth_12h", 300, flows, paths=2))
    assert ref.liquidations.sum() > 0


def test_a_source_without_a_kernel_mirror_declines_and_auto_runs_the_reference_engine(tmp_path, monkeypatch, capsys):
    class Unmirrored(DealerFlows):
        kernel_spec = FlowSource.kernel_spec

    monkeypatch.setitem(flows_mod.FLOW_SOURCES, "dealers", Unmirrored)
    flows = ('[[forced_flows]]\nmodel = "dealers"\nasset = "BTC"\noptions = [{ type = "put", strike_usd = 98000, '
             'expiry_days = 2, implied_vol = 0.6, dealer_position_base = -20000 }]\n')
    bound = bind(prepare(load_scenario(_write(tmp_path, flows, low=P0 * 0.98))))
    reason = kernel_unsupported_reason(bound)
    assert reason is not None and "the kernel mirrors no dealers model" in reason
    res = evaluate(bound.prepared, engine="auto")
    assert res.engine == "reference" and res.engine_reason == reason
    out = res.to_json()
    assert out["engine_reason"] == reason  # the result says why, and so does the terminal table
    from optimizer.report_text import render_simulation

    capsys.readouterr()
    render_simulation(out)
    assert f"reference engine: {reason}" in " ".join(capsys.readouterr().out.split())
    from optimizer.events import simulate_with_events  # `cascade simulate --events` says the same

    streamed = simulate_with_events(bound.prepared, None, events_path=tmp_path / "ev.csv", engine="auto")
    assert streamed.engine == "reference" and streamed.engine_reason == reason
    monkeypatch.setitem(flows_mod.FLOW_SOURCES, "dealers", DealerFlows)  # mirrored again: the kernel, no reason
    res = evaluate(bind(prepare(load_scenario(_write(tmp_path, flows, low=P0 * 0.98)))).prepared, engine="auto")
    assert res.engine == "kernel" and res.engine_reason is None and "engine_reason" not in res.to_json()


def test_two_perp_venues_with_forced_flows_decline(tmp_path):
    """forced_sold_usd nets each venue's orders per pool; the kernel nets its perp venues' orders together."""
    path = _write(tmp_path, STOP)
    text = path.read_text()
    head, tail = text.split("[[forced_flows]]", 1)
    venue = head[head.index("[[protocols]]"):].replace('adapter = "binance_usdm"', 'adapter = "binance_usdm"\nid = "second"')
    path.write_text(head + venue + "[[forced_flows]]" + tail)
    bound = bind(prepare(load_scenario(path)))
    reason = kernel_unsupported_reason(bound)
    assert reason is not None and "2 perp venues" in reason, reason
    assert evaluate(bound.prepared, engine="auto").engine == "reference"


# ------------------------------------------------------------------------------ parity of the mirrored rules


@settings(max_examples=300, deadline=None)
@given(st.floats(-40.0, 40.0, allow_nan=False))
def test_the_kernel_normal_cdf_agrees_with_scipy(x):
    want = float(scipy_ndtr(x))
    got = ndtr(x)
    assert abs(got - want) <= 4.5e-16 and abs(got - want) <= 1e-13 * want + 1e-300


OPTION = st.tuples(st.floats(1e3, 1e6), st.floats(1e-3, 30.0), st.floats(0.05, 3.0), st.floats(-1e5, 1e5),
                   st.booleans())


@settings(max_examples=200, deadline=None)
@given(st.lists(OPTION, min_size=1, max_size=20), st.floats(1e3, 1e6), st.floats(0.0, 40.0 * 86_400.0))
def test_the_kernel_dealer_delta_agrees_with_the_behaviour_model(options, spot, elapsed_s):
    """D(S, t) of the kernel (numpy's summation order, libm's erf) == DealerBook.option_delta_base, live and
    expired strikes alike, to the float rounding of ndtr."""
    book = dealer_book({"options": [{"type": "call" if c else "put", "strike_usd": k, "expiry_days": e,
                                     "implied_vol": v, "dealer_position_base": q} for k, e, v, q, c in options]})
    rows = np.column_stack([book.strike_usd, book.expiry_s, book.implied_vol, book.position_base,
                            book.is_call.astype(np.float64)])
    want = float(book.option_delta_base(np.array([spot]), elapsed_s)[0])
    got = dealer_delta(rows, 0, rows.shape[0], spot, elapsed_s, np.empty(rows.shape[0]))
    scale = float(np.abs(book.position_base).sum())
    assert abs(got - want) <= 1e-13 * scale + 1e-9
