"""Current vs a candidate parameter set on the same paths (common random numbers): paired deltas.

    from optimizer.compare import compare
    cmp = compare("aave_v3_core_24h_jumps", {"aave_v3": {"WETH.liquidation_threshold_bps": 8200}}, paths=200)
    cmp.verdict()["text"]      # "riskier: mean bad debt +$12.3k [+$8.1k, +$16.5k] ..."
    cmp.summary()              # one row per metric and statistic: current, candidate, delta ± stderr, CI
    cmp.to_json()              # what ``cascade compare --json`` prints and the report renders

The scenario is prepared once (price paths, liquidity, book draws); both parameter sets are evaluated
on those paths, so every difference is computed path by path (:func:`~optimizer.engine.metrics.paired_difference`):
a delta's standard error comes from the per-path differences, not from two independent intervals.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .engine import SimulationResult, evaluate, prepare
from .engine.metrics import (
    METRICS,
    efficiency_family,
    format_delta,
    format_value,
    headline_value,
    metric,
    paired_difference,
)
from .engine.model import Prepared
from .scenario.config import Scenario

Params = Mapping[str, Mapping[str, float]]
VERDICT_BASIS = (("bad_debt_usd", "mean"), ("bad_debt_usd", "es_99"))
FIGURE_DIGITS = 6  # significant digits of the per-path series stored for figures


def load_scenario_arg(scenario: str | Path | Scenario) -> Scenario:
    """A :class:`Scenario`, a TOML path, or the name of a bundled scenario (``aave_v3_core_24h_jumps``)."""
    if isinstance(scenario, Scenario):
        return scenario
    from .cli._common import resolve_scenario
    from .scenario.config import load_scenario

    return load_scenario(resolve_scenario(str(scenario)))


def _round(x: Any, digits: int = FIGURE_DIGITS) -> Any:
    a = np.asarray(x, float)
    with np.errstate(divide="ignore", invalid="ignore"):
        mag = np.where(a != 0, np.floor(np.log10(np.abs(np.where(a != 0, a, 1.0)))), 0)
        scale = 10.0 ** (digits - 1 - mag)
        r = np.where(np.isfinite(a), np.round(a * scale) / scale, a)
    return r.tolist()


# ------------------------------------------------------------------------------------------------
# Scenario description and the risk budget (shared with the proposal analysis)
# ------------------------------------------------------------------------------------------------


def display_path(p: str | Path | None) -> str | None:
    """A path as reports show it: bundled files as ``bundled:scenarios/x.toml``, the home folder as ``~``,
    files under the current directory relative to it."""
    if p is None:
        return None
    from .snapshots import data_dir

    path = Path(p)
    try:
        rp = path.resolve()
    except OSError:
        return str(p)
    for root, prefix in ((data_dir().resolve(), "bundled:"), (Path.cwd().resolve(), "")):
        try:
            return prefix + rp.relative_to(root).as_posix()
        except ValueError:
            pass
    home = str(Path.home())
    s = str(rp)
    return "~" + s[len(home):] if home not in ("", "/") and s.startswith(home + "/") else s


def book_info(prepared: Prepared, bound) -> list[dict[str, Any]]:
    """Per protocol: what its book is (kind, size, assets, how debt is set) at t0 prices."""
    sc = prepared.scenario
    close0 = prepared.paths.close[0, 0]
    out = []
    for j, (pc, pb) in enumerate(zip(sc.protocols, bound.books, strict=True)):
        book = pb.book
        if not hasattr(book, "collateral_tokens"):  # a perp book: open notional per market and side at t0
            mark = book.position_marks(close0[bound.coll_market[j]])
            margin = float(book.margin_usd.sum() + book.cross_collateral_usd.sum())
            out.append({"adapter": pc.adapter, "kind": pc.book.kind, "debt_mode": "perp",
                        "positions": int(book.n_positions), "collateral_usd": {"margin": margin}, "debt_usd": {},
                        "categories": [],
                        "open_interest_usd": {f"{m} {s}": float((book.notional_usd(mark)[(book.market == i)
                                                                 & (book.side == sv)]).sum())
                                              for i, m in enumerate(book.markets) if (book.market == i).any()
                                              for s, sv in (("long", 1), ("short", -1))},
                        "snapshot": display_path(pc.snapshot) if pc.snapshot else "bundled"})
            continue
        coll = book.collateral_tokens * close0[bound.coll_market[j]]
        debt = book.debt_tokens * close0[bound.debt_market[j]]
        raw = pc.book.raw
        mode = ("csv" if pc.book.kind == "csv" else
                "ltv_utilisation" if "ltv_utilisation" in raw else "health")
        cats = sorted({int(c) for c in np.unique(book.category)})
        out.append({
            "adapter": pc.adapter, "kind": pc.book.kind, "debt_mode": mode, "positions": int(book.n_positions),
            "collateral_usd": {a: float(coll[:, i].sum()) for i, a in enumerate(book.collateral_assets)},
            "debt_usd": {a: float(debt[:, i].sum()) for i, a in enumerate(book.debt_assets)},
            "categories": cats, "snapshot": display_path(pc.snapshot) if pc.snapshot else "bundled",
        })
    return out


def scenario_info(prepared: Prepared, bound, engine: str, engine_reason: str | None = None) -> dict[str, Any]:
    sc = prepared.scenario
    models = {a: dict(cfg.model) for a, cfg in sc.assets.items()}
    return {
        "name": sc.name, "file": display_path(sc.file), "description": sc.description, "seed": sc.seed,
        "paths": prepared.n_paths, "steps": prepared.n_steps, "step_s": sc.step_s,
        "horizon_h": prepared.n_steps * sc.step_s / 3600.0, "engine": engine,
        **({"engine_reason": engine_reason} if engine_reason else {}),  # why auto ran the reference engine
        "assets": {a: {"model": m.get("model"), "price_usd": float(prepared.paths.close[0, 0, i]),
                       "shocks": [dict(s) for s in m.get("shocks", [])] if isinstance(m.get("shocks"), list) else [],
                       "liquidity": (dict(sc.assets[a].liquidity) if sc.assets[a].liquidity else None)}
                   for i, (a, m) in enumerate((a, models[a]) for a in prepared.market.assets)},
        "oracle_lag_steps": sc.oracle_lag_steps,
        "liquidators": {"gas_per_call": sc.liquidators.gas_per_call, "gas_gwei": sc.liquidators.gas_gwei,
                        "gas_csv": display_path(sc.liquidators.gas_csv) if sc.liquidators.gas_csv else None,
                        "max_calls_per_step": sc.liquidators.max_calls_per_step,
                        "reaction_delay_steps": sc.liquidators.reaction_delay_steps,
                        "min_profit_usd": sc.liquidators.min_profit_usd},
        "books": book_info(prepared, bound),
    }


def budget_check(sc: Scenario, metrics: Mapping[str, Any], paths: int) -> dict[str, Any] | None:
    """The scenario's risk budget (its ``[optimize]`` table) applied to one result; None without one."""
    if not sc.optimize.present:
        return None
    from .search import risk_of

    r = risk_of(metrics, sc.optimize.risk_metric, paths)
    return r.as_dict(sc.optimize.budget_share_of_debt)


