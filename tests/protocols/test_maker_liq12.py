"""Maker Liquidations 1.x: the 2020-03-12 snapshot, hand-worked Cat.bite and Flipper examples (dss 1.0.0
cat.sol/flip.sol; 1.1.0 for the 1.2 Cat) and the 1.2 bite checked against a plain loop over vaults."""

import copy

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from optimizer.snapshots import data_dir, load_adapter, read_json
from protocols import Book, MakerLiq12, Prices, SnapshotError
from protocols import maker_flipper as fl
from protocols.maker_liq12 import LIMIT_HIT, NOT_UNSAFE, NULL_AUCTION, OK, bite_v10, bite_v12


@pytest.fixture(scope="module")
def liq():
    return load_adapter("maker_liq12")


@pytest.fixture()
def snap():
    return copy.deepcopy(read_json(data_dir() / "protocols" / "maker_liq12_eth_a_2020-03-12.json"))


def eth_a(ink, art):
    return Book(("ETH-A",), ("DAI",), np.array(ink, float)[:, None], np.array(art, float)[:, None])


def px(eth_usd, dai_usd=1.0):
    return Prices(np.array([float(eth_usd)]), np.array([float(dai_usd)]))


# ------------------------------------------------------------------ snapshot


def test_snapshot_is_black_thursday_eth_a(liq):
    e = liq.ilk("ETH-A")
    assert (e.mat, e.chop, e.lump_tokens, e.dust_dai) == (1.5, 1.13, 50, 20)
    assert (e.beg, e.ttl_s, e.tau_s) == (1.03, 600, 3 * 86_400)
    assert liq.params["osm_hop_s"] == 3600
    assert (liq.cat_version, liq.flipper_version) == ("1.0", "1.0")
    meta = liq.snapshot_meta
    assert meta["valid_from"] == "2019-11-18" and meta["valid_to"] == "2020-03-13"
    assert "dss tag 1.0.0" in liq.schema().spec("ETH-A.lump_tokens").source
    cb = liq.circuit_breakers()
    assert cb.oracle_delay_s == 3600 and cb.global_auction_debt_cap_usd == float("inf")


def test_cat_and_flipper_versions_must_match(snap):
    snap["cat_version"] = "1.2"
    with pytest.raises(SnapshotError, match="flipper_version"):
        MakerLiq12(snap)
    snap["flipper_version"] = "1.2"
    with pytest.raises(SnapshotError, match=r"ilks.ETH-A.dunk_dai: missing"):
        MakerLiq12(snap)
    snap["ilks"]["ETH-A"]["dunk_dai"] = 50_000
    snap["global"]["box_dai"] = 30e6
    ad = MakerLiq12(snap)
    assert ad.params["box_dai"] == 30e6 and ad.circuit_breakers().global_auction_debt_cap_usd == 30e6


# ------------------------------------------------------------------ Cat.bite


def test_bite_with_lump_takes_50_eth_and_a_proportional_debt(liq):
    """120 ETH against 10,000 DAI at $100 (spot 66.67): unsafe. Bite 1: lot 50, art 50/120 x 10,000 =
    4,166.67, tab 4,708.33; the vault keeps 70 ETH and 5,833.33 DAI, as unsafe as before (a partial
    bite keeps ink/art). Bite 2 the same; bite 3 takes the last 20 ETH and 1,666.67 DAI."""
    b = eth_a([120.0], [10_000.0])
    p = px(100.0)
    lots, tabs = [], []
    for _ in range(3):
        out = liq.liquidate(b, p)
        assert out.extra["reason"][0] == OK
        lots.append(out.extra["lot"][0])
        tabs.append(out.extra["tab_dai"][0])
        b = out.book
    np.testing.assert_allclose(lots, [50.0, 50.0, 20.0], rtol=1e-15)
    np.testing.assert_allclose(tabs, np.array([50 / 120 * 10_000, 50 / 120 * 10_000, 20 / 120 * 10_000]) * 1.13,
                               rtol=1e-12)
    assert b.collateral_tokens[0, 0] == 0.0 and b.debt_tokens[0, 0] == 0.0
    assert liq.liquidate(b, p).extra["reason"][0] == NOT_UNSAFE


def test_bite_v10_refuses_safe_vaults_and_divides_by_zero_on_empty_ones():
    b = bite_v10([10.0, 0.0, 10.0], [500.0, 100.0, 1_000.0], 100 / 1.5, lump_tokens=50, chop=1.13)
    assert b.reason.tolist() == [NOT_UNSAFE, NULL_AUCTION, OK]
    assert b.lot.tolist() == [0.0, 0.0, 10.0] and b.art[2] == 1_000.0


