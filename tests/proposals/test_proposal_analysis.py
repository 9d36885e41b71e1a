"""The proposal analysis: baseline from `before`, immediate liquidations, verdict, default stress, untouched books."""

import numpy as np
import pytest
from report_helpers import write_proposal, write_small

from protocols import Prices


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    from optimizer.proposals import analyse_proposal

    d = tmp_path_factory.mktemp("p")
    sc = write_small(d, paths=12, positions=400)
    text = (
        'protocol = "aave_v3"\ntitle = "t"\n'
        '[[changes]]\nasset = "WETH"\nparameter = "liquidation_threshold"\nbefore = 8400\nafter = 8100\nunit = "bps"\n'
        '[[changes]]\nasset = "WBTC"\nparameter = "liquidation_threshold"\nbefore = 7800\nafter = 7500\nunit = "bps"\n')
    pr = write_proposal(d, text, "mismatch.toml")
    return analyse_proposal(pr, sc, recommend_trials=0, sensitivity_on=False, replays_on=False)


def test_before_mismatch_is_reported_and_the_proposals_before_is_the_baseline(result):
    weth = next(c for c in result.changes if c.target == "WETH")
    assert weth.mismatch and weth.current_param == 8300 and weth.before_param == 8400
    assert result.comparison.current.bound.params["aave_v3"]["WETH.liquidation_threshold_bps"] == 8400
    assert result.comparison.candidate.bound.params["aave_v3"]["WETH.liquidation_threshold_bps"] == 8100
    rows = result.to_json()["specification"]
    assert rows[0]["mismatch"] and rows[0]["snapshot"] == 8300


def test_positions_liquidated_at_once_match_a_direct_count(result):
    c = result.comparison
    b = c.current.bound
    pb = b.books[0]
    close0 = c.prepared.paths.close[0, 0]
    prices = Prices(close0[b.coll_market[0]], close0[b.debt_market[0]])
    h0 = b.adapters[0].health(pb.book, prices)
    h1 = c.candidate.bound.adapters[0].health(pb.book, prices)
    new = (h1 < 1) & (h0 >= 1)
    im = result.immediate["newly_liquidatable"]
    assert im["positions"] == int(new.sum()) > 0
    debt = (pb.book.debt_tokens * prices.debt_usd).sum(1)
    assert im["debt_usd"] == pytest.approx(float(debt[new].sum()))
    assert im["largest"][0]["debt_usd"] == pytest.approx(float(debt[new].max()))
    assert im["largest"][0]["health_after"] < 1 <= im["largest"][0]["health_before"]


def test_verdict_follows_the_paired_intervals(result):
    v = result.verdict()
    mean = v["basis"][0]
    if mean["significant"]:
        assert v["label"] in ("safer" if mean["delta"] < 0 else "riskier", "mixed")
    assert "borrowing power" in v["text"] and "liquidatable the moment it executes" in v["text"]


def test_a_change_the_book_does_not_hold_is_flagged(result):
    wbtc = next(r for r in result.to_json()["specification"] if r["target"] == "WBTC")
    assert wbtc["modelled"] and not wbtc["touches_book"]


def test_default_stress_follows_protocol_and_targets():
    from optimizer.proposals.analysis import choose_stress
    from optimizer.proposals.spec import parse_record

    def choose(protocol, asset, parameter="ltv", unit="bps"):
        rec = {"title": "t", "protocol": protocol, "asset": asset,
               "changes": [{"parameter": parameter, "before": 1, "after": 2, "unit": unit}]}
        return choose_stress(parse_record(rec, file="x"), None).scenario

    assert choose("Aave v3", "ETH-correlated eMode (id 1)") == "aave_v3_emode1_lst_depeg_24h"
    assert choose("Aave v3", "DAI and sDAI") == "aave_v3_stable_collateral_depeg_24h"
    assert choose("Aave v3", "WETH") == "aave_v3_core_24h_jumps"
    assert choose("Compound v3", "USDC (market-level)", "target_reserves", "USDC") == "compound_v3_usdc_24h"
    assert choose("MakerDAO/Sky", "WBTC-A", "mat", "ratio") == "maker_wbtc_vaults_24h"
    assert choose("MakerDAO/Sky", "ETH-A", "mat", "ratio") == "maker_eth_a_black_thursday"


def test_api_accepts_a_bundled_scenario_name_and_returns_frames_and_figures(result):
    from optimizer import api

    res = api.simulate("aave_v3_replay_2021-05-19", analyses=False, events=True)
    assert res.summary().loc["bad_debt_usd", "mean"] >= 0
    ev = res.events()
    assert {"path", "step", "protocol", "account", "collateral_asset", "debt_repaid_usd"} <= set(ev.columns)
    assert len(ev) == int(res.metrics()["liquidations"]["mean"])
    acc = res.accounts()
    assert {"protocol", "account", "p_liquidated", "stderr"} <= set(acc.columns) and len(acc) > 0
    fig = result.plot_bad_debt()
    assert fig.axes[0].get_xlabel().startswith("bad debt per path (USD")
    assert "ProposalResult" in repr(result) and len(repr(res)) < 200
    assert np.isfinite(result.summary()["delta"]).all()
