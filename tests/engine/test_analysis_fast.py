"""The deterministic analyses (optimizer.engine.analysis) searched fast give the answers of their plain definition.

The plain definition, written out here without the module's shortcuts: every move of the coarse 1 % grid runs
(one path per move, all in one batch), the first move where the question holds is refined on the fine grid
below it (all of it run), and the first fine move where it holds is the answer. The module scans the grids in
order and stops early, shares runs between questions and analyses, and runs the critical move on the kernel
when the kernel accepts the candidate.

* every bundled perp scenario (book shrunk): :func:`analyses` on the engine the Monte Carlo uses == the plain
  definition on that engine (critical drop, critical move, liquidation map, clusters); scenarios the kernel
  declines (the reference engine, where the plain definition is slow) with ``CASCADE_FULL_TESTS=1`` (none of
  the bundled ones since the dealers' hedging runs on the kernel);
* the critical move on the kernel == the plain definition on the reference engine (a few scenarios; all with
  ``CASCADE_FULL_TESTS=1``);
* closed form (oracles.md §4): with an infinitely deep market, the first fall (rise) that liquidates is the
  first fine-grid move at or past the most fragile long's (short's) closed-form liquidation price (hypothesis).
"""

from __future__ import annotations

import os
import re
from dataclasses import replace

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.engine import bind, evaluate, prepare
from optimizer.engine.analysis import (
    CASCADE_AMPLIFICATION,
    COARSE,
    MAP_LEVELS,
    _shock_steps,
    analyses,
    critical_move,
)
from optimizer.engine.reference import run_reference
from optimizer.engine.simulate import build_kernel_inputs, kernel_unsupported_reason, run_kernel
from optimizer.scenario.config import load_scenario
from optimizer.snapshots import data_dir

FULL = os.environ.get("CASCADE_FULL_TESTS") == "1"
SCENARIOS = sorted(p.stem for p in (data_dir() / "scenarios").glob("perp_*.toml"))
# scenarios the kernel declines (their analyses run on the reference engine, the plain definition too: slow)
REFERENCE_ONLY: tuple[str, ...] = ()
# the critical move on the kernel against the reference engine: these by default, every kernel scenario in FULL
REFERENCE_CHECKED = ("perp_binance_btc_synthetic_crash_3h", "perp_mixed_aave_hyperliquid_eth_12h")


def _shrunk(name: str, tmp_path, positions: int = 150, horizon_h: float = 1.0):
    """A bundled scenario with at most ``positions`` per book, one path and a horizon of at most ``horizon_h``
    (its shocks moved inside it); a replay keeps its price file (found in the bundled data folder)."""
    text = (data_dir() / "scenarios" / f"{name}.toml").read_text()
    text = re.sub(r"(?m)^positions = (\d+)", lambda m: f"positions = {min(int(m[1]), positions)}", text)
    text = re.sub(r"(?m)^paths = \d+", "paths = 1", text)
    if re.search(r"(?m)^horizon_h = ([\d.]+)", text):
        text = re.sub(r"(?m)^horizon_h = ([\d.]+)", lambda m: f"horizon_h = {min(float(m[1]), horizon_h)}", text)
        text = re.sub(r"at_h = ([\d.]+)", lambda m: f"at_h = {min(float(m[1]), horizon_h / 2)}", text)
    f = tmp_path / f"{name}.toml"
    f.write_text(text)
    return bind(prepare(load_scenario(f)))


# ------------------------------------------------------------------------------ the plain definition


class Plain:
    """Held shocks run without a cache, early stop or sharing: each grid whole, in one batch."""

    def __init__(self, bound, engine: str, n_steps: int) -> None:
        self.bound, self.engine, self.n_steps = bound, engine, n_steps
        self.inputs = build_kernel_inputs(bound) if engine == "kernel" else None
        sc = bound.prepared.scenario
        self.moving = np.array([sc.assets[a].model.get("model") != "constant" for a in bound.prepared.market.assets])
        self.p0 = bound.prepared.paths.close[0, 0]

    def run(self, moves: np.ndarray):
        close = np.tile(self.p0, (moves.size, self.n_steps + 1, 1))
        close[:, 1:, self.moving] = self.p0[self.moving] * (1.0 - moves)[:, None, None]
        gas = np.full(self.n_steps + 1, float(np.max(self.bound.prepared.gas_gwei)))
        if self.engine == "kernel":
            return run_kernel(self.bound, self.inputs, close=close, low=close, gas_gwei=gas)[0]
        prep = self.bound.prepared
        paths = replace(prep.paths, close=close, low=close, high=close, timestamps=None)
        return run_reference(replace(self.bound, prepared=replace(prep, paths=paths, gas_gwei=gas)))

    def first(self, pred, sign: float, n_fine: int) -> float | None:
        hit = np.flatnonzero(pred(self.run(sign * COARSE)))
        if hit.size == 0:
            return None
        lo = COARSE[hit[0] - 1] if hit[0] > 0 else 0.0
        fine = np.round(np.linspace(lo, COARSE[hit[0]], n_fine + 1)[1:], 6)
        return round(float(fine[np.flatnonzero(pred(self.run(sign * fine)))[0]]), 4)


