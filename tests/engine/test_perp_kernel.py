"""The perp kernel (optimizer.engine.kernel_perp) equals the reference engine and the adapters' pure rules.

* the three bundled perp scenarios: kernel == reference on every ledger field and event (first paths);
* one liquidation round and one ADL step of the kernel on small random books (isolated and cross rows,
  Hyperliquid and Binance, queue and pro-rata) == the adapters' ``liquidatable`` / ``liquidate``, the
  waterfall and ``adl_queue`` / ``adl_pro_rata`` + ``apply_adl`` (hypothesis);
* venues without a market-order rule, or scenario options the kernel does not model, decline with a reason
  and ``auto`` runs the reference engine.

The engine contract suite (optimizer.engine.testing) runs the Hyperliquid (30 % cross), Binance pro-rata and
mixed Aave + Hyperliquid cases through the kernel too.
"""

from __future__ import annotations

import dataclasses
from types import SimpleNamespace

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from optimizer.engine import bind, prepare
from optimizer.engine.kernel_perp import (
    A_COLL,
    G_D,
    I_LIQ,
    LF_SHIFT,
    LP_TOL,
    PS_AF,
    PS_GF,
    PS_LFUND,
    PS_NID,
    PS_RF,
    PS_RI,
    R_MARGIN,
    R_SIZE,
    KPerpOut,
    build_perp_inputs,
    flagged,
    maintenance_usd,
    perp_end_step,
    perp_flush,
    perp_fund,
    perp_round,
    perp_scratch,
    perp_start_path,
    perp_start_step,
    perp_stress,
    row_bound,
)
from optimizer.engine.ledger import EVENT_DTYPE
from optimizer.engine.reference import run_reference, venue_simulators
from optimizer.engine.simulate import kernel_unsupported_reason, run, run_kernel
from optimizer.engine.testing import assert_ledgers_match
from optimizer.engine.venues import OracleSpec, PerpKernelSpec
from optimizer.scenario.config import load_scenario
from optimizer.snapshots import data_dir, load_adapter
from protocols import (
    CROSS,
    ISOLATED,
    PerpBook,
    adl_pro_rata,
    adl_queue,
    apply_adl,
    apply_funding,
    deficits_by_group,
    funding_payments_usd,
    waterfall_of,
    winner_groups,
)

RTOL, ATOL_USD = 1e-9, 1e-6

# scenario, paths compared with the reference engine
SCENARIOS = [("perp_binance_btc_synthetic_crash_3h", 3), ("perp_hyperliquid_btc_2025-10-10", 1),
             ("perp_mixed_aave_hyperliquid_eth_12h", 3)]


def _bound(name: str):
    return bind(prepare(load_scenario(data_dir() / "scenarios" / f"{name}.toml")))


@pytest.mark.parametrize("name,k", SCENARIOS, ids=[s[0] for s in SCENARIOS])
def test_kernel_equals_reference_on_the_bundled_perp_scenarios(name, k):
    b = _bound(name)
    assert kernel_unsupported_reason(b) is None
    p = b.prepared.paths
    kern, ev = run_kernel(b, close=p.close[:k], low=p.low[:k], high=p.bar_high[:k], events=True)
    evs: list[tuple] = []
    ref = run_reference(b, path_indices=np.arange(k), events=evs)
    assert ref.liquidations[:, -1].sum() > 0  # the perp venue liquidates: the comparison is not vacuous
    assert_ledgers_match(kern, ref, RTOL, ATOL_USD)
    assert ev is not None
    key = sorted(tuple(int(x) for x in e.tolist()[:5]) for e in ev)
    assert key == sorted(tuple(int(x) for x in e[:5]) for e in evs)
    val_k = np.array(sorted(tuple(e.tolist()) for e in ev))[:, 5:].astype(float)
    val_r = np.array(sorted(tuple(e) for e in evs))[:, 5:].astype(float)
    np.testing.assert_allclose(val_k, val_r, rtol=RTOL, atol=ATOL_USD)


def test_mixed_scenario_runs_on_the_kernel_under_auto():
    b = _bound("perp_mixed_aave_hyperliquid_eth_12h")
    _, _, engine = run(b, "auto")
    assert engine == "kernel"


