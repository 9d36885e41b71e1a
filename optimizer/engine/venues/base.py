"""The venue-simulator interface: what the one cascade loop asks of every venue, and when.

A venue simulator is a thin, stateful wrapper over one venue's pure rules in ``protocols/`` (an adapter)
for one scenario protocol (``id``) and one candidate parameter set. The cascade loop
(:func:`optimizer.engine.reference.run_reference`) knows no venue name: it builds one simulator per
protocol through the registry (:func:`optimizer.engine.venues.simulator_for`) and drives all of them
through this lifecycle, on every path:

**per path** -- ``start_path(path)``: reset the book, auctions, reserves, insurance funds to the
scenario's start; the simulator keeps ``path.ledger`` row ``path.k`` and appends events to
``path.events`` (tuples in :data:`~optimizer.engine.ledger.EVENT_DTYPE` order) when it is not None.

**per step** ``t`` (after the market recovered: every pool's flow decayed by one step):

1. ``start_step(view)`` -- per-step state before anything trades: call budgets, funding, auction resets,
   circuit breakers (Maker's ClipperMom trip reads the round-0 prices of ``view``);
2. rounds to the in-step fixed point. In each round every simulator, in protocol order, sees the same
   :class:`MarketView` (prices and pool flows at the round's start) in
   ``round(view) -> RoundResult``: it liquidates what its rules and its liquidators allow and returns the
   **signed flows per pool** it sends to the market (tokens: + sold into the pool, − bought from it)
   and its **ledger deltas**; then every simulator gets ``settle(view)`` with ``view.round_flow``
   holding the round's flows so far (secondary sales that trade against them: Comet's storefront).
   When no simulator acted the step is done; otherwise the loop applies the round's flows to the pools
   (prices move) and starts the next round;
3. ``end_step(view)`` -- the loss waterfall of what the step left (insurance fund, backstop, ADL for
   perp venues; nothing for lending venues), returning ledger deltas.

**end of path** -- ``end_path(final) -> deltas``: what is open at the horizon (underwater debt, the
certain deficit of accounts left liquidatable, unsold inventory, running auctions) at the final market
close, plus per-position counts (``account_liquidated``).

A simulator declares the ledger fields it fills (``ledger_fields``, on top of the core fields) and its
oracle (:class:`OracleSpec`: which bar extreme each side reads, the lag, an OSM-style feed). It may
declare that the fast kernel mirrors its rules (``kernel_spec``), built from the adapter's public
``position_terms``; otherwise the evaluation runs on this reference loop.

The contract every simulator passes is :mod:`optimizer.engine.testing` (shipped, reusable).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from protocols import Adapter

from ...scenario.book import ProtocolBook
from ...scenario.config import LiquidatorConfig
from ..ledger import Ledger, LedgerField

SIDES = ("low", "close", "high")


@dataclass(frozen=True)
class OracleSpec:
    """Which market price a venue's oracle reports, per side of a position.

    With ``lag_steps == 0`` the oracle reads the current bar's market price on the side a position is
    hurt by: collateral at the bar's ``low`` and debt at its ``high`` (a crash or a squeeze inside a bar
    is not missed). With ``lag_steps > 0`` it reads the market close ``lag_steps`` steps ago (a scenario
    lag, an OSM hop). ``feed_lag_steps`` is the feed an OSM-style oracle will report next (Maker's
    ``peep``): the market close that many steps ago (0: the current close).
    """

    lag_steps: int = 0
    collateral_side: str = "low"
    debt_side: str = "high"
    feed_lag_steps: int = 0

    def __post_init__(self) -> None:
        if self.collateral_side not in SIDES or self.debt_side not in SIDES:
            raise ValueError(f"oracle sides must be one of {SIDES}")


@dataclass(frozen=True)
class VenueContext:
    """Everything static a simulator needs for one candidate (built once per evaluation)."""

    index: int  # protocol position in the scenario (ledger column)
    id: str
    adapter: Adapter
    book: ProtocolBook
    coll_market: np.ndarray  # (C,) market asset index of each book collateral column
    debt_market: np.ndarray  # (D,)
    coll_pool: np.ndarray  # (C,) pool each column's flows go to (default: the asset's pool)
    debt_pool: np.ndarray  # (D,)
    liquidators: LiquidatorConfig
    step_s: float
    scenario_lag_steps: int
    reserves_usd: float = 0.0
    keepers: Any = None  # optimizer.behaviour.keepers.KeeperPopulation of the protocol (auction venues)
    topups: Any = None  # optimizer.behaviour.topups.TopupModel of the protocol (Maker 1.x vault owners)
    seed: int = 0  # the scenario's seed (behaviour draws per path: np.random.default_rng([seed, index, path]))
    market_volume: np.ndarray | None = None  # (A, T+1) base-asset volume traded in bar t (replays; nan: unknown)
    options: dict[str, Any] = field(default_factory=dict)  # venue-specific scenario keys (perp: adl_policy)


@dataclass
class PathContext:
    """One path: the ledger row to fill, the event and trace sinks, the path's initial prices."""

    k: int  # ledger row
    path: int  # path index in the prepared paths
    ledger: Ledger
    close0: np.ndarray  # (A,) prices at t = 0
    events: list[tuple] | None = None
    trace: list[dict] | None = None


