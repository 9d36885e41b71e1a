"""The results object of one evaluation: metrics with their errors, a summary table, raw arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .ledger import EVENT_VALUE_COLUMNS, Ledger
from .metrics import METRICS, mean_p99, tail_summary
from .model import Bound, primary_asset

RawResults = Ledger  # the per-path results' former name


@dataclass
class SimulationResult:
    """Outcome of one parameter set on one scenario.

    ``metrics()`` is the JSON-ready dict (every Monte Carlo estimate with a standard error or a 95 %
    CI); ``summary()`` the same as a pandas DataFrame; ``raw`` the per-path :class:`Ledger` (core fields
    plus those the scenario's venues declare); ``events`` one record per liquidation when asked for
    (:data:`~optimizer.engine.ledger.EVENT_DTYPE`).
    """

    bound: Bound
    raw: Ledger
    engine: str
    elapsed_s: float
    events: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ per-path series
    @property
    def scenario(self):
        return self.bound.prepared.scenario

    def primary_asset(self) -> int:
        return primary_asset(self.bound)

    def per_path(self) -> dict[str, np.ndarray]:
        r = self.raw
        a = self.primary_asset()
        exo_dd = 1.0 - r.exo_low_min[:, a]
        mkt_dd = 1.0 - r.market_low_min[:, a]
        with np.errstate(divide="ignore", invalid="ignore"):
            amp = np.where(exo_dd > 1e-12, mkt_dd / exo_dd, 1.0)
        debt0 = r.initial_debt_usd.sum(1)
        step_h = self.scenario.step_s / 3600
        stab = np.where(r.first_liquidation_step >= 0,
                        (r.last_liquidation_step - r.first_liquidation_step + 1) * step_h, 0.0)
        bad = r.bad_debt_usd.sum(1)
        out = {
            "bad_debt_usd": bad,
            "bad_debt_share": np.where(debt0 > 0, bad / np.where(debt0 > 0, debt0, 1), 0.0),
            "liquidated_usd": r.collateral_seized_usd.sum(1),
            "liquidations": r.liquidations.sum(1),
            "amplification": amp,
            "time_to_stabilise_h": stab,
        }
        for name in self.ledger_metrics():  # every declared per-venue metric, summed over venues
            out[name] = r[name].sum(1)
        return out

    def ledger_metrics(self) -> tuple[str, ...]:
        """Ledger fields (per path and venue) reported as metrics, in declaration order."""
        return tuple(f.name for f in self.raw.fields if f.metric and f.axis == "venue")

    # ------------------------------------------------------------------ summaries
    def capital_efficiency(self) -> dict[str, float]:
        """Borrowing power the parameter set gives the book at t0 (not a Monte Carlo estimate)."""
        from protocols import Prices

        close0 = self.bound.prepared.paths.close[0, 0]
        cap = coll = debt = 0.0
        for j, (ad, pb) in enumerate(zip(self.bound.adapters, self.bound.books, strict=True)):
            prices = Prices(close0[self.bound.coll_market[j]], close0[self.bound.debt_market[j]])
            cap += float(ad.borrow_capacity_usd(pb.book, prices).sum())
            coll += float((pb.book.collateral_tokens * prices.collateral_usd).sum())
            debt += float((pb.book.debt_tokens * prices.debt_usd).sum())
        return {"borrow_capacity_usd": cap, "collateral_usd": coll, "debt_usd": debt,
                "ratio": cap / coll if coll else 0.0, "utilisation": debt / cap if cap else 0.0}

    def metrics(self) -> dict[str, Any]:
        pp = self.per_path()
        out: dict[str, Any] = {
            "bad_debt_usd": tail_summary(pp["bad_debt_usd"]),
            "bad_debt_share": tail_summary(pp["bad_debt_share"]),
            "liquidated_usd": mean_p99(pp["liquidated_usd"]),
            "liquidations": mean_p99(pp["liquidations"]),
            "amplification": mean_p99(pp["amplification"]),
            "time_to_stabilise_h": mean_p99(pp["time_to_stabilise_h"]),
        }
        for k in self.ledger_metrics():
            out[k] = mean_p99(pp[k])
        if "critical_drop" in self.extra:
            out["critical_drop"] = self.extra["critical_drop"]
        out["capital_efficiency"] = self.capital_efficiency()
        if len(self.bound.adapters) > 1:
            out["by_protocol"] = {
                pid: {"bad_debt_usd": tail_summary(self.raw.bad_debt_usd[:, j], with_es=False),
                      "liquidated_usd": mean_p99(self.raw.collateral_seized_usd[:, j])}
                for j, pid in enumerate(self.bound.ids)
            }
        return out

    def to_json(self) -> dict[str, Any]:
        sc = self.scenario
        return {
            "scenario": sc.name,
            "scenario_file": sc.file,
            "seed": sc.seed,
            "paths": self.raw.n_paths,
            "steps": self.raw.n_steps,
            "step_s": sc.step_s,
            "engine": self.engine,
            "params": {k: dict(v) for k, v in self.bound.params.items()},
            "metrics": self.metrics(),
            "primary_asset": self.bound.prepared.market.assets[self.primary_asset()],
            **({"liquidation_map": self.extra["liquidation_map"]} if "liquidation_map" in self.extra else {}),
            "elapsed_s": round(self.elapsed_s, 4),
        }

    def summary(self):
        """One row per metric: estimate, standard error and 95 % interval where it applies."""
        import pandas as pd

        m = self.metrics()
        rows = []
        for spec in METRICS:
            v = m[spec.name]
            if "var_99" in v:
                rows.append({"metric": spec.name, "unit": spec.unit, "mean": v["mean"], "stderr": v["stderr"],
                             "var_95": v["var_95"], "var_99": v["var_99"], "es_99": v["es_99"],
                             "p_positive": v["p_positive"]})
            else:
                rows.append({"metric": spec.name, "unit": spec.unit, "mean": v["mean"], "stderr": v["stderr"],
                             "p99": v["p99"]})
        return pd.DataFrame(rows).set_index("metric")

    def data(self) -> dict[str, np.ndarray]:
        """Raw per-path arrays."""
        return self.per_path()

    def account_probabilities(self) -> list[dict[str, Any]]:
        """Per account: probability of at least one liquidation within the horizon, with its stderr."""
        n = self.raw.n_paths
        rows = []
        for j, pb in enumerate(self.bound.books):
            p = self.raw.account_liquidated[j] / n
            se = np.sqrt(p * (1 - p) / n)
            pid = self.bound.ids[j]
            for acct, pi, si in zip(pb.accounts, p, se, strict=True):
                rows.append({"protocol": pid, "account": str(acct), "p_liquidated": float(pi), "stderr": float(si)})
        return rows

    @staticmethod
    def event_columns() -> list[str]:
        """Columns of :meth:`event_rows`: where and when, then the event record's amounts."""
        return ["path", "step", "timestamp", "protocol", "account", "collateral_asset", *EVENT_VALUE_COLUMNS]

    def event_rows(self) -> list[dict[str, Any]]:
        """One dict per event record: ids and asset names resolved, amounts as floats."""
        if self.events is None:
            return []
        sc = self.scenario
        ts = self.bound.prepared.paths.timestamps
        ids, books = self.bound.ids, self.bound.books
        rows = []
        for e in self.events:
            step, j, pos, c = int(e["step"]), int(e["protocol"]), int(e["position"]), int(e["collateral"])
            stamp = str(ts[step]) + "Z" if ts is not None else f"+{step * sc.step_s / 3600:.4f}h"
            rows.append({"path": int(e["path"]), "step": step, "timestamp": stamp, "protocol": ids[j],
                         "account": str(books[j].accounts[pos]),
                         "collateral_asset": books[j].book.collateral_assets[c] if c >= 0 else "",
                         **{name: float(e[name]) for name in EVENT_VALUE_COLUMNS}})
        return rows
