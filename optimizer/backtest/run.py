"""Run a historical replay and compare its liquidations with a record of real ones.

:func:`run_backtest` evaluates the scenario ``replicas`` times (seeds ``seed, seed + 1, ...``: the
synthetic book is redrawn, the replayed prices and gas are the same), turns each run's liquidation
events into :class:`~optimizer.backtest.events.Events` and compares them with the actual events
(:func:`optimizer.backtest.compare.compare`) on one grid: the replay's window, in bins of
``bin_s``. Simulated numbers are the mean over the replicas with its standard error (the Monte Carlo
error of a synthetic book; ``None`` with one replica). A scenario whose books are all real (CSV)
runs once: the replay is deterministic and has no Monte Carlo error.

Conventions:

- a simulated event's time is the **start** of the bar it happened in (step ``t`` covers
  ``timestamps[t] − step`` to ``timestamps[t]``), so it lands in the bin of that bar; the events of
  an auction venue carry their bite step;
- collateral seized and debt repaid per bin and in total come from the events; **total bad debt**
  comes from the ledger (written off during the horizon + open underwater debt + the horizon
  exposure, :attr:`optimizer.engine.ledger.Ledger.bad_debt_usd`), since a record's bad debt is the
  protocol's loss, whenever it was booked; per-bin bad debt is the events' (booked when the event
  closed);
- actual rows of other protocols are ignored (a row matches a scenario protocol by its id or
  adapter name), rows outside the window are counted and reported, not compared.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from .compare import METRICS, Comparison, _iso, compare, relative_error
from .config import BacktestConfig, backtest_config
from .events import Events, read_events

CORE_REPORTED = ("liquidations", "collateral_seized_usd", "debt_repaid_usd", "realised_bad_debt_usd",
                 "unrealised_bad_debt_usd", "horizon_exposure_usd", "initial_debt_usd", "inventory_usd",
                 "liquidator_bonus_usd", "protocol_fee_usd", "returned_to_owner_usd", "debt_removed_usd")


@dataclass
class BacktestResult:
    """Per-replica comparisons and what the report needs."""

    scenario: Any
    config: BacktestConfig
    actual_file: Path
    actual: Events
    comparisons: list[Comparison]
    bad_debt_usd: np.ndarray  # (replicas,) ledger bad debt of the venues compared
    venue: dict[str, np.ndarray]  # ledger venue field -> (replicas,) totals
    engine: str
    window_s: tuple[int, int]
    actual_outside: int
    elapsed_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def replicas(self) -> int:
        return len(self.comparisons)

    def mean_comparison(self) -> Comparison:
        """A :class:`Comparison` whose simulated bins are the replicas' means (for the figure)."""
        c0 = self.comparisons[0]
        sim = {m: np.mean([c.simulated[m] for c in self.comparisons], axis=0) for m in METRICS}
        waves = {k: _mean_time([c.simulated_waves[k] for c in self.comparisons])
                 for k in ("first_wave_s", "largest_wave_s")}
        return Comparison(c0.bin_s, c0.bin_start_s, sim, c0.actual, c0.protocol, waves, c0.actual_waves)

    def to_json(self) -> dict[str, Any]:
        cfg = self.config
        c0 = self.comparisons[0]
        totals: dict[str, Any] = {}
        for m in METRICS:
            sims = (self.bad_debt_usd if m == "bad_debt_usd"
                    else np.array([float(c.simulated[m].sum()) for c in self.comparisons]))
            a = float(c0.actual[m].sum())
            mean, se = _mean_se(sims)
            rel = relative_error(mean, a)
            totals[m] = {"simulated": mean, "simulated_stderr": se, "actual": a,
                         "relative_error": rel if np.isfinite(rel) else None,
                         "relative_error_stderr": None if se is None or a == 0 else se / abs(a),
                         "documented": m in cfg.documented}
        timing: dict[str, Any] = {}
        for key in ("first_wave", "largest_wave"):
            a = c0.actual_waves[f"{key}_s"]
            sims = [c.simulated_waves[f"{key}_s"] for c in self.comparisons]
            shifts = np.array([s - a for s in sims if s is not None and a is not None], float)
            mean, se = _mean_se(shifts) if shifts.size else (None, None)
            timing[key] = {"simulated": _iso(_mean_time(sims)), "actual": _iso(a),
                           "shift_s": mean, "shift_stderr_s": se,
                           "relative_error": None if mean is None else mean / c0.window_s,
                           "documented": "timing" in cfg.documented}
        per_bin = []
        for i, t in enumerate(c0.bin_start_s):
            row: dict[str, Any] = {"bin_start": _iso(int(t))}
            for m in METRICS:
                v = np.array([c.simulated[m][i] for c in self.comparisons])
                mean, se = _mean_se(v)
                row[f"{m}_simulated"] = mean
                row[f"{m}_simulated_stderr"] = se
                row[f"{m}_actual"] = float(c0.actual[m][i])
            per_bin.append(row)
        venue = {}
        for name, v in self.venue.items():
            mean, se = _mean_se(v)
            venue[name] = {"mean": mean, "stderr": se}
        sc = self.scenario
        from ..compare import display_path

        return {
            "kind": "backtest",
            "scenario": {"name": sc.name, "description": sc.description, "file": display_path(sc.file),
                         "protocols": [{"id": p.id, "adapter": p.adapter} for p in sc.protocols],
                         "seed": sc.seed},
            "actual": {"file": display_path(self.actual_file), "rows": int(self.actual.n),
                       "rows_outside_window": int(self.actual_outside), "documented": list(cfg.documented),
                       "note": cfg.note, "reference": dict(cfg.reference)},
            "window": {"start": _iso(self.window_s[0]), "end": _iso(self.window_s[1]), "bin_s": c0.bin_s},
            "replicas": self.replicas,
            "synthetic_book": any(p.book.kind == "synthetic" for p in sc.protocols),
            "engine": self.engine,
            "totals": totals,
            "timing": timing,
            "per_bin": per_bin,
            "venue": venue,
        }