@dataclass
class MarketView:
    """The market as one round of step ``t`` sees it (arrays are shared: read, do not write).

    ``low``/``close``/``high`` are market prices per asset (exogenous bar × the impact factor of the
    asset's pool at the round's start); ``exo_*`` the exogenous bar; ``flow`` each pool's signed state at
    the round's start; ``round_flow`` the flows the round has produced so far (filled between the
    ``round`` and ``settle`` phases); ``hist_*`` the market close / low / high of completed steps.
    """

    t: int
    rnd: int
    now_s: float
    low: np.ndarray
    close: np.ndarray
    high: np.ndarray
    exo_low: np.ndarray
    exo_close: np.ndarray
    exo_high: np.ndarray
    flow: np.ndarray
    round_flow: np.ndarray
    hist_close: np.ndarray
    hist_low: np.ndarray
    hist_high: np.ndarray
    liquidity: np.ndarray  # (pools, 5) rows of optimizer.engine._market
    gas_usd: float  # one liquidation call's gas this step
    gas_gwei: float = float("nan")  # the step's gas price (nan: not known to the caller)

    @property
    def first_round(self) -> bool:
        return self.rnd == 0

    def _now(self, side: str) -> np.ndarray:
        return self.low if side == "low" else self.high if side == "high" else self.close

    def _hist(self, side: str) -> np.ndarray:
        return self.hist_low if side == "low" else self.hist_high if side == "high" else self.hist_close

    def oracle(self, spec: OracleSpec, side: str, idx: np.ndarray | int) -> np.ndarray:
        """The oracle price of market assets ``idx`` for a position ``side`` ("collateral" / "debt")."""
        if spec.lag_steps == 0:
            return self._now(spec.collateral_side if side == "collateral" else spec.debt_side)[idx]
        return self.hist_close[max(self.t - spec.lag_steps, 0)][idx]

    def past_oracle(self, spec: OracleSpec, side: str, idx: np.ndarray | int, delay_steps: int) -> np.ndarray:
        """The oracle price ``delay_steps`` steps ago (what a slow liquidator has seen)."""
        tp = max(self.t - delay_steps, 0)
        if spec.lag_steps == 0:
            return self._hist(spec.collateral_side if side == "collateral" else spec.debt_side)[tp][idx]
        return self.hist_close[max(tp - spec.lag_steps, 0)][idx]

    def feed(self, spec: OracleSpec, idx: np.ndarray | int) -> np.ndarray:
        """The feed an OSM-style oracle reads now (its next price)."""
        if spec.feed_lag_steps == 0:
            return self.close[idx]
        return self.hist_close[max(self.t - spec.feed_lag_steps, 0)][idx]


@dataclass(frozen=True)
class FinalView:
    """The horizon: market close per asset at the last step."""

    close: np.ndarray


