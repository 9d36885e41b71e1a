"""Dealer delta hedging: Black-Scholes delta and gamma by value and by finite difference, the hedge flow of a
move as the exact integral of the gamma profile, short-gamma dealers selling into a fall, partial hedging,
expiry, and one-line errors for bad profiles."""

import json

import numpy as np
import pytest
from scipy import integrate

from optimizer.behaviour import dealer_book, load_dealer_book
from optimizer.behaviour.dealers import YEAR_S, bs_delta, bs_gamma
from optimizer.errors import InputError
from optimizer.snapshots import data_dir


@pytest.fixture(scope="module")
def example():
    return load_dealer_book(data_dir() / "behaviour" / "dealers_btc_example.json")


def test_black_scholes_values_at_the_money():
    """S = K = 100, one year, vol 20 %: d1 = 0.1, delta N(0.1), gamma phi(0.1) / (S * 0.2)."""
    assert bs_delta(100.0, 100.0, 1.0, 0.2, True) == pytest.approx(0.539827837277029, rel=1e-14)
    assert bs_delta(100.0, 100.0, 1.0, 0.2, False) == pytest.approx(0.539827837277029 - 1, rel=1e-13)
    assert bs_gamma(100.0, 100.0, 1.0, 0.2) == pytest.approx(0.3969525474770118 / 20.0, rel=1e-14)


def test_gamma_is_the_derivative_of_delta():
    rng = np.random.default_rng(1)
    s = rng.uniform(50, 150, 400)
    k = rng.uniform(60, 140, 400)
    tau = rng.uniform(1 / 365, 1.0, 400)
    vol = rng.uniform(0.1, 1.5, 400)
    h = s * 1e-5
    fd = (bs_delta(s + h, k, tau, vol, True) - bs_delta(s - h, k, tau, vol, True)) / (2 * h)
    np.testing.assert_allclose(fd, bs_gamma(s, k, tau, vol), rtol=1e-6, atol=1e-12)


def test_profile_gamma_matches_a_finite_difference_of_the_profile_delta(example):
    s = np.array([95_000.0, 108_000.0, 116_935.6, 127_000.0])
    h = 0.5
    fd = (example.option_delta_base(s + h, 3_600.0) - example.option_delta_base(s - h, 3_600.0)) / (2 * h)
    np.testing.assert_allclose(fd, example.gamma_base_per_usd(s, 3_600.0), rtol=1e-7)


def test_hedge_flow_of_a_move_is_the_exact_integral_of_the_gamma_profile(example):
    for s0, s1 in ((116_935.6, 101_516.5), (116_935.6, 117_145.3), (104_000.0, 99_000.0)):
        integral, err = integrate.quad(lambda x: example.gamma_base_per_usd(np.array([x]))[0], s0, s1,
                                       epsabs=1e-10, epsrel=1e-12, limit=200)
        flow = example.hedge_flow_base(np.array([s0]), np.array([s1]))[0]
        assert flow == pytest.approx(-integral, rel=1e-9, abs=1e-9)
    # small moves: -gamma * dS, with an error of second order in dS (of third order at the midpoint)
    s0 = 116_935.6
    err = []
    for ds in (20.0, 10.0):
        exact = example.hedge_flow_base(np.array([s0]), np.array([s0 + ds]))[0]
        err.append(exact + example.gamma_base_per_usd(np.array([s0]))[0] * ds)
        assert exact == pytest.approx(-example.gamma_base_per_usd(np.array([s0 + ds / 2]))[0] * ds, rel=1e-6)
    assert err[0] / err[1] == pytest.approx(4.0, rel=1e-2)


def test_short_gamma_dealers_sell_into_a_fall_and_buy_into_a_rise(example):
    p0 = 116_935.6
    assert example.gamma_base_per_usd(np.array([p0]))[0] < 0
    st = example.start(3, p0)
    flow, st = example.step(st, np.array([110_000.0, p0, 112_000.0]), 60.0)
    assert flow[0] < 0 and flow[2] < 0 and flow[0] < flow[2]  # a deeper fall, a bigger sale
    assert abs(flow[1]) < 1.0  # only the minute's time decay moves the hedge
    np.testing.assert_allclose(st.tally.sold_base, np.maximum(-flow, 0))
    flow_up, _ = example.step(example.start(1, p0), np.array([p0 * 1.01]), 0.0)
    assert flow_up[0] > 0


def test_calls_and_puts_of_a_strike_force_the_same_flow():
    spec = {"options": [{"type": "call", "strike_usd": 100, "expiry_days": 30, "implied_vol": 0.6,
                         "dealer_position_base": -10}]}
    call = dealer_book(spec)
    spec["options"][0]["type"] = "put"
    put = dealer_book(spec)
    s0, s1 = np.array([103.0, 99.0]), np.array([91.0, 110.0])
    np.testing.assert_allclose(call.hedge_flow_base(s0, s1), put.hedge_flow_base(s0, s1), rtol=1e-12)
    assert not np.allclose(call.hedge_target_base(s0), put.hedge_target_base(s0))  # the levels differ by 10


def test_partial_hedging_closes_its_share_of_the_gap_each_call():
    spec = {"hedge_fraction": 0.25, "options": [{"type": "put", "strike_usd": 100, "expiry_days": 30,
                                                 "implied_vol": 0.6, "dealer_position_base": -10}]}
    book = dealer_book(spec)
    st = book.start(1, 100.0)
    gap0 = book.hedge_target_base(np.array([90.0]))[0] - st.hedge_base[0]
    for k in range(1, 6):
        _, st = book.step(st, np.array([90.0]), 0.0)
        left = book.hedge_target_base(np.array([90.0]))[0] - st.hedge_base[0]
        assert left == pytest.approx(gap0 * 0.75**k, rel=1e-12)


def test_at_expiry_delta_steps_at_the_strike():
    book = dealer_book({"options": [{"type": "call", "strike_usd": 100, "expiry_days": 1, "implied_vol": 0.5,
                                     "dealer_position_base": -7}]})
    after = 2 * 86_400.0
    assert book.gamma_base_per_usd(np.array([100.0]), after)[0] == 0
    np.testing.assert_array_equal(book.hedge_flow_base(np.array([101.0]), np.array([99.0]), after), [-7.0])
    np.testing.assert_array_equal(book.hedge_flow_base(np.array([99.0]), np.array([98.0]), after), [0.0])
    assert YEAR_S == 365 * 86_400


@pytest.mark.parametrize("change,field,rule", [
    ({"options": []}, "options", "must be a non-empty list"),
    ({"options": [{"type": "straddle"}]}, "options[0].type", "must be call or put"),
    ({"options": [{"type": "put", "strike_usd": -1}]}, "options[0].strike_usd", "must be a number in (0, 1e+12]"),
    ({"options": [{"type": "put", "strike_usd": 1, "expiry_days": 2, "implied_vol": float("nan")}]},
     "options[0].implied_vol", "must be a number in (0, 20]"),
    ({"hedge_fraction": 0}, "hedge_fraction", "must be a number in (0, 1]"),
])
def test_bad_profiles_are_one_line_errors(tmp_path, change, field, rule):
    spec = json.loads((data_dir() / "behaviour" / "dealers_btc_example.json").read_text()) | change
    p = tmp_path / "d.json"
    p.write_text(json.dumps(spec))
    with pytest.raises(InputError) as e:
        load_dealer_book(p)
    assert str(e.value).startswith(f"{p}: {field}: {rule}")
