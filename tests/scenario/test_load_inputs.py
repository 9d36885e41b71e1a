"""load_scenario reads and validates every file; prepare does no I/O; protocol ids; the CSV `emode` column."""

import builtins
import json
import shutil

import numpy as np
import pytest

from optimizer import data_dir
from optimizer.engine import evaluate, prepare
from optimizer.errors import InputError
from optimizer.scenario.config import load_scenario

REPLAY = """
[scenario]
name = "files"
step_min = 10
paths = 1
seed = 3

[assets.WETH]
model = "replay"
csv = "eth.csv"
[assets.WETH.liquidity]
model = "sqrt"
daily_volume_usd = 2e8
daily_sigma = 0.05
recovery_half_life_min = 30

[assets.USDC]
price_usd = 1.0
model = "constant"

[liquidators]
gas_csv = "gas.csv"
gas_token = "WETH"

[[protocols]]
adapter = "aave_v3"
snapshot = "snap.json"
[protocols.book]
kind = "csv"
path = "book.csv"
"""


def _files(tmp_path, book_rows=None, header="account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount"):
    shutil.copy(data_dir() / "prices" / "eth_usd_10m_2020-03-12.csv", tmp_path / "eth.csv")
    shutil.copy(data_dir() / "gas" / "eth_gas_gwei_10m_2020-03-12.csv", tmp_path / "gas.csv")
    shutil.copy(data_dir() / "protocols" / "aave_v3_ethereum_core.json", tmp_path / "snap.json")
    rows = book_rows or [f"a{i},aave_v3,WETH,{1 + i % 7},USDC,{100 * (1 + i % 7) * (1.1 + i % 3 / 10)}"
                         for i in range(40)]
    (tmp_path / "book.csv").write_text("\n".join([header, *rows]) + "\n")
    (tmp_path / "s.toml").write_text(REPLAY)
    return tmp_path / "s.toml"


def test_prepare_reads_no_file(tmp_path, monkeypatch):
    path = _files(tmp_path)
    sc = load_scenario(path)
    expected = evaluate(prepare(sc), analyses=False).metrics()
    for f in ("eth.csv", "gas.csv", "snap.json", "book.csv", "s.toml"):
        (tmp_path / f).unlink()  # everything the scenario named is gone

    def no_io(*a, **k):
        raise AssertionError("prepare/evaluate opened a file")

    import optimizer.io

    monkeypatch.setattr(builtins, "open", no_io)
    monkeypatch.setattr(optimizer.io, "read_bytes", no_io)
    got = evaluate(prepare(sc), analyses=False).metrics()
    assert json.dumps(got, sort_keys=True) == json.dumps(expected, sort_keys=True)
    assert got["liquidations"]["mean"] > 0


def test_a_bad_file_is_reported_at_load_with_the_scenario_key(tmp_path):
    path = _files(tmp_path, ["a0,aave_v3,WETH,1,USDC,100", "a1,aave_v3,WETH,oops,USDC,100"])
    with pytest.raises(InputError, match=r"protocols\[0\]\.book\.path: .*book\.csv: line 3: collateral_amount"):
        load_scenario(path)
    _files(tmp_path)
    (tmp_path / "gas.csv").write_text("timestamp,avg_gas_gwei\n2020-03-12T00:00:00Z,x\n2020-03-12T00:10:00Z,1\n")
    with pytest.raises(InputError, match=r"liquidators\.gas_csv: .*gas\.csv: line 2, column avg_gas_gwei"):
        load_scenario(path)
    _files(tmp_path)
    (tmp_path / "eth.csv").write_bytes(b"\xff\xfe" + "timestamp".encode("utf-16-le"))
    with pytest.raises(InputError, match="UTF-16"):
        load_scenario(path)


# ------------------------------------------------------------------------------ the emode column

EMODE_HEADER = "account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount,emode"


