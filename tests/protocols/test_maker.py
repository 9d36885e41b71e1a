"""Maker Liquidations 2.0: abacus vectors (oracles.md §3), hand-worked Dog/Clipper examples and
an exact reference of Dog.bark written as a plain loop."""

import copy

import numpy as np
import pytest

from optimizer.snapshots import data_dir, load_adapter, read_json
from protocols import Book, InvalidParameters, Prices, SnapshotError
from protocols.maker import (
    DUSTY_PARTIAL,
    EXPONENTIAL,
    LIMIT_HIT,
    LINEAR,
    NEEDS_RESET,
    NO_PARTIAL_PURCHASE,
    NOT_RUNNING,
    NOT_UNSAFE,
    NULL_AUCTION,
    OK,
    STAIRSTEP,
    STOPPED,
    TOO_EXPENSIVE,
    Auctions,
    Calc,
    Maker,
    MakerRevert,
    auction_price,
    bark,
    kick,
    needs_redo,
    redo,
    take,
    trip_breaker,
)


@pytest.fixture(scope="module")
def maker():
    return load_adapter("maker")


@pytest.fixture()
def snap():
    return copy.deepcopy(read_json(data_dir() / "protocols" / "maker_ilks.json"))


def eth_a_book(ink, art):
    return Book(("ETH-A",), ("DAI",), np.array(ink, float)[:, None], np.array(art, float)[:, None])


def px(eth_usd):
    return Prices(np.array([float(eth_usd)]), np.array([1.0]))


# ------------------------------------------------------------------ snapshot and schema


def test_snapshot_values_are_the_current_ones(maker):
    e = maker.ilk("ETH-A")
    assert (e.mat, e.chop, e.hole_dai, e.dust_dai, e.buf) == (1.45, 1.13, 40e6, 7500, 1.1)
    assert (e.tail_s, e.cusp, e.chip, e.tip_dai) == (7200, 0.45, 0.001, 250)
    assert e.calc == Calc(STAIRSTEP, cut=0.99, step_s=90)
    assert e.chost_dai == pytest.approx(8475.0, rel=1e-15)
    assert maker.params["Hole_dai"] == 150e6 and maker.params["osm_hop_s"] == 3600
    assert maker.collateral_assets[0] == "ETH-A" and maker.debt_assets == ("DAI",)
    assert maker.underlying["WSTETH-A"] == "wstETH" and maker.underlying["LSEV2-SKY-A"] == "SKY"
    assert maker.underlying["WBTC-C"] == "WBTC" and maker.underlying["ETH-B"] == "ETH"
    spec = maker.schema().spec("ETH-A.cut")
    assert spec.as_of == "2026-05-07" and "spells-mainnet" in spec.source


def test_circuit_breakers(maker):
    cb = maker.circuit_breakers()
    assert cb.oracle_delay_s == 3600
    assert cb.auction_debt_cap_usd["ETH-A"] == 40e6 and cb.global_auction_debt_cap_usd == 150e6
    assert cb.auction_reset_after_s["ETH-B"] == 4800 and cb.auction_reset_price_ratio["LSEV2-SKY-A"] == 0.4
    assert cb.price_drop_breaker_ratio["ETH-A"] == 0.5
    assert "LSEV2-SKY-A" not in cb.price_drop_breaker_ratio  # ClipperMom not wired
    assert cb.liquidations_paused == frozenset({"LSEV2-SKY-A"})


@pytest.mark.parametrize("name, value, rule", [
    ("ETH-A.mat", 1.0, "mat > 1"),
    ("ETH-A.cusp", 1.0, "0 < cusp < 1"),
    ("ETH-A.cusp", 0.0, "0 < cusp < 1"),
    ("WSTETH-B.cut", 1.0, "0 < cut < 1"),
    ("ETH-A.tail_s", 0.0, "tail > 0"),
    ("ETH-B.step_s", 0.0, "step > 0"),
])
def test_invariant_violations_name_parameter_and_rule(maker, name, value, rule):
    with pytest.raises(InvalidParameters, match=rf"^{name}=\S+ breaks '{rule}"):
        maker.with_params({name: value})


