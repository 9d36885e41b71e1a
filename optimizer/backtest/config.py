"""The ``[backtest]`` table of a scenario: which record of real liquidations a replay is compared with.

.. code-block:: toml

    [backtest]
    actual = "backtest/maker_eth_a_2020-03-12_actual.csv"  # events file (format: optimizer.backtest.events)
    replicas = 4               # book redraws (seeds seed, seed+1, ...): the Monte Carlo error
    bin_min = 60               # comparison bins, minutes
    documented = ["bad_debt_usd"]  # what the record really documents (default: the four totals and "timing")
    note = "what the record is and is not"
    [backtest.reference]       # other documented figures shown beside the simulated venue facts
    zero_bid_collateral_usd = 8.32e6

Every key is optional; ``cascade backtest --actual`` overrides ``actual``. Read and validated once, by
:func:`backtest_config`, with one-line errors naming the scenario file and the key.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..errors import InputError
from .compare import METRICS

MAX_REPLICAS = 256
DOCUMENTABLE = (*METRICS, "timing")  # what a record may document: the four totals and the waves' timing


@dataclass(frozen=True)
class BacktestConfig:
    """The validated ``[backtest]`` table (``actual`` resolved to a path, or None)."""

    actual: Path | None = None
    replicas: int = 1
    bin_s: int = 3600
    documented: tuple[str, ...] = DOCUMENTABLE
    note: str = ""
    reference: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))


def backtest_config(scenario: Any) -> BacktestConfig:
    """The scenario's ``[backtest]`` table (defaults when it has none)."""
    raw = dict(scenario.raw).get("backtest")
    file = scenario.file
    if raw is None:
        return BacktestConfig()
    if not isinstance(raw, Mapping):
        raise InputError("must be a table", file=file, field="backtest")
    known = {"actual", "replicas", "bin_min", "documented", "note", "reference"}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise InputError(f"unknown key '{unknown[0]}' (known: {', '.join(sorted(known))})", file=file,
                         field=f"backtest.{unknown[0]}")
    actual = None
    if "actual" in raw:
        a = raw["actual"]
        if not isinstance(a, str) or not a:
            raise InputError(f"must be the path of an events CSV, got {a!r}"[:200], file=file, field="backtest.actual")
        actual = scenario.resolve(a, "backtest.actual")
    replicas = _integer(raw, "replicas", 1, 1, MAX_REPLICAS, file)
    bin_min = _integer(raw, "bin_min", 60, 1, 7 * 1440, file)
    documented: tuple[str, ...] = DOCUMENTABLE
    if "documented" in raw:
        d = raw["documented"]
        if not isinstance(d, list) or not all(isinstance(x, str) for x in d):
            raise InputError("must be a list of metric names", file=file, field="backtest.documented")
        bad = [x for x in d if x not in DOCUMENTABLE]
        if bad:
            raise InputError(f"unknown metric '{bad[0]}' (known: {', '.join(DOCUMENTABLE)})", file=file,
                             field="backtest.documented")
        documented = tuple(m for m in DOCUMENTABLE if m in d)
    note = raw.get("note", "")
    if not isinstance(note, str):
        raise InputError("must be a string", file=file, field="backtest.note")
    ref = raw.get("reference", {})
    if not isinstance(ref, Mapping):
        raise InputError("must be a table of numbers", file=file, field="backtest.reference")
    refs: dict[str, float] = {}
    for k, v in ref.items():
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"must be a finite number, got {v!r}"[:200], file=file, field=f"backtest.reference.{k}")
        refs[str(k)] = float(v)
    return BacktestConfig(actual, replicas, bin_min * 60, documented, note, MappingProxyType(refs))


def _integer(raw: Mapping[str, Any], key: str, default: int, lo: int, hi: int, file: str) -> int:
    v = raw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise InputError(f"must be a whole number in [{lo}, {hi}], got {v!r}"[:200], file=file, field=f"backtest.{key}")
    return int(v)
