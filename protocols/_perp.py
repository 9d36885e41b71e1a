"""The perpetual-futures adapter family: a dense position book, the rules interface, one liquidation step.

Pure rules, like the lending adapters: no I/O, no simulation loop, frozen, vectorised over positions.
The loss waterfall and the ADL policies that follow a liquidation live in :mod:`protocols._perp_losses`.

Conventions (all venues)
------------------------
- ``side`` is +1 for a long, -1 for a short; ``size_base`` is unsigned, in base units (BTC, ETH).
- A *margin pool* is what the venue checks: an isolated position's own margin, or the account's
  cross collateral plus the unrealised PnL of all its cross positions. Every per-position result
  about equity or requirements is the value of the position's pool, broadcast to its rows.
- ``mark_usd`` is one price per position (shape ``(n,)``): the venue's mark for that position's
  market. With replayed last-trade bars the engine passes the bar low for longs and the bar high for
  shorts (:meth:`PerpBook.adverse_marks`); with one mark per market, :meth:`PerpBook.position_marks`.
- Signed flows are in base units: > 0 buys, < 0 sells. A liquidated long SELLS (flow -size), a
  liquidated short BUYS (flow +size).
"""

from __future__ import annotations

import abc
import copy
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import numpy as np

from ._base import CircuitBreakers, ParameterSchema, ParamSpec, SnapshotError, VenueAdapter, field_of

ISOLATED = 0
CROSS = 1

_LONG = 1
_TIER_TOL = 1e-12  # relative slack when a solved price lands on a tier boundary


