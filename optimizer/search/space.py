"""The search space: which parameters are free, and how far each may move.

Built from a scenario's ``[optimize]`` table and the adapters' parameter schemas. Each free
parameter gets the interval

    [max(contract lower, current - steward limit, user lower, unit floor),
     min(contract upper, current + steward limit, user upper, unit ceiling)]

aligned to a grid of ``step`` through the *current* value (so "no change" is always a candidate).
Steward limits follow Aave's risk stewards: a maximum change per update from the current value,
absolute for bps/fraction/ratio parameters, relative (%) for caps, token amounts, USD/DAI amounts and
durations. Parameters with unit ``fraction`` (Comet's collateral and liquidation factors, whose
ParamSpec bounds are the contract's 4-decimal storage range up to 6.5535) are also clamped to [0, 1].

Names are cascade names: ``"<adapter>:<ASSET>.<field>"`` (``"aave_v3:WETH.ltv_bps"``). The adapter
prefix may be left out when the scenario has one protocol. The same names are the optuna parameter
names, so a study reads directly in optuna-dashboard.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from optuna.distributions import BaseDistribution, FloatDistribution, IntDistribution

from protocols import Adapter, InvalidParameters

from ..errors import InputError
from ..scenario.config import Scenario

# Parameters tuned when an [optimize] table names assets but no fields, or names nothing at all: each
# adapter's ``default_search_fields`` (a public venue fact of protocols/).


@dataclass(frozen=True)
class Limit:
    """A steward limit: ``value`` in the parameter's unit, or a fraction of |current| if ``relative``."""

    value: float
    relative: bool = False

    def width(self, current: float) -> float:
        return self.value * abs(current) if self.relative else self.value

    def describe(self, unit: str) -> str:
        return f"±{self.value * 100:g} %" if self.relative else f"±{self.value:g} {unit}"


# Default steward limits by field (the part of the key after the last "."): each adapter's
# ``default_steward_limits``; then by unit.
DEFAULT_LIMITS_BY_UNIT: dict[str, Limit] = {
    "bps": Limit(500), "fraction": Limit(0.05), "ratio": Limit(0.05), "multiplier": Limit(0.05),
    "tokens": Limit(0.25, True), "USD": Limit(0.25, True), "DAI": Limit(0.25, True), "s": Limit(0.25, True),
}
DEFAULT_RELATIVE = Limit(0.25, True)

# Default search step by unit (None: continuous, or every integer for integer parameters).
DEFAULT_STEP_BY_UNIT: dict[str, float] = {"bps": 25.0, "fraction": 0.0025, "ratio": 0.0025, "multiplier": 0.0025}

_UNIT_CLAMP: dict[str, tuple[float, float]] = {"fraction": (0.0, 1.0)}

# The liquidation buffer a candidate must keep on every searched asset (optimize.min_liquidation_buffer_bps):
# each adapter's ``liquidation_buffer_pairs`` (lower field, upper field, bps per unit), a venue fact.
CAP_FIELD_SUFFIX = "_cap_tokens"  # supply/borrow caps (whole tokens): they size a book with scale_to_caps
MAX_ENUMERATED_GRID = 200_000  # the grid sampler lists the feasible points of grids up to this size
_DECIMALS = 10  # float parameters are rounded to this many decimals (4-decimal storage checks stay exact)


