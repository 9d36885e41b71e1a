"""Deterministic analyses on a bound candidate: critical drop, the liquidation map and the critical move.

Each applies one instantaneous exogenous shock to every non-constant asset (stablecoins stay at their
price), holds it for the scenario's horizon, and runs the same engine as the Monte Carlo on that one
path, so the cascade's feedback (price impact, recovery, oracle lag, call caps, profitability) is
included.

How the grids are searched (the answers are those of the plain definition, only cheaper to get):

* one :class:`_ShockRunner` per shock horizon remembers every move it has run (paths are independent, so a
  move's outcome does not depend on the batch it ran in): the four analyses of :func:`analyses` share runs,
  e.g. the fall side of :func:`critical_move` and :func:`critical_drop` on a perp-only book, or the two
  questions asked of one side;
* a "smallest move where ... holds" question scans its grid in increasing order, in growing batches
  (:data:`SCAN_BATCHES`), and stops once every question asked of that grid has its first hit: the moves
  beyond it cannot change the answer, so no monotonicity is assumed (cascades need not be monotone);
* the critical move runs on the engine the Monte Carlo used (the kernel when it accepts the candidate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import NamedTuple

import numpy as np

from protocols import PerpAdapter, Prices

from .model import Bound, oracle_lag_steps, primary_asset
from .reference import run_reference
from .simulate import build_kernel_inputs, kernel_unsupported_reason, run_kernel

PERP_SHOCK_STEPS = 6  # a held shock has done its work on perp books within a few steps (one pass a second)
CASCADE_AMPLIFICATION = 1.1  # "a cascade starts" when liquidations add >= 10 % to the exogenous drop
MAP_LEVELS = np.round(np.arange(1.0, 0.195, -0.02), 4)
COARSE = np.round(np.arange(0.01, 0.9951, 0.01), 6)
#: a scan runs its grid's first 8 moves in one batch, then 16 more, 32, ... (one engine call each), until
#: every question asked of the grid has its first hit
SCAN_BATCHES = 8


def _moving(bound: Bound) -> np.ndarray:
    sc = bound.prepared.scenario
    return np.array([sc.assets[a].model.get("model") != "constant" for a in bound.prepared.market.assets])


def _resolve_engine(bound: Bound, engine: str) -> str:
    if engine == "auto":
        return "kernel" if kernel_unsupported_reason(bound) is None else "reference"
    if engine not in ("kernel", "reference"):
        raise ValueError(f"engine must be one of ('auto', 'kernel', 'reference'), got {engine!r}")
    return engine


def _shock_steps(bound: Bound, perp_only_horizon: bool = False) -> int:
    """Steps a shock is held: the scenario's horizon (at least the longest oracle lag + 2) so call caps and
    lags play out; perp venues act within a few steps, so a perp-only book (or ``perp_only_horizon``, the
    critical move) holds it for ``max(lag + 2, PERP_SHOCK_STEPS)`` at most."""
    lag2 = max(oracle_lag_steps(bound)) + 2
    n = max(bound.prepared.n_steps, lag2)
    if perp_only_horizon or all(isinstance(ad, PerpAdapter) for ad in bound.adapters):
        n = min(n, max(lag2, PERP_SHOCK_STEPS))
    return n


class ShockOutcome(NamedTuple):
    """Per shocked path (one per move), the totals the analyses read from its ledger."""

    liquidations: np.ndarray  # forced closures, all venues
    collateral_seized_usd: np.ndarray  # all venues
    market_low_ratio: np.ndarray  # lowest market low / initial price of the main collateral
    exo_low_ratio: np.ndarray  # lowest exogenous low / initial price of the main collateral
    perp_long_liquidated_usd: np.ndarray  # all perp venues (0 without one)
    perp_short_liquidated_usd: np.ndarray
    adl_steps: np.ndarray  # steps with an auto-deleveraging, all venues

    @property
    def amplification(self) -> np.ndarray:
        """Market drawdown / exogenous drawdown of the main collateral (1 without a drawdown)."""
        exo_dd = 1.0 - self.exo_low_ratio
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(exo_dd > 0, (1.0 - self.market_low_ratio) / exo_dd, 1.0)


class _ShockRunner:
    """Runs held shocks on one engine and remembers each move's outcome (keyed by the exact price factor
    ``1 - move`` the path applies, so equal moves share a run and nothing else does)."""

    def __init__(self, bound: Bound, engine: str, n_steps: int | None = None) -> None:
        self.bound, self.engine = bound, _resolve_engine(bound, engine)
        self.inputs = build_kernel_inputs(bound) if self.engine == "kernel" else None
        self.moving = _moving(bound)
        self.p0 = bound.prepared.paths.close[0, 0]
        self.n_steps = _shock_steps(bound) if n_steps is None else n_steps
        self.primary = primary_asset(bound)
        self._done: dict[float, tuple[float, ...]] = {}
        self.paths_run = 0  # shocked paths the engine ran (the cache's misses)

    def run(self, moves: np.ndarray) -> ShockOutcome:
        """The outcome of each move (a fall of ``move``; negative: a rise), running the ones not yet run in
        one batch (one path per move)."""
        factors = 1.0 - np.atleast_1d(np.asarray(moves, float))
        todo = np.array(sorted({float(f) for f in factors} - self._done.keys()))
        if todo.size:
            for f, row in zip(todo.tolist(), zip(*self._run(todo), strict=True), strict=True):
                self._done[f] = row
        rows = [self._done[float(f)] for f in factors]
        return ShockOutcome(*(np.array(col, float) for col in zip(*rows, strict=True))) if rows else \
            ShockOutcome(*(np.zeros(0) for _ in ShockOutcome._fields))

    def _run(self, factors: np.ndarray) -> ShockOutcome:
        close = np.tile(self.p0, (factors.size, self.n_steps + 1, 1))
        close[:, 1:, self.moving] = self.p0[self.moving] * factors[:, None, None]
        gas = np.full(self.n_steps + 1, float(np.max(self.bound.prepared.gas_gwei)))
        if self.engine == "kernel":
            raw, _ = run_kernel(self.bound, self.inputs, close=close, low=close, gas_gwei=gas)
        else:
            prep = self.bound.prepared
            paths = replace(prep.paths, close=close, low=close, high=close, timestamps=None)
            shocked = replace(self.bound, prepared=replace(prep, paths=paths, gas_gwei=gas))
            raw = run_reference(shocked)
        self.paths_run += factors.size
        a = self.primary
        zero = np.zeros(factors.size)

        def total(name: str) -> np.ndarray:
            return raw[name].sum(1) if name in raw else zero

        return ShockOutcome(total("liquidations"), total("collateral_seized_usd"), raw.market_low_min[:, a],
                            raw.exo_low_min[:, a], total("perp_liquidated_long_usd"),
                            total("perp_liquidated_short_usd"), total("adl_steps"))


Predicate = Callable[[ShockOutcome], np.ndarray]


def _first_hits(runner: _ShockRunner, moves: np.ndarray, preds: Sequence[Predicate],
                possible: Sequence[np.ndarray | None] | None = None) -> list[int | None]:
    """Index of the first of ``moves`` (in order) where each predicate holds (None: nowhere). Runs the moves
    in increasing batches and stops once every predicate has hit: later moves cannot change the answers.
    ``possible[i]``: the moves where predicate ``i`` can hold at all (None: every move); a predicate with no
    possible move left settles without running them."""
    hits: list[int | None] = [None] * len(preds)
    can = [np.ones(moves.size, bool) if p is None else p for p in (possible or [None] * len(preds))]
    lo, size = 0, SCAN_BATCHES
    while True:
        # the last move an unsettled predicate can still hold on
        ends = [int(np.flatnonzero(c)[-1]) + 1 for h, c in zip(hits, can, strict=True) if h is None and c[lo:].any()]
        if not ends:
            break
        hi = min(max(ends), lo + size)
        out = runner.run(moves[lo:hi])
        for i, pred in enumerate(preds):
            if hits[i] is None:
                idx = np.flatnonzero(pred(out) & can[i][lo:hi])
                hits[i] = lo + int(idx[0]) if idx.size else None
        lo, size = hi, 2 * size
    return hits


def _smallest(runner: _ShockRunner, pred: Predicate, coarse_hit: int | None, n_fine: int,
              sign: float = 1.0) -> float | None:
    """Smallest move (a fall; ``sign=-1``: a rise) on the fine grid of ``n_fine`` moves in (previous coarse
    move, first coarse hit] where ``pred`` holds; None without a coarse hit."""
    if coarse_hit is None:
        return None
    lo = COARSE[coarse_hit - 1] if coarse_hit > 0 else 0.0
    fine = np.round(np.linspace(lo, COARSE[coarse_hit], n_fine + 1)[1:], 6)
    (k,) = _first_hits(runner, sign * fine, [pred])
    assert k is not None  # the fine grid ends at the coarse hit (the same run), where pred holds
    return round(float(fine[k]), 4)


def _liquidates(out: ShockOutcome) -> np.ndarray:
    return out.liquidations > 0


def _cascades(out: ShockOutcome) -> np.ndarray:
    return out.amplification >= CASCADE_AMPLIFICATION


# A drop d can start a cascade only if d < 1 / CASCADE_AMPLIFICATION: prices stay positive (every impact model
# floors its price factor above 0), so the market drawdown is below 1 and the amplification below 1 / d. Drops
# from 0.91 on (1 / 0.91 = 1.0989 < 1.1) are never run for the cascade question (they are the costliest runs:
# nearly every account is liquidated).
CASCADE_POSSIBLE = COARSE * CASCADE_AMPLIFICATION < 1.0 - 1e-3


def critical_drop(bound: Bound, engine: str = "kernel", runner: _ShockRunner | None = None) -> dict:
    """Smallest instantaneous drop of every non-constant asset that (a) triggers the first liquidation and
    (b) starts a cascade (market drawdown >= 1.1 x the exogenous drop). None when no drop up to 99 % does.

    The smallest drop on the 1 % grid, then on 50 steps of 0.02 % below it. ``runner``: a shock runner to
    share (its engine and horizon replace ``engine``)."""
    runner = _ShockRunner(bound, engine) if runner is None else runner
    # one scan serves both questions
    liq, casc = _first_hits(runner, COARSE, [_liquidates, _cascades], [None, CASCADE_POSSIBLE])
    return {"first_liquidation": _smallest(runner, _liquidates, liq, 50),
            "cascade": _smallest(runner, _cascades, casc, 50),
            "cascade_amplification": CASCADE_AMPLIFICATION,
            "asset": bound.prepared.market.assets[runner.primary],
            "definition": "instantaneous drop of every non-constant asset held for the horizon; cascade = market "
                          f"drawdown >= {CASCADE_AMPLIFICATION} x exogenous drawdown of the main collateral"}


def liquidation_map(bound: Bound, engine: str = "kernel", levels: np.ndarray = MAP_LEVELS,
                    runner: _ShockRunner | None = None) -> dict:
    """Collateral that is liquidatable at each price level, statically (health < 1 at that level, no
    feedback) and with the cascade's feedback (collateral seized over the horizon after the shock, which
    call caps, profitability and price impact shape). Both in USD at the shocked prices. ``runner``: a shock
    runner to share (its engine and horizon replace ``engine``)."""
    runner = _ShockRunner(bound, engine) if runner is None else runner
    p0 = runner.p0
    falls = 1.0 - levels
    perp = has_perp(bound)
    runner.run(np.concatenate([falls, -falls]) if perp else falls)  # one batch: the falls (and the perp rises)
    new_usd = []
    seen = [np.zeros(pb.book.n_positions, bool) for pb in bound.books]
    # perp books: the closed-form liquidation prices at the initial marks (the same at every level)
    perp_lp = {j: ad.liquidation_price_usd(pb.book, pb.book.position_marks(p0[bound.coll_market[j]]))
               for j, (ad, pb) in enumerate(zip(bound.adapters, bound.books, strict=True))
               if isinstance(ad, PerpAdapter)}
    for r in levels:
        px = np.where(runner.moving, p0 * r, p0)
        total = 0.0
        for j, (ad, pb) in enumerate(zip(bound.adapters, bound.books, strict=True)):
            if isinstance(ad, PerpAdapter):  # longs whose closed-form liquidation price the fall reaches
                b = pb.book
                mk = px[bound.coll_market[j]][b.market]
                new = (b.side > 0) & (b.size_base > 0) & (perp_lp[j] >= mk) & ~seen[j]
                seen[j] |= new
                total += float((b.size_base[new] * mk[new]).sum())
                continue
            prices = Prices(px[bound.coll_market[j]], px[bound.debt_market[j]])
            new = (ad.health(pb.book, prices) < 1.0) & ~seen[j]
            seen[j] |= new
            total += float((pb.book.collateral_tokens[new] * px[bound.coll_market[j]]).sum())
        new_usd.append(total)
    fall = runner.run(falls)
    a = runner.primary
    out = {
        "asset": bound.prepared.market.assets[a],
        "price_ratio": levels.tolist(),
        "price_usd": (levels * p0[a]).tolist(),
        "static_new_usd": new_usd,  # collateral first liquidatable at this level, valued at this level
        "static_liquidatable_usd": np.cumsum(new_usd).tolist(),
        "cascade_liquidated_usd": fall.collateral_seized_usd.tolist(),
        "cascade_market_price_ratio": fall.market_low_ratio.tolist(),
    }
    if perp:
        out |= _perp_sides(bound, runner, falls, fall)
    return out


def _perp_sides(bound: Bound, runner: _ShockRunner, moves: np.ndarray, fall: ShockOutcome) -> dict:
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
    rise = runner.run(-moves)

    def cluster(x: np.ndarray) -> float | None:
        return round(float(moves[int(np.argmax(x))]), 6) if x.max() > 0 else None

    return {
        "rise_price_ratio": (1.0 + moves).tolist(),
        "perp_long_static_new_usd": new[1].tolist(),  # at price_ratio (falls)
        "perp_short_static_new_usd": new[-1].tolist(),  # at rise_price_ratio
        "perp_long_cascade_liquidated_usd": fall.perp_long_liquidated_usd.tolist(),
        "perp_short_cascade_liquidated_usd": rise.perp_short_liquidated_usd.tolist(),
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




def _long_liquidated(out: ShockOutcome) -> np.ndarray:
    return out.perp_long_liquidated_usd > 0


def _short_liquidated(out: ShockOutcome) -> np.ndarray:
    return out.perp_short_liquidated_usd > 0


def _adl(out: ShockOutcome) -> np.ndarray:
    return out.adl_steps > 0


def critical_move(bound: Bound, engine: str = "auto", runner: _ShockRunner | None = None) -> dict:
    """Smallest instantaneous move of every non-constant asset, held, that liquidates a perp position
    (a fall for longs, a rise for shorts) and that makes a perp venue auto-deleverage; None when no move
    up to 99 % does. Runs the cascade (impact, both venues' feedback) on one path per move.

    The smallest move on the 1 % grid, then on 20 steps of 0.05 % below it. Runs on ``engine`` ("auto": the
    kernel when it accepts the candidate, as the Monte Carlo). It used to run on the reference engine always:
    it predates the perp kernel; the reference engine now runs it only where the kernel declines the candidate
    (:func:`~optimizer.engine.simulate.kernel_unsupported_reason`: e.g. forced flows, circuit breakers, a venue
    without a market-order rule), and the kernel and reference agree on every other candidate.
    ``runner``: a shock runner to share, held for the perp horizon (:func:`_shock_steps` with
    ``perp_only_horizon``)."""
    runner = _ShockRunner(bound, engine, _shock_steps(bound, perp_only_horizon=True)) if runner is None else runner
    # one scan per side answers both of its questions (the liquidation and the ADL share the runs)
    fall_liq, fall_adl = _first_hits(runner, COARSE, [_long_liquidated, _adl])
    rise_liq, rise_adl = _first_hits(runner, -COARSE, [_short_liquidated, _adl])
    return {"fall_first_liquidation": _smallest(runner, _long_liquidated, fall_liq, 20),
            "rise_first_liquidation": _smallest(runner, _short_liquidated, rise_liq, 20, sign=-1.0),
            "fall_first_adl": _smallest(runner, _adl, fall_adl, 20),
            "rise_first_adl": _smallest(runner, _adl, rise_adl, 20, sign=-1.0),
            "asset": bound.prepared.market.assets[runner.primary],
            "definition": "instantaneous move of every non-constant asset held for "
                          f"{runner.n_steps} steps; first step where a perp position is liquidated / a venue ADLs"}


def analyses(bound: Bound, engine: str = "auto") -> dict[str, dict | None]:
    """The deterministic analyses a result carries (``SimulationResult.extra``): ``critical_drop`` and
    ``liquidation_map``, and with a perp venue ``critical_move`` and ``perp_liquidation_clusters``. They run on
    ``engine`` (the one the Monte Carlo used) and share one shock runner per horizon, so a move two analyses
    ask about runs once."""
    runners: dict[int, _ShockRunner] = {}

    def runner(n_steps: int) -> _ShockRunner:
        if n_steps not in runners:
            runners[n_steps] = _ShockRunner(bound, engine, n_steps)
        return runners[n_steps]

    main = runner(_shock_steps(bound))
    out: dict[str, dict | None] = {"critical_drop": critical_drop(bound, runner=main),
                                   "liquidation_map": liquidation_map(bound, runner=main)}
    if has_perp(bound):
        out["critical_move"] = critical_move(bound, runner=runner(_shock_steps(bound, perp_only_horizon=True)))
        out["perp_liquidation_clusters"] = perp_liquidation_clusters(out["liquidation_map"])
    return out
