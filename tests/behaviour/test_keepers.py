"""The Flipper keeper model: DAI limits, gas limits, the DAI premium and the zero-bid outcome, by hand-worked
cases and by its direction over the documented parameter ranges."""

import json

import numpy as np
import pytest

from optimizer.behaviour import keepers as kp
from optimizer.errors import InputError
from optimizer.scenario.history import read_gas_csv, read_price_csv
from optimizer.snapshots import data_dir
from protocols import maker_flipper as fl

BEG, TTL, TAU = 1.03, 600.0, 259_200.0
ETH = 150.0


@pytest.fixture(scope="module")
def pop():
    return kp.load_population(data_dir() / "behaviour" / "keepers_2020-03-12.json")


def auctions(n, lot=50.0, due=4_166.67, now=0.0):
    return fl.kick(np.full(n, due * 1.13), np.full(n, lot), usr=np.arange(n), due_dai=np.full(n, due), now_s=now,
                   tau_s=TAU)


def step(flips, pop, st, now, gas, dai=1.0, price=ETH):
    return kp.bid_step(flips, pop, st, now_s=now, price_usd=price, dai_usd=dai, gas_gwei=gas, eth_usd=price,
                       beg=BEG, ttl_s=TTL)


def test_bundled_population_states_its_sources(pop):
    assert pop.strategy.count("value") == 4 and pop.strategy.count("minimal") == 4
    assert sorted(pop.max_gas_gwei[pop.is_value].tolist()) == [10, 20, 40, 250]
    assert pop.gas_per_bid == 150_000 and pop.dai_refill_share == 0.05
    assert "whiterabbit" in pop.sources["min_bid_dai"]


def test_bad_population_files_are_one_line_errors(tmp_path):
    bad = tmp_path / "k.json"
    bad.write_text(json.dumps({"keepers": [{"strategy": "greedy", "count": 1, "dai_capacity_dai": 1, "max_gas_gwei": 1}]}))
    with pytest.raises(InputError, match=r"k.json: keepers\[0\].strategy: must be one of value, minimal"):
        kp.load_population(bad)
    bad.write_text(json.dumps({"keepers": [{"strategy": "value", "count": 1, "dai_capacity_dai": -5, "max_gas_gwei": 1}]}))
    with pytest.raises(InputError, match=r"keepers\[0\].dai_capacity_dai: must be a number in \[0, 1e\+10\]"):
        kp.load_population(bad)


def test_with_low_gas_keepers_compete_to_tab_and_dent_the_lot(pop):
    """Gas 5 gwei: all keepers act. The 50-ETH lot is worth 7,275 DAI to the 3 %-margin keeper, more than
    tab (4,708.34): tend reaches tab, then that keeper dents the lot to (tab + gas)/(150 x 0.97) ETH and
    the owner gets the rest back; nobody else can ask for less within beg."""
    f, st, rep = step(auctions(1), pop, kp.KeeperState.start(pop), 10.0, 5.0)
    gas_usd = kp.gas_cost_usd(pop, 5.0, ETH)
    assert f.bid_dai[0] == pytest.approx(4_166.67 * 1.13)
    best = int(np.argmin(np.where(pop.is_value, pop.margin, np.inf)))
    assert f.guy[0] == best
    np.testing.assert_allclose(f.lot[0], (f.tab_dai[0] + gas_usd) / (ETH * 0.97), rtol=1e-12)
    assert rep.tends[0] >= 2 and rep.dents[0] >= 1
    assert st.dai_free_dai[best] == pytest.approx(500_000 - f.tab_dai[0])
    assert st.dai_free_dai.sum() == pytest.approx(kp.KeeperState.start(pop).dai_free_dai.sum() - f.tab_dai[0])