@dataclass(frozen=True)
class Dim:
    """One free parameter of the search."""

    name: str  # "aave_v3:WETH.ltv_bps"
    adapter: str
    key: str  # "WETH.ltv_bps"
    unit: str
    integer: bool
    current: float
    low: float
    high: float
    step: float | None
    limit: Limit | None
    spec_low: float
    spec_high: float

    @property
    def field(self) -> str:
        return self.key.rsplit(".", 1)[-1]

    @property
    def asset(self) -> str:
        """The asset / ilk / eMode the parameter belongs to ("" for protocol-wide parameters)."""
        return self.key.rsplit(".", 1)[0] if "." in self.key else ""

    @property
    def group(self) -> str:
        return f"{self.adapter}:{self.asset or '(protocol)'}"

    @property
    def is_cap(self) -> bool:
        return self.field.endswith(CAP_FIELD_SUFFIX)

    def change(self, value: float) -> float:
        """|value - current| as a share of the search range (0 = unchanged, 1 = the whole range)."""
        width = self.high - self.low
        return abs(float(value) - self.current) / width if width > 0 else 0.0

    def steps(self, value: float) -> float:
        """Grid steps from the current value (range shares x 20 for parameters without a step)."""
        if self.step:
            return abs(float(value) - self.current) / self.step
        return 20.0 * self.change(value)

    def random(self, rng: np.random.Generator) -> float:
        """A uniform draw from the parameter's values (its grid when it has a step)."""
        if self.high <= self.low:
            return self.low if not self.integer else int(self.low)
        if self.step:
            n = int(round((self.high - self.low) / self.step))
            v = self.low + int(rng.integers(0, n + 1)) * self.step
        elif self.integer:
            v = float(rng.integers(int(self.low), int(self.high) + 1))
        else:
            v = float(rng.uniform(self.low, self.high))
        return self.snap(v)

    def snap(self, value: float) -> float:
        """The value a trial ran with: optuna stores the raw suggestion (``0.025 - 3.5e-18`` on a 0.0025 grid),
        the objective receives it rounded as here (:meth:`suggest`), and reports show the rounded one."""
        return int(round(value)) if self.integer else round(float(value), _DECIMALS)

    def distribution(self) -> BaseDistribution:
        if self.integer:
            return IntDistribution(int(self.low), int(self.high), step=int(self.step or 1))
        return FloatDistribution(self.low, self.high, step=self.step)

    def suggest(self, trial: Any) -> float:
        if self.integer:
            return trial.suggest_int(self.name, int(self.low), int(self.high), step=int(self.step or 1))
        return self.snap(trial.suggest_float(self.name, self.low, self.high, step=self.step))

    def values(self, points: int) -> list[float | int]:
        """Grid values: every step when the parameter has one, else ``points`` evenly spaced."""
        if self.step:
            n = int(round((self.high - self.low) / self.step))
            vals = [self.low + k * self.step for k in range(n + 1)]
        else:
            vals = list(np.linspace(self.low, self.high, points)) if self.high > self.low else [self.low]
        if self.integer:
            return sorted({int(round(v)) for v in vals})
        return sorted({round(float(v), _DECIMALS) for v in vals})

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "unit": self.unit, "current": self.current, "low": self.low, "high": self.high,
                "step": self.step, "integer": self.integer,
                "steward_limit": self.limit.describe(self.unit) if self.limit else None,
                "contract_bounds": [self.spec_low, self.spec_high]}