def test_venues_without_a_market_order_rule_decline_and_auto_falls_back():
    from optimizer.engine.testing import perp_cases

    by_name = {c.name: c for c in perp_cases()}
    for name, venue in (("perp_dydx_v4", "dYdX"), ("perp_gmx_v2", "GMX")):
        case = by_name[name]
        import tempfile
        from pathlib import Path

        with tempfile.TemporaryDirectory() as d:
            vc = case.build(Path(d))
        reason = kernel_unsupported_reason(vc.bound)
        assert reason is not None and venue in reason, reason
        with pytest.raises(ValueError, match="kernel engine cannot run"):
            run(vc.bound, "kernel")


def test_forced_flows_with_a_kernel_mirror_run_on_the_kernel():
    """The dealers' hedging declares its mirror (optimizer.engine.kernel_flows): auto runs the kernel
    (the agreement with the reference engine: tests/engine/test_forced_flows_kernel.py)."""
    b = _bound("perp_hyperliquid_btc_dealers_2025-10-10")
    assert kernel_unsupported_reason(b) is None


def test_a_scenario_option_the_kernel_does_not_model_declines():
    """A forced flow or a breaker wired into the perp venue's options later is not silently ignored."""
    b = _bound("perp_hyperliquid_btc_2025-10-10")
    sim = venue_simulators(b)[0]
    assert isinstance(sim.kernel_spec(), PerpKernelSpec)
    sim.ctx.options["dealer_hedging"] = {"gamma": 1.0}
    reason = sim.kernel_spec()
    assert isinstance(reason, str) and "dealer_hedging" in reason


# ---------------------------------------------------------------------------------------------
# one round / one ADL step against the pure rules
# ---------------------------------------------------------------------------------------------

_ADAPTERS = {"hyperliquid": (load_adapter("hyperliquid"), ("BTC", "ETH")),
             "binance_usdm": (load_adapter("binance_usdm", params={"insurance_fund_usd": 3000.0}), ("BTCUSDT",))}
P0 = 100.0
STRESS_MOVE = 0.01


class _Sim:
    """What build_perp_inputs reads of a PerpVenue (one venue, every market on market asset 0)."""

    def __init__(self, ad, book: PerpBook, policy: str, stress: float = 1.0) -> None:
        self.adapter, self.book0 = ad, book
        self.ctx = SimpleNamespace(index=0)
        self.oracle_spec = OracleSpec()
        zeros = np.zeros(book.n_positions, np.int64)
        on = {} if stress == 1.0 else {"stress_multiplier": stress, "stress_move": STRESS_MOVE, "stress_window_steps": 1,
                                       "breaker_market_asset": np.zeros(len(ad.markets), np.int64)}
        self.spec = PerpKernelSpec(ad.market_order_rule(), policy, zeros, zeros, 1, 0.0,
                                   ad.fee_recipient == "insurance_fund", float(ad.insurance_fund_usd),
                                   float(ad.backstop_usd), **on)

    def kernel_spec(self) -> PerpKernelSpec:
        return self.spec


@st.composite
def books(draw):
    venue = draw(st.sampled_from(sorted(_ADAPTERS)))
    ad, markets = _ADAPTERS[venue]
    n = draw(st.integers(1, 8))
    n_acc = 3
    rows = []
    used = set()
    for i in range(n):
        m = draw(st.integers(0, len(markets) - 1))
        acct = draw(st.integers(0, n_acc - 1))
        cross = draw(st.booleans()) and (acct, m) not in used
        if cross:
            used.add((acct, m))
        side = draw(st.sampled_from([1, -1]))
        notional = 10 ** draw(st.floats(2.0, 6.5))
        entry = P0 * draw(st.floats(0.97, 1.03))
        lev = draw(st.floats(1.0, 60.0))
        rows.append((m, side, notional / entry, entry, 0.0 if cross else notional / lev,
                     CROSS if cross else ISOLATED, acct if cross else n_acc + i))
    coll = np.array([draw(st.floats(0.0, 5e4)) for _ in range(n_acc)] + [0.0] * n)
    c = list(zip(*rows, strict=True))
    book = PerpBook(markets, np.array(c[0]), np.array(c[1]), np.array(c[2]), np.array(c[3]), np.array(c[4]),
                    np.array(c[5]), np.array(c[6]), coll)
    low = P0 * draw(st.floats(0.5, 1.1))
    high = low * (1.0 + draw(st.floats(0.0, 0.5)))
    close = draw(st.floats(low, high))
    policy = draw(st.sampled_from(["queue", "pro_rata"]))
    return ad, book, low, high, close, policy


