"""Deterministic analyses on a bound candidate: critical drop and the liquidation map.

Both apply one instantaneous exogenous shock to every non-constant asset (stablecoins stay at their
price), hold it for the scenario's horizon, and run the same engine as the Monte Carlo on that one
path, so the cascade's feedback (price impact, recovery, oracle lag, call caps, profitability) is
included.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from protocols import PerpAdapter, Prices

from .model import Bound, oracle_lag_steps, primary_asset
from .reference import run_reference
from .simulate import build_kernel_inputs, run_kernel

PERP_SHOCK_STEPS = 6  # a held shock has done its work on perp books within a few steps (one pass a second)
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
        # the shock holds for the scenario's horizon so call caps and lags play out
        self.n_steps = max(bound.prepared.n_steps, max(oracle_lag_steps(bound)) + 2)
        if all(isinstance(ad, PerpAdapter) for ad in bound.adapters):  # perp venues act within a few steps
            self.n_steps = min(self.n_steps, max(max(oracle_lag_steps(bound)) + 2, PERP_SHOCK_STEPS))
        self.primary = primary_asset(bound)

    def run(self, drops: np.ndarray):
        """One path per drop (batched); returns raw results and the amplification per path."""
        drops = np.atleast_1d(np.asarray(drops, float))
        close = np.tile(self.p0, (drops.size, self.n_steps + 1, 1))
        close[:, 1:, self.moving] = self.p0[self.moving] * (1.0 - drops)[:, None, None]
        gas = np.full(self.n_steps + 1, float(np.max(self.bound.prepared.gas_gwei)))
        if self.engine == "kernel":
            raw, _ = run_kernel(self.bound, self.inputs, close=close, low=close, gas_gwei=gas)
        else:
            prep = self.bound.prepared
            paths = replace(prep.paths, close=close, low=close, high=close, timestamps=None)
            shocked = replace(self.bound, prepared=replace(prep, paths=paths, gas_gwei=gas))
            raw = run_reference(shocked)
        a = self.primary
        exo_dd = 1.0 - raw.exo_low_min[:, a]
        with np.errstate(divide="ignore", invalid="ignore"):
            amp = np.where(exo_dd > 0, (1.0 - raw.market_low_min[:, a]) / exo_dd, 1.0)
        return raw, amp


COARSE = np.round(np.arange(0.01, 0.9951, 0.01), 6)


def _refine(runner: _ShockRunner, pred, coarse_hits: np.ndarray) -> float | None:
    """Smallest drop (to 2e-4) where pred(raw, amp) holds, given the coarse grid's hits."""
    hit = np.flatnonzero(coarse_hits)
    if hit.size == 0:
        return None
    hi = COARSE[hit[0]]
    lo = COARSE[hit[0] - 1] if hit[0] > 0 else 0.0
    fine = np.round(np.linspace(lo, hi, 51)[1:], 6)
    raw, amp = runner.run(fine)
    return round(float(fine[np.flatnonzero(pred(raw, amp))[0]]), 4)


def critical_drop(bound: Bound, engine: str = "kernel") -> dict:
    """Smallest instantaneous drop of every non-constant asset that (a) triggers the first liquidation and
    (b) starts a cascade (market drawdown >= 1.1 x the exogenous drop). None when no drop up to 99 % does."""
    runner = _ShockRunner(bound, engine)

    def liquidates(raw, amp):
        return raw.liquidations.sum(1) > 0

    def cascades(raw, amp):
        return amp >= CASCADE_AMPLIFICATION

    raw, amp = runner.run(COARSE)  # one batch serves both questions
    return {"first_liquidation": _refine(runner, liquidates, liquidates(raw, amp)),
            "cascade": _refine(runner, cascades, cascades(raw, amp)),
            "cascade_amplification": CASCADE_AMPLIFICATION,
            "asset": bound.prepared.market.assets[runner.primary],
            "definition": "instantaneous drop of every non-constant asset held for the horizon; cascade = market "
                          f"drawdown >= {CASCADE_AMPLIFICATION} x exogenous drawdown of the main collateral"}


