"""The one interface every protocol adapter implements.

`protocols/` holds rules only: no file or network I/O and no simulation loop. Snapshot files are
read by :mod:`optimizer.snapshots`, which hands plain dicts to ``Adapter.from_snapshot``.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from types import MappingProxyType
from typing import Any, ClassVar, Self

import numpy as np

from .governance import Vocabulary


class InvalidParameters(ValueError):
    """A candidate parameter set breaks a bound or an invariant.

    The message names the parameter and the rule, e.g.
    ``WETH.ltv_bps=8400 breaks 'ltv <= liquidation threshold' (WETH.liquidation_threshold_bps=8300)``.
    """


class SnapshotError(ValueError):
    """A snapshot dict is missing a field or holds a value of the wrong kind."""


# --------------------------------------------------------------------------------------------
# Parameter schema
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParamSpec:
    """One tunable parameter: its unit, hard bounds and current (snapshot) value.

    ``lower``/``upper`` are the bounds the protocol itself accepts (contract checks) or, where the
    contract is silent, the widest range that is economically meaningful; a search narrows them.
    """

    name: str
    unit: str
    lower: float
    upper: float
    current: float
    description: str = ""
    integer: bool = False
    source: str = ""
    as_of: str = ""

    def check(self, value: float) -> None:
        if not isinstance(value, (int, float, np.integer, np.floating)) or isinstance(value, bool):
            raise InvalidParameters(f"{self.name}={value!r} is not a number")
        if not math.isfinite(value):
            raise InvalidParameters(f"{self.name}={value} is not finite")
        if self.integer and float(value) != int(value):
            raise InvalidParameters(f"{self.name}={value} must be a whole number of {self.unit}")
        if not (self.lower <= value <= self.upper):
            raise InvalidParameters(
                f"{self.name}={_fmt(value)} is outside its bounds [{_fmt(self.lower)}, {_fmt(self.upper)}] {self.unit}"
            )


@dataclass(frozen=True)
class Invariant:
    """A rule that ties several parameters together, e.g. ``ltv <= liquidation threshold``.

    ``check`` receives the full parameter mapping and returns True when the rule holds.
    """

    rule: str
    params: tuple[str, ...]
    check: Callable[[Mapping[str, float]], bool]


@dataclass(frozen=True)
class ParameterSchema:
    specs: tuple[ParamSpec, ...]
    invariants: tuple[Invariant, ...] = ()

    def __post_init__(self) -> None:
        names = [s.name for s in self.specs]
        if len(set(names)) != len(names):
            dup = sorted({n for n in names if names.count(n) > 1})
            raise ValueError(f"duplicate parameter names in schema: {dup}")

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.specs)

    @cached_property
    def _by_name(self) -> dict[str, ParamSpec]:
        return {s.name: s for s in self.specs}

    def spec(self, name: str) -> ParamSpec:
        s = self._by_name.get(name)
        if s is not None:
            return s
        close = [n for n in self.names if n.split(".")[-1] == name.split(".")[-1]][:3]
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise InvalidParameters(f"unknown parameter '{name}'{hint}")

    def current(self) -> dict[str, float]:
        return {s.name: s.current for s in self.specs}

    def merged(self, overrides: Mapping[str, float] | None = None) -> dict[str, float]:
        """Current values with ``overrides`` applied; unknown names are refused."""
        params = self.current()
        for name, value in (overrides or {}).items():
            self.spec(name)  # raises on unknown names
            params[name] = float(value)
        return params

    def validate(self, params: Mapping[str, float]) -> None:
        """Raise :class:`InvalidParameters` naming the first parameter and rule that fail."""
        for s in self.specs:
            if s.name not in params:
                raise InvalidParameters(f"missing parameter '{s.name}'")
            s.check(params[s.name])
        for inv in self.invariants:
            if not inv.check(params):
                involved = ", ".join(f"{p}={_fmt(params[p])}" for p in inv.params)
                raise InvalidParameters(f"{involved} breaks '{inv.rule}'")


def _fmt(x: float) -> str:
    x = float(x)
    return str(int(x)) if x.is_integer() and abs(x) < 1e15 else f"{x:.6g}"


# --------------------------------------------------------------------------------------------
# Position book and liquidation outcome (arrays over positions)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Book:
    """Positions of one protocol as dense arrays (rows = positions).

    ``collateral_tokens[i, a]`` is position i's balance of ``collateral_assets[a]`` in whole tokens;
    ``debt_tokens[i, d]`` its debt in ``debt_assets[d]``. ``category`` holds a per-position integer
    the adapter interprets (Aave eMode id; 0 elsewhere). Arrays are never mutated in place:
    every rule returns new arrays.
    """

    collateral_assets: tuple[str, ...]
    debt_assets: tuple[str, ...]
    collateral_tokens: np.ndarray
    debt_tokens: np.ndarray
    category: np.ndarray | None = None

    def __post_init__(self) -> None:
        c = np.asarray(self.collateral_tokens, dtype=np.float64)
        d = np.asarray(self.debt_tokens, dtype=np.float64)
        if c.ndim != 2 or c.shape[1] != len(self.collateral_assets):
            raise ValueError(f"collateral_tokens must have shape (n, {len(self.collateral_assets)}), got {c.shape}")
        if d.ndim != 2 or d.shape[1] != len(self.debt_assets) or d.shape[0] != c.shape[0]:
            raise ValueError(f"debt_tokens must have shape ({c.shape[0]}, {len(self.debt_assets)}), got {d.shape}")
        if (c < 0).any() or (d < 0).any() or not (np.isfinite(c).all() and np.isfinite(d).all()):
            raise ValueError("token balances must be finite and non-negative")
        cat = np.zeros(c.shape[0], dtype=np.int64) if self.category is None else np.asarray(self.category, np.int64)
        object.__setattr__(self, "collateral_tokens", c)
        object.__setattr__(self, "debt_tokens", d)
        object.__setattr__(self, "category", cat)

    @property
    def n_positions(self) -> int:
        return self.collateral_tokens.shape[0]

    def with_balances(self, collateral_tokens: np.ndarray, debt_tokens: np.ndarray) -> Book:
        return replace(self, collateral_tokens=collateral_tokens, debt_tokens=debt_tokens)


@dataclass(frozen=True)
class Prices:
    """Oracle prices in USD aligned with a book's asset tuples (shape (A,) or (n, A))."""

    collateral_usd: np.ndarray
    debt_usd: np.ndarray

    @classmethod
    def from_mapping(cls, book: Book, prices_usd: Mapping[str, float]) -> Prices:
        missing = [a for a in (*book.collateral_assets, *book.debt_assets) if a not in prices_usd]
        if missing:
            raise ValueError(f"no price for {', '.join(missing)}")
        return cls(
            np.array([prices_usd[a] for a in book.collateral_assets], dtype=np.float64),
            np.array([prices_usd[a] for a in book.debt_assets], dtype=np.float64),
        )