def _close(a, b, msg):
    np.testing.assert_allclose(a, b, rtol=RTOL, atol=ATOL_USD, err_msg=msg)


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books())
def test_one_kernel_round_and_adl_step_equal_the_adapters_rules(case):
    ad, book, low, high, close, policy = case
    sim = _Sim(ad, book, policy)
    pv, pp = build_perp_inputs([sim], 1)
    ps = perp_scratch(pv, pp, 1)
    perp_start_path(ps)
    perp_start_step(ps)
    po = KPerpOut(*(np.zeros((1, 1)) for _ in KPerpOut._fields))
    lo, hi = np.array([low]), np.array([high])
    hist = np.array([[P0], [close]])
    liq = np.array([[-1.0, 0.0, 0.0, 0.0, 0.0]])  # infinitely deep: every fill at the mark
    sales = np.zeros(1)
    ev, ev_n = np.zeros(1, EVENT_DTYPE), np.zeros(1, np.int64)
    acted = perp_round(0, 0, 1, 60.0, ps, lo, hi, hist, lo.copy(), hi.copy(), liq, np.zeros(1), sales, ev, ev_n, -1)
    perp_flush(0, po, ps)  # the round's sums into the ledger row
    nid = ps[PS_NID]  # the scratch's row of each book row
    # the rules: flagged pools at the adverse marks, one liquidate call, the waterfall
    marks = book.adverse_marks(np.full(len(book.markets), low), np.full(len(book.markets), high))
    flagged = ad.liquidatable(book, marks)
    out = ad.liquidate(book, marks, flagged)
    assert (acted == 2) == bool(out.liquidated.any())  # 2: liquidated (1: only a backstop unwind traded)
    event(f"liquidated {int(out.liquidated.sum())} of {book.n_positions}, cross {bool(book.is_cross.any())}")
    np.testing.assert_array_equal(ps[PS_RI][nid, I_LIQ] == 1, out.liquidated)
    _close(ps[PS_RF][nid, R_SIZE], out.book.size_base, "size after")
    _close(ps[PS_RF][nid, R_MARGIN], out.book.margin_usd, "margin after")
    _close(ps[PS_AF][:, A_COLL], out.book.cross_collateral_usd, "cross collateral after")
    for name, v in (("perp_fee_usd", out.fee_usd), ("perp_deficit_usd", out.deficit_usd),
                    ("perp_margin_released_usd", out.margin_released_usd), ("perp_realized_pnl_usd", out.realized_pnl_usd),
                    ("perp_returned_to_owner_usd", out.returned_to_owner_usd),
                    ("perp_backstop_takeover_usd", out.backstop_takeover_usd)):
        _close(po._asdict()[name][0, 0], v.sum(), name)
    _close(-sales[0], out.market_flow_base.sum(), "market flow")
    wf = waterfall_of(out, ad.insurance_fund_usd, ad.backstop_usd, fees_to_insurance=ad.fee_recipient == "insurance_fund")
    _close(po.insurance_fund_paid_usd[0, 0], wf.from_insurance_usd.sum(), "insurance paid")
    _close(po.backstop_paid_usd[0, 0], wf.from_backstop_usd.sum(), "backstop paid")
    d = deficits_by_group(book, wf.to_adl_usd)
    _close(ps[PS_GF][:d.size, G_D], d, "deficits by group")
    # ADL at the close: the queue (adapter's score) or pro-rata, applied to the book after the round
    perp_end_step(0, 1, ps, hist)
    perp_flush(0, po, ps)
    if d.sum() > 1e-9:
        event(f"ADL {policy}")
        b1 = out.book
        mark = np.full(book.n_positions, close)
        upnl = b1.unrealized_pnl_usd(mark)
        group = np.where(b1.size_base > 0, winner_groups(book)[0], -1)
        cap = np.maximum(upnl, 0.0)
        if policy == "pro_rata":
            adl = adl_pro_rata(d, group, cap, b1.size_base)
        else:
            adl = adl_queue(d, group, cap, ad.adl_score(b1, mark), b1.size_base)
        b2 = apply_adl(b1, adl, mark)
        _close(ps[PS_RF][nid, R_SIZE], b2.size_base, "size after ADL")
        _close(ps[PS_RF][nid, R_MARGIN], b2.margin_usd, "margin after ADL")
        _close(ps[PS_AF][:, A_COLL], b2.cross_collateral_usd, "cross collateral after ADL")
        _close(po.adl_volume_usd[0, 0], adl.covered_usd.sum(), "ADL volume")
        _close(po.adl_overshoot_usd[0, 0], adl.overshoot_usd.sum(), "ADL overshoot")
        _close(po.realised_bad_debt_usd[0, 0], adl.uncovered_usd.sum(), "uncovered")
        assert po.adl_steps[0, 0] == 1.0
    else:
        assert po.adl_steps[0, 0] == 0.0


