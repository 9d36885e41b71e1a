"""What one evaluation needs, prepared once per scenario and shared across candidates.

``prepare(scenario)`` builds everything that does not depend on protocol parameters — price paths,
liquidity, gas, synthetic-book draws — from one seed (common random numbers). ``bind(prepared,
params)`` then applies one candidate's parameters: adapters and position books. Protocols are keyed
by their scenario ``id`` (default: the adapter name) everywhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols import Adapter, InvalidParameters, PerpAdapter

from ..errors import InputError
from ..scenario.book import (
    ProtocolBook,
    SyntheticDraws,
    draw_synthetic,
    market_asset,
    materialize,
)
from ..scenario.config import Scenario
from ..scenario.limits import MAX_PATH_BYTES, check_price_arrays  # noqa: F401 - MAX_PATH_BYTES re-exported
from ..scenario.perp_book import (
    PerpPositions,
    PerpProtocolBook,
    PerpSyntheticDraws,
    draw_perp_synthetic,
    market_assets,
    materialize_perp,
)

# Streams of the one seed: paths and books draw from independent children so adding paths never
# changes a book and vice versa.
_STREAM_PATHS, _STREAM_BOOKS = 0, 1


@dataclass(frozen=True)
class Market:
    """The market: assets and the pools forced flows trade through.

    Pools carry the net signed flow of liquidations (sales and purchases) with a liquidity model and a
    recovery half-life. By default there is one shared pool per asset (pool ``p`` = asset ``p``), whose
    impact the asset's market price (and so every oracle) reads; venues route their flows to pools
    (:attr:`optimizer.engine.venues.VenueContext.coll_pool` / ``debt_pool``).
    """

    assets: tuple[str, ...]
    liquidity: np.ndarray  # (A, 5): model code (-1 = infinitely deep), 4 params
    half_life_s: np.ndarray  # (A,)

    @property
    def pool_liquidity(self) -> np.ndarray:
        """(pools, 5) liquidity rows (one pool per asset)."""
        return self.liquidity

    @property
    def pool_half_life_s(self) -> np.ndarray:
        return self.half_life_s

    @property
    def price_pool(self) -> np.ndarray:
        """(A,) the pool whose impact each asset's market price reads."""
        return np.arange(len(self.assets))


@dataclass(frozen=True)
class Prepared:
    scenario: Scenario
    paths: Any  # optimizer.scenario.prices.PricePaths
    market: Market
    gas_gwei: np.ndarray  # (T+1,) gwei per step
    gas_token: int  # market asset index, -1 = gas costs nothing
    draws: Mapping[str, SyntheticDraws | ProtocolBook | PerpSyntheticDraws | PerpPositions]  # by protocol id
    current: Mapping[str, Adapter]  # by protocol id: the scenario's parameters

    @property
    def n_paths(self) -> int:
        return self.paths.close.shape[0]

    @property
    def n_steps(self) -> int:
        return self.paths.close.shape[1] - 1


@dataclass(frozen=True)
class Bound:
    """One candidate bound to a prepared scenario: adapters and books (market columns resolved)."""

    prepared: Prepared
    adapters: tuple[Adapter, ...]
    books: tuple[ProtocolBook | PerpProtocolBook, ...]
    # per protocol: market asset index of each book collateral column (perp venues: of each adapter market)
    coll_market: tuple[np.ndarray, ...]
    debt_market: tuple[np.ndarray, ...]
    params: Mapping[str, Mapping[str, float]]  # by protocol id: the effective overrides

    @property
    def ids(self) -> tuple[str, ...]:
        return self.prepared.scenario.protocol_ids


def oracle_lag_steps(bound: Bound) -> list[int]:
    """Per protocol: steps between market and oracle price (scenario lag + the adapter's own delay, Maker OSM)."""
    sc = bound.prepared.scenario
    return [sc.oracle_lag_steps + int(round(a.circuit_breakers().oracle_delay_s / sc.step_s)) for a in bound.adapters]


