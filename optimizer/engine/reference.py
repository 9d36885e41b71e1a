"""Reference cascade engine: a straightforward per-step boolean-mask implementation.

It calls the adapters' own vectorised rules (``health`` and ``liquidate``) on the whole book every
round of every step, so it supports every book shape (several collaterals per account) and is the
definition of the model the fast kernel (:mod:`optimizer.engine.kernel`) must reproduce exactly.
It is also the baseline of ``make bench``.

Model, per step t of each path:

1. Liquidity recovers: tokens sold by liquidations so far decay with the recovery half-life.
2. Market price = exogenous price × impact factor(sold). Liquidations are checked at the bar's low
   (a crash inside a bar is not missed); debt assets at the close.
3. Oracle price = market low (no lag) or the market close ``lag`` steps ago.
4. Rounds until no new liquidation (the in-step fixed point). Candidates: health < 1 now and, with a
   reaction delay of d steps, also at the oracle prices of d steps ago (liquidators act on what they
   have seen for d steps). Liquidators work down the candidates by (health, book row) at the round's
   starting prices until the per-protocol call cap for the step is used up. A call is made only if
   the protocol accepts it (Aave dust rule) and, for Aave, the liquidator's bonus covers its
   slippage (selling its collateral into the market from the round's starting state) plus gas plus
   ``min_profit_usd``; Comet absorbs need no profit (the absorber is paid nothing; the storefront
   sale is a separate flow). Candidates they pass over are skipped for the rest of the step. All
   calls of a round sell their collateral together; the price moves; the next round starts.
5. Comet inventory (absorbed collateral) is sold through buyCollateral while reserves are below
   ``targetReserves``, down to the price where the storefront discount no longer pays.

Maker is not liquidated through ``adapter.liquidate``: in every round its unsafe vaults (the same
candidates) are barked and its Clipper auctions run through time (ClipperMom, redo, keeper takes
whose purchases are sold in the round) by :mod:`optimizer.engine.maker_auctions`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from protocols import Prices

from ..market.liquidity import decay
from ._market import impact_factor, proceeds_usd, storefront_quantity
from .maker_auctions import MakerAuctions
from .model import Bound, oracle_lag_steps

KIND_AAVE, KIND_COMET, KIND_MAKER, KIND_OTHER = 0, 1, 2, 3


def protocol_kind(name: str) -> int:
    return {"aave_v3": KIND_AAVE, "compound_v3": KIND_COMET, "maker": KIND_MAKER}.get(name, KIND_OTHER)


# (paths, protocols) arrays of RawResults
PER_PROTOCOL_FIELDS = ("liquidations", "debt_repaid_usd", "collateral_seized_usd", "liquidator_bonus_usd",
                       "protocol_fee_usd", "realised_bad_debt_usd", "unrealised_bad_debt_usd", "inventory_usd",
                       "returned_to_owner_usd", "debt_removed_usd", "initial_debt_usd", "keeper_incentive_usd")


@dataclass
class RawResults:
    """Per-path outcome arrays of one evaluation (the engines fill them identically)."""

    n_paths: int
    n_protocols: int
    n_assets: int
    n_steps: int
    positions: tuple[int, ...]
    liquidations: np.ndarray = field(init=False)  # (paths, P) count of liquidation calls
    debt_repaid_usd: np.ndarray = field(init=False)
    collateral_seized_usd: np.ndarray = field(init=False)
    liquidator_bonus_usd: np.ndarray = field(init=False)
    protocol_fee_usd: np.ndarray = field(init=False)
    realised_bad_debt_usd: np.ndarray = field(init=False)
    unrealised_bad_debt_usd: np.ndarray = field(init=False)  # open underwater debt at the horizon
    inventory_usd: np.ndarray = field(init=False)  # protocol-held collateral not yet sold (Comet)
    returned_to_owner_usd: np.ndarray = field(init=False)  # Comet excess credit, Maker leftover collateral
    debt_removed_usd: np.ndarray = field(init=False)  # initial - final debt tokens, at the final debt price
    initial_debt_usd: np.ndarray = field(init=False)
    first_liquidation_step: np.ndarray = field(init=False)  # (paths,) -1 if none
    last_liquidation_step: np.ndarray = field(init=False)
    market_low_min: np.ndarray = field(init=False)  # (paths, A) min over steps of market low / initial
    exo_low_min: np.ndarray = field(init=False)  # (paths, A) same for the exogenous price
    account_liquidated: list[np.ndarray] = field(init=False)  # per protocol (n_positions,) count of paths
    keeper_incentive_usd: np.ndarray = field(init=False)  # Maker tip + chip paid on kick/redo (kernel: 0)

    def __post_init__(self) -> None:
        shp = (self.n_paths, self.n_protocols)
        for name in PER_PROTOCOL_FIELDS:
            setattr(self, name, np.zeros(shp))
        self.first_liquidation_step = np.full(self.n_paths, -1, np.int64)
        self.last_liquidation_step = np.full(self.n_paths, -1, np.int64)
        self.market_low_min = np.ones((self.n_paths, self.n_assets))
        self.exo_low_min = np.ones((self.n_paths, self.n_assets))
        self.account_liquidated = [np.zeros(n, np.int64) for n in self.positions]

    @classmethod
    def concat(cls, parts: list[RawResults]) -> RawResults:
        """Join results of consecutive path batches (paths are independent)."""
        first = parts[0]
        out = cls(sum(p.n_paths for p in parts), first.n_protocols, first.n_assets, first.n_steps, first.positions)
        for name in (*PER_PROTOCOL_FIELDS, "first_liquidation_step", "last_liquidation_step", "market_low_min",
                     "exo_low_min"):
            setattr(out, name, np.concatenate([getattr(p, name) for p in parts]))
        out.account_liquidated = [sum(p.account_liquidated[j] for p in parts) for j in range(first.n_protocols)]
        return out

    @property
    def bad_debt_usd(self) -> np.ndarray:
        return self.realised_bad_debt_usd + self.unrealised_bad_debt_usd


EVENT_COLUMNS = ("path", "step", "protocol", "position", "debt_repaid_usd", "collateral_seized_usd", "bonus_usd",
                 "protocol_fee_usd", "bad_debt_usd", "price")


def _gas_usd(bound: Bound, path: int, t: int) -> float:
    p = bound.prepared
    if p.gas_token < 0:
        return 0.0
    return p.scenario.liquidators.gas_per_call * p.gas_gwei[t] * 1e-9 * p.paths.close[path, t, p.gas_token]


def run_reference(bound: Bound, path_indices: np.ndarray | None = None,
                  events: list[tuple] | None = None, trace: list[dict] | None = None) -> RawResults:
    """Run the paths; ``trace`` (optional) collects Maker trips, kicks, redos and takes as dicts."""
    prep = bound.prepared
    sc = prep.scenario
    lc = sc.liquidators
    close, low = prep.paths.close, prep.paths.low
    liq, hl = prep.market.liquidity, prep.market.half_life_s
    n_assets = len(prep.market.assets)
    paths = np.arange(prep.n_paths) if path_indices is None else np.asarray(path_indices)
    T = prep.n_steps
    lag = np.array(oracle_lag_steps(bound))
    kinds = [protocol_kind(a.name) for a in bound.adapters]
    res = RawResults(len(paths), len(bound.adapters), n_assets, T, tuple(b.book.n_positions for b in bound.books))

    for k, path in enumerate(paths):
        books = [b.book for b in bound.books]
        liquidated_once = [np.zeros(b.book.n_positions, bool) for b in bound.books]
        sold = np.zeros(n_assets)
        market_close_hist = np.empty((T + 1, n_assets))
        market_close_hist[0] = close[path, 0]
        low_hist = np.empty((T + 1, n_assets))  # market low after each step's rounds (oracle with no lag)
        low_hist[0] = close[path, 0]
        inventory = [np.zeros(len(b.book.collateral_assets)) for b in bound.books]
        reserves = np.array([pc.reserves_usd for pc in sc.protocols], float)
        for j, b in enumerate(bound.books):
            res.initial_debt_usd[k, j] = (b.book.debt_tokens * close[path, 0, bound.debt_market[j]]).sum()
        makers = {j: MakerAuctions(ad, books[j], bound.coll_market[j], bound.debt_market[j], res=res, k=k, j=j,
                                   path=int(path), liquidated_once=liquidated_once[j], liq=liq,
                                   min_profit_usd=lc.min_profit_usd, events=events, trace=trace)
                  for j, ad in enumerate(bound.adapters) if kinds[j] == KIND_MAKER}
        for t in range(1, T + 1):
            for a in range(n_assets):
                sold[a] = decay(sold[a], sc.step_s, hl[a])
            excluded = [np.zeros(b.book.n_positions, bool) for b in bound.books]
            calls_left = np.full(len(books), lc.max_calls_per_step, np.int64)
            rnd = 0
            while True:
                fac = np.array([impact_factor(liq, a, sold[a]) for a in range(n_assets)])
                mkt_low = low[path, t] * fac
                mkt_close = close[path, t] * fac
                round_sales = np.zeros(n_assets)
                executed_any = False
                for j, ad in enumerate(bound.adapters):
                    cm, dm = bound.coll_market[j], bound.debt_market[j]
                    if lag[j] == 0:
                        oracle_c, oracle_d = mkt_low[cm], mkt_close[dm]
                    else:
                        oracle_c = market_close_hist[max(t - lag[j], 0)][cm]
                        oracle_d = market_close_hist[max(t - lag[j], 0)][dm]
                    if calls_left[j] <= 0 and kinds[j] != KIND_MAKER:  # Maker: the cap limits takes only
                        continue
                    book = books[j]
                    prices = Prices(oracle_c, oracle_d)
                    hf = ad.health(book, prices)
                    cand = (hf < 1.0) & ~excluded[j]
                    if lc.reaction_delay_steps > 0:  # liquidators act on what was liquidatable `delay` steps ago
                        tp = max(t - lc.reaction_delay_steps, 0)
                        hp = max(tp - lag[j], 0)
                        past = (Prices(low_hist[tp][cm], market_close_hist[tp][dm]) if lag[j] == 0
                                else Prices(market_close_hist[hp][cm], market_close_hist[hp][dm]))
                        cand &= ad.health(book, past) < 1.0
                    if kinds[j] == KIND_MAKER:
                        osm_next = (mkt_close[cm] if sc.oracle_lag_steps == 0
                                    else market_close_hist[max(t - sc.oracle_lag_steps, 0)][cm])
                        did, used = makers[j].round(t, t * sc.step_s, rnd == 0, cand, oracle_c, osm_next, mkt_low,
                                                    mkt_close, low[path, t], sold, _gas_usd(bound, path, t),
                                                    int(calls_left[j]), round_sales)
                        books[j] = makers[j].book
                        calls_left[j] -= used
                        executed_any |= did
                        continue
                    if not cand.any():
                        continue
                    out = ad.liquidate(book, prices, cand)
                    good = out.liquidated.copy()
                    # tokens each liquidator sells into the market (Aave: seized minus the treasury's fee)
                    sell = out.collateral_seized_tokens
                    if kinds[j] == KIND_AAVE:
                        with np.errstate(divide="ignore", invalid="ignore"):
                            keep = np.where(out.collateral_seized_usd > 0,
                                            out.protocol_fee_usd / out.collateral_seized_usd, 0.0)
                        sell = sell * (1.0 - keep)[:, None]
                    if kinds[j] != KIND_COMET:
                        gas = _gas_usd(bound, path, t)
                        profit = out.liquidator_bonus_usd - gas - lc.min_profit_usd
                        for i in np.flatnonzero(good):
                            for c in np.flatnonzero(sell[i]):
                                a = cm[c]
                                q = sell[i, c]
                                profit[i] -= q * oracle_c[c] - proceeds_usd(liq, a, sold[a], q, low[path, t, a])
                        good &= profit >= 0.0
                    # Liquidators work down the list by (health, row) until the call cap: refused and
                    # unprofitable positions they pass are skipped for the rest of the step.
                    idx = np.flatnonzero(cand)
                    idx = idx[np.lexsort((idx, hf[idx]))]
                    taken = np.cumsum(good[idx])
                    examined = idx if taken[-1] < calls_left[j] else idx[: int(np.searchsorted(taken, calls_left[j])) + 1]
                    go = np.zeros(book.n_positions, bool)
                    go[examined] = good[examined]
                    excluded[j][examined[~good[examined]]] = True
                    if not go.any():
                        continue
                    executed_any = True
                    g2 = go[:, None]
                    books[j] = book.with_balances(np.where(g2, out.book.collateral_tokens, book.collateral_tokens),
                                                  np.where(g2, out.book.debt_tokens, book.debt_tokens))
                    calls_left[j] -= int(go.sum())
                    liquidated_once[j] |= go
                    res.liquidations[k, j] += go.sum()
                    res.debt_repaid_usd[k, j] += out.debt_repaid_usd[go].sum()
                    res.collateral_seized_usd[k, j] += out.collateral_seized_usd[go].sum()
                    res.liquidator_bonus_usd[k, j] += out.liquidator_bonus_usd[go].sum()
                    res.protocol_fee_usd[k, j] += out.protocol_fee_usd[go].sum()
                    res.realised_bad_debt_usd[k, j] += out.bad_debt_usd[go].sum()
                    res.returned_to_owner_usd[k, j] += out.returned_to_owner_usd[go].sum()
                    if res.first_liquidation_step[k] < 0:
                        res.first_liquidation_step[k] = t
                    res.last_liquidation_step[k] = t
                    if kinds[j] == KIND_COMET:
                        inventory[j] += out.collateral_seized_tokens[go].sum(0)
                        credit = out.extra["absorbed_credit_usd"]
                        pd = np.broadcast_to(oracle_d, book.debt_tokens.shape)
                        debt_usd = (book.debt_tokens * pd).sum(1)
                        reserves[j] -= np.maximum(debt_usd, credit)[go].sum()
                    else:
                        np.add.at(round_sales, cm, sell[go].sum(0))
                    if events is not None:
                        for i in np.flatnonzero(go):
                            c = int(np.argmax(out.collateral_seized_tokens[i]))
                            events.append((int(path), t, j, int(i), out.debt_repaid_usd[i],
                                           out.collateral_seized_usd[i], out.liquidator_bonus_usd[i],
                                           out.protocol_fee_usd[i], out.bad_debt_usd[i], float(oracle_c[c])))
                # Comet storefront: buyers take absorbed collateral while reserves < target and it pays.
                for j, ad in enumerate(bound.adapters):
                    if kinds[j] != KIND_COMET or not inventory[j].any() or reserves[j] >= ad.target_reserves_usd:
                        continue
                    cm = bound.coll_market[j]
                    lf = ad.liquidation_factor[ad._columns(books[j])]
                    for c in np.flatnonzero(inventory[j] > 0):
                        a = cm[c]
                        oracle_px = mkt_low[a] if lag[j] == 0 else market_close_hist[max(t - lag[j], 0)][a]
                        store_px = oracle_px * (1.0 - ad.store_front_price_factor * (1.0 - lf[c]))
                        q = storefront_quantity(liq, a, sold[a] + round_sales[a], low[path, t, a], store_px,
                                                 inventory[j][c])
                        if q <= 0:
                            continue
                        inventory[j][c] -= q
                        round_sales[a] += q
                        reserves[j] += q * store_px
                        executed_any = True
                if not executed_any:
                    break
                sold += round_sales
                rnd += 1
            fac = np.array([impact_factor(liq, a, sold[a]) for a in range(n_assets)])
            market_close_hist[t] = close[path, t] * fac
            low_hist[t] = low[path, t] * fac
            np.minimum(res.market_low_min[k], low[path, t] * fac / close[path, 0], out=res.market_low_min[k])
            np.minimum(res.exo_low_min[k], low[path, t] / close[path, 0], out=res.exo_low_min[k])
        final = market_close_hist[T]
        for j, b in enumerate(books):
            coll_usd = (b.collateral_tokens * final[bound.coll_market[j]]).sum(1)
            debt_usd = (b.debt_tokens * final[bound.debt_market[j]]).sum(1)
            res.unrealised_bad_debt_usd[k, j] = np.maximum(debt_usd - coll_usd, 0.0).sum()
            res.inventory_usd[k, j] = (inventory[j] * final[bound.coll_market[j]]).sum()
            if j in makers:
                makers[j].finish(final)
            res.debt_removed_usd[k, j] = ((bound.books[j].book.debt_tokens - b.debt_tokens)
                                          * final[bound.debt_market[j]]).sum()
            res.account_liquidated[j] += liquidated_once[j]
    return res