def test_emode_column_sets_each_accounts_category(tmp_path):
    rows = ["a,aave_v3,wstETH,10,,,1", "a,aave_v3,,,WETH,9,1", "b,aave_v3,WETH,1,USDC,100,0", "c,aave_v3,WETH,1,USDC,100,"]
    path = _files(tmp_path, rows, EMODE_HEADER)
    text = (tmp_path / "s.toml").read_text().replace('[assets.USDC]', '[assets.wstETH]\nprice_usd = 2300\n'
                                                     'model = "constant"\n\n[assets.USDC]')
    path.write_text(text)
    book = load_scenario(path).protocols[0].csv_book
    assert book.accounts.tolist() == ["a", "b", "c"]
    np.testing.assert_array_equal(book.book.category, [1, 0, 0])
    prep = prepare(load_scenario(path))
    ad = prep.current["aave_v3"]
    # account a is in the ETH-correlated eMode: its wstETH counts at the eMode LT
    lt = ad.params["emode1.liquidation_threshold_bps"] / 1e4
    px = {"wstETH": 2300.0, "WETH": float(prep.paths.close[0, 0, 0]), "USDC": 1.0}
    from protocols import Prices

    b = book.book
    hf = ad.health(b, Prices.from_mapping(b, px))
    assert hf[0] == pytest.approx(10 * 2300 * lt / (9 * px["WETH"]), rel=1e-12)


def test_a_real_book_may_owe_a_reserve_closed_to_borrowing_and_hold_one_that_is_not_collateral(tmp_path):
    """Disabling borrowing (FRAX) stops new borrows only and disabling collateral (RLUSD) makes a supplied
    balance count for nothing: a book read from the chain keeps such legs, and the rules treat them so."""
    snap = json.loads((data_dir() / "protocols" / "aave_v3_ethereum_core.json").read_text())
    assert not snap["assets"]["FRAX"]["borrowing_enabled"]
    assert not snap["assets"]["RLUSD"]["usage_as_collateral_enabled"]
    rows = ["a,aave_v3,WETH,1,FRAX,1500", "a,aave_v3,RLUSD,100000,,", "b,aave_v3,WETH,1,USDC,100"]
    path = _files(tmp_path, rows)
    text = (tmp_path / "s.toml").read_text().replace("[assets.USDC]", "[assets.FRAX]\nprice_usd = 1.0\n"
                                                     'model = "constant"\n\n[assets.RLUSD]\nprice_usd = 1.0\n'
                                                     'model = "constant"\n\n[assets.USDC]')
    path.write_text(text)
    book = load_scenario(path).protocols[0].csv_book.book
    assert "FRAX" in book.debt_assets and "RLUSD" in book.collateral_assets
    prep = prepare(load_scenario(path))
    ad = prep.current["aave_v3"]
    assert "FRAX" not in ad.debt_assets  # a synthetic book still cannot draw new FRAX borrows
    from protocols import Prices

    weth = float(prep.paths.close[0, 0, 0])
    px = {"WETH": weth, "FRAX": 1.0, "RLUSD": 1.0, "USDC": 1.0}
    hf = ad.health(book, Prices.from_mapping(book, px))
    lt = ad.params["WETH.liquidation_threshold_bps"] / 1e4
    assert hf[0] == pytest.approx(weth * lt / 1500, rel=1e-12)  # the $100k of RLUSD counts for nothing
    ref, ker = (evaluate(prep, engine=e).raw for e in ("reference", "kernel"))
    assert ref["liquidations"].min() >= 1  # account a (HF ~ 0.1) is liquidated on its FRAX debt
    for k in ("liquidations", "collateral_seized_usd", "realised_bad_debt_usd"):
        np.testing.assert_allclose(ker[k], ref[k], rtol=1e-9)


@pytest.mark.parametrize("rows,where,rule", [
    (["a,aave_v3,WETH,1,,,1", "a,aave_v3,,,USDC,100,2"], "line 3: emode", "has eMode 1 on line 2"),
    (["a,aave_v3,WETH,1,USDC,100,777"], "line 2: emode", "unknown eMode category 777"),
    (["a,aave_v3,WETH,1,USDC,100,x"], "line 2: emode", "whole number"),
], ids=["two-emodes", "unknown", "not-a-number"])
def test_bad_emode_names_the_line(tmp_path, rows, where, rule):
    path = _files(tmp_path, rows, EMODE_HEADER)
    with pytest.raises(InputError) as ei:
        load_scenario(path)
    assert where in str(ei.value) and rule in str(ei.value) and "book.csv" in str(ei.value)


