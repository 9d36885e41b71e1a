"""Aave v2 on the cascade loop: ``liquidationCall`` through :class:`protocols.AaveV2`, profit-seeking liquidators.

The generic :class:`~optimizer.engine.venues.lending.LendingVenue` loop with the v2 rules of the adapter:
a 50 % close factor on every call whatever the health factor and size (no $2,000 / $1,000 thresholds),
the whole bonus to the liquidator (no protocol fee: all seized collateral is sold into its pool) and
**no deficit booking**: a call that takes an account's last collateral leaves the rest of its debt on
the account, so nothing is written off during the horizon (``realised_bad_debt_usd`` stays 0) and that
debt is open underwater debt at the horizon. The venue adds ``unbacked_debt_usd``: the debt such calls
left with no collateral behind it, at the call's prices (the bad debt v3 would have booked then).

No kernel rule mirrors v2's close factor (the kernel's close-factor call has v3's thresholds), so this
venue runs on the reference engine.
"""

from __future__ import annotations

import numpy as np

from protocols import AaveV2, LiquidationOutcome, Prices

from ..ledger import LENDING_FIELDS, LedgerField
from .base import MarketView
from .lending import LendingVenue

UNBACKED_DEBT = LedgerField("unbacked_debt_usd", "USD", "venue",
                            "Aave v2: debt left on accounts whose last collateral a call took (no deficit booking; "
                            "at the call's prices)")


class AaveV2Venue(LendingVenue):
    """:class:`LendingVenue` with Aave v2's rules (see the module docstring)."""

    ledger_fields = (*LENDING_FIELDS, UNBACKED_DEBT)

    def kernel_spec(self) -> str:
        assert isinstance(self.ctx.adapter, AaveV2)
        return f"{self.ctx.id}: Aave v2's close factor (50 % always, no thresholds) has no kernel rule"

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
