"""The liquidation-cascade simulator: ``simulate(scenario) -> SimulationResult``.

    from optimizer.engine import simulate
    res = simulate("data/scenarios/aave_v3_core_24h_jumps.toml", paths=500, seed=1,
                   params={"aave_v3": {"WETH.liquidation_threshold_bps": 8200}})
    res.summary()          # pandas DataFrame, estimates with standard errors
    res.metrics()          # JSON-ready dict
    res.data()             # raw per-path arrays

For repeated evaluations on the same paths (the search), prepare once and evaluate many times:

    prepared = prepare(load_scenario(path))
    evaluate(prepared, {"aave_v3": {...}})

Parameters are keyed by the scenario protocol's ``id`` (default: its adapter name). ``res.raw`` is the
per-path :class:`~optimizer.engine.ledger.Ledger` (core fields plus those the venues declare).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path

from ..scenario.config import Scenario, load_scenario
from .model import Bound, Prepared, bind, prepare
from .results import SimulationResult
from .simulate import fallback_reason, run

__all__ = ["Bound", "Prepared", "SimulationResult", "bind", "evaluate", "prepare", "simulate"]


def evaluate(prepared: Prepared, params: Mapping[str, Mapping[str, float]] | None = None, *, engine: str = "auto",
             events: bool = False, analyses: bool = False, progress=None, batches: int = 1) -> SimulationResult:
    """Evaluate one candidate on prepared (shared, common-random-number) paths."""
    t0 = time.perf_counter()
    bound = bind(prepared, params)
    raw, ev, used = run(bound, engine=engine, events=events, progress=progress, batches=batches)
    res = SimulationResult(bound, raw, used, 0.0, ev, engine_reason=fallback_reason(bound, engine, used))
    if analyses:
        from .analysis import analyses as run_analyses

        res.extra |= run_analyses(bound, engine=used)
    res.elapsed_s = time.perf_counter() - t0
    return res


def simulate(scenario: str | Path | Scenario, params: Mapping[str, Mapping[str, float]] | None = None, *,
             paths: int | None = None, seed: int | None = None, engine: str = "auto", events: bool = False,
             analyses: bool = True, progress=None, batches: int = 1) -> SimulationResult:
    """Load (if needed), prepare and evaluate a scenario in one call."""
    sc = scenario if isinstance(scenario, Scenario) else load_scenario(scenario)
    sc = sc.with_overrides(paths=paths, seed=seed)
    t0 = time.perf_counter()
    prepared = prepare(sc)
    res = evaluate(prepared, params, engine=engine, events=events, analyses=analyses, progress=progress,
                   batches=batches)
    res.elapsed_s = time.perf_counter() - t0
    return res
