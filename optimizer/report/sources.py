"""What ``cascade report`` renders from: a report folder, a result JSON file, or an optimisation study.

Nothing is simulated: a report folder keeps its ``result.json``; ``cascade simulate --json`` and
``cascade optimize --json`` outputs are JSON files; a study keeps the JSON of its result in the user
attribute ``cascade_report`` (written by ``cascade optimize``), read by :func:`load_study_report`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import InputError

# the attribute optimizer.search.result.REPORT_ATTR writes (not imported: importing the search package
# would load optuna and the engine into every `cascade report`); tests/report checks they agree
STUDY_ATTR = "cascade_report"


def classify(data: Any, file: str) -> str:
    """The kind of a result JSON: proposal, comparison, simulation, study (a search result), backtest."""
    if not isinstance(data, Mapping):
        raise InputError("is not a cascade result (expected a JSON object)", file=file)
    kind = data.get("kind")
    if kind in ("proposal", "comparison", "simulation", "study", "backtest"):
        return kind
    if "metrics" in data and "scenario" in data and "paths" in data:
        return "simulation"
    if "objective" in data and "study" in data and "current" in data:
        return "study"
    raise InputError("is not a cascade result (no 'kind'; not the output of simulate, compare, proposal, "
                     "optimize or backtest --json)", file=file)


def _open_study(storage: str, study: str | None, cwd: str | None):
    import warnings

    import optuna

    from ..search.storage import StorageSpec

    spec = StorageSpec.resolve(storage, study or "study", cwd)
    if spec.path and not Path(spec.path).is_file():
        raise InputError("no such study file", file=storage)
    st = spec.open(create=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        names = [s.study_name for s in optuna.get_all_study_summaries(storage=st)]
        if study is None:
            if len(names) != 1:
                raise InputError(f"holds {len(names)} studies ({', '.join(names[:8])}); name one with --study",
                                 file=spec.display, field="--study")
            study = names[0]
        if study not in names:
            raise InputError(f"no study '{study}' (has: {', '.join(names[:8]) or 'none'})", file=spec.display,
                             field="--study")
        from ..redact import redact_url

        return optuna.load_study(study_name=study, storage=st), (redact_url(spec.url) if spec.url else spec.display)


def load_study_report(storage: str, study: str | None = None, cwd: str | None = None) -> tuple[dict, Any, str]:
    """The stored search result of a study (``cascade optimize``'s JSON), the study and its display name.

    The one place that reads it: when ``optimizer.search.load_result(storage, study, cwd)`` exists, this
    becomes a call to it.
    """
    st, display = _open_study(storage, study, cwd)
    raw = st.user_attrs.get(STUDY_ATTR)
    if raw is None:
        raise InputError(f"study '{st.study_name}' holds no stored report (attribute '{STUDY_ATTR}'): it is "
                         "unfinished or was run by an older cascade; run the same `cascade optimize` again to "
                         "finish it and store one", file=display)
    rep = json.loads(raw) if isinstance(raw, str) else raw
    return rep, st, display


def trial_points(study, rep: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Efficiency and risk of every simulated trial, within budget or not.

    From the result's own ``trials`` list when it has one (trials over budget are stored PRUNED so the
    dashboard's best is a feasible one; they are still simulated points of the study), else from the
    study's COMPLETE trials (results written before that list existed)."""
    budget = (rep.get("objective") or {}).get("budget_share_of_debt")
    front = {p.get("trial") for p in rep.get("pareto") or []}
    rows = rep.get("trials")
    if rows:
        return [{"trial": r["trial"], "efficiency": float(r["efficiency"]), "risk": float(r["risk_value"]),
                 "risk_upper": None if r.get("risk_ci95_high") is None else float(r["risk_ci95_high"]),
                 "feasible": r.get("risk_ci95_high") is not None and budget is not None and r["risk_ci95_high"] <= budget,
                 "full": r.get("fidelity") == "full", "pareto": r["trial"] in front}
                for r in rows if r.get("risk_value") is not None and r.get("efficiency") is not None]
    pts = []
    for t in study.get_trials(deepcopy=False) if study is not None else []:
        ua = t.user_attrs
        if t.state.name != "COMPLETE" or not t.values or ua.get("risk_value") is None:
            continue
        hi = ua.get("risk_ci95_high")
        pts.append({"trial": t.number, "efficiency": float(t.values[0]), "risk": float(ua["risk_value"]),
                    "feasible": hi is not None and budget is not None and hi <= budget,
                    "full": ua.get("fidelity") == "full", "pareto": t.number in front})
    return pts


def _redacted(x: Any) -> Any:
    from ..redact import redact_text

    if isinstance(x, str):
        return redact_text(x) if "://" in x else x
    if isinstance(x, Mapping):
        return {k: _redacted(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_redacted(v) for v in x]
    return x


def study_data(rep: Mapping[str, Any], study=None, display: str | None = None) -> dict[str, Any]:
    """The ``study`` report JSON: the stored search result (any URL in it redacted) plus the trial points."""
    from ..compare import display_path

    rep = _redacted(dict(rep))
    if rep.get("scenario_file"):  # bundled:..., ~/..., or relative: never an install or home path
        rep["scenario_file"] = display_path(rep["scenario_file"])
    return {"kind": "study", "search": rep, "storage_display": _redacted(display or (rep.get("study") or {}).get("storage")),
            "trials": trial_points(study, rep)}
