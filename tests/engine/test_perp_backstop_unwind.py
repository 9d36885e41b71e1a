"""The Hyperliquid backstop vault (HLP) unwinding what it took over (scenario ``backstop_unwind_steps``; an
assumption, the docs do not say how HLP disposes of it): its sales reach the same pools; the fast perp kernel
runs it as the reference engine does."""

from __future__ import annotations

import tomllib

import numpy as np
import pytest

from optimizer.engine import bind, evaluate, prepare
from optimizer.engine.reference import run_reference
from optimizer.engine.simulate import kernel_unsupported_reason, run_kernel
from optimizer.engine.testing import assert_ledgers_match
from optimizer.scenario.config import parse_scenario
from optimizer.snapshots import data_dir

REPLAY = data_dir() / "scenarios" / "perp_hyperliquid_btc_2025-10-10.toml"


def _prepared(unwind: int | None, positions: int = 300, funding: tuple[float, float] | None = None):
    data = tomllib.loads(REPLAY.read_text())
    data["protocols"][0]["book"]["positions"] = positions
    if unwind is not None:
        data["protocols"][0]["backstop_unwind_steps"] = unwind
    if funding is not None:
        data["protocols"][0]["funding"] = {"rate_per_interval": funding[0], "interval_h": funding[1]}
    return prepare(parse_scenario(data, file=str(REPLAY), base_dir=REPLAY.parent))


def _run(unwind: int | None, engine: str = "auto"):
    return evaluate(_prepared(unwind), engine=engine)


@pytest.mark.parametrize("engine", ["reference", "kernel"])
def test_the_vaults_unwind_trades_into_the_pool_and_deepens_the_low(engine):
    hold, unwind = _run(None, engine), _run(5, engine)
    rh, ru = hold.raw, unwind.raw
    np.testing.assert_array_equal(hold.bound.prepared.paths.close, unwind.bound.prepared.paths.close)
    assert float(rh.backstop_unwound_base.sum()) == 0 and float(rh.backstop_taken_base.sum()) > 0
    taken, sold = float(ru.backstop_taken_base.sum()), float(ru.backstop_unwound_base.sum())
    assert taken > 0
    # everything it took over is traded back within 5 steps of its last takeover (the window outlasts it) ...
    np.testing.assert_allclose(sold, taken, rtol=1e-9)
    # ... into the pool the liquidations use: the market falls further below the same exogenous bars
    assert float(ru.market_low_min.min()) < float(rh.market_low_min.min())
    assert float(ru.exo_low_min.min()) == float(rh.exo_low_min.min())
    # its sales are not liquidation orders (those are counted apart)
    assert unwind.metrics()["backstop_loss_usd"]["mean"] >= 0


@pytest.mark.parametrize("unwind,positions,funding", [(5, 300, None), (1, 300, None), (3, 2000, (0.003, 0.1)),
                                                      (7, 2000, (-0.003, 0.0123))])
def test_the_kernel_unwinds_the_vault_as_the_reference(unwind, positions, funding):
    """The kernel's unwind round (the step's first round, every pool's slices together at the impact fills, the
    vault's result at them) gives the reference engine's ledger and events, one slice a step or several, with
    funding on too; the unwind moves the market the liquidations of later rounds see."""
    bound = bind(_prepared(unwind, positions, funding))
    assert kernel_unsupported_reason(bound) is None
    kern, ev = run_kernel(bound, events=True)
    evs: list[tuple] = []
    ref = run_reference(bound, path_indices=np.arange(bound.prepared.n_paths), events=evs)
    assert_ledgers_match(kern, ref, 1e-9, 1e-6)
    assert sorted(tuple(int(x) for x in e.tolist()[:5]) for e in ev) == sorted(tuple(int(x) for x in e[:5])
                                                                             for e in evs)
    assert float(kern.backstop_unwound_base.sum()) == pytest.approx(float(kern.backstop_taken_base.sum()), rel=1e-9)
    assert float(kern.backstop_taken_base.sum()) > 0