def test_out_of_bounds_values_are_refused(maker):
    with pytest.raises(InvalidParameters, match=r"^ETH-A\.mat=0\.5 is outside its bounds"):
        maker.with_params({"ETH-A.mat": 0.5})
    with pytest.raises(InvalidParameters, match=r"^ETH-A\.chop=0\.9 is outside its bounds"):
        maker.with_params({"ETH-A.chop": 0.9})
    with pytest.raises(InvalidParameters, match=r"^osm_hop_s=0 is outside its bounds"):
        maker.with_params({"osm_hop_s": 0})
    with pytest.raises(InvalidParameters, match=r"^ETH-A\.tail_s=7200\.5 must be a whole number"):
        maker.with_params({"ETH-A.tail_s": 7200.5})


@pytest.mark.parametrize("path, edit", [
    ("ilks.ETH-A.cusp", lambda s: s["ilks"]["ETH-A"].pop("cusp")),
    ("ilks.ETH-A.calc.type", lambda s: s["ilks"]["ETH-A"]["calc"].update(type="Dutch")),
    ("ilks.WBTC-B.calc.cut", lambda s: s["ilks"]["WBTC-B"]["calc"].update(cut="0.99")),
    ("ilks.ETH-C.liquidations_enabled", lambda s: s["ilks"]["ETH-C"].update(liquidations_enabled=1)),
    ("global.Hole_dai", lambda s: s["global"].pop("Hole_dai")),
    ("ilks", lambda s: s.update(ilks=[])),
])
def test_malformed_snapshot_names_the_path(snap, path, edit):
    edit(snap)
    with pytest.raises(SnapshotError, match=rf"^{path}:"):
        Maker.from_snapshot(snap)


def test_linear_ilk_gets_tau_instead_of_step_and_cut(snap):
    snap["ilks"]["ETH-A"]["calc"] = {"type": LINEAR, "step_s": 0, "cut": 0, "tau_s": 3600}
    m = Maker.from_snapshot(snap)
    assert "ETH-A.tau_s" in m.params and "ETH-A.cut" not in m.params and "ETH-A.step_s" not in m.params
    assert m.calc("ETH-A") == Calc(LINEAR, tau_s=3600)
    with pytest.raises(InvalidParameters, match=r"^ETH-A\.tau_s=0 breaks 'tau > 0"):
        m.with_params({"ETH-A.tau_s": 0})


# ------------------------------------------------------------------ abacus vectors (oracles.md §3)


def test_linear_decrease_vector():
    dur = np.arange(0, 3601, 360)
    price = auction_price(Calc(LINEAR, tau_s=3600), 1000.0, dur)
    np.testing.assert_array_equal(price, [1000, 900, 800, 700, 600, 500, 400, 300, 200, 100, 0])
    assert auction_price(Calc(LINEAR, tau_s=3600), 1000.0, 5000.0) == 0.0


def test_stairstep_exponential_decrease_vector():
    calc = Calc(STAIRSTEP, cut=0.99, step_s=90)
    np.testing.assert_array_equal(auction_price(calc, 1000.0, np.arange(90)), np.full(90, 1000.0))
    assert auction_price(calc, 1000.0, 90) == pytest.approx(990.0, rel=1e-15)
    assert auction_price(calc, 1000.0, 179) == pytest.approx(990.0, rel=1e-15)
    assert auction_price(calc, 1000.0, 180) == pytest.approx(980.1, rel=1e-15)


def test_exponential_decrease_is_the_stairstep_with_one_second_steps():
    dur = np.arange(0, 400)
    exp = auction_price(Calc(EXPONENTIAL, cut=0.99), 1000.0, dur)
    assert exp[0] == 1000.0 and exp[1] == pytest.approx(990.0, rel=1e-15)
    assert exp[2] == pytest.approx(980.1, rel=1e-15)
    np.testing.assert_allclose(exp, 1000.0 * 0.99**dur, rtol=1e-15)
    np.testing.assert_allclose(exp, auction_price(Calc(STAIRSTEP, cut=0.99, step_s=1), 1000.0, dur), rtol=1e-15)


