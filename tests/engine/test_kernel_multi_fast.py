"""The multi-asset kernel path written out by hand (issue 11): the same liquidations as the reference engine.

The candidate examination (health), the Aave call on the largest counted collateral and debt, the min-heap pop
of the confirmed candidates and the re-park of healthy or partly liquidated accounts are written out in the
kernel's loop instead of calling the helpers of :mod:`optimizer.engine.kernel_rules`. These books exercise each
of them: many multi-asset accounts near the threshold (healthy ones re-parked round after round), a call cap
that takes few of many (the heap popped to the cap, the rest carried to the next step), Aave's close factor
(survivors re-parked with a new health) and a paused asset (refused calls).
"""

from __future__ import annotations

import pytest
from test_kernel_accounts import _agree, _write

from optimizer.engine.simulate import run_kernel
from optimizer.engine.testing import assert_ledgers_match

CASES = {
    # a cap that binds hard: the heap is popped to the cap and most confirmed candidates wait for the next step
    "cap_takes_few_of_many": {"max_calls": 5, "n": 500, "seed": 11},
    # a paused collateral: the written-out call refuses it (waits), the reference does not liquidate it either
    "paused_wstETH_cap_binds": {"paused": ("wstETH",), "max_calls": 8, "n": 400, "seed": 3},
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_written_out_multi_asset_path_matches_reference(tmp_path, case):
    _agree(_write(tmp_path, horizon_h=4, **CASES[case]))


def test_multi_asset_results_do_not_depend_on_the_thread_chunks(tmp_path):
    """Per-account counts and the ledger are the same on one chunk and on three (the scratch is per chunk)."""
    bound = _write(tmp_path, max_calls=6, n=300, seed=5, paths=3, horizon_h=4)
    one, _ = run_kernel(bound, n_chunks=1)
    three, _ = run_kernel(bound, n_chunks=3)
    assert one.liquidations.sum() > 0
    assert_ledgers_match(one, three)
