"""Deterministic analyses on a bound candidate: critical drop and the liquidation map.

Both apply one instantaneous exogenous shock to every non-constant asset (stablecoins stay at their
price) and run the same engine as the Monte Carlo, on one path, so the cascade's feedback (price
impact, oracle lag, call caps, profitability) is included.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from protocols import Prices

from .model import Bound, primary_asset
from .reference import run_reference
from .simulate import build_kernel_inputs, run_kernel

CASCADE_AMPLIFICATION = 1.1  # "a cascade starts" when liquidations add >= 10 % to the exogenous drop
MAP_LEVELS = np.round(np.arange(1.0, 0.195, -0.02), 4)


def _moving(bound: Bound) -> np.ndarray:
    sc = bound.prepared.scenario
    return np.array([sc.assets[a].model.get("model") != "constant" for a in bound.prepared.market.assets])


class _ShockRunner:
    def __init__(self, bound: Bound, engine: str) -> None:
        self.bound, self.engine = bound, engine
        self.inputs = build_kernel_inputs(bound) if engine == "kernel" else None
        self.moving = _moving(bound)
        self.p0 = bound.prepared.paths.close[0, 0]
        sc = bound.prepared.scenario
        lags = [sc.oracle_lag_steps + int(round(a.circuit_breakers().oracle_delay_s / sc.step_s))
                for a in bound.adapters]
        self.n_steps = max(lags) + 2  # let a lagged oracle see the shock and react once
        self.primary = primary_asset(bound)

    def run(self, drop: float):
        close = np.tile(self.p0, (1, self.n_steps + 1, 1))
        close[0, 1:, self.moving] = (self.p0[self.moving] * (1.0 - drop))[:, None]
        gas = np.full(self.n_steps + 1, float(np.max(self.bound.prepared.gas_gwei)))
        if self.engine == "kernel":
            raw, _ = run_kernel(self.bound, self.inputs, close=close, low=close, gas_gwei=gas, n_chunks=1)
        else:
            prep = self.bound.prepared
            paths = replace(prep.paths, close=close, low=close, timestamps=None)
            shocked = replace(self.bound, prepared=replace(prep, paths=paths, gas_gwei=gas))
            raw = run_reference(shocked)
        a = self.primary
        exo_dd = 1.0 - raw.exo_low_min[0, a]
        amp = (1.0 - raw.market_low_min[0, a]) / exo_dd if exo_dd > 0 else 1.0
        return raw, float(amp)


def _bisect(pred, lo: float = 0.0, hi: float = 0.99, iters: int = 22) -> float | None:
    if not pred(hi):
        return None
    for _ in range(iters):
        mid = 0.5 * (lo + hi)
        if pred(mid):
            hi = mid
        else:
            lo = mid
    return round(hi, 4)


def critical_drop(bound: Bound, engine: str = "kernel") -> dict:
    """Smallest instantaneous drop of every non-constant asset that (a) triggers the first liquidation and
    (b) starts a cascade (market drawdown >= 1.1 x the exogenous drop). None when no drop below 99 % does."""
    runner = _ShockRunner(bound, engine)
    first = _bisect(lambda x: runner.run(x)[0].liquidations.sum() > 0)
    cascade = _bisect(lambda x: runner.run(x)[1] >= CASCADE_AMPLIFICATION)
    return {"first_liquidation": first, "cascade": cascade, "cascade_amplification": CASCADE_AMPLIFICATION,
            "asset": bound.prepared.market.assets[runner.primary],
            "definition": "instantaneous drop of every non-constant asset; cascade = market drawdown >= "
                          f"{CASCADE_AMPLIFICATION} x exogenous drawdown of the main collateral"}


def liquidation_map(bound: Bound, engine: str = "kernel", levels: np.ndarray = MAP_LEVELS) -> dict:
    """Collateral (USD at t0 prices) that is liquidatable at each price level, statically (health < 1 at that
    level, no feedback) and with the cascade's feedback (collateral actually seized after the shock)."""
    runner = _ShockRunner(bound, engine)
    p0 = runner.p0
    static = []
    for r in levels:
        px = np.where(runner.moving, p0 * r, p0)
        total = 0.0
        for j, (ad, pb) in enumerate(zip(bound.adapters, bound.books, strict=True)):
            prices = Prices(px[bound.coll_market[j]], px[bound.debt_market[j]])
            liq = ad.health(pb.book, prices) < 1.0
            total += float((pb.book.collateral_tokens[liq] * p0[bound.coll_market[j]]).sum())
        static.append(total)
    cascade, market = [], []
    for r in levels:
        raw, _ = runner.run(1.0 - r)
        cascade.append(float(raw.collateral_seized_usd.sum()))
        market.append(float(raw.market_low_min[0, runner.primary]))
    a = runner.primary
    return {
        "asset": bound.prepared.market.assets[a],
        "price_ratio": levels.tolist(),
        "price_usd": (levels * p0[a]).tolist(),
        "static_liquidatable_usd": static,
        "static_new_usd": np.diff(np.concatenate([[0.0], static])).tolist(),
        "cascade_liquidated_usd": cascade,
        "cascade_market_price_ratio": market,
    }