# --------------------------------------------------------------------------------------------
# Book
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerpBook:
    """Perp positions of one venue as dense arrays (rows = positions; closed rows keep size 0).

    Fields
    ------
    markets : tuple of str
        Market names; ``market`` indexes into it. Must be markets of the adapter that reads the book.
    market : int64 (n,)
        Market of each position.
    side : int8 (n,)
        +1 long, -1 short.
    size_base : float64 (n,)
        Position size in base units, >= 0 (0 = closed row).
    entry_price_usd : float64 (n,)
        Average entry price, > 0.
    margin_usd : float64 (n,)
        Isolated margin of an isolated position (USD); 0 on cross rows.
    margin_mode : int8 (n,)
        :data:`ISOLATED` (0) or :data:`CROSS` (1).
    account : int64 (n,)
        Account of each position, ``0 <= account < n_accounts``. Cross rows of one account share its
        collateral; one account holds at most one open cross position per market (one-way mode).
    cross_collateral_usd : float64 (n_accounts,)
        Each account's cross collateral (wallet balance not allocated to isolated margin), USD.

    Arrays are never mutated in place; every rule returns new arrays or a new book.
    """

    markets: tuple[str, ...]
    market: np.ndarray
    side: np.ndarray
    size_base: np.ndarray
    entry_price_usd: np.ndarray
    margin_usd: np.ndarray
    margin_mode: np.ndarray
    account: np.ndarray
    cross_collateral_usd: np.ndarray

    def __post_init__(self) -> None:
        market = np.asarray(self.market, dtype=np.int64)
        n = market.shape[0]
        arrays = {
            "market": market,
            "side": np.asarray(self.side, dtype=np.int8),
            "size_base": np.asarray(self.size_base, dtype=np.float64),
            "entry_price_usd": np.asarray(self.entry_price_usd, dtype=np.float64),
            "margin_usd": np.asarray(self.margin_usd, dtype=np.float64),
            "margin_mode": np.asarray(self.margin_mode, dtype=np.int8),
            "account": np.asarray(self.account, dtype=np.int64),
        }
        for name, arr in arrays.items():
            if arr.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
        coll = np.asarray(self.cross_collateral_usd, dtype=np.float64)
        if coll.ndim != 1:
            raise ValueError(f"cross_collateral_usd must be one value per account, got shape {coll.shape}")
        if n and ((market < 0).any() or (market >= len(self.markets)).any()):
            raise ValueError(f"market index out of range for {len(self.markets)} markets")
        if not np.isin(arrays["side"], (-1, 1)).all():
            raise ValueError("side must be +1 (long) or -1 (short)")
        for name in ("size_base", "entry_price_usd", "margin_usd"):
            if not np.isfinite(arrays[name]).all():
                raise ValueError(f"{name} must be finite")
        if not np.isfinite(coll).all():
            raise ValueError("cross_collateral_usd must be finite")
        if (arrays["size_base"] < 0).any():
            raise ValueError("size_base must be >= 0")
        if (arrays["entry_price_usd"] <= 0).any():
            raise ValueError("entry_price_usd must be > 0")
        if not np.isin(arrays["margin_mode"], (ISOLATED, CROSS)).all():
            raise ValueError("margin_mode must be 0 (isolated) or 1 (cross)")
        cross = arrays["margin_mode"] == CROSS
        if (arrays["margin_usd"][cross] != 0).any():
            raise ValueError("cross rows carry no isolated margin (margin_usd must be 0; use cross_collateral_usd)")
        acct = arrays["account"]
        if n and ((acct < 0).any() or (acct >= coll.shape[0]).any()):
            raise ValueError(f"account index out of range for {coll.shape[0]} accounts")
        open_cross = cross & (arrays["size_base"] > 0)
        keys = acct[open_cross] * max(len(self.markets), 1) + market[open_cross]
        if np.unique(keys).size != keys.size:
            raise ValueError("an account holds two open cross positions in one market (one-way mode expected)")
        for name, arr in (*arrays.items(), ("cross_collateral_usd", coll)):
            if arr.flags.writeable:  # never freeze the caller's own array: keep a frozen copy
                arr = arr.copy()
                arr.flags.writeable = False
            object.__setattr__(self, name, arr)

    # --- construction -------------------------------------------------------------------------
    @classmethod
    def from_rows(
        cls,
        markets: tuple[str, ...],
        market: np.ndarray,
        side: np.ndarray,
        size_base: np.ndarray,
        entry_price_usd: np.ndarray,
        margin_usd: np.ndarray,
        margin_mode: np.ndarray,
        account: np.ndarray,
    ) -> PerpBook:
        """A book from one row per position, as in a positions CSV.

        ``margin_usd`` holds the isolated margin on isolated rows and the account's cross collateral
        on cross rows (repeated on each cross row of the account; the values must agree).
        Account ids (numbers or strings) are renumbered 0..A-1 in sorted order.
        """
        margin = np.asarray(margin_usd, dtype=np.float64)
        mode = np.asarray(margin_mode, dtype=np.int8)
        uniq, dense = np.unique(np.asarray(account), return_inverse=True)
        dense = dense.reshape(-1)
        cross = mode == CROSS
        coll = np.zeros(uniq.size)
        coll[dense[cross]] = margin[cross]
        if not np.array_equal(coll[dense[cross]], margin[cross]):
            raise ValueError("cross rows of one account give different cross collateral")
        return cls(markets, market, side, size_base, entry_price_usd, np.where(cross, 0.0, margin), mode,
                   dense, coll)

    def with_state(self, **changes: np.ndarray) -> PerpBook:
        """A copy with some arrays replaced (sizes, margins, collateral after a step)."""
        return replace(self, **changes)

    # --- facts ----------------------------------------------------------------------------------
    @property
    def n_positions(self) -> int:
        return int(self.market.shape[0])

    @property
    def n_accounts(self) -> int:
        return int(self.cross_collateral_usd.shape[0])

    @property
    def is_cross(self) -> np.ndarray:
        return self.margin_mode == CROSS

    def position_marks(self, mark_by_market_usd: np.ndarray) -> np.ndarray:
        """Per-position marks from one mark per market (shape ``(len(markets),)``)."""
        return np.asarray(mark_by_market_usd, dtype=np.float64)[self.market]

    def adverse_marks(self, low_by_market_usd: np.ndarray, high_by_market_usd: np.ndarray) -> np.ndarray:
        """Bar low for longs, bar high for shorts: the worst mark of a last-trade bar per position."""
        low = np.asarray(low_by_market_usd, dtype=np.float64)[self.market]
        high = np.asarray(high_by_market_usd, dtype=np.float64)[self.market]
        return np.where(self.side == _LONG, low, high)

    def notional_usd(self, mark_usd: np.ndarray) -> np.ndarray:
        return self.size_base * mark_usd

    def unrealized_pnl_usd(self, mark_usd: np.ndarray) -> np.ndarray:
        return self.side * self.size_base * (mark_usd - self.entry_price_usd)

    def pool_sum(self, values: np.ndarray) -> np.ndarray:
        """Sum of a per-position quantity over each position's margin pool, broadcast to its rows."""
        values = np.asarray(values, dtype=np.float64)
        cross = self.is_cross
        acct = np.bincount(self.account[cross], weights=values[cross], minlength=self.n_accounts)
        return np.where(cross, acct[self.account], values)

    def pool_collateral_usd(self) -> np.ndarray:
        """Isolated margin of isolated rows; the account's cross collateral on cross rows."""
        return np.where(self.is_cross, self.cross_collateral_usd[self.account], self.margin_usd)

    def open_interest(self, mark_usd: np.ndarray | None = None) -> OpenInterest:
        """Open interest per market and side from this book: size x mark, or size x entry without marks."""
        price = self.entry_price_usd if mark_usd is None else mark_usd
        value = self.size_base * price
        m = len(self.markets)
        longs = np.bincount(self.market, weights=np.where(self.side == _LONG, value, 0.0), minlength=m)
        shorts = np.bincount(self.market, weights=np.where(self.side == _LONG, 0.0, value), minlength=m)
        return OpenInterest(longs, shorts)


@dataclass(frozen=True)
class OpenInterest:
    """Open interest in USD, one value per market and side.

    Given to an adapter, it is indexed like ``adapter.markets``. The venue's whole market, not only
    the simulated book, is what OI-scaled rules read; the engine passes it when it knows it, otherwise
    the rules use the book's own (:meth:`PerpBook.open_interest`, indexed like ``book.markets``).
    """

    long_usd: np.ndarray
    short_usd: np.ndarray

    def side_usd(self, market: np.ndarray, side: np.ndarray) -> np.ndarray:
        return np.where(side == _LONG, self.long_usd[market], self.short_usd[market])


