"""The flow-source interface: non-protocol forced flows the cascade loop drives next to the venues.

A flow source is a stateful wrapper over one pure behaviour model of :mod:`optimizer.behaviour`
(option dealers' delta hedging, leverage-targeting holders, stop-loss clusters) for one
``[[forced_flows]]`` table of the scenario. It is not a venue: it holds no positions the protocols
liquidate, has no oracle, no waterfall and no per-venue ledger column. It trades on one market asset's
pool, the same pool lending and perp liquidators trade on, so it feeds the cascade and is fed by it.

The loop (:func:`optimizer.engine.reference.run_reference`) builds one source per table through the
registry (:func:`optimizer.engine.flows.flow_source_for`) and drives every source, on every path:

**per path** -- ``start_path(path)``: the model's state at the path's start price (dealers hedged,
holders at their target leverage, stops already crossed at the start fired).

**per round** of every step (after the venues' ``round`` and before their ``settle``, at the same
:class:`~optimizer.engine.venues.MarketView`: the prices at the round's start) -- ``round(view)``: the
model trades on what it sees; the source returns a :class:`~optimizer.engine.venues.RoundResult` with
its signed flow in its pool (tokens: + sold into the pool, - bought from it, the engine's convention;
the models' own convention is the opposite, ``< 0`` sells) and its ledger deltas (path axis: USD sold
and bought at the round's market close). ``acted`` is True when it traded, so the loop runs another
round: the rounds are synchronous, exactly the fire-sale rounds of ``oracles.md`` §5.

Trades smaller than ``min_trade_usd`` (the scenario key, default 1 USD) are not sent (the model keeps
its state, so the gap is traded once it is large enough): a converging spiral ends after finitely many
rounds. A source trades in at most :data:`MAX_ROUNDS_PER_STEP` rounds of one step (a diverging spiral
is stopped by the price floor of the liquidity model first).

A source may declare that the fast kernel mirrors it (``kernel_spec``: the kernel's model and the model's
data as arrays, :mod:`optimizer.engine.kernel_flows`); otherwise a scenario with it runs on this loop.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..ledger import LedgerField
from ..venues.base import NOTHING, MarketView, PathContext, RoundResult

#: rounds of one step in which a source may trade at most
MAX_ROUNDS_PER_STEP = 10_000

#: the loop's own field when a scenario has forced flows: every forced seller's sales, USD
FORCED_SOLD_FIELD = LedgerField(
    "forced_sold_usd", "USD", "path",
    "Forced selling of the whole cascade: tokens sold into the pools by liquidations (lending and perp venues, "
    "netted per venue, pool and round), by auction and storefront sales and by every forced-flow source, each "
    "at the round's market close of its asset")


@dataclass(frozen=True)
class FlowContext:
    """Everything static one flow source needs (built once per evaluation)."""

    index: int  # position of the table in the scenario's [[forced_flows]]
    id: str
    model: Any  # the behaviour model (DealerBook, LeverageTargeters, StopClusters, ...)
    asset: int  # market asset index it trades
    pool: int  # pool its flows go to (the asset's pool)
    step_s: float
    min_trade_usd: float = 1.0


class FlowSource(abc.ABC):
    """One forced-flow source on one path at a time (lifecycle in the module docstring).

    Subclasses set ``name`` (the scenario's ``model = "..."``), ``data_keys`` (the keys of the model's
    own data, inline in the table or in its JSON file) and ``build`` (the behaviour module's validating
    builder: ``build(spec_dict, file=...) -> model``), and implement ``reset`` and ``trade``.
    """

    name: ClassVar[str]
    data_keys: ClassVar[tuple[str, ...]]

    @staticmethod
    @abc.abstractmethod
    def build(spec: Mapping[str, Any], *, file: str | None = None) -> Any:
        """The validated behaviour model from its data (one-line :class:`~optimizer.errors.InputError`)."""

    @classmethod
    def ledger_fields(cls) -> tuple[LedgerField, ...]:
        n = cls.name
        return (LedgerField(f"{n}_sold_usd", "USD", "path", f"Sold into the market by the {n} forced flows "
                            "(at the round's market close)"),
                LedgerField(f"{n}_bought_usd", "USD", "path", f"Bought from the market by the {n} forced flows "
                            "(at the round's market close)"))

    def __init__(self, ctx: FlowContext) -> None:
        self.ctx = ctx
        self.sold_field, self.bought_field = (f.name for f in self.ledger_fields())

    # ------------------------------------------------------------------ lifecycle
    def start_path(self, path: PathContext) -> None:
        self.path = path
        self.state = self.reset(float(path.close0[self.ctx.asset]))
        self.rounds_t, self.rounds = -1, 0

    def round(self, view: MarketView) -> RoundResult:
        if view.t != self.rounds_t:
            self.rounds_t, self.rounds = view.t, 0
        if self.rounds >= MAX_ROUNDS_PER_STEP:
            return NOTHING
        a = self.ctx.asset
        price = float(view.close[a])
        flow_base, state = self.trade(self.state, view)
        if abs(flow_base) * price < self.ctx.min_trade_usd:
            return NOTHING  # too small to send: the model keeps the state it had
        self.state = state
        self.rounds += 1
        flows = np.zeros(view.flow.shape[0])
        flows[self.ctx.pool] = -flow_base  # the models' sells (< 0) are sales into the pool (+)
        usd = abs(flow_base) * price
        deltas = {self.sold_field: usd} if flow_base < 0 else {self.bought_field: usd}
        return RoundResult(True, False, flows, deltas)

    def end_path(self) -> dict[str, float]:
        """Horizon deltas (path axis); none by default."""
        return {}

    def kernel_spec(self) -> Any:
        """The fast kernel's mirror of this source (a :class:`~optimizer.engine.kernel_flows.KFlowSpec`: its
        model's rule and data), or why none mirrors it (a reason: the evaluation runs on the reference loop)."""
        return f"forced flows {self.ctx.id}: the kernel mirrors no {self.name} model"

    # ------------------------------------------------------------------ the model
    @abc.abstractmethod
    def reset(self, price_usd: float) -> Any:
        """The model's state at the path's start price (one path)."""

    @abc.abstractmethod
    def trade(self, state: Any, view: MarketView) -> tuple[float, Any]:
        """The model's signed flow in base units (``< 0`` sells) at this round and its state after it."""
