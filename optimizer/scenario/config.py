"""Scenario files (TOML): parsed and validated in one place into frozen configs.

Every error is an :class:`~optimizer.errors.InputError` naming the file, the key and the rule.
The format is documented in ``docs/scenario_format.md``.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from protocols import ADAPTERS

from ..errors import InputError
from ..snapshots import data_dir
from .limits import (
    MAX_GAS_GWEI,
    MAX_GAS_PER_CALL,
    MAX_HORIZON_H,
    MAX_PRICE_USD,
    MAX_STEPS,
    MAX_USD,
    MIN_PRICE_USD,
    check_price_arrays,
)

_ID = re.compile(r"^[A-Za-z0-9_.-]+$")
LENDING_BOOK_KINDS = ("synthetic", "csv")
PERP_BOOK_KINDS = ("perp_synthetic", "perp_csv")  # perp venues (optimizer.scenario.perp_book)
ADL_POLICIES = ("queue", "pro_rata")


@dataclass(frozen=True)
class LiquidatorConfig:
    gas_per_call: float = 500_000.0
    gas_gwei: float = 20.0
    gas_csv: Path | None = None
    gas_token: str | None = None  # asset converting gas to USD (None: gas costs nothing)
    max_calls_per_step: int = 1_000_000
    reaction_delay_steps: int = 0
    min_profit_usd: float = 0.0
    gas_history: Any = None  # optimizer.scenario.history.GasHistory of gas_csv, read by load_scenario


@dataclass(frozen=True)
class BookConfig:
    kind: str  # "synthetic" | "csv"
    raw: Mapping[str, Any]
    path: Path | None = None


@dataclass(frozen=True)
class ProtocolConfig:
    """One ``[[protocols]]`` entry. ``id`` (default: the adapter name) keys it everywhere: parameter
    overrides (``--set id:KEY=VALUE``), results, events; two markets of one adapter need two ids."""

    adapter: str
    params: Mapping[str, float]
    book: BookConfig
    reserves_usd: float = 0.0  # Comet protocol reserves at the start (targetReserves check)
    snapshot: Path | None = None  # parameter snapshot file (None: the adapter's bundled snapshot)
    id: str = ""  # "" = the adapter name
    keepers: Path | None = None  # keeper population JSON (auction venues: Maker Liquidations 1.x)
    owner_topups: Path | None = None  # vault-owner top-up model JSON (Maker Liquidations 1.x; default: none)
    # read and validated by load_scenario (prepare does no I/O):
    base_adapter: Any = None  # protocols.Adapter built from the snapshot (scenario params not applied)
    csv_book: Any = None  # optimizer.scenario.book.ProtocolBook of a csv book
    loaded_from: Any = None  # (adapter, id, snapshot, book kind and path) the two above were read with
    keeper_population: Any = None  # optimizer.behaviour.keepers.KeeperPopulation read from ``keepers``
    topup_model: Any = None  # optimizer.behaviour.topups.TopupModel read from ``owner_topups``
    perp_calibration: Any = None  # perp_synthetic ``calibration``: {"long"/"short": LiquidationMap} read from the file
    # perp venues only (docs/scenario_format.md, "Perp venues in the cascade"):
    market_assets: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # base asset -> asset
    adl_policy: str = "queue"  # "queue" (the production queue) | "pro_rata"
    mark_assets: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))  # market -> mark series
    backstop_unwind_steps: int = 0  # the backstop vault sells what it took over in this many steps (0: holds it)
    funding: tuple[float, float] | None = None  # perp: (funding rate per interval, interval in s); None: no funding

    def __post_init__(self) -> None:
        if not self.id:
            object.__setattr__(self, "id", self.adapter)


@dataclass(frozen=True)
class AssetConfig:
    name: str
    price_usd: float | None  # None: a replay starts at its CSV's first open
    model: Mapping[str, Any]  # validated by optimizer.scenario.prices
    liquidity: Mapping[str, Any] | None  # validated by optimizer.market.liquidity


OPTIMIZE_SAMPLERS = ("tpe", "cmaes", "nsga2", "grid")
RISK_METRICS = ("var_99", "es_99", "mean", "var_95")
# Perp venues: the probability that a path auto-deleverages / runs an insurance fund dry, judged at the upper
# end of its Wilson 95 % interval (the budget is then a probability).
PROBABILITY_RISKS = ("p_adl", "p_insurance_depletion")
PRIMARY_OBJECTIVES = ("efficiency", "borrow_capacity_usd")  # maximised
PENALTY_OBJECTIVE = "borrower_penalty"  # mean liquidation penalty borrowers pay / debt (minimised)
SECOND_OBJECTIVES = (*RISK_METRICS, PENALTY_OBJECTIVE)  # minimised
OBJECTIVE_NAMES = (*PRIMARY_OBJECTIVES, *SECOND_OBJECTIVES)


@dataclass(frozen=True)
class OptimizeConfig:
    """The ``[optimize]`` table: what ``cascade optimize`` searches and under which risk budget.

    Parsed here for types and ranges only; parameter names, steward-limit keys and bounds are
    checked against the adapters' schemas by :func:`optimizer.search.space.build_space`.
    Mappings keep their TOML keys (``"aave_v3:WETH.ltv_bps"``, ``"WETH.ltv_bps"`` or a field name
    such as ``"ltv_bps"``). ``steward_limits`` values are a number (absolute, in the parameter's
    unit) or a string ``"25%"`` (relative to the current value); ``steward_limits_on = False`` turns
    the governance step limits off.
    """

    present: bool = False  # the scenario has an [optimize] table
    free: tuple[str, ...] = ()
    assets: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: MappingProxyType({}))
    fields: tuple[str, ...] | None = None
    objectives: tuple[str, ...] = ("efficiency",)
    risk_metric: str = "var_99"
    budget_share_of_debt: float = 0.001
    sampler: str | None = None  # None: tpe (single objective) / nsga2 (two objectives)
    trials: int = 100
    per_asset: bool = False
    steward_limits_on: bool = True
    steward_limits: Mapping[str, float | str] = field(default_factory=lambda: MappingProxyType({}))
    step: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))
    bounds: Mapping[str, tuple[float, float]] = field(default_factory=lambda: MappingProxyType({}))
    adaptive: bool = True
    screen_fraction: float = 0.125
    min_screen_paths: int = 32
    eta: int = 4
    grid_points: int = 5
    population_size: int = 20
    out_of_sample_seed: int | None = None  # None: scenario seed + 1
    out_of_sample_paths: int | None = None  # None: the scenario's paths
    smart_ltv_c: float = 2.33
    # LT - LTV (Aave) / liquidateCF - borrowCF (Comet) a candidate must keep on every searched asset:
    # without it efficiency (which rewards LTV only) pulls the threshold down onto the LTV and users
    # are liquidated the moment they borrow the maximum.
    min_liquidation_buffer_bps: float = 250.0
    smart_ltv_horizon_h: float | None = None  # None: the scenario's horizon
    # The user-harm guard: the upper 95 % CI end of the mean liquidation penalty borrowers pay per path, as a
    # share of debt, must stay <= this (None: not a constraint; still reported).
    max_borrower_penalty_share: float | None = None
    # Sets whose efficiency is within this of the best count as equally efficient (then the smaller change
    # from today's values wins). 0: equal only (efficiency is computed exactly, with no Monte Carlo noise).
    efficiency_tolerance: float = 0.0
    out_of_sample_candidates: int = 6  # at most this many sets re-simulated out of sample to find the answer
    feasible_sampling: bool = True  # draw candidates inside the invariant region (False: reject afterwards)
    objectives_given: bool = False  # objectives were set in the table (else the default may follow the space)


@dataclass(frozen=True)
class PriceInputs:
    """The validated price models of a scenario (their CSV histories already read)."""

    models: Mapping[str, Any]  # asset -> optimizer.scenario.prices model
    correlation: Any  # optimizer.scenario.prices.Correlation or None
    n_steps: int
    loaded_from: Any = None  # the asset model tables, correlation table and gas CSV they were read with


@dataclass(frozen=True)
class Scenario:
    """A validated scenario. Paths are absolute; ``raw`` keeps the parsed TOML for the run manifest.

    :func:`load_scenario` (and :func:`parse_scenario`) read every file the scenario names through the
    one checked reader (:func:`optimizer.io.read_text`) and validate it: price histories (``prices``),
    the gas CSV (``liquidators.gas_history``), each protocol's snapshot (``base_adapter``) and CSV book
    (``csv_book``); synthetic book specifications are validated too. ``prepare`` then does no I/O.
    """

    file: str
    name: str
    description: str
    horizon_h: float | None
    step_s: float
    paths: int
    seed: int
    assets: Mapping[str, AssetConfig]
    correlation: Mapping[str, Any] | None
    liquidators: LiquidatorConfig
    oracle_lag_steps: int
    protocols: tuple[ProtocolConfig, ...]
    base_dir: Path
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)
    optimize: OptimizeConfig = field(default_factory=OptimizeConfig)
    prices: PriceInputs | None = field(default=None, repr=False)
    # [[forced_flows]]: non-protocol forced-flow sources (optimizer.scenario.forced_flows.ForcedFlowConfig)
    forced_flows: tuple[Any, ...] = ()

    @property
    def n_steps(self) -> int | None:
        return None if self.horizon_h is None else int(round(self.horizon_h * 3600 / self.step_s))

    def resolve(self, rel: str, key: str) -> Path:
        return resolve_path(rel, self.base_dir, self.file, key)

    @property
    def protocol_ids(self) -> tuple[str, ...]:
        return tuple(p.id for p in self.protocols)

    @property
    def inputs_current(self) -> bool:
        """True when the files were read for the scenario as it stands (a ``dataclasses.replace`` that
        points a protocol at another snapshot or book, or changes an asset's model, makes it False:
        :func:`read_inputs` reads them again)."""
        if self.prices is None or self.prices.loaded_from != _price_sources(self):
            return False
        return all(p.base_adapter is not None and p.loaded_from == _protocol_sources(p) for p in self.protocols)

    def with_overrides(self, *, paths: int | None = None, seed: int | None = None,
                       params: Mapping[str, Mapping[str, float]] | None = None) -> Scenario:
        """A copy with another path count, seed, or protocol parameter overrides ``{id: {key: v}}``."""
        protos = self.protocols
        if params:
            unknown = set(params) - {p.id for p in protos}
            if unknown:
                raise InputError(f"no protocol '{sorted(unknown)[0]}' in this scenario "
                                 f"(has: {', '.join(p.id for p in protos)})", file=self.file, field="--set")
            protos = tuple(replace(p, params=MappingProxyType({**p.params, **params.get(p.id, {})}))
                           for p in protos)
        if paths is not None and self.n_steps is not None:
            check_price_arrays(paths, self.n_steps, len(self.assets), file=None, field="--paths")
        return replace(self, paths=self.paths if paths is None else paths,
                       seed=self.seed if seed is None else seed, protocols=protos)


def _check_steps(horizon_h: float, step_min: float, file: str) -> None:
    """A horizon of at least one step and at most MAX_STEPS steps (``horizon_h = 0`` is refused, not one step)."""
    steps = horizon_h * 60.0 / step_min
    if round(steps) < 1:
        raise InputError(f"must be at least one step ({step_min:g} min = {step_min / 60:g} h), got {horizon_h:g}",
                         file=file, field="scenario.horizon_h")
    if steps > MAX_STEPS:
        raise InputError(f"{horizon_h:g} h at {step_min:g} min is {steps:.0f} steps (limit {MAX_STEPS}); use a "
                         "longer step_min or a shorter horizon", file=file, field="scenario.horizon_h")


def resolve_path(rel: str, base_dir: Path, file: str, key: str) -> Path:
    """A path in a scenario: relative to the scenario file first, then to the bundled data folder."""
    p = Path(rel)
    for cand in ((p,) if p.is_absolute() else (base_dir / p, data_dir() / p)):
        if cand.is_file():
            return cand
    raise InputError(f"file '{rel}' not found (looked next to the scenario and in bundled data/)", file=file,
                     field=key)


# ------------------------------------------------------------------------------------------------
# Checked readers
# ------------------------------------------------------------------------------------------------


class _Table:
    """A TOML table with its dotted key, reading values with type and range checks."""

    def __init__(self, data: Any, key: str, file: str) -> None:
        if not isinstance(data, dict):
            raise InputError(f"expected a table, got {type(data).__name__}", file=file, field=key or "<root>")
        self.data, self.key, self.file = data, key, file
        self.used: set[str] = set()

    def _k(self, name: str) -> str:
        return f"{self.key}.{name}" if self.key else name

    def err(self, name: str, msg: str) -> InputError:
        return InputError(msg, file=self.file, field=self._k(name))

    def has(self, name: str) -> bool:
        return name in self.data

    def raw(self, name: str, default: Any = None) -> Any:
        self.used.add(name)
        return self.data.get(name, default)

    def _given(self, name: str, default: Any) -> tuple[bool, Any]:
        """Mark ``name`` used; (True, value) when present, (False, default) otherwise, "missing" without one."""
        self.used.add(name)
        if name in self.data:
            return True, self.data[name]
        if default is None:
            raise self.err(name, "missing")
        return False, default

    def number(self, name: str, default: float | None = None, *, lo: float = -math.inf, hi: float = math.inf,
               lo_open: bool = False, required: bool = False) -> float:
        given, v = self._given(name, None if required else default)
        if not given:
            return v
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self.err(name, f"must be a number, got {v!r}")
        v = float(v)
        if not math.isfinite(v):
            raise self.err(name, f"must be finite, got {v}")
        if v < lo or (lo_open and v == lo) or v > hi:
            lo_s = "(" if lo_open else "["
            raise self.err(name, f"must be in {lo_s}{lo:g}, {hi:g}], got {v:g}")
        return v

    def integer(self, name: str, default: int | None = None, *, lo: int = 0, hi: int = 2**62) -> int:
        given, v = self._given(name, default)
        if not given:
            return v
        if isinstance(v, bool) or not isinstance(v, int):
            raise self.err(name, f"must be a whole number, got {v!r}")
        if not lo <= v <= hi:
            raise self.err(name, f"must be in [{lo}, {hi}], got {v}")
        return v

    def string(self, name: str, default: str | None = None, choices: tuple[str, ...] | None = None) -> str:
        given, v = self._given(name, default)
        if not given:
            return v
        if not isinstance(v, str):
            raise self.err(name, f"must be a string, got {v!r}")
        if choices and v not in choices:
            raise self.err(name, f"must be one of {', '.join(choices)}, got '{v}'")
        return v

    def table(self, name: str, required: bool = False) -> _Table | None:
        self.used.add(name)
        if name not in self.data:
            if required:
                raise self.err(name, "missing")
            return None
        return _Table(self.data[name], self._k(name), self.file)

    def no_unknown(self, allowed: set[str] | None = None) -> None:
        extra = sorted(set(self.data) - (allowed if allowed is not None else self.used))
        if extra:
            raise self.err(extra[0], "unknown key" + (f" (expected one of: {', '.join(sorted(allowed or self.used))})"))


def load_scenario(path: str | Path) -> Scenario:
    """Parse and validate a scenario TOML file."""
    from ..io import read_text

    p = Path(path)
    file = str(path)
    text = read_text(p, label=file)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise InputError(f"malformed TOML: {e}", file=file) from None
    return parse_scenario(data, file=file, base_dir=p.resolve().parent)


def parse_scenario(data: dict[str, Any], *, file: str, base_dir: Path) -> Scenario:
    root = _Table(data, "", file)
    sc = root.table("scenario", required=True)
    name = sc.string("name")
    description = sc.string("description", "")
    horizon_h = sc.number("horizon_h", -1.0, lo=0, lo_open=True, hi=MAX_HORIZON_H)
    step_min = sc.number("step_min", required=True, lo=0, lo_open=True, hi=1440)
    if horizon_h > 0:
        _check_steps(horizon_h, step_min, file)
    n_paths = sc.integer("paths", 1000, lo=1, hi=10_000_000)
    seed = sc.integer("seed", 0, lo=0, hi=2**63 - 1)
    sc.no_unknown()

    assets_t = root.table("assets", required=True)
    if not assets_t.data:
        raise assets_t.err("", "no assets declared")
    assets: dict[str, AssetConfig] = {}
    for asset in assets_t.data:
        at = assets_t.table(asset)
        assert at is not None
        model = {k: v for k, v in at.data.items() if k != "liquidity"}
        if "model" not in model:
            raise at.err("model", "missing")
        price = (None if model.get("model") == "replay" and "price_usd" not in at.data
                 else at.number("price_usd", None, lo=MIN_PRICE_USD, hi=MAX_PRICE_USD))
        liq = at.data.get("liquidity")
        if liq is not None and not isinstance(liq, dict):
            raise at.err("liquidity", "must be a table")
        assets[asset] = AssetConfig(asset, price, MappingProxyType(model), MappingProxyType(liq) if liq else None)

    corr = root.table("correlation")
    liq_t = root.table("liquidators")
    liquidators = LiquidatorConfig()
    if liq_t is not None:
        gas_csv = liq_t.raw("gas_csv")
        if gas_csv is not None and not isinstance(gas_csv, str):
            raise liq_t.err("gas_csv", "must be a path string")
        gas_token = liq_t.raw("gas_token")
        if gas_token is not None and (not isinstance(gas_token, str) or gas_token not in assets):
            raise liq_t.err("gas_token", f"unknown asset {gas_token!r} (declare it under [assets])"[:200])
        liquidators = LiquidatorConfig(
            gas_per_call=liq_t.number("gas_per_call", LiquidatorConfig.gas_per_call, lo=0, hi=MAX_GAS_PER_CALL),
            gas_gwei=liq_t.number("gas_gwei", LiquidatorConfig.gas_gwei, lo=0, hi=MAX_GAS_GWEI),
            gas_csv=resolve_path(gas_csv, base_dir, file, "liquidators.gas_csv") if gas_csv else None,
            gas_token=gas_token,
            max_calls_per_step=liq_t.integer("max_calls_per_step", LiquidatorConfig.max_calls_per_step, lo=1),
            reaction_delay_steps=liq_t.integer("reaction_delay_steps", 0, lo=0, hi=100_000),
            min_profit_usd=liq_t.number("min_profit_usd", 0.0, lo=-MAX_USD, hi=MAX_USD),
        )
        liq_t.no_unknown()

    oracle_t = root.table("oracle")
    lag = 0
    if oracle_t is not None:
        lag = oracle_t.integer("lag_steps", 0, lo=0, hi=100_000)
        oracle_t.no_unknown()

    protos_raw = root.raw("protocols")
    if not isinstance(protos_raw, list) or not protos_raw:
        raise InputError("at least one [[protocols]] entry is required", file=file, field="protocols")
    protocols: list[ProtocolConfig] = []
    for i, pr in enumerate(protos_raw):
        pt = _Table(pr, f"protocols[{i}]", file)
        adapter = pt.string("adapter")
        if adapter not in ADAPTERS:
            raise pt.err("adapter", f"unknown adapter '{adapter}' (known: {', '.join(sorted(ADAPTERS))})")
        perp = ADAPTERS[adapter].family == "perp"
        pid = pt.string("id", adapter)
        if not _ID.match(pid):
            raise pt.err("id", f"must be letters, digits, '_', '-' or '.' (no ':' or spaces), got {pid!r}"[:200])
        if pid in {p.id for p in protocols}:
            if pt.has("id"):
                raise pt.err("id", f"'{pid}' appears twice (each [[protocols]] entry needs its own id)")
            raise pt.err("adapter", f"'{adapter}' appears twice: give each entry its own id = \"...\"")
        params_t = pt.table("params")
        params: dict[str, float] = {}
        if params_t is not None:
            for k in params_t.data:
                params[k] = params_t.number(k)
        book_t = pt.table("book", required=True)
        assert book_t is not None
        kind = book_t.string("kind", choices=PERP_BOOK_KINDS if perp else LENDING_BOOK_KINDS)
        bpath = None
        if kind in ("csv", "perp_csv"):
            bpath = resolve_path(book_t.string("path"), base_dir, file, f"{book_t.key}.path")
        market_assets: dict[str, str] = {}
        mark_assets: dict[str, str] = {}
        adl_policy = "queue"
        unwind = 0
        funding = None
        if perp:
            for table_key, out in (("market_assets", market_assets), ("mark_assets", mark_assets)):
                ma = pt.table(table_key)
                if ma is not None:
                    for k in ma.data:
                        out[k] = ma.string(k)
                        if out[k] not in assets:
                            raise ma.err(k, f"unknown asset '{out[k]}' (declare it under [assets])"[:200])
            adl_policy = pt.string("adl_policy", "queue", ADL_POLICIES)
            unwind = pt.integer("backstop_unwind_steps", 0, lo=0, hi=1_000_000)
            ft = pt.table("funding")
            if ft is not None:  # a scenario-given funding rate (the bundled data hold no premium index)
                funding = (ft.number("rate_per_interval", lo=-0.1, hi=0.1), ft.number("interval_h", lo=1e-6, hi=1e4)
                           * 3600.0)
                ft.no_unknown()
        reserves = pt.number("reserves_usd", 0.0, lo=-MAX_USD, hi=MAX_USD)
        snap = pt.raw("snapshot")
        if snap is not None and not (isinstance(snap, str) and snap):
            raise pt.err("snapshot", f"must be the path of a snapshot JSON file, got {snap!r}"[:200])
        snapshot = resolve_path(snap, base_dir, file, pt._k("snapshot")) if snap else None
        kp = pt.raw("keepers")
        if kp is not None and not (isinstance(kp, str) and kp):
            raise pt.err("keepers", f"must be the path of a keeper population JSON file, got {kp!r}"[:200])
        keepers = resolve_path(kp, base_dir, file, pt._k("keepers")) if kp else None
        tu = pt.raw("owner_topups")
        if tu is not None and not (isinstance(tu, str) and tu):
            raise pt.err("owner_topups", f"must be the path of a vault-owner top-up JSON file, got {tu!r}"[:200])
        topups = resolve_path(tu, base_dir, file, pt._k("owner_topups")) if tu else None
        pt.no_unknown()
        protocols.append(ProtocolConfig(adapter, MappingProxyType(params),
                                        BookConfig(kind, MappingProxyType(dict(book_t.data)), bpath), reserves,
                                        snapshot, pid, keepers, market_assets=MappingProxyType(market_assets),
                                        adl_policy=adl_policy, mark_assets=MappingProxyType(mark_assets),
                                        owner_topups=topups, backstop_unwind_steps=unwind, funding=funding))
    opt_t = root.table("optimize")
    optimize = _parse_optimize(opt_t) if opt_t is not None else OptimizeConfig()
    from .forced_flows import parse_forced_flows

    forced = parse_forced_flows(root.raw("forced_flows"), file=file, assets=assets,
                                resolve=lambda rel, key: resolve_path(rel, base_dir, file, key))
    # [backtest] (the record a replay is compared with) is read by optimizer.backtest.config
    root.no_unknown({"scenario", "assets", "correlation", "liquidators", "oracle", "protocols", "optimize",
                     "backtest", "forced_flows"})

    step_s = step_min * 60.0
    if horizon_h > 0:
        check_price_arrays(n_paths, int(round(horizon_h * 60 / step_min)), len(assets), file=file,
                           field="scenario.paths")
    return read_inputs(Scenario(
        file=file, name=name, description=description,
        horizon_h=None if horizon_h < 0 else horizon_h, step_s=step_s, paths=n_paths, seed=seed,
        assets=MappingProxyType(assets), correlation=MappingProxyType(corr.data) if corr else None,
        liquidators=liquidators, oracle_lag_steps=lag, protocols=tuple(protocols), base_dir=base_dir,
        raw=MappingProxyType(data), optimize=optimize, forced_flows=forced,
    ))


def _protocol_sources(pc: ProtocolConfig) -> tuple:
    return (pc.adapter, pc.id, pc.snapshot, pc.book.kind, pc.book.path, pc.keepers, pc.owner_topups,
            tuple(pc.market_assets.items()), tuple(pc.mark_assets.items()), repr(pc.book.raw.get("calibration")))


def _price_sources(sc: Scenario) -> tuple:
    models = tuple((a, repr(sorted(dict(cfg.model).items()))) for a, cfg in sc.assets.items())
    corr = repr(sorted(dict(sc.correlation).items())) if sc.correlation else None
    return (models, corr, sc.liquidators.gas_csv, sc.step_s, sc.horizon_h)


def _behaviour_file(load: Any, path: Path | None, scenario_file: Any, key: str) -> Any:
    """A protocol's behaviour file (keepers, owner top-ups) read by ``load``, or None; its errors also name
    the scenario key that points at it."""
    if path is None:
        return None
    try:
        return load(path)
    except InputError as e:
        raise InputError(str(e), file=scenario_file, field=key) from None


def read_inputs(sc: Scenario) -> Scenario:
    """Read and validate every file a scenario names (and its book specifications): the one place."""
    import numpy as np

    from protocols import InvalidParameters

    from ..snapshots import load_adapter
    from .book import draw_synthetic, market_asset, read_csv_book
    from .history import read_gas_csv
    from .prices import correlation_from_config, horizon_steps, model_from_config

    models = {a: model_from_config(a, dict(cfg.model), sc.file, sc.resolve, step_s=sc.step_s, horizon_h=sc.horizon_h)
              for a, cfg in sc.assets.items()}
    corr = (correlation_from_config(dict(sc.correlation), sc.file, sc.resolve, step_s=sc.step_s, models=models)
            if sc.correlation else None)
    n_steps = horizon_steps(models, sc.horizon_h, sc.step_s, sc.file)
    lc = sc.liquidators
    gas = None
    if lc.gas_csv is not None:
        try:
            gas = read_gas_csv(lc.gas_csv)
        except InputError as e:
            raise InputError(str(e), file=sc.file, field="liquidators.gas_csv") from None
    known = set(sc.assets)
    protocols = []
    for i, pc in enumerate(sc.protocols):
        try:
            base = load_adapter(pc.adapter, pc.snapshot)
        except InputError as e:  # name the scenario key that points at the snapshot too
            raise InputError(str(e), file=sc.file,
                             field=f"protocols[{i}].snapshot" if pc.snapshot is not None else f"protocols[{i}].adapter"
                             ) from None
        try:
            cur = base.with_params(dict(pc.params)) if pc.params else base
        except InvalidParameters as e:
            raise InputError(str(e), file=sc.file, field=f"protocols[{i}].params") from None
        key = f"protocols[{i}].book"
        book = calibration = None
        if pc.book.kind in PERP_BOOK_KINDS:
            from .perp_book import check_perp_protocol

            start = {a: (sc.assets[a].price_usd if sc.assets[a].price_usd is not None
                         else getattr(models[a], "initial_price_usd", None)) for a in sc.assets}
            book, calibration = check_perp_protocol(sc, i, cur, known, start_prices_usd=start)
        elif pc.book.kind == "csv":
            assert pc.book.path is not None
            try:
                book = read_csv_book(pc.book.path, pc.id, cur, known)
            except InputError as e:  # name the scenario key that points at the CSV too
                raise InputError(str(e), file=sc.file, field=f"{key}.path") from None
        else:  # validate the specification now (prepare draws it from the scenario's seed)
            d = draw_synthetic(pc.book.raw, cur, sc.file, key, np.random.default_rng(0))
            for a in (*d.collateral_assets, *d.debt_assets):
                if market_asset(cur, a) not in known:
                    raise InputError(f"asset '{market_asset(cur, a)}' has no price model in the scenario",
                                     file=sc.file, field=key)
            try:
                cur.check_categories(d.category[:1])
            except ValueError as e:
                raise InputError(str(e), file=sc.file, field=f"{key}.emode") from None
        from ..behaviour.keepers import load_population
        from ..behaviour.topups import load_model

        population = _behaviour_file(load_population, pc.keepers, sc.file, f"protocols[{i}].keepers")
        topup_model = _behaviour_file(load_model, pc.owner_topups, sc.file, f"protocols[{i}].owner_topups")
        protocols.append(replace(pc, base_adapter=base, csv_book=book, loaded_from=_protocol_sources(pc),
                                 keeper_population=population, topup_model=topup_model,
                                 perp_calibration=calibration))
    return replace(sc, protocols=tuple(protocols), liquidators=replace(lc, gas_history=gas),
                   prices=PriceInputs(MappingProxyType(models), corr, n_steps, _price_sources(sc)))


def _parse_optimize(t: _Table) -> OptimizeConfig:
    """The ``[optimize]`` table (types and ranges; names are resolved by optimizer.search.space)."""

    def strings(name: str, value: Any, key: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(x, str) and x for x in value):
            raise InputError(f"must be a list of names, got {value!r}"[:200], file=t.file, field=key)
        return tuple(value)

    def boolean(name: str, default: bool) -> bool:
        t.used.add(name)
        v = t.data.get(name, default)
        if not isinstance(v, bool):
            raise t.err(name, f"must be true or false, got {v!r}")
        return v

    def opt_int(name: str, lo: int) -> int | None:
        if not t.has(name):
            return None
        return t.integer(name, lo=lo)

    free = strings("free", t.raw("free", []), t._k("free"))
    assets: dict[str, tuple[str, ...]] = {}
    at = t.table("assets")
    if at is not None:
        for adapter, lst in at.data.items():
            assets[adapter] = strings(adapter, lst, at._k(adapter))
    fields = strings("fields", t.raw("fields"), t._k("fields")) if t.has("fields") else None
    objectives = (strings("objectives", t.raw("objectives"), t._k("objectives")) if t.has("objectives")
                  else ("efficiency",))
    risk_metric = t.string("risk_metric", "var_99", RISK_METRICS + PROBABILITY_RISKS)
    check_objectives(objectives, t.file, t._k("objectives"))
    sampler = t.string("sampler", "", OPTIMIZE_SAMPLERS) if t.has("sampler") else None

    limits_on = True
    limits: dict[str, float | str] = {}
    lim = t.data.get("steward_limits")
    t.used.add("steward_limits")
    if isinstance(lim, bool):
        limits_on = lim
    elif isinstance(lim, dict):
        for k, v in lim.items():
            limits[k] = parse_limit(v, t.file, f"{t._k('steward_limits')}.{k}")
    elif lim is not None:
        raise t.err("steward_limits", f"must be true, false or a table of limits, got {lim!r}"[:200])

    steps: dict[str, float] = {}
    st = t.table("step")
    if st is not None:
        for k in st.data:
            steps[k] = st.number(k, lo=0.0, lo_open=True)
    bounds: dict[str, tuple[float, float]] = {}
    bt = t.table("bounds")
    if bt is not None:
        for k, v in bt.data.items():
            ok = (isinstance(v, list) and len(v) == 2
                  and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in v))
            if not ok or v[0] > v[1]:
                raise bt.err(k, f"must be [low, high] with low <= high, got {v!r}"[:200])
            bounds[k] = (float(v[0]), float(v[1]))

    cfg = OptimizeConfig(
        present=True, free=free, assets=MappingProxyType(assets), fields=fields, objectives=objectives,
        risk_metric=risk_metric,
        budget_share_of_debt=t.number("budget_share_of_debt", 0.001, lo=0.0, lo_open=True, hi=1.0),
        sampler=sampler, trials=t.integer("trials", 100, lo=1, hi=10_000_000), per_asset=boolean("per_asset", False),
        steward_limits_on=limits_on, steward_limits=MappingProxyType(limits), step=MappingProxyType(steps),
        bounds=MappingProxyType(bounds), adaptive=boolean("adaptive", True),
        screen_fraction=t.number("screen_fraction", 0.125, lo=0.0, lo_open=True, hi=1.0),
        min_screen_paths=t.integer("min_screen_paths", 32, lo=1),
        eta=t.integer("eta", 4, lo=2, hi=1000), grid_points=t.integer("grid_points", 5, lo=2, hi=10_000),
        population_size=t.integer("population_size", 20, lo=2, hi=100_000),
        out_of_sample_seed=opt_int("out_of_sample_seed", 0), out_of_sample_paths=opt_int("out_of_sample_paths", 1),
        smart_ltv_c=t.number("smart_ltv_c", 2.33, lo=0.0, lo_open=True, hi=100.0),
        min_liquidation_buffer_bps=t.number("min_liquidation_buffer_bps", 250.0, lo=0.0, hi=10_000.0),
        smart_ltv_horizon_h=(t.number("smart_ltv_horizon_h", lo=0.0, lo_open=True) if t.has("smart_ltv_horizon_h")
                             else None),
        max_borrower_penalty_share=(t.number("max_borrower_penalty_share", lo=0.0, lo_open=True, hi=1.0)
                                    if t.has("max_borrower_penalty_share") else None),
        efficiency_tolerance=t.number("efficiency_tolerance", 0.0, lo=0.0, hi=1.0),
        out_of_sample_candidates=t.integer("out_of_sample_candidates", 6, lo=1, hi=1000),
        feasible_sampling=boolean("feasible_sampling", True),
        objectives_given=t.has("objectives"),
    )
    t.no_unknown()
    return cfg


def parse_limit(v: Any, file: str | None, key: str) -> float | str:
    """A steward limit: a number >= 0 (absolute, parameter unit) or ``"N%"`` (relative, N >= 0)."""
    if isinstance(v, bool) or not isinstance(v, (int, float, str)):
        raise InputError(f"must be a number (absolute) or a string like \"25%\" (relative), got {v!r}"[:200],
                         file=file, field=key)
    if isinstance(v, str):
        txt = v.strip()
        try:
            pct = float(txt[:-1]) if txt.endswith("%") else math.nan
        except ValueError:
            pct = math.nan
        if not math.isfinite(pct):
            raise InputError(f"must be a number (absolute) or a string like \"25%\" (relative), got {v!r}"[:200],
                             file=file, field=key)
        if pct < 0:
            raise InputError(f"a steward limit must be >= 0, got {v!r}", file=file, field=key)
        return f"{pct:g}%"
    if not math.isfinite(v) or v < 0:
        raise InputError(f"a steward limit must be >= 0 and finite, got {v!r}", file=file, field=key)
    return float(v)


def check_objectives(objectives: tuple[str, ...], file: str | None, key: str) -> None:
    """``(<primary>,)`` or ``(<primary>, <risk metric | borrower_penalty>)``; primary: efficiency | borrow_capacity_usd."""
    if not objectives or objectives[0] not in PRIMARY_OBJECTIVES or len(objectives) > 2:
        raise InputError(f"must be [\"efficiency\"] (or \"borrow_capacity_usd\"), optionally followed by a risk metric "
                         f"or \"{PENALTY_OBJECTIVE}\", got {list(objectives)}", file=file, field=key)
    if len(objectives) == 2 and objectives[1] not in SECOND_OBJECTIVES:
        raise InputError(f"unknown second objective '{objectives[1]}' (one of {', '.join(SECOND_OBJECTIVES)})",
                         file=file, field=key)
