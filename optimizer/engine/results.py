"""The results object of one evaluation: metrics with their errors, a summary table, raw arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .metrics import METRICS, mean_p99, tail_summary
from .model import Bound, primary_asset
from .reference import EVENT_COLUMNS, RawResults

BORROWER_PENALTY_KEYS = ("borrower_penalty_usd", "borrower_penalty_share", "borrower_penalty_share_of_collateral")


def borrower_penalty(r: RawResults, collateral_usd: float) -> dict[str, np.ndarray]:
    """Per path: the liquidation penalty borrowers paid (the user-harm metric), in USD and as shares.

    ``borrower_penalty_usd = liquidator_bonus_usd + protocol_fee_usd``, summed over protocols. By each
    liquidation's accounting identity (``collateral_seized = debt_repaid + liquidator_bonus + protocol_fee
    + returned_to_owner``, checked per venue by the contract suite and tests/engine/test_accounting.py) this
    is exactly the collateral value a borrower gave up beyond the debt it repaid and what it got back:

    * Aave v3: ``seized - repaid = repaid x (LB - 1)`` at the oracle, the liquidator's bonus net of the
      treasury's ``liquidationProtocolFee`` plus that fee;
    * Comet: the ``absorb`` penalty ``sum V_i x (1 - liquidationFactor_i)``, split between the
      storefront discount (``x storeFrontPriceFactor``) and the reserves;
    * Maker: per ``take``, collateral bought at the market price minus the DAI paid (the auction
      discount to the keeper) plus the DAI paid above the debt (``chop``, to surplus); keeper
      incentives (``tip``/``chip``) are paid by the protocol, not the vault owner, and are not in it.

    Debt written off as bad debt is the protocol's loss, not a penalty, and is not in it. The shares
    divide by the book's initial debt (per path, as ``bad_debt_share``) and its collateral value at t0.
    """
    pen = (r.liquidator_bonus_usd + r.protocol_fee_usd).sum(1)
    debt0 = r.initial_debt_usd.sum(1)
    return {"borrower_penalty_usd": pen,
            "borrower_penalty_share": np.where(debt0 > 0, pen / np.where(debt0 > 0, debt0, 1), 0.0),
            "borrower_penalty_share_of_collateral": pen / collateral_usd if collateral_usd > 0 else np.zeros_like(pen)}


@dataclass
class SimulationResult:
    """Outcome of one parameter set on one scenario.

    ``metrics()`` is the JSON-ready dict (every Monte Carlo estimate with a standard error or a 95 %
    CI); ``summary()`` the same as a pandas DataFrame; ``raw`` the per-path arrays; ``events`` one row per
    liquidation when asked for.
    """

    bound: Bound
    raw: RawResults
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
        return {
            "bad_debt_usd": bad,
            "bad_debt_share": np.where(debt0 > 0, bad / np.where(debt0 > 0, debt0, 1), 0.0),
            "liquidated_usd": r.collateral_seized_usd.sum(1),
            "liquidations": r.liquidations.sum(1),
            "amplification": amp,
            "time_to_stabilise_h": stab,
            "debt_repaid_usd": r.debt_repaid_usd.sum(1),
            "liquidator_bonus_usd": r.liquidator_bonus_usd.sum(1),
            "protocol_fee_usd": r.protocol_fee_usd.sum(1),
            "realised_bad_debt_usd": r.realised_bad_debt_usd.sum(1),
            "unrealised_bad_debt_usd": r.unrealised_bad_debt_usd.sum(1),
            "inventory_usd": r.inventory_usd.sum(1),
            **borrower_penalty(r, self.capital_efficiency()["collateral_usd"]),
        }

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
        for k in ("debt_repaid_usd", "liquidator_bonus_usd", "protocol_fee_usd", "realised_bad_debt_usd",
                  "unrealised_bad_debt_usd", "inventory_usd"):
            out[k] = mean_p99(pp[k])
        for k in BORROWER_PENALTY_KEYS:
            out[k] = tail_summary(pp[k])
        if "critical_drop" in self.extra:
            out["critical_drop"] = self.extra["critical_drop"]
        out["capital_efficiency"] = self.capital_efficiency()
        if len(self.bound.adapters) > 1:
            out["by_protocol"] = {
                ad.name: {"bad_debt_usd": tail_summary(self.raw.bad_debt_usd[:, j], with_es=False),
                          "liquidated_usd": mean_p99(self.raw.collateral_seized_usd[:, j])}
                for j, ad in enumerate(self.bound.adapters)
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
            for acct, pi, si in zip(pb.accounts, p, se, strict=True):
                rows.append({"protocol": self.bound.adapters[j].name, "account": str(acct),
                             "p_liquidated": float(pi), "stderr": float(si)})
        return rows

    def event_rows(self) -> list[dict[str, Any]]:
        if self.events is None:
            return []
        sc = self.scenario
        ts = self.bound.prepared.paths.timestamps
        rows = []
        for e in self.events:
            path, step, j, pos = int(e[0]), int(e[1]), int(e[2]), int(e[3])
            stamp = str(ts[step]) + "Z" if ts is not None else f"+{step * sc.step_s / 3600:.4f}h"
            rows.append({"path": path, "step": step, "timestamp": stamp, "protocol": self.bound.adapters[j].name,
                         "account": str(self.bound.books[j].accounts[pos]),
                         **{c: float(v) for c, v in zip(EVENT_COLUMNS[4:], e[4:], strict=True)}})
        return rows