@dataclass
class RoundResult:
    """What one simulator did in one round (or settle phase, or the end of a step)."""

    acted: bool = False  # changed anything (another round is needed)
    liquidated: bool = False  # a liquidation happened (first/last liquidation step)
    flows: np.ndarray | None = None  # (pools,) signed tokens: + sold into the pool, - bought from it
    ledger: dict[str, float] = field(default_factory=dict)  # venue-axis deltas for this path


NOTHING = RoundResult()


@dataclass(frozen=True)
class KernelSpec:
    """Per-leg terms and per-venue constants for one of the kernel's mirrored rules.

    ``rule`` is one of :data:`optimizer.engine.kernel.RULES`; ``lt``/``lb``/``fee`` are
    ``(n_positions, n_collateral_columns)`` arrays over the whole book, in the rule's convention: the
    health weight (0: the column is neither counted nor seizable), the liquidation multiplier
    (close-factor call: the bonus; absorb: the liquidation factor) and the protocol's share of the
    bonus. ``constants`` are the rule's per-venue numbers (:data:`optimizer.engine.kernel.VENUE_CONSTANTS`);
    ``store_factor`` per collateral column (absorb: liquidation factor of the storefront price);
    ``collateral_paused`` / ``debt_paused`` per book column: liquidations seizing / repaying that asset
    are refused (None: nothing paused). ``auctions`` (:class:`AuctionTerms`) for the auction rule.
    """

    rule: int
    lt: np.ndarray
    lb: np.ndarray
    fee: np.ndarray
    constants: dict[str, float]
    store_factor: np.ndarray | None = None
    collateral_paused: np.ndarray | None = None
    debt_paused: np.ndarray | None = None
    auctions: AuctionTerms | None = None  # the auction rule's terms (its vaults stay out of the call rules)


@dataclass(frozen=True)
class AuctionTerms:
    """The terms of the kernel's auction rule (Liquidations 2.0: Dog bark, Clipper kick/redo/take, abacus).

    Per collateral column (an ilk) of the book: the liquidation ratio ``mat`` (unsafe when
    ``ink·P/mat < art``), the penalty ``chop``, ``dust_dai`` (and ``chost_dai = dust·chop``), the per-ilk
    cap ``hole_dai``, the start multiplier ``buf``, the reset terms ``tail_s`` / ``cusp``, the keeper
    incentives ``tip_dai`` / ``chip``, the circuit-breaker ``tolerance`` (nan: none), the initial
    ``stopped`` level and the abacus (``calc_kind`` index into ``protocols.maker.CALC_TYPES``, ``cut``,
    ``step_s``, ``tau_s``). ``Hole_dai`` is the venue-wide cap, ``vault_column`` the column each vault
    holds its collateral in, ``feed_lag_steps`` the lag of the breaker's next-price feed.
    """

    mat: np.ndarray
    chop: np.ndarray
    dust_dai: np.ndarray
    chost_dai: np.ndarray
    hole_dai: np.ndarray
    buf: np.ndarray
    tail_s: np.ndarray
    cusp: np.ndarray
    chip: np.ndarray
    tip_dai: np.ndarray
    tolerance: np.ndarray
    stopped: np.ndarray
    calc_kind: np.ndarray
    cut: np.ndarray
    step_s: np.ndarray
    tau_s: np.ndarray
    Hole_dai: float
    vault_column: np.ndarray
    feed_lag_steps: int


