"""Sensitivity of the Black Thursday backtest to its stated assumptions (docs/backtest.md, the table there).

Run by hand: `python tools/backtest_sensitivity.py [--replicas N] [--only NAME]` (not run by CI; minutes).
Each variant changes ONE assumption of `data/scenarios/maker_eth_a_black_thursday_liq12.toml` (or its
keeper file) to the edge of the range its source states, writes the changed files into a temporary
folder (the other paths resolve to the bundled data/) and runs `cascade backtest` on the same seeds, so
the differences between variants are paired (same book draws, same prices).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optimizer.backtest.run import run_backtest
from optimizer.scenario.config import load_scenario

SCENARIO = ROOT / "data/scenarios/maker_eth_a_black_thursday_liq12.toml"
KEEPERS = ROOT / "data/behaviour/keepers_2020-03-12.json"
GAS = ROOT / "data/gas/eth_gas_gwei_10m_2020-03-12_13.csv"


def _keepers(change) -> dict:
    k = json.loads(KEEPERS.read_text())
    change(k)
    return k


def _scale_dai(f: float):
    def change(k):
        for g in k["keepers"]:
            if g["strategy"] == "value":
                g["dai_capacity_dai"] *= f
    return change


def _set(key, value):
    def change(k):
        k[key] = value
    return change


def _gas_13th(gwei: float) -> str:
    lines = GAS.read_text().splitlines()
    return "\n".join([lines[0], *(ln if ln < "2020-03-13" else f"{ln.split(',')[0]},{gwei}" for ln in lines[1:])]) + "\n"


#: name -> (scenario text replacements, keeper change or None, extra files)
VARIANTS = {
    "default": ([], None, {}),
    "no recycling (the first pass)": ([], _set("recycle_collateral", False), {}),
    "recycle delay 10 min": ([], _set("recycle_delay_min", 10), {}),
    "recycle delay 240 min": ([], _set("recycle_delay_min", 240), {}),
    "value keepers' DAI x4 (2M each)": ([], _scale_dai(4.0), {}),
    "value keepers' DAI /5 (100k each)": ([], _scale_dai(0.2), {}),
    "gas on 13 Mar 40 gwei": ([('gas_csv = "gas/eth_gas_gwei_10m_2020-03-12_13.csv"', 'gas_csv = "gas.csv"')], None,
                              {"gas.csv": _gas_13th(40.0)}),
    "CR floor 168 % (health min 1.12)": ([("sigma = 0.45, min = 1.0 }", "sigma = 0.45, min = 1.12 }")], None, {}),
    "CR spread sigma 0.30": ([("median = 3.1, sigma = 0.45", "median = 3.1, sigma = 0.30")], None, {}),
    "CR spread sigma 0.60": ([("median = 3.1, sigma = 0.45", "median = 3.1, sigma = 0.60")], None, {}),
}


def run(name: str, replicas: int) -> dict:
    subs, keepers, extra = VARIANTS[name]
    text = SCENARIO.read_text()
    for a, b in subs:
        assert a in text, (name, a)
        text = text.replace(a, b)
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        if keepers is not None:
            (d / "keepers.json").write_text(json.dumps(_keepers(keepers)))
            text = text.replace('keepers = "behaviour/keepers_2020-03-12.json"', 'keepers = "keepers.json"')
        for f, body in extra.items():
            (d / f).write_text(body)
        (d / "scenario.toml").write_text(text)
        bt = run_backtest(load_scenario(d / "scenario.toml"), replicas=replicas)
        res = bt.to_json()
    v = res["venue"]
    return {"variant": name, "bad_debt_usd": res["totals"]["bad_debt_usd"]["simulated"],
            "bad_debt_stderr": res["totals"]["bad_debt_usd"]["simulated_stderr"],
            "zero_bid_share": v["zero_bid_auctions"]["mean"] / max(v["auctions_dealt"]["mean"], 1),
            "zero_bid_collateral_usd": v["collateral_won_at_zero_bid_usd"]["mean"],
            "auctions": v["auctions_dealt"]["mean"],
            "first_wave": res["timing"]["first_wave"]["simulated"]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--replicas", type=int, default=2)
    ap.add_argument("--only", action="append", default=[])
    args = ap.parse_args()
    for name in args.only or VARIANTS:
        r = run(name, args.replicas)
        se = f" ± {r['bad_debt_stderr'] / 1e6:.2f}M" if r["bad_debt_stderr"] is not None else ""
        print(f"| {name} | {r['bad_debt_usd'] / 1e6:.2f}M{se} | {r['zero_bid_share']:.0%} | "
              f"{r['zero_bid_collateral_usd'] / 1e6:.1f}M | {r['auctions']:,.0f} | {r['first_wave'][11:16]} |",
              flush=True)


if __name__ == "__main__":
    main()