@dataclass(frozen=True)
class LiquidationOutcome:
    """What one liquidation step did to each position (USD at the oracle prices it ran with).

    Accounting identity, per position, exact up to float rounding::

        collateral_seized_usd = debt_repaid_usd + liquidator_bonus_usd + protocol_fee_usd
                                + returned_to_owner_usd
        debt removed from the account = debt_repaid_usd + bad_debt_usd

    ``bad_debt_usd`` is debt written off with no collateral behind it (Aave deficit, Comet shortfall
    paid from reserves, Maker sin left after an auction). ``keeper_incentive_usd`` is paid by the
    protocol to the liquidator on top (Maker tip + chip); it is not part of the identity.
    """

    book: Book  # positions after the step
    liquidated: np.ndarray  # bool (n,)
    debt_repaid_tokens: np.ndarray  # (n, D)
    collateral_seized_tokens: np.ndarray  # (n, C), includes the protocol's fee share
    debt_repaid_usd: np.ndarray
    collateral_seized_usd: np.ndarray
    liquidator_bonus_usd: np.ndarray
    protocol_fee_usd: np.ndarray
    bad_debt_usd: np.ndarray
    returned_to_owner_usd: np.ndarray
    keeper_incentive_usd: np.ndarray
    extra: dict[str, Any] = field(default_factory=dict)

    def totals(self) -> dict[str, float]:
        keys = (
            "debt_repaid_usd", "collateral_seized_usd", "liquidator_bonus_usd", "protocol_fee_usd",
            "bad_debt_usd", "returned_to_owner_usd", "keeper_incentive_usd",
        )
        return {k: float(np.sum(getattr(self, k))) for k in keys} | {"liquidations": int(self.liquidated.sum())}


