"""The Hyperliquid backstop vault (HLP) unwinding what it took over (scenario ``backstop_unwind_steps``; an
assumption, the docs do not say how HLP disposes of it): its sales reach the same pools."""

from __future__ import annotations

import tomllib

import numpy as np

from optimizer.engine import evaluate, prepare
from optimizer.scenario.config import parse_scenario
from optimizer.snapshots import data_dir

REPLAY = data_dir() / "scenarios" / "perp_hyperliquid_btc_2025-10-10.toml"


def _run(unwind: int | None):
    data = tomllib.loads(REPLAY.read_text())
    data["protocols"][0]["book"]["positions"] = 300
    if unwind is not None:
        data["protocols"][0]["backstop_unwind_steps"] = unwind
    return evaluate(prepare(parse_scenario(data, file=str(REPLAY), base_dir=REPLAY.parent)))


def test_the_vaults_unwind_trades_into_the_pool_and_deepens_the_low():
    hold, unwind = _run(None), _run(5)
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
