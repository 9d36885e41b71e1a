"""A tiny Black Thursday slice (2020-03-12 09:00-13:00, 80 ETH-A vaults) for fast backtest tests.

Price slices are cut from the bundled 10-minute CSVs (``optimizer.snapshots.data_dir()``), so the
tests run against the installed package; the gas series is the bundled one (aligned by time).
"""

from __future__ import annotations

import json
from pathlib import Path

from optimizer.snapshots import data_dir

START, END = "2020-03-12T09:00", "2020-03-12T13:00"

AMPLE = {"keepers": [{"strategy": "value", "count": 2, "dai_capacity_dai": 1e9, "max_gas_gwei": 1e5, "margin": 0.03},
                     {"strategy": "minimal", "count": 1, "dai_capacity_dai": 1000, "max_gas_gwei": 1e5}],
         "recycle_collateral": False}
SCARCE_DAI = {"keepers": [{"strategy": "value", "count": 2, "dai_capacity_dai": 2000, "max_gas_gwei": 1e5,
                           "margin": 0.03},
                          {"strategy": "minimal", "count": 1, "dai_capacity_dai": 1000, "max_gas_gwei": 1e5}],
              "recycle_collateral": False}
GAS_PRICED_OUT = {"keepers": [{"strategy": "value", "count": 2, "dai_capacity_dai": 1e9, "max_gas_gwei": 5,
                               "margin": 0.03},
                              {"strategy": "minimal", "count": 1, "dai_capacity_dai": 1000, "max_gas_gwei": 1e5}],
                  "recycle_collateral": False}

ACTUAL = """timestamp,protocol,account,collateral_asset,collateral_seized_tokens,debt_asset,debt_repaid_tokens,collateral_price_usd,debt_price_usd,bad_debt_usd
2020-03-12T11:05:00Z,maker_liq12,0xa,ETH,50,DAI,4000,130,1.05,
2020-03-12T11:45:00Z,maker_liq12,0xb,ETH,50,DAI,0.000001,128,1.06,5000
2020-03-12T12:15:00Z,maker_liq12,0xc,ETH,20,DAI,2500,136,1.05,0
2020-03-12T12:20:00Z,aave_v2,0xd,WETH,1,USDC,100,136,,0
"""


def scenario_text(*, keepers: str | None = "keepers.json", positions: int = 80, replicas: int = 2,
                  snapshot: str | None = None, backtest: bool = True) -> str:
    proto = ['[[protocols]]', 'adapter = "maker_liq12"']
    if keepers:
        proto.append(f'keepers = "{keepers}"')
    if snapshot:
        proto.append(f'snapshot = "{snapshot}"')
    text = f"""[scenario]
name = "tiny-black-thursday"
step_min = 10
paths = 1
seed = 11

[assets.ETH]
model = "replay"
csv = "eth.csv"
[assets.ETH.liquidity]
model = "sqrt"
daily_volume_usd = 1.5e9
daily_sigma = 0.05
recovery_half_life_min = 30

[assets.DAI]
model = "replay"
csv = "dai.csv"

[liquidators]
gas_per_call = 150000
gas_csv = "gas/eth_gas_gwei_10m_2020-03-12.csv"
gas_token = "ETH"

{chr(10).join(proto)}
[protocols.book]
kind = "synthetic"
positions = {positions}
collateral = {{ "ETH-A" = 1.0 }}
debt = {{ DAI = 1.0 }}
collateral_usd = {{ dist = "lognormal", median = 20000, sigma = 1.2, min = 1500 }}
health = {{ dist = "lognormal", median = 1.3, sigma = 0.15, min = 1.05 }}
"""
    if backtest:
        text += f"""
[backtest]
actual = "actual.csv"
replicas = {replicas}
documented = ["count", "collateral_seized_usd", "debt_repaid_usd", "bad_debt_usd", "timing"]
note = "hand-made record for the tests"
"""
    return text


def files(population: dict | None = None) -> dict[str, str]:
    """The slice's files (name -> text) for a scenario folder."""
    d = data_dir()
    out = {}
    for name, src in (("eth.csv", d / "prices" / "eth_usd_10m_2020-03-12.csv"),
                      ("dai.csv", d / "prices" / "dai_usd_10m_2020-03-12.csv")):
        lines = src.read_text().splitlines()
        out[name] = "\n".join([lines[0], *(ln for ln in lines[1:] if START <= ln[:16] < END)]) + "\n"
    out["keepers.json"] = json.dumps(population if population is not None else
                                     json.loads((d / "behaviour" / "keepers_2020-03-12.json").read_text()))
    out["actual.csv"] = ACTUAL
    return out


def write(folder: Path, population: dict | None = None, **kw) -> Path:
    for name, text in files(population).items():
        (folder / name).write_text(text)
    path = folder / "scenario.toml"
    path.write_text(scenario_text(**kw))
    return path


def liq12_snapshot() -> str:
    """The bundled ETH-A snapshot switched to Liquidations 1.2 (Cat 1.1.0: dunk 50k DAI, box 30M DAI)."""
    snap = json.loads((data_dir() / "protocols" / "maker_liq12_eth_a_2020-03-12.json").read_text())
    snap["cat_version"] = snap["flipper_version"] = "1.2"
    ilk = snap["ilks"]["ETH-A"]
    del ilk["lump_tokens"]
    ilk["dunk_dai"] = 50_000
    snap["global"]["box_dai"] = 100_000  # small, so the box binds in the tiny slice
    return json.dumps(snap)
