"""GMX v2 (synthetics) perpetuals on Arbitrum: collateral factors, OI-scaled margin, price impact, ADL.

Read from ``gmx-io/gmx-synthetics`` @ a5c0c883 (2026-03-13) (``shared/docs/protocol_rules.md`` §5):

- ``contracts/position/PositionUtils.sol`` ``isPositionLiquidatable``: ``remaining = collateralUsd +
  positionPnlUsd + priceImpactUsd - collateralCostUsd``, where the price impact of closing the whole
  position counts only when negative and is capped at ``-sizeInUsd * maxPositionImpactFactorForLiquidations``
  (0 on the BTC and ETH markets, so impact is ignored there), and the costs are the closing position
  fee (``positionFeeFactorForPositive/NegativeImpact`` by whether closing improves the OI balance) plus
  pending borrowing and funding fees, not the liquidation fee. Liquidatable if ``remaining <
  MIN_COLLATERAL_USD``, or ``remaining <= 0``, or ``remaining < sizeInUsd * minCollateralFactorForLiquidation``.
  PnL is ``sizeInTokens * price - sizeInUsd`` for longs (reversed for shorts), ``sizeInUsd`` the entry notional.
- ``willPositionCollateralBeSufficient`` (open / increase): the collateral factor required is
  ``max(minCollateralFactor, openInterest_side_after * minCollateralFactorForOpenInterestMultiplier)``,
  so the leverage allowed falls as open interest grows.
- ``contracts/pricing/PositionPricingUtils.sol`` / ``PricingUtils.sol``: price impact
  ``f(|L - S|) - f(|L' - S'|)`` with ``f(x) = factor * x^exponent`` (positive factor and exponent when the
  balance improves, capped at the negative ones; a crossover uses positive for the old and negative for
  the new imbalance). Virtual inventory is not modelled.
- Liquidation closes the whole position against the pool and charges ``sizeInUsd * liquidationFeeFactor``
  (``config/markets.ts`` ``baseMarketConfig``: 0.20 %); a loss beyond the collateral is borne by the pool
  (no insurance fund).
- ``contracts/adl/AdlUtils.sol``, ``AdlHandler.sol``: ADL is enabled for a side when its pending PnL
  to pool value exceeds ``maxPnlFactorForAdl`` (85 %), and each ADL order must leave the factor below
  where it was but not below ``minPnlFactorAfterAdl`` (77 %). It is about traders' profit, not deficits.
- ``contracts/config/ConfigUtils.sol`` ``validateRange``: the config-keeper bounds used as parameter
  bounds (min collateral factor <= 5 %, for liquidation <= 1 %, liquidation fee <= 1 %, position fee
  <= 5 %, impact exponent <= 3, MIN_COLLATERAL_USD <= $10, PnL factors <= 100 %).

Pending borrowing and funding fees are not in the book; an engine folds them into the collateral.
Positive price impact on a liquidation (paid from the impact pool) is not credited.
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
)

_MAX_USD = 1e12

_MARKET_PARAMS = (
    # key, unit, lower, upper, description
    ("min_collateral_factor", "fraction", 0.0, 0.05,
     "minCollateralFactor: collateral / size required to open (max leverage 1 / factor); ConfigUtils <= 5 %."),
    ("min_collateral_factor_for_liquidation", "fraction", 0.0, 0.01,
     "minCollateralFactorForLiquidation: liquidated when remaining collateral < size x this; ConfigUtils <= 1 %."),
    ("min_collateral_factor_for_open_interest_multiplier", "1/USD", 0.0, 1e-6,
     "Collateral factor required at open rises to OI_side x this (no contract bound; 1e-6 = 100 % at $1M OI)."),
    ("max_open_interest_usd", "USD", 0.0, _MAX_USD, "maxOpenInterest per side: opening beyond it is refused."),
    ("liquidation_fee_factor", "fraction", 0.0, 0.01,
     "liquidationFeeFactor: fee of size x this on a liquidation; ConfigUtils <= 1 %."),
    ("position_fee_factor_for_positive_impact", "fraction", 0.0, 0.05,
     "positionFeeFactorForPositiveImpact: close fee when the trade improves the OI balance; <= 5 %."),
    ("position_fee_factor_for_negative_impact", "fraction", 0.0, 0.05,
     "positionFeeFactorForNegativeImpact: close fee when the trade worsens the OI balance; <= 5 %."),
    ("positive_position_impact_factor", "USD^(1-e)", 0.0, 1e-6,
     "positivePositionImpactFactor (capped at the negative one by the contract); no contract bound."),
    ("negative_position_impact_factor", "USD^(1-e)", 0.0, 1e-6,
     "negativePositionImpactFactor; no contract bound."),
    ("positive_position_impact_exponent", "exponent", 0.0, 3.0,
     "positivePositionImpactExponentFactor (capped at the negative one); ConfigUtils <= 3."),
    ("negative_position_impact_exponent", "exponent", 0.0, 3.0,
     "negativePositionImpactExponentFactor; ConfigUtils <= 3."),
    ("max_position_impact_factor_for_liquidations", "fraction", 0.0, 1.0,
     "maxPositionImpactFactorForLiquidations: cap on negative impact in the liquidation check (0 = ignored)."),
    ("max_pnl_factor_for_adl", "fraction", 0.0, 1.0,
     "maxPnlFactorForAdl: ADL when a side's pending PnL / pool value exceeds this; <= 100 %."),
    ("min_pnl_factor_after_adl", "fraction", 0.0, 1.0,
     "minPnlFactorAfterAdl: an ADL order may not push PnL / pool below this; <= 100 %."),
    ("pool_usd", "USD", 0.0, _MAX_USD,
     "Pool value backing the market: bears losses beyond collateral and pays traders' profit."),
)


def price_impact_usd(long_oi_usd: np.ndarray, short_oi_usd: np.ndarray, next_long_usd: np.ndarray,
                     next_short_usd: np.ndarray, positive_factor: np.ndarray, negative_factor: np.ndarray,
                     positive_exponent: np.ndarray, negative_exponent: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``PositionPricingUtils._getPriceImpactUsd``: impact in USD (> 0 helps the trader) and whether the
    balance improved, for open interest going from (L, S) to (L', S')."""
    pf = np.minimum(positive_factor, negative_factor)  # getAdjustedPositionImpactFactors
    pe = np.minimum(positive_exponent, negative_exponent)
    initial = np.abs(long_oi_usd - short_oi_usd)
    nxt = np.abs(next_long_usd - next_short_usd)
    improved = nxt < initial
    same_side = (long_oi_usd <= short_oi_usd) == (next_long_usd <= next_short_usd)
    f = np.where(improved, pf, negative_factor)
    e = np.where(improved, pe, negative_exponent)
    same = np.abs(f * initial**e - f * nxt**e) * np.where(improved, 1.0, -1.0)
    cross = pf * initial**pe - negative_factor * nxt**negative_exponent
    return np.where(same_side, same, cross), improved


