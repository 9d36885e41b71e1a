"""What one evaluation needs, prepared once per scenario and shared across candidates.

``prepare(scenario)`` builds everything that does not depend on protocol parameters — price paths,
liquidity, gas, synthetic-book draws — from one seed (common random numbers). ``bind(prepared,
params)`` then applies one candidate's parameters: adapters and position books.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from protocols import Adapter, InvalidParameters

from ..errors import InputError
from ..scenario.book import (
    ProtocolBook,
    SyntheticDraws,
    draw_synthetic,
    market_asset,
    materialize,
    read_csv_book,
)
from ..scenario.config import Scenario
from ..scenario.limits import MAX_PATH_BYTES, check_price_arrays  # noqa: F401 - MAX_PATH_BYTES re-exported
from ..snapshots import load_adapter

# Streams of the one seed: paths and books draw from independent children so adding paths never
# changes a book and vice versa.
_STREAM_PATHS, _STREAM_BOOKS = 0, 1


@dataclass(frozen=True)
class Market:
    """Per market asset: liquidity model rows for the numba kernels and recovery half-lives."""

    assets: tuple[str, ...]
    liquidity: np.ndarray  # (A, 5): model code (-1 = infinitely deep), 4 params
    half_life_s: np.ndarray  # (A,)


@dataclass(frozen=True)
class Prepared:
    scenario: Scenario
    paths: Any  # optimizer.scenario.prices.PricePaths
    market: Market
    gas_gwei: np.ndarray  # (T+1,) gwei per step
    gas_token: int  # market asset index, -1 = gas costs nothing
    draws: Mapping[str, SyntheticDraws | ProtocolBook]
    current: Mapping[str, Adapter]

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
    books: tuple[ProtocolBook, ...]
    coll_market: tuple[np.ndarray, ...]  # per protocol: market asset index of each book collateral column
    debt_market: tuple[np.ndarray, ...]
    params: Mapping[str, Mapping[str, float]]


def oracle_lag_steps(bound: Bound) -> list[int]:
    """Per protocol: steps between market and oracle price (scenario lag + the adapter's own delay, Maker OSM)."""
    sc = bound.prepared.scenario
    return [sc.oracle_lag_steps + int(round(a.circuit_breakers().oracle_delay_s / sc.step_s)) for a in bound.adapters]


def prepare(scenario: Scenario) -> Prepared:
    from ..market.liquidity import Liquidity
    from ..scenario.history import read_gas_csv
    from ..scenario.prices import generate_paths

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
    if lc.gas_csv is not None:
        gas = read_gas_csv(lc.gas_csv)
        gas_gwei = _align_gas(gas, paths, scenario)
    else:
        gas_gwei = np.full(n_steps + 1, lc.gas_gwei)
    gas_token = assets.index(lc.gas_token) if lc.gas_token else -1
    initial = {a: float(paths.close[0, 0, i]) for i, a in enumerate(assets)}

    book_rng = np.random.default_rng(book_seed)
    draws: dict[str, SyntheticDraws | ProtocolBook] = {}
    current: dict[str, Adapter] = {}
    known = set(assets)
    for i, pc in enumerate(scenario.protocols):
        base = scenario_adapter(scenario, i)
        try:
            cur = base.with_params(dict(pc.params)) if pc.params else base
        except InvalidParameters as e:
            raise InputError(str(e), file=scenario.file, field=f"protocols[{i}].params") from None
        current[pc.adapter] = cur
        key = f"protocols[{i}].book"
        if pc.book.kind == "csv":
            assert pc.book.path is not None
            try:
                draws[pc.adapter] = read_csv_book(pc.book.path, pc.adapter, cur, known)
            except InputError as e:  # name the scenario key that points at the CSV too
                raise InputError(str(e), file=scenario.file, field=f"{key}.path") from None
        else:
            d = draw_synthetic(pc.book.raw, cur, scenario.file, key, book_rng)
            for a in (*d.collateral_assets, *d.debt_assets):
                if market_asset(cur, a) not in known:
                    raise InputError(f"asset '{market_asset(cur, a)}' has no price model in the scenario",
                                     file=scenario.file, field=key)
            draws[pc.adapter] = d
    market = Market(assets, liq, hl)
    return Prepared(scenario, paths, market, gas_gwei, gas_token, draws, current)


def scenario_adapter(scenario: Scenario, i: int) -> Adapter:
    """Protocol ``i``'s adapter from its snapshot (the scenario's ``snapshot =`` file or the bundled one)."""
    pc = scenario.protocols[i]
    if pc.snapshot is None:
        return load_adapter(pc.adapter)
    try:
        return load_adapter(pc.adapter, pc.snapshot)
    except InputError as e:  # name the scenario key that points at the snapshot too
        raise InputError(str(e), file=scenario.file, field=f"protocols[{i}].snapshot") from None


def build_models(scenario: Scenario) -> tuple[dict, dict, Any, int]:
    """Price models, initial prices, correlation and step count of a scenario (validated)."""
    from ..scenario.prices import correlation_from_config, horizon_steps, model_from_config

    models = {a: model_from_config(a, dict(cfg.model), scenario.file, scenario.resolve, step_s=scenario.step_s,
                                   horizon_h=scenario.horizon_h)
              for a, cfg in scenario.assets.items()}
    corr = (correlation_from_config(dict(scenario.correlation), scenario.file, scenario.resolve,
                                    step_s=scenario.step_s, models=models) if scenario.correlation else None)
    n_steps = horizon_steps(models, scenario.horizon_h, scenario.step_s, scenario.file)
    initial = {a: cfg.price_usd for a, cfg in scenario.assets.items()}
    return models, initial, corr, n_steps


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
    """Apply one candidate's parameter overrides ``{adapter: {key: value}}`` on top of the scenario's."""
    params = params or {}
    sc = prepared.scenario
    unknown = set(params) - set(prepared.current)
    if unknown:
        raise InputError(f"no protocol '{sorted(unknown)[0]}' in this scenario", file=sc.file, field="params")
    adapters, books, cm, dm = [], [], [], []
    initial = {a: float(prepared.paths.close[0, 0, i]) for i, a in enumerate(prepared.market.assets)}
    for i, pc in enumerate(sc.protocols):
        cur = prepared.current[pc.adapter]
        over = params.get(pc.adapter, {})
        try:
            ad = cur.with_params(dict(over)) if over else cur
        except InvalidParameters as e:
            raise InputError(str(e), file=sc.file, field=f"protocols[{i}].params") from None
        d = prepared.draws[pc.adapter]
        if isinstance(d, SyntheticDraws):
            px = {a: initial[market_asset(ad, a)] for a in (*d.collateral_assets, *d.debt_assets)}
            pb = materialize(d, ad, cur, px, pc.adapter)
        else:
            pb = d
        adapters.append(ad)
        books.append(pb)
        assets = prepared.market.assets
        cm.append(np.array([assets.index(market_asset(ad, a)) for a in pb.book.collateral_assets], np.int64))
        dm.append(np.array([assets.index(market_asset(ad, a)) for a in pb.book.debt_assets], np.int64))
    effective = {pc.adapter: {**pc.params, **params.get(pc.adapter, {})} for pc in sc.protocols}
    return Bound(prepared, tuple(adapters), tuple(books), tuple(cm), tuple(dm), effective)


def primary_asset(bound: Bound) -> int:
    """Market index of the collateral asset with the largest initial value across the books."""
    close0 = bound.prepared.paths.close[0, 0]
    value = np.zeros(len(close0))
    for j, pb in enumerate(bound.books):
        np.add.at(value, bound.coll_market[j], pb.book.collateral_tokens.sum(0) * close0[bound.coll_market[j]])
    return int(np.argmax(value))
