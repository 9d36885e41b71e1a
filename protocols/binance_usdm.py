"""Binance USDⓈ-M perpetual futures: tiered maintenance brackets, clearance fee, insurance fund, ADL queue.

Rules, from Binance's public pages (``shared/docs/protocol_rules.md`` §5; primary sources cited in
``data/README.md``):

- ``MM = notional * MMR(bracket) - maintenanceAmount(bracket)``, the bracket chosen by the position's
  notional at the mark; ``maintenanceAmount`` (``cum``) keeps MM continuous:
  ``cum(n) = cum(n-1) + floor(n) * (MMR(n) - MMR(n-1))`` (computed here from the brackets, never
  stored). Initial margin ``notional / leverage`` with leverage at most the bracket's maximum.
- Liquidation when ``marginRatio = MM / marginBalance >= 100 %`` at the **mark** price, margin
  balance = wallet balance (isolated margin, or the account's cross wallet) + unrealised PnL. The
  liquidation price of one isolated position is ``LP = (WB + cum - side*Q*EP) / (Q*MMR - side*Q)``
  (``oracles.md`` §4).
- A liquidation closes the position by IOC orders; a clearance fee, ``liquidationFee`` x the
  liquidated notional, goes to the insurance fund, taken only out of what margin is left; a fill
  worse than the bankruptcy price is paid by the insurance fund, then ADL.
- ADL ("counterparty liquidation") ranks the opposite side by
  ``LeveragePnL = max(0, uPnL) / max(1, WB) * marginRatio`` (``marginRatio = MM / (WB + uPnL)``,
  0 when that is <= 0); positions are closed at the bankruptcy price of the liquidated order.

Not modelled: Binance's "smart liquidation" first reduces a large position with one IOC order and
stops once the account is margin-compliant; the size of that reduction is not published, so this
adapter closes whole positions (what the FAQ says happens to small ones, whose bracket MMR is below
the clearance fee rate). Cross accounts are liquidated in full. Price bands (``marketTakeBound``)
and Price Protection are reported as data in :meth:`circuit_breakers`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from ._base import Invariant, ParameterSchema, ParamSpec, SnapshotError, field_of
from ._perp import (
    OpenInterest,
    PerpAdapter,
    PerpBook,
    PerpCircuitBreakers,
    PerpLiquidationOutcome,
    Tiers,
    gather_tiers,
    list_field,
    padded_tiers,
)

MAX_LEVERAGE = 125  # the highest leverage Binance USDⓈ-M has offered (BTCUSDT bracket 1)
_MAX_USD = 1e12  # widest economically meaningful notional / fund size


def _brackets(snapshot: Mapping[str, Any], market: str) -> list[Mapping[str, Any]]:
    b = field_of(snapshot, f"markets.{market}.brackets", "list")
    if not b:
        raise SnapshotError(f"markets.{market}.brackets: no brackets")
    return b


class BinanceUsdm(PerpAdapter):
    """Binance USDⓈ-M perpetuals (one-way mode, isolated or cross margin).

    Parameters: ``<SYMBOL>.bracket<k>.max_leverage`` (whole x), ``.maintenance_margin_rate``
    (fraction) and, from the second bracket on, ``.notional_floor_usd``; ``<SYMBOL>.max_notional_usd``
    (cap of the last bracket), ``<SYMBOL>.liquidation_fee_rate`` (clearance fee, fraction of the
    liquidated notional) and ``insurance_fund_usd``.
    """

    name = "binance_usdm"
    bundled_snapshot = "protocols/binance_usdm.json"
    title = "Binance USDⓈ-M perpetual futures"

    def __init__(self, snapshot: Mapping[str, Any], params: Mapping[str, float] | None = None) -> None:
        super().__init__(snapshot, params)
        p = self.params
        floors, rates, levs = [], [], []
        for m in self._markets:
            k = len(_brackets(snapshot, m))
            floors.append([0.0] + [p[f"{m}.bracket{i}.notional_floor_usd"] for i in range(2, k + 1)])
            rates.append([p[f"{m}.bracket{i}.maintenance_margin_rate"] for i in range(1, k + 1)])
            levs.append([p[f"{m}.bracket{i}.max_leverage"] for i in range(1, k + 1)])
        self._floor, self._rate, self._cum = padded_tiers(floors, rates)
        _, self._lev, _ = padded_tiers(floors, levs)
        self._fee_rate = np.array([p[f"{m}.liquidation_fee_rate"] for m in self._markets])
        self._max_notional = np.array([p[f"{m}.max_notional_usd"] for m in self._markets])
        for arr in (self._floor, self._rate, self._cum, self._lev, self._fee_rate, self._max_notional):
            arr.flags.writeable = False

    # ------------------------------------------------------------------ schema
    @classmethod
    def _build_schema(cls, snapshot: Mapping[str, Any]) -> ParameterSchema:
        markets = field_of(snapshot, "markets", "dict")
        if not markets:
            raise SnapshotError("markets: no markets")
        specs: list[ParamSpec] = []
        invs: list[Invariant] = []
        for m in markets:
            path = f"markets.{m}"
            field_of(snapshot, f"{path}.base_asset", "str")
            src = field_of(snapshot, f"{path}.provenance.brackets.source", "str")
            as_of = field_of(snapshot, f"{path}.provenance.brackets.as_of", "str")
            status = field_of(snapshot, f"{path}.provenance.brackets.status", "str", optional=True)
            note = f" Snapshot status: {status}" if status else ""
            brackets = _brackets(snapshot, m)
            bl = f"{path}.brackets"
            for i, _ in enumerate(brackets, start=1):
                floor = float(list_field(snapshot, bl, i - 1, "notional_floor_usd"))
                if i == 1 and floor != 0:
                    raise SnapshotError(f"{bl}[0].notional_floor_usd: the first bracket starts at 0, got {floor:g}")
                if i > 1:
                    specs.append(ParamSpec(f"{m}.bracket{i}.notional_floor_usd", "USD", 0.0, _MAX_USD, floor,
                                           f"Notional at which bracket {i} starts (its MMR applies from here)."
                                           + note, source=src, as_of=as_of))
                specs.append(ParamSpec(f"{m}.bracket{i}.max_leverage", "x", 1.0, MAX_LEVERAGE,
                                       float(list_field(snapshot, bl, i - 1, "max_leverage")),
                                       f"Highest leverage in bracket {i}; initial margin rate = 1 / max leverage."
                                       + note, integer=True, source=src, as_of=as_of))
                specs.append(ParamSpec(f"{m}.bracket{i}.maintenance_margin_rate", "fraction", 0.0, 1.0,
                                       float(list_field(snapshot, bl, i - 1, "maintenance_margin_rate")),
                                       f"MMR of bracket {i}; MM = notional*MMR - maintenance amount (continuous)."
                                       + note, source=src, as_of=as_of))
            k = len(brackets)
            specs.append(ParamSpec(f"{m}.max_notional_usd", "USD", 0.0, _MAX_USD,
                                   float(field_of(snapshot, f"{path}.max_notional_usd")),
                                   "Cap of the last bracket: the largest position notional allowed." + note,
                                   source=src, as_of=as_of))
            fsrc = field_of(snapshot, f"{path}.provenance.liquidation_fee_rate.source", "str")
            fas = field_of(snapshot, f"{path}.provenance.liquidation_fee_rate.as_of", "str")
            specs.append(ParamSpec(f"{m}.liquidation_fee_rate", "fraction", 0.0, 1.0,
                                   float(field_of(snapshot, f"{path}.liquidation_fee_rate")),
                                   "Clearance fee: fraction of the liquidated notional paid to the insurance fund "
                                   "(taken only out of margin left). Bounds: a fraction; no published cap.",
                                   source=fsrc, as_of=fas))
            for i in range(1, k + 1):
                lev, mmr = f"{m}.bracket{i}.max_leverage", f"{m}.bracket{i}.maintenance_margin_rate"
                invs.append(Invariant("maintenance margin rate < initial margin rate (1 / max leverage)", (mmr, lev),
                                      lambda p, a=mmr, b=lev: p[a] < 1.0 / p[b]))
            for i in range(2, k + 1):
                lo = f"{m}.bracket{i - 1}.notional_floor_usd" if i > 2 else None
                fl = f"{m}.bracket{i}.notional_floor_usd"
                if lo:
                    invs.append(Invariant("brackets in order: notional floors strictly increase", (lo, fl),
                                          lambda p, a=lo, b=fl: p[a] < p[b]))
                else:
                    invs.append(Invariant("brackets in order: notional floors strictly increase", (fl,),
                                          lambda p, b=fl: p[b] > 0))
                pl, cl = f"{m}.bracket{i - 1}.max_leverage", f"{m}.bracket{i}.max_leverage"
                invs.append(Invariant("brackets in order: max leverage does not rise with notional", (pl, cl),
                                      lambda p, a=pl, b=cl: p[b] <= p[a]))
                pr, cr = f"{m}.bracket{i - 1}.maintenance_margin_rate", f"{m}.bracket{i}.maintenance_margin_rate"
                invs.append(Invariant("brackets in order: maintenance margin rate does not fall with notional",
                                      (pr, cr), lambda p, a=pr, b=cr: p[b] >= p[a]))
            if k > 1:
                last, cap = f"{m}.bracket{k}.notional_floor_usd", f"{m}.max_notional_usd"
                invs.append(Invariant("the last bracket's floor is below the maximum notional", (last, cap),
                                      lambda p, a=last, b=cap: p[a] < p[b]))
        ins = "insurance_fund"
        specs.append(ParamSpec("insurance_fund_usd", "USD", 0.0, _MAX_USD,
                               float(field_of(snapshot, f"{ins}.balance_usd")),
                               "Insurance fund that pays fills worse than bankruptcy before ADL. "
                               + field_of(snapshot, f"{ins}.status", "str"),
                               source=field_of(snapshot, f"{ins}.source", "str"),
                               as_of=field_of(snapshot, f"{ins}.as_of", "str")))
        return ParameterSchema(tuple(specs), tuple(invs))

    # ------------------------------------------------------------------ facts
    @property
    def insurance_fund_usd(self) -> float:
        return float(self.params["insurance_fund_usd"])

    def maintenance_amount_usd(self, market: str) -> np.ndarray:
        """The brackets' maintenance amounts (Binance ``cum``), derived from floors and MMRs."""
        i = self._markets.index(market)
        return self._cum[i][np.isfinite(self._floor[i])].copy()

    def _maintenance_tiers(self, book: PerpBook, vm: np.ndarray, open_interest: OpenInterest) -> Tiers:
        return gather_tiers(self._floor, self._rate, self._cum, vm)

    def _flag(self, equity_usd: np.ndarray, requirement_usd: np.ndarray) -> np.ndarray:
        # marginRatio = MM / marginBalance >= 100 %, also when the margin balance is <= 0
        return (requirement_usd >= equity_usd) & (requirement_usd > 0)

    def max_leverage(self, market: np.ndarray, side: np.ndarray, notional_usd: np.ndarray,
                     open_interest: OpenInterest | None = None) -> np.ndarray:
        market = np.asarray(market, dtype=np.int64)
        notional_usd = np.asarray(notional_usd, dtype=np.float64)
        t = Tiers(self._floor[market], self._lev[market], self._cum[market]).index(notional_usd)
        lev = self._lev[market, t]
        return np.where(notional_usd <= self._max_notional[market], lev, np.nan)

    # ------------------------------------------------------------------ liquidation
    def liquidate(self, book: PerpBook, mark_usd: np.ndarray, mask: np.ndarray | None = None, *,
                  fill_price_usd: np.ndarray | None = None, open_interest: OpenInterest | None = None,
                  partial_allowed: np.ndarray | None = None) -> PerpLiquidationOutcome:
        """Close every position of each liquidatable margin pool in ``mask`` at ``fill_price_usd``.

        Clearance fee ``liquidation_fee_rate * closed * fill`` to the insurance fund, capped at the
        surplus over the bankruptcy price; a fill beyond bankruptcy is a deficit (insurance fund, ADL).
        """
        st = self._prepare(book, mark_usd, mask, fill_price_usd, open_interest, partial_allowed)
        flagged = st["flagged"]
        go = book.pool_sum(flagged.astype(np.float64)) > 0  # every open row of a flagged pool
        go &= (book.size_base > 0) & st["mask"]
        fee_cap = self._fee_rate[st["vm"]] * book.size_base * st["fill"]
        return self._settle(book, st["mark"], st["tiers"], st["equity_gross"], st["requirement"],
                            book.size_base, st["fill"], np.zeros(book.n_positions, dtype=np.int8), fee_cap, go)

    def adl_score(self, book: PerpBook, mark_usd: np.ndarray) -> np.ndarray:
        """``LeveragePnL = max(0, uPnL) / max(1, WB) * marginRatio`` (Binance counterparty-liquidation FAQ)."""
        mark_usd = np.asarray(mark_usd, dtype=np.float64)
        upnl = book.unrealized_pnl_usd(mark_usd)
        wb = book.pool_collateral_usd()
        balance = self.equity_usd(book, mark_usd)
        mm = self.requirement_usd(book, mark_usd)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(balance > 0, mm / balance, 0.0)
        return np.maximum(upnl, 0.0) / np.maximum(wb, 1.0) * ratio

    def _venue_breakers(self) -> PerpCircuitBreakers:
        bands = [float(field_of(self._snapshot, f"markets.{m}.market_take_bound")) for m in self._markets]
        return PerpCircuitBreakers(price_band_ratio=min(bands))
