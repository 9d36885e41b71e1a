"""Aave v3 on the cascade loop: liquidationCall through :class:`protocols.AaveV3`, profit-seeking liquidators.

Liquidators sell the collateral they seize minus the treasury's fee share (the fee tokens go to the
treasury, not to the market) and buy the debt they repay. The kernel mirrors one liquidationCall on
accounts of any number of collaterals and debts, eModes and paused assets included
(``kernel.RULE_CLOSE_FACTOR_CALL``).
"""

from __future__ import annotations

import numpy as np

from protocols import AaveV3, LiquidationOutcome

from .base import KernelSpec
from .lending import LendingVenue


class AaveV3Venue(LendingVenue):
    """:class:`LendingVenue` with Aave's treasury fee kept out of the market."""

    def sold_tokens(self, out: LiquidationOutcome) -> np.ndarray:
        with np.errstate(divide="ignore", invalid="ignore"):
            keep = np.where(out.collateral_seized_usd > 0, out.protocol_fee_usd / out.collateral_seized_usd, 0.0)
        return out.collateral_seized_tokens * (1.0 - keep)[:, None]

    def kernel_spec(self) -> KernelSpec | str:
        ad = self.ctx.adapter
        assert isinstance(ad, AaveV3)
        c = ad.constants
        return self.close_factor_spec({"close_factor": c["close_factor"], "cf_hf": c["close_factor_hf_threshold"],
                                       "min_base": c["min_base_max_close_factor_threshold_usd"],
                                       "floor": c["min_leftover_base_usd"]})
