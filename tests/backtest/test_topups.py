"""Vault owners topping up collateral (optimizer.behaviour.topups): the rule by hand, on the Maker 1.x
venue a top-up keeps exactly the vaults it should out of the Cat's reach, and the bundled model loads."""

from __future__ import annotations

import json
from pathlib import Path

import backtest_tiny as tiny
import numpy as np
import pytest

from optimizer.behaviour import topups as tu
from optimizer.errors import InputError
from optimizer.snapshots import data_dir

SPEC = {"trigger_health": 1.2, "target_health": 1.5, "reaction_delay_min": 30, "capacity_share": 1.0,
        "size_shares": [{"min_collateral_usd": 0, "share": 0.0}, {"min_collateral_usd": 10_000, "share": 1.0}]}


def test_the_rule_by_hand():
    """Three vaults, all responders: health 1.1 (below the 1.2 trigger), 1.3 (above) and 1.0 with only
    0.1 x its collateral to bring. Nothing lands before the 30-minute delay; then the first gets
    c(1.5/1.1 - 1), the third is capped at its capacity; when the watched health climbs back over the
    trigger the clock resets."""
    m = tu.model(SPEC)
    c = np.array([100.0, 100.0, 100.0])
    st = tu.TopupState(np.ones(3, bool), np.array([100.0, 100.0, 10.0]), np.full(3, np.nan), np.zeros(3))
    h = np.array([1.1, 1.3, 1.0])
    ok = np.ones(3, bool)
    add, st = tu.topup_step(m, st, now_s=0.0, watched_health=h, collateral_tokens=c, defended=ok)
    assert not add.any() and st.below_since_s[0] == 0.0 and np.isnan(st.below_since_s[1])
    add, st = tu.topup_step(m, st, now_s=1200.0, watched_health=h, collateral_tokens=c, defended=ok)
    assert not add.any()
    add, st = tu.topup_step(m, st, now_s=1800.0, watched_health=h, collateral_tokens=c, defended=ok)
    np.testing.assert_allclose(add, [100 * (1.5 / 1.1 - 1), 0.0, 10.0], rtol=1e-12)
    assert st.capacity_tokens[2] == 0.0 and st.added_tokens.sum() == pytest.approx(add.sum())
    add, st = tu.topup_step(m, st, now_s=2400.0, watched_health=np.array([1.5, 1.3, 1.1]), collateral_tokens=c + add,
                            defended=np.array([True, True, False]))
    assert not add.any() and np.isnan(st.below_since_s[0]) and np.isnan(st.below_since_s[2])


def test_responders_by_size_and_bad_files(tmp_path):
    m = tu.model(SPEC)
    np.testing.assert_array_equal(m.responder_share([5_000, 10_000, 1e7]), [0.0, 1.0, 1.0])
    st = tu.TopupState.start(m, np.array([10.0, 100.0]), np.array([5_000.0, 50_000.0]), np.random.default_rng(1))
    assert st.responder.tolist() == [False, True] and st.capacity_tokens.tolist() == [0.0, 100.0]
    bad = tmp_path / "t.json"
    bad.write_text(json.dumps({**SPEC, "target_health": 1.1}))
    with pytest.raises(InputError, match=r"t.json: target_health: must be at least trigger_health"):
        tu.load_model(bad)
    bad.write_text(json.dumps({**SPEC, "size_shares": [{"min_collateral_usd": 5, "share": 0.5}]}))
    with pytest.raises(InputError, match=r"size_shares: min_collateral_usd must start at 0"):
        tu.load_model(bad)
    bundled = tu.load_model(data_dir() / "behaviour" / "vault_topups_2020-03-12.json")
    assert bundled.trigger_health == 1.2 and "CoinDesk" in json.loads(
        (data_dir() / "behaviour" / "vault_topups_2020-03-12.json").read_text())["description"]


# urnA ($20k at $170: an owner who responds) and urnB ($8.5k: one who does not) are both unsafe below
# 150 $/ETH; the OSM shows ~132-150 from 11:10. urnC is safe down to 60 $/ETH and never nears the trigger.
URNS = ("account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount\n"
        "0xurnA,maker_liq12,ETH-A,120,DAI,12000\n0xurnB,maker_liq12,ETH-A,50,DAI,5000\n"
        "0xurnC,maker_liq12,ETH-A,500,DAI,20000\n")


def _bitten(tmp_path: Path, spec: dict | None) -> tuple[set[int], float]:
    from optimizer.engine import bind, prepare
    from optimizer.engine.reference import run_reference
    from optimizer.scenario.config import load_scenario

    path = tiny.write(tmp_path, tiny.AMPLE, backtest=False)
    text = path.read_text()
    i = text.index("[protocols.book]")
    topups = 'owner_topups = "topups.json"\n' if spec is not None else ""
    path.write_text(text[:i] + topups + '[protocols.book]\nkind = "csv"\npath = "urns.csv"\n')
    (tmp_path / "urns.csv").write_text(URNS)
    if spec is not None:
        (tmp_path / "topups.json").write_text(json.dumps(spec))
    ev: list[tuple] = []
    led = run_reference(bind(prepare(load_scenario(path))), events=ev)
    return {int(e[3]) for e in ev}, float(led.owner_topup_tokens.sum())


def test_a_top_up_keeps_exactly_the_defended_vault_out_of_liquidation(tmp_path):
    for sub in ("none", "topup", "short"):
        (tmp_path / sub).mkdir()
    bitten, added = _bitten(tmp_path / "none", None)
    assert bitten == {0, 1} and added == 0.0
    bitten, added = _bitten(tmp_path / "topup", SPEC)
    assert bitten == {1} and added > 0  # urnA's owner topped up; urnB's (too small to respond) did not; urnC untouched
    bitten, added = _bitten(tmp_path / "short", {**SPEC, "capacity_share": 0.05})
    assert bitten == {0, 1} and added == pytest.approx(6.0)  # 5 % of 120 ETH is not enough to hold out