# ------------------------------------------------------------------------------------------------
# The comparison
# ------------------------------------------------------------------------------------------------


def paired_deltas(current: SimulationResult, candidate: SimulationResult) -> dict[str, dict[str, Any]]:
    """Per declared Monte Carlo metric and statistic: the paired difference candidate - current."""
    a, b = current.per_path(), candidate.per_path()
    out: dict[str, dict[str, Any]] = {}
    for spec in current.metric_specs():  # the declared metrics this result's ledger has
        if spec.monte_carlo and spec.name in b:
            out[spec.name] = {key: paired_difference(a[spec.name], b[spec.name], key) for key, _ in spec.statistics}
    return out


def exact_deltas(cur_m: Mapping[str, Any], cand_m: Mapping[str, Any]) -> dict[str, Any]:
    """Differences of the metrics that are not estimates (capital efficiency, critical drop)."""
    out: dict[str, Any] = {}
    for spec in METRICS:
        if spec.monte_carlo:
            continue
        a, b = cur_m.get(spec.name), cand_m.get(spec.name)
        if isinstance(a, Mapping) and isinstance(b, Mapping):
            out[spec.name] = {k: (b[k] - a[k] if isinstance(a.get(k), (int, float)) and isinstance(b.get(k), (int, float))
                                  and not isinstance(a.get(k), bool) else None)
                              for k in a if k in b and isinstance(a.get(k), (int, float, type(None)))}
    return out


