"""Maker Liquidations 2.0 auctions through time in the reference engine (optimizer.engine.maker_auctions).

Hand-built scenarios: ETH at $100 drops 30 % at step 1 (10-minute steps, so the one-hour OSM shows
it at step 7) and stays; DAI at $1; explicit vault books; infinitely deep ETH market unless stated.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from optimizer.engine import prepare, simulate
from optimizer.engine.ledger import events_array
from optimizer.engine.model import bind
from optimizer.engine.reference import run_reference
from optimizer.scenario.config import load_scenario
from optimizer.snapshots import data_dir
from protocols.maker import Calc, auction_price

STEP_S = 600.0
P0, DROP = 100.0, 0.30
P1 = P0 * (1 - DROP)
LAG = 6  # osm_hop_s 3600 / 600
# ETH-A snapshot values the tests rely on
BUF, CUT, STAIR_S, TAIL_S, CUSP, CHOP, TIP, CHIP, DUST = 1.1, 0.99, 90.0, 7200.0, 0.45, 1.13, 250.0, 0.001, 7500.0

# v1, v2: CR 200 % -> 140 % after the drop (unsafe under mat 145 %, lot worth more than tab);
# v3: CR 1000 %, never unsafe.
BOOK = [("v1", 1000.0, 50_000.0), ("v2", 1000.0, 50_000.0), ("v3", 1000.0, 10_000.0)]


def scenario(tmp_path: Path, *, book=BOOK, shocks=((0.1, DROP),), horizon_h=6.0, gas_gwei=50.0,
             gas_per_call=300_000, params=None, liquidity=None, eth_model=None, paths=1, seed=7,
             max_calls=1000) -> Path:
    rows = ["account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount"]
    rows += [f"{a},maker,ETH-A,{c},DAI,{d}" for a, c, d in book]
    (tmp_path / "book.csv").write_text("\n".join(rows) + "\n")
    shock_s = ", ".join(f"{{ at_h = {h}, drop = {d} }}" for h, d in shocks)
    eth = eth_model or f'model = "constant"\nshocks = [{shock_s}]'
    liq = ""
    if liquidity:
        liq = "[assets.ETH.liquidity]\n" + "\n".join(f"{k} = {v!r}" if isinstance(v, str) else f"{k} = {v}"
                                                    for k, v in liquidity.items()).replace("'", '"')
    par = ""
    if params:
        par = "params = { " + ", ".join(f'"{k}" = {v}' for k, v in params.items()) + " }"
    text = f"""
[scenario]
name = "maker-test"
horizon_h = {horizon_h}
step_min = 10
paths = {paths}
seed = {seed}

[assets.ETH]
price_usd = {P0}
{eth}
{liq}

[assets.DAI]
price_usd = 1.0
model = "constant"

[liquidators]
gas_per_call = {gas_per_call}
gas_gwei = {gas_gwei}
gas_token = "ETH"
max_calls_per_step = {max_calls}

