"""Report figures (matplotlib, Agg backend): each from the plain data stored in a result's JSON.

Every function takes the ``figures_data`` entries a result writes (so ``cascade report`` redraws a
figure without simulating) and returns a :class:`matplotlib.figure.Figure` with axis labels, units
and a title; :func:`save_png` writes it deterministically (no timestamp or version in the PNG, fixed
size and resolution), so the same data give byte-identical files.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

DPI = 100
SIZE = (7.0, 4.0)  # inches: 700 x 400 px at DPI 100
COLOURS = {"current": "#4c72b0", "candidate": "#dd8452", "proposed": "#dd8452", "recommended": "#55a868"}
LABELS = {"current": "current", "candidate": "candidate", "proposed": "proposed", "recommended": "recommended"}


def _style() -> None:
    import matplotlib

    matplotlib.rcParams.update({"font.size": 9, "axes.titlesize": 10, "svg.hashsalt": "cascade"})


def _figure(nrows: int = 1, ncols: int = 1, **kw):
    """A Figure not registered with pyplot (Agg canvas; nothing global, safe in notebooks and threads)."""
    from matplotlib.figure import Figure

    _style()
    fig = Figure(figsize=kw.pop("figsize", SIZE), dpi=DPI, layout="constrained")
    axes = fig.subplots(nrows, ncols, **kw)
    return fig, axes


def _usd_axis(ax, axis: str = "x") -> None:
    from matplotlib.ticker import FuncFormatter

    def fmt(v, _pos):
        a = abs(v)
        for div, suf in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
            if a >= div:
                return f"${v / div:g}{suf}"
        return f"${v:g}"

    (ax.xaxis if axis == "x" else ax.yaxis).set_major_formatter(FuncFormatter(fmt))


def bad_debt_distribution(series: Mapping[str, Sequence[float]]):
    """Distribution of bad debt per path (USD) for each parameter set: an exceedance curve
    P(bad debt > x), which shows the tail (VaR/ES) and P(bad debt > 0) at once."""
    fig, ax = _figure()
    n = 0
    xmax = 0.0
    for name, xs in series.items():
        x = np.sort(np.asarray(xs, float))
        n = x.size
        if n == 0:
            continue
        p = 1.0 - np.arange(1, n + 1) / n
        ax.step(x, p, where="post", label=f"{LABELS.get(name, name)} (P(>0) = {(x > 0).mean():.3f})",
                color=COLOURS.get(name), linewidth=1.6)
        xmax = max(xmax, float(x[-1]))
    if xmax <= 0:
        ax.text(0.5, 0.5, "no bad debt on any path for any set", transform=ax.transAxes, ha="center",
                va="center", fontsize=10, color="grey")
    ax.set_xscale("symlog", linthresh=1.0, linscale=0.5)
    ax.set_xlabel("bad debt per path (USD, log scale above $1)")
    ax.set_ylabel("share of paths with more bad debt")
    ax.set_title(f"Bad debt distribution ({n} paths, same paths for every set)")
    ax.set_xlim(left=0, right=max(xmax * 1.5, 10.0))
    ax.set_ylim(0, 1.02)
    _usd_axis(ax)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", frameon=False)
    return fig


def liquidation_map(maps: Mapping[str, Mapping[str, Any]]):
    """Collateral liquidatable as the price falls: static (health < 1 at that price, no feedback)
    and with the cascade (collateral seized over the horizon after an instantaneous drop). With a perp
    venue (maps from :func:`optimizer.engine.analysis.liquidation_map` with ``perp_*`` entries), a second
    panel shows the perp liquidation map by price level for both sides: long notional first liquidatable
    at each level below the start price, short notional at each level above it (where the clusters sit)."""
    if any("perp_short_static_new_usd" in m for m in maps.values()):
        fig, (ax, ax2) = _figure(1, 2, figsize=(9.0, 3.6), width_ratios=[1, 1])
        _perp_sides_panel(ax2, maps)
    else:
        fig, ax = _figure()
    asset = ""
    for name, m in maps.items():
        asset = m.get("asset", asset)
        drop = (1.0 - np.asarray(m["price_ratio"], float)) * 100.0
        c = COLOURS.get(name)
        ax.plot(drop, m["static_liquidatable_usd"], color=c, linestyle="--", linewidth=1.2,
                label=f"{LABELS.get(name, name)}: liquidatable at that price")
        ax.plot(drop, m["cascade_liquidated_usd"], color=c, linewidth=1.8,
                label=f"{LABELS.get(name, name)}: liquidated with the cascade")
    if not any(max(m["static_liquidatable_usd"] + m["cascade_liquidated_usd"], default=0) > 0 for m in maps.values()):
        ax.text(0.5, 0.5, "no collateral becomes liquidatable at any uniform drop\n(the debt assets fall with the "
                "collateral)", transform=ax.transAxes, ha="center", va="center", fontsize=9, color="grey")
    ax.set_xlabel(f"instantaneous drop of every non-stable asset (%; main collateral {asset})")
    ax.set_ylabel("collateral (USD at the shocked prices)")
    ax.set_title("Liquidation map")
    _usd_axis(ax, "y")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper left", frameon=False, fontsize=8)
    return fig


def _perp_sides_panel(ax, maps: Mapping[str, Mapping[str, Any]]) -> None:
    """Perp notional first liquidatable per price level: longs (falls) left of the start price, shorts (rises)
    right of it; one pair of bar series per parameter set."""
    sets = [(n, m) for n, m in maps.items() if "perp_short_static_new_usd" in m]
    width = 0.02 / max(len(sets), 1) * 0.9
    asset = ""
    for i, (name, m) in enumerate(sets):
        asset = m.get("asset", asset)
        shift = (i - (len(sets) - 1) / 2) * width
        fall = np.asarray(m["price_ratio"], float)
        rise = np.asarray(m["rise_price_ratio"], float)
        lab = LABELS.get(name, name)
        ax.bar(fall[1:] + shift, np.asarray(m["perp_long_static_new_usd"], float)[1:], width=width,
               color="#c44e52", alpha=0.85 if i == 0 else 0.5, label=f"{lab}: longs (price falls)")
        ax.bar(rise[1:] + shift, np.asarray(m["perp_short_static_new_usd"], float)[1:], width=width,
               color="#55a868", alpha=0.85 if i == 0 else 0.5, label=f"{lab}: shorts (price rises)")
    ax.axvline(1.0, color="grey", linewidth=0.8, linestyle=":")
    ax.set_xlabel(f"price / start price (every non-stable asset; {asset})")
    ax.set_ylabel("perp notional first liquidatable (USD)")
    ax.set_title("Perp liquidation map by price level")
    _usd_axis(ax, "y")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right", frameon=False, fontsize=7)


def price_fan(fan: Mapping[str, Any]):
    """Left: quantiles (5-95 %) of the main collateral's exogenous price over the horizon. Right: per
    path, the market drawdown (with the liquidations' price impact) against the exogenous drawdown."""
    fig, (ax, ax2) = _figure(1, 2, figsize=(8.0, 3.6), width_ratios=[3, 2])
    h = np.asarray(fan["hours"], float)
    q = {k: np.asarray(v, float) for k, v in fan["quantiles"].items()}
    ax.fill_between(h, q["5"], q["95"], color="#4c72b0", alpha=0.15, label="5-95 %")
    ax.fill_between(h, q["25"], q["75"], color="#4c72b0", alpha=0.3, label="25-75 %")
    ax.plot(h, q["50"], color="#4c72b0", linewidth=1.5, label="median")
    ax.set_xlabel("hours")
    ax.set_ylabel(f"{fan['asset']} price (USD)")
    ax.set_title(f"{fan['asset']} exogenous price paths")
    _usd_axis(ax, "y")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left", frameon=False, fontsize=8)
    exo = np.asarray(fan["exogenous_drawdown"], float) * 100.0
    hi = max(float(exo.max()) if exo.size else 0.0, 1.0)
    for name, mk in fan["market_drawdown"].items():
        m = np.asarray(mk, float) * 100.0
        hi = max(hi, float(m.max()) if m.size else 0.0)
        ax2.scatter(exo, m, s=6, alpha=0.6, color=COLOURS.get(name), label=LABELS.get(name, name))
    ax2.plot([0, hi], [0, hi], color="grey", linewidth=0.8, linestyle=":", label="no cascade")
    ax2.set_xlabel("exogenous max drawdown (%)")
    ax2.set_ylabel("market max drawdown (%)")
    ax2.set_title("The cascade's extra drawdown")
    ax2.grid(alpha=0.3)
    ax2.legend(loc="upper left", frameon=False, fontsize=8)
    return fig


def efficiency_risk(points: Sequence[Mapping[str, Any]], budget: float | None, risk_label: str,
                    marks: Mapping[str, Mapping[str, float]] | None = None, *,
                    efficiency_axis: str = "capital efficiency (%)", leverage: bool = False):
    """Trials of a study: capital efficiency (or, ``leverage``, the leverage offered) against risk, feasible
    ones marked. ``risk_label`` names the risk as the tables do (``var_99 of bad debt / debt``).

    When every point carries ``risk_upper`` (the upper end of the risk's 95 % CI, what the budget judges),
    that is the x axis, so the budget line separates the within-budget points from the others."""
    fig, ax = _figure()
    upper = bool(points) and all(p.get("risk_upper") is not None for p in points)
    key = "risk_upper" if upper else "risk"
    xs = np.array([p[key] for p in points], float) * 100.0
    scale = 1.0 if leverage else 100.0
    ys = np.array([p["efficiency"] for p in points], float) * scale
    ok = np.array([bool(p.get("feasible")) for p in points])
    if xs.size:
        ax.scatter(xs[~ok], ys[~ok], s=12, color="#c44e52", alpha=0.6, label="over budget")
        ax.scatter(xs[ok], ys[ok], s=12, color="#4c72b0", alpha=0.8, label="within budget")
    front = [p for p in points if p.get("pareto")]
    if front:
        f = sorted(front, key=lambda p: p[key])
        ax.plot([p[key] * 100 for p in f], [p["efficiency"] * scale for p in f], color="#55a868",
                linewidth=1.2, label="Pareto front")
    if budget is not None:
        ax.axvline(budget * 100.0, color="grey", linestyle="--", linewidth=1, label=f"budget {budget:.2%}")
    for name, pt in (marks or {}).items():
        ax.scatter([pt.get(key, pt["risk"]) * 100], [pt["efficiency"] * scale], s=60, marker="*",
                   color=COLOURS.get(name, "k"), label=name, zorder=5)
    ax.set_xlabel(f"upper end of the 95 % interval of {risk_label} (%)" if upper else f"{risk_label} (%)")
    ax.set_ylabel(efficiency_axis)
    ax.set_title(f"Efficiency vs risk ({xs.size} simulated trials)")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", frameon=False, fontsize=8)
    return fig


def importance(imp: Mapping[str, Mapping[str, float]]):
    """Parameter importance (PED-ANOVA) for efficiency and risk: horizontal bars."""
    keys = [k for k in ("efficiency", "risk") if imp.get(k)]
    fig, axes = _figure(1, max(len(keys), 1), figsize=(7.0, 3.2), sharey=False)
    axes = np.atleast_1d(axes)
    for ax, key in zip(axes, keys, strict=False):
        items = sorted(imp[key].items(), key=lambda kv: kv[1])
        ax.barh([k.split(":", 1)[-1] for k, _ in items], [v for _, v in items], color="#4c72b0")
        ax.set_xlabel("importance (share)")
        ax.set_title(f"for {key}")
        ax.set_xlim(0, 1)
        ax.grid(alpha=0.3, axis="x")
    return fig


def sensitivity(rows: Sequence[Mapping[str, Any]], unit_label: str = "mean bad debt (USD)"):
    """One-at-a-time sensitivity: change of mean bad debt with its 95 % CI, one bar per lever."""
    fig, ax = _figure(figsize=(8.0, max(2.2, 0.45 * len(rows) + 1.2)))
    labels = [r["label"] for r in rows]
    d = np.array([r["delta"] for r in rows], float)
    lo = np.array([r["ci95"][0] for r in rows], float)
    hi = np.array([r["ci95"][1] for r in rows], float)
    y = np.arange(len(rows))
    ax.barh(y, d, color=["#c44e52" if v > 0 else "#4c72b0" for v in d], alpha=0.8)
    ax.errorbar(d, y, xerr=[d - lo, hi - d], fmt="none", ecolor="k", elinewidth=1, capsize=3)
    ax.set_yticks(y, labels)
    ax.axvline(0, color="grey", linewidth=0.8)
    ax.set_xlabel(f"change of {unit_label} (95 % CI)")
    ax.set_title("What moves bad debt (one at a time, same seed)")
    _usd_axis(ax)
    ax.grid(alpha=0.3, axis="x")
    return fig


def save_png(fig) -> bytes:
    """PNG bytes of ``fig``, deterministic: no Software/date metadata, fixed DPI."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()