@dataclass(frozen=True)
class SearchSpace:
    dims: tuple[Dim, ...]
    adapters: Mapping[str, Adapter]  # current adapters (scenario overrides applied)
    min_buffer_bps: float = 0.0  # optimize.min_liquidation_buffer_bps

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(d.name for d in self.dims)

    def trial_params(self, params: Mapping[str, float]) -> dict[str, float]:
        """A trial's stored parameters (``FrozenTrial.params``) as it ran with them (:meth:`Dim.snap`)."""
        return {d.name: d.snap(params[d.name]) for d in self.dims if d.name in params}

    def dim(self, name: str) -> Dim:
        for d in self.dims:
            if d.name == name:
                return d
        raise KeyError(name)

    def distributions(self) -> dict[str, BaseDistribution]:
        return {d.name: d.distribution() for d in self.dims}

    def suggest(self, trial: Any) -> dict[str, float]:
        return {d.name: d.suggest(trial) for d in self.dims}

    def current(self) -> dict[str, float]:
        return {d.name: d.current for d in self.dims}

    def changed(self, params: Mapping[str, float]) -> list[str]:
        """Names of the parameters ``params`` moves away from today's values."""
        return [d.name for d in self.dims if d.name in params and abs(float(params[d.name]) - d.current) > 1e-12]

    def change_size(self, params: Mapping[str, float]) -> float:
        """How far ``params`` is from today's values: the sum of each move as a share of its search range."""
        return float(sum(d.change(params[d.name]) for d in self.dims if d.name in params))

    def steps(self, params: Mapping[str, float]) -> float:
        return float(sum(d.steps(params[d.name]) for d in self.dims if d.name in params))

    def caps(self) -> list[Dim]:
        return [d for d in self.dims if d.is_cap]

    def random_feasible(self, rng: np.random.Generator, start: Mapping[str, float] | None = None,
                        tries: int = 200) -> dict[str, float] | None:
        """A candidate inside the invariant region, by rejection one group (asset) at a time.

        Groups of ``start`` (a sampler's proposal) that already satisfy every rule are kept; the others are
        redrawn uniformly (each group's invariants and buffer involve only its own parameters). None when
        no feasible point was found in ``tries`` draws of a group.
        """
        params = {d.name: (start[d.name] if start is not None and d.name in start else d.random(rng))
                  for d in self.dims}
        for g in self.groups():
            sub = self.subset(g)
            own = {n: params[n] for n in sub.names}
            k = 0
            while not sub.feasible(own):
                k += 1
                if k > tries:
                    return None
                own = {d.name: d.random(rng) for d in sub.dims}
            params.update(own)
        return params if self.feasible(params) else None

    def feasible_grid(self, points: int) -> list[dict[str, float]]:
        """Every grid point that satisfies the invariants and the buffer (grids up to MAX_ENUMERATED_GRID)."""
        import itertools

        grid = self.grid(points)
        size = self.grid_size(points)
        if size > MAX_ENUMERATED_GRID:
            raise InputError(f"the grid has {size:,} points (more than {MAX_ENUMERATED_GRID:,}); use the tpe "
                             "sampler, fewer free parameters or larger steps", field="--sampler")
        names = list(grid)
        out = []
        for vals in itertools.product(*grid.values()):
            p = dict(zip(names, vals, strict=True))
            if self.feasible(p):
                out.append(p)
        return out

    def split(self, params: Mapping[str, float]) -> dict[str, dict[str, float]]:
        """``{"aave_v3:WETH.ltv_bps": 8000}`` → ``{"aave_v3": {"WETH.ltv_bps": 8000.0}}``."""
        out: dict[str, dict[str, float]] = {}
        for name, v in params.items():
            d = self.dim(name)
            out.setdefault(d.adapter, {})[d.key] = float(v)
        return out

    def feasible(self, params: Mapping[str, float]) -> bool:
        """``check(params)[0] == 0``, refusing first, without building an adapter, a candidate that breaks a
        bound of a parameter it sets or an invariant that involves one (``with_params`` validates both, so
        such a candidate is infeasible for certain); the rest go through :meth:`check`. The rejection
        samplers draw many candidates of the first kind, and building an adapter validates every rule."""
        for adapter, over in self.split(params).items():
            cur = self.adapters[adapter]
            schema = cur.schema()
            merged = {**cur.params, **over}
            try:
                for k, v in over.items():
                    schema.spec(k).check(v)
            except InvalidParameters:
                return False
            keys = set(over)
            if any(not keys.isdisjoint(inv.params) and not inv.check(merged) for inv in schema.invariants):
                return False
        return self.check(params)[0] == 0

    def check(self, params: Mapping[str, float]) -> tuple[int, str | None]:
        """Validate a candidate against bounds and every adapter invariant WITHOUT simulating.

        Returns ``(number of broken rules, first message)``; ``(0, None)`` when feasible. The
        authority is ``adapter.with_params`` (what the simulator would do); the count of broken
        invariants gives samplers a graded violation.
        """
        broken, first = 0, None
        for adapter, over in self.split(params).items():
            cur = self.adapters[adapter]
            try:
                cur.with_params(over)
            except InvalidParameters as e:
                first = first or f"{adapter}: {e}"
                merged = {**cur.params, **over}
                schema = cur.schema()
                n = sum(1 for inv in schema.invariants if set(inv.params) & set(over) and not inv.check(merged))
                n += sum(1 for k, v in over.items() if not schema.spec(k).lower <= v <= schema.spec(k).upper)
                broken += max(n, 1)
        for msg in self._buffer_violations(params):
            broken += 1
            first = first or msg
        return broken, first

    def _buffer_violations(self, params: Mapping[str, float]) -> list[str]:
        """Searched assets whose liquidation buffer (LT - LTV, liquidateCF - borrowCF) is below the floor."""
        out: list[str] = []
        if self.min_buffer_bps <= 0:
            return out
        for adapter, over in self.split(params).items():
            merged = {**self.adapters[adapter].params, **over}
            for pair in self.adapters[adapter].liquidation_buffer_pairs:
                lo_f, hi_f = pair.lower, pair.upper
                for asset in sorted({k.split(".")[0] for k in over if k.endswith((f".{lo_f}", f".{hi_f}"))}):
                    lo_k, hi_k = f"{asset}.{lo_f}", f"{asset}.{hi_f}"
                    if lo_k in merged and hi_k in merged:
                        gap = (merged[hi_k] - merged[lo_k]) * pair.bps_per_unit
                        if gap < self.min_buffer_bps - 1e-9:
                            out.append(f"{adapter}: {hi_k} - {lo_k} = {gap:g} bps is below "
                                       f"optimize.min_liquidation_buffer_bps = {self.min_buffer_bps:g}")
        return out

    def grid(self, points: int) -> dict[str, list[float | int]]:
        return {d.name: d.values(points) for d in self.dims}

    def grid_size(self, points: int) -> int:
        return math.prod(len(v) for v in self.grid(points).values())

    def groups(self) -> list[str]:
        seen: list[str] = []
        for d in self.dims:
            if d.group not in seen:
                seen.append(d.group)
        return seen

    def subset(self, group: str) -> SearchSpace:
        return SearchSpace(tuple(d for d in self.dims if d.group == group), self.adapters, self.min_buffer_bps)

    def describe(self) -> list[dict[str, Any]]:
        return [d.describe() for d in self.dims]