def test_eth_a_price_falls_below_cusp_exactly_at_tail(maker):
    e = maker.ilk("ETH-A")
    # 0.99^79 = 0.4520 >= 0.45 but 0.99^80 = 0.4475 < 0.45: 80 steps of 90 s = 7200 s = tail.
    assert 0.99**79 >= e.cusp > 0.99**80 and 80 * e.calc.step_s == e.tail_s
    a, _ = kick(113_000.0, 100.0, 2000.0, buf=e.buf, tip_dai=e.tip_dai, chip=e.chip)
    flags = [needs_redo(a, e.calc, t, tail_s=e.tail_s, cusp=e.cusp)[0][0] for t in (0, 7110, 7199, 7200)]
    assert flags == [False, False, False, True]
    # With a lower cusp only the tail rule is left; it is strict (elapsed > tail).
    f = [needs_redo(a, e.calc, t, tail_s=e.tail_s, cusp=0.3)[0][0] for t in (7200, 7201)]
    assert f == [False, True]


# ------------------------------------------------------------------ Clipper.kick / redo


def test_auction_resets_at_tail_and_pays_the_keeper_again_only_above_chost(maker):
    e = maker.ilk("ETH-A")
    # 50 ETH, 80,000 DAI at $2,000: 100,000/(1.45*80,000) = 0.862 < 1. tab = 80,000*1.13 = 90,400.
    book = eth_a_book([50.0], [80_000.0])
    assert maker.health(book, px(2000))[0] == pytest.approx(100_000 / (1.45 * 80_000), rel=1e-15)
    b = bark([50.0], [80_000.0], [0], chop=[e.chop], dust_dai=[e.dust_dai], hole_dai=[e.hole_dai],
             Hole_dai=150e6)
    assert b.reason[0] == OK and b.dink[0] == 50.0 and b.tab_dai[0] == pytest.approx(90_400.0, rel=1e-15)
    a, coin = kick(b.tab_dai, b.dink, 2000.0, buf=e.buf, tip_dai=e.tip_dai, chip=e.chip, now_s=0.0)
    assert a.top[0] == pytest.approx(2200.0, rel=1e-15) and coin[0] == pytest.approx(250 + 90.4, rel=1e-15)

    # Nobody takes. After 10 steps the price is 2200*0.99^10; redo before tail is refused.
    done, price = needs_redo(a, e.calc, 900.0, tail_s=e.tail_s, cusp=e.cusp)
    assert not done[0] and price[0] == pytest.approx(2200 * 0.99**10, rel=1e-14)
    early = redo(a, e.calc, 900.0, 1900.0, buf=e.buf, tail_s=e.tail_s, cusp=e.cusp, tip_dai=e.tip_dai,
                 chip=e.chip, chost_dai=e.chost_dai)
    assert early.reason[0] != OK and early.coin_dai[0] == 0 and early.auctions.top[0] == a.top[0]

    # At 7200 s it needs a reset; redo restarts from the new feed (1,500): top = 1,650, tic = 7,200.
    r = redo(a, e.calc, 7200.0, 1500.0, buf=e.buf, tail_s=e.tail_s, cusp=e.cusp, tip_dai=e.tip_dai,
             chip=e.chip, chost_dai=e.chost_dai)
    assert r.reason[0] == OK and r.auctions.top[0] == pytest.approx(1650.0, rel=1e-15)
    assert r.auctions.tic[0] == 7200.0 and r.auctions.tab[0] == a.tab[0] and r.auctions.lot[0] == 50.0
    assert r.coin_dai[0] == pytest.approx(340.4, rel=1e-15)  # tab 90,400 and lot*feed 75,000 >= chost 8,475
    done, price = needs_redo(r.auctions, e.calc, 7290.0, tail_s=e.tail_s, cusp=e.cusp)
    assert not done[0] and price[0] == pytest.approx(1650 * 0.99, rel=1e-15)

    # No incentive for a reset of a dusty auction: tab 8,000 < chost, or lot*feed = 5*1,500 < chost.
    small = Auctions(tab=[8_000.0, 90_400.0], lot=[50.0, 5.0], top=[2200.0, 2200.0], tic=[0.0, 0.0])
    r2 = redo(small, e.calc, 7200.0, 1500.0, buf=e.buf, tail_s=e.tail_s, cusp=e.cusp, tip_dai=e.tip_dai,
              chip=e.chip, chost_dai=e.chost_dai)
    assert list(r2.reason) == [OK, OK] and list(r2.coin_dai) == [0.0, 0.0]

    # ClipperMom's level 2 blocks redo.
    r3 = redo(a, e.calc, 7200.0, 1500.0, buf=e.buf, tail_s=e.tail_s, cusp=e.cusp, tip_dai=e.tip_dai,
              chip=e.chip, chost_dai=e.chost_dai, stopped=2)
    assert r3.reason[0] == STOPPED and r3.auctions.top[0] == a.top[0] and r3.coin_dai[0] == 0


