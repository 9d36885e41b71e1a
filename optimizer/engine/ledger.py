"""The per-path ledger of one evaluation: core fields plus the fields each venue declares.

Both engines fill one :class:`Ledger`; results, metrics, JSON and reports iterate its fields instead of
a fixed, lending-shaped list. A field is declared once, with its unit, its axis and whether it is a
reported metric:

* ``axis="venue"``: ``(n_paths, n_venues)``, one value per path and venue (a venue that does not
  declare the field keeps 0);
* ``axis="path"``: ``(n_paths,)``;
* ``axis="asset"``: ``(n_paths, n_assets)`` over the market's assets;
* ``axis="position"``: per venue an ``(n_positions,)`` array summed over paths (a count of paths).

:data:`CORE_FIELDS` hold for every venue (a forced closure is a liquidation, whatever the venue); each
venue simulator adds its own (``VenueSimulator.ledger_fields``), e.g. the lending venues' debt repaid,
liquidator bonus and protocol fee, Maker's keeper incentives. Arrays are reachable as attributes
(``ledger.liquidations``) as well as by name (``ledger["liquidations"]``).

Event records (one per liquidation call, auction take or perp closure) use the record dtype
:data:`EVENT_DTYPE`; ``collateral`` is the book column of the collateral seized (-1: none).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

AXES = ("venue", "path", "asset", "position")


@dataclass(frozen=True)
class LedgerField:
    """One per-path result: its name, unit, axis, initial value and whether it is a reported metric."""

    name: str
    unit: str
    axis: str
    description: str
    dtype: str = "f8"
    init: float = 0.0
    metric: bool = False  # summarised by SimulationResult.metrics() (mean, stderr, p99 over paths)

    def __post_init__(self) -> None:
        if self.axis not in AXES:
            raise ValueError(f"ledger field {self.name}: axis must be one of {AXES}, got {self.axis!r}")


CORE_FIELDS: tuple[LedgerField, ...] = (
    LedgerField("liquidations", "calls", "venue",
                "Forced closures: liquidation calls, absorbs, auctions kicked, perp liquidations"),
    LedgerField("collateral_seized_usd", "USD", "venue", "Collateral taken by liquidations, at the oracle price"),
    LedgerField("realised_bad_debt_usd", "USD", "venue", "Debt written off during the horizon", metric=True),
    LedgerField("unrealised_bad_debt_usd", "USD", "venue", "Open underwater debt at the horizon (debt - collateral)",
                metric=True),
    LedgerField("horizon_exposure_usd", "USD", "venue",
                "Certain deficit of accounts left liquidatable at the horizon (nobody liquidated them, e.g. gas "
                "exceeded the bonus), beyond their underwater part: the debt a liquidation at the final prices "
                "would leave uncovered minus max(debt - collateral, 0)", metric=True),
    LedgerField("inventory_usd", "USD", "venue", "Collateral the venue holds unsold at the horizon", metric=True),
    LedgerField("initial_debt_usd", "USD", "venue", "Debt (exposure) of the book at the start"),
    LedgerField("first_liquidation_step", "step", "path", "First step with a liquidation (-1: none)", "i8", -1.0),
    LedgerField("last_liquidation_step", "step", "path", "Last step with a liquidation (-1: none)", "i8", -1.0),
    LedgerField("market_low_min", "ratio", "asset", "Lowest market low over the horizon / initial price", init=1.0),
    LedgerField("exo_low_min", "ratio", "asset", "Lowest exogenous low over the horizon / initial price", init=1.0),
    LedgerField("account_liquidated", "paths", "position", "Paths on which the position was liquidated at least once",
                "i8"),
)

# Lending venues (Aave, Comet, Maker, any Adapter): the accounting identity of LiquidationOutcome.
LENDING_FIELDS: tuple[LedgerField, ...] = (
    LedgerField("debt_repaid_usd", "USD", "venue", "Debt repaid by liquidators (or raised by auctions)", metric=True),
    LedgerField("liquidator_bonus_usd", "USD", "venue", "Liquidators' bonus / discount", metric=True),
    LedgerField("protocol_fee_usd", "USD", "venue", "Protocol's share of the liquidation penalty", metric=True),
    LedgerField("returned_to_owner_usd", "USD", "venue", "Value returned to the account (Comet excess credit, "
                "Maker lot left after the tab)"),
    LedgerField("debt_removed_usd", "USD", "venue", "Initial minus final debt tokens, at the final debt price"),
)


class Ledger:
    """Per-path arrays of one evaluation, one per declared field (see the module docstring)."""

    def __init__(self, fields: Iterable[LedgerField], n_paths: int, n_venues: int, n_assets: int, n_steps: int,
                 positions: Sequence[int]) -> None:
        self.fields: tuple[LedgerField, ...] = _dedupe(fields)
        self.n_paths, self.n_protocols, self.n_assets, self.n_steps = n_paths, n_venues, n_assets, n_steps
        self.positions = tuple(int(n) for n in positions)
        self._data: dict[str, Any] = {f.name: self._empty(f) for f in self.fields}

    def _empty(self, f: LedgerField) -> Any:
        if f.axis == "position":
            return [np.full(n, f.init, f.dtype) for n in self.positions]
        shape = {"venue": (self.n_paths, self.n_protocols), "path": (self.n_paths,),
                 "asset": (self.n_paths, self.n_assets)}[f.axis]
        return np.full(shape, f.init, f.dtype)

    # ------------------------------------------------------------------ access
    def __getitem__(self, name: str) -> Any:
        return self._data[name]

    def __setitem__(self, name: str, value: Any) -> None:
        if name not in self._data:
            raise KeyError(f"'{name}' is not a declared ledger field")
        self._data[name] = value

    def __contains__(self, name: str) -> bool:
        return name in self._data

    def __getattr__(self, name: str) -> Any:
        data = self.__dict__.get("_data")
        if data is not None and name in data:
            return data[name]
        raise AttributeError(name)

    def field(self, name: str) -> LedgerField:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)

    def names(self, axis: str | None = None) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if axis is None or f.axis == axis)

    @property
    def n_venues(self) -> int:
        return self.n_protocols

    @property
    def bad_debt_usd(self) -> np.ndarray:
        """(paths, venues): realised + open underwater debt + horizon exposure (the certain deficit of
        accounts left liquidatable at the horizon)."""
        return self.realised_bad_debt_usd + self.unrealised_bad_debt_usd + self.horizon_exposure_usd

    def add(self, k: int, j: int, deltas: dict[str, float]) -> None:
        """Add a venue's per-path deltas (``{field: value}``) to row ``k``, venue ``j``."""
        for name, v in deltas.items():
            self._data[name][k, j] += v

    def mark_step(self, k: int, t: int) -> None:
        """Step ``t`` of row ``k`` had a liquidation (first / last liquidation step)."""
        if self.first_liquidation_step[k] < 0:
            self.first_liquidation_step[k] = t
        self.last_liquidation_step[k] = t

    @classmethod
    def like(cls, other: Ledger, n_paths: int) -> Ledger:
        return cls(other.fields, n_paths, other.n_protocols, other.n_assets, other.n_steps, other.positions)

    @classmethod
    def concat(cls, parts: list[Ledger]) -> Ledger:
        """Join results of consecutive path batches (paths are independent)."""
        first = parts[0]
        out = cls.like(first, sum(p.n_paths for p in parts))
        for f in first.fields:
            if f.axis == "position":
                out._data[f.name] = [sum(p[f.name][j] for p in parts) for j in range(first.n_protocols)]
            else:
                out._data[f.name] = np.concatenate([p[f.name] for p in parts])
        return out