# --------------------------------------------------------------------------------------------
# Outcome of one liquidation step
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerpLiquidationOutcome:
    """What one liquidation step did to each position (USD, sizes in base units).

    A position can leave by one of three routes, each a signed size (long +, short -, except the
    market flow, which is the trade itself):

    - ``market_flow_base``: closed by a liquidation order (a long sells, flow < 0; a short buys,
      flow > 0) on the venue's order book, or against the pool for a pool venue (see
      ``PerpAdapter.liquidation_flow_destination``);
    - ``backstop_size_base``: handed with its margin to the backstop vault (Hyperliquid HLP);
      no trade now, the vault holds the position;
    - ``offset_size_base``: closed against opposite-side positions by ADL / deleveraging; an
      internal match, no market flow.

    ``closed_size_base = |market_flow_base| + |backstop_size_base| + |offset_size_base|``.

    Accounting identity, per position, exact up to float rounding::

        margin_released_usd + realized_pnl_usd
            = fee_usd + returned_to_owner_usd + backstop_takeover_usd - deficit_usd

    - ``margin_released_usd``: the closed part's share of its margin pool,
      ``side * closed * (entry - bankruptcy_price)``; the whole isolated margin for a full close.
    - ``realized_pnl_usd``: ``side * closed * (fill - entry)`` at the effective fill price
      (price impact included where the venue charges it).
    - ``fee_usd``: liquidation fees taken (to ``PerpAdapter.fee_recipient``), only out of a surplus.
    - ``returned_to_owner_usd``: what stays with the trader (in the remaining isolated margin or
      the account's cross collateral).
    - ``backstop_takeover_usd``: equity handed to the backstop vault with the position.
    - ``deficit_usd``: loss beyond margin (fill worse than bankruptcy). It is the input of the loss
      waterfall; ``insurance_eligible`` says whether it may draw on the insurance fund (False where
      the venue deleverages directly: dYdX negative-TNC deleveraging, Hyperliquid ADL).

    ``book`` is the book after the step; it assumes every deficit is made whole by the waterfall
    (venues never leave a negative balance: insurance fund, backstop or ADL cover it; what the
    waterfall cannot place is reported there as uncovered).
    """

    book: PerpBook
    liquidated: np.ndarray
    closed_size_base: np.ndarray
    market_flow_base: np.ndarray
    backstop_size_base: np.ndarray
    offset_size_base: np.ndarray
    fill_price_usd: np.ndarray
    bankruptcy_price_usd: np.ndarray
    margin_released_usd: np.ndarray
    realized_pnl_usd: np.ndarray
    fee_usd: np.ndarray
    returned_to_owner_usd: np.ndarray
    backstop_takeover_usd: np.ndarray
    deficit_usd: np.ndarray
    insurance_eligible: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    def totals(self) -> dict[str, float]:
        keys = ("margin_released_usd", "realized_pnl_usd", "fee_usd", "returned_to_owner_usd",
                "backstop_takeover_usd", "deficit_usd")
        out = {k: float(np.sum(getattr(self, k))) for k in keys}
        out["sold_base"] = float(np.sum(np.maximum(-self.market_flow_base, 0.0)))
        out["bought_base"] = float(np.sum(np.maximum(self.market_flow_base, 0.0)))
        out["liquidations"] = int(self.liquidated.sum())
        return out


@dataclass(frozen=True)
class PerpCircuitBreakers(CircuitBreakers):
    """Lending breakers plus the perp venues' throughput limits and halts, as plain data.

    - ``partial_liquidation_cooldown_s``: after a partial liquidation, orders are for the whole
      position for this long (Hyperliquid: 30 s).
    - ``max_position_fraction_liquidated_per_step`` / ``min_position_notional_liquidated_usd``:
      per-position cap per block (dYdX: 10 %, but at least $1,000 of notional).
    - ``max_notional_liquidated_per_account_per_step_usd``: per-subaccount cap per block (dYdX $100k).
    - ``max_insurance_loss_per_account_per_step_usd``: insurance-fund payout cap per subaccount
      per block (dYdX $1M); a fill needing more is not matched.
    - ``price_band_ratio``: market orders may not trade further than this from the mark
      (Binance ``marketTakeBound``).
    - ``max_open_interest_usd``: per market; opening beyond it is refused (GMX ``maxOpenInterest``).

    Tunable breakers every perp venue has (:data:`BREAKER_PARAMS`, parameters ``breakers.*``; no venue
    sets them: each is off at its current value, so a search or a scenario switches it on):

    - ``price_band_move`` / ``price_band_window_s`` / ``price_band_halt_s``: when a market's price has
      moved more than ``price_band_move`` (a fraction) against any close of the last ``price_band_window_s``
      seconds, liquidations on that market halt for ``price_band_halt_s`` seconds (1 = off: a fall is at
      most 100 %).
    - ``stress_margin_multiplier`` / ``stress_move`` / ``stress_window_s``: while a market's price has
      moved more than ``stress_move`` within ``stress_window_s`` seconds, its maintenance margin is
      multiplied by ``stress_margin_multiplier`` (1 = off); see :meth:`PerpAdapter.with_margin_multiplier`.

    The limits applied inside one ``liquidate`` call (dYdX block limits) are already enforced there;
    the others (cooldowns, bands, OI caps, stress margins) are for the simulator to enforce over time.
    """

    partial_liquidation_cooldown_s: float = 0.0
    max_position_fraction_liquidated_per_step: float = 1.0
    min_position_notional_liquidated_usd: float = 0.0
    max_notional_liquidated_per_account_per_step_usd: float = np.inf
    max_insurance_loss_per_account_per_step_usd: float = np.inf
    price_band_ratio: float = np.inf
    max_open_interest_usd: Mapping[str, float] = field(default_factory=dict)
    price_band_move: float = 1.0
    price_band_window_s: float = 300.0
    price_band_halt_s: float = 300.0
    stress_margin_multiplier: float = 1.0
    stress_move: float = 0.05
    stress_window_s: float = 3600.0

    @property
    def price_band_on(self) -> bool:
        """A band halts liquidations (a move below 100 % and a halt of some length)."""
        return self.price_band_move < 1.0 and self.price_band_halt_s > 0

    @property
    def stress_margin_on(self) -> bool:
        return self.stress_margin_multiplier != 1.0


