"""Analysing one governance proposal: the use case behind ``cascade proposal`` and ``analyse_proposal()``.

Steps (each result lands in :class:`ProposalResult`, rendered by :mod:`optimizer.report`):

1. Read the proposal (:func:`~optimizer.proposals.spec.load_proposal`) and choose the stress: ``--scenario``,
   the file's ``scenario``, or the bundled default for its protocol and targets (``data/proposals/defaults.toml``).
2. Map every change onto the scenario's adapter (the snapshot in use): targets, units, conversion into
   the adapter's unit; ``before`` checked against the snapshot (a mismatch is reported and the proposal's
   ``before`` is the baseline); parameters the simulator does not exercise kept and marked.
3. Current (baseline) vs proposed on the same paths (:func:`optimizer.compare.compare`): paired deltas,
   verdict, what the change buys or costs in borrowing power.
4. Positions the change itself makes liquidatable at today's prices, and debt within 5 % of liquidation.
5. The optimiser's recommendation within the same step limits (a short search), evaluated on the same paths.
6. Stress replays (bundled historical windows), current vs proposed.
7. Sensitivity on common random numbers: each changed parameter alone, and the scenario's drivers
   (named shocks, volatility, liquidity).
8. The Smart LTV baseline beside the simulated answer; the model's assumptions and limitations.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from protocols import Prices

from ..compare import (
    Comparison,
    budget_check,
    compare,
    display_path,
    exact_deltas,
    figures_data,
    load_scenario_arg,
    paired_deltas,
    verdict,
)
from ..compare import efficiency as efficiency_of
from ..engine import evaluate, prepare
from ..engine.metrics import format_value, paired_difference
from ..errors import InputError
from ..scenario.config import Scenario
from .defaults import StressChoice, default_stress, replays_for
from .spec import ProposalSpec, ResolvedChange, baseline_and_proposed, load_proposal, resolve
from .vocabulary import NOT_MODELLED

NEAR_LIQUIDATION = 1.05  # "within 5 % of liquidation": health factor below this
TOP_ACCOUNTS = 5
SENSITIVITY_PATHS = 200


@dataclass
class ProposalResult:
    """A proposal analysed on one scenario. ``to_json()`` is what the report renders and ``--json`` prints.

    Attributes
    ----------
    spec : ProposalSpec
        The proposal as read.
    changes : list of ResolvedChange
        Each (change, target) mapped onto the adapter, with before/after in governance and adapter units.
    comparison : Comparison
        Baseline (the proposal's ``before``) vs proposed (``after``) on the same paths.
    """

    spec: ProposalSpec
    stress: StressChoice
    changes: list[ResolvedChange]
    comparison: Comparison
    immediate: dict[str, Any]
    recommendation: dict[str, Any]
    replays: list[dict[str, Any]]
    sensitivity: dict[str, Any]
    smart_ltv: dict[str, Any]
    touched: dict[int, bool]
    elapsed_s: float = 0.0
    rec_result: Any = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __repr__(self) -> str:
        return (f"<ProposalResult {self.spec.title[:50]!r} on {self.comparison.scenario.name}: "
                f"{self.verdict()['label']}>")

    # ------------------------------------------------------------------ numbers
    def verdict(self) -> dict[str, Any]:
        modelled = [c for c in self.changes if c.modelled and c.before_param != c.after_param]
        nothing = not modelled or not any(self.touched.get(i) for i, c in enumerate(self.changes) if c.modelled)
        nl = self.immediate["newly_liquidatable"]
        also = (f" and makes {nl['positions']:,} positions ({format_value(nl['debt_usd'], 'usd')} of debt) "
                "liquidatable the moment it executes" if nl["positions"] else "")
        return verdict(self.comparison.deltas(), self.comparison.efficiency(), self.comparison.prepared.n_paths,
                       nothing_modelled=nothing, candidate_name="the proposal", also=also)

    def summary(self):
        """Current vs proposed per metric and statistic with the paired delta, its stderr and CI (DataFrame)."""
        return self.comparison.summary().rename(columns={"candidate": "proposed"})

    def to_json(self) -> dict[str, Any]:
        c = self.comparison
        cur_m, prop_m = c.current.metrics(), c.candidate.metrics()
        sc = c.scenario
        out: dict[str, Any] = {
            "kind": "proposal",
            "proposal": {
                "title": self.spec.title, "protocol": self.spec.protocol, "adapter": self.spec.adapter,
                "market": self.spec.market, "date": self.spec.date, "link": self.spec.link,
                "author": self.spec.author, "summary": self.spec.summary, "source": dict(self.spec.source),
                "file": display_path(self.spec.file), "index": self.spec.index,
                "record": _jsonable(self.spec.record),
            },
            "snapshot_market": c.current.bound.adapters[self._j()].snapshot_meta,
            "stress": {"scenario": sc.name, "file": display_path(sc.file), "description": sc.description,
                       "chosen_by": self.stress.chosen_by, "why": self.stress.why},
            "specification": [self._spec_row(i, rc) for i, rc in enumerate(self.changes)],
            "json_diff": self.json_diff(),
            "scenario": _scenario_info(c),
            "current": {"params": {k: dict(v) for k, v in c.current.bound.params.items()}, "metrics": cur_m,
                        "budget": budget_check(sc, cur_m, c.prepared.n_paths)},
            "proposed": {"params": {k: dict(v) for k, v in c.candidate.bound.params.items()}, "metrics": prop_m,
                         "budget": budget_check(sc, prop_m, c.prepared.n_paths)},
            "deltas": c.deltas(),
            "exact_deltas": exact_deltas(cur_m, prop_m),
            "efficiency": c.efficiency(),
            "verdict": self.verdict(),
            "immediate": self.immediate,
            "recommendation": self.recommendation,
            "replays": self.replays,
            "sensitivity": self.sensitivity,
            "smart_ltv": self.smart_ltv,
            "assumptions": assumptions(self),
            "figures_data": figures_data({"current": c.current, "proposed": c.candidate,
                                          **({"recommended": self.rec_result} if self.rec_result is not None else {})}),
            "elapsed_s": round(self.elapsed_s, 3),
        }
        return out

    def _j(self) -> int:
        return [p.adapter for p in self.comparison.scenario.protocols].index(self.spec.adapter)

    def _spec_row(self, i: int, rc: ResolvedChange) -> dict[str, Any]:
        d = rc.after - rc.before
        return {
            "target": rc.label, "parameter": rc.change.parameter, "unit": rc.change.unit, "before": rc.before,
            "after": rc.after, "change": d, "change_pct": (d / rc.before * 100.0) if rc.before else None,
            "key": rc.key, "before_param": rc.before_param, "after_param": rc.after_param,
            "snapshot": rc.current_governance, "snapshot_param": rc.current_param, "mismatch": rc.mismatch,
            "modelled": rc.modelled, "status": "modelled" if rc.modelled else NOT_MODELLED,
            "touches_book": bool(self.touched.get(i)), "notes": list(rc.notes), "change_index": rc.change.index,
        }

    def json_diff(self) -> dict[str, Any]:
        """The raw diff, as Aave's diff reports show it: ``{section: {target: {parameter: {from, to}}}}``."""
        from .vocabulary import VOCABULARY

        venue = VOCABULARY.get(self.spec.adapter)
        section = venue.diff_section if venue is not None else "assets"
        out: dict[str, Any] = {}
        for rc in self.changes:
            sec = "market" if not rc.target else "eModes" if rc.target.startswith("emode") else section
            tgt = rc.target or self.spec.market or "market"
            name = rc.key.split(".", 1)[-1] if rc.key else rc.term.name
            out.setdefault(sec, {}).setdefault(tgt, {})[name] = {
                "from": rc.before_param if rc.before_param is not None else rc.before,
                "to": rc.after_param if rc.after_param is not None else rc.after}
        return out

    # ------------------------------------------------------------------ figures
    def plot_bad_debt(self):
        """Bad debt per path (USD), current vs proposed (vs recommended): a matplotlib Figure."""
        from ..report import figures

        return figures.bad_debt_distribution(self.to_json()["figures_data"]["bad_debt_usd"])

    def plot_liquidation_map(self):
        """Collateral liquidatable vs price drop (USD): a matplotlib Figure."""
        from ..report import figures

        return figures.liquidation_map(self.to_json()["figures_data"]["liquidation_map"])

    def plot_price_fan(self):
        """Price fan of the main collateral with the cascade's drawdown: a matplotlib Figure."""
        from ..report import figures

        return figures.price_fan(self.to_json()["figures_data"]["price_fan"])

    def plot_sensitivity(self):
        """One-at-a-time sensitivity of mean bad debt: a matplotlib Figure."""
        from ..report import figures

        return figures.sensitivity(sensitivity_rows(self.sensitivity))


def _g(x: float) -> str:
    return f"{x:,.0f}" if float(x).is_integer() else f"{x:.6g}"


def _jsonable(x: Any) -> Any:
    import datetime as dt

    if isinstance(x, Mapping):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (dt.date, dt.datetime)):
        return x.isoformat()
    return x