@pytest.mark.parametrize("extra,word", [("backstop_unwind_steps = 5\nparams = { \"breakers.price_band_move\" = 0.05 }",
                                         "backstop unwind"),
                                        ("backstop_unwind_steps = 5\nparams = { \"breakers.stress_margin_multiplier\" = 2 }",
                                         "backstop unwind")])
def test_options_the_kernel_does_not_model_decline_only_when_they_are_on(tmp_path, extra, word):
    """A price band or a stress margin with the backstop unwind runs on the reference engine (the unwind round
    skips both breakers' checks); off (the default) the kernel runs. Funding and the unwind alone run on the kernel
    (tests/engine/test_perp_funding.py, tests/engine/test_perp_backstop_unwind.py)."""
    src = (data_dir() / "scenarios" / "perp_hyperliquid_btc_2025-10-10.toml").read_text()
    assert kernel_unsupported_reason(_bound("perp_hyperliquid_btc_2025-10-10")) is None
    anchor = 'adapter = "hyperliquid"\n'
    assert anchor in src
    f = tmp_path / "s.toml"
    f.write_text(src.replace(anchor, anchor + extra + "\n", 1).replace('csv = "', f'csv = "{data_dir()}/'))
    reason = kernel_unsupported_reason(bind(prepare(load_scenario(f))))
    assert reason is not None and word in reason, reason


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(sorted(_ADAPTERS)), st.data(), st.sampled_from([1.0, -1.0]), st.floats(2.0, 7.5),
       st.floats(0.97, 1.03), st.floats(-0.05, 1.5), st.floats(-12.0, -2.0))
