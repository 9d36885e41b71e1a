"""Golden results: what is pinned, how it is computed, and how a run is compared with its file.

Two kinds of case, each one JSON file under ``tests/golden/``:

* ``scenarios/<case>.json``: a bundled scenario (``data/scenarios``) at a small path count (and, for the
  cases that also run the reference engine, a smaller book), seeded by the scenario itself. The file holds
  ``SimulationResult.to_json()`` (without the elapsed time and the machine-dependent scenario path) and the
  per-path series of ``per_path()``. Cases listed with ``engines = ("kernel", "reference")`` are checked
  on both engines against the same file.
* ``variants/<variant>.json``: the engine-agreement variants of ``tests/engine/test_engines_agree.py``
  (``tests/engine/scenario_factory.py``): the per-path ledger fields of the reference engine. The golden
  test checks the kernel against them (cheap); the agreement test checks kernel == reference, so the
  reference is pinned too.

Comparison: counts, steps and strings exactly; USD and ratios to ``RTOL`` relative (``ATOL`` absolute for
values that should be 0), the tolerance the engine-agreement tests use, far below any model change.
Regenerate with ``make golden`` (see ``tests/golden/README.md``).
"""

from __future__ import annotations

import json
import math
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "engine"))  # scenario_factory

from scenario_factory import write_scenario  # noqa: E402

from optimizer.engine import bind, evaluate, prepare  # noqa: E402
from optimizer.scenario.config import Scenario, parse_scenario  # noqa: E402
from optimizer.snapshots import data_dir  # noqa: E402

RTOL, ATOL = 1e-9, 1e-6


@dataclass(frozen=True)
class ScenarioCase:
    name: str
    scenario: str  # file name under data/scenarios
    paths: int
    positions: int | None = None  # override every synthetic book's size
    analyses: bool = False
    engines: tuple[str, ...] = ("kernel",)


SCENARIO_CASES: tuple[ScenarioCase, ...] = (
    ScenarioCase("core_24h_jumps", "aave_v3_core_24h_jumps.toml", paths=4),
    ScenarioCase("core_24h_jumps_small_book", "aave_v3_core_24h_jumps.toml", paths=2, positions=600,
                 engines=("kernel", "reference")),
    ScenarioCase("comet_usdc_24h", "compound_v3_usdc_24h.toml", paths=8, analyses=True),
    ScenarioCase("comet_usdc_24h_small_book", "compound_v3_usdc_24h.toml", paths=2, positions=500,
                 engines=("kernel", "reference")),
    ScenarioCase("replay_2020_03_12", "aave_v3_replay_2020-03-12.toml", paths=1, analyses=True),
    ScenarioCase("replay_2020_03_12_both_engines", "aave_v3_replay_2020-03-12.toml", paths=1,
                 engines=("kernel", "reference")),
    ScenarioCase("replay_2021_05_19", "aave_v3_replay_2021-05-19.toml", paths=1, analyses=True),
    ScenarioCase("replay_2021_05_19_both_engines", "aave_v3_replay_2021-05-19.toml", paths=1,
                 engines=("kernel", "reference")),
    ScenarioCase("maker_black_thursday", "maker_eth_a_black_thursday.toml", paths=1, engines=("reference",)),
    ScenarioCase("aave_v3_wsteth_book_2023_06_19", "aave_v3_wsteth_book_2023-06-19.toml", paths=1,
                 engines=("reference",)),
    # bundled after the engine redesign began (pinned from then on)
    ScenarioCase("emode1_lst_depeg_24h", "aave_v3_emode1_lst_depeg_24h.toml", paths=2, positions=400,
                 engines=("kernel", "reference")),
    ScenarioCase("stable_collateral_depeg_24h", "aave_v3_stable_collateral_depeg_24h.toml", paths=4),
    ScenarioCase("maker_wbtc_vaults_24h", "maker_wbtc_vaults_24h.toml", paths=2, engines=("reference",)),
    # perp venues (written from the reference engine; the perp kernel must agree with the same file)
    ScenarioCase("perp_hyperliquid_btc_2025_10_10", "perp_hyperliquid_btc_2025-10-10.toml", paths=1, positions=800,
                 engines=("reference", "kernel")),
    ScenarioCase("perp_binance_btc_synthetic_crash_3h", "perp_binance_btc_synthetic_crash_3h.toml", paths=2,
                 positions=400, engines=("reference", "kernel")),
    ScenarioCase("perp_mixed_aave_hyperliquid_eth_12h", "perp_mixed_aave_hyperliquid_eth_12h.toml", paths=2,
                 positions=400, engines=("reference", "kernel")),
    ScenarioCase("perp_binance_btc_2024_08_05_0013_0226", "perp_binance_btc_2024-08-05_0013-0226.toml", paths=1,
                 positions=800, engines=("reference",)),
    ScenarioCase("perp_binance_btc_2024_08_05_0502_0715", "perp_binance_btc_2024-08-05_0502-0715.toml", paths=1,
                 positions=800, engines=("reference",)),
    # forced flows (optimizer.engine.flows; the kernel's mirror optimizer.engine.kernel_flows must agree)
    ScenarioCase("perp_hyperliquid_btc_dealers_2025_10_10", "perp_hyperliquid_btc_dealers_2025-10-10.toml", paths=1,
                 positions=300, engines=("reference", "kernel")),
)