class GmxV2(PerpAdapter):
    """GMX v2 synthetics markets (isolated positions against the GM pool).

    Parameters per market ``<MKT>.<key>`` for the keys of the GMX market config (collateral factors,
    OI multiplier and cap, liquidation and position fees, impact factors and exponents, ADL PnL
    factors, pool value) and the global ``min_collateral_usd``.
    """

    name = "gmx_v2"
    bundled_snapshot = "protocols/gmx_v2.json"
    title = "GMX v2 (synthetics) perpetuals, Arbitrum"
    liquidation_flow_destination = "pool"
    fee_recipient = "pool"
    adl_trigger = "pnl_to_pool"
    supports_cross_margin = False

    def __init__(self, snapshot: Mapping[str, Any], params: Mapping[str, float] | None = None) -> None:
        super().__init__(snapshot, params)
        p = self.params
        self._v = {key: np.array([p[f"{m}.{key}"] for m in self._markets]) for key, *_ in _MARKET_PARAMS}
        for arr in self._v.values():
            arr.flags.writeable = False
        self._min_collateral_usd = float(p["min_collateral_usd"])

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
            label = field_of(snapshot, f"{path}.label", "str")
            src = field_of(snapshot, f"{path}.source", "str")
            as_of = field_of(snapshot, f"{path}.as_of", "str")
            for key, unit, lo, hi, desc in _MARKET_PARAMS:
                prov = field_of(snapshot, f"{path}.provenance.{key}", "str", optional=True)
                note = f" ({label}; {prov})" if prov else f" ({label})"
                specs.append(ParamSpec(f"{m}.{key}", unit, lo, hi, float(field_of(snapshot, f"{path}.{key}")),
                                       desc + note, source=src, as_of=as_of))
            a, b = f"{m}.min_collateral_factor_for_liquidation", f"{m}.min_collateral_factor"
            invs.append(Invariant("min_collateral_factor_for_liquidation <= min_collateral_factor "
                                  "(else a new position could be liquidatable at once)", (a, b),
                                  lambda p, a=a, b=b: p[a] <= p[b]))
            a, b = f"{m}.min_pnl_factor_after_adl", f"{m}.max_pnl_factor_for_adl"
            invs.append(Invariant("min_pnl_factor_after_adl <= max_pnl_factor_for_adl (else ADL reverts "
                                  "PnlOvercorrected)", (a, b), lambda p, a=a, b=b: p[a] <= p[b]))
        g = "global"
        specs.append(ParamSpec("min_collateral_usd", "USD", 0.0, 10.0,
                               float(field_of(snapshot, f"{g}.min_collateral_usd")),
                               "MIN_COLLATERAL_USD: a position is liquidatable below this remaining collateral; "
                               "ConfigUtils <= $10.",
                               source=field_of(snapshot, f"{g}.source", "str"),
                               as_of=field_of(snapshot, f"{g}.as_of", "str")))
        return ParameterSchema(tuple(specs), tuple(invs))

    # ------------------------------------------------------------------ facts
    @property
    def backstop_usd(self) -> float:
        """Sum of the markets' pool values; each pool backs only its own market (:meth:`pool_usd`)."""
        return float(self._v["pool_usd"].sum())

    def pool_usd(self, market: str) -> float:
        return float(self._v["pool_usd"][self._markets.index(market)])

    def _default_open_interest(self, book: PerpBook, mark_usd: np.ndarray) -> OpenInterest:
        # GMX open interest is the sum of sizeInUsd (entry notional), not marked to market
        return self._venue_order(book, book.open_interest(None))

    def _closing(self, book: PerpBook, vm: np.ndarray, oi: OpenInterest) -> tuple[np.ndarray, np.ndarray]:
        """Capped negative impact (<= 0) and the position fee of closing each whole position, USD."""
        v = self._v
        size_usd = book.size_base * book.entry_price_usd
        long_ = book.side > 0
        lo, so = oi.long_usd[vm], oi.short_usd[vm]
        impact, improved = price_impact_usd(
            lo, so, np.where(long_, lo - size_usd, lo), np.where(long_, so, so - size_usd),
            v["positive_position_impact_factor"][vm], v["negative_position_impact_factor"][vm],
            v["positive_position_impact_exponent"][vm], v["negative_position_impact_exponent"][vm])
        impact = np.maximum(np.minimum(impact, 0.0), -size_usd * v["max_position_impact_factor_for_liquidations"][vm])
        fee_factor = np.where(improved, v["position_fee_factor_for_positive_impact"][vm],
                              v["position_fee_factor_for_negative_impact"][vm])
        return impact, size_usd * fee_factor

    def _closing_costs_usd(self, book: PerpBook, vm: np.ndarray, open_interest: OpenInterest) -> np.ndarray:
        impact, fee = self._closing(book, vm, open_interest)
        return fee - impact

    def _maintenance_tiers(self, book: PerpBook, vm: np.ndarray, open_interest: OpenInterest) -> Tiers:
        n = vm.shape[0]
        size_usd = book.size_base * book.entry_price_usd
        need = np.maximum(self._min_collateral_usd, size_usd * self._v["min_collateral_factor_for_liquidation"][vm])
        return Tiers(np.zeros((n, 1)), np.zeros((n, 1)), -need[:, None])

    def _flag(self, equity_usd: np.ndarray, requirement_usd: np.ndarray) -> np.ndarray:
        return (equity_usd < requirement_usd) | (equity_usd <= 0)

    def max_leverage(self, market: np.ndarray, side: np.ndarray, notional_usd: np.ndarray,
                     open_interest: OpenInterest | None = None) -> np.ndarray:
        """``1 / max(minCollateralFactor, OI_side_after * multiplier)`` (``open_interest`` after the open)."""
        market = np.asarray(market, dtype=np.int64)
        oi = np.zeros(market.shape) if open_interest is None else open_interest.side_usd(market, np.asarray(side))
        factor = np.maximum(self._v["min_collateral_factor"][market],
                            oi * self._v["min_collateral_factor_for_open_interest_multiplier"][market])
        with np.errstate(divide="ignore"):
            return 1.0 / factor

    # ------------------------------------------------------------------ liquidation
    def liquidate(self, book: PerpBook, mark_usd: np.ndarray, mask: np.ndarray | None = None, *,
                  fill_price_usd: np.ndarray | None = None, open_interest: OpenInterest | None = None,
                  partial_allowed: np.ndarray | None = None) -> PerpLiquidationOutcome:
        """Close each liquidatable position in ``mask`` whole against the pool.

        Effective fill = ``fill_price_usd`` (default the oracle mark) moved by the capped negative
        impact; fees = closing position fee + ``size * liquidationFeeFactor``, paid only out of what
        collateral is left; a loss beyond the collateral is a deficit borne by the pool.
        """
        st = self._prepare(book, mark_usd, mask, fill_price_usd, open_interest, partial_allowed)
        q = book.size_base
        impact, position_fee = self._closing(book, st["vm"], st["oi"])
        liq_fee = q * book.entry_price_usd * self._v["liquidation_fee_factor"][st["vm"]]
        with np.errstate(divide="ignore", invalid="ignore"):
            fill = np.where(q > 0, st["fill"] + impact / (book.side * q), st["fill"])
        go = st["flagged"]
        return self._settle(book, st["mark"], st["tiers"], st["equity_gross"], st["requirement"], q, fill,
                            np.zeros(book.n_positions, dtype=np.int8), position_fee + liq_fee, go,
                            extra={"price_impact_usd": np.where(go, impact, 0.0),
                                   "position_fee_cap_usd": position_fee, "liquidation_fee_cap_usd": liq_fee})

    def adl_pnl_to_realize_usd(self, market: str, pnl_usd: float, pool_usd: float | None = None) -> float:
        """Profit a side must realise for its PnL / pool factor to fall to ``minPnlFactorAfterAdl``.

        0 unless ``pnl / pool > maxPnlFactorForAdl``. Realising ``x`` of profit pays it from the pool,
        so the factor becomes ``(P - x) / (V - x)``; solving for ``minPnlFactorAfterAdl`` gives
        ``x = (P - m*V) / (1 - m)``.
        """
        i = self._markets.index(market)
        v = self.pool_usd(market) if pool_usd is None else float(pool_usd)
        hi, lo = float(self._v["max_pnl_factor_for_adl"][i]), float(self._v["min_pnl_factor_after_adl"][i])
        if v <= 0 or pnl_usd <= 0 or pnl_usd / v <= hi:
            return 0.0
        return (pnl_usd - lo * v) / (1.0 - lo) if lo < 1 else float(pnl_usd)

    def pnl_to_pool_factor(self, book: PerpBook, mark_usd: np.ndarray, pool_usd: np.ndarray
                           ) -> tuple[np.ndarray, np.ndarray]:
        """``MarketUtils.getPnlToPoolFactor`` per market and side: the side's net pending PnL / pool value.

        Returns ``(long_factor, short_factor)``, each ``(len(markets),)``, with ``pool_usd`` the pool value
        backing each market (indexed like ``self.markets``; 0 or less gives factor 0). PnL is the sum over
        the side's open positions of ``side * size * (mark - entry)`` (profits and losses net out, as the
        contract's ``getPnl``).
        """
        mark_usd = np.asarray(mark_usd, dtype=np.float64)
        vm = self.market_index(book)
        upnl = np.where(book.size_base > 0, book.unrealized_pnl_usd(mark_usd), 0.0)
        m = len(self._markets)
        pool = np.asarray(pool_usd, dtype=np.float64)
        out = []
        for side in (1, -1):
            pnl = np.bincount(vm, weights=np.where(book.side == side, upnl, 0.0), minlength=m)
            with np.errstate(divide="ignore", invalid="ignore"):
                out.append(np.where(pool > 0, pnl / np.where(pool > 0, pool, 1.0), 0.0))
        return out[0], out[1]

    def adl_orders(self, book: PerpBook, mark_usd: np.ndarray, pool_usd: np.ndarray) -> dict[str, np.ndarray]:
        """ADL decrease orders for every market side whose PnL-to-pool factor exceeds ``maxPnlFactorForAdl``.

        ``AdlUtils.updateAdlState`` enables ADL for a side when ``pnl / pool > maxPnlFactorForAdl``; each
        ``executeAdl`` order must leave the factor lower but not below ``minPnlFactorAfterAdl``
        (``PnlOvercorrected``). Realising ``x`` of the side's profit pays it from the pool, so the factor
        becomes ``(P - x) / (V - x)``: the orders realise exactly ``x = (P - m V) / (1 - m)``
        (:meth:`adl_pnl_to_realize_usd`), from the most profitable positions first (keepers choose the
        positions; :meth:`adl_score`), closing whole positions and a part of the last one (ADL orders may
        be partial). A decrease keeps the position's collateral and entry price (``sizeInUsd`` and
        ``sizeInTokens`` fall pro rata; ``initialCollateralDeltaAmount`` is 0); a whole close releases it.

        Returns a dict: per position ``closed_size_base`` and ``realized_profit_usd`` (paid by the pool),
        ``book`` (the book after) and per market ``pnl_realized_long_usd`` / ``pnl_realized_short_usd``.
        """
        mark_usd = np.asarray(mark_usd, dtype=np.float64)
        vm = self.market_index(book)
        pool = np.asarray(pool_usd, dtype=np.float64)
        n, m = book.n_positions, len(self._markets)
        upnl = np.where(book.size_base > 0, book.unrealized_pnl_usd(mark_usd), 0.0)
        frac = np.zeros(n)
        realized = {1: np.zeros(m), -1: np.zeros(m)}
        for side in (1, -1):
            pnl = np.bincount(vm, weights=np.where(book.side == side, upnl, 0.0), minlength=m)
            for k, name in enumerate(self._markets):
                x = self.adl_pnl_to_realize_usd(name, float(pnl[k]), float(pool[k]))
                if x <= 0:
                    continue
                rows = np.flatnonzero((vm == k) & (book.side == side) & (upnl > 0))
                order = rows[np.lexsort((rows, -upnl[rows]))]  # most profitable first, then book order
                u = upnl[order]
                before = np.cumsum(u) - u
                take = np.clip((x - before) / u, 0.0, 1.0)
                frac[order] = take
                realized[side][k] = float((take * u).sum())
        closed = frac * book.size_base
        profit = frac * upnl
        left = book.size_base - closed
        whole = (frac >= 1.0) & (closed > 0)
        after = book.with_state(size_base=np.where(whole, 0.0, left),
                                margin_usd=np.where(whole, 0.0, book.margin_usd))
        return {"closed_size_base": closed, "realized_profit_usd": profit, "book": after,
                "pnl_realized_long_usd": realized[1], "pnl_realized_short_usd": realized[-1]}

    def adl_score(self, book: PerpBook, mark_usd: np.ndarray) -> np.ndarray:
        """Unrealised profit: ADL orders are created by keepers, who reduce the most profitable positions
        first (the contracts only check the PnL factor; the keepers' choice is not on-chain)."""
        return np.maximum(book.unrealized_pnl_usd(np.asarray(mark_usd, dtype=np.float64)), 0.0)

    def _venue_breakers(self) -> PerpCircuitBreakers:
        return PerpCircuitBreakers(max_open_interest_usd={m: float(x) for m, x in
                                                          zip(self._markets, self._v["max_open_interest_usd"],
                                                              strict=True)})