# ------------------------------------------------------------------------------------------------
# Building the space from a scenario
# ------------------------------------------------------------------------------------------------


def scenario_adapters(scenario: Scenario) -> dict[str, Adapter]:
    """Each protocol's adapter with the scenario's parameter overrides (what ``prepare`` uses), by id."""
    from ..engine.model import scenario_adapter

    out = {}
    for i, pc in enumerate(scenario.protocols):
        base = scenario_adapter(scenario, i)
        try:
            out[pc.id] = base.with_params(dict(pc.params)) if pc.params else base
        except InvalidParameters as e:
            raise InputError(str(e), file=scenario.file, field=f"protocols[{i}].params") from None
    return out


def _book_collaterals(scenario: Scenario, adapter: str) -> list[str]:
    for pc in scenario.protocols:
        if pc.id == adapter:
            coll = pc.book.raw.get("collateral")
            if isinstance(coll, Mapping):
                return [str(a) for a in coll]
    return []


def _resolve_name(raw: str, adapters: Mapping[str, Adapter], file: str, key: str) -> tuple[str, str]:
    """``"[adapter:]ASSET.field"`` → (adapter, key), checked against the schema."""
    adapter, colon, pkey = raw.partition(":")
    if not colon:
        if len(adapters) != 1:
            raise InputError(f"'{raw}': name the protocol as ADAPTER:KEY (scenario has {', '.join(adapters)})",
                             file=file, field=key)
        adapter, pkey = next(iter(adapters)), raw
    if adapter not in adapters:
        raise InputError(f"'{raw}': no protocol '{adapter}' in the scenario ({', '.join(adapters)})", file=file,
                         field=key)
    try:
        adapters[adapter].schema().spec(pkey)
    except InvalidParameters as e:
        raise InputError(f"{adapter}: {e}", file=file, field=key) from None
    return adapter, pkey


def _matches(table_key: str, adapter: str, key: str) -> int:
    """How specifically a steward_limits/step/bounds key names a parameter (0: not at all)."""
    if table_key == f"{adapter}:{key}":
        return 3
    if table_key == key:
        return 2
    if table_key == key.rsplit(".", 1)[-1]:
        return 1
    return 0


def _lookup(table: Mapping[str, Any], adapter: str, key: str) -> Any:
    best, found = 0, None
    for k, v in table.items():
        m = _matches(k, adapter, key)
        if m > best:
            best, found = m, v
    return found


def _check_table_keys(table: Mapping[str, Any], adapters: Mapping[str, Adapter], file: str, key: str) -> None:
    for k in table:
        if not any(_matches(k, a, s.name) for a, ad in adapters.items() for s in ad.schema().specs):
            raise InputError(f"'{k}' names no parameter or field of {', '.join(adapters)}", file=file,
                             field=f"{key}.{k}")


def _limit(cfg, adapter: str, spec, venue: Adapter | None = None) -> Limit | None:
    if not cfg.steward_limits_on:
        return None
    v = _lookup(cfg.steward_limits, adapter, spec.name)
    if v is not None:
        return Limit(float(v[:-1]) / 100.0, True) if isinstance(v, str) else Limit(float(v))
    default = venue.default_steward_limits.get(spec.name.rsplit(".", 1)[-1]) if venue is not None else None
    return Limit(*default) if default is not None else DEFAULT_LIMITS_BY_UNIT.get(spec.unit, DEFAULT_RELATIVE)