def test_a_gas_spike_leaves_the_auctions_to_the_zero_bidders(pop):
    """Gas 300 gwei: above every value keeper's limit. The minimal keepers' 1e-6 DAI bid is the only
    one; after ttl it wins the whole lot and the Vow keeps the whole debt as bad debt."""
    f, st, rep = step(auctions(3), pop, kp.KeeperState.start(pop), 10.0, 300.0)
    assert not rep.active_keepers[pop.is_value].any()
    assert np.all(f.bid_dai == pop.min_bid_dai) and all(pop.strategy[g] == "minimal" for g in f.guy)
    f, st, d = kp.deal_step(f, pop, st, now_s=611.0, price_usd=ETH, dai_usd=1.0)
    assert np.all(d.reason == fl.OK) and np.all(d.lot_tokens == 50.0)
    np.testing.assert_allclose(d.bad_debt_dai, 4_166.67 - 1e-6, rtol=1e-12)


def test_keepers_out_of_dai_leave_the_rest_to_the_first_bid(pop):
    """Gas 150 gwei: only the dynamic-gas value keeper (500k DAI) and the zero bidders act. 200 auctions
    need 200 x 4,708 = 941.7k DAI: it covers 106 of them (106 x 4,708 = 499k), the other 94 keep the
    zero bid but one, which gets the 916 DAI left."""
    f, st, _ = step(auctions(200), pop, kp.KeeperState.start(pop), 10.0, 150.0)
    dyn = int(np.flatnonzero(pop.max_gas_gwei == 250)[0])
    tab = 4_166.67 * 1.13
    covered = f.guy == dyn
    full = int(500_000 // tab)
    assert full == 106 and covered.sum() == full + 1
    assert (f.bid_dai[covered] == tab).sum() == full
    assert f.bid_dai[covered].min() == pytest.approx(500_000 - full * tab)
    assert np.all(f.bid_dai[~covered] == pop.min_bid_dai) and (~covered).sum() == 93
    assert st.dai_free_dai[dyn] == pytest.approx(0.0, abs=1e-6)


def test_dai_above_par_lowers_value_bids(pop):
    """A 20-ETH lot at $150 is below tab, so the tend phase decides. Bids land lowest first (10 %, 8 %,
    5 %, 3 % margins): the 8 % bid is within beg (3 %) of the 10 % one and is refused, the 5 % bid
    (20 x 150 x 0.95 - gas = 2,849.89) stands, and the 3 % bid is again within beg of it: the 5 % keeper
    wins. When DAI costs $1.10 every bid is 1/1.10 as many DAI for the same ETH."""
    out = {}
    for dai in (1.0, 1.10):
        f, _, _ = step(auctions(1, lot=20.0), pop, kp.KeeperState.start(pop), 10.0, 5.0, dai=dai)
        out[dai] = (f.bid_dai[0], pop.margin[f.guy[0]])
    gas_usd = kp.gas_cost_usd(pop, 5.0, ETH)
    assert out[1.0][1] == out[1.10][1] == 0.05
    np.testing.assert_allclose(out[1.0][0], 20 * 150 * 0.95 - gas_usd, rtol=1e-12)
    np.testing.assert_allclose(out[1.10][0], (20 * 150 * 0.95 - gas_usd) / 1.10, rtol=1e-12)


def _black_thursday(pop, n_auctions=300, hours=(12, 17)):
    """Auctions kicked hourly through the day's gas and DAI series; returns the share of lots won by
    minimal bids and the DAI raised. (A test harness: the engine will do this with the real book.)"""
    gas = read_gas_csv(data_dir() / "gas" / "eth_gas_gwei_10m_2020-03-12.csv").gas_gwei
    dai = read_price_csv(data_dir() / "prices" / "dai_usd_10m_2020-03-12.csv")
    flips, st = fl.Flips.empty(), kp.KeeperState.start(pop)
    per_step = n_auctions // ((hours[1] - hours[0]) * 6)
    raised, zero = 0.0, 0
    for t in range(hours[0] * 6, hours[1] * 6 + 3):
        now = t * 600.0 + 1.0
        flips, st, d = kp.deal_step(flips, pop, st, now_s=now, price_usd=ETH, dai_usd=dai.close[t])
        go = d.reason == fl.OK
        raised += float(d.raised_dai[go].sum())
        zero += int((go & (d.raised_dai <= pop.min_bid_dai * 10)).sum())
        if t < hours[1] * 6:
            flips = flips.concat(auctions(per_step, now=now))
        st = kp.refill(st, pop, dai_volume_dai=float(dai.volume[t]))
        flips, st, _ = step(flips, pop, st, now, float(gas[t]), dai=float(dai.close[t]))
    return zero / n_auctions, raised


def test_direction_over_the_documented_ranges(pop):
    """Not tuned to one number: over the ranges the data file states, more DAI per keeper means fewer
    zero-bid wins and more DAI raised; higher gas limits (fewer stuck keepers) the same."""
    from dataclasses import replace

    base_zero, base_raised = _black_thursday(pop)
    rich = replace(pop, dai_capacity_dai=np.where(pop.is_value, 2e6, pop.dai_capacity_dai))
    poor = replace(pop, dai_capacity_dai=np.where(pop.is_value, 1e5, pop.dai_capacity_dai), dai_refill_share=0.0)
    unstuck = replace(pop, max_gas_gwei=np.where(pop.is_value, 500.0, pop.max_gas_gwei))
    z_rich, r_rich = _black_thursday(rich)
    z_poor, r_poor = _black_thursday(poor)
    z_unstuck, r_unstuck = _black_thursday(unstuck)
    assert z_rich <= base_zero <= z_poor and r_rich >= base_raised >= r_poor
    assert z_poor > z_rich and r_rich > r_poor
    assert z_unstuck <= base_zero and r_unstuck >= base_raised
    assert 0.0 < base_zero < 1.0


def test_delayed_recycling_holds_the_lot_until_it_is_sold(pop):
    """With ``recycle_delay_min`` > 0 a deal credits the lot in tokens, not DAI; :func:`sell_collateral`
    turns it into the DAI the engine's market paid."""
    assert pop.recycle_collateral and pop.recycle_delay_min == 60
    f, st, _ = step(auctions(3), pop, kp.KeeperState.start(pop), 10.0, 5.0)
    winners = f.guy.copy()
    free0 = st.dai_free_dai.copy()
    f, st, d = kp.deal_step(f, pop, st, now_s=10.0 + 2 * TTL, price_usd=ETH, dai_usd=1.0)
    assert np.all(d.reason == fl.OK)
    np.testing.assert_array_equal(st.dai_free_dai, free0)  # no DAI yet
    won = np.bincount(winners, weights=d.lot_tokens, minlength=pop.n)
    np.testing.assert_allclose(st.collateral_won_tokens, won)
    st2 = kp.sell_collateral(st, winners, d.lot_tokens, np.full(3, 7_000.0))
    np.testing.assert_allclose(st2.dai_free_dai - free0, np.bincount(winners, weights=np.full(3, 7_000.0),
                                                                       minlength=pop.n))
    np.testing.assert_allclose(st2.collateral_won_tokens, 0.0, atol=1e-12)
    immediate = kp.population({**json.loads((data_dir() / "behaviour" / "keepers_2020-03-12.json").read_text()),
                               "recycle_delay_min": 0})
    f, st, _ = step(auctions(1), immediate, kp.KeeperState.start(immediate), 10.0, 5.0)
    k = int(f.guy[0])
    _, st3, d3 = kp.deal_step(f, immediate, st, now_s=10.0 + 2 * TTL, price_usd=ETH, dai_usd=1.05)
    assert st3.dai_free_dai[k] - st.dai_free_dai[k] == pytest.approx(d3.lot_tokens[0] * ETH / 1.05)
    with pytest.raises(InputError, match="recycle_delay_min: must be a number in"):
        kp.population({**json.loads((data_dir() / "behaviour" / "keepers_2020-03-12.json").read_text()),
                       "recycle_delay_min": -1})