def prepare(scenario: Scenario) -> Prepared:
    """Paths, liquidity, gas and book draws of a scenario, from its seed. No I/O: the scenario's files
    were read and validated by :func:`~optimizer.scenario.config.load_scenario`."""
    from ..market.liquidity import Liquidity
    from ..scenario.prices import generate_paths

    if not scenario.inputs_current:  # built or changed by hand (dataclasses.replace): read its files here
        from ..scenario.config import read_inputs

        scenario = read_inputs(scenario)
    seq = np.random.SeedSequence(scenario.seed)
    path_seed, book_seed = seq.spawn(2)
    models, initial, corr, n_steps = build_models(scenario)
    n_assets = len(models)
    check_price_arrays(scenario.paths, n_steps, n_assets, file=scenario.file, field="scenario.paths")
    paths = generate_paths(models, corr, scenario.paths, n_steps, scenario.step_s,
                           np.random.default_rng(path_seed), initial, file=scenario.file)
    assets = paths.assets
    liq = np.full((len(assets), 5), -1.0)
    hl = np.zeros(len(assets))
    for i, a in enumerate(assets):
        cfg = scenario.assets[a].liquidity
        if cfg:
            lq = Liquidity.from_config(a, dict(cfg), float(paths.close[0, 0, i]), scenario.file)
            liq[i] = lq.as_array()
            hl[i] = lq.recovery_half_life_s

    lc = scenario.liquidators
    if lc.gas_history is not None:
        gas_gwei = _align_gas(lc.gas_history, paths, scenario)
    else:
        gas_gwei = np.full(n_steps + 1, lc.gas_gwei)
    gas_token = assets.index(lc.gas_token) if lc.gas_token else -1

    book_rng = np.random.default_rng(book_seed)
    draws: dict[str, SyntheticDraws | ProtocolBook | PerpSyntheticDraws | PerpPositions] = {}
    current: dict[str, Adapter] = {}
    for i, pc in enumerate(scenario.protocols):
        base = scenario_adapter(scenario, i)
        try:
            cur = base.with_params(dict(pc.params)) if pc.params else base
        except InvalidParameters as e:
            raise InputError(str(e), file=scenario.file, field=f"protocols[{i}].params") from None
        current[pc.id] = cur
        if isinstance(cur, PerpAdapter):
            draws[pc.id] = (pc.csv_book if pc.book.kind == "perp_csv" else
                            draw_perp_synthetic(pc.book.raw, cur, scenario.file, f"protocols[{i}].book", book_rng,
                                                maps=pc.perp_calibration))
        elif pc.book.kind == "csv":
            draws[pc.id] = pc.csv_book
        else:
            draws[pc.id] = draw_synthetic(pc.book.raw, cur, scenario.file, f"protocols[{i}].book", book_rng)
    market = Market(assets, liq, hl)
    return Prepared(scenario, paths, market, gas_gwei, gas_token, draws, current)


def scenario_adapter(scenario: Scenario, i: int) -> Adapter:
    """Protocol ``i``'s adapter from its snapshot (read by load_scenario: the ``snapshot =`` file or the
    bundled one), without the scenario's parameter overrides."""
    if not scenario.inputs_current:  # built or changed by hand
        from ..scenario.config import read_inputs

        return read_inputs(scenario).protocols[i].base_adapter
    return scenario.protocols[i].base_adapter


def build_models(scenario: Scenario) -> tuple[dict, dict, Any, int]:
    """Price models, initial prices, correlation and step count of a scenario (validated at load)."""
    if not scenario.inputs_current:
        from ..scenario.config import read_inputs

        scenario = read_inputs(scenario)
    assert scenario.prices is not None
    initial = {a: cfg.price_usd for a, cfg in scenario.assets.items()}
    return dict(scenario.prices.models), initial, scenario.prices.correlation, scenario.prices.n_steps


def _align_gas(gas: Any, paths: Any, scenario: Scenario) -> np.ndarray:
    """Gas per step: the CSV bar in force when step t's bar opens (replays align by time, others by offset)."""
    n = paths.close.shape[1]
    if paths.timestamps is not None:
        # timestamps[t] is the END of bar t (timestamps[0] the first open)
        opens = paths.timestamps - np.timedelta64(int(scenario.step_s), "s")
        opens[0] = paths.timestamps[0]
        idx = np.searchsorted(gas.timestamps, opens, side="right") - 1
    else:
        offs = (gas.timestamps - gas.timestamps[0]).astype("timedelta64[s]").astype(np.float64)
        idx = np.searchsorted(offs, np.maximum(np.arange(n) - 1, 0) * scenario.step_s, side="right") - 1
    return np.asarray(gas.gas_gwei, float)[np.clip(idx, 0, len(gas.gas_gwei) - 1)]