def test_bite_v12_dunk_chunks_under_box():
    """dunk 50k, box 120k, chop 1.13, dust 100. Vault 1 (100k debt) gives a 50k chunk (dart 44,247.79);
    vault 2 (30k) fits whole (tab 33.9k, litter 83.9k); vault 3 (60k) gets the 36.1k of room left
    (litter = box); vault 4 hits the limit."""
    art = np.array([100_000.0, 30_000.0, 60_000.0, 5_000.0])
    ink = art * 1.4 / 100.0  # unsafe at $100 with mat 1.5
    b = bite_v12(ink, art, 100 / 1.5, dunk_dai=50_000, chop=1.13, dust_dai=100, box_dai=120_000)
    assert b.reason.tolist() == [OK, OK, OK, LIMIT_HIT]
    np.testing.assert_allclose(b.tab_dai, [50_000, 33_900, 36_100, 0], rtol=1e-12)
    np.testing.assert_allclose(b.art[:3], [50_000 / 1.13, 30_000, 36_100 / 1.13], rtol=1e-12)
    np.testing.assert_allclose(b.lot[:3], ink[:3] * b.art[:3] / art[:3], rtol=1e-12)
    assert b.litter_dai == 120_000
    b = bite_v12(ink, art, 100 / 1.5, dunk_dai=50_000, chop=1.13, dust_dai=100, box_dai=120_000,
                 litter_dai=119_950)  # room 50 < dust 100
    assert b.reason.tolist() == [LIMIT_HIT] * 4


def _bite_v12_loop(ink, art, spot, dunk, chop, dust, box, litter):
    """cat.sol 1.1.0 bite, one vault after another, as written in the contract."""
    out = []
    for i in range(len(ink)):
        if not (spot > 0 and ink[i] * spot < art[i]):
            out.append((NOT_UNSAFE, 0.0, 0.0))
            continue
        room = box - litter
        if not (litter < box and room >= dust):
            out.append((LIMIT_HIT, 0.0, 0.0))
            continue
        dart = min(art[i], min(dunk, room) / chop)
        dink = min(ink[i], ink[i] * dart / art[i])
        if not (dart > 0 and dink > 0):
            out.append((NULL_AUCTION, 0.0, 0.0))
            continue
        litter += dart * chop
        out.append((OK, dart, dink))
    return out, litter


@settings(max_examples=40, deadline=None)
@given(debts=st.lists(st.floats(10, 200_000), min_size=1, max_size=25), box=st.floats(1_000, 600_000),
       dunk=st.floats(500, 80_000), dust=st.floats(0, 400), litter=st.floats(0, 1.0))
def test_bite_v12_matches_the_contract_loop(debts, box, dunk, dust, litter):
    art = np.array(debts)
    ink = art * 1.2 / 100.0
    ink[::7] = 0.0  # some empty vaults: null auctions
    spot = 100 / 1.5
    b = bite_v12(ink, art, spot, dunk_dai=dunk, chop=1.13, dust_dai=dust, box_dai=box, litter_dai=litter * box)
    ref, ref_litter = _bite_v12_loop(ink, art, spot, dunk, 1.13, dust, box, litter * box)
    assert b.reason.tolist() == [r for r, _, _ in ref]
    np.testing.assert_allclose(b.art, [d for _, d, _ in ref], rtol=1e-9, atol=1e-6)
    np.testing.assert_allclose(b.lot, [k for _, _, k in ref], rtol=1e-9, atol=1e-9)
    assert b.litter_dai == pytest.approx(ref_litter, rel=1e-9)


# ------------------------------------------------------------------ one-call settlement