def test_kick_is_blocked_from_level_1():
    with pytest.raises(MakerRevert, match="stopped"):
        kick(1000.0, 1.0, 2000.0, buf=1.1, tip_dai=0.0, chip=0.0, stopped=1)
    with pytest.raises(MakerRevert, match="zero-top-price"):
        kick(1000.0, 1.0, 0.0, buf=1.1, tip_dai=0.0, chip=0.0)
    _, coin = kick([1000.0, 2000.0], [1.0, 1.0], 2000.0, buf=1.1, tip_dai=0.0, chip=0.0)
    assert list(coin) == [0.0, 0.0]


def test_clipper_mom_trips_to_level_2_on_a_large_osm_drop():
    stopped = np.array([0, 1, 2, 0, 0])
    nxt = np.array([900.0, 900.0, 900.0, 1000.0, 900.0])
    tol = np.array([0.5, 0.5, 0.5, 0.5, np.nan])  # last: ClipperMom not wired
    np.testing.assert_array_equal(trip_breaker(stopped, 2000.0, nxt, tol), [2, 2, 2, 0, 0])


# ------------------------------------------------------------------ Clipper.take


def test_take_that_would_leave_less_than_chost_is_cut_back_to_leave_chost(maker):
    e = maker.ilk("ETH-A")  # chost = 7,500*1.13 = 8,475
    a = Auctions(tab=[10_000.0], lot=[10.0], top=[2000.0], tic=[0.0])
    # Buying 4.5 at 2,000 would pay 9,000 and leave 1,000 < chost: pay 10,000 - 8,475 = 1,525 instead.
    t = take(a, e.calc, 0.0, 4.5, tail_s=e.tail_s, cusp=e.cusp, chost_dai=e.chost_dai)
    assert t.reason[0] == OK and t.price[0] == 2000.0
    assert t.owe_dai[0] == pytest.approx(1525.0, rel=1e-12) and t.slice[0] == pytest.approx(0.7625, rel=1e-12)
    assert t.auctions.tab[0] == pytest.approx(8475.0, rel=1e-12)
    assert t.auctions.lot[0] == pytest.approx(9.2375, rel=1e-12)
    assert t.digs_dai[0] == t.owe_dai[0] and t.returned[0] == 0

    # Now tab = chost: no partial buy any more, only the whole lot.
    t2 = take(t.auctions, e.calc, 0.0, 1.0, tail_s=e.tail_s, cusp=e.cusp, chost_dai=e.chost_dai)
    assert t2.reason[0] == NO_PARTIAL_PURCHASE and t2.owe_dai[0] == 0
    np.testing.assert_array_equal(t2.auctions.tab, t.auctions.tab)
    # Asking for everything pays the tab (owe > tab -> owe = tab) and returns the rest to the owner.
    t3 = take(t.auctions, e.calc, 0.0, np.inf, tail_s=e.tail_s, cusp=e.cusp, chost_dai=e.chost_dai)
    assert t3.reason[0] == OK and t3.owe_dai[0] == pytest.approx(8475.0, rel=1e-12)
    assert t3.slice[0] == pytest.approx(8475.0 / 2000.0, rel=1e-12)
    assert t3.returned[0] == pytest.approx(9.2375 - 8475.0 / 2000.0, rel=1e-12)
    assert t3.auctions.tab[0] == 0 and t3.auctions.lot[0] == 0 and not t3.auctions.running[0]
    assert t3.digs_dai[0] == pytest.approx(8475.0, rel=1e-12)