def _efficiency_delta(a: Mapping[str, Any], b: Mapping[str, Any]) -> dict[str, float]:
    return {"current_ratio": a["ratio"], "candidate_ratio": b["ratio"],
            "delta_points": (b["ratio"] - a["ratio"]) * 100.0,
            "current_borrow_capacity_usd": a["borrow_capacity_usd"],
            "candidate_borrow_capacity_usd": b["borrow_capacity_usd"],
            "delta_borrow_capacity_usd": b["borrow_capacity_usd"] - a["borrow_capacity_usd"],
            "delta_debt_usd": b["debt_usd"] - a["debt_usd"]}


def efficiency(cur_m: Mapping[str, Any], cand_m: Mapping[str, Any]) -> dict[str, Any]:
    """What the candidate buys or costs in borrowing power: USD and points of capital efficiency.

    ``family`` says whose figures they are (a lending share or a perp leverage multiple). With lending and
    perp venues in one scenario each family's change is under ``by_family``, and the headline is the
    lending one unless the candidate changes only the perp venues' figures."""
    a, b = cur_m["capital_efficiency"], cand_m["capital_efficiency"]
    out: dict[str, Any] = {**_efficiency_delta(a, b), "family": efficiency_family(cur_m)}
    ba, bb = a.get("by_family"), b.get("by_family")
    if ba and bb:
        by = {f: _efficiency_delta(ba[f], bb[f]) for f in ("lending", "perp") if f in ba and f in bb}
        out["by_family"] = by
        changed = [f for f, d in by.items() if d["delta_points"] != 0 or d["delta_borrow_capacity_usd"] != 0]
        if changed == ["perp"]:
            out |= {**by["perp"], "family": "perp"}
    return out


def _efficiency_cost(eff: Mapping[str, Any]) -> str:
    """``buys $x of borrowing power (+y points of capital efficiency)`` for one family's change."""
    pts, usd = eff["delta_points"], eff["delta_borrow_capacity_usd"]
    perp = eff.get("family") == "perp"
    # a perp venue's capital efficiency is a leverage multiple (notional / margin), not a share
    ce = (f"{format_delta(pts / 100.0, 'leverage')} of capital efficiency (notional / margin)" if perp
          else f"{pts:+.2f} points of capital efficiency")
    what = "notional capacity" if perp else "borrowing power"
    return (f"does not change {what}" if abs(pts) < 5e-7 and abs(usd) < 0.5 else
            f"{'buys' if usd > 0 else 'costs'} {format_value(abs(usd), 'usd')} of {what} ({ce})")