def test_row_bound_is_where_a_touched_row_becomes_liquidatable(venue, data, s, log_notional, entry_f, margin_frac,
                                                              log_eps):
    """perp_quiet skips a round when every touched row's mark is beyond its row_bound (with LP_TOL): there the
    kernel's exact test must not flag the row. And the bound is the liquidation price (these tables are convex),
    not a bound that never lets a round be skipped: just inside it the row is liquidatable."""
    ad, markets = _ADAPTERS[venue]
    m = data.draw(st.integers(0, len(markets) - 1))
    entry = P0 * entry_f
    q = 10 ** log_notional / entry
    margin = margin_frac * q * entry
    book = PerpBook(markets, np.array([m]), np.array([int(s)]), np.array([q]), np.array([entry]), np.array([margin]),
                    np.array([ISOLATED]), np.array([1]), np.zeros(2))
    pv, pp = build_perp_inputs([_Sim(ad, book, "queue")], 1)
    k = pp.tier[0]
    b = row_bound(s, q, margin, entry, pp.floor, pp.rate, pp.ded, k)

    def liquidatable(x):
        eq = margin + (s * q * (x - entry) - 0.0)
        return flagged(eq, maintenance_usd(pp.floor, pp.rate, pp.ded, k, q * x), bool(pv.flag_eq[0]))

    eps = 10 ** log_eps
    if s > 0.0:  # quiet while b <= x (1 - LP_TOL)
        beyond = [x for x in (b / (1.0 - LP_TOL), b / (1.0 - LP_TOL) * (1.0 + eps), b * 2.0, entry * 3.0)
                  if np.isfinite(x) and x > 0.0 and b <= x * (1.0 - LP_TOL)]
        inside = b * (1.0 - max(eps, 1e-9))
    else:  # quiet while b >= x (1 + LP_TOL)
        beyond = [x for x in (b / (1.0 + LP_TOL), b / (1.0 + LP_TOL) * (1.0 - eps), b * 0.5, entry / 3.0)
                  if np.isfinite(x) and x > 0.0 and b >= x * (1.0 + LP_TOL)]
        inside = b * (1.0 + max(eps, 1e-9))
    for x in beyond:
        assert not liquidatable(x), (x, b)
    lo_px, hi_px = entry * 1e-3, entry * 1e3  # some mark liquidates the row and some does not: a finite bound
    if (liquidatable(lo_px) and not liquidatable(hi_px)) if s > 0.0 else (liquidatable(hi_px) and not
                                                                          liquidatable(lo_px)):
        assert np.isfinite(b) and b > 0.0, b
    if np.isfinite(b) and b > 0.0:
        assert liquidatable(inside), (inside, b)
    event(f"{venue} {'long' if s > 0 else 'short'} bound {'finite' if np.isfinite(b) and b > 0 else 'none'}")


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), st.floats(1.0, 10.0, exclude_min=True))
def test_one_kernel_round_under_a_stress_margin_equals_the_stressed_adapter_s_rules(case, k):
    """With a stress margin k on (a 1 % move over the last step: the round's low or high against P0), one kernel
    round equals ``adapter.with_margin_multiplier(k)``'s ``liquidatable`` / ``liquidate`` where the market moved
    and the venue's own rules where it did not: the stressed lane orders, the row-by-row lanes where k x rate
    reaches 1, cross pools, routes (backstop below a share of k x MM) and bankruptcy shares."""
    ad, book, low, high, _, policy = case
    pv, pp = build_perp_inputs([_Sim(ad, book, policy, stress=k)], 1)
    ps = perp_scratch(pv, pp, 1)
    perp_start_path(ps)
    perp_start_step(ps)
    lo, hi = np.array([low]), np.array([high])
    hist = np.array([[P0], [P0]])
    perp_stress(1, pv, ps, lo, hi, hist)
    moved = low < (1.0 - STRESS_MOVE) * P0 or high > (1.0 + STRESS_MOVE) * P0
    rules = ad.with_margin_multiplier(k) if moved else ad
    event(f"stressed {moved}")
    po = KPerpOut(*(np.zeros((1, 1)) for _ in KPerpOut._fields))
    liq = np.array([[-1.0, 0.0, 0.0, 0.0, 0.0]])  # infinitely deep: every fill at the mark
    sales = np.zeros(1)
    ev, ev_n = np.zeros(1, EVENT_DTYPE), np.zeros(1, np.int64)
    acted = perp_round(0, 0, 1, 60.0, ps, lo, hi, hist, lo.copy(), hi.copy(), liq, np.zeros(1), sales, ev, ev_n, -1)
    perp_flush(0, po, ps)
    assert po.stress_margin_steps[0, 0] == float(moved)
    nid = ps[PS_NID]
    marks = book.adverse_marks(np.full(len(book.markets), low), np.full(len(book.markets), high))
    out = rules.liquidate(book, marks, rules.liquidatable(book, marks))
    assert (acted == 2) == bool(out.liquidated.any())  # 2: liquidated (1: only a backstop unwind traded)
    np.testing.assert_array_equal(ps[PS_RI][nid, I_LIQ] == 1, out.liquidated)
    _close(ps[PS_RF][nid, R_SIZE], out.book.size_base, "size after")
    _close(ps[PS_RF][nid, R_MARGIN], out.book.margin_usd, "margin after")
    _close(ps[PS_AF][:, A_COLL], out.book.cross_collateral_usd, "cross collateral after")
    for name, v in (("perp_fee_usd", out.fee_usd), ("perp_deficit_usd", out.deficit_usd),
                    ("perp_margin_released_usd", out.margin_released_usd), ("perp_realized_pnl_usd", out.realized_pnl_usd),
                    ("perp_backstop_takeover_usd", out.backstop_takeover_usd)):
        _close(po._asdict()[name][0, 0], v.sum(), name)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(books(), st.sampled_from([1.0, -1.0]), st.floats(1e-4, 0.1), st.integers(1, 3), st.floats(-12.0, -3.0))
