"""Hyperliquid perpetuals: leverage tiers by notional, market liquidation, HLP backstop, ADL.

Rules, from the Hyperliquid docs (``trading/margin-tiers``, ``trading/liquidations``,
``trading/auto-deleveraging``; ``shared/docs/protocol_rules.md`` §5):

- Margin tiers by notional position value, each with a maximum leverage. Maintenance margin
  ``MM = notional * mmr(tier) - deduction(tier)`` with ``mmr = 1 / (2 * maxLeverage(tier))`` (half the
  initial margin at max leverage) and ``deduction(n) = deduction(n-1) + floor(n) * (mmr(n) - mmr(n-1))``,
  so MM is continuous in the position size.
- Liquidation when the margin pool's equity (isolated margin, or the cross account value,
  + unrealised PnL) is below MM at the **mark** price. The liquidation price of an isolated position is
  ``price - side * margin_available / size / (1 - l * side)`` with ``l = mmr`` and
  ``margin_available = margin + uPnL - MM`` (``oracles.md`` §4).
- First, market orders to the book for the whole position; a position above $100k of notional is
  sent 20 % at a time, after which, for 30 s, orders are for the whole position. No clearance fee:
  what margin is left stays with the trader.
- If equity is below 2/3 of MM, the liquidator vault (part of HLP) takes the positions and their
  margin (backstop liquidation); the maintenance margin is not returned. A cross backstop takes all
  cross positions and cross margin; an isolated one, that position and its margin.
- If an account's (or isolated position's) value is negative, ADL closes opposite-side positions,
  ranked by unrealised PnL and leverage, at the previous mark price against the underwater account.

Order of checks in one call (per margin pool): value < 0 -> ADL offset; value < 2/3 MM -> backstop;
otherwise a market liquidation. The exact ADL sorting index is not published; :meth:`adl_score` uses
``(uPnL / pool equity) * (pool notional / pool equity)`` (profit fraction x leverage), marked unconfirmed.
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

MAX_LEVERAGE = 50  # docs: max leverage varies from 3x to 50x by asset
_MAX_USD = 1e12


class Hyperliquid(PerpAdapter):
    """Hyperliquid perps (mainnet margin tiers for the listed coins).

    Parameters: ``<COIN>.tier<k>.max_leverage`` (whole x) and, from the second tier,
    ``<COIN>.tier<k>.notional_floor_usd``; ``partial_liquidation_threshold_usd``,
    ``partial_liquidation_fraction``, ``partial_liquidation_cooldown_s``,
    ``backstop_equity_fraction`` (of MM) and ``backstop_vault_usd`` (HLP equity).
    """

    name = "hyperliquid"
    bundled_snapshot = "protocols/hyperliquid.json"
    title = "Hyperliquid perpetuals"
    fee_recipient = "none"

    def __init__(self, snapshot: Mapping[str, Any], params: Mapping[str, float] | None = None) -> None:
        super().__init__(snapshot, params)
        p = self.params
        floors, rates, levs = [], [], []
        for m in self._markets:
            k = len(field_of(snapshot, f"markets.{m}.tiers", "list"))
            lev = [p[f"{m}.tier{i}.max_leverage"] for i in range(k)]
            floors.append([0.0] + [p[f"{m}.tier{i}.notional_floor_usd"] for i in range(1, k)])
            rates.append([1.0 / (2.0 * x) for x in lev])
            levs.append(lev)
        self._floor, self._rate, self._deduction = padded_tiers(floors, rates)
        _, self._lev, _ = padded_tiers(floors, levs)
        for arr in (self._floor, self._rate, self._deduction, self._lev):
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
            src = field_of(snapshot, f"{path}.source", "str")
            as_of = field_of(snapshot, f"{path}.as_of", "str")
            tl = f"{path}.tiers"
            tiers = field_of(snapshot, tl, "list")
            if not tiers:
                raise SnapshotError(f"{tl}: no tiers")
            for i in range(len(tiers)):
                floor = float(list_field(snapshot, tl, i, "notional_floor_usd"))
                if i == 0 and floor != 0:
                    raise SnapshotError(f"{tl}[0].notional_floor_usd: the first tier starts at 0, got {floor:g}")
                if i > 0:
                    specs.append(ParamSpec(f"{m}.tier{i}.notional_floor_usd", "USD", 0.0, _MAX_USD, floor,
                                           f"Notional position value at which tier {i} starts.",
                                           source=src, as_of=as_of))
                specs.append(ParamSpec(
                    f"{m}.tier{i}.max_leverage", "x", 1.0, MAX_LEVERAGE,
                    float(list_field(snapshot, tl, i, "max_leverage")),
                    f"Max leverage of tier {i}; maintenance margin rate = 1 / (2 * max leverage).",
                    integer=True, source=src, as_of=as_of))
            for i in range(1, len(tiers)):
                fl = f"{m}.tier{i}.notional_floor_usd"
                if i > 1:
                    lo = f"{m}.tier{i - 1}.notional_floor_usd"
                    invs.append(Invariant("tiers in order: notional floors strictly increase", (lo, fl),
                                          lambda p, a=lo, b=fl: p[a] < p[b]))
                else:
                    invs.append(Invariant("tiers in order: notional floors strictly increase", (fl,),
                                          lambda p, b=fl: p[b] > 0))
                pl, cl = f"{m}.tier{i - 1}.max_leverage", f"{m}.tier{i}.max_leverage"
                invs.append(Invariant("tiers in order: max leverage does not rise with notional", (pl, cl),
                                      lambda p, a=pl, b=cl: p[b] <= p[a]))
        liq = "liquidation"
        lsrc = field_of(snapshot, f"{liq}.source", "str")
        las = field_of(snapshot, f"{liq}.as_of", "str")
        for key, unit, lo, hi, desc in (
            ("partial_liquidation_threshold_usd", "USD", 0.0, _MAX_USD,
             "Positions above this notional are liquidated partially (a fraction per market order)."),
            ("partial_liquidation_fraction", "fraction", 1e-6, 1.0,
             "Fraction of a large position sent per partial market liquidation."),
            ("partial_liquidation_cooldown_s", "s", 0.0, 86_400.0,
             "After a partial liquidation, orders are for the whole position for this long."),
            ("backstop_equity_fraction", "fraction", 0.0, 1.0,
             "Backstop (vault) liquidation when equity < this fraction of maintenance margin (2/3)."),
        ):
            specs.append(ParamSpec(key, unit, lo, hi, float(field_of(snapshot, f"{liq}.{key}")), desc,
                                   source=lsrc, as_of=las))
        v = "backstop_vault"
        specs.append(ParamSpec("backstop_vault_usd", "USD", 0.0, _MAX_USD,
                               float(field_of(snapshot, f"{v}.equity_usd")),
                               "Equity of the liquidator vault (HLP) that takes backstop liquidations. "
                               + field_of(snapshot, f"{v}.status", "str"),
                               source=field_of(snapshot, f"{v}.source", "str"),
                               as_of=field_of(snapshot, f"{v}.as_of", "str")))
        return ParameterSchema(tuple(specs), tuple(invs))

    # ------------------------------------------------------------------ facts
    @property
    def backstop_vault_usd(self) -> float:
        """HLP equity available to take backstop liquidations (not a deficit buffer: see module doc)."""
        return float(self.params["backstop_vault_usd"])

    def maintenance_deduction_usd(self, market: str) -> np.ndarray:
        """Each tier's maintenance deduction (continuous MM), as the docs define it."""
        i = self._markets.index(market)
        return self._deduction[i][np.isfinite(self._floor[i])].copy()

    def _maintenance_tiers(self, book: PerpBook, vm: np.ndarray, open_interest: OpenInterest) -> Tiers:
        return gather_tiers(self._floor, self._rate, self._deduction, vm)

    def max_leverage(self, market: np.ndarray, side: np.ndarray, notional_usd: np.ndarray,
                     open_interest: OpenInterest | None = None) -> np.ndarray:
        market = np.asarray(market, dtype=np.int64)
        notional_usd = np.asarray(notional_usd, dtype=np.float64)
        t = Tiers(self._floor[market], self._lev[market], self._deduction[market]).index(notional_usd)
        return self._lev[market, t]

    # ------------------------------------------------------------------ liquidation
    def liquidate(self, book: PerpBook, mark_usd: np.ndarray, mask: np.ndarray | None = None, *,
                  fill_price_usd: np.ndarray | None = None, open_interest: OpenInterest | None = None,
                  partial_allowed: np.ndarray | None = None) -> PerpLiquidationOutcome:
        """One liquidation pass over the liquidatable margin pools in ``mask``.

        Per pool: negative value -> every position offset by ADL at the mark (deficit = the negative
        value, not insurance-eligible); value below ``backstop_equity_fraction * MM`` -> every position
        and its margin to the vault; otherwise market orders for each position, 20 % of those above the
        threshold unless ``partial_allowed`` is False (cooldown), no fee.
        """
        st = self._prepare(book, mark_usd, mask, fill_price_usd, open_interest, partial_allowed)
        p = self.params
        q = book.size_base
        go = (book.pool_sum(st["flagged"].astype(np.float64)) > 0) & (q > 0) & st["mask"]
        eq, req = st["equity_gross"], st["requirement"]
        route = np.where(eq < 0, 2, np.where(eq < p["backstop_equity_fraction"] * req, 1, 0)).astype(np.int8)
        large = book.notional_usd(st["mark"]) > p["partial_liquidation_threshold_usd"]
        partial = (route == 0) & large & st["partial"]
        closed = np.where(partial, p["partial_liquidation_fraction"] * q, q)
        return self._settle(book, st["mark"], st["tiers"], eq, req, closed, st["fill"], route,
                            np.zeros(book.n_positions), go, extra={"partial": partial & go})

    def adl_score(self, book: PerpBook, mark_usd: np.ndarray) -> np.ndarray:
        """Profit fraction x leverage of the pool (the docs rank by uPnL and leverage; exact index unpublished)."""
        mark_usd = np.asarray(mark_usd, dtype=np.float64)
        eq = np.maximum(self.equity_usd(book, mark_usd), 1e-12)
        upnl = np.maximum(book.unrealized_pnl_usd(mark_usd), 0.0)
        lev = book.pool_sum(book.notional_usd(mark_usd)) / eq
        return upnl / eq * lev

    def _venue_breakers(self) -> PerpCircuitBreakers:
        return PerpCircuitBreakers(partial_liquidation_cooldown_s=float(self.params["partial_liquidation_cooldown_s"]))
