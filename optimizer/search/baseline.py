"""The closed-form baseline printed beside the optimised LTV: Smart LTV (Risk DAO / B.Protocol).

    LTV = max(0, exp(-c * sigma * sqrt(d / l)) - beta)

* ``sigma``: volatility of the collateral against the debt asset over the liquidation horizon;
* ``l``: DEX liquidity, the USD of collateral that can be sold with at most ``beta`` slippage;
* ``d``: the debt (debt cap) in USD that this collateral backs;
* ``beta``: the liquidation bonus (liquidator incentive) as a fraction;
* ``c``: the risk level (confidence factor), e.g. 2.33 for a one-sided 99 % normal quantile.

Sources: Risk DAO, "A Smart Contract Formula for LTV ratio" (Y. Velner, June 2023,
https://medium.com/risk-dao/a-smart-contract-formula-for-ltv-ratio-a60a8373d54d), B.Protocol docs
"SmartLTV formula" (https://docs.bprotocol.org/risk-oracle/smartltv-formula) and the on-chain
implementation ``backstop-protocol/smart-ltv`` ``src/core/SmartLTV.sol`` (``ltv = e^(-c*sigma/sqrt(l/d)) -
beta``, ``d`` = the supply/debt cap, ``l`` = liquidity at slippage ``beta``).

Inputs taken from the scenario (assumptions stated):

* ``sigma``: the price model's annual volatility, with the Merton jump variance
  ``lambda * (mu_J^2 + s_J^2)`` added, scaled by ``sqrt(horizon / 1 year)``; the horizon is the
  scenario's (or ``[optimize] smart_ltv_horizon_h``). Scheduled shocks are not volatility and are left
  out. Models without a sigma (bootstrap, replay) use the pooled per-step log-return standard deviation
  of the prepared paths, scaled to the horizon. Debt assets are taken as stable (sigma of the pair =
  sigma of the collateral).
* ``l``: the scenario's liquidity model inverted at ``beta`` (``tokens_to_move_price``), e.g. for the
  square-root law ``Y * sigma_d * sqrt(Q / V) = beta`` gives ``Q = V * (beta / (Y * sigma_d))^2``; an
  asset without a liquidity model is infinitely deep (``exp(0) = 1``).
* ``d``: the book's debt at t0 allocated to collaterals by each position's collateral value shares.
* ``beta``: Aave ``liquidation_bonus_bps / 10^4 - 1``; Comet ``storeFrontPriceFactor * (1 -
  liquidationFactor)`` (the liquidator's discount); Maker ``chop - 1`` (the penalty; its keeper incentive
  is the auction's price decay) and LTV ``1 / mat``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ..engine.model import Bound
from ..market.liquidity import tokens_to_move_price
from ..scenario.book import market_asset

YEAR_H = 365.0 * 24.0
DISAGREE = 0.05  # note when |optimised - Smart LTV| exceeds 5 percentage points


def smart_ltv(*, sigma: float, liquidity_usd: float, debt_usd: float, beta: float, c: float = 2.33) -> float:
    """``max(0, exp(-c * sigma * sqrt(d / l)) - beta)``, as ``SmartLTV.sol`` computes it.

    Keyword-only: the paper writes the inputs in the order (l, sigma, d, beta, c) and a positional
    call in another order would silently return a wrong number. The on-chain implementation
    subtracts ``beta`` with ``Math.trySub`` (0 when it would go negative) and returns 0 when the
    exponent is too large, so the result is clamped at 0: no liquidity (``l <= 0``) gives 0, no
    debt (``d = 0``) or infinite liquidity gives ``max(0, 1 - beta)``.

    Parameters
    ----------
    sigma : float
        Volatility of the collateral against the debt asset over the liquidation horizon (fraction).
    liquidity_usd : float
        USD of collateral that can be sold with at most ``beta`` slippage.
    debt_usd : float
        The debt (cap) in USD this collateral backs.
    beta : float
        Liquidation bonus as a fraction (0.05 for a 5 % bonus).
    c : float
        Risk level (confidence factor).
    """
    if debt_usd <= 0 or math.isinf(liquidity_usd):
        return max(0.0, 1.0 - beta)
    if liquidity_usd <= 0:
        return 0.0
    return max(0.0, math.exp(-c * sigma * math.sqrt(debt_usd / liquidity_usd)) - beta)


def annual_sigma(model: Any) -> float | None:
    sig = getattr(model, "sigma_annual", None)
    if sig is None:
        return None
    var = float(sig) ** 2
    lam = getattr(model, "jump_intensity_per_day", 0.0) or 0.0
    if lam:
        var += lam * 365.0 * (model.jump_mean ** 2 + model.jump_std ** 2)
    return math.sqrt(var)


def _empirical_sigma(paths, i: int, horizon_h: float, step_s: float) -> float:
    close = paths.close[:, :, i]
    r = np.diff(np.log(close), axis=1).ravel()
    if r.size < 2:
        return 0.0
    return float(np.std(r, ddof=1) * math.sqrt(horizon_h * 3600.0 / step_s))


def _beta_and_ltv(adapter, asset: str) -> tuple[float, float] | None:
    """(liquidator incentive, LTV) of one collateral, from the adapter's public risk levers."""
    lv = adapter.risk_levers(asset)
    return None if lv is None else (lv.liquidator_incentive, lv.ltv)