def _field(name):
    return lambda raw: raw[name].sum(1) > 0 if name in raw else np.zeros(raw.n_paths, bool)


def _amplified(a: int):
    def pred(raw):
        exo = 1.0 - raw.exo_low_min[:, a]
        with np.errstate(divide="ignore", invalid="ignore"):
            amp = np.where(exo > 0, (1.0 - raw.market_low_min[:, a]) / exo, 1.0)
        return amp >= CASCADE_AMPLIFICATION
    return pred


def plain_critical_move(bound, engine: str) -> dict:
    p = Plain(bound, engine, _shock_steps(bound, perp_only_horizon=True))
    adl = _field("adl_steps")
    return {"fall_first_liquidation": p.first(_field("perp_liquidated_long_usd"), 1.0, 20),
            "rise_first_liquidation": p.first(_field("perp_liquidated_short_usd"), -1.0, 20),
            "fall_first_adl": p.first(adl, 1.0, 20), "rise_first_adl": p.first(adl, -1.0, 20)}


def plain_critical_drop(bound, engine: str, primary: int) -> dict:
    p = Plain(bound, engine, _shock_steps(bound))
    return {"first_liquidation": p.first(_field("liquidations"), 1.0, 50),
            "cascade": p.first(_amplified(primary), 1.0, 50)}


def plain_cascade_map(bound, engine: str, primary: int) -> dict:
    p = Plain(bound, engine, _shock_steps(bound))
    fall, rise = p.run(1.0 - MAP_LEVELS), p.run(-(1.0 - MAP_LEVELS))
    out = {"cascade_liquidated_usd": fall.collateral_seized_usd.sum(1),
           "cascade_market_price_ratio": fall.market_low_min[:, primary]}
    if "perp_liquidated_long_usd" in fall:
        out |= {"perp_long_cascade_liquidated_usd": fall.perp_liquidated_long_usd.sum(1),
                "perp_short_cascade_liquidated_usd": rise.perp_liquidated_short_usd.sum(1)}
    return out


def _engine(bound) -> str:
    return "kernel" if kernel_unsupported_reason(bound) is None else "reference"


def _without_definition(d: dict) -> dict:
    return {k: v for k, v in d.items() if k not in ("definition", "asset", "cascade_amplification")}


# ------------------------------------------------------------------------------ tests


@pytest.mark.parametrize("name", [s for s in SCENARIOS if FULL or s not in REFERENCE_ONLY])
def test_analyses_equal_their_plain_definition_on_the_engine_the_monte_carlo_uses(name, tmp_path):
    bound = _shrunk(name, tmp_path)
    engine = _engine(bound)
    assert (engine == "reference") == (name in REFERENCE_ONLY)
    res = evaluate(bound.prepared, engine="auto", analyses=True)
    assert res.engine == engine
    got = analyses(bound, engine)
    assert list(got) == list(res.extra)  # what evaluate() attaches, in the same order
    primary = int(bound.prepared.market.assets.index(got["critical_drop"]["asset"]))
    assert _without_definition(got["critical_drop"]) == plain_critical_drop(bound, engine, primary)
    assert _without_definition(got["critical_move"]) == plain_critical_move(bound, engine)
    for key, want in plain_cascade_map(bound, engine, primary).items():
        np.testing.assert_allclose(got["liquidation_map"][key], want, rtol=1e-12, atol=1e-9, err_msg=key)
    for key in ("critical_drop", "critical_move", "perp_liquidation_clusters"):
        assert res.extra[key] == got[key], key
    # the questions are not vacuous on these books: each has a liquidating fall and rise
    assert got["critical_move"]["fall_first_liquidation"] is not None
    assert got["critical_move"]["rise_first_liquidation"] is not None


@pytest.mark.parametrize("name", [s for s in SCENARIOS if FULL or s in REFERENCE_CHECKED])
def test_critical_move_on_the_kernel_equals_the_plain_definition_on_the_reference_engine(name, tmp_path):
    bound = _shrunk(name, tmp_path, positions=60)
    if kernel_unsupported_reason(bound) is not None:
        pytest.skip(f"the kernel declines {name}: {kernel_unsupported_reason(bound)}")
    fast = critical_move(bound, engine="kernel")
    assert "held for" in fast["definition"]
    assert _without_definition(fast) == plain_critical_move(bound, "reference")


def test_critical_move_runs_on_the_kernel_when_it_accepts_the_candidate(tmp_path, monkeypatch):
    import optimizer.engine.analysis as an

    bound = _shrunk("perp_hyperliquid_btc_2025-10-10", tmp_path, positions=60)
    assert kernel_unsupported_reason(bound) is None
    calls = []
    monkeypatch.setattr(an, "run_reference", lambda *a, **k: calls.append(1) or run_reference(*a, **k))
    out = critical_move(bound)  # default: "auto", the kernel here
    assert calls == [] and out["fall_first_liquidation"] is not None
    critical_move(bound, engine="reference")
    assert calls  # asked for, the reference engine runs


