"""Capital efficiency with lending and perp venues in one scenario: a lending share and a perp leverage
multiple do not add up, so each family keeps its own figures and the headline is one family's."""

from __future__ import annotations

import tomllib

import pytest

from optimizer.compare import efficiency as efficiency_change
from optimizer.compare import verdict
from optimizer.engine import SimulationResult, bind, prepare
from optimizer.engine.metrics import capital_efficiency_text, efficiency_family, family_efficiency
from optimizer.engine.results import perp_capacity_usd
from optimizer.report.markdown import _eff_line
from optimizer.scenario.config import parse_scenario
from optimizer.search.rows import study_efficiency
from optimizer.search.runner import _efficiency_unit
from optimizer.search.space import build_space
from optimizer.snapshots import data_dir

MIXED = data_dir() / "scenarios" / "perp_mixed_aave_hyperliquid_eth_12h.toml"
KEYS = ("borrow_capacity_usd", "collateral_usd", "debt_usd", "ratio", "utilisation")


def _scenario(drop: str | None = None):
    data = tomllib.loads(MIXED.read_text())
    data["protocols"] = [p for p in data["protocols"] if p["adapter"] != drop]
    for p in data["protocols"]:
        p["book"]["positions"] = 150
    return parse_scenario(data, file=str(MIXED), base_dir=MIXED.parent).with_overrides(paths=2)


def _ce(sc, family=None):
    return SimulationResult(bind(prepare(sc)), None, "", 0.0).capital_efficiency(family)  # type: ignore[arg-type]


def test_each_family_keeps_its_own_figures_and_the_headline_is_the_lending_one():
    bound = bind(prepare(_scenario()))
    both = SimulationResult(bound, None, "", 0.0).capital_efficiency()  # type: ignore[arg-type]
    lending, perp_alone = _ce(_scenario(drop="hyperliquid")), _ce(_scenario(drop="aave_v3"))
    assert lending["family"] == "lending" and perp_alone["family"] == "perp" and "by_family" not in lending
    assert both["family"] == "lending" and set(both["by_family"]) == {"lending", "perp"}
    j = bound.ids.index("hyperliquid")  # the perp venue's own figures (its book draws depend on the venues)
    cap, margin, notional = perp_capacity_usd(bound.adapters[j], bound.books[j].book,
                                              bound.prepared.paths.close[0, 0][bound.coll_market[j]])
    perp = {"borrow_capacity_usd": cap, "collateral_usd": margin, "debt_usd": notional, "ratio": cap / margin,
            "utilisation": notional / cap}
    for k in KEYS:  # each family's figures are those of its venues alone
        assert both["by_family"]["lending"][k] == pytest.approx(lending[k], rel=1e-12)
        assert both["by_family"]["perp"][k] == pytest.approx(perp[k], rel=1e-12)
        assert both[k] == both["by_family"]["lending"][k]
    # a share of collateral; a leverage multiple (the blend of the two was 12.6x on the bundled book)
    assert 0.5 < both["ratio"] < 1.0 and both["by_family"]["perp"]["ratio"] > 5.0 and perp_alone["ratio"] > 5.0
    as_perp = _ce(_scenario(), "perp")
    assert as_perp["family"] == "perp" and all(as_perp[k] == both["by_family"]["perp"][k] for k in KEYS)
    with pytest.raises(ValueError, match="'lending' or 'perp'"):
        _ce(_scenario(), "vault")


def test_display_and_study_figures_follow_the_family():
    both = _ce(_scenario())
    m = {"capital_efficiency": both, "p_adl": {"mean": 0.1, "stderr": 0.03, "ci95": [0.05, 0.19]}}
    assert efficiency_family(m) == "lending"  # perp metrics declared, yet the headline is a share
    assert capital_efficiency_text(m).endswith("%")
    assert capital_efficiency_text(m, "perp") == f"{both['by_family']['perp']['ratio']:.2f}×"
    assert study_efficiency(m, "leverage") == both["by_family"]["perp"]["ratio"]
    assert study_efficiency(m, "share") == both["ratio"]
    # a stored result from before the family entry: a perp scenario's figures are a leverage multiple
    old = {"capital_efficiency": {k: both["by_family"]["perp"][k] for k in KEYS}, "p_adl": m["p_adl"]}
    assert efficiency_family(old) == "perp" and capital_efficiency_text(old).endswith("×")
    assert family_efficiency(both, "perp") == both["by_family"]["perp"]


def _metrics(lending_ratio: float, perp_ratio: float) -> dict:
    fam = {"lending": {"borrow_capacity_usd": 80e6 * lending_ratio / 0.8, "collateral_usd": 100e6, "debt_usd": 50e6,
                       "ratio": lending_ratio, "utilisation": 0.5},
           "perp": {"borrow_capacity_usd": 1e8 * perp_ratio, "collateral_usd": 1e8, "debt_usd": 5e8,
                    "ratio": perp_ratio, "utilisation": 0.2}}
    return {"capital_efficiency": {**fam["lending"], "family": "lending", "by_family": fam}}


def _deltas() -> dict:
    zero = {"delta": 0.0, "stderr": 0.0, "ci95": [0.0, 0.0], "significant": False}
    return {"bad_debt_usd": {"mean": zero, "es_99": zero}}


def test_a_proposal_that_moves_only_the_perp_venues_reads_as_leverage():
    e = efficiency_change(_metrics(0.8, 20.0), _metrics(0.8, 25.0))
    assert e["family"] == "perp" and e["delta_points"] == pytest.approx(500.0)
    text = verdict(_deltas(), e, 100)["text"]
    assert "buys $500M of notional capacity (+5.00× of capital efficiency (notional / margin))" in text
    assert "borrowing power" not in text
    line = _eff_line(e, "the proposal")
    assert "20.00× -> 25.00×" in line and "of the perp venues" in line and "%" not in line.split("lending")[0]


def test_a_proposal_that_moves_both_families_names_both():
    e = efficiency_change(_metrics(0.8, 20.0), _metrics(0.85, 25.0))
    assert e["family"] == "lending" and e["delta_points"] == pytest.approx(5.0)
    text = verdict(_deltas(), e, 100)["text"]
    assert "(+5.00 points of capital efficiency)" in text
    assert ", and buys $500M of notional capacity (+5.00× of capital efficiency (notional / margin)) on the perp venues" in text
    line = _eff_line(e, "the proposal")
    assert "80.00 % -> 85.00 %" in line and "20.00× -> 25.00×" in line


def test_the_search_judges_the_family_it_tunes():
    sc = parse_scenario(tomllib.loads(MIXED.read_text()), file=str(MIXED), base_dir=MIXED.parent)
    assert _efficiency_unit(sc, build_space(sc)) == "share"  # the default: the lending book's collaterals
    perp_only = build_space(sc, free=("hyperliquid:ETH.tier0.max_leverage",))
    assert _efficiency_unit(sc, perp_only) == "leverage"
    both = build_space(sc, free=("hyperliquid:ETH.tier0.max_leverage", "aave_v3:WETH.ltv_bps"))
    assert _efficiency_unit(sc, both) == "share"