def bind(prepared: Prepared, params: Mapping[str, Mapping[str, float]] | None = None) -> Bound:
    """Apply one candidate's parameter overrides ``{protocol id: {key: value}}`` on top of the scenario's."""
    params = params or {}
    sc = prepared.scenario
    unknown = set(params) - set(prepared.current)
    if unknown:
        raise InputError(f"no protocol '{sorted(unknown)[0]}' in this scenario", file=sc.file, field="params")
    adapters, books, cm, dm = [], [], [], []
    initial = {a: float(prepared.paths.close[0, 0, i]) for i, a in enumerate(prepared.market.assets)}
    for i, pc in enumerate(sc.protocols):
        cur = prepared.current[pc.id]
        over = params.get(pc.id, {})
        try:
            ad = cur.with_params(dict(over)) if over else cur
        except InvalidParameters as e:
            raise InputError(str(e), file=sc.file, field=f"protocols[{i}].params") from None
        d = prepared.draws[pc.id]
        if isinstance(ad, PerpAdapter):
            names = market_assets(ad, pc.market_assets)
            assets = prepared.market.assets
            cols = np.array([assets.index(a) if a in assets else -1 for a in names], np.int64)
            if isinstance(d, PerpSyntheticDraws):
                px = {a: float(prepared.paths.close[0, 0, c]) for a, c in zip(ad.base_assets, cols, strict=True)
                      if c >= 0}
                d = materialize_perp(d, ad, cur, px)
            adapters.append(ad)
            books.append(PerpProtocolBook.of(pc.id, d))
            cm.append(cols)  # every held market's asset is priced (checked at load); -1: a market the book lacks
            dm.append(np.zeros(0, np.int64))
            continue
        if isinstance(d, SyntheticDraws):
            px = {a: initial[market_asset(ad, a)] for a in (*d.collateral_assets, *d.debt_assets)}
            pb = materialize(d, ad, cur, px, pc.id)
        else:
            pb = d
        adapters.append(ad)
        books.append(pb)
        assets = prepared.market.assets
        cm.append(np.array([assets.index(market_asset(ad, a)) for a in pb.book.collateral_assets], np.int64))
        dm.append(np.array([assets.index(market_asset(ad, a)) for a in pb.book.debt_assets], np.int64))
    effective = {pc.id: {**pc.params, **params.get(pc.id, {})} for pc in sc.protocols}
    return Bound(prepared, tuple(adapters), tuple(books), tuple(cm), tuple(dm), effective)


def primary_asset(bound: Bound) -> int:
    """Market index of the collateral asset with the largest initial value across the books."""
    close0 = bound.prepared.paths.close[0, 0]
    value = np.zeros(len(close0))
    for j, pb in enumerate(bound.books):
        if isinstance(pb, PerpProtocolBook):  # a perp book's value: its notional per market asset
            cols = bound.coll_market[j][pb.book.market]
            np.add.at(value, cols, pb.book.size_base * close0[cols])
            continue
        np.add.at(value, bound.coll_market[j], pb.book.collateral_tokens.sum(0) * close0[bound.coll_market[j]])
    return int(np.argmax(value))


def _venue_options(bound: Bound, j: int) -> dict:
    """Venue-specific scenario keys of protocol ``j`` (perp venues: the ADL policy and, per adapter market,
    the market asset whose bars are its mark series, -1 for none)."""
    pc, ad = bound.prepared.scenario.protocols[j], bound.adapters[j]
    if not isinstance(ad, PerpAdapter):
        return {}
    assets = bound.prepared.market.assets
    mark_market = np.full(len(ad.markets), -1, np.int64)
    for k, (m, b) in enumerate(zip(ad.markets, ad.base_assets, strict=True)):
        a = pc.mark_assets.get(m, pc.mark_assets.get(b))
        if a is not None:
            mark_market[k] = assets.index(a)
    return {"adl_policy": pc.adl_policy, "mark_market": mark_market, "backstop_unwind_steps": pc.backstop_unwind_steps,
            "funding": pc.funding}


def venue_contexts(bound: Bound) -> list:
    """One :class:`~optimizer.engine.venues.VenueContext` per protocol of the candidate (default routes:
    every column's flows go to its asset's own pool)."""
    from .venues import VenueContext

    sc = bound.prepared.scenario
    volume = market_volume(bound.prepared)
    out = []
    for j, (pc, ad, pb) in enumerate(zip(sc.protocols, bound.adapters, bound.books, strict=True)):
        pool = bound.prepared.market.price_pool
        out.append(VenueContext(index=j, id=pc.id, adapter=ad, book=pb, coll_market=bound.coll_market[j],
                                debt_market=bound.debt_market[j], coll_pool=pool[bound.coll_market[j]],
                                debt_pool=pool[bound.debt_market[j]], liquidators=sc.liquidators,
                                step_s=sc.step_s, scenario_lag_steps=sc.oracle_lag_steps,
                                reserves_usd=pc.reserves_usd, keepers=pc.keeper_population,
                                topups=pc.topup_model, seed=int(sc.seed),
                                market_volume=volume, options=_venue_options(bound, j)))
    return out


def market_volume(prepared: Prepared) -> np.ndarray:
    """(A, T+1) base-asset volume traded in bar ``t`` of each market asset: the replayed CSV's volume
    column (bar ``t`` is the CSV's row ``t - 1``), NaN where the asset is not a replay with volume."""
    from ..scenario.prices import Replay

    sc = prepared.scenario
    n = prepared.n_steps + 1
    out = np.full((len(prepared.market.assets), n), np.nan)
    models = sc.prices.models if sc.prices is not None else {}
    for i, a in enumerate(prepared.market.assets):
        m = models.get(a)
        if isinstance(m, Replay) and m.history.volume is not None:
            v = np.asarray(m.history.volume, np.float64)[: n - 1]
            out[i, 1: 1 + v.shape[0]] = v
    return out
