"""Aave v2 (LendingPool v2, Ethereum) liquidation rules, vectorised over positions.

Read from ``aave/protocol-v2`` tag 1.0.1 (7e39178e): ``LendingPoolCollateralManager.liquidationCall`` /
``_calculateAvailableCollateralToLiquidate``, ``GenericLogic.calculateUserAccountData`` /
``calculateHealthFactorFromBalances``, ``ValidationLogic.validateLiquidationCall`` and
``LendingPoolConfigurator.configureReserveAsCollateral``. These liquidation paths are unchanged from
the code audited for launch (3f070d67, 2020-11-26) to ``Deployment#001`` (2021-09-20).

What differs from Aave v3 (``protocols/aave_v3.py``), each a rule of the v2 contracts:

- **Close factor always 50 %** (``LIQUIDATION_CLOSE_FACTOR_PERCENT = 5000``) of the user's debt *in
  the debt reserve being repaid* (stable + variable), whatever the health factor and the size:
  there is no 0.95 HF threshold, no $2,000 threshold and no $1,000 dust rule.
- **No deficit booking.** A call that takes the last collateral leaves the rest of the debt on the
  account (it only stops using the reserve as collateral). :class:`LiquidationOutcome` therefore
  reports ``bad_debt_usd = 0``; the debt left with no collateral behind it is in
  ``extra["unbacked_debt_usd"]`` and stays in the book.
- **No liquidation protocol fee**: the whole bonus goes to the liquidator.
- No eModes, isolation mode, caps or grace periods (v3 features).

Values are floats in USD / whole tokens. The health factor is ratio-invariant, so USD prices give
the same HF as the contracts' ETH-denominated oracle. Two integer details of the contracts are not
reproduced: the wad/ray/percent rounding (a few wei) and the truncation of the average liquidation
threshold to whole bps (``avgLiquidationThreshold.div(totalCollateralInETH)``), which moves HF by at
most 1 bps of LT (< 2e-4 relative) and only for mixed collaterals; ``tests/protocols/test_aave_v2.py``
checks the adapter against an integer transcription of the contracts and bounds this difference. The
same truncation exists in v3 and is not reproduced by the v3 adapter either.

Rule set in force: the snapshot states ``valid_from``/``valid_to`` (bundled:
``data/protocols/aave_v2_ethereum_2021-05-19.json``, parameters of Aave v2 Ethereum between the
listing of its last reserve and the first risk-parameter change, AIP-34, executed 2021-09-04).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np

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
    ReservesHeld,
    RiskLevers,
    SnapshotError,
    as_mask,
    field_of,
)

BPS = 10_000
CLOSE_FACTOR = 0.5  # LendingPoolCollateralManager.LIQUIDATION_CLOSE_FACTOR_PERCENT = 5000

# Reasons a liquidation call did not happen (LiquidationOutcome.extra["reason"]), named after the
# CollateralManagerErrors of ValidationLogic.validateLiquidationCall.
OK, HEALTHY, NOT_SELECTED, NO_ACTIVE_RESERVE, COLLATERAL_CANNOT_BE_LIQUIDATED, CURRENCY_NOT_BORROWED = range(6)


def _percent_mul(a: float, b: float) -> float:
    """PercentageMath.percentMul: (a*b + HALF_PERCENT) / PERCENTAGE_FACTOR, integer."""
    return (int(a) * int(b) + BPS // 2) // BPS


class AaveV2(ReservesHeld, Adapter):
    """Aave v2 Ethereum LendingPool.

    Health factor ``HF = Σ C_i·LT_i / Σ D_j`` over collaterals with LT > 0 (``calculateUserAccountData``;
    ``HF < 1`` liquidatable, ``HEALTH_FACTOR_LIQUIDATION_THRESHOLD = 1e18``). One :meth:`liquidate` call
    is one ``liquidationCall(collateral, debt, user, debtToCover, receiveAToken)``:
    ``maxLiquidatableDebt = 50 % × (stable + variable debt of the user in the debt reserve)``,
    ``actual = min(debtToCover, maxLiquidatableDebt)``, ``seize = actual·P_d/P_c·LB``; if that exceeds the
    user's balance of the collateral, ``seize = balance`` and ``actual = balance·P_c/P_d/LB``. No fee,
    no dust rule, no deficit.

    Parameters: ``<SYMBOL>.ltv_bps``, ``<SYMBOL>.liquidation_threshold_bps``,
    ``<SYMBOL>.liquidation_bonus_bps`` (10000 + bonus) and the contract constant ``close_factor``.
    """

    name = "aave_v2"
    bundled_snapshot = "protocols/aave_v2_ethereum_2021-05-19.json"
    title = "Aave v2 Ethereum"
    default_search_fields = ("ltv_bps", "liquidation_threshold_bps", "liquidation_bonus_bps")
    default_steward_limits = MappingProxyType({"ltv_bps": (500.0, False), "liquidation_threshold_bps": (500.0, False),
                                               "liquidation_bonus_bps": (200.0, False)})
    liquidation_buffer_pairs = (BufferPair("ltv_bps", "liquidation_threshold_bps", 1.0),)

    # ------------------------------------------------------------------ schema
    @classmethod
    def _build_schema(cls, snapshot: Mapping[str, Any]) -> ParameterSchema:
        assets = field_of(snapshot, "assets", "dict")
        if not assets:
            raise SnapshotError("assets: no reserves in the snapshot")
        as_of = str(field_of(snapshot, "as_of", "str"))
        source = str(field_of(snapshot, "source", "str"))
        field_of(snapshot, "valid_from", "str")
        field_of(snapshot, "valid_to", "str")
        specs: list[ParamSpec] = []
        invariants: list[Invariant] = []
        for sym, node in assets.items():
            if not isinstance(node, Mapping):
                raise SnapshotError(f"assets.{sym}: expected an object")
            if "." in sym:
                raise SnapshotError(f"assets.{sym}: reserve symbols may not contain '.'")
            src = "; ".join(str(s) for s in (node.get("sources") or [])) or source
            for key, desc in (
                ("ltv_bps", "loan-to-value: max borrow per unit of collateral value"),
                ("liquidation_threshold_bps", "collateral weight in the health factor"),
                ("liquidation_bonus_bps", "10000 + bonus: seized = repaid x bonus (all to the liquidator)"),
            ):
                value = field_of(snapshot, f"assets.{sym}.{key}")
                specs.append(ParamSpec(f"{sym}.{key}", "bps", 0, 2 * BPS, float(value), desc, True, src, as_of))
            field_of(snapshot, f"assets.{sym}.decimals", "int")
            for flag in ("usage_as_collateral_enabled", "borrowing_enabled"):
                field_of(snapshot, f"assets.{sym}.{flag}", "bool")
            invariants += cls._reserve_invariants(sym)
        cf = field_of(snapshot, "constants.close_factor")
        specs.append(ParamSpec("close_factor", "fraction", 0.0, 1.0, float(cf),
                               "share of the user's debt in the repaid reserve that one call may repay "
                               "(contract constant LIQUIDATION_CLOSE_FACTOR_PERCENT: changing it needs a "
                               "LendingPoolCollateralManager upgrade)", False, "LendingPoolCollateralManager v2",
                               as_of))
        return ParameterSchema(tuple(specs), tuple(invariants))

    @staticmethod
    def _reserve_invariants(sym: str) -> list[Invariant]:
        ltv, lt, lb = (f"{sym}.{k}" for k in ("ltv_bps", "liquidation_threshold_bps", "liquidation_bonus_bps"))
        return [
            Invariant("ltv <= liquidation threshold (LendingPoolConfigurator LPC_INVALID_CONFIGURATION)", (ltv, lt),
                      lambda p: p[ltv] <= p[lt]),
            Invariant("liquidation bonus > 100 % when liquidation threshold > 0", (lt, lb),
                      lambda p: p[lt] == 0 or p[lb] > BPS),
            Invariant("liquidation threshold x liquidation bonus <= 100 % (percentMul)", (lt, lb),
                      lambda p: p[lt] == 0 or _percent_mul(p[lt], p[lb]) <= BPS),
            Invariant("liquidation bonus = 0 when liquidation threshold = 0", (lt, lb),
                      lambda p: p[lt] != 0 or p[lb] == 0),
        ]

    # ------------------------------------------------------------------ market facts
    @cached_property
    def _assets(self) -> Mapping[str, Any]:
        return self._snapshot["assets"]

    @property
    def snapshot_meta(self) -> dict[str, Any]:
        keys = ("protocol", "market", "as_of", "valid_from", "valid_to")
        return {k: self._snapshot.get(k) for k in keys if k in self._snapshot}

    @property
    def collateral_assets(self) -> tuple[str, ...]:
        return tuple(s for s, a in self._assets.items() if a["usage_as_collateral_enabled"])

    @property
    def debt_assets(self) -> tuple[str, ...]:
        return tuple(s for s, a in self._assets.items() if a["borrowing_enabled"])

    def _per_asset(self, key: str, assets: tuple[str, ...]) -> np.ndarray:
        unknown = [a for a in assets if a not in self._assets]
        if unknown:
            raise ValueError(f"book has assets not in the Aave v2 snapshot: {unknown}")
        return np.array([self.params[f"{a}.{key}"] for a in assets], dtype=np.float64) / BPS

    def _active(self, assets: tuple[str, ...]) -> np.ndarray:
        return np.array([bool(self._assets[a].get("active", True)) for a in assets])

    # ------------------------------------------------------------------ venue facts
    def position_terms(self, book: Book) -> PositionTerms:
        """LT / LTV / LB per collateral column (no eModes); no protocol fee (the bonus is the liquidator's)."""
        shape = book.collateral_tokens.shape
        lt = self._per_asset("liquidation_threshold_bps", book.collateral_assets)
        lb = self._per_asset("liquidation_bonus_bps", book.collateral_assets)
        with np.errstate(divide="ignore"):
            rec = np.where(lb > 0, 1.0 / np.where(lb > 0, lb, 1.0), 0.0)
        b = lambda x: np.broadcast_to(x, shape).copy()
        return PositionTerms(health_weight=b(lt), borrow_weight=b(self._per_asset("ltv_bps", book.collateral_assets)),
                             liquidation_bonus=b(lb), recovery=b(rec), protocol_share=np.zeros(shape),
                             seizable=b(lt > 0))

    def risk_levers(self, asset: str) -> RiskLevers | None:
        p = self.params
        if f"{asset}.ltv_bps" not in p:
            return None
        return RiskLevers(ltv=p[f"{asset}.ltv_bps"] / BPS, liquidation_threshold=p[f"{asset}.liquidation_threshold_bps"] / BPS,
                          liquidator_incentive=p[f"{asset}.liquidation_bonus_bps"] / BPS - 1.0, ltv_param=f"{asset}.ltv_bps")

    # ------------------------------------------------------------------ rules
    def account_values(self, book: Book, prices: Prices) -> dict[str, np.ndarray]:
        """``GenericLogic.calculateUserAccountData``: total collateral/debt (USD), average LT/LTV, HF.

        Collateral counts where the reserve's LT > 0 (the user is taken to use every supplied
        collateral column as collateral); debt is stable + variable, one column per reserve.
        """
        lt = self._per_asset("liquidation_threshold_bps", book.collateral_assets)
        ltv = self._per_asset("ltv_bps", book.collateral_assets)
        self._per_asset("ltv_bps", book.debt_assets)  # refuses unknown debt assets
        coll_usd = book.collateral_tokens * prices.collateral_usd * (lt > 0)
        total_coll = coll_usd.sum(axis=-1)
        total_debt = (book.debt_tokens * prices.debt_usd).sum(axis=-1)
        weighted_lt = (coll_usd * lt).sum(axis=-1)
        weighted_ltv = (coll_usd * ltv).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            hf = np.where(total_debt > 0, weighted_lt / total_debt, np.inf)
            avg_lt = np.where(total_coll > 0, weighted_lt / total_coll, 0.0)
            avg_ltv = np.where(total_coll > 0, weighted_ltv / total_coll, 0.0)
        return {"total_collateral_usd": total_coll, "total_debt_usd": total_debt, "health_factor": hf,
                "avg_liquidation_threshold": avg_lt, "avg_ltv": avg_ltv, "borrow_capacity_usd": weighted_ltv}

    def health(self, book: Book, prices: Prices) -> np.ndarray:
        return self.account_values(book, prices)["health_factor"]

    def borrow_capacity_usd(self, book: Book, prices: Prices) -> np.ndarray:
        """``totalCollateral × avgLtv`` (``calculateAvailableBorrowsETH`` before subtracting the debt)."""
        return self.account_values(book, prices)["borrow_capacity_usd"]

    def liquidate(
        self,
        book: Book,
        prices: Prices,
        mask: np.ndarray | None = None,
        *,
        collateral_index: np.ndarray | None = None,
        debt_index: np.ndarray | None = None,
        debt_to_cover_tokens: np.ndarray | None = None,
    ) -> LiquidationOutcome:
        """One ``liquidationCall`` per position in ``mask`` with HF < 1.

        By default the liquidator picks the largest collateral and the largest debt (by value) and
        asks for the most the close factor allows (``debtToCover = type(uint256).max``). The call is
        refused (``extra["reason"]``) when a reserve is inactive, the collateral has LT = 0 or is not
        held, or the user has no debt in the debt reserve. ``receiveAToken`` is immaterial here; the
        ``NOT_ENOUGH_LIQUIDITY`` check of ``receiveAToken = false`` (aToken liquidity) is not modelled.
        """
        n = book.n_positions
        sel = as_mask(book, mask)
        lt = self._per_asset("liquidation_threshold_bps", book.collateral_assets)
        lb = self._per_asset("liquidation_bonus_bps", book.collateral_assets)
        pc = np.broadcast_to(prices.collateral_usd, book.collateral_tokens.shape)
        pd = np.broadcast_to(prices.debt_usd, book.debt_tokens.shape)
        hf = self.health(book, prices)
        counted = lt > 0
        coll_val = book.collateral_tokens * pc * counted
        debt_val = book.debt_tokens * pd

        idx = np.arange(n)
        ci = np.argmax(coll_val, axis=1) if collateral_index is None else np.asarray(collateral_index, np.int64)
        di = np.argmax(debt_val, axis=1) if debt_index is None else np.asarray(debt_index, np.int64)
        coll_tokens = book.collateral_tokens[idx, ci]
        debt_tokens = book.debt_tokens[idx, di]
        p_c, p_d = pc[idx, ci], pd[idx, di]
        bonus = lb[ci]

        # ValidationLogic.validateLiquidationCall, in its order.
        reason = np.full(n, OK, dtype=np.int8)
        active = self._active(book.collateral_assets)[ci] & self._active(book.debt_assets)[di]
        reason[~active] = NO_ACTIVE_RESERVE
        reason[(reason == OK) & ~(hf < 1.0)] = HEALTHY
        reason[(reason == OK) & (~counted[ci] | (coll_tokens <= 0))] = COLLATERAL_CANNOT_BE_LIQUIDATED
        reason[(reason == OK) & (debt_tokens <= 0)] = CURRENCY_NOT_BORROWED
        reason[~sel] = NOT_SELECTED

        max_debt = debt_tokens * self.params["close_factor"]
        want = np.full(n, np.inf) if debt_to_cover_tokens is None else np.asarray(debt_to_cover_tokens, np.float64)
        repay, seize = repay_and_seize(np.minimum(want, max_debt), coll_tokens, p_c, p_d, bonus)
        go = reason == OK
        repay, seize = np.where(go, repay, 0.0), np.where(go, seize, 0.0)

        bonus_tokens = seize - seize / np.where(bonus > 0, bonus, 1.0)
        new_coll = book.collateral_tokens.copy()
        new_debt = book.debt_tokens.copy()
        new_coll[idx, ci] = np.where(go & (seize >= coll_tokens), 0.0, coll_tokens - seize)
        new_debt[idx, di] = debt_tokens - repay  # repay <= 50 % of the reserve debt: never all of it
        left_coll_usd = (new_coll * pc * counted).sum(axis=1)
        unbacked = np.where(go & (left_coll_usd == 0.0), (new_debt * pd).sum(axis=1), 0.0)

        repaid_tokens = np.zeros_like(book.debt_tokens)
        repaid_tokens[idx, di] = repay
        seized_tokens = np.zeros_like(book.collateral_tokens)
        seized_tokens[idx, ci] = seize
        return LiquidationOutcome(
            book=book.with_balances(new_coll, new_debt),
            liquidated=go,
            debt_repaid_tokens=repaid_tokens,
            collateral_seized_tokens=seized_tokens,
            debt_repaid_usd=repay * p_d,
            collateral_seized_usd=seize * p_c,
            liquidator_bonus_usd=bonus_tokens * p_c,
            protocol_fee_usd=np.zeros(n),
            bad_debt_usd=np.zeros(n),
            returned_to_owner_usd=np.zeros(n),
            keeper_incentive_usd=np.zeros(n),
            extra={"reason": reason, "collateral_index": ci, "debt_index": di, "unbacked_debt_usd": unbacked,
                   "collateral_exhausted": go & (seize >= coll_tokens)},
        )

    def circuit_breakers(self) -> CircuitBreakers:
        """Aave v2 has no liquidation throughput limit; an inactive reserve blocks its liquidations."""
        inactive = frozenset(s for s, a in self._assets.items() if not a.get("active", True))
        return CircuitBreakers(liquidations_paused=inactive)


def repay_and_seize(debt_to_cover: np.ndarray, coll_tokens: np.ndarray, p_c: np.ndarray, p_d: np.ndarray,
                    bonus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``_calculateAvailableCollateralToLiquidate`` in whole tokens: ``(debt repaid, collateral seized)``.

    ``maxCollateral = debtToCover·P_d/P_c·LB``; above the user's balance the whole balance is seized
    and the debt needed is ``balance·P_c/P_d/LB`` (``percentDiv``), else ``debtToCover`` is repaid.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        max_seize = debt_to_cover * p_d / p_c * bonus
        capped = max_seize > coll_tokens
        seize = np.where(capped, coll_tokens, max_seize)
        repay = np.where(capped, coll_tokens * p_c / p_d / bonus, debt_to_cover)
    return np.nan_to_num(repay), np.nan_to_num(seize)
