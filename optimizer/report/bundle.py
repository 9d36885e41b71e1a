"""A report folder's files from one result JSON: ``report.md``, PNG figures, ``result.json``, ``manifest.json``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import figures as fg
from .markdown import render
from .writer import dumps, write_report_dir


def _figures(data: Mapping[str, Any]) -> dict[str, tuple[str, Any, str]]:
    """key -> (file name, Figure, caption) for the figures this result's JSON can draw."""
    kind = data["kind"]
    out: dict[str, tuple[str, Any, str]] = {}
    fd = data.get("figures_data") or {}
    if kind in ("comparison", "proposal"):
        names = " vs ".join(fd.get("bad_debt_usd", {}))
        if fd.get("price_fan"):
            a = fd["price_fan"]["asset"]
            out["price_fan"] = ("price_fan.png", fg.price_fan(fd["price_fan"]),
                                f"{a} price paths of the scenario (USD, quantiles over paths) and, per path, the market "
                                "drawdown including the liquidations' price impact against the exogenous drawdown (%).")
        if fd.get("bad_debt_usd"):
            out["bad_debt"] = ("bad_debt.png", fg.bad_debt_distribution(fd["bad_debt_usd"]),
                               f"Bad debt per path (USD), {names}: share of paths with more bad debt than x, on the "
                               "same paths.")
        if fd.get("liquidation_map"):
            out["liquidation_map"] = ("liquidation_map.png", fg.liquidation_map(fd["liquidation_map"]),
                                      "Collateral liquidatable (USD) against an instantaneous price drop of every "
                                      "non-stable asset: dashed at that price alone, solid with the cascade's "
                                      "feedback over the horizon.")
        if kind == "proposal":
            from ..proposals.analysis import sensitivity_rows

            rows = sensitivity_rows(data.get("sensitivity") or {})
            if rows:
                out["sensitivity"] = ("sensitivity.png", fg.sensitivity(rows),
                                      "Change of mean bad debt (USD, paired 95 % CI) from each changed parameter "
                                      "alone and from each scenario driver, same seed.")
    elif kind == "simulation":
        if data.get("liquidation_map"):
            out["liquidation_map"] = ("liquidation_map.png", fg.liquidation_map({"current": data["liquidation_map"]}),
                                      "Collateral liquidatable (USD) against an instantaneous price drop of every "
                                      "non-stable asset: dashed at that price alone, solid with the cascade.")
    elif kind == "study":
        rep = data["search"]
        pts = data.get("trials") or []
        if pts:
            from ..search.rows import efficiency_label, efficiency_unit, risk_label, study_efficiency

            obj = rep.get("objective", {})
            marks = {}
            cur = rep.get("current") or {}
            if (cur.get("risk") or {}).get("value") is not None:
                marks["current"] = {"risk": cur["risk"]["value"], "risk_upper": cur["risk"]["ci95"][1],
                                    "efficiency": study_efficiency(cur["metrics"], efficiency_unit(obj))}
            rec = rep.get("recommendation")
            if rec and not rec.get("unchanged") and ((rec.get("in_sample") or {}).get("risk") or {}).get("value") is not None:
                r = rec["in_sample"]["risk"]
                marks["recommended"] = {"risk": r["value"], "risk_upper": r["ci95"][1], "efficiency": rec["efficiency"]}

            unit = efficiency_unit(obj)
            risk_name = risk_label(obj.get("risk_metric", "risk"))
            eff_name = efficiency_label(unit) + (" (×)" if unit == "leverage" else " (%)")
            out["efficiency_risk"] = ("efficiency_risk.png",
                                      fg.efficiency_risk(pts, obj.get("budget_share_of_debt"), risk_name, marks,
                                                         efficiency_axis=eff_name, leverage=unit == "leverage"),
                                      f"Simulated trials of the study (within budget or not): {eff_name} against the "
                                      f"upper end of the 95 % interval of {risk_name} (%), which is what the budget "
                                      "line judges.")
        imp = rep.get("importance") or {}
        if isinstance(imp, Mapping) and (imp.get("efficiency") or imp.get("risk")):
            out["importance"] = ("importance.png", fg.importance(imp),
                                 f"Parameter importance ({imp.get('method', 'PED-ANOVA')}) over "
                                 f"{imp.get('trials')} fully evaluated trials, for efficiency and for risk.")
    return out


def _no_home(x: Any) -> Any:
    """Every string with the home folder shown as ``~`` (a report never names a home path)."""
    home = str(Path.home())
    if home in ("", "/"):
        return x
    if isinstance(x, str):
        return x.replace(home, "~")
    if isinstance(x, Mapping):
        return {k: _no_home(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_no_home(v) for v in x]
    return x


def build_files(data: Mapping[str, Any], manifest: Mapping[str, Any]) -> dict[str, bytes | str]:
    """Every file of the report folder (name -> content), deterministic for the same ``data``."""
    data, manifest = _no_home(dict(data)), _no_home(dict(manifest))
    figs = _figures(data)
    captions = {k: (name, cap) for k, (name, _fig, cap) in figs.items()}
    files: dict[str, bytes | str] = {"report.md": render(data, manifest, captions)}
    for _k, (name, fig, _cap) in figs.items():
        files[name] = fg.save_png(fig)
    files["result.json"] = dumps(data)
    files["manifest.json"] = dumps(manifest)
    return files


def write_report(out_dir: str | Path, data: Mapping[str, Any], manifest: Mapping[str, Any]) -> Path:
    """Render and write the report folder atomically; returns its path."""
    if data.get("kind") == "backtest":  # its own layout and figure (optimizer/backtest/report.py)
        from ..backtest.report import write_backtest_json

        return write_backtest_json(out_dir, data, manifest)
    return write_report_dir(out_dir, build_files(data, manifest))
