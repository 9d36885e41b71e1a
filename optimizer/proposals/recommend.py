"""The optimiser's recommendation within the same step limits: a short search beside a proposal.

One small function, :func:`recommend`, calls the search API (``optimizer.search.optimize``) on the
proposal's scenario with the proposal's baseline as the current values and the proposal's modelled
parameters free, inside the scenario's steward step limits (``[optimize]``, or the search defaults).
The study lives in a temporary journal and is discarded; only its answer is kept. Keep it
affordable: ``trials`` and ``paths`` are options (``cascade proposal --recommend-trials/--recommend-paths``).

The search reads a scenario *file*, so the scenario is written to a temporary TOML (its input files
referenced by absolute path) with the baseline values and the ``[optimize]`` table for this search.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import tempfile
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..scenario.config import Scenario


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        r = repr(v)
        return r if any(c in r for c in ".eE") else r + ".0"
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (_dt.datetime, _dt.date, _dt.time)):
        return v.isoformat()
    if isinstance(v, Mapping):
        return "{ " + ", ".join(f"{json.dumps(str(k), ensure_ascii=False)} = {_toml_value(x)}"
                                for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def dumps_toml(data: Mapping[str, Any]) -> str:
    """A parsed TOML document written back (every top-level key as one inline value; round-trips)."""
    return "".join(f"{json.dumps(str(k), ensure_ascii=False)} = {_toml_value(v)}\n" for k, v in data.items())


def _absolute_paths(node: Any, sc: Scenario) -> Any:
    """Strings that name an existing input file (relative to the scenario or the bundled data) made absolute."""
    if isinstance(node, str):
        if node.endswith((".csv", ".json", ".toml")):
            try:
                return str(sc.resolve(node, "recommend"))
            except InputError:
                return node
        return node
    if isinstance(node, Mapping):
        return {k: _absolute_paths(v, sc) for k, v in node.items()}
    if isinstance(node, list):
        return [_absolute_paths(v, sc) for v in node]
    return node


def search_scenario(sc: Scenario, adapter: str, baseline: Mapping[str, float], free: list[str], *, trials: int,
                    paths: int) -> dict[str, Any]:
    """The scenario document for the search: baseline values, the proposal's parameters free."""
    raw = _absolute_paths(_plain(sc.raw), sc)
    raw.setdefault("scenario", {})
    raw["scenario"]["paths"] = int(paths)
    raw["scenario"]["seed"] = int(sc.seed)
    for pr in raw.get("protocols", []):
        if pr.get("adapter") == adapter:
            pr["params"] = {**pr.get("params", {}), **{k: float(v) for k, v in baseline.items()}}
    opt = dict(raw.get("optimize", {}))
    for k in ("assets", "fields", "per_asset", "sampler", "objectives", "out_of_sample_seed", "bounds"):
        opt.pop(k, None)
    opt.update({"free": [f"{adapter}:{k}" for k in free], "trials": int(trials), "sampler": "tpe",
                "out_of_sample_paths": int(paths)})
    raw["optimize"] = opt
    return raw


def _plain(node: Any) -> Any:
    if isinstance(node, Mapping):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, (list, tuple)):
        return [_plain(v) for v in node]
    return node


def run_search(scenario_file: str, *, trials: int, storage: str, cwd: str, engine: str = "auto") -> dict[str, Any]:
    """The one call into the search API (switch here when its result becomes an object)."""
    from ..search import SearchRequest, optimize

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = optimize(SearchRequest(scenario_file, trials=trials, storage=storage, cwd=cwd, engine=engine))
    return out if isinstance(out, dict) else out.to_json()


def recommend(sc: Scenario, adapter: str, baseline: Mapping[str, float], free: list[str], *, trials: int,
              paths: int, engine: str = "auto") -> dict[str, Any]:
    """Run a short search and return its answer (JSON-ready).

    Returns a dict with ``status`` (``"ok"``, ``"none within budget"`` or ``"failed"``), ``params``
    (``{key: value}`` of the recommended set, adapter units), ``trials``, ``paths``, the search's
    ``objective`` and ``space`` (each free parameter's steward-limited range) and, when it failed,
    ``error`` (one line).
    """
    doc = search_scenario(sc, adapter, baseline, free, trials=trials, paths=paths)
    with tempfile.TemporaryDirectory(prefix="cascade-recommend-") as tmp:
        path = Path(tmp) / "search.toml"
        path.write_text(dumps_toml(doc), encoding="utf-8")
        try:
            out = run_search(str(path), trials=trials, storage=str(Path(tmp) / "search.journal"), cwd=tmp,
                             engine=engine)
        except InputError as e:
            msg = str(e).replace(str(path), "<search scenario>")
            return {"status": "failed", "error": msg, "trials": trials, "paths": paths, "free": free}
    best = out.get("best")
    space = [{k: d.get(k) for k in ("name", "unit", "current", "low", "high", "step", "steward_limit")}
             for d in out.get("space", [])]
    res: dict[str, Any] = {"trials": trials, "paths": paths, "free": free, "space": space,
                           "objective": out.get("objective", {}).get("description"),
                           "importance": out.get("importance"),
                           "study": {k: (out.get("study") or {}).get(k) for k in ("trials", "full_trials",
                                                                                   "infeasible_before_simulation")}}
    if best is None:
        return {**res, "status": "none within budget", "params": None}
    params = {name.split(":", 1)[1] if ":" in name else name: float(v) for name, v in best["params"].items()}
    oos = (out.get("out_of_sample") or {}).get("best") or {}
    return {**res, "status": "ok", "params": params, "search_risk": best.get("risk"),
            "out_of_sample_risk": oos.get("risk")}
