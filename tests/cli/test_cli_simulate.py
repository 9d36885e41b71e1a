"""``cascade simulate`` through the installed command: outputs, files, and one-line errors."""

import csv
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from _cli_helpers import cascade, cascade_in_process, one_line_error
from scenario_factory import write_scenario


def test_simulate_json_events_and_accounts(tmp_path):
    scen = write_scenario(tmp_path, paths=4)
    res = cascade("simulate", str(scen), "--json", "--events", "ev.csv", "--accounts", "acc.csv", "--seed", "5",
                  cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["seed"] == 5 and out["paths"] == 4 and out["scenario"] == "engine-test"
    m = out["metrics"]
    for key in ("mean", "stderr", "var_95", "var_99", "es_99", "p_positive"):
        assert key in m["bad_debt_usd"]
    for key in ("liquidated_usd", "liquidations", "amplification", "critical_drop", "capital_efficiency"):
        assert key in m
    assert 0 < m["critical_drop"]["first_liquidation"] < 0.5
    rows = list(csv.DictReader((tmp_path / "ev.csv").open()))
    assert list(rows[0]) == ["path", "step", "hours", "timestamp", "protocol", "account", "collateral_asset",
                             "debt_repaid_usd", "collateral_seized_usd", "bonus_usd", "protocol_fee_usd", "bad_debt_usd",
                             "price"]
    assert {r["collateral_asset"] for r in rows} <= {"WETH", "WBTC"} and rows[0]["timestamp"] == ""
    assert len(rows) == pytest.approx(m["liquidations"]["mean"] * 4)
    acc = list(csv.DictReader((tmp_path / "acc.csv").open()))
    assert len(acc) == 1500 and all(0.0 <= float(r["p_liquidated"]) <= 1.0 for r in acc)
    assert any(float(r["p_liquidated"]) > 0 for r in acc)
    lm = out["liquidation_map"]
    assert len(lm["price_ratio"]) == len(lm["static_liquidatable_usd"]) == len(lm["cascade_liquidated_usd"])
    assert lm["static_liquidatable_usd"] == sorted(lm["static_liquidatable_usd"])  # cumulative as price falls


def test_set_override_changes_the_result_and_is_reported(tmp_path):
    scen = write_scenario(tmp_path, paths=3)
    a = json.loads(cascade_in_process("simulate", str(scen), "--json", "--no-analyses", cwd=tmp_path).stdout)
    b = json.loads(cascade_in_process("simulate", str(scen), "--json", "--no-analyses", "--set",
                                      "WETH.liquidation_threshold_bps=8100", cwd=tmp_path).stdout)
    assert b["params"]["aave_v3"]["WETH.liquidation_threshold_bps"] == 8100
    assert b["metrics"]["liquidations"]["mean"] > a["metrics"]["liquidations"]["mean"]


@pytest.mark.parametrize("args, fragments", [
    # a bad --set or --paths is blamed on the option, not on the scenario file
    (["--set", "WETH.ltv_bps=9000"], ["cascade: error: --set: ", "WETH.ltv_bps=9000", "ltv <= liquidation threshold"]),
    (["--set", "maker:ETH-A.mat=2"], ["--set", "no protocol 'maker'"]),
    (["--paths", "100000000"], ["cascade: error: --paths: ", "GiB"]),
])
def test_bad_overrides_are_one_line_errors(tmp_path, args, fragments):
    scen = write_scenario(tmp_path, paths=2)
    one_line_error(cascade_in_process("simulate", str(scen), *args, cwd=tmp_path), *fragments)


@pytest.mark.parametrize("text, fragments", [
    ("[scenario\nname=1", ["bad.toml", "malformed TOML"]),
    ('[scenario]\nname="x"\nstep_min=5\n[assets.X]\nmodel="gbm"\nprice_usd=1\nsigma_annual=0.5\n'
     '[[protocols]]\nadapter="aave_v9"\n[protocols.book]\nkind="synthetic"', ["protocols[0].adapter", "aave_v9"]),
])
def test_malformed_scenarios_are_one_line_errors(tmp_path, text, fragments):
    (tmp_path / "bad.toml").write_text(text)
    one_line_error(cascade_in_process("simulate", "bad.toml", cwd=tmp_path), *fragments)


def test_missing_scenario_file(tmp_path):
    one_line_error(cascade_in_process("simulate", "nope.toml", cwd=tmp_path), "nope.toml", "file not found")
