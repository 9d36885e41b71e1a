"""Aave v3 (Pool v3.3 → v3.6) liquidation rules, vectorised over positions.

Read from ``aave-dao/aave-v3-origin`` tags v3.3.0 (5431379f) and v3.6.0 (5a230ec8):
``LiquidationLogic.executeLiquidationCall`` / ``_calculateAvailableCollateralToLiquidate``,
``GenericLogic.calculateUserAccountData``, ``PoolConfigurator.configureReserveAsCollateral`` and
``setEModeCategory`` (see ``shared/docs/protocol_rules.md`` §1).

Values are floats in USD / whole tokens; the contracts' wad/ray rounding (a few wei) is not
reproduced. Isolation-mode debt ceilings and siloed borrowing restrict *borrowing* only and are
not modelled here; they do not change liquidation.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
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
    ReservesHeld,
    RiskLevers,
    SnapshotError,
    as_mask,
    field_of,
)

BPS = 10_000
MAX_CAP_TOKENS = 68_719_476_735  # ReserveConfiguration.MAX_VALID_SUPPLY_CAP / BORROW_CAP (2^36 - 1)

# Reasons a liquidation call did not happen (LiquidationOutcome.extra["reason"]).
OK, HEALTHY, NOT_SELECTED, PAUSED, NO_PAIR, DUST = 0, 1, 2, 3, 4, 5


def _percent_mul(a: float, b: float) -> float:
    """PercentageMath.percentMul: (a*b + HALF_PERCENTAGE_FACTOR) / PERCENTAGE_FACTOR, integer."""
    return (int(a) * int(b) + BPS // 2) // BPS


@dataclass(frozen=True)
class _AssetTables:
    """Per-(category, collateral) effective LT/LTV/LB for one book layout (rows: category index)."""

    category_ids: np.ndarray  # sorted eMode ids present in the tables (0 first)
    lt: np.ndarray  # (K, C) fraction
    ltv: np.ndarray  # (K, C) fraction
    bonus: np.ndarray  # (K, C) multiplier, e.g. 1.05
    fee: np.ndarray  # (C,) share of the bonus to the treasury
    counted: np.ndarray  # (K, C) bool: contributes to total collateral (LT > 0)


class AaveV3(ReservesHeld, Adapter):
    """Aave v3 Ethereum Core (v3.3+ rules).

    Health factor ``HF = Σ C_i·LT_i / Σ D_j`` over collaterals with LT > 0, the eMode category's
    LT/LTV/LB replacing the reserve's for the category's collateral assets. One
    :meth:`liquidate` call is one ``liquidationCall(collateral, debt, debtToCover)``: close factor
    50 % of the whole position (USD) when HF > 0.95 and both reserves ≥ $2,000, else 100 % of the
    reserve debt; seize = repaid·P_d/P_c·LB capped at the balance; protocol fee = share of the
    bonus part; the $1,000 leftover (dust) rule; remaining debt booked as deficit when no
    collateral is left.

    Parameters are named ``<SYMBOL>.<field>`` (``WETH.liquidation_threshold_bps``) and
    ``emode<ID>.<field>`` (``emode1.ltv_bps``), in the units governance uses (bps, whole tokens).
    """

    name = "aave_v3"
    governance = _governance.AAVE_V3
    bundled_snapshot = "protocols/aave_v3_ethereum_core.json"
    title = "Aave v3 Ethereum Core"
    default_search_fields = ("ltv_bps", "liquidation_threshold_bps", "liquidation_bonus_bps")
    # Aave risk stewards' largest change per update (bps)
    default_steward_limits = MappingProxyType({"ltv_bps": (500.0, False), "liquidation_threshold_bps": (500.0, False),
                              "liquidation_bonus_bps": (200.0, False),
                              "liquidation_protocol_fee_bps": (500.0, False)})
    liquidation_buffer_pairs = (BufferPair("ltv_bps", "liquidation_threshold_bps", 1.0),)

    # ------------------------------------------------------------------ schema
    @classmethod
    def _build_schema(cls, snapshot: Mapping[str, Any]) -> ParameterSchema:
        assets = field_of(snapshot, "assets", "dict")
        emodes = field_of(snapshot, "emodes", "dict", optional=True) or {}
        as_of_default = str(snapshot.get("as_of", ""))
        specs: list[ParamSpec] = []
        invariants: list[Invariant] = []

        def prov(node: Mapping[str, Any], key: str) -> tuple[str, str]:
            p = (node.get("provenance") or {}).get(key) or {}
            return str(p.get("set_by", "")), str(p.get("as_of", "")) or as_of_default

        for sym, node in assets.items():
            if not isinstance(node, Mapping):
                raise SnapshotError(f"assets.{sym}: expected an object")
            for key, unit, lo, hi, desc in (
                ("ltv_bps", "bps", 0, BPS, "loan-to-value: max borrow per unit of collateral value"),
                ("liquidation_threshold_bps", "bps", 0, BPS, "collateral weight in the health factor"),
                ("liquidation_bonus_bps", "bps", 0, 2 * BPS, "10000 + bonus: seized = repaid x bonus"),
                ("liquidation_protocol_fee_bps", "bps", 0, BPS, "treasury share of the bonus"),
                ("supply_cap_tokens", "tokens", 0, MAX_CAP_TOKENS, "0 = no cap"),
                ("borrow_cap_tokens", "tokens", 0, MAX_CAP_TOKENS, "0 = no cap"),
            ):
                value = field_of(snapshot, f"assets.{sym}.{key}")
                src, as_of = prov(node, key)
                specs.append(ParamSpec(f"{sym}.{key}", unit, lo, hi, float(value), desc, True, src, as_of))
            field_of(snapshot, f"assets.{sym}.decimals", "uint8")
            invariants += cls._reserve_invariants(sym)

        for eid, node in emodes.items():
            if not isinstance(node, Mapping):
                raise SnapshotError(f"emodes.{eid}: expected an object")
            if not str(eid).isdigit() or int(eid) == 0:
                raise SnapshotError(f"emodes.{eid}: eMode id must be a positive integer")
            src, as_of = str((node.get("provenance") or {}).get("set_by", "")), str(
                (node.get("provenance") or {}).get("as_of", "")
            )
            label = str(node.get("label", ""))
            for key, lo, hi in (("ltv_bps", 0, BPS), ("liquidation_threshold_bps", 0, BPS),
                                ("liquidation_bonus_bps", 0, 2 * BPS)):
                value = field_of(snapshot, f"emodes.{eid}.{key}")
                specs.append(ParamSpec(f"emode{eid}.{key}", "bps", lo, hi, float(value), f"eMode '{label}'",
                                       True, src, as_of))
            for key in ("collateral_assets", "borrowable_assets"):
                field_of(snapshot, f"emodes.{eid}.{key}", "list")
            invariants += cls._emode_invariants(f"emode{eid}")

        for key, lo, hi, desc in (
            ("close_factor", 0.0, 1.0, "share of the whole position repayable in one call when HF > threshold"),
            ("close_factor_hf_threshold", 0.0, 1.0, "HF at or below which 100 % may be repaid"),
        ):
            value = field_of(snapshot, f"constants.{key}")
            specs.append(ParamSpec(key, "fraction", lo, hi, float(value),
                                   desc + " (contract constant: changing it needs a Pool upgrade)",
                                   False, "LiquidationLogic v3.3", str(snapshot.get("as_of", ""))))
        for key in ("min_base_max_close_factor_threshold_usd", "min_leftover_base_usd"):
            field_of(snapshot, f"constants.{key}")
        return ParameterSchema(tuple(specs), tuple(invariants))

    @staticmethod
    def _reserve_invariants(sym: str) -> list[Invariant]:
        ltv, lt, lb, fee = (f"{sym}.{k}" for k in ("ltv_bps", "liquidation_threshold_bps",
                                                   "liquidation_bonus_bps", "liquidation_protocol_fee_bps"))
        return [
            Invariant("ltv <= liquidation threshold (PoolConfigurator INVALID_RESERVE_PARAMS)", (ltv, lt),
                      lambda p: p[ltv] <= p[lt]),
            Invariant("liquidation bonus > 100 % when liquidation threshold > 0", (lt, lb),
                      lambda p: p[lt] == 0 or p[lb] > BPS),
            Invariant("liquidation threshold x liquidation bonus <= 100 % (percentMul)", (lt, lb),
                      lambda p: p[lt] == 0 or _percent_mul(p[lt], p[lb]) <= BPS),
            Invariant("liquidation bonus = 0 when liquidation threshold = 0", (lt, lb),
                      lambda p: p[lt] != 0 or p[lb] == 0),
            Invariant("liquidation protocol fee <= 100 % of the bonus", (fee,), lambda p: p[fee] <= BPS),
        ]

    @staticmethod
    def _emode_invariants(prefix: str) -> list[Invariant]:
        ltv, lt, lb = (f"{prefix}.{k}" for k in ("ltv_bps", "liquidation_threshold_bps", "liquidation_bonus_bps"))
        return [
            Invariant("eMode ltv > 0 and liquidation threshold > 0 (INVALID_EMODE_CATEGORY_PARAMS)", (ltv, lt),
                      lambda p: p[ltv] > 0 and p[lt] > 0),
            Invariant("eMode ltv <= liquidation threshold", (ltv, lt), lambda p: p[ltv] <= p[lt]),
            Invariant("eMode liquidation bonus > 100 %", (lb,), lambda p: p[lb] > BPS),
            Invariant("eMode liquidation threshold x liquidation bonus <= 100 % (percentMul)", (lt, lb),
                      lambda p: _percent_mul(p[lt], p[lb]) <= BPS),
        ]

    # ------------------------------------------------------------------ market facts
    @cached_property
    def _assets(self) -> Mapping[str, Any]:
        return self._snapshot["assets"]

    @cached_property
    def _emodes(self) -> dict[int, Mapping[str, Any]]:
        return {int(k): v for k, v in (self._snapshot.get("emodes") or {}).items()}

    @property
    def collateral_assets(self) -> tuple[str, ...]:
        return tuple(s for s, a in self._assets.items() if a.get("usage_as_collateral_enabled", True))

    @property
    def debt_assets(self) -> tuple[str, ...]:
        return tuple(s for s, a in self._assets.items() if a.get("borrowing_enabled", True))

    @property
    def constants(self) -> dict[str, float]:
        c = self._snapshot["constants"]
        return {
            "close_factor": self.params["close_factor"],
            "close_factor_hf_threshold": self.params["close_factor_hf_threshold"],
            "min_base_max_close_factor_threshold_usd": float(c["min_base_max_close_factor_threshold_usd"]),
            "min_leftover_base_usd": float(c["min_leftover_base_usd"]),
        }

    def check_categories(self, categories: np.ndarray) -> None:
        """Every category must be 0 (no eMode) or an eMode id of the snapshot."""
        for eid in np.unique(np.asarray(categories)).tolist():
            if eid != 0:
                self.emode_of(int(eid))

    def emode_of(self, eid: int) -> Mapping[str, Any]:
        if eid not in self._emodes:
            raise ValueError(f"unknown eMode category {eid} (known: {sorted(self._emodes)})")
        return self._emodes[eid]

    def _tables(self, book: Book) -> _AssetTables:
        """Effective per-category parameters for the book's collateral columns (cached per layout)."""
        cats = tuple(sorted({0, *np.unique(book.category).tolist()}))
        key = (book.collateral_assets, cats)
        cache = self.__dict__.setdefault("_table_cache", {})
        if key in cache:
            return cache[key]
        p = self.params
        unknown = [a for a in book.collateral_assets if a not in self._assets]
        if unknown:
            raise ValueError(f"book has assets not in the Aave snapshot: {unknown}")
        base_lt = np.array([p[f"{a}.liquidation_threshold_bps"] for a in book.collateral_assets]) / BPS
        base_ltv = np.array([p[f"{a}.ltv_bps"] for a in book.collateral_assets]) / BPS
        base_lb = np.array([p[f"{a}.liquidation_bonus_bps"] for a in book.collateral_assets]) / BPS
        fee = np.array([p[f"{a}.liquidation_protocol_fee_bps"] for a in book.collateral_assets]) / BPS
        frozen = np.array([bool(self._assets[a].get("frozen", False)) for a in book.collateral_assets])
        enabled = np.array([bool(self._assets[a].get("usage_as_collateral_enabled", True))
                            for a in book.collateral_assets])
        lt, ltv, lb = (np.tile(x, (len(cats), 1)) for x in (base_lt, base_ltv, base_lb))
        for k, eid in enumerate(cats):
            if eid == 0:
                continue
            em = self.emode_of(eid)
            in_cat = np.array([a in em["collateral_assets"] for a in book.collateral_assets])
            lt[k, in_cat] = p[f"emode{eid}.liquidation_threshold_bps"] / BPS
            ltv[k, in_cat] = p[f"emode{eid}.ltv_bps"] / BPS
            lb[k, in_cat] = p[f"emode{eid}.liquidation_bonus_bps"] / BPS
        ltv[:, frozen] = 0.0  # freezing sets the effective LTV to 0 (pending LTV)
        lt[:, ~enabled] = 0.0
        tables = _AssetTables(np.array(cats), lt, ltv, lb, fee, lt > 0)
        cache[key] = tables
        return tables

    def _rows(self, book: Book, tables: _AssetTables) -> np.ndarray:
        return np.searchsorted(tables.category_ids, book.category)

    # ------------------------------------------------------------------ venue facts
    def position_terms(self, book: Book) -> PositionTerms:
        """Effective LT / LTV / LB per position (its eMode) and collateral, the treasury's fee share."""
        t = self._tables(book)
        rows = self._rows(book, t)
        bonus = t.bonus[rows]
        with np.errstate(divide="ignore"):
            recovery = np.where(bonus > 0, 1.0 / np.where(bonus > 0, bonus, 1.0), 0.0)
        return PositionTerms(health_weight=t.lt[rows], borrow_weight=t.ltv[rows], liquidation_bonus=bonus,
                             recovery=recovery, protocol_share=np.broadcast_to(t.fee, bonus.shape).copy(),
                             seizable=t.counted[rows])

    def risk_levers(self, asset: str) -> RiskLevers | None:
        p = self.params
        if f"{asset}.ltv_bps" not in p:
            return None
        return RiskLevers(ltv=p[f"{asset}.ltv_bps"] / BPS, liquidation_threshold=p[f"{asset}.liquidation_threshold_bps"] / BPS,
                          liquidator_incentive=p[f"{asset}.liquidation_bonus_bps"] / BPS - 1.0,
                          ltv_param=f"{asset}.ltv_bps")

    def liquidation_shortfall_usd(self, book: Book, prices: Prices) -> np.ndarray:
        """``max(debt − Σ counted collateral / LB, 0)``: liquidating to the end seizes every counted
        collateral and repays ``value/LB`` of debt for it; the rest is booked as deficit (v3.3)."""
        t = self._tables(book)
        rows = self._rows(book, t)
        pc = np.broadcast_to(prices.collateral_usd, book.collateral_tokens.shape)
        pd = np.broadcast_to(prices.debt_usd, book.debt_tokens.shape)
        lb = t.bonus[rows]
        with np.errstate(divide="ignore", invalid="ignore"):
            covered = np.where(t.counted[rows], book.collateral_tokens * pc / np.where(lb > 0, lb, 1.0), 0.0)
        return np.maximum((book.debt_tokens * pd).sum(axis=-1) - covered.sum(axis=-1), 0.0)

    # ------------------------------------------------------------------ rules
    def account_values(self, book: Book, prices: Prices) -> dict[str, np.ndarray]:
        """GenericLogic.calculateUserAccountData: total collateral/debt (USD), avg LT/LTV, HF."""
        t = self._tables(book)
        rows = self._rows(book, t)
        coll_usd = book.collateral_tokens * prices.collateral_usd * t.counted[rows]
        total_coll = coll_usd.sum(axis=-1)
        total_debt = (book.debt_tokens * prices.debt_usd).sum(axis=-1)
        weighted_lt = (coll_usd * t.lt[rows]).sum(axis=-1)
        weighted_ltv = (coll_usd * t.ltv[rows]).sum(axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            hf = np.where(total_debt > 0, weighted_lt / total_debt, np.inf)
            avg_lt = np.where(total_coll > 0, weighted_lt / total_coll, 0.0)
            avg_ltv = np.where(total_coll > 0, weighted_ltv / total_coll, 0.0)
        return {"total_collateral_usd": total_coll, "total_debt_usd": total_debt, "health_factor": hf,
                "avg_liquidation_threshold": avg_lt, "avg_ltv": avg_ltv, "borrow_capacity_usd": weighted_ltv}

    def health(self, book: Book, prices: Prices) -> np.ndarray:
        return self.account_values(book, prices)["health_factor"]

    def borrow_capacity_usd(self, book: Book, prices: Prices) -> np.ndarray:
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
        asks for the most the rules allow; if that would leave dust (< $1,000 on a side without
        closing it), it repays the most that leaves ≥ $1,000 on both sides, or skips the account.
        With an explicit ``debt_to_cover_tokens`` the dust rule reverts the call instead
        (``extra["reason"] == DUST``), as on-chain.
        """
        n = book.n_positions
        sel = as_mask(book, mask)
        t = self._tables(book)
        rows = self._rows(book, t)
        pc = np.broadcast_to(prices.collateral_usd, book.collateral_tokens.shape)
        pd = np.broadcast_to(prices.debt_usd, book.debt_tokens.shape)
        acct = self.account_values(book, prices)
        hf, total_debt_usd = acct["health_factor"], acct["total_debt_usd"]
        coll_val = book.collateral_tokens * pc * t.counted[rows]
        debt_val = book.debt_tokens * pd

        idx = np.arange(n)
        ci = np.argmax(coll_val, axis=1) if collateral_index is None else np.asarray(collateral_index, np.int64)
        di = np.argmax(debt_val, axis=1) if debt_index is None else np.asarray(debt_index, np.int64)
        coll_tokens = book.collateral_tokens[idx, ci]
        debt_tokens = book.debt_tokens[idx, di]
        p_c, p_d = pc[idx, ci], pd[idx, di]
        lb = t.bonus[rows, ci]
        fee_rate = t.fee[ci]
        counted = t.counted[rows, ci]

        reason = np.full(n, OK, dtype=np.int8)
        reason[~(hf < 1.0)] = HEALTHY
        reason[~sel] = NOT_SELECTED
        paused = self.circuit_breakers().liquidations_paused
        if paused:
            pz_c = np.array([a in paused for a in book.collateral_assets])[ci]
            pz_d = np.array([a in paused for a in book.debt_assets])[di]
            reason[(reason == OK) & (pz_c | pz_d)] = PAUSED
        reason[(reason == OK) & ((coll_tokens <= 0) | (debt_tokens <= 0) | ~counted)] = NO_PAIR

        c = self.constants
        coll_val_res, debt_val_res = coll_tokens * p_c, debt_tokens * p_d
        # Close factor (v3.3): 50 % of the WHOLE position's debt, only for large positions with HF > 0.95.
        partial = ((coll_val_res >= c["min_base_max_close_factor_threshold_usd"])
                   & (debt_val_res >= c["min_base_max_close_factor_threshold_usd"])
                   & (hf > c["close_factor_hf_threshold"]))
        cap_usd = total_debt_usd * c["close_factor"]
        max_debt = np.where(partial & (debt_val_res > cap_usd), cap_usd / p_d, debt_tokens)
        explicit = debt_to_cover_tokens is not None
        want = np.asarray(debt_to_cover_tokens, np.float64) if explicit else np.full(n, np.inf)
        repay, seize = self._repay_and_seize(np.minimum(want, max_debt), coll_tokens, p_c, p_d, lb)

        # Dust rule (MUST_NOT_LEAVE_DUST): a call that closes neither side must leave >= $1k on both.
        floor = c["min_leftover_base_usd"]
        dusty = (repay < debt_tokens) & (seize < coll_tokens) & (
            ((debt_tokens - repay) * p_d < floor) | ((coll_tokens - seize) * p_c < floor))
        if not explicit:
            # A rational liquidator repays the most that leaves $1k of debt and of collateral.
            alt = np.minimum(debt_tokens - floor / p_d, (coll_tokens - floor / p_c) * p_c / (p_d * lb))
            alt = np.minimum(alt, max_debt)
            ok_alt = dusty & (alt > 0)
            a_repay, a_seize = self._repay_and_seize(np.where(ok_alt, alt, 0.0), coll_tokens, p_c, p_d, lb)
            repay = np.where(ok_alt, a_repay, repay)
            seize = np.where(ok_alt, a_seize, seize)
            dusty = dusty & ~ok_alt
        reason[(reason == OK) & dusty] = DUST
        go = reason == OK
        repay = np.where(go, repay, 0.0)
        seize = np.where(go, seize, 0.0)

        bonus_tokens = seize - seize / np.where(lb > 0, lb, 1.0)
        fee_tokens = bonus_tokens * fee_rate
        new_coll = book.collateral_tokens.copy()
        new_debt = book.debt_tokens.copy()
        # Taking the whole balance assigns it exactly, so "no collateral left" is an exact test.
        took_all = go & (seize >= coll_tokens)
        new_coll[idx, ci] = np.where(took_all, 0.0, coll_tokens - seize)
        new_debt[idx, di] = np.where(go & (repay >= debt_tokens), 0.0, debt_tokens - repay)

        # Bad-debt cleanup (v3.3): no collateral left -> burn all remaining debt as reserve deficit.
        no_coll_left = go & ((new_coll * t.counted[rows]).sum(axis=1) == 0.0)
        deficit_tokens = np.where(no_coll_left[:, None], new_debt, 0.0)
        new_debt = np.where(no_coll_left[:, None], 0.0, new_debt)

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
            liquidator_bonus_usd=(bonus_tokens - fee_tokens) * p_c,
            protocol_fee_usd=fee_tokens * p_c,
            bad_debt_usd=(deficit_tokens * pd).sum(axis=1),
            returned_to_owner_usd=np.zeros(n),
            keeper_incentive_usd=np.zeros(n),
            extra={"reason": reason, "collateral_index": ci, "debt_index": di,
                   "deficit_tokens": deficit_tokens, "close_factor_applied": go & partial},
        )

    @staticmethod
    def _repay_and_seize(debt_to_cover: np.ndarray, coll_tokens: np.ndarray, p_c: np.ndarray,
                         p_d: np.ndarray, lb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """_calculateAvailableCollateralToLiquidate: seize = repay·P_d/P_c·LB, capped at the balance."""
        with np.errstate(divide="ignore", invalid="ignore"):
            max_seize = debt_to_cover * p_d / p_c * lb
            capped = max_seize > coll_tokens
            seize = np.where(capped, coll_tokens, max_seize)
            repay = np.where(capped, coll_tokens * p_c / p_d / lb, debt_to_cover)
        return np.nan_to_num(repay), np.nan_to_num(seize)

    def circuit_breakers(self) -> CircuitBreakers:
        paused = frozenset(s for s, a in self._assets.items() if a.get("paused") or not a.get("active", True))
        return CircuitBreakers(liquidations_paused=paused,
                               grace_period_s={s: 0.0 for s in self._assets})