@dataclass(frozen=True)
class PositionTerms:
    """Per position and collateral column, the terms the venue's rules apply to that collateral.

    These are the numbers a fast engine needs to mirror the rules without calling them (the
    simulator's kernel reads them), in common units across venues:

    - ``health_weight``: weight of the column's USD value in the health ratio (Aave liquidation
      threshold, per eMode; Comet liquidateCF; Maker ``1/mat``).
    - ``borrow_weight``: weight in the borrow rule (Aave LTV; Comet borrowCF; Maker ``1/mat``).
    - ``liquidation_bonus``: collateral value seized per unit of debt value a liquidation covers
      (Aave liquidation bonus; Comet ``1/liquidationFactor``; Maker ``chop``).
    - ``recovery``: debt value covered per unit of collateral value seized when the collateral does
      not cover the debt (an underwater liquidation): Aave ``1/LB`` (seize = repay·LB, capped at the
      balance), Comet liquidationFactor (as stored), Maker 1 (the penalty is taken from a surplus only).
    - ``protocol_share``: share of the bonus (the seized value above the debt covered) the protocol
      keeps (Aave liquidation protocol fee; Comet ``1 − storeFrontPriceFactor``; Maker 1).
    - ``seizable``: the column can be seized by a liquidation (Aave: LT > 0).

    Every array is ``(n_positions, n_collateral_columns)`` float64 (``seizable`` bool).
    """

    health_weight: np.ndarray
    borrow_weight: np.ndarray
    liquidation_bonus: np.ndarray
    recovery: np.ndarray
    protocol_share: np.ndarray
    seizable: np.ndarray


@dataclass(frozen=True)
class RiskLevers:
    """One collateral asset's risk levers in common units (fractions), read from a parameter set.

    - ``ltv``: borrowing power per unit of collateral value (Aave LTV, Comet borrowCF, Maker ``1/mat``);
    - ``liquidation_threshold``: collateral weight at which positions become liquidatable (Aave LT,
      Comet liquidateCF, Maker ``1/mat``);
    - ``liquidator_incentive``: the liquidator's discount as a fraction of the value it repays or buys
      (Aave ``LB − 1``, Comet ``storeFrontPriceFactor·(1 − liquidationFactor)``, Maker ``chop − 1``);
    - ``ltv_param``: the parameter key of the LTV lever (``"WETH.ltv_bps"``).
    """

    ltv: float
    liquidation_threshold: float
    liquidator_incentive: float
    ltv_param: str


@dataclass(frozen=True)
class BufferPair:
    """Two parameters of one asset whose gap is a liquidation buffer (LT − LTV), in bps.

    ``gap_bps = (params[f"{asset}.{upper}"] − params[f"{asset}.{lower}"]) · bps_per_unit``.
    """

    lower: str
    upper: str
    bps_per_unit: float


# --------------------------------------------------------------------------------------------
# Circuit breakers (data the simulator enforces)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CircuitBreakers:
    """Throughput limits and halts a protocol imposes on liquidations, as plain data.

    The adapter states them; the simulator enforces them over time.

    - ``oracle_delay_s``: protocol price lags the market by this much (Maker OSM: 3600 s).
    - ``auction_debt_cap_usd``: per-collateral cap on debt in active auctions (Maker ``hole``).
    - ``global_auction_debt_cap_usd``: system-wide cap (Maker ``Hole``).
    - ``auction_reset_after_s`` / ``auction_reset_price_ratio``: Maker clip ``tail`` / ``cusp``.
    - ``price_drop_breaker_ratio``: Maker ClipperMom trips (stopped=2) when next < ratio × current.
    - ``liquidations_paused``: assets whose liquidations are blocked (Aave pause / Comet pause).
    - ``grace_period_s``: Aave liquidation grace period after an unpause (≤ 4 h).
    - ``collateral_sales_stop_reserves_usd``: Comet ``targetReserves``: buyCollateral reverts at or above it.
    """

    oracle_delay_s: float = 0.0
    auction_debt_cap_usd: Mapping[str, float] = field(default_factory=dict)
    global_auction_debt_cap_usd: float = math.inf
    auction_reset_after_s: Mapping[str, float] = field(default_factory=dict)
    auction_reset_price_ratio: Mapping[str, float] = field(default_factory=dict)
    price_drop_breaker_ratio: Mapping[str, float] = field(default_factory=dict)
    liquidations_paused: frozenset[str] = frozenset()
    grace_period_s: Mapping[str, float] = field(default_factory=dict)
    collateral_sales_stop_reserves_usd: float = math.inf