def _mean_se(v: np.ndarray) -> tuple[float, float | None]:
    v = np.asarray(v, float)
    mean = float(v.mean())
    se = float(v.std(ddof=1) / np.sqrt(v.size)) if v.size > 1 else None
    return mean, se


def _mean_time(ts: list[int | None]) -> int | None:
    got = [t for t in ts if t is not None]
    return int(round(float(np.mean(got)))) if got else None


def simulated_events(res: Any) -> Events:
    """A :class:`SimulationResult`'s liquidation events as :class:`Events` (bar-start times, USD)."""
    frame = res.events()
    ts = res.bound.prepared.paths.timestamps
    if ts is None:
        raise InputError("a backtest needs a replay (an asset with model = \"replay\"): the scenario's paths "
                         "have no timestamps", file=res.scenario.file, field="assets")
    step_s = int(res.scenario.step_s)
    if len(frame) == 0:
        return Events.from_columns(timestamp_s=np.zeros(0, np.int64), protocol=np.zeros(0, str),
                                   account=np.zeros(0, str), collateral_asset=np.zeros(0, str),
                                   collateral_seized_tokens=np.zeros(0), debt_asset=np.zeros(0, str),
                                   debt_repaid_tokens=np.zeros(0), collateral_price_usd=np.zeros(0))
    step = frame["step"].to_numpy(np.int64)
    t = ts.astype("datetime64[s]").astype(np.int64)[step] - step_s
    price = frame["price"].to_numpy(float)
    seized = frame["collateral_seized_usd"].to_numpy(float)
    safe = np.where(price > 0, price, 1.0)
    return Events.from_columns(
        timestamp_s=t, protocol=frame["protocol"].astype(str).to_numpy(), account=frame["account"].astype(str).to_numpy(),
        collateral_asset=frame["collateral_asset"].astype(str).to_numpy(), collateral_seized_tokens=seized / safe,
        debt_asset="USD", debt_repaid_tokens=frame["debt_repaid_usd"].to_numpy(float), collateral_price_usd=safe,
        debt_price_usd=1.0, bad_debt_usd=frame["bad_debt_usd"].to_numpy(float))


def _match_actual(actual: Events, scenario: Any) -> Events:
    """Actual rows of the scenario's protocols, relabelled to the protocol ids."""
    label = np.array(actual.protocol, dtype=object)
    keep = np.zeros(actual.n, bool)
    for p in scenario.protocols:
        m = (actual.protocol == p.id) | (actual.protocol == p.adapter)
        label[m] = p.id
        keep |= m
    ev = Events(*(getattr(actual, f) for f in actual.__dataclass_fields__))
    object.__setattr__(ev, "protocol", label.astype(str))
    return ev.select(keep)


def run_backtest(scenario: Any, actual_path: str | Path | None = None, *, replicas: int | None = None,
                 engine: str = "auto", progress=None) -> BacktestResult:
    """Replay ``scenario`` (validated, from :func:`~optimizer.scenario.config.load_scenario`) and compare it
    with the actual events of ``actual_path`` (default: the scenario's ``[backtest] actual``)."""
    from ..engine import evaluate, prepare

    t0 = time.perf_counter()
    cfg = backtest_config(scenario)
    if actual_path is not None:
        path, label, fld = Path(actual_path), str(actual_path), "--actual"
    elif cfg.actual is not None:
        path, label, fld = cfg.actual, str(cfg.actual), None
    else:
        raise InputError("no record to compare with: give --actual EVENTS.csv or [backtest] actual = \"...\" in "
                         "the scenario", field="--actual")
    actual_all = read_events(path, label=label, field=fld)
    actual = _match_actual(actual_all, scenario)
    if actual.n == 0:
        ids = ", ".join(sorted({*scenario.protocol_ids, *(p.adapter for p in scenario.protocols)}))
        raise InputError(f"no row's protocol is one of the scenario's ({ids})", file=label, field="protocol")
    n_rep = cfg.replicas if replicas is None else int(replicas)
    synthetic = any(p.book.kind == "synthetic" for p in scenario.protocols)
    if not synthetic:  # real (CSV) books: every replica would be the same run
        n_rep = 1
    comps, bad, venue_fields = [], [], {}
    used = engine
    window = None
    outside = 0
    for r in range(n_rep):
        sc_r = scenario.with_overrides(seed=scenario.seed + r)
        prepared = prepare(sc_r)
        res = evaluate(prepared, None, engine=engine, analyses=False, events=True)
        used = res.engine
        sim = simulated_events(res)
        if window is None:
            ts = prepared.paths.timestamps.astype("datetime64[s]").astype(np.int64)
            start = int(ts[0]) // cfg.bin_s * cfg.bin_s
            end = -(-int(ts[-1]) // cfg.bin_s) * cfg.bin_s
            window = (start, end)
            outside = int(((actual.timestamp_s < start) | (actual.timestamp_s >= end)).sum())
        comps.append(compare(sim, actual, bin_s=cfg.bin_s, start_s=window[0], end_s=window[1]))
        led = res.raw
        bad.append(float(led.bad_debt_usd.sum()))
        for f in led.fields:
            if f.axis == "venue":
                venue_fields.setdefault(f.name, []).append(float(led[f.name].sum()))
        if progress is not None:
            progress(r + 1, n_rep)
    assert window is not None
    return BacktestResult(scenario, cfg, path, actual, comps, np.array(bad),
                          {k: np.array(v) for k, v in venue_fields.items()}, used, window, outside,
                          time.perf_counter() - t0)