# ------------------------------------------------------------------------------ protocol ids

TWO_MARKETS = """
[scenario]
name = "two-markets"
horizon_h = 6
step_min = 10
paths = 3
seed = 5

[assets.WETH]
price_usd = 3000
model = "gbm"
sigma_annual = 1.0
shocks = [{ at_h = 1.0, drop = 0.2 }]
[assets.WETH.liquidity]
model = "sqrt"
daily_volume_usd = 5e8
daily_sigma = 0.05
recovery_half_life_min = 30

[assets.USDC]
price_usd = 1.0
model = "constant"

[[protocols]]
adapter = "aave_v3"
id = "core"
[protocols.book]
kind = "synthetic"
positions = 300
collateral = { WETH = 1.0 }
debt = { USDC = 1.0 }
collateral_usd = { dist = "lognormal", median = 20000, sigma = 1.2, min = 500 }
ltv_utilisation = { dist = "beta", a = 6.0, b = 2.0 }

[[protocols]]
adapter = "aave_v3"
id = "prime"
params = { "WETH.liquidation_threshold_bps" = 8000, "WETH.ltv_bps" = 7500 }
[protocols.book]
kind = "synthetic"
positions = 300
collateral = { WETH = 1.0 }
debt = { USDC = 1.0 }
collateral_usd = { dist = "lognormal", median = 20000, sigma = 1.2, min = 500 }
ltv_utilisation = { dist = "beta", a = 6.0, b = 2.0 }
"""


def test_two_markets_of_one_adapter_coexist_keyed_by_id(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(TWO_MARKETS)
    sc = load_scenario(p)
    assert sc.protocol_ids == ("core", "prime")
    prep = prepare(sc)
    assert set(prep.current) == {"core", "prime"}
    assert prep.current["prime"].params["WETH.liquidation_threshold_bps"] == 8000
    res = evaluate(prep, {"core": {"WETH.liquidation_threshold_bps": 8200}}, events=True, analyses=False)
    assert set(res.metrics()["by_protocol"]) == {"core", "prime"}
    assert res.bound.params["core"]["WETH.liquidation_threshold_bps"] == 8200
    assert set(res.events()["protocol"]) <= {"core", "prime"}
    assert res.raw.liquidations.sum(0).min() > 0  # both markets liquidate on the shared market
    with pytest.raises(InputError, match="no protocol 'aave_v3'"):
        evaluate(prep, {"aave_v3": {"WETH.ltv_bps": 7000}})


@pytest.mark.parametrize("edit,field,rule", [
    (lambda t: t.replace('id = "prime"', 'id = "core"'), "protocols[1].id", "'core' appears twice"),
    (lambda t: t.replace('id = "core"\n', "").replace('id = "prime"\n', ""), "protocols[1].adapter",
     "give each entry its own id"),
    (lambda t: t.replace('id = "prime"', 'id = "a:b"'), "protocols[1].id", "no ':'"),
], ids=["duplicate-id", "same-adapter-no-ids", "colon"])
def test_bad_ids(tmp_path, edit, field, rule):
    p = tmp_path / "s.toml"
    p.write_text(edit(TWO_MARKETS))
    with pytest.raises(InputError) as ei:
        load_scenario(p)
    assert field in str(ei.value) and rule in str(ei.value)


def test_cli_set_takes_the_protocol_id():
    """``--set id:KEY=VALUE`` (the parser cascade simulate uses; the command itself is tested in tests/cli)."""
    from optimizer.cli._common import split_protocol_overrides

    assert split_protocol_overrides(["prime:WETH.liquidation_threshold_bps=8100"], ["core", "prime"]) == {
        "prime": {"WETH.liquidation_threshold_bps": 8100.0}}
    with pytest.raises(InputError, match="name the protocol as ID:KEY=VALUE"):
        split_protocol_overrides(["WETH.ltv_bps=7000"], ["core", "prime"])
    with pytest.raises(InputError, match="no protocol 'aave_v3'"):
        split_protocol_overrides(["aave_v3:WETH.ltv_bps=7000"], ["core", "prime"])