# --------------------------------------------------------------------------------------------
# The adapter interface
# --------------------------------------------------------------------------------------------


class VenueAdapter(abc.ABC):
    """What every venue adapter shares, lending or perp: construction, parameters, breakers.

    Lifecycle (the family's rule methods come after these; see :class:`Adapter` for lending and
    :class:`protocols._perp.PerpAdapter` for perpetual-futures venues)::

        adapter = AdapterCls.from_snapshot(snapshot_dict)    # current values from data/
        schema  = adapter.schema()                           # tunables, units, bounds, invariants
        cand    = adapter.with_params({...})                 # new frozen adapter, validated
        cb      = cand.circuit_breakers()                    # limits the simulator enforces

    Subclasses set ``name`` (registry key), ``title`` and ``family`` (``"lending"`` or ``"perp"``)
    and implement ``_build_schema`` and ``circuit_breakers``.
    """

    name: ClassVar[str]
    title: ClassVar[str]
    family: ClassVar[str]
    #: the snapshot shipped for this adapter, relative to the bundled data folder ("": none)
    bundled_snapshot: ClassVar[str] = ""
    #: parameter fields (the part after ``<asset>.``) a search tunes when a scenario names none
    default_search_fields: ClassVar[tuple[str, ...]] = ()
    #: per field, the largest change per update a risk steward may make: ``(value, relative)``,
    #: ``value`` in the field's unit (or a fraction of the current value when ``relative``)
    default_steward_limits: ClassVar[Mapping[str, tuple[float, bool]]] = MappingProxyType({})
    #: parameter pairs whose gap is a buffer a search keeps (lending: LT − LTV)
    liquidation_buffer_pairs: ClassVar[tuple[BufferPair, ...]] = ()
    #: how governance proposals name this venue, its targets and parameters (None: no proposals read)
    governance: ClassVar[Vocabulary | None] = None

    def __init__(self, snapshot: Mapping[str, Any], params: Mapping[str, float] | None = None) -> None:
        self._snapshot = snapshot
        # with_params hands over the schema it already read from this snapshot (it depends on nothing else)
        schema = self.__dict__.pop("_schema_of_snapshot", None)
        if schema is None:
            schema = self._extend_schema(self._build_schema(snapshot), snapshot)
        merged = schema.merged(params)
        schema.validate(merged)
        self._schema = schema
        self.params: dict[str, float] = merged

    # --- construction ------------------------------------------------------------------------
    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> Self:
        return cls(snapshot)

    def with_params(self, overrides: Mapping[str, float]) -> Self:
        """A new adapter with ``overrides`` applied on top of this one's parameters (validated; the schema,
        read from the same snapshot, is reused)."""
        new = type(self).__new__(type(self))
        new._schema_of_snapshot = self._schema
        new.__init__(self._snapshot, {**self.params, **dict(overrides)})
        return new

    @classmethod
    @abc.abstractmethod
    def _build_schema(cls, snapshot: Mapping[str, Any]) -> ParameterSchema:
        """Read parameter specs (with current values) and invariants from the snapshot dict."""

    @classmethod
    def _extend_schema(cls, schema: ParameterSchema, snapshot: Mapping[str, Any]) -> ParameterSchema:
        """Parameters a whole family adds to every venue's own (perp: the tunable circuit breakers)."""
        return schema

    def schema(self) -> ParameterSchema:
        """The schema; ``ParamSpec.current`` is the snapshot value, not this candidate's."""
        return self._schema

    @property
    def snapshot_meta(self) -> dict[str, Any]:
        return {k: self._snapshot.get(k) for k in ("protocol", "market", "as_of") if k in self._snapshot}

    @abc.abstractmethod
    def circuit_breakers(self) -> CircuitBreakers:
        """Halts and throughput limits implied by the current parameters."""


class ReservesHeld:
    """A pool market (Aave) where an existing account may hold any reserve: a supplied balance of a reserve
    that is not collateral counts for nothing (LT 0), and disabling borrowing stops new borrows only
    (``validateBorrow``) while existing debt stays, accrues and can be liquidated
    (``validateLiquidationCall`` does not check the flag). Mixed into adapters with a ``_assets`` table."""

    _assets: Mapping[str, Any]

    @property
    def held_collateral_assets(self) -> tuple[str, ...]:
        return tuple(self._assets)

    @property
    def held_debt_assets(self) -> tuple[str, ...]:
        return tuple(self._assets)