def test_take_until_the_lot_runs_out_leaves_the_rest_of_the_tab_unpaid(maker):
    e = maker.ilk("ETH-A")
    a = Auctions(tab=[50_000.0], lot=[10.0], top=[2000.0], tic=[0.0])
    t = take(a, e.calc, 0.0, 10.0, tail_s=e.tail_s, cusp=e.cusp, chost_dai=e.chost_dai)
    assert t.owe_dai[0] == 20_000.0 and t.slice[0] == 10.0 and t.returned[0] == 0
    assert t.digs_dai[0] == 50_000.0 and t.uncollected_dai[0] == 30_000.0  # Dog.digs(tab + owe)
    assert not t.auctions.running[0]


def test_take_reverts(maker):
    e = maker.ilk("ETH-A")
    a = Auctions(tab=[50_000.0, 0.0], lot=[10.0, 0.0], top=[2000.0, 2000.0], tic=[0.0, 0.0])
    kw = {"tail_s": e.tail_s, "cusp": e.cusp, "chost_dai": e.chost_dai}
    assert list(take(a, e.calc, 0.0, 1.0, max_price=1999.0, **kw).reason) == [TOO_EXPENSIVE, NOT_RUNNING]
    assert take(a, e.calc, 7200.0, 1.0, **kw).reason[0] == NEEDS_RESET
    assert take(a, e.calc, 0.0, 1.0, stopped=3, **kw).reason[0] == STOPPED
    assert take(a, e.calc, 0.0, 1.0, stopped=2, **kw).reason[0] == OK  # level 2 still allows take


# ------------------------------------------------------------------ Dog.bark


def reference_bark(ink, art, ilk, chop, dust, hole, Hole):
    """dog.sol bark, one vault at a time (rate = 1). A partial bark fills its room exactly.

    Returns ``[(reason, dart, tab)]``, dirt, Dirt and how often the dusty-leftover rule took a whole vault.
    """
    dirt, Dirt = [0.0] * len(hole), 0.0
    out, dusty_whole = [], 0
    for v_ink, v_art, k in zip(ink, art, ilk, strict=False):
        if not (Hole > Dirt and hole[k] > dirt[k]):
            out.append((LIMIT_HIT, 0.0, 0.0))
            continue
        r_all, r_ilk = Hole - Dirt, hole[k] - dirt[k]
        room = min(r_all, r_ilk)
        dart = v_art if v_art * chop[k] <= room else room / chop[k]
        if v_art > dart:
            if v_art - dart < dust[k]:
                dart = v_art
                dusty_whole += v_ink > 0
            elif dart < dust[k]:
                out.append((DUSTY_PARTIAL, 0.0, 0.0))
                continue
        if v_ink <= 0:
            out.append((NULL_AUCTION, 0.0, 0.0))
            continue
        if dart < v_art:
            tab = room
            dirt[k] = hole[k] if r_ilk <= r_all else dirt[k] + tab
            Dirt = Hole if r_all <= r_ilk else Dirt + tab
        else:
            tab = v_art * chop[k]
            dirt[k] += tab
            Dirt += tab
        out.append((OK, dart, tab))
    return out, dirt, Dirt, dusty_whole


def test_bark_partial_at_the_hole_then_limit_hit():
    # hole 50,000 < tab 113,000: dart = 50,000/1.13 = 44,247.79, leftover 55,752 >= dust; auction 50,000.
    b = bark([60.0, 100.0], [100_000.0, 100_000.0], [0, 0], chop=[1.13], dust_dai=[7500.0],
             hole_dai=[50_000.0], Hole_dai=150e6)
    assert list(b.reason) == [OK, LIMIT_HIT]
    assert b.dart[0] == pytest.approx(50_000 / 1.13, rel=1e-15)
    assert b.dink[0] == pytest.approx(60 * (50_000 / 1.13) / 100_000, rel=1e-15)
    assert b.tab_dai[0] == 50_000.0 and b.dirt_dai[0] == 50_000.0 and b.Dirt_dai == 50_000.0