#: the tunable breakers of every perp venue: (name, unit, lower, upper, current (off), description)
BREAKER_PARAMS: tuple[tuple[str, str, float, float, float, str], ...] = (
    ("price_band_move", "fraction", 0.001, 1.0, 1.0,
     "Price band: liquidations on a market halt when its price moved more than this fraction against a close "
     "of the band window (1 = off)."),
    ("price_band_window_s", "s", 60.0, 86_400.0, 300.0, "Price band: the window the move is measured over."),
    ("price_band_halt_s", "s", 0.0, 86_400.0, 300.0, "Price band: how long liquidations halt after it trips."),
    ("stress_margin_multiplier", "x", 1.0, 10.0, 1.0,
     "Stress margin: maintenance margin x this while the stress condition holds (1 = off)."),
    ("stress_move", "fraction", 0.001, 1.0, 0.05,
     "Stress margin: the condition holds while the market moved more than this within the stress window."),
    ("stress_window_s", "s", 60.0, 86_400.0, 3600.0, "Stress margin: the window of the stress condition."),
)
BREAKER_SOURCE = ("cascade circuit-breaker lever (issue 12; docs/scenario_format.md): no venue publishes it, "
                  "off at its current value")


# --------------------------------------------------------------------------------------------
# Maintenance tiers: MM = notional * rate - deduction, tier chosen by the notional
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Tiers:
    """Per-position maintenance tiers, shape ``(n, T)``; unused tiers have floor +inf.

    ``MM(N) = N * rate[t] - deduction[t]`` with ``t`` the last tier whose floor is <= N. Every venue
    here is of this form: dYdX (one tier, rate = MMF), Hyperliquid and Binance (notional tiers with
    deductions that keep MM continuous), GMX (rate 0, deduction = -minimum collateral).
    """

    floor_usd: np.ndarray
    rate: np.ndarray
    deduction_usd: np.ndarray

    def index(self, notional_usd: np.ndarray) -> np.ndarray:
        t = (self.floor_usd <= np.asarray(notional_usd)[:, None]).sum(axis=1) - 1
        return np.maximum(t, 0)

    def maintenance_usd(self, notional_usd: np.ndarray) -> np.ndarray:
        t = self.index(notional_usd)
        rows = np.arange(t.shape[0])
        return notional_usd * self.rate[rows, t] - self.deduction_usd[rows, t]


