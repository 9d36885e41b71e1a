"""Perp snapshots: bad fields name their path; the CLI lists and validates perp venues; scenarios refuse them."""

import copy
import json

import pytest
from _cli_helpers import cascade

from optimizer.errors import InputError
from optimizer.snapshots import data_dir, load_adapter, snapshot_path
from protocols import PERP_ADAPTERS, InvalidParameters, SnapshotError


def snapshot(name):
    return json.loads(snapshot_path(name).read_text())


def _set(d, path, value):
    keys = path.split(".")
    node = d
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if value is KeyError:
        del node[last]
    elif isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value


@pytest.mark.parametrize("name, path, value, message", [
    ("dydx_v4", "liquidity_tiers.Large-Cap.maintenance_fraction", KeyError,
     "liquidity_tiers.Large-Cap.maintenance_fraction: missing"),
    ("dydx_v4", "markets.BTC-USD.liquidity_tier", "Huge-Cap", "markets.BTC-USD.liquidity_tier: unknown tier 'Huge-Cap'"),
    ("dydx_v4", "insurance_fund.balance_usd", "1M", "insurance_fund.balance_usd: expected number"),
    ("hyperliquid", "markets.BTC.tiers.1.max_leverage", "40", "markets.BTC.tiers[1].max_leverage: expected number"),
    ("hyperliquid", "markets.ETH.tiers.0.notional_floor_usd", 5, "markets.ETH.tiers[0].notional_floor_usd: the first tier"),
    ("hyperliquid", "liquidation.backstop_equity_fraction", KeyError, "liquidation.backstop_equity_fraction: missing"),
    ("binance_usdm", "markets.BTCUSDT.brackets.3.maintenance_margin_rate", KeyError,
     "markets.BTCUSDT.brackets[3].maintenance_margin_rate: missing"),
    ("binance_usdm", "markets.BTCUSDT.brackets", [], "markets.BTCUSDT.brackets: no brackets"),
    ("gmx_v2", "markets.ETH-USD.min_collateral_factor", None, "markets.ETH-USD.min_collateral_factor: expected number"),
    ("gmx_v2", "global", KeyError, "global.min_collateral_usd: missing"),
])
def test_bad_snapshot_fields_raise_snapshot_error_naming_the_path(name, path, value, message):
    data = copy.deepcopy(snapshot(name))
    _set(data, path, value)
    with pytest.raises(SnapshotError) as err:
        PERP_ADAPTERS[name](data)
    assert str(err.value).startswith(message), str(err.value)


def test_tiers_out_of_order_in_a_snapshot_file_are_refused_naming_file_and_rule(tmp_path):
    data = snapshot("binance_usdm")
    b = data["markets"]["BTCUSDT"]["brackets"]
    b[2]["notional_floor_usd"], b[3]["notional_floor_usd"] = b[3]["notional_floor_usd"], b[2]["notional_floor_usd"]
    f = tmp_path / "binance.json"
    f.write_text(json.dumps(data))
    with pytest.raises(InputError) as err:
        load_adapter("binance_usdm", f)
    msg = str(err.value)
    assert str(f) in msg and "BTCUSDT.bracket4.notional_floor_usd" in msg and "brackets in order" in msg


def test_maintenance_must_stay_below_initial_margin():
    b = load_adapter("binance_usdm")
    with pytest.raises(InvalidParameters, match=r"BTCUSDT.bracket1.maintenance_margin_rate=0.01.*"
                                                r"maintenance margin rate < initial margin rate"):
        b.with_params({"BTCUSDT.bracket1.maintenance_margin_rate": 0.01})  # 1/125 = 0.8 %


def test_leverage_below_one_is_refused():
    with pytest.raises(InvalidParameters, match=r"^BTC.tier0.max_leverage=0 is outside its bounds \[1, 50\]"):
        load_adapter("hyperliquid").with_params({"BTC.tier0.max_leverage": 0})
    with pytest.raises(InvalidParameters, match=r"^Large-Cap.initial_margin_fraction=1.5 is outside its bounds"):
        load_adapter("dydx_v4").with_params({"Large-Cap.initial_margin_fraction": 1.5})


def test_perp_snapshots_ship_in_the_data_folder_with_sources():
    readme = (data_dir() / "README.md").read_text()
    for name in PERP_ADAPTERS:
        assert snapshot_path(name).is_file()
        assert snapshot_path(name).name in readme
        meta = load_adapter(name).snapshot_meta
        assert meta["protocol"] == name and meta["as_of"]


# --------------------------------------------------------------------------------------------- CLI


def run_main(capsys, *args):
    """The console entry point in-process (same error handling as the installed command, no start-up cost)."""
    from optimizer.cli import main

    code = 0
    try:
        main(list(args))
    except SystemExit as e:
        code = e.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_installed_cli_lists_a_perp_venue_with_units_bounds_and_invariants(tmp_path):
    res = cascade("protocols", "dydx_v4", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    entry = json.loads(res.stdout)["adapters"][0]
    params = {p["name"]: p for p in entry["parameters"]}
    imf = params["Large-Cap.initial_margin_fraction"]
    assert imf["current"] == 0.02 and imf["unit"] == "fraction" and imf["upper"] == 1.0 and imf["as_of"]
    assert params["insurance_fund_usd"]["unit"] == "USD"
    assert any("open_interest_lower_cap <= open_interest_upper_cap" in r for r in entry["invariants"])


def test_cli_table_of_a_perp_venue(capsys):
    code, out, err = run_main(capsys, "protocols", "hyperliquid", "--asset", "BTC")
    assert code == 0, err
    assert "BTC.tier0.max_leverage" in out and "ETH.tier0" not in out and "tiers in order" in out


def test_cli_validates_a_perp_candidate(capsys):
    code, out, err = run_main(capsys, "validate", "gmx_v2", "--set", "BTC-USD.min_collateral_factor=0.01")
    assert code == 0, err
    assert "BTC-USD.min_collateral_factor: 0.005 -> 0.01" in out
    code, _, err = run_main(capsys, "validate", "gmx_v2", "--set", "BTC-USD.min_collateral_factor=0.001")
    assert code == 2 and len(err.strip().splitlines()) == 1
    for frag in ("BTC-USD.min_collateral_factor_for_liquidation=0.005", "min_collateral_factor=0.001",
                 "min_collateral_factor_for_liquidation <= min_collateral_factor"):
        assert frag in err


def test_cli_bad_perp_snapshot_is_a_one_line_error(capsys, tmp_path):
    data = snapshot("hyperliquid")
    del data["markets"]["SOL"]["tiers"][1]["max_leverage"]
    f = tmp_path / "hl.json"
    f.write_text(json.dumps(data))
    code, _, err = run_main(capsys, "protocols", "hyperliquid", "--snapshot", str(f))
    assert code == 2 and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert str(f) in err and "markets.SOL.tiers[1].max_leverage: missing" in err


def test_a_perp_venue_in_a_scenario_needs_a_perp_book(tmp_path):
    """Perp venues run in the cascade (optimizer.engine.venues.perp); a lending book under one is refused."""
    from optimizer.scenario.config import load_scenario

    text = (data_dir() / "scenarios" / "compound_v3_usdc_24h.toml").read_text()
    assert 'adapter = "compound_v3"' in text
    f = tmp_path / "perp.toml"
    f.write_text(text.replace('adapter = "compound_v3"', 'adapter = "hyperliquid"'))
    with pytest.raises(InputError) as err:
        load_scenario(f)
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith(f"{f}: protocols[0].book.kind: ")
    assert "must be one of perp_synthetic, perp_csv, got 'synthetic'" in msg