def _scenario_info(c: Comparison) -> dict[str, Any]:
    from ..compare import scenario_info

    return scenario_info(c.prepared, c.current.bound, c.current.engine, c.current.engine_reason)


def sensitivity_rows(sens: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Bars for the sensitivity figure: each lever's change of mean bad debt with its CI."""
    rows = [{"label": p["label"], **p["delta_mean_bad_debt_usd"]} for p in sens.get("parameters", []) if "error" not in p]
    rows += [{"label": f"scenario {s['label']}", **s["driver_delta_mean_bad_debt_usd"]} for s in sens.get("drivers", [])]
    return rows


# ------------------------------------------------------------------------------------------------
# Pieces
# ------------------------------------------------------------------------------------------------


def choose_stress(spec: ProposalSpec, scenario: str | Path | Scenario | None) -> StressChoice:
    targets = {t for ch in spec.changes for t in ch.targets}
    if scenario is not None:
        name = scenario.name if isinstance(scenario, Scenario) else str(scenario)
        return StressChoice(name, replays_for(spec.adapter), "", "--scenario")
    if spec.scenario:
        return StressChoice(spec.scenario, replays_for(spec.adapter), "", "the proposal file")
    return default_stress(spec.adapter, targets)


def touches(rc: ResolvedChange, bound, j: int) -> bool:
    """Whether the scenario's book holds a position the change can act on."""
    if not rc.target:
        return True
    book = bound.books[j].book
    if rc.target.startswith("emode") and rc.target[5:].isdigit():
        return bool((book.category == int(rc.target[5:])).any())
    held = {a for i, a in enumerate(book.collateral_assets) if book.collateral_tokens[:, i].sum() > 0}
    held |= {a for i, a in enumerate(book.debt_assets) if book.debt_tokens[:, i].sum() > 0}
    return rc.target in held


def immediate_liquidations(c: Comparison, j: int) -> dict[str, Any]:
    """Positions of today's book (the baseline's) that the proposed parameters make liquidatable at t0
    prices, and debt within 5 % of liquidation (health < 1.05) before and after."""
    bound = c.current.bound
    pb = bound.books[j]
    book = pb.book
    close0 = c.prepared.paths.close[0, 0]
    prices = Prices(close0[bound.coll_market[j]], close0[bound.debt_market[j]])
    h0 = bound.adapters[j].health(book, prices)
    h1 = c.candidate.bound.adapters[j].health(book, prices)
    coll = book.collateral_tokens * prices.collateral_usd
    debt = (book.debt_tokens * prices.debt_usd).sum(1)
    coll_total = coll.sum(1)
    new = (h1 < 1.0) & (h0 >= 1.0)
    order = np.argsort(-debt[new], kind="stable")[:TOP_ACCOUNTS]
    idx = np.flatnonzero(new)[order]
    accounts = [{"account": str(pb.accounts[i]), "collateral": book.collateral_assets[int(np.argmax(coll[i]))],
                 "collateral_usd": float(coll_total[i]), "debt_usd": float(debt[i]),
                 "health_before": float(h0[i]), "health_after": float(h1[i])} for i in idx]

    def near(h):
        m = (h >= 1.0) & (h < NEAR_LIQUIDATION)
        return {"positions": int(m.sum()), "debt_usd": float(debt[m].sum()), "collateral_usd": float(coll_total[m].sum())}

    return {
        "book": "the baseline's book at t0 prices (the positions as they stand before the change)",
        "positions": int(book.n_positions), "liquidatable_before": int((h0 < 1.0).sum()),
        "newly_liquidatable": {"positions": int(new.sum()), "debt_usd": float(debt[new].sum()),
                               "collateral_usd": float(coll_total[new].sum()), "largest": accounts},
        "near_threshold": NEAR_LIQUIDATION,
        "near_before": near(h0), "near_after": near(h1),
    }


def _rescale(model: Mapping[str, Any], liq: Mapping[str, Any] | None, what: str):
    m, lq = dict(model), (dict(liq) if liq else None)
    if what == "no_shocks":
        m.pop("shocks", None)
    elif what == "vol":
        for k in ("sigma_annual",):
            if k in m:
                m[k] = float(m[k]) * 1.5
    elif what == "liquidity" and lq:
        for k in ("daily_volume_usd", "reserve_usd", "depth_usd_2pct"):
            if k in lq:
                lq[k] = float(lq[k]) * 0.5
    return MappingProxyType(m), (MappingProxyType(lq) if lq is not None else None)


DRIVERS = (
    ("no_shocks", "without the scheduled shocks", lambda sc: any(cfg.model.get("shocks") for cfg in sc.assets.values())),
    ("vol", "volatility x 1.5", lambda sc: any("sigma_annual" in cfg.model for cfg in sc.assets.values())),
    ("liquidity", "market depth / 2", lambda sc: any(cfg.liquidity for cfg in sc.assets.values())),
)


def _variant(sc: Scenario, what: str) -> Scenario:
    assets = {}
    for name, cfg in sc.assets.items():
        model, liq = _rescale(cfg.model, cfg.liquidity, what)
        assets[name] = replace(cfg, model=model, liquidity=liq)
    return replace(sc, assets=MappingProxyType(assets))


def sensitivity(c: Comparison, adapter: str, changes: list[ResolvedChange], base: Mapping[str, float],
                prop: Mapping[str, float], *, paths: int, engine: str,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One-at-a-time sensitivity on common random numbers.

    ``parameters``: each changed (modelled) parameter moved alone from its baseline to its proposed value.
    ``drivers``: the scenario with one driver changed (no named shocks, volatility x 1.5, market depth / 2),
    with the change of the baseline's mean bad debt it causes and the proposal's effect under it.
    """
    sc = c.scenario
    n = min(paths, c.prepared.n_paths)
    prep = c.prepared if n == c.prepared.n_paths else prepare(sc.with_overrides(paths=n))
    res0 = c.current if prep is c.prepared else evaluate(prep, {}, engine=engine)
    resp = c.candidate if prep is c.prepared else evaluate(prep, {adapter: dict(prop)}, engine=engine)
    bd0 = res0.per_path()["bad_debt_usd"]
    out: dict[str, Any] = {"paths": n, "method": "one at a time on common random numbers (same seed, same paths)",
                           "parameters": [], "drivers": []}
    keys = [k for k in dict.fromkeys(rc.key for rc in changes if rc.modelled and rc.key) if base[k] != prop[k]]
    for k in keys:
        if progress:
            progress(f"sensitivity: {k}")
        try:
            r = evaluate(prep, {adapter: {k: prop[k]}}, engine=engine)
        except InputError as e:  # alone it may break an invariant the whole change keeps
            out["parameters"].append({"key": k, "label": f"{k} alone", "error": str(e).split(": ", 2)[-1]})
            continue
        bd = r.per_path()["bad_debt_usd"]
        out["parameters"].append({"key": k, "label": f"{k} {_g(base[k])} -> {_g(prop[k])}",
                                  "delta_mean_bad_debt_usd": paired_difference(bd0, bd, "mean"),
                                  "delta_es99_bad_debt_usd": paired_difference(bd0, bd, "es_99")})
    out["parameters"] = [p for p in out["parameters"] if "error" not in p] + \
                        [p for p in out["parameters"] if "error" in p]
    bdp = resp.per_path()["bad_debt_usd"]
    for what, label, applies in DRIVERS:
        if not applies(sc):
            continue
        if progress:
            progress(f"sensitivity: {label}")
        vprep = prepare(_variant(sc, what).with_overrides(paths=n))
        v0 = evaluate(vprep, {}, engine=engine).per_path()["bad_debt_usd"]
        v1 = evaluate(vprep, {adapter: dict(prop)}, engine=engine).per_path()["bad_debt_usd"]
        out["drivers"].append({
            "driver": what, "label": label,
            "baseline_mean_bad_debt_usd": float(v0.mean()), "proposed_mean_bad_debt_usd": float(v1.mean()),
            "driver_delta_mean_bad_debt_usd": paired_difference(bd0, v0, "mean"),
            "proposal_delta_under_driver": paired_difference(v0, v1, "mean"),
        })
    out["reference"] = {"baseline_mean_bad_debt_usd": float(bd0.mean()), "proposed_mean_bad_debt_usd": float(bdp.mean()),
                        "proposal_delta": paired_difference(bd0, bdp, "mean")}
    return out


def replays(spec: ProposalSpec, names: tuple[str, ...], changes: list[ResolvedChange], engine: str,
            progress: Callable[[str], None] | None = None,
            loaded: list[Scenario] | None = None) -> list[dict[str, Any]]:
    """The bundled historical replays, current vs proposed (deterministic: one path each)."""
    out = []
    for name in names:
        if progress:
            progress(f"replay {name}")
        sc = load_scenario_arg(name)
        if loaded is not None:
            loaded.append(sc)
        entry: dict[str, Any] = {"scenario": sc.name, "file": display_path(sc.file), "description": sc.description}
        adapters = [p.adapter for p in sc.protocols]
        if spec.adapter not in adapters:
            out.append({**entry, "status": f"no {spec.adapter} protocol in this replay"})
            continue
        j = adapters.index(spec.adapter)
        from ..engine.model import scenario_adapter

        ad = scenario_adapter(sc, j)
        ad = ad.with_params(dict(sc.protocols[j].params)) if sc.protocols[j].params else ad
        base = {rc.key: rc.before_param for rc in changes if rc.key}
        prop = {rc.key: rc.after_param for rc in changes if rc.key}
        try:
            ad.with_params(base).with_params(prop)
        except Exception as e:
            out.append({**entry, "status": f"the change does not apply to this replay's parameters: {e}"})
            continue
        pid = sc.protocols[j].id
        c = compare(sc, {pid: prop}, baseline={pid: base}, engine=engine, analyses=False)
        cm, pm = c.current.metrics(), c.candidate.metrics()
        touched = any(touches(rc, c.current.bound, j) for rc in changes if rc.modelled)
        row = {**entry, "status": "ok", "paths": c.prepared.n_paths, "touches_book": touched,
               "window": _window(c), "book": _book_line(c, j)}
        for side, m in (("current", cm), ("proposed", pm)):
            row[side] = {k: m[k]["mean"] for k in ("bad_debt_usd", "liquidated_usd", "liquidations")}
        row["delta"] = {k: row["proposed"][k] - row["current"][k] for k in row["current"]}
        if not touched:
            row["note"] = "the replay's book holds no position the change acts on: identical by construction"
        out.append(row)
    return out


def _window(c: Comparison) -> str | None:
    ts = c.prepared.paths.timestamps
    if ts is None:
        return None
    return f"{str(ts[0])[:16].replace('T', ' ')} - {str(ts[-1])[:16].replace('T', ' ')} UTC"


def _book_line(c: Comparison, j: int) -> str:
    book = c.current.bound.books[j].book
    return (f"{book.n_positions:,} positions, collateral {', '.join(book.collateral_assets)}; "
            f"debt {', '.join(book.debt_assets)}")


def smart_ltv(c: Comparison, changed_targets: set[str]) -> dict[str, Any]:
    """The closed-form Smart LTV beside the simulated answer, for the book's collaterals."""
    from ..search import smart_ltv_table

    sc = c.scenario
    try:
        table = smart_ltv_table(c.candidate.bound, c.current.bound, c=sc.optimize.smart_ltv_c,
                                horizon_h=sc.optimize.smart_ltv_horizon_h)
    except Exception as e:  # the baseline is a side note: never fail the report on it
        return {"error": f"not available: {str(e).splitlines()[0][:200]}", "collaterals": []}
    for row in table["collaterals"]:
        row["changed"] = row["asset"] in changed_targets
    emodes = sorted({t for t in changed_targets if t.startswith("emode")})
    if emodes:
        table["note"] = (f"the change is to {', '.join(emodes)}: Smart LTV here uses each reserve's own LTV "
                         "and bonus and a stable debt asset; eMode accounts borrow under the category's "
                         "LTV against a correlated debt asset, which this formula does not describe")
    return table


def assumptions(r: ProposalResult) -> list[str]:
    """Plain statements of what the model assumes and leaves out, from the scenario actually used."""
    c = r.comparison
    sc = c.scenario
    info = _scenario_info(c)
    out = []
    for b in info["books"]:
        mode = {"ltv_utilisation": "users borrow a drawn share of what the parameters allow, so an LTV change "
                                   "changes the book's debt (users re-lever to the new limit)",
                "health": "each account's health factor is drawn at the baseline parameters and its debt then "
                          "fixed (today's book): LTV changes move borrowing power only",
                "csv": "positions read from a CSV file"}[b["debt_mode"]]
        kind = "synthetic (drawn from distributions, not real accounts)" if b["kind"] == "synthetic" else "explicit"
        out.append(f"Book ({b['adapter']}): {kind}, {b['positions']:,} positions; {mode}.")
    liq = []
    for a, d in info["assets"].items():
        lq = d.get("liquidity")
        if lq:
            liq.append(f"{a} {lq.get('model')}")
    out.append("Liquidity: seized collateral is sold into one pool per asset with price impact and recovery ("
               + (", ".join(liq) if liq else "no liquidity model: infinitely deep") + "); liquidators act within "
               f"the step, at most {sc.liquidators.max_calls_per_step:,} calls per step, when the bonus covers "
               "slippage and gas.")
    models = ", ".join(f"{a} {d['model']}" for a, d in info["assets"].items())
    out.append(f"Prices: {models}; liquidations are checked at each bar's low; {info['paths']} paths over "
               f"{info['horizon_h']:g} h in {sc.step_s / 60:g}-minute steps, seed {sc.seed}.")
    nm = sorted({f"{rc.label} {rc.change.parameter}" for rc in r.changes if not rc.modelled})
    if nm:
        out.append(f"Not modelled ({NOT_MODELLED}): {', '.join(nm)}.")
    out.append("Not in the model: interest accrual and stability fees over the horizon, users adding collateral "
               "or repaying during the stress, caps limiting new borrowing, oracle failures, and governance "
               "reacting within the horizon.")
    if any(rc.mismatch for rc in r.changes):
        out.append("Some `before` values differ from the snapshot in use: the analysis takes the proposal's "
                   "`before` as the baseline (see the specification).")
    if any(not r.touched.get(i) for i, rc in enumerate(r.changes) if rc.modelled):
        out.append("Some changes act on assets or eMode categories the scenario's book does not hold; they "
                   "cannot change the simulated risk on this scenario.")
    return out


# ------------------------------------------------------------------------------------------------
# The use case
# ------------------------------------------------------------------------------------------------


def analyse_proposal(proposal: str | Path | ProposalSpec, scenario: str | Path | Scenario | None = None, *,
                     index: int | None = None, title: str | None = None, paths: int | None = None,
                     seed: int | None = None, engine: str = "auto", recommend_trials: int = 24,
                     recommend_paths: int | None = None, sensitivity_paths: int | None = SENSITIVITY_PATHS,
                     replays_on: bool = True, sensitivity_on: bool = True, extra_replays: tuple[str, ...] = (),
                     progress: Callable[[str], None] | None = None) -> ProposalResult:
    """Analyse a governance proposal on a stress scenario.

    Parameters
    ----------
    proposal
        A proposal file (TOML or JSON, see ``docs/proposal_format.md``) or a parsed :class:`ProposalSpec`.
    scenario
        A scenario (object, TOML file or bundled name). Default: the proposal file's ``scenario``, else the
        bundled default stress for its protocol and targets.
    index, title
        With a file of several records: which one (0-based index, or a unique part of the title).
    paths, seed
        Monte Carlo paths and seed of the main comparison (default: the scenario's).
    engine
        ``auto``, ``kernel`` or ``reference``.
    recommend_trials
        Trials of the short search for the optimiser's recommendation (0 skips it).
    recommend_paths
        Paths per trial of that search (default: min(paths, 200)).
    sensitivity_paths
        Paths of the one-at-a-time sensitivity runs (default 200, at most ``paths``).
    replays_on, sensitivity_on
        Run the historical replays / the sensitivity.
    extra_replays
        More replay scenarios (names or files) beside the bundled ones.

    Returns
    -------
    ProposalResult
    """
    t0 = time.perf_counter()
    spec = proposal if isinstance(proposal, ProposalSpec) else load_proposal(proposal, index=index, title=title)
    stress = choose_stress(spec, scenario)
    sc = load_scenario_arg(scenario if scenario is not None else stress.scenario)
    adapters = [p.adapter for p in sc.protocols]
    if spec.adapter not in adapters:
        raise InputError(f"scenario '{sc.name}' has no {spec.adapter} protocol (has {', '.join(adapters)}); the "
                         f"proposal is for {spec.protocol}", file=display_path(sc.file), field="--scenario")
    j = adapters.index(spec.adapter)
    from ..engine.model import scenario_adapter
    from ..snapshots import read_json, snapshot_path

    pc = sc.protocols[j]
    adapter = scenario_adapter(sc, j)
    adapter = adapter.with_params(dict(pc.params)) if pc.params else adapter
    snapshot = read_json(pc.snapshot or snapshot_path(spec.adapter))
    changes = resolve(spec, adapter, snapshot)
    base, prop = baseline_and_proposed(spec, changes, adapter)
    if progress:
        progress(f"comparing on {sc.name}")
    pid = pc.id  # overrides are keyed by the scenario's protocol id
    cmp = compare(sc, {pid: prop}, baseline={pid: base}, paths=paths, seed=seed, engine=engine,
                  analyses=True)
    touched = {i: touches(rc, cmp.current.bound, j) for i, rc in enumerate(changes)}
    immediate = immediate_liquidations(cmp, j)

    rec: dict[str, Any] = {"status": "skipped", "reason": "--recommend-trials 0"}
    rec_res = None
    free = [k for k in dict.fromkeys(rc.key for rc in changes if rc.modelled and rc.key)]
    if recommend_trials > 0 and free:
        if progress:
            progress(f"recommendation: {recommend_trials} trials")
        from .recommend import recommend

        n_rec = min(recommend_paths or SENSITIVITY_PATHS, cmp.prepared.n_paths)
        rec = recommend(cmp.scenario, spec.adapter, base, free, trials=recommend_trials, paths=n_rec, engine=engine)
        if rec.get("params"):
            rec_res = evaluate(cmp.prepared, {pid: rec["params"]}, engine=engine, analyses=True)
            rm = rec_res.metrics()
            rec["metrics"] = rm
            rec["budget"] = budget_check(cmp.scenario, rm, cmp.prepared.n_paths)
            rec["deltas"] = paired_deltas(cmp.current, rec_res)
            rec["exact_deltas"] = exact_deltas(cmp.current.metrics(), rm)
            rec["efficiency"] = efficiency_of(cmp.current.metrics(), rm)
        lim = {d["name"].split(":", 1)[-1]: d for d in rec.get("space", [])}
        rec["proposal_within_limits"] = [
            {"key": k, "after": prop[k], "low": lim[k]["low"], "high": lim[k]["high"],
             "steward_limit": lim[k]["steward_limit"], "within": lim[k]["low"] - 1e-9 <= prop[k] <= lim[k]["high"] + 1e-9}
            for k in free if k in lim]
    elif not free:
        rec = {"status": "skipped", "reason": "the proposal changes no parameter the simulator exercises"}

    rep_names = tuple(dict.fromkeys((*stress.replays, *extra_replays))) if replays_on else ()
    rep_scen: list[Scenario] = []
    reps = replays(spec, rep_names, changes, engine, progress, rep_scen) if rep_names else []
    sens: dict[str, Any] = {"skipped": "--no-sensitivity"}
    if sensitivity_on:
        sens = sensitivity(cmp, pid, changes, base, prop, paths=sensitivity_paths or cmp.prepared.n_paths,
                           engine=engine, progress=progress)
    sl = smart_ltv(cmp, {rc.target for rc in changes})
    result = ProposalResult(spec, stress, changes, cmp, immediate, rec, reps, sens, sl, touched,
                            rec_result=rec_res)
    result.extra["replay_scenarios"] = rep_scen
    result.elapsed_s = time.perf_counter() - t0
    return result
