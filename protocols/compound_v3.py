"""Compound III (Comet) liquidation rules, vectorised over positions.

Read from ``compound-finance/comet`` (``contracts/Comet.sol`` @ 17a6e7ac, ``contracts/AssetList.sol``
@ b6ff78e1 (the 24-asset list used by the mainnet USD comets), ``contracts/Configurator.sol``; see
``shared/docs/protocol_rules.md`` §2):

- ``isLiquidatable``: ``Σ balance_i·P_i·liquidateCF_i < debt·P_base`` (strict), never with debt 0.
- ``isBorrowCollateralized``: the same sum with ``borrowCF_i``, ``≥ debt·P_base``.
- ``absorbInternal``: every collateral balance goes to the protocol; the account is credited
  ``Σ value_i·liquidationFactor_i / P_base`` base tokens; a negative result is floored at 0 (the
  shortfall is absorbed by reserves), a positive one becomes the account's base supply.
- ``quoteCollateral``: ``discount = storeFrontPriceFactor·(1 − liquidationFactor)``,
  ``collateral = base·P_base / (P_asset·(1 − discount))``.
- ``buyCollateral``: reverts ``NotForSale`` when ``reserves ≥ 0 and reserves ≥ targetReserves``,
  ``InsufficientReserves`` when the quote exceeds the protocol's collateral balance.
- Config checks (constructor / ``getPackedAssetInternal``): ``BadDiscount`` if
  ``storeFrontPriceFactor > 1``; ``BorrowCFTooLarge`` if ``borrowCF ≥ liquidateCF``, checked
  again after the factors are truncated to 4 decimals for storage; ``LiquidateCFTooLarge`` if
  ``liquidateCF > 1``. The Configurator setters themselves check nothing.

Factors are stored with 4 decimals (``descale = FACTOR_SCALE / 1e4``, truncating), so the rules
here use the truncated collateral and liquidation factors, as the contract does;
``storeFrontPriceFactor`` keeps full precision. Values are floats in USD / whole tokens; the
contract's integer rounding (a few wei) is not reproduced. ``targetReserves`` and
``baseBorrowMin`` are base-token amounts on-chain; the snapshot states them in USD, which equals
USDC at P_base = 1.

Parameter bounds are the ranges the configuration types can hold (uint16 with 4 decimals for the
per-asset factors, uint64 at 1e18 for ``storeFrontPriceFactor``); the contract's checks above are
schema invariants, so a refused candidate names the revert. Searches should stay inside [0, 1].
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import numpy as np

from . import governance as _governance
from ._base import (
    Adapter,
    Book,
    BufferPair,
    CircuitBreakers,
    Invariant,
    LiquidationOutcome,
    ParameterSchema,
    ParamSpec,
    PositionTerms,
    Prices,
    RiskLevers,
    SnapshotError,
    as_mask,
    field_of,
)

FACTOR_DECIMALS = 4  # AssetList/Comet keep 4 decimals of each per-asset factor (uint16)
MAX_SUPPLY_CAP_TOKENS = float(2**64 - 1)  # supply cap packed as uint64 whole tokens
MAX_PACKED_FACTOR = (2**16 - 1) / 10**FACTOR_DECIMALS  # per-asset factors packed as uint16 (6.5535)
MAX_UINT64_FACTOR = (2**64 - 1) / 1e18  # storeFrontPriceFactor: uint64 at FACTOR_SCALE 1e18
_BOUND_NOTE = " Bounds: uint16 storage range; the contract's checks are the schema invariants."
_UINT104_MAX = 2**104 - 1  # targetReserves and baseBorrowMin are uint104 base wei


def truncate_factor(x: np.ndarray | float) -> np.ndarray:
    """A factor as the contract stores it: truncated to 4 decimals.

    The tiny epsilon stops binary floats such as ``0.0003 * 1e4 = 2.9999999999999996`` from losing a step.
    """
    scale = 10.0**FACTOR_DECIMALS
    return np.floor(np.asarray(x, dtype=np.float64) * scale + 1e-6) / scale


class CompoundV3(Adapter):
    """Compound III cUSDCv3 on Ethereum mainnet.

    Health is ``Σ balance_i·P_i·liquidateCF_i / (debt·P_base)`` (< 1 exactly when
    ``isLiquidatable``). One :meth:`liquidate` call is one ``absorb`` of the account: all
    collateral to the protocol, debt cleared, credit ``Σ value_i·liquidationFactor_i``; the
    outcome also books the later storefront sale of that collateral (``buyCollateral``), whose
    buyer keeps ``storeFrontPriceFactor`` of the penalty and the protocol the rest.

    Parameters: ``<SYMBOL>.borrow_collateral_factor``, ``<SYMBOL>.liquidate_collateral_factor``,
    ``<SYMBOL>.liquidation_factor`` (fractions), ``<SYMBOL>.supply_cap_tokens`` (whole tokens,
    0 = no cap known) and market-level ``store_front_price_factor``, ``target_reserves_usd``,
    ``base_borrow_min_usd``.
    """

    name = "compound_v3"
    governance = _governance.COMPOUND_V3
    bundled_snapshot = "protocols/compound_v3_usdc_mainnet.json"
    title = "Compound v3 (Comet) cUSDCv3"
    default_search_fields = ("borrow_collateral_factor", "liquidate_collateral_factor", "liquidation_factor")
    default_steward_limits = MappingProxyType({"borrow_collateral_factor": (0.05, False), "liquidate_collateral_factor": (0.05, False),
                              "liquidation_factor": (0.02, False), "store_front_price_factor": (0.05, False)})
    liquidation_buffer_pairs = (BufferPair("borrow_collateral_factor", "liquidate_collateral_factor", 1e4),)

    def __init__(self, snapshot: Mapping[str, Any], params: Mapping[str, float] | None = None) -> None:
        super().__init__(snapshot, params)
        p = self.params
        self._collateral_assets: tuple[str, ...] = tuple(field_of(snapshot, "assets", "dict"))
        self._base_symbol: str = field_of(snapshot, "base_asset.symbol", "str")

        def stored(key: str) -> np.ndarray:  # (A,) in book column order, as the contract stores it
            arr = truncate_factor([p[f"{a}.{key}"] for a in self._collateral_assets])
            arr.flags.writeable = False  # the adapter is immutable
            return arr

        self.borrow_cf = stored("borrow_collateral_factor")
        self.liquidate_cf = stored("liquidate_collateral_factor")
        self.liquidation_factor = stored("liquidation_factor")
        self.store_front_price_factor = float(p["store_front_price_factor"])
        self.target_reserves_usd = float(p["target_reserves_usd"])

    # ------------------------------------------------------------------ schema
    @classmethod
    def _build_schema(cls, snapshot: Mapping[str, Any]) -> ParameterSchema:
        assets = field_of(snapshot, "assets", "dict")
        if not assets:
            raise SnapshotError("assets: no collateral assets")
        max_assets = field_of(snapshot, "market_params.max_collateral_assets", "uint8", optional=True)
        if max_assets is not None and len(assets) > max_assets:
            raise SnapshotError(f"assets: {len(assets)} assets > max_collateral_assets={max_assets} (TooManyAssets)")
        base_decimals = field_of(snapshot, "base_asset.decimals", "uint8")
        field_of(snapshot, "base_asset.symbol", "str")
        market_source = field_of(snapshot, "source", "str")
        market_as_of = field_of(snapshot, "as_of", "str")

        specs: list[ParamSpec] = []
        invariants: list[Invariant] = []
        for sym in assets:
            path = f"assets.{sym}"
            field_of(snapshot, f"{path}.decimals", "uint8")
            source = field_of(snapshot, f"{path}.source", "str")
            as_of = field_of(snapshot, f"{path}.as_of", "str")
            status = field_of(snapshot, f"{path}.status", "str", optional=True)
            note = f" Snapshot status: {status}" if status else ""
            bcf, lcf, lf, cap = (f"{sym}.{k}" for k in (
                "borrow_collateral_factor", "liquidate_collateral_factor", "liquidation_factor", "supply_cap_tokens"))
            cap_tokens = field_of(snapshot, f"{path}.supply_cap_tokens", optional=True)
            for name, key, desc in (
                (bcf, "borrow_collateral_factor", "borrowCollateralFactor: weight in isBorrowCollateralized."),
                (lcf, "liquidate_collateral_factor", "liquidateCollateralFactor: weight in isLiquidatable."),
                (lf, "liquidation_factor", "liquidationFactor: absorb credits value x factor; penalty = 1 - factor."),
            ):
                value = float(field_of(snapshot, f"{path}.{key}"))
                specs.append(ParamSpec(name, "fraction", 0.0, MAX_PACKED_FACTOR, value, desc + _BOUND_NOTE + note,
                                       source=source, as_of=as_of))
            specs.append(ParamSpec(
                cap, "tokens", 0.0, MAX_SUPPLY_CAP_TOKENS, 0.0 if cap_tokens is None else float(cap_tokens),
                "supplyCap in whole tokens (uint64). 0 here means 'no cap known' (null in the snapshot);"
                " on-chain a cap of 0 would block all supply." + note,
                integer=True, source=source, as_of=as_of,
            ))
            invariants += [
                Invariant("borrow_collateral_factor < liquidate_collateral_factor, also after truncation to"
                          " 4 decimals (Comet BorrowCFTooLarge)",
                          (bcf, lcf), lambda p, b=bcf, c=lcf: bool(truncate_factor(p[b]) < truncate_factor(p[c]))),
                Invariant("liquidate_collateral_factor <= 1 (Comet LiquidateCFTooLarge)",
                          (lcf,), lambda p, c=lcf: p[c] <= 1.0),
                # Stored with 4 decimals, so 0 < LF means >= 0.0001; quoteCollateral computes
                # FACTOR_SCALE - liquidationFactor unsigned, so LF > 1 makes every buyCollateral revert.
                Invariant("0 < liquidation_factor <= 1 (4-decimal storage; quoteCollateral takes 1 - liquidationFactor)",
                          (lf,), lambda p, f=lf: 0.0 < float(truncate_factor(p[f])) and p[f] <= 1.0),
            ]

        max_base_usd = _UINT104_MAX / 10**base_decimals
        for key, unit, hi, desc in (
            ("store_front_price_factor", "fraction", MAX_UINT64_FACTOR,
             "Share of the liquidation penalty given to collateral buyers as a discount (uint64, 18 decimals)."),
            ("target_reserves_usd", "USD", max_base_usd,
             "buyCollateral reverts (NotForSale) while reserves >= targetReserves (uint104 base units)."),
            ("base_borrow_min_usd", "USD", max_base_usd,
             "Smallest borrow balance an account may hold after a borrow (BorrowTooSmall; uint104 base units)."),
        ):
            value = float(field_of(snapshot, f"market_params.{key}"))
            as_of = field_of(snapshot, f"market_params.provenance.{key}.as_of", "str", optional=True) or market_as_of
            status = field_of(snapshot, f"market_params.provenance.{key}.status", "str", optional=True)
            note = f" Snapshot status: {status}" if status else ""
            specs.append(ParamSpec(key, unit, 0.0, hi, value, desc + note, source=market_source, as_of=as_of))
        invariants.append(Invariant("store_front_price_factor <= 1 (Comet BadDiscount)", ("store_front_price_factor",),
                                    lambda p: p["store_front_price_factor"] <= 1.0))
        return ParameterSchema(tuple(specs), tuple(invariants))

    # ------------------------------------------------------------------ market facts
    @property
    def collateral_assets(self) -> tuple[str, ...]:
        return self._collateral_assets

    @property
    def debt_assets(self) -> tuple[str, ...]:
        return (self._base_symbol,)

    def column_index(self, book: Book) -> np.ndarray:
        """Index of each book collateral column in the market's asset order (see the factor arrays)."""
        return self._columns(book)

    def position_terms(self, book: Book) -> PositionTerms:
        """liquidateCF / borrowCF / liquidationFactor (as stored, 4 decimals) per position and column."""
        cols = self._columns(book)
        shape = book.collateral_tokens.shape
        lf = np.broadcast_to(self.liquidation_factor[cols], shape).copy()
        return PositionTerms(health_weight=np.broadcast_to(self.liquidate_cf[cols], shape).copy(),
                             borrow_weight=np.broadcast_to(self.borrow_cf[cols], shape).copy(),
                             liquidation_bonus=1.0 / lf, recovery=lf,
                             protocol_share=np.full(shape, 1.0 - self.store_front_price_factor),
                             seizable=np.ones(shape, dtype=bool))

    def risk_levers(self, asset: str) -> RiskLevers | None:
        p = self.params
        if f"{asset}.borrow_collateral_factor" not in p:
            return None
        beta = p.get("store_front_price_factor", 1.0) * (1.0 - p[f"{asset}.liquidation_factor"])
        return RiskLevers(ltv=p[f"{asset}.borrow_collateral_factor"],
                          liquidation_threshold=p[f"{asset}.liquidate_collateral_factor"],
                          liquidator_incentive=beta, ltv_param=f"{asset}.borrow_collateral_factor")

    def _columns(self, book: Book) -> np.ndarray:
        """Index of each book column in the market's asset order (books may hold any subset)."""
        if book.debt_assets != self.debt_assets:
            raise ValueError(f"book debt {book.debt_assets} does not match the Comet base {self.debt_assets}")
        try:
            return np.array([self._collateral_assets.index(a) for a in book.collateral_assets], dtype=np.int64)
        except ValueError:
            unknown = sorted(set(book.collateral_assets) - set(self._collateral_assets))
            raise ValueError(f"book has assets not in the Comet market: {unknown}") from None

    def _values(self, book: Book, prices: Prices) -> tuple[np.ndarray, np.ndarray]:
        """Collateral value per asset (n, A) and debt value (n,), USD."""
        value_usd = book.collateral_tokens * np.broadcast_to(prices.collateral_usd, book.collateral_tokens.shape)
        debt_usd = (book.debt_tokens * np.broadcast_to(prices.debt_usd, book.debt_tokens.shape))[:, 0]
        return value_usd, debt_usd

    # ------------------------------------------------------------------ rules
    def health(self, book: Book, prices: Prices) -> np.ndarray:
        """``Σ value_i·liquidateCF_i / (debt·P_base)``; < 1 exactly when ``isLiquidatable``; +inf with no debt."""
        value_usd, debt_usd = self._values(book, prices)
        weighted_usd = (value_usd * self.liquidate_cf[self._columns(book)]).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(debt_usd > 0, weighted_usd / debt_usd, np.inf)

    def borrow_capacity_usd(self, book: Book, prices: Prices) -> np.ndarray:
        """``Σ value_i·borrowCF_i``: the most debt ``isBorrowCollateralized`` accepts."""
        value_usd, _ = self._values(book, prices)
        return (value_usd * self.borrow_cf[self._columns(book)]).sum(axis=-1)

    def liquidate(self, book: Book, prices: Prices, mask: np.ndarray | None = None) -> LiquidationOutcome:
        """``absorb`` every position in ``mask`` that is liquidatable.

        Per absorbed account, with ``V_i`` its collateral value, ``LF_i`` the liquidation factor and
        ``sf`` the storefront price factor::

            credit          = Σ V_i·LF_i                       (extra["absorbed_credit_usd"])
            debt_repaid     = min(credit, debt)
            bad_debt        = max(debt − credit, 0)            (paid from reserves)
            returned_to_owner = max(credit − debt, 0)          (becomes the account's base supply)
            liquidator_bonus = Σ V_i·sf·(1 − LF_i)             (buyCollateral discount)
            protocol_fee    = Σ V_i·(1 − sf)·(1 − LF_i)        (reserves' share of the penalty)

        so ``Σ V_i = debt_repaid + liquidator_bonus + protocol_fee + returned_to_owner``. The absorber
        is paid nothing (only liquidator points), so ``keeper_incentive_usd`` is 0. The storefront
        leg assumes the collateral is eventually sold at the oracle price of this step.
        """
        n = book.n_positions
        value_usd, debt_usd = self._values(book, prices)
        go = as_mask(book, mask) & (self.health(book, prices) < 1.0)
        col = go[:, None]

        seized_value_usd = np.where(col, value_usd, 0.0)
        lf = self.liquidation_factor[self._columns(book)]
        penalty_usd = seized_value_usd * (1.0 - lf)
        credit_usd = (seized_value_usd * lf).sum(axis=1)
        owed_usd = np.where(go, debt_usd, 0.0)
        debt_repaid_usd = np.minimum(credit_usd, owed_usd)
        base_price_usd = np.broadcast_to(prices.debt_usd, book.debt_tokens.shape)
        with np.errstate(divide="ignore", invalid="ignore"):
            debt_repaid_tokens = np.where(col, debt_repaid_usd[:, None] / base_price_usd, 0.0)

        sf = self.store_front_price_factor
        return LiquidationOutcome(
            book=book.with_balances(
                np.where(col, 0.0, book.collateral_tokens), np.where(col, 0.0, book.debt_tokens)
            ),
            liquidated=go,
            debt_repaid_tokens=debt_repaid_tokens,
            collateral_seized_tokens=np.where(col, book.collateral_tokens, 0.0),
            debt_repaid_usd=debt_repaid_usd,
            collateral_seized_usd=seized_value_usd.sum(axis=1),
            liquidator_bonus_usd=(penalty_usd * sf).sum(axis=1),
            protocol_fee_usd=(penalty_usd * (1.0 - sf)).sum(axis=1),
            bad_debt_usd=np.maximum(owed_usd - credit_usd, 0.0),
            returned_to_owner_usd=np.maximum(credit_usd - owed_usd, 0.0),
            keeper_incentive_usd=np.zeros(n),
            extra={"absorbed_credit_usd": credit_usd},
        )

    # ------------------------------------------------------------------ storefront
    def quote_collateral_tokens(
        self,
        asset: str,
        base_amount_tokens: np.ndarray | float,
        asset_price_usd: np.ndarray | float,
        base_price_usd: np.ndarray | float = 1.0,
    ) -> np.ndarray:
        """``quoteCollateral``: collateral tokens bought with ``base_amount_tokens`` of the base asset.

        ``base·P_base / (P_asset·(1 − sf·(1 − LF_asset)))``; arrays broadcast.
        """
        lf = self.liquidation_factor[self._collateral_assets.index(asset)]
        discount = self.store_front_price_factor * (1.0 - lf)
        return (np.asarray(base_amount_tokens, np.float64) * base_price_usd
                / (np.asarray(asset_price_usd, np.float64) * (1.0 - discount)))

    def buy_collateral(
        self,
        reserves_usd: np.ndarray | float,
        asset: str,
        base_amount_tokens: np.ndarray | float,
        asset_price_usd: np.ndarray | float,
        base_price_usd: np.ndarray | float = 1.0,
        collateral_reserves_tokens: np.ndarray | float = np.inf,
    ) -> np.ndarray:
        """``buyCollateral``: collateral tokens received, 0 where the call would revert.

        Refusal is returned as 0 tokens (nothing changes hands, the buyer keeps its base) rather than
        raised, so a vector of paths can be evaluated at once:

        - ``NotForSale`` where ``reserves_usd ≥ target_reserves_usd`` (negative reserves always sell);
        - ``InsufficientReserves`` where the quote exceeds ``collateral_reserves_tokens``, the
          protocol's own balance of ``asset`` (the call is all-or-nothing, as on-chain).
        """
        quote = self.quote_collateral_tokens(asset, base_amount_tokens, asset_price_usd, base_price_usd)
        for_sale = np.asarray(reserves_usd, np.float64) < self.target_reserves_usd
        return np.where(for_sale & (quote <= collateral_reserves_tokens), quote, 0.0)

    def circuit_breakers(self) -> CircuitBreakers:
        return CircuitBreakers(collateral_sales_stop_reserves_usd=self.target_reserves_usd)
