"""Leverage-targeting holders: the fire-sale flow of investors who keep their leverage constant.

A holder group has an exposure of ``N`` base units (worth ``A = N * p`` USD) financed by equity
``E = A / L``: it targets leverage ``L`` (>= 1). A price change ``dp`` changes its equity by ``N * dp`` and,
to restore ``L``, it trades. A fall makes it **sell**, which moves the price, which makes it sell
again: the leverage spiral of ``shared/docs/oracles.md`` §5 (``r_total = r0 / (1 - m)``,
``m = kappa (L - 1) A / D`` under linear impact ``kappa`` per USD sold relative to depth ``D``). A rise
makes it buy.

Two conventions (``convention``):

- ``"exact"``: exposure and equity are revalued at every call. After a move from ``p`` to ``p'`` the
  equity is ``E' = E + N (p' - p)`` and the holder trades to ``N' = L * max(E', 0) / p'``, i.e.
  ``N' - N = (L - 1) N (p' - p) / p'`` base units while ``E > 0``: for one move, exactly the oracle's
  sale ``(L - 1) A |r|`` in USD at ``p'``. A holder whose equity is gone sells everything.
- ``"first_order"``: the oracle's convention for the series. The exposure ``N0`` and the price base
  ``p0`` are those of the start (assets not revalued, returns additive in units of ``p0``): a move
  ``dp`` trades ``(L - 1) * N0 * dp / p0`` base units. Driven round by round through linear impact it
  reproduces ``r0 * sum_{k<n} m^k`` exactly (``tests/behaviour/test_leverage_targeting.py``, with
  :func:`optimizer.market.leverage_spiral` and :func:`optimizer.market.price_factor`).

**Calling it.** :meth:`LeverageTargeters.start` once per path set, then :meth:`LeverageTargeters.step`
once per round or step with the price the holders see (one per path); it returns the signed flow in base
units (``< 0`` sells) and the new :class:`HolderState` (its :class:`~optimizer.behaviour.FlowTally` is
the holders' share of the selling). No I/O except :func:`load_leverage_targeters`.

Data: ``data/behaviour/leverage_targeting_example.json`` holds the §5 example (USD 1bn of assets at
10x), as a scenario-ready example, not a measured population.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ._tally import FlowTally

CONVENTIONS = ("exact", "first_order")


@dataclass(frozen=True)
class HolderState:
    """Per path and holder group: exposure (base units) and equity (USD); the last price seen; the tally."""

    exposure_base: np.ndarray  # (n_paths, n_groups)
    equity_usd: np.ndarray  # (n_paths, n_groups)
    price_usd: np.ndarray  # (n_paths,) price at the last call
    start_price_usd: np.ndarray  # (n_paths,) p0 of the first-order convention
    tally: FlowTally


@dataclass(frozen=True)
class LeverageTargeters:
    """Holder groups with assets ``exposure_usd`` (at the start price) and target leverage ``target_leverage``."""

    exposure_usd: np.ndarray  # (n_groups,) A at the start
    target_leverage: np.ndarray  # (n_groups,) L >= 1
    convention: str = "exact"
    sources: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.convention not in CONVENTIONS:
            raise ValueError(f"convention must be one of {CONVENTIONS}, got {self.convention!r}")

    def start(self, n_paths: int, price_usd: float | np.ndarray) -> HolderState:
        """Holders at their target leverage at the start price (scalar or one per path)."""
        p = np.broadcast_to(np.asarray(price_usd, dtype=np.float64), (n_paths,)).copy()
        a = np.broadcast_to(self.exposure_usd, (n_paths, self.exposure_usd.size))
        return HolderState(a / p[:, None], a / self.target_leverage, p, p.copy(), FlowTally.zeros(n_paths))

    def trade_base(self, state: HolderState, price_usd: np.ndarray) -> np.ndarray:
        """Per path and group: base units each group trades to restore its leverage at ``price_usd``."""
        p1 = np.broadcast_to(np.asarray(price_usd, dtype=np.float64), state.price_usd.shape)[:, None]
        p = state.price_usd[:, None]
        if self.convention == "first_order":
            n0 = self.exposure_usd / state.start_price_usd[:, None]
            return (self.target_leverage - 1.0) * n0 * (p1 - p) / state.start_price_usd[:, None]
        equity = state.equity_usd + state.exposure_base * (p1 - p)
        return self.target_leverage * np.maximum(equity, 0.0) / p1 - state.exposure_base

    def step(self, state: HolderState, price_usd: np.ndarray) -> tuple[np.ndarray, HolderState]:
        """Trade to the target leverage at this price; returns the signed flow per path and the new state."""
        p1 = np.broadcast_to(np.asarray(price_usd, dtype=np.float64), state.price_usd.shape)
        trade = self.trade_base(state, p1)
        flow = trade.sum(axis=1)
        if self.convention == "first_order":  # not revalued
            nxt = HolderState(state.exposure_base, state.equity_usd, p1.copy(), state.start_price_usd,
                              state.tally.add(flow))
        else:
            equity = np.maximum(state.equity_usd + state.exposure_base * (p1 - state.price_usd)[:, None], 0.0)
            nxt = HolderState(state.exposure_base + trade, equity, p1.copy(), state.start_price_usd,
                              state.tally.add(flow))
        return flow, nxt


def leverage_targeters(spec: Mapping[str, Any], *, file: str | None = None) -> LeverageTargeters:
    """Build and validate holder groups from a dict (the JSON format of ``data/behaviour/``).

    ``spec["holders"]`` is a non-empty list of ``{"exposure_usd", "target_leverage"}`` (a value may be
    ``{"value": x, "source": "..."}``); ``spec["convention"]`` is ``exact`` (default) or ``first_order``.
    """
    groups = spec.get("holders")
    if not isinstance(groups, list) or not groups:
        raise InputError("must be a non-empty list of holder groups", file=file, field="holders")
    a, lev = [], []
    for i, g in enumerate(groups):
        where = f"holders[{i}]."
        if not isinstance(g, Mapping):
            raise InputError("must be an object", file=file, field=where[:-1])
        for key, lo, hi, out in (("exposure_usd", 0.0, 1e13, a), ("target_leverage", 1.0, 1e3, lev)):
            v = g.get(key)
            v = v.get("value") if isinstance(v, Mapping) else v
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or not lo <= v <= hi:
                raise InputError(f"must be a number in [{lo:g}, {hi:g}], got {v!r}", file=file, field=f"{where}{key}")
            out.append(float(v))
    conv = spec.get("convention", "exact")
    if conv not in CONVENTIONS:
        raise InputError(f"must be one of {', '.join(CONVENTIONS)}, got {conv!r}", file=file, field="convention")
    sources = {f"holders[{i}].{k}": str(v["source"]) for i, g in enumerate(groups) for k, v in g.items()
               if isinstance(v, Mapping) and "source" in v}
    return LeverageTargeters(np.array(a), np.array(lev), conv, sources)


def load_leverage_targeters(path: str | Path) -> LeverageTargeters:
    """Read a holder-groups JSON file (the I/O edge of this module)."""
    from ..snapshots import read_json

    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError("must be a JSON object", file=str(path))
    return leverage_targeters(data, file=str(path))
