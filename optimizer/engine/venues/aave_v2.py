"""Aave v2 on the cascade loop: ``liquidationCall`` through :class:`protocols.AaveV2`, profit-seeking liquidators.

The generic :class:`~optimizer.engine.venues.lending.LendingVenue` loop with the v2 rules of the adapter:
a 50 % close factor on every call whatever the health factor and size (no $2,000 / $1,000 thresholds),
the whole bonus to the liquidator (no protocol fee: all seized collateral is sold into its pool) and
**no deficit booking**: a call that takes an account's last collateral leaves the rest of its debt on
the account, so nothing is written off during the horizon (``realised_bad_debt_usd`` stays 0) and that
debt is open underwater debt at the horizon. The venue adds ``unbacked_debt_usd``: the debt such calls
left with no collateral behind it, at the call's prices (the bad debt v3 would have booked then).

The fast kernel runs it on its close-factor call (``kernel.RULE_CLOSE_FACTOR_CALL``, the same rule as
v3) with v2's constants: ``cf_on_reserve`` (the close factor of the repaid reserve's debt, on every call:
the v3 thresholds ``cf_hf`` / ``min_base`` are not read, and are given as -inf / 0 so that the kernel's
profit bounds treat every call as a close-factor call), ``floor`` 0 (no dust rule), the fee share 0 and
``no_deficit`` (the debt a call leaves with no counted collateral behind it stays on the account, counted in
``unbacked_debt_usd``; such an account has nothing to seize and is never called again, and is open
underwater debt at the horizon as in the reference engine). Accounts of any number of collaterals and
debts, and inactive reserves (paused in the kernel), as :meth:`protocols.AaveV2.liquidate`.
"""

from __future__ import annotations

import numpy as np

from protocols import AaveV2, LiquidationOutcome, Prices

from ..ledger import LENDING_FIELDS, LedgerField
from .base import KernelSpec, MarketView
from .lending import LendingVenue

UNBACKED_DEBT = LedgerField("unbacked_debt_usd", "USD", "venue",
                            "Aave v2: debt left on accounts whose last collateral a call took (no deficit booking; "
                            "at the call's prices)")


class AaveV2Venue(LendingVenue):
    """:class:`LendingVenue` with Aave v2's rules (see the module docstring)."""

    ledger_fields = (*LENDING_FIELDS, UNBACKED_DEBT)

    def kernel_spec(self) -> KernelSpec | str:
        ad = self.ctx.adapter
        assert isinstance(ad, AaveV2)
        # inactive reserves are the adapter's paused assets: they refuse the call
        return self.close_factor_spec({"close_factor": ad.params["close_factor"], "cf_on_reserve": 1.0,
                                       "cf_hf": -np.inf, "min_base": 0.0, "floor": 0.0, "no_deficit": 1.0})

    def after_liquidation(self, view: MarketView, out: LiquidationOutcome, go: np.ndarray, prices: Prices,
                          before) -> None:
        unbacked = np.asarray(out.extra.get("unbacked_debt_usd", np.zeros(go.shape[0])))[go].sum()
        if unbacked:
            self._unbacked += float(unbacked)

    def round(self, view: MarketView):
        self._unbacked = 0.0
        r = super().round(view)
        if self._unbacked:
            r.ledger["unbacked_debt_usd"] = r.ledger.get("unbacked_debt_usd", 0.0) + self._unbacked
        return r
