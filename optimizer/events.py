"""The events CSV (one row per liquidation), streamed to disk while the paths are simulated.

Holding every event of a large run in memory does not scale (as Python dicts a row costs ~1.1 kB:
300 paths of the bundled core stress took 5.5 GiB). :func:`simulate_with_events` runs the paths in
batches of :data:`PATHS_PER_BATCH` (paths are independent, so the metrics are identical to one
run), turns each batch's event array into a DataFrame and appends it to the CSV through
:class:`optimizer.io.CsvChunkWriter`: memory stays at one batch, the file appears whole or not at
all, and the run stops with a one-line error as soon as the CSV is projected not to fit on its disk.

The columns are those of :meth:`optimizer.engine.results.SimulationResult.events` (one definition:
``path, step, hours, timestamp, protocol, account, collateral_asset`` and the engine's USD amounts and
price); the writer is generic over whatever columns that frame has.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd

PATHS_PER_BATCH = 16


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A :meth:`SimulationResult.events` frame as the CSV writes it: timestamps ISO-8601 UTC (``...Z``),
    empty where there is none (synthetic paths: ``hours`` gives the time). Other columns as they are."""
    out = frame.copy(deep=False)
    for c in out.columns:
        if pd.api.types.is_datetime64_any_dtype(out[c]):
            out[c] = out[c].dt.strftime("%Y-%m-%dT%H:%M:%SZ")
    return out


def simulate_with_events(prepared: Any, params: Mapping[str, Mapping[str, float]] | None, *, events_path: str | Path,
                         engine: str = "auto", analyses: bool = True, option: str = "--events",
                         progress: Callable[[int, int], None] | None = None,
                         paths_per_batch: int = PATHS_PER_BATCH) -> Any:
    """Evaluate one candidate and stream its events to ``events_path`` (a CSV), batch by batch.

    Returns the :class:`~optimizer.engine.results.SimulationResult` of all paths (``events`` is
    None: they are in the file). Same metrics as :func:`optimizer.engine.evaluate` on the same
    prepared paths.
    """
    from .engine import bind
    from .engine.ledger import Ledger
    from .engine.results import SimulationResult
    from .engine.simulate import fallback_reason, run
    from .io import CsvChunkWriter

    bound = bind(prepared, params)
    n = prepared.n_paths
    edges = list(range(0, n, max(1, paths_per_batch))) + [n]
    parts, used = [], engine
    p = prepared.paths
    with CsvChunkWriter(events_path, option=option, total=n) as out:
        for lo, hi in itertools.pairwise(edges):
            view = replace(prepared, paths=replace(p, close=p.close[lo:hi], low=p.low[lo:hi],
                                                   high=None if p.high is None else p.high[lo:hi]))
            raw, ev, used = run(replace(bound, prepared=view), engine=engine, events=True)
            if ev is not None and len(ev):
                ev = ev.copy()
                ev["path"] += lo  # the batch's paths are numbered from 0
            out.write(csv_frame(SimulationResult(bound, raw, used, 0.0, ev).events()), done=hi)
            parts.append(raw)
            if progress is not None:
                progress(hi, n)
    raw = parts[0] if len(parts) == 1 else Ledger.concat(parts)
    res = SimulationResult(bound, raw, used, 0.0, None, engine_reason=fallback_reason(bound, engine, used))
    if analyses:
        from .engine.analysis import analyses as run_analyses

        res.extra |= run_analyses(bound, engine=used)  # the same analyses as evaluate() attaches
    return res