class Adapter(VenueAdapter):
    """Liquidation rules of one venue, vectorised over positions.

    Lifecycle (the order in which the optimizer calls an adapter)::

        adapter = AdapterCls.from_snapshot(snapshot_dict)   # current values from data/
        schema  = adapter.schema()                          # tunables, units, bounds, invariants
        cand    = adapter.with_params({"WETH.ltv_bps": 7900}) # new frozen adapter; validated,
                                                            # InvalidParameters names param + rule
        book    = adapter.make_book(...) / Book(...)        # positions as dense arrays
        hf      = cand.health(book, prices)                 # < 1 means liquidatable
        mask    = cand.liquidatable(book, prices)
        out     = cand.liquidate(book, prices, mask)        # one liquidation call per position
        cb      = cand.circuit_breakers()                   # limits the simulator enforces

    Adapters are immutable: ``with_params`` returns a new object and never mutates ``self``. Rules
    never loop over positions in Python; they take and return numpy arrays. ``health`` is
    normalised so that every venue liquidates below 1.0, which lets the simulator treat venues
    alike. ``liquidate`` applies exactly one liquidation *call* per flagged position (Aave
    liquidationCall with the liquidator's best choice, Comet absorb, Maker bark+auction settlement
    at the given price); repeated calls model repeated liquidations.

    Subclasses set ``name`` (registry key), ``title`` and implement the abstract methods.

    Venue facts the simulator, the search, the baseline and reports read (public, so none of them
    switches on venue names): :meth:`position_terms` (the per-position terms of the rules),
    :meth:`risk_levers` (per asset, in common units), :meth:`liquidation_shortfall_usd`,
    :meth:`liquidation_price_usd`, :meth:`priced_asset` (the market asset behind a book column),
    and the class attributes ``default_search_fields``, ``default_steward_limits`` and
    ``liquidation_buffer_pairs``.
    """

    family: ClassVar[str] = "lending"

    @property
    @abc.abstractmethod
    def collateral_assets(self) -> tuple[str, ...]:
        """Assets that may back debt, in the order books must use."""

    @property
    @abc.abstractmethod
    def debt_assets(self) -> tuple[str, ...]:
        """Assets that may be borrowed."""

    @property
    def held_collateral_assets(self) -> tuple[str, ...]:
        """Assets an existing position may hold as collateral (a book read from the chain).

        Wider than :attr:`collateral_assets` where governance can stop an asset from counting as
        collateral while balances stay supplied (they then count for nothing); by default the same.
        """
        return self.collateral_assets

    @property
    def held_debt_assets(self) -> tuple[str, ...]:
        """Assets an existing position may owe (a book read from the chain).

        Wider than :attr:`debt_assets` where disabling borrowing only stops *new* borrows while
        existing debt stays and can be repaid or liquidated; by default the same.
        """
        return self.debt_assets

    # --- rules ---------------------------------------------------------------------------------
    @abc.abstractmethod
    def health(self, book: Book, prices: Prices) -> np.ndarray:
        """Health per position, normalised so that < 1 means liquidatable (+inf with no debt)."""

    def liquidatable(self, book: Book, prices: Prices) -> np.ndarray:
        return self.health(book, prices) < 1.0

    @abc.abstractmethod
    def borrow_capacity_usd(self, book: Book, prices: Prices) -> np.ndarray:
        """Debt value each position may hold at most under the borrow (not liquidation) rule."""

    @abc.abstractmethod
    def liquidate(self, book: Book, prices: Prices, mask: np.ndarray | None = None) -> LiquidationOutcome:
        """Apply one liquidation call to each position in ``mask`` that the rules allow."""

    # --- venue facts (public: the simulator, search, baseline and reports read these) ----------
    def check_categories(self, categories: np.ndarray) -> None:
        """Raise ValueError naming the first per-position category (``Book.category``) the venue does not
        know. Categories are venue-specific (Aave eMode ids); a venue without them accepts only 0."""
        bad = np.unique(np.asarray(categories)[np.asarray(categories) != 0])
        if bad.size:
            raise ValueError(f"{self.title} has no position categories (eModes); got {int(bad[0])}")

    def priced_asset(self, column: str) -> str:
        """The market asset whose price a book column carries (identity; Maker ilk ETH-A -> ETH)."""
        return column

    @abc.abstractmethod
    def position_terms(self, book: Book) -> PositionTerms:
        """Per-position terms of the rules for each collateral column (see :class:`PositionTerms`)."""

    def risk_levers(self, asset: str) -> RiskLevers | None:
        """The asset's LTV, liquidation threshold and liquidator incentive (None: not a collateral)."""
        return None

    def liquidation_shortfall_usd(self, book: Book, prices: Prices) -> np.ndarray:
        """Debt (USD) a complete liquidation at ``prices`` would leave uncovered, per position.

        ``max(debt − Σ seizable collateral·recovery, 0)``: what the venue writes off when the
        position is liquidated to the end, which is at least the underwater part
        ``max(debt − collateral, 0)`` (recovery <= 1).
        """
        terms = self.position_terms(book)
        pc = np.broadcast_to(prices.collateral_usd, book.collateral_tokens.shape)
        pd = np.broadcast_to(prices.debt_usd, book.debt_tokens.shape)
        covered = np.where(terms.seizable, book.collateral_tokens * pc * terms.recovery, 0.0).sum(axis=-1)
        return np.maximum((book.debt_tokens * pd).sum(axis=-1) - covered, 0.0)

    def liquidation_price_usd(self, book: Book, prices: Prices, asset: str) -> np.ndarray:
        """Price of ``asset`` (others fixed) at which each position's health reaches 1.

        ``prices[asset]·(1 − liquidation_price_drop)``: the current price for positions already
        liquidatable, 0 where no fall of this asset can liquidate the position.
        """
        a = book.collateral_assets.index(asset)
        p = np.broadcast_to(prices.collateral_usd, book.collateral_tokens.shape)[:, a]
        drop = self.liquidation_price_drop(book, prices, asset)
        return np.where(np.isfinite(drop), p * (1.0 - np.minimum(drop, 1.0)), 0.0)

    def liquidation_price_drop(self, book: Book, prices: Prices, asset: str) -> np.ndarray:
        """Fractional fall of ``asset``'s price (others fixed) that brings health to 1.

        Valid for any venue whose health is proportional to the collateral value of ``asset``
        plus a constant (true for Aave, Comet and Maker). 0 if already liquidatable, +inf if no
        fall of this asset can liquidate the position.
        """
        a = book.collateral_assets.index(asset)
        coll = np.array(prices.collateral_usd, dtype=np.float64, copy=True)
        zero = coll.copy()
        zero[..., a] = 0.0
        h_now = self.health(book, prices)
        h_zero = self.health(book, Prices(zero, prices.debt_usd))
        # health is affine in P_a: h(P) = h0 + (h_now - h0) * P/P_now; solve h = 1.
        with np.errstate(divide="ignore", invalid="ignore"):
            frac_price = (1.0 - h_zero) / (h_now - h_zero)
        drop = 1.0 - frac_price
        drop = np.where(h_now < 1.0, 0.0, drop)
        drop = np.where((h_zero >= 1.0) | ~np.isfinite(drop), np.inf, drop)
        return drop


