"""Reference cascade engine: one venue-neutral loop over venue simulators (the definition of the model).

The loop knows no venue name: each protocol of the scenario gets its simulator from the registry
(:mod:`optimizer.engine.venues`), whose rules are the adapters' own vectorised ``health`` and
``liquidate`` (or, for Maker, its auction functions). It supports every book shape (several
collaterals and debts per account) and every venue; the fast kernel (:mod:`optimizer.engine.kernel`)
must reproduce it exactly where it runs. It is also the baseline of ``make bench``.

Model, per step t of each path (the lifecycle of :class:`~optimizer.engine.venues.VenueSimulator`):

1. The market recovers: every pool's net signed flow (tokens sold into it minus tokens bought from it)
   decays with the pool's recovery half-life.
2. Market price of an asset = exogenous price × the impact factor of its pool's flow (below 1 after net
   sales, above 1 after net purchases), for the bar's low, close and high alike.
3. Each venue's oracle reads the market: with no lag, collateral at the bar's low and debt at the bar's
   high (a crash or a squeeze inside a bar is not missed); with a lag (scenario ``[oracle] lag_steps``
   plus the venue's own delay, Maker's OSM hop) the market close ``lag`` steps ago.
4. ``start_step``: call budgets, auction resets and breakers (Maker ClipperMom).
5. Rounds until no venue and no forced-flow source acts (the in-step fixed point). In each round every venue liquidates at the
   round's starting prices and returns its signed flows per pool (lending: collateral sold, the debt
   asset its liquidators buy to repay) and its ledger deltas; then each venue settles secondary sales
   against the round's flows so far (Comet's storefront); all flows of the round then move the pools
   together and the next round starts. Candidates are positions with health < 1 at the oracle and,
   with a reaction delay of d steps, also at the oracle of d steps ago; liquidators work down them by
   (health, book row) up to the per-venue call cap for the step, and act only when the liquidation
   pays where the venue says so (Aave: the bonus covers the slippage of selling the collateral and of
   buying the debt, gas and ``min_profit_usd``; Comet absorbs and Maker barks need no profit).
   After the venues' liquidations and before their settle phase, every forced-flow source of the
   scenario (``[[forced_flows]]``: option dealers' hedging, leverage-targeting holders, stop-loss
   clusters; :mod:`optimizer.engine.flows`) trades at the same round's prices into its asset's pool;
   its flows move the pools with the liquidations' (synchronous rounds).
6. ``end_step``: the loss waterfall of the step (perp venues; nothing for lending).

At the horizon each venue reports what is open at the final market close: underwater debt
(``unrealised_bad_debt_usd``), unsold inventory and running auctions.
"""

from __future__ import annotations

import numpy as np

from ..market.liquidity import decay
from ._market import impact_factor
from .flows import FORCED_SOLD_FIELD, FlowSource, flow_sources
from .ledger import CORE_FIELDS, EVENT_COLUMNS, Ledger, events_array
from .model import Bound, venue_contexts
from .venues import FinalView, MarketView, PathContext, RoundResult, VenueSimulator, simulator_for

RawResults = Ledger  # the per-path results' former name

__all__ = ["EVENT_COLUMNS", "RawResults", "events_array", "new_ledger", "run_reference", "venue_simulators"]


def venue_simulators(bound: Bound) -> list[VenueSimulator]:
    """One simulator per protocol of the candidate, from the registry."""
    return [simulator_for(ctx) for ctx in venue_contexts(bound)]


def new_ledger(bound: Bound, sims: list[VenueSimulator], n_paths: int, n_steps: int | None = None,
               flows: list[FlowSource] | None = None) -> Ledger:
    """An empty ledger with the core fields, every venue's declared fields and, with forced-flow sources,
    the total forced selling and each source's sold and bought USD (path axis)."""
    fields = [*CORE_FIELDS]
    for s in sims:
        fields += s.ledger_fields
    if flows:
        fields.append(FORCED_SOLD_FIELD)
        for f in flows:
            fields += f.ledger_fields()
    prep = bound.prepared
    return Ledger(fields, n_paths, len(sims), len(prep.market.assets),
                  prep.n_steps if n_steps is None else n_steps, tuple(b.book.n_positions for b in bound.books))


def gas_usd_per_call(bound: Bound, path: int, t: int) -> float:
    p = bound.prepared
    if p.gas_token < 0:
        return 0.0
    return p.scenario.liquidators.gas_per_call * p.gas_gwei[t] * 1e-9 * p.paths.close[path, t, p.gas_token]


def _apply(ledger: Ledger, k: int, j: int, t: int, r: RoundResult, round_flow: np.ndarray | None,
           sold_px: np.ndarray | None = None) -> bool:
    if r.flows is not None and round_flow is not None:
        round_flow += r.flows
        if sold_px is not None:  # the scenario has forced flows: count every forced sale, USD
            ledger.forced_sold_usd[k] += float(np.maximum(r.flows, 0.0) @ sold_px)
    if r.liquidated:
        ledger.mark_step(k, t)
    if r.ledger:
        ledger.add(k, j, r.ledger)
    return r.acted


