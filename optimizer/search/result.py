"""The outcome of a search as one object: :class:`SearchResult` (what ``optimize()`` returns and what
``cascade optimize --json`` prints), and :func:`load_result`, which rebuilds it from a study's storage
without simulating anything.

At the end of ``cascade optimize`` the JSON of the result is stored as the study user attr
``cascade_report`` (a JSON-ready dict), so ``cascade report STUDY`` and notebooks read the finished answer
as it was printed.
"""

from __future__ import annotations

import json
import math
import os
from typing import Any

REPORT_ATTR = "cascade_report"

EXIT_OK = 0  # a recommendation within budget in sample and out of sample
EXIT_NO_ANSWER = 3  # no set within budget, or the recommendation fails out of sample


class SearchResult:
    """A finished search: the recommendation, the evidence behind it and the study it came from.

    Attributes
    ----------
    recommendation : dict or None
        The parameter set to propose (``params``, ``changes`` with a ``status`` per parameter,
        ``efficiency``, ``borrow_capacity_usd``, ``cost`` against today's set, ``in_sample`` and
        ``out_of_sample`` risk with 95 % CIs), or None when no set holds within budget out of sample.
    exit_code : int
        0 when there is a recommendation within budget out of sample, 3 when there is none.
    """

    def __init__(self, data: dict[str, Any]) -> None:
        self._data = data

    # ------------------------------------------------------------------ the answer
    @property
    def recommendation(self) -> dict[str, Any] | None:
        return self._data.get("recommendation")

    @property
    def exit_code(self) -> int:
        return int(self._data["verdict"]["exit_code"])

    @property
    def verdict(self) -> dict[str, Any]:
        return self._data["verdict"]

    @property
    def study(self) -> dict[str, Any]:
        return self._data["study"]

    def __getitem__(self, key: str) -> Any:  # the JSON as a mapping (``result["best"]``)
        return self._data[key]

    def __contains__(self, key: str) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def __repr__(self) -> str:
        v = self._data.get("verdict", {})
        return (f"SearchResult({self._data.get('scenario')!r}, study={self.study.get('name')!r}, "
                f"trials={self.study.get('trials')}, exit_code={v.get('exit_code')}: {v.get('status')})")

    # ------------------------------------------------------------------ views
    def to_json(self) -> dict[str, Any]:
        """The JSON-ready dict ``cascade optimize --json`` prints."""
        return self._data

    def summary(self):
        """One row per metric (the rows ``cascade optimize`` prints, as numbers, with standard errors in
        their own rows); one column per set: today's and the recommendation's, in and out of sample."""
        import pandas as pd

        from .rows import value_rows

        return pd.DataFrame(value_rows(self._data, metric_columns(self._data))).T

    def data(self):
        """Every trial of the study as it was reported: a pandas DataFrame (the trade-off data)."""
        import pandas as pd

        return pd.DataFrame(self._data.get("trials") or [])

    def plot_tradeoff(self, ax=None):
        """Efficiency vs risk of the fully evaluated trials, the front, today's set and the recommendation.

        Needs matplotlib (not a dependency of the package); returns the figure.
        """
        try:
            import matplotlib.pyplot as plt
        except ImportError:  # pragma: no cover - depends on the environment
            raise ImportError("plot_tradeoff needs matplotlib (pip install matplotlib)") from None
        df = self.data()
        fig = ax.figure if ax is not None else plt.figure(figsize=(6, 4)).gca().figure
        ax = ax or fig.axes[0]
        full = df[df["fidelity"] == "full"] if len(df) else df
        if len(full):
            ax.scatter(full["efficiency"] * 100, full["risk_ci95_high"] * 100, s=12, c="0.6", label="trials")
        front = self._data.get("tradeoff") or []
        if front:
            ax.plot([p["efficiency"] * 100 for p in front], [p["risk_ci95_high"] * 100 for p in front], "-o",
                    ms=3, label="trade-off curve")
        b = self._data["objective"]["budget_share_of_debt"] * 100
        ax.axhline(b, ls="--", c="r", lw=1, label="budget")
        ax.set_xlabel("capital efficiency (%)")
        ax.set_ylabel(f"upper 95 % CI of {self._data['objective']['risk_metric']} of bad debt (% of debt)")
        ax.legend()
        return fig


def metric_columns(out: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The result's metric columns as ``cascade optimize`` and ``cascade report STUDY`` show them:
    today in sample, the recommendation in and out of sample (when it changes something), today out
    of sample, and today on the first out-of-sample check's seed (when one was made)."""
    cur, rec, oos = out.get("current") or {}, out.get("recommendation"), out.get("out_of_sample") or {}
    cols: list[tuple[str, dict[str, Any]]] = [("today (in sample)", cur.get("in_sample") or cur)]
    if rec is not None and not rec.get("unchanged"):
        cols.append(("recommended (in sample)", rec.get("in_sample") or {}))
        cols.append((f"recommended (out of sample, seed {oos.get('seed')})", rec.get("out_of_sample") or {}))
    if oos.get("current"):
        cols.append((f"today (out of sample, seed {oos.get('seed')})", oos["current"]))
    if oos.get("first_check"):
        fc = oos["first_check"]
        cols.append((f"today (seed {fc['seed']})", fc["current"]))
    return cols


def load_result(storage: str | None, study: str, cwd: str | os.PathLike | None = None) -> SearchResult:
    """The :class:`SearchResult` a finished ``cascade optimize`` stored with its study (no simulation).

    Parameters
    ----------
    storage : str or None
        The ``--storage`` the search used (an RDB URL or a journal path); None: ``runs/<study>.journal``
        under ``cwd``.
    study : str
        The study name ``cascade optimize`` printed.
    cwd : path, optional
        Where relative journal paths are resolved (default: the current directory).
    """
    import warnings

    import optuna

    from ..errors import InputError
    from .storage import StorageSpec

    spec = StorageSpec.resolve(storage, study, cwd)
    if spec.path and not os.path.exists(spec.path):
        raise InputError(f"no study file here (looked for study '{study}')", file=spec.display, field="--storage")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            s = optuna.load_study(study_name=study, storage=spec.open(create=False))
        except KeyError:
            raise InputError(f"no study '{study}' in this storage", file=spec.display, field="--study") from None
    data = s.user_attrs.get(REPORT_ATTR)
    if not isinstance(data, dict):
        raise InputError(f"study '{study}' has no finished cascade optimize result yet (run cascade optimize to the "
                         "end once)", file=spec.display, field="--study")
    return SearchResult(json.loads(json.dumps(data)))


def json_ready(x: Any) -> Any:
    """Plain JSON types (numpy scalars and arrays to Python; NaN/inf to None)."""
    import numpy as np

    if isinstance(x, dict):
        return {str(k): json_ready(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [json_ready(v) for v in x]
    if isinstance(x, np.ndarray):
        return json_ready(x.tolist())
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        v = float(x)
        return v if math.isfinite(v) else None
    if isinstance(x, np.bool_):
        return bool(x)
    return x
