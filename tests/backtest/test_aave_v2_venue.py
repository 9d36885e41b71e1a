"""Aave v2 on the cascade loop: 50 % close factor calls, no deficit booking (debt left unbacked stays open).

The reference engine defines the venue; the fast kernel runs it too (the close-factor call with the venue's
v2 constants) and must find the same liquidations, events and ledger, ``unbacked_debt_usd`` included.
"""

from __future__ import annotations

import numpy as np

from optimizer.engine import bind, prepare
from optimizer.engine.reference import run_reference
from optimizer.engine.simulate import kernel_unsupported_reason, run, run_kernel
from optimizer.engine.testing import assert_ledgers_match
from optimizer.engine.venues import AaveV2Venue, simulator_class
from optimizer.scenario.config import load_scenario
from optimizer.snapshots import data_dir

SCENARIO = """
[scenario]
name = "aave-v2-deep-crash"
horizon_h = 3
step_min = 10
paths = 1
seed = 5

[assets.WETH]
price_usd = 3000
model = "gbm"
sigma_annual = 0.5
shocks = [{ at_h = 0.5, drop = 0.35 }]
[assets.WETH.liquidity]
model = "sqrt"
daily_volume_usd = 1e9
daily_sigma = 0.05
recovery_half_life_min = 20

[assets.USDC]
price_usd = 1.0
model = "constant"

[liquidators]
gas_per_call = 400000
gas_gwei = 20.0
gas_token = "WETH"

[[protocols]]
adapter = "aave_v2"
[protocols.book]
kind = "synthetic"
positions = 120
collateral = { WETH = 1.0 }
debt = { USDC = 1.0 }
collateral_usd = { dist = "lognormal", median = 20000, sigma = 1.0, min = 500 }
health = { dist = "lognormal", median = 1.15, sigma = 0.2, min = 1.01 }
"""


def test_no_deficit_booking_and_half_the_debt_per_call(tmp_path):
    p = tmp_path / "s.toml"
    p.write_text(SCENARIO)
    bound = bind(prepare(load_scenario(p)))
    assert simulator_class(bound.adapters[0]) is AaveV2Venue
    ev: list[tuple] = []
    led = run_reference(bound, events=ev)
    assert led.liquidations.sum() > 50
    assert led.realised_bad_debt_usd.sum() == 0.0  # v2 writes nothing off
    assert led.protocol_fee_usd.sum() == 0.0  # the whole bonus is the liquidator's
    # a 35 % crash on accounts at HF ~1.15 takes some accounts' last collateral: their debt stays open
    assert led.unbacked_debt_usd.sum() > 0
    assert led.unrealised_bad_debt_usd.sum() >= 0.99 * led.unbacked_debt_usd.sum() * 0.5
    # one call repays at most half the account's debt: bonus / repaid = 5 % (WETH bonus 10500)
    ratio = led.liquidator_bonus_usd.sum() / led.debt_repaid_usd.sum()
    np.testing.assert_allclose(ratio, 0.05, rtol=1e-9)
    first = {}
    book = bound.books[0].book
    for e in ev:
        pos, repaid = int(e[3]), float(e[5])
        if pos not in first:
            first[pos] = repaid
    d0 = book.debt_tokens.sum(1)
    for pos, repaid in first.items():
        assert repaid <= 0.5 * d0[pos] * (1 + 1e-9)


def _kernel_equals_reference(bound, ref, ev_r) -> None:
    assert kernel_unsupported_reason(bound) is None
    kern, ev_k = run_kernel(bound, events=True)
    assert_ledgers_match(kern, ref, 1e-9, 1e-6)
    assert ev_k is not None
    key_k = sorted(tuple(int(x) for x in e.tolist()[:5]) for e in ev_k)  # path, step, venue, position, column
    key_r = sorted(tuple(int(x) for x in e[:5]) for e in ev_r)
    assert key_k == key_r


def test_deep_crash_on_the_kernel_equals_the_reference(tmp_path):
    """Accounts whose last collateral a call takes keep their debt (never called again, underwater at the
    horizon): the kernel books the same unbacked debt and open underwater debt as the reference engine."""
    p = tmp_path / "s.toml"
    p.write_text(SCENARIO.replace("paths = 1", "paths = 3"))
    bound = bind(prepare(load_scenario(p)))
    ev: list[tuple] = []
    ref = run_reference(bound, events=ev)
    assert ref.unbacked_debt_usd.sum() > 0 and ref.unrealised_bad_debt_usd.sum() > 0
    _kernel_equals_reference(bound, ref, ev)


def test_bundled_v2_scenario_runs_on_the_kernel_and_equals_the_reference():
    """``aave_v2_2021-05-19`` (three debts per account) on ``auto`` picks the kernel, which equals the
    reference engine on the same paths."""
    bound = bind(prepare(load_scenario(data_dir() / "scenarios" / "aave_v2_2021-05-19.toml")))
    ev: list[tuple] = []
    ref = run_reference(bound, events=ev)
    assert ref.liquidations.sum() > 500
    _kernel_equals_reference(bound, ref, ev)
    assert run(bound)[2] == "kernel"