def test_kernel_funding_equals_the_funding_rule_and_keeps_every_row_it_moved_a_candidate(case, sign, r, times,
                                                                                        log_eps):
    """perp_fund at a funding time (``times`` intervals in the step) moves the margins and cross collateral
    exactly as ``funding_payments_usd`` + ``apply_funding``, and its lane shift keeps complete candidates: an
    untouched isolated row that funding made liquidatable at some mark is within its lane's widened pointer
    comparison there (lane_lp against the mark with LP_TOL and the shift), as the lane sweep reads it."""
    ad, book, _low, _high, close, policy = case
    rate = sign * r
    sim = _Sim(ad, book, policy)
    sim.spec = dataclasses.replace(sim.spec, funding_rate=rate, funding_interval_s=60.0 / times)
    pv, pp = build_perp_inputs([sim], 1)
    ps = perp_scratch(pv, pp, 1)
    perp_start_path(ps)
    hist = np.array([[P0], [close]])
    perp_fund(1, 60.0, pv.fund_rate, pv.fund_interval_s, ps, hist)
    po = KPerpOut(*(np.zeros((1, 1)) for _ in KPerpOut._fields))
    perp_flush(0, po, ps)
    pay = funding_payments_usd(book, np.full(book.n_positions, close), np.full(len(book.markets), rate * times))
    after = apply_funding(book, pay)
    nid = ps[PS_NID]
    np.testing.assert_array_equal(ps[PS_RF][nid, R_MARGIN], after.margin_usd)
    np.testing.assert_array_equal(ps[PS_AF][:, A_COLL], after.cross_collateral_usd)
    _close(po.perp_funding_paid_usd[0, 0], np.maximum(pay, 0.0).sum(), "paid")
    _close(po.perp_funding_received_usd[0, 0], np.maximum(-pay, 0.0).sum(), "received")
    _close(po.perp_funding_external_usd[0, 0], pay.sum(), "external")
    eps = 10 ** log_eps
    for lane in range(pp.lane_off.size - 1):
        sh = ps[PS_LFUND][lane, LF_SHIFT]
        long_ = bool(pp.lane_long[lane])
        for p in range(pp.lane_off[lane], pp.lane_off[lane + 1]):
            o = pp.lane_pos[p]
            s, q, e, m, k = float(book.side[o]), book.size_base[o], book.entry_price_usd[o], after.margin_usd[o], pp.tier[o]
            x_lp = ad.liquidation_price_usd(after, after.entry_price_usd)[o]
            for x in (x_lp * (1.0 - eps) if long_ else x_lp * (1.0 + eps), close, P0 * 0.5, P0 * 2.0):
                if not (np.isfinite(x) and x > 0.0):
                    continue
                eq = m + (s * q * (x - e) - 0.0)
                if flagged(eq, maintenance_usd(pp.floor, pp.rate, pp.ded, k, q * x), bool(pv.flag_eq[0])):
                    if long_:
                        assert pp.lane_lp[p] > x * (1.0 - LP_TOL) - sh, (x, pp.lane_lp[p], sh)
                    else:
                        assert pp.lane_lp[p] < x * (1.0 + LP_TOL) + sh, (x, pp.lane_lp[p], sh)
    event(f"{'longs' if rate > 0 else 'shorts'} pay x{times}, cross {bool(book.is_cross.any())}")