def as_mask(book: Book, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return np.ones(book.n_positions, dtype=bool)
    m = np.asarray(mask, dtype=bool)
    if m.shape != (book.n_positions,):
        raise ValueError(f"mask must have shape ({book.n_positions},), got {m.shape}")
    return m


_KINDS: dict[str, tuple[type, ...]] = {
    "number": (int, float),
    "int": (int,),
    "uint8": (int,),  # ERC-20 decimals, Comet numAssets
    "bool": (bool,),
    "str": (str,),
    "dict": (dict,),
    "list": (list,),
}


def field_of(snapshot: Mapping[str, Any], path: str, kind: str = "number", *, optional: bool = False) -> Any:
    """Read ``a.b.c`` from a snapshot dict, checking its kind; :class:`SnapshotError` names the path."""
    node: Any = snapshot
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            if optional:
                return None
            raise SnapshotError(f"{path}: missing")
        node = node[part]
    if node is None and optional:
        return None
    ok = _KINDS[kind]
    if (isinstance(node, bool) and kind != "bool") or not isinstance(node, ok):
        raise SnapshotError(f"{path}: expected {kind}, got {type(node).__name__} {node!r}"[:200])
    if kind == "number" and not math.isfinite(node):
        raise SnapshotError(f"{path}: must be finite, got {node!r}")
    if kind == "uint8" and not 0 <= node <= 255:
        raise SnapshotError(f"{path}: must be a whole number in [0, 255] (uint8), got {node!r}"[:200])
    return node