[[protocols]]
adapter = "maker"
{par}
[protocols.book]
kind = "csv"
path = "book.csv"
"""
    p = tmp_path / "s.toml"
    p.write_text(text)
    return p


def run(path: Path, **kw):
    bound = bind(prepare(load_scenario(path)))
    trace: list[dict] = []
    events: list[tuple] = []
    raw = run_reference(bound, events=events, trace=trace, **kw)
    return raw, trace, events_array(events), bound


def of(trace, event, **match):
    return [x for x in trace if x["event"] == event and all(x[k] == v for k, v in match.items())]


def identity_gap(raw) -> np.ndarray:
    """seized - (repaid + bonus + fee + returned), per path and protocol."""
    return raw.collateral_seized_usd - (raw.debt_repaid_usd + raw.liquidator_bonus_usd + raw.protocol_fee_usd
                                        + raw.returned_to_owner_usd)


# ------------------------------------------------------------------------------------------------


def test_no_bark_before_osm_delay_and_hole_makes_second_vault_wait(tmp_path):
    # hole 60k: v1's tab (56.5k) leaves 3.5k of room; v2's partial bark would be 3.1k < dust (dusty) -> waits
    raw, tr, _, _ = run(scenario(tmp_path, params={"ETH-A.hole_dai": 60_000}))
    kicks = of(tr, "kick")
    assert [k["vault"] for k in kicks] == [0, 1]
    assert kicks[0]["step"] == 1 + LAG  # the market fell at step 1; the OSM shows it one hour later
    assert raw.first_liquidation_step[0] == 1 + LAG
    assert kicks[0]["tab"] == pytest.approx(50_000 * CHOP) and kicks[0]["whole"]
    assert kicks[0]["top"] == pytest.approx(P1 * BUF)  # top = OSM * buf
    first_take = of(tr, "take", auction=0)[0]
    assert first_take["tab_left"] == 0.0  # tab raised: the auction ends and frees its room
    # v2 is barked only in the step its room came free, never before
    assert kicks[1]["step"] == first_take["step"] > kicks[0]["step"]
    assert raw.liquidations[0, 0] == 2 and raw.account_liquidated[0].tolist() == [1, 1, 0]
    # the debt left the vaults: 2 x 50k; no bad debt, each auction raised its full tab
    assert raw.debt_removed_usd[0, 0] == pytest.approx(100_000)
    assert raw.debt_repaid_usd[0, 0] == pytest.approx(100_000)
    assert raw.protocol_fee_usd[0, 0] == pytest.approx(2 * 50_000 * (CHOP - 1))
    assert raw.bad_debt_usd[0, 0] == 0.0 and raw.inventory_usd[0, 0] == 0.0
    assert raw.keeper_incentive_usd[0, 0] == pytest.approx(2 * (TIP + CHIP * 50_000 * CHOP))


def test_stairstep_price_and_keeper_takes_once_it_pays_gas(tmp_path):
    gas_per_call, gwei = 1_000_000, 40_000.0
    gas_usd = gas_per_call * gwei * 1e-9 * P1  # 40 ETH = $2,800 per take at the post-drop ETH price
    raw, tr, ev, _ = run(scenario(tmp_path, book=BOOK[:1], gas_gwei=gwei, gas_per_call=gas_per_call))
    kick = of(tr, "kick")[0]
    take = of(tr, "take")
    assert len(take) == 1
    take = take[0]
    tab, lot, top = kick["tab"], kick["lot"], kick["top"]
    calc = Calc("StairstepExponentialDecrease", cut=CUT, step_s=STAIR_S)

    def price(step):
        return float(auction_price(calc, top, (step - kick["step"]) * STEP_S))

    def profit(step):  # infinitely deep market: proceeds = tokens x the bar's low
        p = price(step)
        bought = min(lot, tab / p)
        return bought * (P1 - p) - gas_usd

    # stairstep: top * cut^floor(elapsed / 90 s)
    assert price(kick["step"] + 1) == pytest.approx(top * CUT ** 6)
    assert price(kick["step"] + 2) == pytest.approx(top * CUT ** 13)
    cheaper = next(s for s in range(kick["step"], 40) if price(s) < P1)
    pays = next(s for s in range(kick["step"], 40) if profit(s) > 0)
    assert cheaper < pays  # below the market one step earlier, but the take did not yet cover gas
    assert take["step"] == pays
    assert take["price"] == pytest.approx(price(pays))
    assert take["owe_dai"] == pytest.approx(tab) and take["slice"] == pytest.approx(tab / price(pays))
    assert take["returned"] == pytest.approx(lot - tab / price(pays))
    # accounting of that one take
    bought = tab / price(pays)
    assert raw.liquidator_bonus_usd[0, 0] == pytest.approx(bought * P1 - tab)
    assert raw.returned_to_owner_usd[0, 0] == pytest.approx((lot - bought) * P1)
    assert raw.collateral_seized_usd[0, 0] == pytest.approx(lot * P1)
    assert raw.last_liquidation_step[0] == pays
    assert len(ev) == 1 and ev[0]["step"] == pays and ev[0]["price"] == pytest.approx(price(pays))
    assert ev[0]["collateral"] == 0  # the ilk column of the vault


def test_reset_at_tail_when_nobody_takes(tmp_path):
    raw, tr, _, _ = run(scenario(tmp_path, book=BOOK[:1], gas_gwei=1e9))  # gas makes every take a loss
    kick = of(tr, "kick")[0]
    assert not of(tr, "take")
    redos = of(tr, "redo")
    # 80 stairs of 1 % = 7200 s: price/top = 0.99^80 < cusp 0.45 exactly when elapsed reaches tail
    assert CUT ** 79 >= CUSP > CUT ** 80
    period = int(TAIL_S / STEP_S)
    assert [r["step"] for r in redos] == list(range(kick["step"] + period, 37, period))
    for r in redos:
        assert r["top"] == pytest.approx(P1 * BUF)
        assert r["coin_dai"] == pytest.approx(TIP + CHIP * kick["tab"])  # tab and lot*feed >= chost
    assert raw.keeper_incentive_usd[0, 0] == pytest.approx((1 + len(redos)) * (TIP + CHIP * kick["tab"]))
    # still running at the horizon: the lot is inventory; it covers the debt, so no bad debt
    assert raw.inventory_usd[0, 0] == pytest.approx(1000 * P1)
    assert raw.unrealised_bad_debt_usd[0, 0] == 0.0
    assert raw.collateral_seized_usd[0, 0] == 0.0 and raw.debt_repaid_usd[0, 0] == 0.0


def test_clipper_mom_trips_on_a_50pct_hour_and_stops_redo_and_kicks(tmp_path):
    # v4 is safe at $70 (CR 233 %) but not at $38.5 (CR 128 %) nor $28; v1 is barked at step 7.
    book = [("v1", 1000.0, 50_000.0), ("v4", 1000.0, 30_000.0)]
    # second shock at step 10: -60 % (70 -> 28) within the hour: peep 28 < 0.5 x peek 70
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    raw, tr, _, _ = run(scenario(tmp_path / "a", book=book, shocks=((0.1, DROP), (1.55, 0.60)), gas_gwei=1e9))
    trips = of(tr, "trip")
    assert [(t["step"], t["ilk"]) for t in trips] == [(10, "ETH-A")]
    assert trips[0]["peep"] == pytest.approx(28.0) and trips[0]["peek"] == pytest.approx(70.0)
    assert [k["vault"] for k in of(tr, "kick")] == [0]  # v4 would be barked at step 16: no new kicks
    assert of(tr, "kick")[0]["step"] == 7
    assert not of(tr, "redo")  # the auction passed tail at step 19 but stays stuck (stopped = 2)
    assert raw.liquidations[0, 0] == 1
    # at the horizon: v1's lot (1000 ETH at $28) against its 50k of debt; v4 (28k of ETH, 30k debt) is open
    assert raw.inventory_usd[0, 0] == pytest.approx(28_000)
    assert raw.unrealised_bad_debt_usd[0, 0] == pytest.approx((50_000 - 28_000) + (30_000 - 28_000))

    # control: a 45 % second drop does not trip; v4 is barked and v1's auction is reset
    raw2, tr2, _, _ = run(scenario(tmp_path / "b", book=book, shocks=((0.1, DROP), (1.55, 0.45)), gas_gwei=1e9))
    assert not of(tr2, "trip")
    assert [k["vault"] for k in of(tr2, "kick")] == [0, 1] and raw2.liquidations[0, 0] == 2
    assert of(tr2, "kick")[1]["step"] == 16  # the OSM shows $38.5 one hour after the step-10 drop
    assert [r["step"] for r in of(tr2, "redo", auction=0)] == [19, 31]


def test_takes_continue_after_a_trip(tmp_path):
    # v1 kicked at step 7 (top 77); -60 % at step 8 trips the breaker. With cusp 0.3 and tail 4 h the
    # stairs reach the $28 market before a reset is due, and keepers still take (stopped = 2 < 3).
    book = [("v1", 1000.0, 50_000.0)]
    raw, tr, _, _ = run(scenario(tmp_path, book=book, shocks=((0.1, DROP), (1.25, 0.60)), gas_gwei=1.0,
                                 params={"ETH-A.cusp": 0.3, "ETH-A.tail_s": 14_400}))
    assert [t["step"] for t in of(tr, "trip")] == [8]
    takes = of(tr, "take")
    calc = Calc("StairstepExponentialDecrease", cut=CUT, step_s=STAIR_S)
    first_below = next(s for s in range(8, 40) if auction_price(calc, 77.0, (s - 7) * STEP_S) < 28.0)
    assert [t["step"] for t in takes] == [first_below]
    assert takes[0]["lot_left"] == 0.0 and takes[0]["bad_debt_dai"] > 0  # lot worth 28k < 50k debt
    assert raw.realised_bad_debt_usd[0, 0] == pytest.approx(50_000 - takes[0]["owe_dai"])


def test_accounting_identity_with_price_impact_partial_takes_and_bad_debt(tmp_path):
    # 40 vaults, thin sqrt-impact market, call cap: partial takes, shared market, some bad debt.
    rng = np.random.default_rng(3)
    n = 40
    coll = rng.lognormal(np.log(300), 1.0, n)
    cr = rng.uniform(1.5, 2.2, n)
    book = [(f"v{i}", float(c), float(c * P0 / r)) for i, (c, r) in enumerate(zip(coll, cr, strict=True))]
    liq = {"model": "sqrt", "daily_volume_usd": 1e6, "daily_sigma": 0.1, "y": 1.0, "recovery_half_life_min": 60}
    path = scenario(tmp_path, book=book, shocks=((0.1, 0.35), (2.0, 0.2)), liquidity=liq, max_calls=5,
                    horizon_h=8.0, params={"ETH-A.hole_dai": 400_000})
    raw, tr, ev, _ = run(path)
    takes = of(tr, "take")
    assert len(takes) > 10 and raw.liquidations[0, 0] > 10
    assert any(t["lot_left"] > 0 and t["tab_left"] > 0 for t in takes)  # a partial take happened
    assert raw.realised_bad_debt_usd[0, 0] > 0  # the second drop left lots worth less than their tab
    np.testing.assert_allclose(identity_gap(raw), 0.0, atol=1e-6 * raw.collateral_seized_usd.max())
    # debt: what left the vaults is repaid, written off, or still owed by running auctions
    kicks = {k["auction"]: k for k in of(tr, "kick")}
    assert raw.debt_removed_usd[0, 0] == pytest.approx(sum(k["due"] for k in kicks.values()))
    ended = {t["auction"] for t in takes if t["lot_left"] == 0 or t["tab_left"] == 0}
    owed = 0.0
    for a, k in kicks.items():
        if a not in ended:
            owed += k["due"] - sum(min(t["owe_dai"], k["due"]) for t in takes if t["auction"] == a)
    assert raw.debt_repaid_usd[0, 0] + raw.realised_bad_debt_usd[0, 0] + owed == pytest.approx(
        raw.debt_removed_usd[0, 0])
    # every bark saw room under hole (a dusty remainder may take the whole vault past it); call cap per step
    assert max(k["dirt"] for k in kicks.values()) < 400_000
    assert max(k["dirt"] + k["tab"] for k in kicks.values()) > 400_000 - 1e-6  # and the hole did bind
    steps = np.array([t["step"] for t in takes])
    assert np.bincount(steps).max() <= 5
    # one event per take, adding up to the path totals
    assert len(ev) == len(takes)
    for col, name in (("debt_repaid_usd", "debt_repaid_usd"), ("collateral_seized_usd", "collateral_seized_usd"),
                      ("bonus_usd", "liquidator_bonus_usd"), ("protocol_fee_usd", "protocol_fee_usd"),
                      ("bad_debt_usd", "realised_bad_debt_usd")):
        assert ev[col].sum() == pytest.approx(getattr(raw, name)[0, 0]), name


def test_deterministic_and_auto_picks_the_kernel(tmp_path):
    rng = np.random.default_rng(5)
    n = 60
    coll = rng.lognormal(np.log(200), 1.0, n)
    book = [(f"v{i}", float(c), float(c * P0 / r)) for i, (c, r) in enumerate(zip(coll, rng.uniform(1.5, 2.5, n),
                                                                                   strict=True))]
    gbm = 'model = "gbm"\nsigma_annual = 3.0\nshocks = [{ at_h = 1.0, drop = 0.2 }]'
    liq = {"model": "sqrt", "daily_volume_usd": 5e7, "daily_sigma": 0.05, "y": 1.0, "recovery_half_life_min": 30}
    path = scenario(tmp_path, book=book, eth_model=gbm, liquidity=liq, paths=4, horizon_h=8.0)
    a = simulate(path, analyses=False)
    b = simulate(path, analyses=False)
    assert a.engine == b.engine == "kernel"  # the kernel mirrors the auctions (tests/engine/test_kernel_auctions.py)
    r = simulate(path, analyses=False, engine="reference")
    for name in ("liquidations", "debt_repaid_usd", "collateral_seized_usd", "liquidator_bonus_usd",
                 "protocol_fee_usd", "realised_bad_debt_usd", "unrealised_bad_debt_usd", "inventory_usd",
                 "returned_to_owner_usd", "debt_removed_usd", "keeper_incentive_usd", "first_liquidation_step",
                 "last_liquidation_step", "market_low_min"):
        np.testing.assert_array_equal(getattr(a.raw, name), getattr(b.raw, name), err_msg=name)
        np.testing.assert_allclose(getattr(a.raw, name), getattr(r.raw, name), rtol=1e-9, atol=1e-6, err_msg=name)
    assert a.raw.liquidations.sum() > 0
    # paths differ (GBM) and each one balances
    assert len(set(a.raw.liquidations[:, 0].tolist())) > 1 or len(set(a.raw.debt_repaid_usd[:, 0].tolist())) > 1
    np.testing.assert_allclose(identity_gap(a.raw), 0.0, atol=1e-6 * max(a.raw.collateral_seized_usd.max(), 1.0))


def test_black_thursday_scenario_runs():
    path = data_dir() / "scenarios" / "maker_eth_a_black_thursday.toml"
    res = simulate(path, paths=1, analyses=False)
    raw = res.raw
    assert res.engine == "kernel"
    assert raw.liquidations[0, 0] > 100
    assert raw.first_liquidation_step[0] > LAG
    np.testing.assert_allclose(identity_gap(raw), 0.0, atol=1e-6 * raw.collateral_seized_usd.max())
    assert raw.bad_debt_usd[0, 0] < 0.01 * raw.initial_debt_usd[0, 0]
    assert math.isfinite(raw.keeper_incentive_usd[0, 0]) and raw.keeper_incentive_usd[0, 0] > 0