def liquidation_map(bound: Bound, engine: str = "kernel", levels: np.ndarray = MAP_LEVELS) -> dict:
    """Collateral that is liquidatable at each price level, statically (health < 1 at that level, no
    feedback) and with the cascade's feedback (collateral seized over the horizon after the shock, which
    call caps, profitability and price impact shape). Both in USD at the shocked prices."""
    runner = _ShockRunner(bound, engine)
    p0 = runner.p0
    new_usd = []
    seen = [np.zeros(pb.book.n_positions, bool) for pb in bound.books]
    for r in levels:
        px = np.where(runner.moving, p0 * r, p0)
        total = 0.0
        for j, (ad, pb) in enumerate(zip(bound.adapters, bound.books, strict=True)):
            if isinstance(ad, PerpAdapter):  # longs whose closed-form liquidation price the fall reaches
                b = pb.book
                mk = px[bound.coll_market[j]][b.market]
                lp = ad.liquidation_price_usd(b, b.position_marks(p0[bound.coll_market[j]]))
                new = (b.side > 0) & (b.size_base > 0) & (lp >= mk) & ~seen[j]
                seen[j] |= new
                total += float((b.size_base[new] * mk[new]).sum())
                continue
            prices = Prices(px[bound.coll_market[j]], px[bound.debt_market[j]])
            new = (ad.health(pb.book, prices) < 1.0) & ~seen[j]
            seen[j] |= new
            total += float((pb.book.collateral_tokens[new] * px[bound.coll_market[j]]).sum())
        new_usd.append(total)
    raw, _ = runner.run(1.0 - levels)
    cascade = raw.collateral_seized_usd.sum(1).tolist()
    market = raw.market_low_min[:, runner.primary].tolist()
    a = runner.primary
    out = {
        "asset": bound.prepared.market.assets[a],
        "price_ratio": levels.tolist(),
        "price_usd": (levels * p0[a]).tolist(),
        "static_new_usd": new_usd,  # collateral first liquidatable at this level, valued at this level
        "static_liquidatable_usd": np.cumsum(new_usd).tolist(),
        "cascade_liquidated_usd": cascade,
        "cascade_market_price_ratio": market,
    }
    if has_perp(bound):
        out |= _perp_sides(bound, runner, 1.0 - levels, raw)
    return out


def _perp_sides(bound: Bound, runner: _ShockRunner, moves: np.ndarray, fall_raw) -> dict:
    """The perp books' liquidation map by price level for both sides: longs at falls, shorts at rises.

    Static: the notional (USD at the shocked price) whose closed-form liquidation price
    (:meth:`protocols.PerpAdapter.liquidation_price_usd`, all marks moved together) a move of every
    non-constant asset first reaches, per level: a fall of ``m`` for longs (price ``1 - m``), a rise of
    ``m`` for shorts (price ``1 + m``). With the cascade: the notional each side loses over the held shock
    (the fall run's longs; one more run for the rises). The cluster of a side is the move with the largest
    static notional (None when none is reached).
    """
    p0 = runner.p0
    new = {1: np.zeros(moves.size), -1: np.zeros(moves.size)}
    for j, (ad, pb) in enumerate(zip(bound.adapters, bound.books, strict=True)):
        if not isinstance(ad, PerpAdapter):
            continue
        b = pb.book
        cm = bound.coll_market[j]
        mark0 = b.position_marks(p0[cm])
        moving = b.position_marks(runner.moving[cm].astype(float)) > 0
        lp = ad.liquidation_price_usd(b, mark0)
        open_ = (b.size_base > 0) & moving
        with np.errstate(invalid="ignore", divide="ignore"):
            dist = np.where(b.side > 0, 1.0 - lp / mark0, lp / mark0 - 1.0)
        for side in (1, -1):
            rows = open_ & (b.side == side) & np.isfinite(dist)
            # level k takes the rows whose distance lies in (moves[k-1], moves[k]] (the first level: <= moves[0])
            k = np.searchsorted(moves, np.maximum(dist[rows], 0.0), side="left")
            ok = k < moves.size
            px = mark0[rows][ok] * (1.0 - side * moves[k[ok]])
            np.add.at(new[side], k[ok], b.size_base[rows][ok] * px)
    rise_raw, _ = runner.run(-moves)

    def cluster(x: np.ndarray) -> float | None:
        return round(float(moves[int(np.argmax(x))]), 6) if x.max() > 0 else None

    return {
        "rise_price_ratio": (1.0 + moves).tolist(),
        "perp_long_static_new_usd": new[1].tolist(),  # at price_ratio (falls)
        "perp_short_static_new_usd": new[-1].tolist(),  # at rise_price_ratio
        "perp_long_cascade_liquidated_usd": fall_raw.perp_liquidated_long_usd.sum(1).tolist(),
        "perp_short_cascade_liquidated_usd": rise_raw.perp_liquidated_short_usd.sum(1).tolist(),
        "long_cluster_fall": cluster(new[1]),
        "short_cluster_rise": cluster(new[-1]),
    }


