"""The installed ``cascade`` command (run from a temp dir, so the wheel, not the source tree, is used)."""

import json

import pytest
from _cli_helpers import cascade, cascade_in_process, one_line_error


def test_protocols_lists_every_adapter_with_current_values_as_json(tmp_path):
    res = cascade("protocols", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    by_name = {a["adapter"]: a for a in data["adapters"]}
    assert set(by_name) == {"aave_v2", "aave_v3", "compound_v3", "maker", "maker_liq12", "binance_usdm", "dydx_v4",
                            "gmx_v2", "hyperliquid"}
    aave = {p["name"]: p for p in by_name["aave_v3"]["parameters"]}
    assert aave["WETH.liquidation_threshold_bps"]["current"] == 8300
    assert aave["WETH.liquidation_threshold_bps"]["unit"] == "bps"
    maker = {p["name"]: p for p in by_name["maker"]["parameters"]}
    assert maker["ETH-A.mat"]["current"] == 1.45
    comet = {p["name"]: p for p in by_name["compound_v3"]["parameters"]}
    assert comet["WETH.liquidate_collateral_factor"]["current"] == 0.88
    for entry in data["adapters"]:
        assert entry["as_of"] and entry["invariants"]


def test_protocols_table_names_parameters_and_units(tmp_path):
    res = cascade("protocols", "aave_v3", "--asset", "WETH", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "WETH.liquidation_threshold_bps" in res.stdout and "8300" in res.stdout
    assert "WBTC." not in res.stdout


def test_unknown_adapter_is_a_one_line_error(tmp_path):
    one_line_error(cascade_in_process("protocols", "aave_v9", cwd=tmp_path), "unknown adapter 'aave_v9'")


def test_candidate_with_ltv_above_threshold_is_refused(tmp_path):
    res = cascade_in_process("validate", "aave_v3", "--set", "WETH.ltv_bps=8400", cwd=tmp_path)
    one_line_error(res, "WETH.ltv_bps=8400", "WETH.liquidation_threshold_bps=8300",
                          "ltv <= liquidation threshold")


def test_valid_candidate_prints_the_change(tmp_path):
    res = cascade("validate", "aave_v3", "--set", "WETH.ltv_bps=7900", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "WETH.ltv_bps: 8050 -> 7900 (-150 bps)" in res.stdout


@pytest.mark.parametrize("content, fragment", [
    ('{"assets": {"WETH": ', "malformed JSON at line 1"),
    ('{"protocol": "aave_v3", "assets": {"WETH": {"decimals": 18}}}', "assets.WETH.ltv_bps: missing"),
    ('[1, 2]', "snapshot must be a JSON object"),
])
def test_malformed_snapshot_is_a_one_line_error_naming_file_and_field(tmp_path, content, fragment):
    snap = tmp_path / "bad.json"
    snap.write_text(content)
    res = cascade_in_process("protocols", "aave_v3", "--snapshot", str(snap), cwd=tmp_path)
    one_line_error(res, str(snap), fragment)


def test_bad_override_syntax(tmp_path):
    one_line_error(cascade_in_process("validate", "maker", "--set", "ETH-A.mat", cwd=tmp_path), "--set", "KEY=VALUE")
    one_line_error(cascade_in_process("validate", "maker", "--set", "ETH-A.mat=abc", cwd=tmp_path), "not a number")


def test_unknown_option_is_one_line(tmp_path):
    one_line_error(cascade_in_process("protocols", "--frobnicate", cwd=tmp_path), "--frobnicate")


def test_demo_simulates_the_default_scenario(tmp_path):
    res = cascade("demo", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "aave-v3-core-24h-jumps: 1000 paths x 288 steps" in res.stdout
    assert "bad_debt_usd" in res.stdout and "Liquidation map of WETH" in res.stdout
