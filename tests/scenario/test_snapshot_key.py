"""A scenario's `snapshot =` key replaces the bundled parameter snapshot of its protocol."""

import json

import pytest

from optimizer import data_dir
from optimizer.engine import prepare
from optimizer.errors import InputError
from optimizer.scenario.config import load_scenario

SCENARIO = """
[scenario]
name = "snap"
step_min = 60
horizon_h = 2
paths = 2
[assets.WETH]
model = "constant"
price_usd = 2000
[assets.USDC]
model = "constant"
price_usd = 1
[[protocols]]
adapter = "aave_v3"
{snapshot}
[protocols.book]
kind = "synthetic"
positions = 10
collateral = {{ WETH = 1 }}
debt = {{ USDC = 1 }}
collateral_usd = {{ dist = "constant", value = 10000 }}
ltv_utilisation = {{ dist = "constant", value = 0.5 }}
"""


def test_snapshot_file_sets_the_current_values(tmp_path):
    snap = json.loads((data_dir() / "protocols/aave_v3_ethereum_core.json").read_text())
    snap["assets"]["WETH"]["ltv_bps"] = 7000
    (tmp_path / "fetched.json").write_text(json.dumps(snap))
    (tmp_path / "s.toml").write_text(SCENARIO.format(snapshot='snapshot = "fetched.json"'))
    prep = prepare(load_scenario(tmp_path / "s.toml"))
    assert prep.current["aave_v3"].params["WETH.ltv_bps"] == 7000
    (tmp_path / "b.toml").write_text(SCENARIO.format(snapshot=""))
    assert prepare(load_scenario(tmp_path / "b.toml")).current["aave_v3"].params["WETH.ltv_bps"] != 7000


def test_bad_snapshot_names_the_scenario_key(tmp_path):
    (tmp_path / "fetched.json").write_text('{"protocol": "aave_v3"')
    (tmp_path / "s.toml").write_text(SCENARIO.format(snapshot='snapshot = "fetched.json"'))
    with pytest.raises(InputError, match=r"protocols\[0\]\.snapshot: .*malformed JSON"):
        prepare(load_scenario(tmp_path / "s.toml"))
    (tmp_path / "m.toml").write_text(SCENARIO.format(snapshot='snapshot = "nope.json"'))
    with pytest.raises(InputError, match=r"protocols\[0\]\.snapshot: file 'nope.json' not found"):
        load_scenario(tmp_path / "m.toml")