def test_bark_takes_the_whole_vault_when_the_leftover_would_be_dusty():
    # room 110,000: dart = 97,345 would leave 2,655 < dust 7,500, so the whole vault goes (dirt > hole).
    b = bark([60.0, 100.0], [100_000.0, 100_000.0], [0, 0], chop=[1.13], dust_dai=[7500.0],
             hole_dai=[110_000.0], Hole_dai=150e6)
    assert list(b.reason) == [OK, LIMIT_HIT]
    assert b.dart[0] == 100_000.0 and b.dink[0] == 60.0
    assert b.tab_dai[0] == pytest.approx(113_000.0, rel=1e-15) and b.dirt_dai[0] > 110_000.0


def test_bark_refuses_a_dusty_partial_but_later_vaults_may_still_fit():
    # room 5,000: vault 0 partial dart = 4,425 < dust -> revert, room unchanged; vault 1 (tab 4,520) fits;
    # vault 2 (3,000 DAI, dusty itself) faces room 480: leftover would be dusty -> whole take, dirt 7,910.
    b = bark([60.0, 3.0, 2.0, 5.0], [100_000.0, 4000.0, 3000.0, 4000.0], [0, 0, 0, 0], chop=[1.13],
             dust_dai=[7500.0], hole_dai=[5000.0], Hole_dai=150e6)
    assert list(b.reason) == [DUSTY_PARTIAL, OK, OK, LIMIT_HIT]
    assert b.dart[1] == 4000.0 and b.dart[2] == 3000.0
    assert b.dirt_dai[0] == pytest.approx(7910.0, rel=1e-15)


def test_bark_shares_the_global_hole_across_ilks():
    # Hole 150,000: ETH-A vault takes 113,000; ETH-B (dust 25,000) gets room 37,000 -> dart 32,743.
    b = bark([60.0, 60.0, 60.0], [100_000.0, 100_000.0, 100_000.0], [0, 1, 0], chop=[1.13, 1.13],
             dust_dai=[7500.0, 25_000.0], hole_dai=[40e6, 15e6], Hole_dai=150_000.0)
    assert list(b.reason) == [OK, OK, LIMIT_HIT]
    assert b.dart[1] == pytest.approx(37_000 / 1.13, rel=1e-15) and b.Dirt_dai == 150_000.0
    np.testing.assert_allclose(b.dirt_dai, [113_000.0, 37_000.0], rtol=1e-15)


def test_vectorised_bark_matches_the_one_vault_at_a_time_reference():
    seen, partial, dusty_whole = set(), 0, 0
    for seed in range(30):
        rng = np.random.default_rng(seed)
        n, k = 300, 4
        chop = rng.uniform(1.0, 1.2, k)
        dust = rng.uniform(1000, 20_000, k)
        hole = rng.uniform(0.02, 0.5, k) * 300 * 60_000 / k
        Hole = rng.uniform(0.3, 1.2) * hole.sum()
        ilk = rng.integers(0, k, n)
        art = np.exp(rng.normal(9.5, 2.0, n))
        dusty = rng.random(n) < 0.1
        art[dusty] = dust[ilk][dusty] * 0.5  # vaults below dust (dust raised after they were opened)
        ink = art * rng.uniform(0.5, 2.0, n) * (rng.random(n) > 0.02)  # a few with no ink
        b = bark(ink, art, ilk, chop=chop, dust_dai=dust, hole_dai=hole, Hole_dai=Hole)
        ref, dirt, Dirt, n_dusty_whole = reference_bark(ink, art, ilk, chop, dust, hole, Hole)
        np.testing.assert_array_equal(b.reason, [r[0] for r in ref])
        np.testing.assert_allclose(b.dart, [r[1] for r in ref], rtol=1e-9)
        np.testing.assert_allclose(b.tab_dai, [r[2] for r in ref], rtol=1e-9)
        np.testing.assert_allclose(b.dirt_dai, dirt, rtol=1e-9)
        assert b.Dirt_dai == pytest.approx(Dirt, rel=1e-9)
        seen |= set(b.reason.tolist())
        partial += int(((b.dart > 0) & (b.dart < art)).sum())
        dusty_whole += n_dusty_whole
    # The cases must actually reach every branch at the boundary.
    assert seen == {OK, LIMIT_HIT, DUSTY_PARTIAL, NULL_AUCTION}
    assert partial > 0 and dusty_whole > 0


# ------------------------------------------------------------------ the adapter's one-shot liquidate