def _dedupe(fields: Iterable[LedgerField]) -> tuple[LedgerField, ...]:
    out: dict[str, LedgerField] = {}
    for f in fields:
        if f.name in out and out[f.name] != f:
            raise ValueError(f"ledger field '{f.name}' declared twice with different definitions")
        out.setdefault(f.name, f)
    return tuple(out.values())


EVENT_DTYPE = np.dtype([
    ("path", np.int64), ("step", np.int64), ("protocol", np.int64), ("position", np.int64),
    ("collateral", np.int64), ("debt_repaid_usd", np.float64), ("collateral_seized_usd", np.float64),
    ("bonus_usd", np.float64), ("protocol_fee_usd", np.float64), ("bad_debt_usd", np.float64),
    ("price", np.float64),
])
EVENT_COLUMNS: tuple[str, ...] = tuple(EVENT_DTYPE.names or ())  # record fields, in order
EVENT_VALUE_COLUMNS: tuple[str, ...] = EVENT_COLUMNS[5:]  # the USD amounts and the price


def events_array(rows: list[tuple]) -> np.ndarray:
    """Event tuples (in :data:`EVENT_DTYPE` field order) as a record array."""
    return np.array([tuple(r) for r in rows], dtype=EVENT_DTYPE) if rows else np.zeros(0, EVENT_DTYPE)