def verdict(deltas: Mapping[str, Mapping[str, Any]], eff: Mapping[str, Any], paths: int,
            nothing_modelled: bool = False, candidate_name: str = "the candidate", also: str = "") -> dict[str, Any]:
    """safer / riskier / no material change (or mixed), read from the paired 95 % CIs of bad debt.

    The basis is mean bad debt and ES 99 of bad debt (USD): *riskier* when at least one CI lies above
    zero and none below, *safer* the reverse, *mixed* when they disagree, *no material change* when
    every CI contains zero.
    """
    basis = []
    for name, key in VERDICT_BASIS:
        d = deltas[name][key]
        basis.append({"metric": name, "statistic": key, **d})
    up = [b for b in basis if b["significant"] and b["delta"] > 0]
    down = [b for b in basis if b["significant"] and b["delta"] < 0]
    if nothing_modelled:
        label = "no material change"
    elif up and down:
        label = "mixed"
    elif up:
        label = "riskier"
    elif down:
        label = "safer"
    else:
        label = "no material change"
    spec = metric("bad_debt_usd")
    parts = []
    if all(b["delta"] == 0 and b["stderr"] == 0 for b in basis):
        parts.append("bad debt identical on every path")
    for b in basis if not parts else ():
        lo, hi = b["ci95"]
        stat = dict(spec.statistics)[b["statistic"]]
        share = ""
        if b["statistic"] == "mean" and "bad_debt_share" in deltas:
            share = f" ({format_delta(deltas['bad_debt_share']['mean']['delta'], 'share')} of debt)"
        parts.append(f"{stat} bad debt {format_delta(b['delta'], spec.fmt)}{share} "
                     f"[{format_delta(lo, spec.fmt)}, {format_delta(hi, spec.fmt)}]")
    cost = _efficiency_cost(eff)
    other = [f for f in ("lending", "perp") if f != eff.get("family") and f in (eff.get("by_family") or {})]
    for f in other:  # the other family's change too, when the candidate moves it
        d = {**eff["by_family"][f], "family": f}
        if abs(d["delta_points"]) >= 5e-7 or abs(d["delta_borrow_capacity_usd"]) >= 0.5:
            cost += f", and {_efficiency_cost(d)} on the {f} venues"
    why = "no parameter the simulator exercises changes; " if nothing_modelled else ""
    text = (f"{label.capitalize()}: {why}{'; '.join(parts)} (paired 95 % CIs, {paths} paths); "
            f"{candidate_name} {cost}{also}.")
    return {"label": label, "text": text, "basis": basis, "rule": (
        "riskier/safer when the paired 95 % CI of mean or ES 99 bad debt excludes zero (and none points the "
        "other way); mixed when they disagree; otherwise no material change")}