# ------------------------------------------------------------------------------ closed form (oracles.md §4)

P0 = 60000.0
CLOSED_FORM = """
[scenario]
name = "closed-form"
horizon_h = 0.5
step_min = 1
paths = 1
seed = 3

[assets.BTC]
price_usd = 60000
model = "gbm"
sigma_annual = 0.5

[[protocols]]
adapter = "{venue}"
[protocols.book]
kind = "perp_csv"
path = "book.csv"
"""
VENUES = {"hyperliquid": "BTC", "binance_usdm": "BTCUSDT"}


def closed_form_lp(venue: str, params: dict, side: int, size: float, entry: float, margin: float) -> float:
    """Isolated liquidation price, oracles.md §4 (first tier / bracket: small notionals): the price where the
    margin balance ``M + side Q (P - EP)`` equals the maintenance margin ``MMR Q P`` (Binance: ``- cum``, 0 in
    the first bracket; Hyperliquid: MMR = 1 / (2 maxLev))."""
    if venue == "hyperliquid":  # MMR = 1 / (2 maxLev); equity M + side Q (P - EP) = MMR Q P
        mmr = 1.0 / (2.0 * params["BTC.tier0.max_leverage"])
        return (margin - side * size * entry) / (size * mmr - side * size)
    mmr, cum = params["BTCUSDT.bracket1.maintenance_margin_rate"], 0.0
    return (margin + cum - side * size * entry) / (size * mmr - side * size)


@settings(max_examples=12 if not FULL else 60)
@given(venue=st.sampled_from(sorted(VENUES)),
       levs=st.lists(st.floats(1.5, 30.0), min_size=1, max_size=5),
       short_levs=st.lists(st.floats(1.5, 30.0), min_size=1, max_size=5),
       offsets=st.lists(st.floats(-0.005, 0.005), min_size=10, max_size=10))
def test_first_liquidating_move_is_the_most_fragile_positions_closed_form_liquidation_price(
        tmp_path_factory, venue, levs, short_levs, offsets):
    tmp = tmp_path_factory.mktemp("cf")
    size = 0.2  # $12k of notional (x2 after a 99 % rise): the first tier / bracket, whole closes
    rows, lp = [], {1: [], -1: []}
    for side, name, ls in ((1, "long", levs), (-1, "short", short_levs)):
        for i, lev in enumerate(ls):
            entry = round(P0 * (1.0 + offsets[i % len(offsets)]), 2)
            margin = round(size * entry / lev, 6)
            rows.append((f"{name[0]}{i}", side, entry, margin))
    (tmp / "book.csv").write_text("account,venue,market,side,size,entry_price,margin,margin_mode\n" + "".join(
        f"{a},{venue},{VENUES[venue]},{'long' if s > 0 else 'short'},{size},{e},{m},isolated\n" for a, s, e, m in rows))
    (tmp / "s.toml").write_text(CLOSED_FORM.format(venue=venue))
    bound = bind(prepare(load_scenario(tmp / "s.toml")))
    params = bound.adapters[0].params
    for _, side, entry, margin in rows:
        lp[side].append(closed_form_lp(venue, params, side, size, entry, margin))
    # the shock moves the mark to P0 (1 - move): a long is liquidatable once P0 (1 - m) <= LP, a short once
    # P0 (1 + m) >= LP; no liquidity table (an infinitely deep market), so nothing else moves the mark
    need = {1: 1.0 - max(lp[1]) / P0, -1: min(lp[-1]) / P0 - 1.0}
    out = critical_move(bound, engine="kernel")
    fine_step = 0.01 / 20
    for side, key in ((1, "fall_first_liquidation"), (-1, "rise_first_liquidation")):
        m = need[side]
        assert 0 < m < COARSE[-1]  # the book opens healthy (at most 30x) and a 99 % move liquidates it
        got = out[key]
        assert got is not None, (side, m)
        # the first fine move at or past the closed-form distance (1e-9: the grid's decimal rounding)
        assert got - fine_step - 1e-9 < m <= got + 1e-9, (side, m, got)


def test_drops_the_cascade_question_skips_cannot_amplify_the_drop(tmp_path):
    """The critical drop does not run drops from 0.91 on for the cascade question: prices stay positive, so the
    amplification stays below 1 / drop < 1.1 there (checked on the lending + perp book, the drops run)."""
    import optimizer.engine.analysis as an

    bound = _shrunk("perp_mixed_aave_hyperliquid_eth_12h", tmp_path, positions=80)
    skipped = COARSE[~an.CASCADE_POSSIBLE]
    assert skipped.min() == 0.91 and skipped.size == 9
    out = an._ShockRunner(bound, "kernel").run(skipped)
    assert (out.market_low_ratio > 0).all() and (out.liquidations > 0).all()
    assert (out.amplification < 1.0 / skipped + 1e-12).all() and (out.amplification < CASCADE_AMPLIFICATION).all()