def continuous_deductions(floor_usd: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Deductions that keep ``notional * rate - deduction`` continuous across tiers.

    ``deduction[0] = 0``; ``deduction[k] = deduction[k-1] + floor[k] * (rate[k] - rate[k-1])``
    (Hyperliquid margin-tiers docs; Binance's maintenance amount ``cum`` follows the same rule).
    Works on the last axis; unused tiers (floor +inf) get deduction 0.
    """
    floor = np.asarray(floor_usd, dtype=np.float64)
    rate = np.asarray(rate, dtype=np.float64)
    step = np.zeros_like(rate)
    used = np.isfinite(floor[..., 1:])
    step[..., 1:] = np.where(used, np.where(used, floor[..., 1:], 0.0) * (rate[..., 1:] - rate[..., :-1]), 0.0)
    return np.cumsum(step, axis=-1)


# --------------------------------------------------------------------------------------------
# The perp adapter interface
# --------------------------------------------------------------------------------------------


class PerpAdapter(VenueAdapter):
    """Liquidation rules of one perpetual-futures venue, vectorised over positions.

    Lifecycle (the order in which the optimizer and the engine call a perp adapter)::

        adapter = VenueCls.from_snapshot(snapshot_dict)      # current values (data/protocols/)
        schema  = adapter.schema()                           # margins, tiers, leverage limits, fees,
                                                             # fund sizes: units, bounds, invariants
        cand    = adapter.with_params({"BTC.tier0.max_leverage": 20})   # new frozen adapter,
                                                             # InvalidParameters names param + rule
        book    = PerpBook(...)                              # positions as dense arrays
        # per step and round, with one mark per position (PerpBook.position_marks / adverse_marks):
        eq      = cand.equity_usd(book, mark)                # equity of each position's margin pool
        req     = cand.requirement_usd(book, mark)           # its maintenance requirement
        mask    = cand.liquidatable(book, mark)              # the venue's own comparison
        lp      = cand.liquidation_price_usd(book, mark)     # closed form, other marks fixed
        out     = cand.liquidate(book, mark, mask, fill_price_usd=...)  # one liquidation step
        #   out.market_flow_base: signed flow to the order book (or pool); out.deficit_usd: loss beyond margin
        wf      = loss_waterfall(...)                        # margin -> insurance fund -> backstop -> ADL
        adl     = adl_queue(...) / adl_pro_rata(...)         # with cand.adl_score(book, mark)
        cb      = cand.circuit_breakers()                    # limits the simulator enforces

    Adapters are immutable and never loop over positions in Python. ``open_interest`` (the venue's
    whole market, :class:`OpenInterest`) is optional everywhere; without it the book's own is used.

    Subclasses set ``name``, ``title`` and the class facts below, and implement ``_build_schema``,
    ``_maintenance_tiers``, ``max_leverage``, ``liquidate``,
    ``adl_score`` and ``_venue_breakers`` (``circuit_breakers`` adds the tunable ``breakers.*``).

    Class facts
    -----------
    liquidation_flow_destination : ``"order_book"`` (dYdX, Hyperliquid, Binance) or ``"pool"``
        (GMX: the pool is the counterparty; the flow changes the pool's skew, not an order book).
    fee_recipient : who receives ``fee_usd`` (``"insurance_fund"``, ``"pool"`` or ``"none"``).
    adl_trigger : ``"deficit"`` (ADL covers losses beyond margin) or ``"pnl_to_pool"`` (GMX: ADL
        when traders' pending profit is too large for the pool).
    supports_cross_margin : False where every position is isolated (GMX).
    """

    family: ClassVar[str] = "perp"
    liquidation_flow_destination: ClassVar[str] = "order_book"
    fee_recipient: ClassVar[str] = "insurance_fund"
    adl_trigger: ClassVar[str] = "deficit"
    supports_cross_margin: ClassVar[bool] = True

    # --- market facts ---------------------------------------------------------------------------
    def __init__(self, snapshot: Mapping[str, Any], params: Mapping[str, float] | None = None) -> None:
        super().__init__(snapshot, params)
        # every perp snapshot lists its markets as ``markets.<name>.base_asset`` (checked by the schema)
        self._markets: tuple[str, ...] = tuple(field_of(snapshot, "markets", "dict"))
        self._assets = tuple(field_of(snapshot, f"markets.{m}.base_asset", "str") for m in self._markets)
        self._mm_multiplier: np.ndarray | None = None  # per market (with_margin_multiplier); None: x1

    @classmethod
    def _extend_schema(cls, schema: ParameterSchema, snapshot: Mapping[str, Any]) -> ParameterSchema:
        """Every perp venue's own parameters plus the tunable breakers (``breakers.*``, off at current)."""
        as_of = str(snapshot.get("as_of") or "n/a")
        extra = tuple(ParamSpec(f"breakers.{n}", unit, lo, hi, cur, desc, source=BREAKER_SOURCE, as_of=as_of)
                      for n, unit, lo, hi, cur, desc in BREAKER_PARAMS)
        return ParameterSchema(schema.specs + extra, schema.invariants)

    def circuit_breakers(self) -> PerpCircuitBreakers:
        """The venue's own limits (:meth:`_venue_breakers`) with the tunable ``breakers.*`` parameters."""
        return replace(self._venue_breakers(), **{n: float(self.params[f"breakers.{n}"]) for n, *_ in BREAKER_PARAMS})

    @abc.abstractmethod
    def _venue_breakers(self) -> PerpCircuitBreakers:
        """The limits the venue itself publishes (cooldowns, block limits, price bands, OI caps)."""

    def with_margin_multiplier(self, multiplier_by_market: np.ndarray | float) -> PerpAdapter:
        """The same rules with every maintenance margin of market ``m`` multiplied by ``multiplier[m]``
        (``MM = k * (notional * rate - deduction)``, every tier): a venue raising margins in stress.
        Liquidatable, liquidation routes (backstop below a share of MM), bankruptcy shares and liquidation
        prices all read the multiplied margin. A new adapter; ``self`` is unchanged."""
        k = np.broadcast_to(np.asarray(multiplier_by_market, dtype=np.float64), (len(self._markets),)).copy()
        if not (np.isfinite(k).all() and (k > 0).all()):
            raise ValueError(f"margin multipliers must be finite and > 0, got {k.tolist()}")
        out = copy.copy(self)
        out._mm_multiplier = None if (k == 1.0).all() else k
        return out

    def _tiers(self, book: PerpBook, vm: np.ndarray, open_interest: OpenInterest) -> Tiers:
        t = self._maintenance_tiers(book, vm, open_interest)
        if self._mm_multiplier is None:
            return t
        k = self._mm_multiplier[vm][:, None]
        return Tiers(t.floor_usd, t.rate * k, t.deduction_usd * k)

    @property
    def markets(self) -> tuple[str, ...]:
        """The venue's markets, in the order its parameter tables use."""
        return self._markets

    @property
    def base_assets(self) -> tuple[str, ...]:
        """The asset each market tracks (aligned with ``markets``), e.g. ``"BTC"``."""
        return self._assets

    @property
    def insurance_fund_usd(self) -> float:
        """Insurance fund available to cover deficits (0 where the venue has none)."""
        return 0.0

    @property
    def backstop_usd(self) -> float:
        """Capacity of the backstop after the insurance fund (vault or pool; 0 where none)."""
        return 0.0

    def market_index(self, book: PerpBook) -> np.ndarray:
        """Each position's market as an index into ``self.markets``; ValueError for unknown markets."""
        try:
            cols = np.array([self.markets.index(m) for m in book.markets], dtype=np.int64)
        except ValueError:
            unknown = sorted(set(book.markets) - set(self.markets))
            raise ValueError(f"book has markets {unknown} that {self.name} does not list "
                             f"(known: {', '.join(self.markets)})") from None
        if not self.supports_cross_margin and book.is_cross.any():
            raise ValueError(f"{self.name} has isolated positions only; the book has cross-margin rows")
        return cols[book.market] if book.n_positions else np.zeros(0, dtype=np.int64)

    # --- venue hooks ----------------------------------------------------------------------------
    @abc.abstractmethod
    def _maintenance_tiers(self, book: PerpBook, vm: np.ndarray, open_interest: OpenInterest) -> Tiers:
        """Per-position maintenance tiers (``vm`` = venue market index of each position)."""

    def _closing_costs_usd(self, book: PerpBook, vm: np.ndarray, open_interest: OpenInterest) -> np.ndarray:
        """Price-independent costs the venue deducts from equity before comparing (GMX); default 0."""
        return np.zeros(book.n_positions)

    def _flag(self, equity_usd: np.ndarray, requirement_usd: np.ndarray) -> np.ndarray:
        """The venue's comparison; default ``equity < requirement`` with a non-zero requirement."""
        return (equity_usd < requirement_usd) & (requirement_usd > 0)

    def _default_open_interest(self, book: PerpBook, mark_usd: np.ndarray) -> OpenInterest:
        """The book's own open interest at the marks, in ``self.markets`` order."""
        return self._venue_order(book, book.open_interest(mark_usd))

    def _venue_order(self, book: PerpBook, oi: OpenInterest) -> OpenInterest:
        cols = np.array([self.markets.index(x) for x in book.markets], dtype=np.int64)
        m = len(self.markets)
        return OpenInterest(np.bincount(cols, weights=oi.long_usd, minlength=m),
                            np.bincount(cols, weights=oi.short_usd, minlength=m))

    def _oi(self, book: PerpBook, mark_usd: np.ndarray, open_interest: OpenInterest | None) -> OpenInterest:
        return self._default_open_interest(book, mark_usd) if open_interest is None else open_interest

    # --- rules ------------------------------------------------------------------------------------
    def maintenance_margin_usd(self, book: PerpBook, mark_usd: np.ndarray,
                               open_interest: OpenInterest | None = None) -> np.ndarray:
        """Maintenance margin of each position on its own (0 for closed rows)."""
        mark_usd = np.asarray(mark_usd, dtype=np.float64)
        vm = self.market_index(book)
        tiers = self._tiers(book, vm, self._oi(book, mark_usd, open_interest))
        mm = tiers.maintenance_usd(book.notional_usd(mark_usd))
        return np.where(book.size_base > 0, mm, 0.0)

    def equity_usd(self, book: PerpBook, mark_usd: np.ndarray,
                   open_interest: OpenInterest | None = None) -> np.ndarray:
        """Equity of each position's margin pool: collateral + unrealised PnL - closing costs."""
        mark_usd = np.asarray(mark_usd, dtype=np.float64)
        vm = self.market_index(book)
        costs = np.where(book.size_base > 0,
                         self._closing_costs_usd(book, vm, self._oi(book, mark_usd, open_interest)), 0.0)
        return book.pool_collateral_usd() + book.pool_sum(book.unrealized_pnl_usd(mark_usd) - costs)

    def requirement_usd(self, book: PerpBook, mark_usd: np.ndarray,
                        open_interest: OpenInterest | None = None) -> np.ndarray:
        """Maintenance requirement of each position's margin pool (sum over a cross account)."""
        return book.pool_sum(self.maintenance_margin_usd(book, mark_usd, open_interest))

    def liquidatable(self, book: PerpBook, mark_usd: np.ndarray,
                     open_interest: OpenInterest | None = None) -> np.ndarray:
        """Open positions whose margin pool the venue liquidates at these marks."""
        eq = self.equity_usd(book, mark_usd, open_interest)
        req = self.requirement_usd(book, mark_usd, open_interest)
        return self._flag(eq, req) & (book.size_base > 0)

    def health(self, book: PerpBook, mark_usd: np.ndarray,
               open_interest: OpenInterest | None = None) -> np.ndarray:
        """``equity / requirement`` of each position's pool (+inf with no requirement).

        Below 1 the pool is liquidatable; at exactly 1 only where the venue flags equality (Binance).
        """
        eq = self.equity_usd(book, mark_usd, open_interest)
        req = self.requirement_usd(book, mark_usd, open_interest)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(req > 0, eq / req, np.inf)

    @abc.abstractmethod
    def max_leverage(self, market: np.ndarray, side: np.ndarray, notional_usd: np.ndarray,
                     open_interest: OpenInterest | None = None) -> np.ndarray:
        """Highest leverage (notional / initial margin) the venue allows for such a position.

        ``market`` indexes ``self.markets``. Where it depends on open interest (dYdX OIMF, GMX), the
        given ``open_interest`` is the market's after the position is opened.
        """

    def initial_margin_usd(self, book: PerpBook, mark_usd: np.ndarray,
                           open_interest: OpenInterest | None = None) -> np.ndarray:
        """Initial margin of each position at these marks (notional / max leverage)."""
        mark_usd = np.asarray(mark_usd, dtype=np.float64)
        notional = book.notional_usd(mark_usd)
        lev = self.max_leverage(self.market_index(book), book.side, notional,
                                self._oi(book, mark_usd, open_interest))
        return notional / lev

    def liquidation_price_usd(self, book: PerpBook, mark_usd: np.ndarray,
                              open_interest: OpenInterest | None = None) -> np.ndarray:
        """Closed-form liquidation price of each position, all other marks held where they are.

        Equity is affine in the position's mark ``x`` and the requirement is piecewise affine
        (one piece per tier), so on each tier ``equity(x) = requirement(x)`` is solved exactly and
        the root that lies inside its own tier is kept (Binance ``LP = (WB + cum - side*Q*EP) /
        (Q*MMR - side*Q)``, Hyperliquid ``price - side*margin_available/size/(1 - l*side)``,
        ``oracles.md`` §4, are the one-position cases). A long is liquidatable below the returned
        price, a short above it. Where no positive price liquidates the position: 0 for a long, +inf
        for a short; where every price does: +inf for a long, 0 for a short. NaN for closed rows.
        """
        mark_usd = np.asarray(mark_usd, dtype=np.float64)
        vm = self.market_index(book)
        oi = self._oi(book, mark_usd, open_interest)
        tiers = self._tiers(book, vm, oi)
        s = book.side.astype(np.float64)
        q = book.size_base
        eq = self.equity_usd(book, mark_usd, oi)
        mm_self = np.where(q > 0, tiers.maintenance_usd(q * mark_usd), 0.0)
        req_other = book.pool_sum(mm_self) - mm_self
        # equity(x) = eq + s*q*(x - m);  requirement(x) = req_other + q*x*rate_t - deduction_t
        num = req_other[:, None] - tiers.deduction_usd - eq[:, None] + (s * q * mark_usd)[:, None]
        den = q[:, None] * (s[:, None] - tiers.rate)
        with np.errstate(divide="ignore", invalid="ignore"):
            x = num / den
            notional = q[:, None] * x
        hi = np.concatenate([tiers.floor_usd[:, 1:], np.full((q.shape[0], 1), np.inf)], axis=1)
        ok = (np.isfinite(x) & (x > 0) & (notional >= tiers.floor_usd * (1 - _TIER_TOL))
              & (notional <= hi * (1 + _TIER_TOL)))
        first = np.argmax(ok, axis=1)
        rows = np.arange(q.shape[0])
        root = np.where(ok.any(axis=1), x[rows, first], np.nan)
        # no root: the sign of equity - requirement is the same for every x > 0; read it at x -> 0+
        at_zero = eq - s * q * mark_usd - req_other + tiers.deduction_usd[:, 0]
        safe_everywhere = at_zero >= 0
        none_long = np.where(safe_everywhere, 0.0, np.inf)
        none_short = np.where(safe_everywhere, np.inf, 0.0)
        fallback = np.where(s > 0, none_long, none_short)
        lp = np.where(np.isnan(root), fallback, root)
        return np.where(q > 0, lp, np.nan)

    @abc.abstractmethod
    def liquidate(self, book: PerpBook, mark_usd: np.ndarray, mask: np.ndarray | None = None, *,
                  fill_price_usd: np.ndarray | None = None, open_interest: OpenInterest | None = None,
                  partial_allowed: np.ndarray | None = None) -> PerpLiquidationOutcome:
        """One liquidation step for the liquidatable positions in ``mask``.

        ``fill_price_usd`` is the price the liquidation trade gets per position (the engine's
        execution price after impact); the default is the mark. ``partial_allowed`` (default all
        True) is False where a venue's partial-liquidation cooldown forces whole closes.
        """

    @abc.abstractmethod
    def adl_score(self, book: PerpBook, mark_usd: np.ndarray) -> np.ndarray:
        """The venue's ADL ranking per position (higher = deleveraged first)."""

    # --- shared settlement --------------------------------------------------------------------------
    def _settle(
        self,
        book: PerpBook,
        mark_usd: np.ndarray,
        tiers: Tiers,
        equity_usd: np.ndarray,
        requirement_usd: np.ndarray,
        closed_base: np.ndarray,
        fill_price_usd: np.ndarray,
        route: np.ndarray,
        fee_cap_usd: np.ndarray,
        liquidated: np.ndarray,
        extra: dict[str, Any] | None = None,
    ) -> PerpLiquidationOutcome:
        """Book a close of ``closed_base`` per position and build the outcome.

        ``equity_usd`` is the pool equity before closing costs (fees are charged through
        ``fee_cap_usd``). ``route`` per position: 0 market (liquidation order), 1 backstop takeover at the mark,
        2 offset by ADL / deleveraging at the mark (deficit not insurance-eligible).
        The closed part's share of its pool is ``equity * dMM / requirement`` at the mark (dYdX's
        bankruptcy-price rule ``-DNNV - TNC*|DMMR|/TMMR``, used for every venue); for a full
        isolated close it is the whole pool. ``fee_cap_usd`` is the most fee the venue would take;
        the fee paid is ``min(fee_cap, surplus)``.
        """
        s = book.side.astype(np.float64)
        q = book.size_base
        c = np.where(liquidated, np.minimum(closed_base, q), 0.0)
        mm_before = np.where(q > 0, tiers.maintenance_usd(q * mark_usd), 0.0)
        left = q - c
        mm_after = np.where(left > 0, tiers.maintenance_usd(left * mark_usd), 0.0)
        d_mm = mm_before - mm_after
        closed_notional = c * mark_usd
        pool_closed = book.pool_sum(closed_notional)
        with np.errstate(divide="ignore", invalid="ignore"):
            share_of_pool = np.where(requirement_usd > 0, d_mm / requirement_usd,
                                     np.where((book.pool_sum(left) == 0) & (pool_closed > 0),
                                              closed_notional / pool_closed, 0.0))
        share_of_pool = np.where(~book.is_cross & (left == 0), 1.0, share_of_pool)
        equity_share = np.where(c > 0, equity_usd * share_of_pool, 0.0)
        at_mark = route != 0
        fill = np.where(c > 0, np.where(at_mark, mark_usd, fill_price_usd), np.nan)
        fill0 = np.where(c > 0, fill, 0.0)
        pnl_mark = s * c * (mark_usd - book.entry_price_usd)
        margin_released = equity_share - pnl_mark  # = s*c*(entry - bankruptcy)
        realized = s * c * (fill0 - book.entry_price_usd)
        surplus = margin_released + realized
        takeover = np.where(route == 1, np.maximum(surplus, 0.0), 0.0)
        market = route == 0
        fee = np.where(market, np.minimum(np.maximum(surplus, 0.0), np.maximum(fee_cap_usd, 0.0)), 0.0)
        returned = np.where(route != 1, np.maximum(surplus - fee, 0.0), 0.0)
        deficit = np.maximum(-surplus, 0.0)
        with np.errstate(divide="ignore", invalid="ignore"):
            bankruptcy = np.where(c > 0, book.entry_price_usd - s * margin_released / c, np.nan)

        # book after: sizes down; each pool loses the released margin and keeps what is returned;
        # what is returned from a fully closed isolated position goes back to the account's wallet
        cross = book.is_cross
        iso_done = ~cross & (left == 0) & (c > 0)
        delta_pool = returned - margin_released
        to_account = np.where(cross, delta_pool, np.where(iso_done, returned, 0.0))
        acct_delta = np.bincount(book.account, weights=to_account, minlength=book.n_accounts)
        new_margin = np.where(cross | iso_done, 0.0, book.margin_usd + np.where(c > 0, delta_pool, 0.0))
        new_coll = book.cross_collateral_usd + acct_delta
        after = book.with_state(size_base=left, margin_usd=new_margin, cross_collateral_usd=new_coll)
        signed = s * c
        return PerpLiquidationOutcome(
            book=after,
            liquidated=c > 0,
            closed_size_base=c,
            market_flow_base=np.where(market, -signed, 0.0),
            backstop_size_base=np.where(route == 1, signed, 0.0),
            offset_size_base=np.where(route == 2, signed, 0.0),
            fill_price_usd=fill,
            bankruptcy_price_usd=bankruptcy,
            margin_released_usd=margin_released,
            realized_pnl_usd=realized,
            fee_usd=fee,
            returned_to_owner_usd=returned,
            backstop_takeover_usd=takeover,
            deficit_usd=deficit,
            insurance_eligible=route != 2,
            extra=extra or {},
        )

    def _prepare(self, book: PerpBook, mark_usd: np.ndarray, mask: np.ndarray | None,
                 fill_price_usd: np.ndarray | None, open_interest: OpenInterest | None,
                 partial_allowed: np.ndarray | None) -> dict[str, Any]:
        """Common inputs of a liquidation step."""
        mark_usd = np.asarray(mark_usd, dtype=np.float64)
        n = book.n_positions
        if mark_usd.shape != (n,):
            raise ValueError(f"mark_usd must have one price per position, shape ({n},), got {mark_usd.shape}")
        m = np.ones(n, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if m.shape != (n,):
            raise ValueError(f"mask must have shape ({n},), got {m.shape}")
        fill = mark_usd if fill_price_usd is None else np.asarray(fill_price_usd, dtype=np.float64)
        if fill.shape != (n,):
            raise ValueError(f"fill_price_usd must have shape ({n},), got {fill.shape}")
        partial = np.ones(n, dtype=bool) if partial_allowed is None else np.asarray(partial_allowed, dtype=bool)
        vm = self.market_index(book)
        oi = self._oi(book, mark_usd, open_interest)
        tiers = self._tiers(book, vm, oi)
        eq = self.equity_usd(book, mark_usd, oi)
        req = self.requirement_usd(book, mark_usd, oi)
        flagged = self._flag(eq, req) & (book.size_base > 0) & m
        gross = book.pool_collateral_usd() + book.pool_sum(book.unrealized_pnl_usd(mark_usd))
        return {"mark": mark_usd, "mask": m, "fill": fill, "partial": partial, "vm": vm, "oi": oi,
                "tiers": tiers, "equity": eq, "equity_gross": gross, "requirement": req, "flagged": flagged}


def first_row_per_account(book: PerpBook, candidates: np.ndarray) -> np.ndarray:
    """Among ``candidates``, the first row (book order) of each cross account; isolated rows stand alone."""
    n = book.n_positions
    key = np.where(book.is_cross, book.account, book.n_accounts + np.arange(n))
    idx = np.flatnonzero(candidates)
    out = np.zeros(n, dtype=bool)
    if idx.size:
        _, first = np.unique(key[idx], return_index=True)
        out[idx[first]] = True
    return out


def padded_tiers(floors: list[list[float]], rates: list[list[float]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-market tier tables ``(M, T)`` from ragged lists; unused tiers get floor +inf, the last rate.

    Returns ``(floor_usd, rate, deduction_usd)`` with continuous deductions
    (:func:`continuous_deductions`).
    """
    t = max(len(f) for f in floors)
    floor = np.full((len(floors), t), np.inf)
    rate = np.zeros((len(floors), t))
    for i, (f, r) in enumerate(zip(floors, rates, strict=True)):
        floor[i, : len(f)] = f
        rate[i, : len(r)] = r
        rate[i, len(r):] = r[-1]
    return floor, rate, continuous_deductions(floor, rate)


def gather_tiers(floor: np.ndarray, rate: np.ndarray, deduction: np.ndarray, vm: np.ndarray) -> Tiers:
    """Per-position :class:`Tiers` from per-market tables and each position's venue market."""
    return Tiers(floor[vm], rate[vm], deduction[vm])


def list_field(snapshot: Mapping[str, Any], list_path: str, index: int, key: str, kind: str = "number",
               *, optional: bool = False) -> Any:
    """``field_of`` for ``key`` of the ``index``-th object of the list at ``list_path``.

    :class:`SnapshotError` names the path as ``list_path[index].key``.
    """
    items = field_of(snapshot, list_path, "list")
    where = f"{list_path}[{index}]"
    if index >= len(items):
        raise SnapshotError(f"{where}: missing")
    if not isinstance(items[index], Mapping):
        raise SnapshotError(f"{where}: expected an object, got {type(items[index]).__name__}")
    try:
        return field_of(items[index], key, kind, optional=optional)
    except SnapshotError as e:
        raise SnapshotError(f"{where}.{e}") from None