@dataclass
class Comparison:
    """Current and candidate parameter sets evaluated on the same paths.

    Attributes
    ----------
    current, candidate : SimulationResult
        The two evaluations (same prepared paths and book draws).
    baseline : dict
        Overrides ``{adapter: {key: value}}`` applied on top of the scenario for the *current* set
        (empty: the scenario/snapshot values).
    params : dict
        The candidate's overrides on top of the baseline.
    """

    scenario: Scenario
    prepared: Prepared
    current: SimulationResult
    candidate: SimulationResult
    baseline: dict[str, dict[str, float]]
    params: dict[str, dict[str, float]]
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        v = self.verdict()
        n = sum(len(p) for p in self.params.values())
        return (f"<Comparison {self.scenario.name}: {n} change(s), {self.prepared.n_paths} paths, "
                f"verdict {v['label']!r}>")

    # ------------------------------------------------------------------ numbers
    def deltas(self) -> dict[str, dict[str, Any]]:
        """Paired differences (candidate - current) per metric and statistic, with stderr and 95 % CI."""
        if "_deltas" not in self.extra:
            self.extra["_deltas"] = paired_deltas(self.current, self.candidate)
        return self.extra["_deltas"]

    def changes(self) -> list[dict[str, Any]]:
        rows = []
        for j, (pid, ad) in enumerate(zip(self.current.bound.ids, self.current.bound.adapters, strict=True)):
            cand = self.candidate.bound.adapters[j]
            for key in self.params.get(pid, {}):
                spec = ad.schema().spec(key)
                a, b = ad.params[key], cand.params[key]
                rows.append({"adapter": pid, "key": key, "unit": spec.unit, "current": a, "candidate": b,
                             "change": b - a})
        return rows

    def efficiency(self) -> dict[str, Any]:
        return efficiency(self.current.metrics(), self.candidate.metrics())

    def verdict(self) -> dict[str, Any]:
        nothing = not any(r["change"] for r in self.changes())
        return verdict(self.deltas(), self.efficiency(), self.prepared.n_paths, nothing_modelled=nothing)

    def to_json(self) -> dict[str, Any]:
        """Everything ``cascade compare`` reports, JSON-ready (what ``--json`` prints)."""
        cur_m, cand_m = self.current.metrics(), self.candidate.metrics()
        return {
            "kind": "comparison",
            "scenario": scenario_info(self.prepared, self.current.bound, self.current.engine,
                                      self.current.engine_reason),
            "changes": self.changes(),
            "current": {"params": _params(self.current), "metrics": cur_m,
                        "budget": budget_check(self.scenario, cur_m, self.prepared.n_paths)},
            "candidate": {"params": _params(self.candidate), "metrics": cand_m,
                          "budget": budget_check(self.scenario, cand_m, self.prepared.n_paths)},
            "deltas": self.deltas(),
            "exact_deltas": exact_deltas(cur_m, cand_m),
            "efficiency": self.efficiency(),
            "verdict": self.verdict(),
            "figures_data": figures_data({"current": self.current, "candidate": self.candidate}),
            "elapsed_s": round(self.elapsed_s, 3),
        }

    def summary(self):
        """One row per (metric, statistic): current, candidate, delta, its stderr and 95 % CI (DataFrame).

        Values are in the metric's ``unit``; deltas are paired (same paths).
        """
        import pandas as pd

        cur_m, cand_m, d = self.current.metrics(), self.candidate.metrics(), self.deltas()
        rows = []
        for spec in METRICS:
            if not spec.monte_carlo or spec.name not in d:  # metrics of venues the scenario has
                continue
            for key, _label in spec.statistics:
                dd = d[spec.name][key]
                rows.append({"metric": spec.name, "statistic": key, "unit": spec.unit,
                             "current": cur_m[spec.name][key], "candidate": cand_m[spec.name][key],
                             "delta": dd["delta"], "delta_stderr": dd["stderr"], "delta_ci95_low": dd["ci95"][0],
                             "delta_ci95_high": dd["ci95"][1], "significant": dd["significant"]})
        return pd.DataFrame(rows).set_index(["metric", "statistic"])

    # ------------------------------------------------------------------ figures
    def plot_bad_debt(self):
        """Per-path bad debt (USD), current vs candidate: a matplotlib Figure."""
        from .report import figures

        return figures.bad_debt_distribution(self.to_json()["figures_data"]["bad_debt_usd"])

    def plot_liquidation_map(self):
        """Collateral liquidatable vs price drop (USD), current vs candidate: a matplotlib Figure."""
        from .report import figures

        return figures.liquidation_map(self.to_json()["figures_data"]["liquidation_map"])

    def plot_price_fan(self):
        """Price fan of the main collateral asset with the cascade's extra drawdown: a matplotlib Figure."""
        from .report import figures

        return figures.price_fan(self.to_json()["figures_data"]["price_fan"])


def _params(res: SimulationResult) -> dict[str, dict[str, float]]:
    return {k: dict(v) for k, v in res.bound.params.items()}