def test_liquidate_settles_a_competitive_auction_at_the_oracle_price(liq):
    """Three 10-ETH vaults bitten whole. $100 / 1,000 DAI: the lot is worth exactly the debt, below
    tab 1,130, so tend ends at 1,000 (repaid, no penalty). $150 / 1,100 DAI: worth 1,500 > tab 1,243,
    so dent leaves 1,243/150 = 8.2867 ETH to the keeper and 1.7133 ETH to the owner; penalty 143.
    $80 / 1,000 DAI: raises 800, bad debt 200."""
    b = Book(("ETH-A",), ("DAI",), np.array([[10.0], [10.0], [10.0]]), np.array([[1_000.0], [1_100.0], [1_000.0]]))
    p = Prices(np.array([[100.0], [150.0], [80.0]]), np.array([1.0]))
    out = liq.liquidate(b, p)
    np.testing.assert_allclose(out.debt_repaid_usd, [1_000, 1_100, 800], rtol=1e-12)
    np.testing.assert_allclose(out.protocol_fee_usd, [0, 143, 0], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(out.bad_debt_usd, [0, 0, 200], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(out.extra["returned_tokens"], [0, 10 - 1_243 / 150, 0], rtol=1e-12, atol=1e-12)


def test_dai_above_par_lowers_what_the_same_eth_raises(liq):
    """At DAI = $1.05 the 10 ETH ($1,000) raise 952.38 DAI, not 1,000: 47.62 DAI of bad debt."""
    out = liq.liquidate(eth_a([10.0], [1_000.0]), px(100.0, 1.05))
    np.testing.assert_allclose(out.extra["raised_dai"][0], 1_000 / 1.05, rtol=1e-12)
    np.testing.assert_allclose(out.bad_debt_usd[0], (1_000 - 1_000 / 1.05) * 1.05, rtol=1e-12)


# ------------------------------------------------------------------ Flipper


LOT, DUE = 50.0, 50 / 120 * 10_000
TAB = DUE * 1.13
BEG, TTL, TAU = 1.03, 600.0, 259_200.0
A, B = 0, 1


def kicked(now=0.0):
    return fl.kick(TAB, LOT, usr=7, due_dai=DUE, now_s=now, tau_s=TAU)


def one(x):
    return np.array([x], float)


def test_tend_then_dent_then_deal():
    f = kicked()
    assert fl.status(f, 1.0)[0] == fl.TEND
    r = fl.tend(f, one(1_000.0), A, 100.0, beg=BEG, ttl_s=TTL)
    assert r.reason[0] == fl.OK and r.flips.tic_s[0] == 700.0 and r.to_vow_dai[0] == 1_000.0
    r = fl.tend(r.flips, one(1_030.0), B, 200.0, beg=BEG, ttl_s=TTL)  # exactly beg x 1,000
    assert r.reason[0] == fl.OK and r.refund_dai[0] == 1_000.0 and r.refund_to[0] == A and r.paid_dai[0] == 1_030.0
    bad = fl.tend(r.flips, one(1_060.0), A, 250.0, beg=BEG, ttl_s=TTL)  # < 1,060.9
    assert bad.reason[0] == fl.INSUFFICIENT_INCREASE and bad.flips is not r.flips and bad.flips.bid_dai[0] == 1_030.0
    assert fl.tend(r.flips, one(TAB + 1), A, 250.0, beg=BEG, ttl_s=TTL).reason[0] == fl.HIGHER_THAN_TAB
    r = fl.tend(r.flips, one(TAB), A, 300.0, beg=BEG, ttl_s=TTL)  # tab is allowed whatever beg says
    assert r.reason[0] == fl.OK and fl.status(r.flips, 301.0)[0] == fl.DENT
    assert fl.dent(kicked(), one(40.0), B, 5.0, beg=BEG, ttl_s=TTL).reason[0] == fl.TEND_NOT_FINISHED
    assert fl.tend(r.flips, one(TAB), B, 310.0, beg=BEG, ttl_s=TTL).reason[0] == fl.BID_NOT_HIGHER
    assert fl.dent(r.flips, one(49.0), B, 400.0, beg=BEG, ttl_s=TTL).reason[0] == fl.INSUFFICIENT_DECREASE  # > 48.54
    d = fl.dent(r.flips, one(48.0), B, 400.0, beg=BEG, ttl_s=TTL)
    assert d.reason[0] == fl.OK and d.returned_tokens[0] == 2.0 and d.refund_dai[0] == TAB and d.refund_to[0] == A
    assert d.flips.tic_s[0] == 1_000.0
    assert fl.status(d.flips, 1_000.0)[0] == fl.CLOSING  # tic == now: no bid, no deal
    assert fl.deal(d.flips, 1_000.0).reason[0] == fl.NOT_FINISHED
    done = fl.deal(d.flips, 1_001.0)
    assert done.reason[0] == fl.OK and done.winner[0] == B and done.lot_tokens[0] == 48.0
    assert done.raised_dai[0] == TAB and done.bad_debt_dai[0] == 0.0
    assert done.penalty_dai[0] == pytest.approx(TAB - DUE, rel=1e-12)
    assert fl.status(done.flips, 1_001.0)[0] == fl.DELETED
    assert fl.tend(done.flips, one(1.0), A, 1_002.0, beg=BEG, ttl_s=TTL).reason[0] == fl.GUY_NOT_SET


def test_ttl_and_tau_expiry():
    """A bid lives ttl = 600 s; the auction ends tau after kick even if a bid is still live."""
    f = fl.tend(kicked(), one(100.0), A, 1_000.0, beg=BEG, ttl_s=TTL).flips
    assert fl.tend(f, one(200.0), B, 1_600.0, beg=BEG, ttl_s=TTL).reason[0] == fl.FINISHED_TIC
    assert fl.status(f, 1_599.0)[0] == fl.TEND and fl.status(f, 1_601.0)[0] == fl.DEALABLE
    late = fl.tend(kicked(), one(100.0), A, TAU - 10.0, beg=BEG, ttl_s=TTL).flips  # tic = tau + 590
    assert fl.tend(late, one(200.0), B, TAU, beg=BEG, ttl_s=TTL).reason[0] == fl.FINISHED_END
    assert fl.status(late, TAU)[0] == fl.CLOSING and fl.status(late, TAU + 1.0)[0] == fl.DEALABLE
    assert fl.deal(late, TAU + 1.0).reason[0] == fl.OK


def test_zero_competition_auction_is_won_at_the_first_bid():
    """Black Thursday: a single keeper bids a token 0.01 DAI and nobody outbids it within ttl (10 min):
    it wins the whole 50 ETH; the Vow keeps the whole debt as sin (bad debt = due - 0.01)."""
    f = fl.tend(kicked(), one(0.01), A, 60.0, beg=BEG, ttl_s=TTL).flips
    d = fl.deal(f, 661.0)
    assert d.reason[0] == fl.OK and d.winner[0] == A and d.lot_tokens[0] == LOT and d.raised_dai[0] == 0.01
    assert d.bad_debt_dai[0] == pytest.approx(DUE - 0.01, rel=1e-15) and d.penalty_dai[0] == 0.0


def test_tick_restarts_an_auction_that_ended_without_bids():
    f = kicked(now=100.0)
    end = 100.0 + TAU
    assert fl.tick(f, end - 1, tau_s=TAU)[1][0] == fl.NOT_FINISHED
    assert fl.status(f, end + 1)[0] == fl.TICKABLE
    assert fl.deal(f, end + 1).reason[0] == fl.NOT_FINISHED  # no bid: can never be dealt
    assert fl.tend(f, one(1.0), A, end + 1, beg=BEG, ttl_s=TTL).reason[0] == fl.FINISHED_END
    f2, reason = fl.tick(f, end + 1, tau_s=TAU)
    assert reason[0] == fl.OK and f2.end_s[0] == end + 1 + TAU and fl.status(f2, end + 2)[0] == fl.TEND
    g = fl.tend(f, one(1.0), A, 500.0, beg=BEG, ttl_s=TTL).flips
    assert fl.tick(g, end + 1, tau_s=TAU)[1][0] == fl.BID_ALREADY_PLACED


def test_raising_ones_own_bid_needs_the_old_bid_again_in_flipper_1_0_only():
    f = fl.tend(kicked(), one(1_000.0), A, 10.0, beg=BEG, ttl_s=TTL).flips
    r10 = fl.tend(f, one(1_500.0), A, 20.0, beg=BEG, ttl_s=TTL, version=fl.V1_0)
    r11 = fl.tend(f, one(1_500.0), A, 20.0, beg=BEG, ttl_s=TTL, version=fl.V1_1)
    assert (r10.required_dai[0], r10.paid_dai[0]) == (1_000.0, 500.0)
    assert (r11.required_dai[0], r11.paid_dai[0]) == (500.0, 500.0)
    g = fl.tend(f, one(TAB), A, 30.0, beg=BEG, ttl_s=TTL).flips
    assert fl.dent(g, one(40.0), A, 40.0, beg=BEG, ttl_s=TTL, version=fl.V1_0).required_dai[0] == TAB
    assert fl.dent(g, one(40.0), A, 40.0, beg=BEG, ttl_s=TTL, version=fl.V1_1).required_dai[0] == 0.0


def test_flipper_calls_are_vectorised_over_auctions():
    f = fl.kick([1_000.0, 2_000.0, 3_000.0], [10.0, 20.0, 30.0], usr=[0, 1, 2], due_dai=[900.0, 1_800.0, 2_700.0],
                now_s=0.0, tau_s=TAU)
    r = fl.tend(f, np.array([100.0, np.nan, 3_000.0]), np.array([A, A, B]), 10.0, beg=BEG, ttl_s=TTL)
    assert r.reason.tolist() == [fl.OK, fl.NOT_SELECTED, fl.OK]
    assert fl.status(r.flips, 11.0).tolist() == [fl.TEND, fl.TEND, fl.DENT]
    d = fl.deal(r.flips, 611.0, version=fl.V1_2)
    assert d.reason.tolist() == [fl.OK, fl.NOT_FINISHED, fl.OK] and d.claw_dai.tolist() == [1_000.0, 0.0, 3_000.0]
