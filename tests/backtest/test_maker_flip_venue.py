"""Maker Liquidations 1.x on the cascade loop: the shipped venue contract, and zero-bid auctions that
appear exactly when the competitive keepers cannot bid (out of DAI, or priced out by gas)."""

from __future__ import annotations

import backtest_tiny as tiny
import numpy as np
import pytest

from optimizer.engine import bind, prepare
from optimizer.engine.reference import run_reference
from optimizer.engine.testing import ScenarioCase, VenueSimulatorContract
from optimizer.engine.venues import MakerFlipVenue, simulator_class
from optimizer.scenario.config import load_scenario

CASES = [
    ScenarioCase("liq10_keepers_2020", tiny.scenario_text(backtest=False), tiny.files()),
    ScenarioCase("liq10_ample_recycling", tiny.scenario_text(backtest=False),
                 {**tiny.files({**tiny.AMPLE, "recycle_collateral": True})}),
    ScenarioCase("liq12_box", tiny.scenario_text(backtest=False, snapshot="liq12.json"),
                 {**tiny.files(), "liq12.json": tiny.liq12_snapshot()}),
]
_BUILT: dict[str, object] = {}


@pytest.fixture(params=CASES, ids=lambda c: c.name)
def venue_case(request, tmp_path_factory):
    case = request.param
    if case.name not in _BUILT:
        _BUILT[case.name] = case.build(tmp_path_factory.mktemp(case.name))
    return _BUILT[case.name]


class TestMakerFlipVenue(VenueSimulatorContract):
    pass


def _ledger(tmp_path, population, **kw):
    sc = load_scenario(tiny.write(tmp_path, population, backtest=False, **kw))
    bound = bind(prepare(sc))
    return bound, run_reference(bound)


def test_registry_runs_maker_liq12_on_the_flip_venue(tmp_path):
    bound, _ = _ledger(tmp_path, tiny.AMPLE)
    assert simulator_class(bound.adapters[0]) is MakerFlipVenue


@pytest.mark.parametrize("population", [tiny.SCARCE_DAI, tiny.GAS_PRICED_OUT], ids=["out_of_dai", "priced_out_by_gas"])
def test_zero_bid_auctions_appear_when_keepers_cannot_bid(tmp_path, population):
    _, ample = _ledger(tmp_path / "a" if (tmp_path / "a").mkdir() is None else tmp_path, tiny.AMPLE)
    _, short = _ledger(tmp_path / "b" if (tmp_path / "b").mkdir() is None else tmp_path, population)
    # same book, same bites: only who bids differs
    assert ample.liquidations.sum() == short.liquidations.sum() > 20
    assert ample.auctions_dealt.sum() > 0 and ample.zero_bid_auctions.sum() == 0
    assert ample.realised_bad_debt_usd.sum() == pytest.approx(0.0, abs=1e-6)
    assert short.zero_bid_auctions.sum() >= 0.5 * short.auctions_dealt.sum() > 0
    assert short.auctions_won_at_first_bid.sum() >= short.zero_bid_auctions.sum()
    assert short.realised_bad_debt_usd.sum() > 0.5 * short.debt_removed_usd.sum()
    # a zero-bid auction gives its whole lot to the first (minimal) bidder: the keeper's discount is the lot
    assert short.collateral_won_at_zero_bid_usd.sum() > 0.5 * short.collateral_seized_usd.sum()


def _first_step_due_dai(tmp_path, **kw):
    sc = load_scenario(tiny.write(tmp_path, tiny.GAS_PRICED_OUT, backtest=False, **kw))
    bound = bind(prepare(sc))
    ev: list[tuple] = []
    run_reference(bound, events=ev)
    steps = np.array([e[1] for e in ev])
    due = np.array([e[5] + e[9] for e in ev])  # repaid + bad debt = the auction's due (DAI x price)
    first = steps == steps.min()
    return bound, float(due[first].sum()), int(first.sum())


def test_liq12_box_limits_the_debt_in_auctions(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    (tmp_path / "a" / "liq12.json").write_text(tiny.liq12_snapshot())
    bound, due12, n12 = _first_step_due_dai(tmp_path / "a", snapshot="liq12.json")
    _, due10, n10 = _first_step_due_dai(tmp_path / "b")
    ad = bound.adapters[0]
    assert ad.cat_version == "1.2"
    box, chop = ad.params["box_dai"], ad.params["ETH-A.chop"]
    # in its first liquidation step the 1.2 Cat bites until litter (tab in auctions) reaches box; 1.0 has no cap
    dai_max = 1.2  # DAI/USD stays below this in the slice
    assert due12 * chop <= box * dai_max
    assert due10 > 2 * box and n10 > n12



SPREAD = ('median = 1.3, sigma = 0.15, min = 1.05', 'median = 1.6, sigma = 0.3, min = 1.05')  # bites in 3 waves


def _spread_run(tmp_path, name, delay_min=None, volume="1.5e9"):
    pop = {**tiny.SCARCE_DAI, "keepers": [{**tiny.SCARCE_DAI["keepers"][0], "dai_capacity_dai": 5000},
                                          tiny.SCARCE_DAI["keepers"][1]]}
    if delay_min is not None:
        pop.update(recycle_collateral=True, recycle_delay_min=delay_min)
    (tmp_path / name).mkdir()
    path = tiny.write(tmp_path / name, pop, backtest=False)
    path.write_text(path.read_text().replace(*SPREAD).replace("daily_volume_usd = 1.5e9", f"daily_volume_usd = {volume}"))
    return run_reference(bind(prepare(load_scenario(path))))


def test_keepers_recycle_won_collateral_into_dai_after_the_delay(tmp_path):
    """Two value keepers with 5,000 DAI each and bites in three waves (11:40, 12:00, 12:50): without
    recycling each covers one lot and the zero bidder takes the rest; selling what they win 10 minutes
    after each deal (into the ETH pool) refills them for the later waves, so the loss is smaller. A delay
    longer than the slice is no recycling at all (to the cent)."""
    none = _spread_run(tmp_path, "none")
    fast = _spread_run(tmp_path, "fast", 10)
    never = _spread_run(tmp_path, "never", 24 * 60)
    assert none.liquidations.sum() == fast.liquidations.sum() == never.liquidations.sum() > 20  # same bites
    assert never.keeper_collateral_sold_usd.sum() == 0.0
    assert never.bad_debt_usd.sum() == none.bad_debt_usd.sum()
    assert fast.keeper_collateral_sold_usd.sum() > 0
    assert fast.bad_debt_usd.sum() < none.bad_debt_usd.sum() - 1000.0


def test_recycled_sales_are_priced_in_the_market_with_impact(tmp_path):
    """The same run with a deep and with a shallow ETH pool: the shallow pool pays less for the same lots
    (square-root impact), so the keepers get back less DAI for what they sell."""
    deep = _spread_run(tmp_path, "deep", 10, "1.5e12")
    shallow = _spread_run(tmp_path, "shallow", 10, "1.5e7")
    assert deep.liquidations.sum() == shallow.liquidations.sum()
    # square-root impact: sigma x sqrt(Q / V) ~ 0.05 x sqrt(0.58M / 15M) ~ 1 % on what the keepers sell
    assert 0 < shallow.keeper_collateral_sold_usd.sum() < 0.995 * deep.keeper_collateral_sold_usd.sum()
