"""Backtests: compare simulated liquidations with a record of real ones (pure functions, no simulation).

- :mod:`optimizer.backtest.events`: the events-file format and its checked reader.
- :mod:`optimizer.backtest.compare`: per-bin and total comparison, relative errors, timing of the
  first and largest waves, and a figure of both through time.

- :mod:`optimizer.backtest.config`: the scenario's ``[backtest]`` table.
- :mod:`optimizer.backtest.run`: replay a scenario (book replicas) and compare it with the record.
- :mod:`optimizer.backtest.report`: the report folder of ``cascade backtest``.
"""

from .compare import METRICS, Comparison, compare, relative_error
from .events import OPTIONAL, REQUIRED, Events, read_events, write_events

__all__ = ["METRICS", "OPTIONAL", "REQUIRED", "Comparison", "Events", "compare", "read_events", "relative_error",
           "write_events"]
