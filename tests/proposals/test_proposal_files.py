"""Proposal files: the project's format and the research folder's records, as they are; one-line errors."""

import json
from pathlib import Path

import pytest
from report_helpers import PROPOSAL, write_proposal, write_small

from optimizer.errors import InputError
from optimizer.proposals import load_proposal, parse_record, resolve
from optimizer.proposals.spec import baseline_and_proposed
from optimizer.snapshots import data_dir, load_adapter, read_json, snapshot_path

BUNDLED = sorted((data_dir() / "proposals").glob("20*.toml"))


def _shared_examples() -> Path | None:
    for parent in Path(__file__).resolve().parents:
        f = parent / "shared" / "data" / "protocols" / "governance_proposals_examples.json"
        if f.is_file():
            return f
    return None


def _resolved(spec):
    ad = load_adapter(spec.adapter)
    rc = resolve(spec, ad, read_json(snapshot_path(spec.adapter)))
    base, prop = baseline_and_proposed(spec, rc, ad)
    return rc, base, prop


def test_bundled_examples_load_and_every_before_is_checked_against_the_snapshot():
    assert len(BUNDLED) == 4
    for f in BUNDLED:
        spec = load_proposal(f)
        rc, base, prop = _resolved(spec)
        assert rc and base and prop and spec.link.startswith("https://")
        for c in rc:
            assert c.current_param is not None
            assert c.mismatch == (c.current_param != c.before_param)


@pytest.mark.skipif(_shared_examples() is None, reason="the team's research folder is not beside the checkout")
def test_every_research_record_loads_as_it_is_and_matches_the_bundled_copy():
    f = _shared_examples()
    records = json.loads(f.read_text())["proposals"]
    bundled = {load_proposal(b).title: b for b in BUNDLED}
    for i, rec in enumerate(records):
        spec = load_proposal(f, index=i)
        assert spec.title == rec["title"]
        rc, base, prop = _resolved(spec)
        ours = load_proposal(bundled[spec.title])
        rc2, base2, prop2 = _resolved(ours)
        assert (base, prop) == (base2, prop2), spec.title
        assert [c.label for c in rc] == [c.label for c in rc2]
    by_title = load_proposal(f, title="targetReserves")
    assert by_title.adapter == "compound_v3" and by_title.changes[0].targets == ("USDC",)


def test_governance_names_and_units_convert_to_the_adapters():
    rec = {"title": "t", "protocol": "Compound v3", "asset": "WETH, wstETH",
           "changes": [{"parameter": "liquidation_penalty", "before": 0.05, "after": 0.07, "unit": "fraction"},
                       {"parameter": "borrow_collateral_factor", "before": 83, "after": 82, "unit": "%"},
                       {"parameter": "supply_cap", "before": 1000, "after": 2000, "unit": "WETH", "asset": "WETH"}]}
    spec = parse_record(rec, file="r.json")
    rc, _base, prop = _resolved(spec)
    assert prop["WETH.liquidation_factor"] == pytest.approx(0.93) and prop["wstETH.liquidation_factor"] == pytest.approx(0.93)
    assert prop["WETH.borrow_collateral_factor"] == pytest.approx(0.82)
    assert [c.modelled for c in rc][-1] is False  # caps are not read by the simulator
    aave = parse_record({"title": "t", "protocol": "Aave v3", "asset": "USDC, USDT, DAI",
                         "changes": [{"parameter": "liquidation_bonus", "before": 10450, "after": 10500, "unit": "bps"},
                                     {"parameter": "reserve_factor", "before": 10, "after": 15, "unit": "%"}]},
                        file="r.json")
    rc, _base, prop = _resolved(aave)
    assert {c.target for c in rc} == {"USDC", "USDT", "DAI"}
    assert prop["DAI.liquidation_bonus_bps"] == 10500
    rf = [c for c in rc if c.term.name == "reserve_factor"]
    assert all(not c.modelled and c.key is None for c in rf)
    assert {c.target: c.current_governance for c in rf}["DAI"] == 25  # read from the snapshot (2500 bps)
    emode = parse_record({"title": "t", "protocol": "aave_v3", "asset": "ETH-correlated eMode (id 1)",
                          "changes": [{"parameter": "emode_ltv", "before": 9300, "after": 9350, "unit": "bps"}]},
                         file="r.json")
    assert _resolved(emode)[2] == {"emode1.ltv_bps": 9350}
    maker = parse_record({"title": "t", "protocol": "MakerDAO/Sky", "asset": "WBTC-A, WBTC-B",
                          "changes": [{"parameter": "chop (liquidation penalty)", "before": 0.13, "after": 0.1,
                                       "unit": "fraction"},
                                      {"parameter": "Hole", "before": 150e6, "after": 100e6, "unit": "DAI"}]},
                         file="r.json")
    prop = _resolved(maker)[2]
    assert prop == {"WBTC-A.chop": pytest.approx(1.1), "WBTC-B.chop": pytest.approx(1.1), "Hole_dai": 100e6}