def _debt_by_collateral(bound: Bound, j: int) -> dict[str, float]:
    close0 = bound.prepared.paths.close[0, 0]
    book = bound.books[j].book
    coll = book.collateral_tokens * close0[bound.coll_market[j]]
    debt = (book.debt_tokens * close0[bound.debt_market[j]]).sum(1)
    tot = coll.sum(1)
    share = np.divide(coll, tot[:, None], out=np.zeros_like(coll), where=tot[:, None] > 0)
    d = (share * debt[:, None]).sum(0)
    return {a: float(d[k]) for k, a in enumerate(book.collateral_assets)}


def smart_ltv_table(best: Bound, current: Bound, *, c: float, horizon_h: float | None) -> dict[str, Any]:
    """Per (protocol, collateral): Smart LTV at the optimised and current parameters, beside the LTVs."""
    prep = best.prepared
    sc = prep.scenario
    h = horizon_h or (prep.n_steps * sc.step_s / 3600.0)
    from ..engine.model import build_models

    models = build_models(sc)[0]
    rows = []
    for j, (ad_best, ad_cur) in enumerate(zip(best.adapters, current.adapters, strict=True)):
        if getattr(ad_best, "family", "lending") != "lending":  # Smart LTV is a lending baseline (no LTV on perps)
            continue
        d_best, d_cur = _debt_by_collateral(best, j), _debt_by_collateral(current, j)
        for asset in best.books[j].book.collateral_assets:
            bl_best = _beta_and_ltv(ad_best, asset)
            bl_cur = _beta_and_ltv(ad_cur, asset)
            if bl_best is None or bl_cur is None:
                continue
            m = market_asset(ad_best, asset)
            i = prep.market.assets.index(m)
            sig_a = annual_sigma(models.get(m))
            sigma = sig_a * math.sqrt(h / YEAR_H) if sig_a is not None else _empirical_sigma(prep.paths, i, h, sc.step_s)
            row_liq = prep.market.liquidity[i]
            p0 = float(prep.paths.close[0, 0, i])

            def liquidity(beta: float, row_liq=row_liq, p0=p0) -> float:
                if row_liq[0] < 0:
                    return math.inf
                return float(tokens_to_move_price(int(row_liq[0]), np.ascontiguousarray(row_liq[1:5]), beta)) * p0

            beta_b, ltv_b = bl_best
            beta_c, ltv_c = bl_cur
            l_b, l_c = liquidity(beta_b), liquidity(beta_c)
            s_b = smart_ltv(sigma=sigma, liquidity_usd=l_b, debt_usd=d_best[asset], beta=beta_b, c=c)
            s_c = smart_ltv(sigma=sigma, liquidity_usd=l_c, debt_usd=d_cur[asset], beta=beta_c, c=c)
            gap = ltv_b - s_b
            rows.append({
                "adapter": best.ids[j], "asset": asset,
                "ltv_param": f"{best.ids[j]}:{ad_best.risk_levers(asset).ltv_param}", "sigma": sigma, "liquidity_usd": l_b, "debt_usd": d_best[asset],
                "beta": beta_b, "smart_ltv": s_b, "optimised_ltv": ltv_b, "current_ltv": ltv_c,
                "smart_ltv_current": s_c, "difference": gap,
                "note": (f"optimised LTV {'above' if gap > 0 else 'below'} Smart LTV by {abs(gap) * 100:.1f} pp"
                         if abs(gap) > DISAGREE else None),
            })
    return {"method": "Smart LTV (Risk DAO / B.Protocol): LTV = max(0, exp(-c*sigma*sqrt(d/l)) - beta)", "c": c,
            "horizon_h": h, "disagree_above_pp": DISAGREE * 100, "collaterals": rows}
