"""The results object of one evaluation: metrics with their errors, a summary table, raw arrays."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from protocols import PerpAdapter

from .ledger import EVENT_VALUE_COLUMNS, Ledger
from .metrics import METRICS, Z95, MetricSpec, ledger_metric, tail_summary
from .model import Bound, primary_asset

RawResults = Ledger  # the per-path results' former name


def perp_capacity_usd(adapter: PerpAdapter, book: Any, mark_by_market_usd: np.ndarray) -> tuple[float, float, float]:
    """A perp book at t0: (notional its margin carries at the maximum leverage, margin, open notional), USD.

    Margin is each margin pool's collateral once (an isolated position's margin, a cross account's
    collateral); the leverage is ``adapter.max_leverage`` at each position's notional (the book's own
    open interest where the venue scales margin with it).
    """
    mark = book.position_marks(mark_by_market_usd)
    notional = book.notional_usd(mark)
    open_ = book.size_base > 0
    lev = np.asarray(adapter.max_leverage(adapter.market_index(book), book.side, notional,
                                          adapter._default_open_interest(book, mark)), float)
    lev = np.where(np.isfinite(lev) & (lev > 0), lev, 1.0)
    iso = ~book.is_cross & open_
    margin = float(book.margin_usd[iso].sum() + book.cross_collateral_usd.sum())
    # a pool's margin spread over its positions by notional, each share carried at its own max leverage
    pool_notional = book.pool_sum(np.where(open_, notional, 0.0))
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(pool_notional > 0, notional / pool_notional, 0.0)
    cap = float((book.pool_collateral_usd() * share * lev)[open_].sum())
    return cap, margin, float(notional[open_].sum())


@dataclass
class SimulationResult:
    """Outcome of one parameter set on one scenario.

    ``metrics()`` is the JSON-ready dict (every Monte Carlo estimate with a standard error or a 95 %
    CI); ``summary()`` the same as a pandas DataFrame with CI columns; ``raw`` the per-path
    :class:`~optimizer.engine.ledger.Ledger` (core fields plus those the scenario's venues declare);
    ``events()`` / ``accounts()`` pandas DataFrames (``event_array`` holds the event records,
    :data:`~optimizer.engine.ledger.EVENT_DTYPE`, when asked for).
    """

    bound: Bound
    raw: Ledger
    engine: str
    elapsed_s: float
    event_array: np.ndarray | None = None  # one EVENT_DTYPE record per liquidation, when asked for
    extra: dict[str, Any] = field(default_factory=dict)
    #: why ``engine="auto"`` ran the reference engine (the declining venue's one-line reason); None on the kernel
    engine_reason: str | None = None

    # ------------------------------------------------------------------ per-path series
    @property
    def scenario(self):
        return self.bound.prepared.scenario

    def primary_asset(self) -> int:
        return primary_asset(self.bound)

    def metric_specs(self) -> tuple[MetricSpec, ...]:
        """The metrics of this result: the declared ones whose ledger fields it has (:data:`METRICS`), then
        one per further metric field the scenario's venues declare in the ledger (a venue's own field)."""
        have = set(self.raw.names()) if self.raw is not None else set()
        specs = [s for s in METRICS if set(getattr(s.compute, "ledger_fields", ())) <= have]
        declared = {s.name for s in METRICS}
        if self.raw is not None:
            specs += [ledger_metric(f) for f in self.raw.fields
                      if f.metric and f.axis == "venue" and f.name not in declared]
        return tuple(specs)

    def per_path(self) -> dict[str, np.ndarray]:
        """Per-path series of every Monte Carlo metric of :meth:`metric_specs`."""
        return {spec.name: np.asarray(spec.compute(self), float) for spec in self.metric_specs() if spec.monte_carlo}

    # ------------------------------------------------------------------ summaries
    def capital_efficiency(self, family: str | None = None) -> dict[str, Any]:
        """Borrowing power the parameter set gives the book at t0 (not a Monte Carlo estimate).

        A lending venue's borrowing power is a share of its collateral. A perp venue counts its margin as
        collateral, its open notional as debt and, as borrowing power, the notional that margin would carry
        at the venue's maximum leverage (:func:`perp_capacity_usd`): a multiple of the margin. The two do
        not add up, so the headline figures (``borrow_capacity_usd``, ``collateral_usd``, ``debt_usd``,
        ``ratio``, ``utilisation``) are one family's, named by ``family``: ``family`` if given, else the
        lending venues' when the scenario has any. A scenario with both also carries each family's figures
        under ``by_family``."""
        from protocols import Prices

        close0 = self.bound.prepared.paths.close[0, 0]
        sums = {"lending": [0.0, 0.0, 0.0], "perp": [0.0, 0.0, 0.0]}  # capacity, collateral, debt (USD)
        present = set()
        for j, (ad, pb) in enumerate(zip(self.bound.adapters, self.bound.books, strict=True)):
            if isinstance(ad, PerpAdapter):
                fam, (c, k, d) = "perp", perp_capacity_usd(ad, pb.book, close0[self.bound.coll_market[j]])
            else:
                prices = Prices(close0[self.bound.coll_market[j]], close0[self.bound.debt_market[j]])
                fam = "lending"
                c = float(ad.borrow_capacity_usd(pb.book, prices).sum())
                k = float((pb.book.collateral_tokens * prices.collateral_usd).sum())
                d = float((pb.book.debt_tokens * prices.debt_usd).sum())
            present.add(fam)
            acc = sums[fam]
            acc[0], acc[1], acc[2] = acc[0] + c, acc[1] + k, acc[2] + d

        def figures(fam: str) -> dict[str, float]:
            cap, coll, debt = sums[fam]
            return {"borrow_capacity_usd": cap, "collateral_usd": coll, "debt_usd": debt,
                    "ratio": cap / coll if coll else 0.0, "utilisation": debt / cap if cap else 0.0}

        if family is None:
            family = "lending" if "lending" in present or not present else "perp"
        elif family not in sums:
            raise ValueError(f"capital efficiency family must be 'lending' or 'perp', got {family!r}")
        out: dict[str, Any] = {**figures(family), "family": family}
        if len(present) > 1:
            out["by_family"] = {fam: figures(fam) for fam in ("lending", "perp")}
        return out

    def metrics(self) -> dict[str, Any]:
        """JSON-ready dict, one entry per declared metric (Monte Carlo ones with their errors)."""
        pp = self.per_path()
        specs = self.metric_specs()
        out: dict[str, Any] = {}
        for spec in specs:
            if spec.monte_carlo:
                out[spec.name] = spec.summarise(pp[spec.name])
            elif spec.summary == "exact":
                out[spec.name] = spec.value(self)
            elif spec.summary == "analysis" and spec.name in self.extra:
                out[spec.name] = self.extra[spec.name]
        if len(self.bound.adapters) > 1:
            out["by_protocol"] = {
                pid: {spec.name: (tail_summary(spec.by_protocol(self, j), with_es=False) if spec.summary == "tail"
                                  else spec.summarise(spec.by_protocol(self, j)))
                      for spec in specs if spec.by_protocol is not None}
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
            **({"engine_reason": self.engine_reason} if self.engine_reason else {}),
            "params": {k: dict(v) for k, v in self.bound.params.items()},
            "metrics": self.metrics(),
            "primary_asset": self.bound.prepared.market.assets[self.primary_asset()],
            **({"liquidation_map": self.extra["liquidation_map"]} if "liquidation_map" in self.extra else {}),
            "elapsed_s": round(self.elapsed_s, 4),
        }

    def summary(self):
        """One row per Monte Carlo metric: estimate, standard error and 95 % intervals (pandas DataFrame).

        Columns: ``unit``, ``mean``, ``stderr``, ``mean_ci95_low``/``_high`` (± 1.96 se) and, where the
        metric reports them, ``var_95``, ``var_99`` (each with ``_ci95_low``/``_high``, order-statistic
        CIs), ``es_99`` ± ``es_99_stderr``, ``p_positive`` ± ``p_positive_stderr``, ``p99`` with its CI.
        Values are in the row's ``unit``.
        """
        import pandas as pd

        m = self.metrics()
        rows = []
        for spec in self.metric_specs():
            if not spec.monte_carlo:
                continue
            v = m[spec.name]
            row: dict[str, Any] = {"metric": spec.name, "unit": spec.unit, "mean": v["mean"], "stderr": v["stderr"],
                                   "mean_ci95_low": v["mean"] - Z95 * v["stderr"],
                                   "mean_ci95_high": v["mean"] + Z95 * v["stderr"]}
            for key in ("var_95", "var_99", "p99"):
                if key in v:
                    row[key] = v[key]
                    row[f"{key}_ci95_low"], row[f"{key}_ci95_high"] = v[f"{key}_ci95"]
            for key in ("es_99", "p_positive"):
                if key in v:
                    row[key] = v[key]
                    row[f"{key}_stderr"] = v[f"{key}_stderr"]
            rows.append(row)
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

    def __repr__(self) -> str:
        m = self.raw
        return (f"<SimulationResult {self.scenario.name}: {m.n_paths} paths x {m.n_steps} steps, {self.engine} engine, "
                f"mean bad debt ${float(m.bad_debt_usd.sum(1).mean()):,.0f}>")

    def events(self):
        """One row per liquidation call (pandas DataFrame; empty unless evaluated with ``events=True``).

        Columns: ``path``, ``step``, ``hours`` (since the start), ``timestamp`` (replays; else NaT),
        ``protocol`` (the scenario id), ``account``, ``collateral_asset`` (the collateral the call seized),
        then the USD amounts of the call (``debt_repaid_usd``, ``collateral_seized_usd``, ``bonus_usd``,
        ``protocol_fee_usd``, ``bad_debt_usd``) and ``price`` (the collateral's oracle price, USD).
        """
        import pandas as pd

        cols = ["path", "step", "hours", "timestamp", "protocol", "account", "collateral_asset",
                *EVENT_VALUE_COLUMNS]
        if self.event_array is None or len(self.event_array) == 0:
            return pd.DataFrame(columns=cols)
        ev = self.event_array
        path, step, proto, pos, col = (ev[k].astype(np.int64) for k in ("path", "step", "protocol", "position",
                                                                       "collateral"))
        ts = self.bound.prepared.paths.timestamps
        names = np.array(self.bound.ids, dtype=object)
        account = np.empty(len(ev), dtype=object)
        coll = np.full(len(ev), "", dtype=object)
        for j, pb in enumerate(self.bound.books):
            m = proto == j
            if not m.any():
                continue
            account[m] = pb.accounts[pos[m]].astype(object)
            held = getattr(pb.book, "collateral_assets", ())  # perp books: no collateral column (-1)
            cols_j = np.array([*held, ""], dtype=object)
            coll[m] = cols_j[np.where(col[m] >= 0, col[m], len(cols_j) - 1)]
        out = {"path": path, "step": step, "hours": step * self.scenario.step_s / 3600.0,
               "timestamp": (pd.to_datetime(ts[step]) if ts is not None else pd.NaT), "protocol": names[proto],
               "account": account, "collateral_asset": coll}
        for c in EVENT_VALUE_COLUMNS:
            out[c] = ev[c]
        return pd.DataFrame(out, columns=cols)

    def accounts(self):
        """Per account: probability of at least one liquidation within the horizon and its stderr (DataFrame)."""
        import pandas as pd

        return pd.DataFrame(self.account_probabilities(), columns=["protocol", "account", "p_liquidated", "stderr"])

    def plot_bad_debt(self):
        """Distribution of bad debt per path (USD): a matplotlib Figure."""
        from ..report import figures

        return figures.bad_debt_distribution({"current": self.per_path()["bad_debt_usd"]})

    def plot_liquidation_map(self):
        """Collateral liquidatable vs price drop (USD): a matplotlib Figure (needs ``analyses=True``)."""
        from ..report import figures

        if "liquidation_map" not in self.extra:
            raise ValueError("no liquidation map: evaluate with analyses=True")
        return figures.liquidation_map({"current": self.extra["liquidation_map"]})