@pytest.mark.parametrize("change, fragments", [
    ({"asset": "NOPE", "parameter": "ltv", "before": 1, "after": 2, "unit": "bps"},
     ["changes[0] (NOPE ltv)", "reserve 'NOPE' is not in the Aave v3 Ethereum Core snapshot"]),
    ({"asset": "WETH", "parameter": "ltv_ratio_x", "before": 1, "after": 2, "unit": "bps"},
     ["changes[0] (WETH ltv_ratio_x)", "unknown parameter 'ltv_ratio_x'"]),
    ({"asset": "WETH", "parameter": "ltv", "before": 8050, "after": 8100, "unit": "USD"},
     ["unit 'USD' does not match", "bps or %"]),
    ({"asset": "WETH", "parameter": "liquidation_threshold", "before": 8300, "after": 8000, "unit": "bps"},
     ["changes[0] (WETH liquidation_threshold)", "after = 8000 bps", "ltv <= liquidation threshold"]),
    ({"asset": "WETH", "parameter": "liquidation_bonus", "before": 500, "after": 600, "unit": "bps"},
     ["raw 10000 + bonus"]),
    ({"asset": "Some eMode", "parameter": "ltv", "before": 1, "after": 2, "unit": "bps"}, ["without its id"]),
])
def test_bad_changes_are_one_line_errors_naming_file_change_and_rule(tmp_path, capsys, change, fragments):
    from optimizer.cli import main

    sc = write_small(tmp_path, paths=2, positions=50)
    f = tmp_path / "bad.json"
    f.write_text(json.dumps({"title": "bad", "protocol": "aave_v3", "changes": [change]}))
    with pytest.raises(SystemExit) as e:
        main(["proposal", str(f), "--scenario", str(sc), "--out", str(tmp_path / "never")])
    assert e.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(f) in err[0], err
    for frag in fragments:
        assert frag in err[0], err[0]
    assert not (tmp_path / "never").exists()


def test_choosing_a_record_of_several(tmp_path):
    recs = [json.loads(json.dumps({"title": f"P{i} raise WETH", "protocol": "aave_v3", "asset": "WETH",
                                   "changes": [{"parameter": "ltv", "before": 8050, "after": 8000, "unit": "bps"}]}))
            for i in range(3)]
    f = tmp_path / "many.json"
    f.write_text(json.dumps({"proposals": recs}))
    with pytest.raises(InputError, match="holds 3 proposals; choose one with --index N or --title TEXT"):
        load_proposal(f)
    with pytest.raises(InputError, match="--index: no record 5"):
        load_proposal(f, index=5)
    with pytest.raises(InputError, match="3 titles contain 'raise'"):
        load_proposal(f, title="raise")
    assert load_proposal(f, title="P1").index == 1 and load_proposal(f, index=2).title == "P2 raise WETH"
    with pytest.raises(InputError, match="unknown protocol 'Euler'"):
        parse_record({"title": "x", "protocol": "Euler", "changes": [{}]}, file="x.json")
    with pytest.raises(InputError, match="unknown key"):
        parse_record({"title": "x", "protocol": "aave_v3", "chnages": []}, file="x.json")


def test_toml_and_json_give_the_same_proposal(tmp_path):
    import tomllib

    t = write_proposal(tmp_path)
    j = tmp_path / "p.json"
    j.write_text(json.dumps(tomllib.loads(PROPOSAL)))
    a, b = load_proposal(t), load_proposal(j)
    assert a.changes == b.changes and a.title == b.title
