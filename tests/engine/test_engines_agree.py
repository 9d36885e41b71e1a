"""The fast kernel and the boolean-mask reference engine find the same liquidations."""

import numpy as np
import pytest
from scenario_factory import write_scenario

from optimizer.engine import bind, prepare
from optimizer.engine.reference import run_reference
from optimizer.engine.simulate import run_kernel
from optimizer.scenario.config import load_scenario

FIELDS = ("liquidations", "debt_repaid_usd", "collateral_seized_usd", "liquidator_bonus_usd", "protocol_fee_usd",
          "realised_bad_debt_usd", "unrealised_bad_debt_usd", "horizon_exposure_usd", "inventory_usd",
          "returned_to_owner_usd",
          "debt_removed_usd", "first_liquidation_step", "last_liquidation_step", "market_low_min")

VARIANTS = {
    "base": {},
    "call_cap_binds": {"max_calls": 15},
    "reaction_delay": {"delay": 2},
    "oracle_lag": {"lag": 2},
    "amm_no_gas": {"liq_model": "amm", "liq_params": "reserve_usd = 6e7\nfee = 0.003", "gas_gwei": 0.0},
    "linear_impact": {"liq_model": "linear", "liq_params": "depth_usd_2pct = 5e6"},
    "comet": {"protocols": ("comet",)},
    "comet_storefront_closed": {"protocols": ("comet",), "reserves": 5e7},
    "aave_and_comet_share_markets": {"protocols": ("aave", "comet"), "max_calls": 40},
    # WETH debt: liquidators buy it back (purchases push its price up) while WETH collateral is sold
    "debt_asset_bought_and_sold": {"aave_debt": "{ USDC = 0.5, WETH = 0.5 }", "shock": 0.25},
}


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_kernel_matches_reference(tmp_path, variant):
    path = write_scenario(tmp_path, **VARIANTS[variant])
    bound = bind(prepare(load_scenario(path)))
    kern, ev_k = run_kernel(bound, events=True)
    events_r: list[tuple] = []
    ref = run_reference(bound, events=events_r)
    assert ref.liquidations.sum() > 20, "the variant must exercise liquidations"
    for f in FIELDS:
        np.testing.assert_allclose(getattr(kern, f), getattr(ref, f), rtol=1e-9, atol=1e-6, err_msg=f)
    for j in range(len(bound.books)):
        np.testing.assert_array_equal(kern.account_liquidated[j], ref.account_liquidated[j])
    key_k = sorted(tuple(int(x) for x in e.tolist()[:5]) for e in ev_k)  # path, step, venue, position, column
    key_r = sorted(tuple(e[:5]) for e in events_r)
    assert key_k == key_r


def test_results_do_not_depend_on_thread_chunks(tmp_path):
    bound = bind(prepare(load_scenario(write_scenario(tmp_path, max_calls=20))))
    one, _ = run_kernel(bound, n_chunks=1)
    three, _ = run_kernel(bound, n_chunks=3)
    for f in FIELDS:
        np.testing.assert_array_equal(getattr(one, f), getattr(three, f))