def load_case(case: ScenarioCase) -> Scenario:
    path = data_dir() / "scenarios" / case.scenario
    data = tomllib.loads(path.read_text())
    if case.positions is not None:
        for pr in data["protocols"]:
            if pr["book"]["kind"] in ("synthetic", "perp_synthetic"):
                pr["book"]["positions"] = case.positions
    return parse_scenario(data, file=str(path), base_dir=path.parent).with_overrides(paths=case.paths)


def run_scenario_case(case: ScenarioCase, engine: str) -> dict[str, Any]:
    res = evaluate(prepare(load_case(case)), engine=engine, analyses=case.analyses)
    out = res.to_json()
    out.pop("elapsed_s", None)
    out.pop("scenario_file", None)
    out.pop("engine", None)  # the same file serves both engines
    out["per_path"] = {k: np.asarray(v).tolist() for k, v in res.per_path().items()}
    out["accounts_liquidated_total"] = [int(np.sum(a)) for a in res.raw.account_liquidated]
    return out


# ------------------------------------------------------------------------------ engine-agreement variants

def variants() -> dict[str, dict[str, Any]]:
    from test_engines_agree import VARIANTS  # the one list of variants

    return VARIANTS


VARIANT_FIELDS = ("liquidations", "debt_repaid_usd", "collateral_seized_usd", "liquidator_bonus_usd",
                  "protocol_fee_usd", "realised_bad_debt_usd", "unrealised_bad_debt_usd", "horizon_exposure_usd",
                  "inventory_usd",
                  "returned_to_owner_usd", "debt_removed_usd", "initial_debt_usd", "first_liquidation_step",
                  "last_liquidation_step", "market_low_min", "exo_low_min")


def raw_to_json(raw: Any) -> dict[str, Any]:
    out = {f: np.asarray(getattr(raw, f)).tolist() for f in VARIANT_FIELDS}
    out["account_liquidated"] = [np.asarray(a).tolist() for a in raw.account_liquidated]
    return out


def run_variant(tmp: Path, variant: str, engine: str) -> dict[str, Any]:
    from optimizer.engine.reference import run_reference
    from optimizer.engine.simulate import run_kernel
    from optimizer.scenario.config import load_scenario

    path = write_scenario(tmp, name=f"{variant}.toml", **variants()[variant])
    bound = bind(prepare(load_scenario(path)))
    raw = run_kernel(bound)[0] if engine == "kernel" else run_reference(bound)
    return raw_to_json(raw)


# ------------------------------------------------------------------------------ files and comparison

def golden_path(kind: str, name: str) -> Path:
    return HERE / kind / f"{name}.json"


def read_golden(kind: str, name: str) -> dict[str, Any]:
    p = golden_path(kind, name)
    if not p.is_file():
        raise AssertionError(f"no golden file {p}; create it with `make golden` and review the diff")
    return json.loads(p.read_text())


def dumps(obj: Any) -> str:
    return json.dumps(obj, indent=1, sort_keys=True, allow_nan=True) + "\n"


def differences(expected: Any, actual: Any, where: str = "", out: list[str] | None = None,
                limit: int = 20) -> list[str]:
    """Where ``actual`` departs from ``expected`` (empty list: it reproduces the golden file)."""
    out = [] if out is None else out
    if len(out) >= limit:
        return out
    if isinstance(expected, dict) and isinstance(actual, dict):
        for k in sorted(set(expected) | set(actual)):
            if k not in actual:
                out.append(f"{where}.{k}: missing (golden has it)")
            elif k not in expected:
                out.append(f"{where}.{k}: new key (not in the golden file)")
            else:
                differences(expected[k], actual[k], f"{where}.{k}", out, limit)
    elif isinstance(expected, list) and isinstance(actual, list):
        if len(expected) != len(actual):
            out.append(f"{where}: length {len(actual)} != golden {len(expected)}")
        else:
            for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
                differences(e, a, f"{where}[{i}]", out, limit)
    elif isinstance(expected, bool) or isinstance(actual, bool) or isinstance(expected, str) or expected is None:
        if expected != actual:
            out.append(f"{where}: {actual!r} != golden {expected!r}")
    elif isinstance(expected, int) and isinstance(actual, int):
        if expected != actual:
            out.append(f"{where}: {actual} != golden {expected}")
    elif isinstance(expected, (int, float)) and isinstance(actual, (int, float)):
        e, a = float(expected), float(actual)
        same = (math.isnan(e) and math.isnan(a)) or e == a or abs(a - e) <= ATOL + RTOL * abs(e)
        if not same:
            out.append(f"{where}: {a!r} != golden {e!r}")
    else:
        out.append(f"{where}: {type(actual).__name__} != golden {type(expected).__name__}")
    return out