@dataclass(frozen=True)
class PerpKernelSpec:
    """A perp venue the perp kernel (:mod:`optimizer.engine.kernel_perp`) runs: its adapter's
    :class:`protocols.MarketOrderRule` and the simulator's own terms.

    ``adl_policy`` is ``"queue"`` or ``"pro_rata"``; ``mark_asset`` / ``pool`` per book row (the market asset
    its mark reads, the pool its orders trade in); ``rounds_per_step`` the passes per step;
    ``cooldown_s`` the partial-liquidation cooldown; ``fees_to_fund`` whether fees are the insurance fund's
    income; ``insurance_fund_usd`` / ``backstop_usd`` the balances at each path's start; ``band_*`` the price
    band and ``stress_*`` the stress margin when they are on; ``funding_*`` the scenario's funding when it is given.
    """

    rule: Any  # protocols.MarketOrderRule
    adl_policy: str
    mark_asset: np.ndarray
    pool: np.ndarray
    rounds_per_step: int
    cooldown_s: float
    fees_to_fund: bool
    insurance_fund_usd: float
    backstop_usd: float
    #: the price band (``breakers.price_band_*``), off when ``band_window_steps == 0``: the move, the window in
    #: completed steps (``ceil(window / step)``, at least 1), the halt
    band_move: float = 1.0
    band_window_steps: int = 0
    band_halt_s: float = 0.0
    #: the stress margin (``breakers.stress_*``), off when ``stress_window_steps == 0``: the multiplier of the
    #: maintenance margin, the move that holds the condition, its window in completed steps
    stress_multiplier: float = 1.0
    stress_move: float = 1.0
    stress_window_steps: int = 0
    #: with a breaker on: the mark asset of each adapter market (-1: none), whose breakers act on their own
    breaker_market_asset: np.ndarray | None = None
    #: scenario funding (``funding``): the rate per interval and the interval, s (0: no funding)
    funding_rate: float = 0.0
    funding_interval_s: float = 0.0
    #: the backstop vault's unwind (``backstop_unwind_steps``; 0: it holds what it took over)
    unwind_steps: int = 0


class VenueSimulator(abc.ABC):
    """One venue on one path at a time; the lifecycle is in the module docstring."""

    #: ledger fields this venue fills on top of :data:`optimizer.engine.ledger.CORE_FIELDS`
    ledger_fields: ClassVar[tuple[LedgerField, ...]] = ()

    def __init__(self, ctx: VenueContext) -> None:
        self.ctx = ctx
        self.oracle_spec = self.make_oracle(ctx)

    # ------------------------------------------------------------------ static declarations
    @classmethod
    def make_oracle(cls, ctx: VenueContext) -> OracleSpec:
        """The venue's oracle: the scenario lag plus the adapter's own delay (an OSM hop), in steps."""
        delay = int(round(ctx.adapter.circuit_breakers().oracle_delay_s / ctx.step_s))
        return OracleSpec(lag_steps=ctx.scenario_lag_steps + delay, feed_lag_steps=ctx.scenario_lag_steps)

    def kernel_spec(self) -> KernelSpec | str:
        """The kernel rule that mirrors this venue exactly, or why none does (a reason)."""
        return f"{self.ctx.adapter.title}: no kernel rule mirrors this venue"

    def initial_debt_usd(self, close0: np.ndarray) -> float:
        """The book's debt (exposure) at the path's initial prices, USD."""
        b = self.ctx.book.book
        return float((b.debt_tokens * close0[self.ctx.debt_market]).sum())

    # ------------------------------------------------------------------ lifecycle
    def start_path(self, path: PathContext) -> None:
        self.path = path

    def start_step(self, view: MarketView) -> None:  # noqa: B027 - optional hook
        pass

    @abc.abstractmethod
    def round(self, view: MarketView) -> RoundResult:
        """Liquidate at the round's prices; return flows per pool and ledger deltas."""

    def settle(self, view: MarketView) -> RoundResult:
        """Secondary sales against the round's flows so far (``view.round_flow``)."""
        return NOTHING

    def end_step(self, view: MarketView) -> RoundResult:
        """The loss waterfall of the step (perp venues); lending venues have none."""
        return NOTHING

    @abc.abstractmethod
    def end_path(self, final: FinalView) -> dict[str, Any]:
        """Horizon deltas: venue-axis floats, position-axis arrays (``account_liquidated``)."""

    # ------------------------------------------------------------------ helpers
    def n_pools(self, view: MarketView) -> int:
        return view.flow.shape[0]

    def emit(self, row: tuple) -> None:
        if self.path.events is not None:
            self.path.events.append(row)