def build_space(scenario: Scenario, adapters: Mapping[str, Adapter] | None = None,
                free: tuple[str, ...] | None = None) -> SearchSpace:
    """The search space of a scenario's ``[optimize]`` table (``free`` overrides its names).

    With no ``free`` and no ``assets``, every collateral asset of each protocol's synthetic book is
    searched over the adapter's default fields (``Adapter.default_search_fields``).
    """
    cfg = scenario.optimize
    file = scenario.file
    adapters = dict(adapters) if adapters is not None else scenario_adapters(scenario)
    names: list[tuple[str, str]] = []
    raw_free = cfg.free if free is None else free
    for i, raw in enumerate(raw_free):
        names.append(_resolve_name(raw, adapters, file, f"optimize.free[{i}]"))
    shorthand = dict(cfg.assets)
    if free is None and not raw_free and not shorthand:
        shorthand = {a: tuple(_book_collaterals(scenario, a)) for a in adapters}
    implicit = free is None and not raw_free and not cfg.assets
    for adapter, assets in shorthand.items():
        if adapter not in adapters:
            raise InputError(f"no protocol '{adapter}' in the scenario ({', '.join(adapters)})", file=file,
                             field=f"optimize.assets.{adapter}")
        fields = cfg.fields or adapters[adapter].default_search_fields
        if implicit and not assets:
            continue  # the implicit default searches the protocols whose book names collateral assets
        if not fields:
            raise InputError(f"no default fields for '{adapter}'; list them in optimize.fields", file=file,
                             field="optimize.fields")
        for asset in assets:
            for f in fields:
                names.append(_resolve_name(f"{adapter}:{asset}.{f}", adapters, file, f"optimize.assets.{adapter}"))
    if not names:
        hint = next((f" (e.g. \"{a}:{ad.schema().specs[0].name}\" with risk_metric = \"p_adl\" or "
                     f"\"p_insurance_depletion\")" for a, ad in adapters.items() if not ad.default_search_fields), "")
        raise InputError("no free parameters: list them in [optimize] free = [\"ADAPTER:ASSET.field\", ...]" + hint,
                         file=file, field="optimize.free")
    _check_table_keys(cfg.steward_limits, adapters, file, "optimize.steward_limits")
    _check_table_keys(cfg.step, adapters, file, "optimize.step")
    _check_table_keys(cfg.bounds, adapters, file, "optimize.bounds")

    dims: list[Dim] = []
    seen: set[str] = set()
    for adapter, key in names:
        name = f"{adapter}:{key}"
        if name in seen:
            continue
        seen.add(name)
        dims.append(_dim(cfg, file, adapters[adapter], adapter, key))
    return SearchSpace(tuple(dims), adapters, cfg.min_liquidation_buffer_bps)


def _dim(cfg, file: str, ad: Adapter, adapter: str, key: str) -> Dim:
    spec = ad.schema().spec(key)
    current = float(ad.params[key])
    name = f"{adapter}:{key}"
    limit = _limit(cfg, adapter, spec, ad)
    lo, hi = float(spec.lower), float(spec.upper)
    if spec.unit in _UNIT_CLAMP:
        lo, hi = max(lo, _UNIT_CLAMP[spec.unit][0]), min(hi, _UNIT_CLAMP[spec.unit][1])
    if limit is not None:
        w = limit.width(current)
        lo, hi = max(lo, current - w), min(hi, current + w)
    user = _lookup(cfg.bounds, adapter, key)
    if user is not None:
        lo, hi = max(lo, user[0]), min(hi, user[1])
    step = _lookup(cfg.step, adapter, key)
    if step is None:
        step = DEFAULT_STEP_BY_UNIT.get(spec.unit)
    if spec.integer:
        if step is not None and float(step) != int(step):
            raise InputError(f"{name} is a whole number of {spec.unit}: its step must be whole, got {step:g}",
                             file=file, field="optimize.step")
        step = int(step) if step is not None else None
    eps = 1e-9 * max(1.0, abs(current))
    if step:
        # a grid through the current value
        k_lo = math.ceil((lo - current) / step - 1e-9)
        k_hi = math.floor((hi - current) / step + 1e-9)
        lo, hi = current + k_lo * step, current + k_hi * step
        if not spec.integer:
            lo, hi = round(lo, _DECIMALS), round(hi, _DECIMALS)
    elif spec.integer:
        lo, hi = float(math.ceil(lo - eps)), float(math.floor(hi + eps))
    if lo > hi + eps:
        raise InputError(f"{name}: empty search range (contract bounds [{spec.lower:g}, {spec.upper:g}], current "
                         f"{current:g}{', steward limit ' + limit.describe(spec.unit) if limit else ''}"
                         f"{', bounds ' + str(list(user)) if user is not None else ''})", file=file,
                         field="optimize")
    return Dim(name, adapter, key, spec.unit, spec.integer, current, lo, hi, float(step) if step else None, limit,
               float(spec.lower), float(spec.upper))