def run_reference(bound: Bound, path_indices: np.ndarray | None = None,
                  events: list[tuple] | None = None, trace: list[dict] | None = None,
                  sims: list[VenueSimulator] | None = None) -> Ledger:
    """Run the paths; ``events`` (a list) collects one tuple per liquidation in
    :data:`~optimizer.engine.ledger.EVENT_DTYPE` order, ``trace`` Maker trips, kicks, redos and takes.
    ``sims`` replaces the registry's simulators (the contract suite observes them this way)."""
    prep = bound.prepared
    sc = prep.scenario
    close, low, high = prep.paths.close, prep.paths.low, prep.paths.bar_high
    mk = prep.market
    liq, hl, price_pool = mk.pool_liquidity, mk.pool_half_life_s, mk.price_pool
    n_pools, n_assets = liq.shape[0], len(mk.assets)
    paths = np.arange(prep.n_paths) if path_indices is None else np.asarray(path_indices)
    T = prep.n_steps
    sims = venue_simulators(bound) if sims is None else sims
    flows = flow_sources(bound)
    ledger = new_ledger(bound, sims, len(paths), T, flows)
    pool_asset = np.zeros(n_pools, np.int64)
    pool_asset[price_pool] = np.arange(n_assets)  # the asset whose price a pool's sales are valued at
    pos_fields = set(ledger.names("position"))

    for k, path in enumerate(paths):
        flow = np.zeros(n_pools)
        hist_close = np.empty((T + 1, n_assets))
        hist_low = np.empty((T + 1, n_assets))  # market low after each step's rounds (oracle with no lag)
        hist_high = np.empty((T + 1, n_assets))
        hist_close[0] = hist_low[0] = hist_high[0] = close[path, 0]
        pctx = PathContext(k, int(path), ledger, close[path, 0], events, trace)
        for j, sim in enumerate(sims):
            sim.start_path(pctx)
            ledger.initial_debt_usd[k, j] = sim.initial_debt_usd(close[path, 0])
        for src in flows:
            src.start_path(pctx)
        for t in range(1, T + 1):
            for p in range(n_pools):
                flow[p] = decay(flow[p], sc.step_s, hl[p])
            gas = gas_usd_per_call(bound, int(path), t)
            rnd = 0
            while True:
                fac = np.array([impact_factor(liq, p, flow[p]) for p in range(n_pools)])[price_pool]
                view = MarketView(t, rnd, t * sc.step_s, low[path, t] * fac, close[path, t] * fac,
                                  high[path, t] * fac, low[path, t], close[path, t], high[path, t], flow,
                                  np.zeros(n_pools), hist_close, hist_low, hist_high, liq, gas,
                                  float(prep.gas_gwei[t]))
                if rnd == 0:
                    for sim in sims:
                        sim.start_step(view)
                acted = False
                px = view.close[pool_asset] if flows else None
                for j, sim in enumerate(sims):
                    acted |= _apply(ledger, k, j, t, sim.round(view), view.round_flow, px)
                for src in flows:
                    r = src.round(view)
                    acted |= _apply(ledger, k, 0, t, RoundResult(r.acted, False, r.flows), view.round_flow, px)
                    for name, v in r.ledger.items():
                        ledger[name][k] += v
                for j, sim in enumerate(sims):
                    acted |= _apply(ledger, k, j, t, sim.settle(view), view.round_flow, px)
                if not acted:
                    break
                flow += view.round_flow
                rnd += 1
            fac = np.array([impact_factor(liq, p, flow[p]) for p in range(n_pools)])[price_pool]
            hist_close[t] = close[path, t] * fac
            hist_low[t] = low[path, t] * fac
            hist_high[t] = high[path, t] * fac
            end = MarketView(t, rnd, t * sc.step_s, hist_low[t], hist_close[t], hist_high[t], low[path, t],
                             close[path, t], high[path, t], flow, np.zeros(n_pools), hist_close, hist_low,
                             hist_high, liq, gas, float(prep.gas_gwei[t]))
            for j, sim in enumerate(sims):
                r = sim.end_step(end)
                _apply(ledger, k, j, t, r, end.round_flow, hist_close[t][pool_asset] if flows else None)
            flow += end.round_flow  # a waterfall's forced trades (ADL) move the pools for the next step
            np.minimum(ledger.market_low_min[k], low[path, t] * fac / close[path, 0], out=ledger.market_low_min[k])
            np.minimum(ledger.exo_low_min[k], low[path, t] / close[path, 0], out=ledger.exo_low_min[k])
        final = FinalView(hist_close[T])
        for src in flows:
            for name, v in src.end_path().items():
                ledger[name][k] += v
        for j, sim in enumerate(sims):
            for name, v in sim.end_path(final).items():
                if name in pos_fields:
                    ledger[name][j] += v
                else:
                    ledger[name][k, j] += v
    return ledger
