"""The specific wrong answers of the hardening issue, one test each (in-process unless the process matters)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from _cli_helpers import cascade_in_process, one_line_error

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from scenario_factory import write_scenario

CASCADE = str(Path(sys.executable).with_name("cascade"))


def _with(tmp_path, old: str, new: str, **over) -> Path:
    p = write_scenario(tmp_path, **{"paths": 2, **over})
    text = p.read_text()
    assert old in text, old
    p.write_text(text.replace(old, new, 1))
    return p


# ---------------------------------------------------------------------------------------- values

@pytest.mark.parametrize("old, new, fragments", [
    ("horizon_h = 12", "horizon_h = 0", ["scenario.horizon_h", "(0,"]),
    ("horizon_h = 12", "horizon_h = 0.01", ["scenario.horizon_h", "at least one step"]),
    ("horizon_h = 12", "horizon_h = 1e300", ["scenario.horizon_h", "must be in"]),
    ("horizon_h = 12\nstep_min = 10", "horizon_h = 4000\nstep_min = 0.01", ["scenario.horizon_h",
                                                                          "steps (limit 2000000)"]),
    ("positions = 1500", "positions = 1000000000", ["protocols[0].book.positions", "GiB", "fewer positions"]),
    ("min = 300 }", 'min = "300" }', ["collateral_usd.min", "finite number"]),
    ("median = 20000,", "median = 1e300,", ["collateral_usd.median", "must be in"]),
    ("sigma = 1.6,", "sigma = 1e6,", ["collateral_usd.sigma", "must be in"]),
    ("min = 300 }", "min = 1e308 }", ["collateral_usd.min", "must be in"]),
    ("price_usd = 3000", "price_usd = 1e308", ["assets.WETH.price_usd", "must be in"]),
    ("ltv_utilisation = {", "emode = 999\nltv_utilisation = {", ["protocols[0].book.emode", "unknown eMode category 999"]),
    ("sigma_annual = 0.7", "sigma_annual = 0.7\nmu_annual = 1e300", ["assets.WBTC.mu_annual", "<="]),
])
def test_values_the_engine_used_to_trip_on_are_refused_at_load(tmp_path, old, new, fragments):
    one_line_error(cascade_in_process("simulate", _with(tmp_path, old, new), "--no-analyses", cwd=tmp_path),
                   *fragments)


def test_prices_that_would_overflow_are_refused_before_the_engine(tmp_path):
    p = _with(tmp_path, "sigma_annual = 0.7", "sigma_annual = 0.7\nmu_annual = 10", horizon_h=24 * 365 * 9)
    one_line_error(cascade_in_process("simulate", p, "--no-analyses", "--paths", "1", cwd=tmp_path),
                   "s.toml: assets.W", "simulated prices leave [1e-12, 1e+12] USD")


def test_kernel_forced_on_a_flipper_auction_book_is_a_one_line_error(tmp_path):
    # Liquidations 1.2 (Cat/Flipper) stays on the reference engine (Liquidations 2.0 runs on the kernel)
    one_line_error(cascade_in_process("simulate", "maker_eth_a_black_thursday_liq12", "--engine", "kernel",
                                      cwd=tmp_path),
                   "--engine", "kernel engine cannot run", "auctions")


def test_a_set_error_names_the_option_not_the_scenario(tmp_path):
    p = write_scenario(tmp_path, paths=2)
    res = cascade_in_process("simulate", p, "--set", "WETH.liquidation_threshold_bps=7000", cwd=tmp_path)
    one_line_error(res, "cascade: error: --set: ", "ltv <= liquidation threshold")
    assert str(p) not in res.stderr


# ---------------------------------------------------------------------------------------- outputs

def test_an_unwritable_output_is_refused_before_the_simulation(tmp_path, monkeypatch):
    import optimizer.engine as engine

    def boom(*a, **k):
        raise AssertionError("the simulation ran before the output path was checked")

    monkeypatch.setattr(engine, "prepare", boom)
    p = write_scenario(tmp_path, paths=2)
    (tmp_path / "a-file").write_text("x")
    one_line_error(cascade_in_process("simulate", p, "--events", tmp_path / "a-file" / "ev.csv", cwd=tmp_path),
                   "--events", "ev.csv", "not a directory")
    one_line_error(cascade_in_process("simulate", p, "--accounts", "/proc/no/such/dir/a.csv", cwd=tmp_path),
                   "--accounts", "cannot write")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        if not os.access(ro, os.W_OK):  # (root writes anywhere)
            one_line_error(cascade_in_process("simulate", p, "--events", ro / "ev.csv", cwd=tmp_path), "--events",
                           "ev.csv", "cannot write")
    finally:
        ro.chmod(0o700)


def test_outputs_get_the_users_umask_not_0600(tmp_path):
    p = write_scenario(tmp_path, paths=2)
    old = os.umask(0o027)
    try:
        res = cascade_in_process("simulate", p, "--no-analyses", "--events", "ev.csv", "--accounts", "acc.csv",
                                 cwd=tmp_path)
    finally:
        os.umask(old)
    assert res.returncode == 0, res.stderr
    for name in ("ev.csv", "acc.csv"):
        assert (tmp_path / name).stat().st_mode & 0o777 == 0o640
    assert not list(tmp_path.glob(".ev.csv.*")), "no temporary file left"


def test_the_streamed_events_csv_is_the_in_memory_one_and_the_metrics_do_not_change(tmp_path):
    import pandas as pd

    from optimizer.engine import evaluate, prepare
    from optimizer.events import simulate_with_events
    from optimizer.scenario.config import load_scenario

    prep = prepare(load_scenario(write_scenario(tmp_path, paths=5)))
    whole = evaluate(prep, {}, events=True)
    streamed = simulate_with_events(prep, {}, events_path=tmp_path / "ev.csv", analyses=False, paths_per_batch=2)
    got = pd.read_csv(tmp_path / "ev.csv", keep_default_na=False, float_precision="round_trip")
    want = whole.events()
    assert list(got.columns) == list(want.columns) and len(got) == len(want) > 0
    for c in want.columns:
        if c == "timestamp":
            assert (got[c] == "").all()  # synthetic paths: no wall-clock time (``hours`` gives it)
        elif want[c].dtype == object:
            assert got[c].astype(str).tolist() == want[c].astype(str).tolist(), c
        else:
            assert got[c].tolist() == want[c].tolist(), c  # floats round-trip exactly
    assert streamed.metrics() == whole.metrics()


def test_a_replay_events_csv_has_utc_timestamps(tmp_path):
    import pandas as pd

    res = cascade_in_process("simulate", "aave_v3_replay_2020-03-12", "--no-analyses", "--events", "ev.csv",
                             cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    ev = pd.read_csv(tmp_path / "ev.csv")
    assert len(ev) > 0 and ev["timestamp"].str.match(r"^2020-03-1[23]T\d\d:\d\d:\d\dZ$").all()


# ---------------------------------------------------------------------------------------- the CLI

def test_no_arguments_prints_the_normal_help(tmp_path):
    res = cascade_in_process(cwd=tmp_path)
    assert res.returncode == 2
    assert res.stdout.startswith("Usage: cascade") and "Commands:" in res.stdout and "simulate" in res.stdout
    assert len(res.stdout.splitlines()) > 5 and not res.stderr


def test_a_closed_pipe_is_a_normal_exit(tmp_path):
    for args in (["protocols"], ["protocols", "--json"]):
        proc = subprocess.Popen([CASCADE, *args], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        proc.stdout.readline()
        proc.stdout.close()  # `| head -1`
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 0, err
        assert "Traceback" not in err and "Broken pipe" not in err


def test_validate_reports_a_steward_step_limit_breach(tmp_path):
    res = cascade_in_process("validate", "aave_v3", "--set", "WETH.ltv_bps=3000", cwd=tmp_path)
    one_line_error(res, "--set", "WETH.ltv_bps: 8050 -> 3000", "steward step limit ±500 bps")
    ok = cascade_in_process("validate", "aave_v3", "--set", "WETH.ltv_bps=3000", "--no-steward-limits", cwd=tmp_path)
    assert ok.returncode == 0 and "bound and invariant" in ok.stdout
    within = cascade_in_process("validate", "aave_v3", "--set", "WETH.ltv_bps=7600", cwd=tmp_path)
    assert within.returncode == 0 and "steward step limits" in within.stdout
    one_line_error(cascade_in_process("validate", "maker", "--set", "ETH-A.mat=1.6", cwd=tmp_path), "±0.05")


def test_json_output_is_strict_json(tmp_path):
    import json

    from optimizer.cli._common import dumps_json

    text = dumps_json({"a": float("inf"), "b": [float("nan"), 1.5], "c": {"d": -float("inf")}})
    assert json.loads(text, parse_constant=lambda c: pytest.fail(c)) == {"a": None, "b": [None, 1.5], "c": {"d": None}}