def test_health_below_one_iff_ink_spot_below_art_rate(maker):
    rng = np.random.default_rng(1)
    ink, art = rng.uniform(1, 100, 500), rng.uniform(10_000, 300_000, 500)
    price = 2000.0
    spot = price / (1.0 * 1.45)  # price/(par*mat)
    hf = maker.health(eth_a_book(ink, art), px(price))
    np.testing.assert_array_equal(hf < 1, ink * spot < art)
    assert maker.health(eth_a_book([1.0], [0.0]), px(price))[0] == np.inf
    np.testing.assert_allclose(maker.borrow_capacity_usd(eth_a_book([1.0], [0.0]), px(price)), [price / 1.45])


def test_liquidate_partial_bark_at_the_hole(maker):
    m = maker.with_params({"ETH-A.hole_dai": 50_000})
    book = eth_a_book([60.0, 100.0, 60.0], [100_000.0, 100_000.0, 100_000.0])
    out = m.liquidate(book, px(2000))
    assert list(out.liquidated) == [True, False, False]
    assert list(out.extra["reason"]) == [OK, NOT_UNSAFE, LIMIT_HIT]
    dart = 50_000 / 1.13
    dink = 60 * dart / 100_000
    # The vault keeps the unbarked part; the auction raises the whole tab 50,000 (25 ETH at $2,000).
    np.testing.assert_allclose(out.book.collateral_tokens[:, 0], [60 - dink, 100, 60], rtol=1e-15)
    np.testing.assert_allclose(out.book.debt_tokens[:, 0], [100_000 - dart, 100_000, 100_000], rtol=1e-15)
    assert out.collateral_seized_usd[0] == pytest.approx(dink * 2000, rel=1e-15)
    assert out.debt_repaid_usd[0] == pytest.approx(dart, rel=1e-15)
    assert out.protocol_fee_usd[0] == pytest.approx(50_000 - dart, rel=1e-15)
    assert out.extra["collateral_sold_tokens"][0] == pytest.approx(25.0, rel=1e-15)
    assert out.returned_to_owner_usd[0] == pytest.approx((dink - 25) * 2000, rel=1e-12)
    assert out.keeper_incentive_usd[0] == pytest.approx(250 + 50, rel=1e-15)
    assert out.bad_debt_usd[0] == 0 and out.liquidator_bonus_usd[0] == 0
    assert out.extra["top"][0] == pytest.approx(2200.0, rel=1e-15)


def test_liquidate_underwater_vault_books_bad_debt(maker):
    # 10 ETH at $2,000 = 20,000 against 50,000 DAI: the whole lot raises 20,000 < due 50,000.
    out = maker.liquidate(eth_a_book([10.0], [50_000.0]), px(2000))
    assert out.liquidated[0] and out.book.collateral_tokens[0, 0] == 0 and out.book.debt_tokens[0, 0] == 0
    assert out.debt_repaid_usd[0] == 20_000 and out.bad_debt_usd[0] == 30_000
    assert out.protocol_fee_usd[0] == 0 and out.returned_to_owner_usd[0] == 0
    assert out.keeper_incentive_usd[0] == pytest.approx(250 + 0.001 * 56_500, rel=1e-15)


def test_liquidate_skips_ilks_whose_clipper_is_stopped(maker):
    ilks = ("ETH-A", "LSEV2-SKY-A")
    book = Book(ilks, ("DAI",), np.array([[10.0, 0.0], [0.0, 1e6]]), np.array([[50_000.0], [100_000.0]]))
    out = maker.liquidate(book, Prices(np.array([2000.0, 0.07]), np.array([1.0])))
    assert maker.liquidatable(book, Prices(np.array([2000.0, 0.07]), np.array([1.0]))).all()
    assert list(out.extra["reason"]) == [OK, STOPPED]
    np.testing.assert_array_equal(out.book.collateral_tokens[1], book.collateral_tokens[1])


def test_a_vault_holds_one_ilk(maker):
    book = Book(("ETH-A", "ETH-B"), ("DAI",), np.array([[1.0, 1.0]]), np.array([[100.0]]))
    with pytest.raises(ValueError, match="exactly one ilk"):
        maker.liquidate(book, Prices(np.array([2000.0, 2000.0]), np.array([1.0])))