def figures_data(results: Mapping[str, SimulationResult]) -> dict[str, Any]:
    """What the figures need, stored in the result JSON so ``cascade report`` redraws them without
    simulating: per-path bad debt, the liquidation maps, the price fan and per-path drawdowns."""
    first = next(iter(results.values()))
    prep = first.bound.prepared
    a = first.primary_asset()
    close = prep.paths.close[:, :, a]
    qs = (5, 25, 50, 75, 95)
    fan = np.percentile(close, qs, axis=0)
    hours = np.arange(prep.n_steps + 1) * prep.scenario.step_s / 3600.0
    out: dict[str, Any] = {
        "bad_debt_usd": {k: _round(r.per_path()["bad_debt_usd"]) for k, r in results.items()},
        "liquidation_map": {k: r.extra["liquidation_map"] for k, r in results.items() if "liquidation_map" in r.extra},
        "price_fan": {
            "asset": prep.market.assets[a], "hours": _round(hours), "quantiles": {str(q): _round(f) for q, f in
                                                                                zip(qs, fan, strict=True)},
            "initial_usd": float(close[0, 0]),
            "exogenous_drawdown": _round(1.0 - first.raw.exo_low_min[:, a]),
            "market_drawdown": {k: _round(1.0 - r.raw.market_low_min[:, a]) for k, r in results.items()},
        },
    }
    return out


def check_params(sc: Scenario, params: Params, field: str = "params") -> None:
    """Refuse a candidate that breaks a bound or invariant before anything is simulated."""
    from protocols import InvalidParameters

    from .engine.model import scenario_adapter
    from .errors import InputError

    names = list(sc.protocol_ids)  # overrides are keyed by protocol id (default: the adapter name)
    for pid, over in params.items():
        if pid not in names:
            raise InputError(f"no protocol '{pid}' in the scenario (has {', '.join(names)})", field=field)
        i = names.index(pid)
        try:
            scenario_adapter(sc, i).with_params({**sc.protocols[i].params, **over})
        except InvalidParameters as e:
            raise InputError(str(e), field=field) from None


def compare(scenario: str | Path | Scenario, params: Params, *, baseline: Params | None = None,
            paths: int | None = None, seed: int | None = None, engine: str = "auto", analyses: bool = True,
            progress: Callable[[str], None] | None = None, params_field: str = "params") -> Comparison:
    """Evaluate the current and a candidate parameter set on the same paths.

    Parameters
    ----------
    scenario
        A :class:`~optimizer.scenario.config.Scenario`, a scenario TOML file, or a bundled scenario's name.
    params
        The candidate: overrides ``{adapter: {key: value}}`` on top of the baseline, in the adapter's units
        (keys and units as ``cascade protocols`` lists them, e.g. ``WETH.ltv_bps`` in bps).
    baseline
        Overrides that define the *current* set (default: none, the scenario's own values).
    paths, seed
        Monte Carlo paths and seed (default: the scenario's). One seed drives both evaluations.
    engine
        ``auto`` (the fast kernel where it supports the scenario), ``kernel`` or ``reference``.
    analyses
        Also run the critical-drop search and the liquidation map for both sets (deterministic shocks).

    Returns
    -------
    Comparison
    """
    t0 = time.perf_counter()
    sc = load_scenario_arg(scenario)
    base = {k: dict(v) for k, v in (baseline or {}).items()}
    sc = sc.with_overrides(paths=paths, seed=seed, params=base or None)
    check_params(sc, params, params_field)
    if progress:
        progress("preparing paths")
    prepared = prepare(sc)
    from .checks import check_engine

    check_engine(prepared, None, engine)  # --engine kernel on a book it cannot run: one line, not a traceback
    if progress:
        progress("current parameters")
    cur = evaluate(prepared, {}, engine=engine, analyses=analyses)
    if progress:
        progress("candidate parameters")
    cand = evaluate(prepared, {k: dict(v) for k, v in params.items()}, engine=engine, analyses=analyses)
    return Comparison(sc, prepared, cur, cand, base, {k: dict(v) for k, v in params.items()},
                      time.perf_counter() - t0)


def describe_delta(d: Mapping[str, Any], fmt: str) -> str:
    """``+$12.3k [+$4.1k, +$20.5k]`` from a paired difference."""
    lo, hi = d["ci95"]
    return f"{format_delta(d['delta'], fmt)} [{format_delta(lo, fmt)}, {format_delta(hi, fmt)}]"


def headline(spec_name: str, m: Mapping[str, Any]) -> float | None:
    spec = metric(spec_name)
    return headline_value(spec, m.get(spec_name))


def finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