def perp_liquidation_clusters(liq_map: dict) -> dict | None:
    """Where the perp clusters sit (from :func:`liquidation_map`): the move of each side with the most notional
    first liquidatable there, and that notional; None without a perp venue."""
    if "perp_long_static_new_usd" not in liq_map:
        return None
    lo, sh = np.asarray(liq_map["perp_long_static_new_usd"]), np.asarray(liq_map["perp_short_static_new_usd"])
    return {"long_cluster_fall": liq_map["long_cluster_fall"], "short_cluster_rise": liq_map["short_cluster_rise"],
            "long_cluster_usd": float(lo.max()) if lo.size else 0.0,
            "short_cluster_usd": float(sh.max()) if sh.size else 0.0,
            "long_static_usd": float(lo.sum()), "short_static_usd": float(sh.sum()),
            "definition": "static liquidation map: notional first liquidatable per 2 % price level (closed-form "
                          "liquidation prices, every non-constant asset moved together); a cluster is the level "
                          "with the most notional (a fall for longs, a rise for shorts)"}


def has_perp(bound: Bound) -> bool:
    """True when the candidate has a perp venue (then :func:`critical_move` applies)."""
    return any(isinstance(ad, PerpAdapter) for ad in bound.adapters)




def critical_move(bound: Bound, engine: str = "reference") -> dict:
    """Smallest instantaneous move of every non-constant asset, held, that liquidates a perp position
    (a fall for longs, a rise for shorts) and that makes a perp venue auto-deleverage; None when no move
    up to 99 % does. Runs the cascade (impact, both venues' feedback) on one path per move."""
    runner = _ShockRunner(bound, "reference" if engine == "kernel" else engine)
    runner.n_steps = min(runner.n_steps, max(max(oracle_lag_steps(bound)) + 2, PERP_SHOCK_STEPS))

    def first(signed: float, pred) -> float | None:
        raw, _ = runner.run(signed * COARSE)
        hit = np.flatnonzero(pred(raw))
        if hit.size == 0:
            return None
        lo = COARSE[hit[0] - 1] if hit[0] > 0 else 0.0
        fine = np.round(np.linspace(lo, COARSE[hit[0]], 21)[1:], 6)
        raw, _ = runner.run(signed * fine)
        return round(float(fine[np.flatnonzero(pred(raw))[0]]), 4)

    def side(name: str):
        return lambda raw: raw[name].sum(1) > 0

    def adl(raw):
        return raw.adl_steps.sum(1) > 0

    return {"fall_first_liquidation": first(1.0, side("perp_liquidated_long_usd")),
            "rise_first_liquidation": first(-1.0, side("perp_liquidated_short_usd")),
            "fall_first_adl": first(1.0, adl), "rise_first_adl": first(-1.0, adl),
            "asset": bound.prepared.market.assets[runner.primary],
            "definition": "instantaneous move of every non-constant asset held for "
                          f"{runner.n_steps} steps; first step where a perp position is liquidated / a venue ADLs"}
