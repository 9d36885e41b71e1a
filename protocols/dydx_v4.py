"""dYdX v4 (dYdX Chain) perpetuals: liquidity tiers, OIMF, fillable price, insurance fund, deleveraging.

Read from ``dydxprotocol/v4-chain`` @ 84d4664b (2026-03-05) (``shared/docs/protocol_rules.md`` §5):

- ``protocol/x/perpetuals/types/liquidity_tier.go``: each market has a liquidity tier with base
  ``IMF`` (``initial_margin_ppm``) and ``MMF = IMF * maintenance_fraction``. **OIMF**: the initial margin
  fraction rises with the market's open notional, ``IMF_eff = min(IMF + max(0, (OI - lower) /
  (upper - lower)) * (1 - IMF), 1)``, disabled when ``upper = 0``; ``Validate`` refuses IMF > 1,
  maintenance fraction > 1 and ``lower > upper``.
- ``protocol/x/perpetuals/lib/lib.go``: the maintenance requirement uses the *base* IMF (no OI
  scaling); only the initial requirement is OI-scaled.
- ``protocol/x/clob/keeper/liquidations.go``: a subaccount is liquidatable iff ``TMMR > 0`` and
  ``TNC < TMMR``. One liquidation order per subaccount per block, for one position, of at most
  ``max(maxPositionPortionLiquidated * notional, min(minPositionNotionalLiquidated, notional))`` and
  the subaccount's ``maxNotionalLiquidated`` per block (the whole position if it fits). The order is
  an IOC at the **fillable price** ``(PNNV - ABR*SMMR*PMMR) / PS`` with ``ABR = clamp(BA*(1 - TNC/TMMR),
  0, 1)``. The closed part's **bankruptcy price** is ``-DNNV - TNC*|DMMR|/TMMR`` (quote per delta). The
  insurance-fund delta is ``quote received - bankruptcy quote``: if positive, the fund takes
  ``min(maxLiquidationFee * |quote|, delta)``, the rest stays with the subaccount; if negative, the
  fund pays it, at most ``maxQuantumsInsuranceLost`` per subaccount per block (else the fill is refused).
- ``protocol/x/clob/keeper/deleveraging.go``: a subaccount with negative TNC whose liquidation
  does not fill is deleveraged: its whole position is offset against opposite-side positions at its
  bankruptcy price, without drawing on the insurance fund; the scan starts at a pseudo-random
  subaccount, with no PnL ranking.

Deterministic choices where the chain uses its block's pseudo-random seed: the position liquidated
in a cross subaccount is its first open one in book order, and :meth:`adl_score` is constant (the
queue then follows book order). Integer quantums, subticks and step sizes are not reproduced.
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
    first_row_per_account,
)

_PPM = 1e-6  # dYdX stores fractions in parts per million
_UINT32_PPM = (2**32 - 1) * _PPM  # largest ppm value a uint32 holds, as a ratio
_MAX_QUOTE_USD = (2**64 - 1) * 1e-6  # uint64 quote quantums (1e-6 USDC)
_MAX_USD = 1e12

_LIQUIDATIONS = (
    # key, unit, lower, upper, description (bounds: LiquidationsConfig.Validate)
    ("max_liquidation_fee", "fraction", _PPM, 1.0,
     "MaxLiquidationFeePpm: the insurance fund takes at most this fraction of the liquidated quote (0 < fee <= 1)."),
    ("bankruptcy_adjustment", "ratio", 1.0, _UINT32_PPM,
     "BankruptcyAdjustmentPpm (BA) in ABR = clamp(BA*(1 - TNC/TMMR), 0, 1); must be >= 1."),
    ("spread_to_maintenance_margin_ratio", "ratio", _PPM, _UINT32_PPM,
     "SpreadToMaintenanceMarginRatioPpm (SMMR): the fillable price concedes up to SMMR x the position's MMR (> 0)."),
    ("max_position_portion_liquidated", "fraction", _PPM, 1.0,
     "MaxPositionPortionLiquidatedPpm: share of a position liquidated per block (0 < x <= 1)."),
    ("min_position_notional_liquidated_usd", "USD", 0.0, _MAX_QUOTE_USD,
     "MinPositionNotionalLiquidated: at least this notional is liquidated per block (or the whole position)."),
    ("max_notional_liquidated_per_block_usd", "USD", 1e-6, _MAX_QUOTE_USD,
     "SubaccountBlockLimits.MaxNotionalLiquidated: notional one subaccount may be liquidated per block (> 0)."),
    ("max_insurance_fund_loss_per_block_usd", "USD", 1e-6, _MAX_QUOTE_USD,
     "SubaccountBlockLimits.MaxQuantumsInsuranceLost: insurance-fund payout per subaccount per block (> 0)."),
)


class DydxV4(PerpAdapter):
    """dYdX v4 perpetuals (cross-margined subaccounts; an isolated position is its own subaccount).

    Parameters: ``<Tier>.initial_margin_fraction``, ``<Tier>.maintenance_fraction`` (fractions),
    ``<Tier>.open_interest_lower_cap_usd`` / ``open_interest_upper_cap_usd`` (OIMF; upper 0 = off),
    the liquidations config (``max_liquidation_fee``, ``bankruptcy_adjustment``,
    ``spread_to_maintenance_margin_ratio``, per-block limits) and ``insurance_fund_usd``.
    """

    name = "dydx_v4"
    bundled_snapshot = "protocols/dydx_v4.json"
    title = "dYdX v4 (dYdX Chain) perpetuals"

    def __init__(self, snapshot: Mapping[str, Any], params: Mapping[str, float] | None = None) -> None:
        super().__init__(snapshot, params)
        p = self.params
        tiers = [field_of(snapshot, f"markets.{m}.liquidity_tier", "str") for m in self._markets]
        self._tier_of_market = tuple(tiers)
        self._imf = np.array([p[f"{t}.initial_margin_fraction"] for t in tiers])
        self._mmf = self._imf * np.array([p[f"{t}.maintenance_fraction"] for t in tiers])
        self._oi_lower = np.array([p[f"{t}.open_interest_lower_cap_usd"] for t in tiers])
        self._oi_upper = np.array([p[f"{t}.open_interest_upper_cap_usd"] for t in tiers])
        for arr in (self._imf, self._mmf, self._oi_lower, self._oi_upper):
            arr.flags.writeable = False

    # ------------------------------------------------------------------ schema
    @classmethod
    def _build_schema(cls, snapshot: Mapping[str, Any]) -> ParameterSchema:
        tiers = field_of(snapshot, "liquidity_tiers", "dict")
        markets = field_of(snapshot, "markets", "dict")
        if not tiers:
            raise SnapshotError("liquidity_tiers: no tiers")
        if not markets:
            raise SnapshotError("markets: no markets")
        for m in markets:
            field_of(snapshot, f"markets.{m}.base_asset", "str")
            t = field_of(snapshot, f"markets.{m}.liquidity_tier", "str")
            if t not in tiers:
                raise SnapshotError(f"markets.{m}.liquidity_tier: unknown tier '{t}' (known: {', '.join(tiers)})")
        specs: list[ParamSpec] = []
        invs: list[Invariant] = []
        for t in tiers:
            path = f"liquidity_tiers.{t}"
            src = field_of(snapshot, f"{path}.source", "str")
            as_of = field_of(snapshot, f"{path}.as_of", "str")
            status = field_of(snapshot, f"{path}.status", "str", optional=True)
            note = f" Snapshot status: {status}" if status else ""
            oi_src = field_of(snapshot, f"{path}.open_interest_caps_source", "str")
            for key, unit, lo, hi, desc, s in (
                ("initial_margin_fraction", "fraction", _PPM, 1.0,
                 "Base IMF (initial_margin_ppm); max leverage = 1 / IMF below the OI lower cap. Bounds: "
                 "MaxInitialMarginPpm = 1e6; 1 ppm is the smallest positive value.", src),
                ("maintenance_fraction", "fraction", 0.0, 1.0,
                 "MMF = IMF x maintenance_fraction (maintenance_fraction_ppm <= 1e6).", src),
                ("open_interest_lower_cap_usd", "USD", 0.0, _MAX_QUOTE_USD,
                 "OIMF: open notional at which the IMF starts rising (uint64 quote quantums).", oi_src),
                ("open_interest_upper_cap_usd", "USD", 0.0, _MAX_QUOTE_USD,
                 "OIMF: open notional at which the IMF reaches 100 %; 0 disables OIMF.", oi_src),
            ):
                specs.append(ParamSpec(f"{t}.{key}", unit, lo, hi, float(field_of(snapshot, f"{path}.{key}")),
                                       desc + note, source=s, as_of=as_of))
            lo_n, hi_n = f"{t}.open_interest_lower_cap_usd", f"{t}.open_interest_upper_cap_usd"
            invs.append(Invariant("open_interest_lower_cap <= open_interest_upper_cap "
                                  "(ErrOpenInterestLowerCapLargerThanUpperCap)", (lo_n, hi_n),
                                  lambda p, a=lo_n, b=hi_n: p[a] <= p[b]))
        lc = "liquidations_config"
        lsrc = field_of(snapshot, f"{lc}.source", "str")
        las = field_of(snapshot, f"{lc}.as_of", "str")
        for key, unit, lo, hi, desc in _LIQUIDATIONS:
            specs.append(ParamSpec(key, unit, lo, hi, float(field_of(snapshot, f"{lc}.{key}")), desc,
                                   source=lsrc, as_of=las))
        ins = "insurance_fund"
        specs.append(ParamSpec("insurance_fund_usd", "USD", 0.0, _MAX_USD,
                               float(field_of(snapshot, f"{ins}.balance_usd")),
                               "Insurance fund that pays fills worse than bankruptcy before deleveraging. "
                               + field_of(snapshot, f"{ins}.status", "str"),
                               source=field_of(snapshot, f"{ins}.source", "str"),
                               as_of=field_of(snapshot, f"{ins}.as_of", "str")))
        return ParameterSchema(tuple(specs), tuple(invs))

    # ------------------------------------------------------------------ facts
    @property
    def insurance_fund_usd(self) -> float:
        return float(self.params["insurance_fund_usd"])

    def liquidity_tier(self, market: str) -> str:
        return self._tier_of_market[self._markets.index(market)]

    def _maintenance_tiers(self, book: PerpBook, vm: np.ndarray, open_interest: OpenInterest) -> Tiers:
        n = vm.shape[0]
        return Tiers(np.zeros((n, 1)), self._mmf[vm][:, None], np.zeros((n, 1)))

    def initial_margin_fraction(self, market: np.ndarray, open_interest_usd: np.ndarray) -> np.ndarray:
        """``GetAdjustedInitialMarginPpm``: the OI-scaled IMF of each market index at this open notional."""
        market = np.asarray(market, dtype=np.int64)
        oi = np.asarray(open_interest_usd, dtype=np.float64)
        imf, lo, hi = self._imf[market], self._oi_lower[market], self._oi_upper[market]
        with np.errstate(divide="ignore", invalid="ignore"):
            scaled = imf + (oi - lo) / (hi - lo) * (1.0 - imf)
        out = np.where(oi >= hi, 1.0, scaled)
        return np.where((hi == 0) | (oi <= lo), imf, out)

    def max_leverage(self, market: np.ndarray, side: np.ndarray, notional_usd: np.ndarray,
                     open_interest: OpenInterest | None = None) -> np.ndarray:
        """``1 / IMF_eff`` with the market's open notional (one side: the larger of long and short here)."""
        market = np.asarray(market, dtype=np.int64)
        if open_interest is None:
            oi = np.zeros(market.shape)
        else:
            oi = np.maximum(open_interest.long_usd, open_interest.short_usd)[market]
        return 1.0 / self.initial_margin_fraction(market, oi)

    # ------------------------------------------------------------------ liquidation
    def fillable_price_usd(self, book: PerpBook, mark_usd: np.ndarray) -> np.ndarray:
        """``GetFillablePrice``: ``mark * (1 - side * ABR * SMMR * MMF)`` for each position."""
        mark_usd = np.asarray(mark_usd, dtype=np.float64)
        p = self.params
        tnc, tmmr = self.equity_usd(book, mark_usd), self.requirement_usd(book, mark_usd)
        with np.errstate(divide="ignore", invalid="ignore"):
            abr = np.clip(p["bankruptcy_adjustment"] * (1.0 - tnc / tmmr), 0.0, 1.0)
        abr = np.where(tmmr > 0, abr, 0.0)
        mmf = self._mmf[self.market_index(book)]
        return mark_usd * (1.0 - book.side * abr * p["spread_to_maintenance_margin_ratio"] * mmf)

    def liquidate(self, book: PerpBook, mark_usd: np.ndarray, mask: np.ndarray | None = None, *,
                  fill_price_usd: np.ndarray | None = None, open_interest: OpenInterest | None = None,
                  partial_allowed: np.ndarray | None = None) -> PerpLiquidationOutcome:
        """One block: each liquidatable subaccount in ``mask`` gets one IOC liquidation order.

        The order fills at ``fill_price_usd`` (default: the mark) if that is at least as good as the
        fillable price and the insurance fund would not lose more than the per-block cap; otherwise it
        does not fill, and a subaccount with negative TNC is deleveraged (route "offset"). Unfilled
        positions are in ``extra["unfilled"]``; the fillable prices in ``extra["fillable_price_usd"]``.
        """
        st = self._prepare(book, mark_usd, mask, fill_price_usd, open_interest, partial_allowed)
        p = self.params
        mark, q, s = st["mark"], book.size_base, book.side.astype(np.float64)
        candidates = (book.pool_sum(st["flagged"].astype(np.float64)) > 0) & (q > 0) & st["mask"]
        pick = first_row_per_account(book, candidates)
        notional = q * mark
        cap = np.maximum(p["max_position_portion_liquidated"] * notional,
                         np.minimum(p["min_position_notional_liquidated_usd"], notional))
        cap = np.minimum(cap, p["max_notional_liquidated_per_block_usd"])
        with np.errstate(divide="ignore", invalid="ignore"):
            c = np.where(notional <= cap, q, cap / mark)
        fillable = self.fillable_price_usd(book, mark)
        fill = st["fill"]
        at_price = s * (fill - fillable) >= 0
        # insurance-fund payout this fill would need: the closed part's equity share at the fill
        eq, req = st["equity_gross"], st["requirement"]
        mmf = self._mmf[st["vm"]]
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(req > 0, eq * c * mark * mmf / req, 0.0)
        payout = np.maximum(-(share + s * c * (fill - mark)), 0.0)
        filled = pick & at_price & (payout <= p["max_insurance_fund_loss_per_block_usd"])
        deleverage = pick & ~filled & (eq < 0)
        closed = np.where(filled, c, q)
        route = np.where(filled, 0, 2).astype(np.int8)
        fee_cap = p["max_liquidation_fee"] * closed * fill
        return self._settle(book, mark, st["tiers"], eq, req, closed, fill, route, fee_cap, filled | deleverage,
                            extra={"unfilled": pick & ~filled, "fillable_price_usd": fillable})

    def adl_score(self, book: PerpBook, mark_usd: np.ndarray) -> np.ndarray:
        """Constant: dYdX deleveraging scans subaccounts from a pseudo-random start, with no ranking."""
        return np.zeros(book.n_positions)

    def _venue_breakers(self) -> PerpCircuitBreakers:
        p = self.params
        return PerpCircuitBreakers(
            max_position_fraction_liquidated_per_step=float(p["max_position_portion_liquidated"]),
            min_position_notional_liquidated_usd=float(p["min_position_notional_liquidated_usd"]),
            max_notional_liquidated_per_account_per_step_usd=float(p["max_notional_liquidated_per_block_usd"]),
            max_insurance_loss_per_account_per_step_usd=float(p["max_insurance_fund_loss_per_block_usd"]),
        )
