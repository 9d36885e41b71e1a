"""``make demo`` / ``cascade demo``: the main job on bundled defaults.

Until the cascade simulator lands, the demo does the real work that exists: for the bundled Aave v3
Ethereum Core snapshot, a sample position per collateral, its liquidation price drop, and what one
liquidationCall just past that price repays and seizes.
"""

from __future__ import annotations

import numpy as np
from rich.table import Table

from protocols import Book, Prices

from .report_text import console
from .snapshots import load_adapter

COLLATERAL_USD = 100_000.0
BORROW_SHARE_OF_CAPACITY = 0.9  # the sample borrower uses 90 % of its LTV borrowing power
OVERSHOOT = 0.005  # the price falls 0.5 % past the liquidation price before the call


def aave_liquidation_table() -> Table:
    aave = load_adapter("aave_v3")
    assets = [a for a in aave.collateral_assets
              if aave.params[f"{a}.ltv_bps"] > 100 and aave.params[f"{a}.liquidation_threshold_bps"] > 0]
    debt_assets = ("USDC", "USDT")
    n = len(assets)
    coll = np.eye(n) * COLLATERAL_USD  # price 1 per token: every USD figure is scale-free
    ltv = np.array([aave.params[f"{a}.ltv_bps"] for a in assets]) / 1e4
    debt = np.zeros((n, 2))
    stable_self = np.array([a == "USDC" for a in assets])
    debt[~stable_self, 0] = COLLATERAL_USD * ltv[~stable_self] * BORROW_SHARE_OF_CAPACITY
    debt[stable_self, 1] = COLLATERAL_USD * ltv[stable_self] * BORROW_SHARE_OF_CAPACITY
    book = Book(tuple(assets), debt_assets, coll, debt)
    prices = Prices(np.ones(n), np.ones(2))
    hf = aave.health(book, prices)
    # Each position's own collateral falls by its liquidation drop + overshoot (positions are
    # independent rows, so one price matrix moves each row's asset).
    drop = np.array([aave.liquidation_price_drop(book, prices, a)[i] for i, a in enumerate(assets)])
    shocked = np.ones((n, n))
    shocked[np.arange(n), np.arange(n)] = 1.0 - drop - OVERSHOOT
    out = aave.liquidate(book, Prices(shocked, np.ones(2)))
    hf_after = aave.health(out.book, Prices(shocked, np.ones(2)))

    table = Table(title="Aave v3 Ethereum Core: one sample position per collateral "
                        f"(${COLLATERAL_USD:,.0f} collateral, stablecoin debt at "
                        f"{BORROW_SHARE_OF_CAPACITY:.0%} of LTV capacity)", title_justify="left")
    for col in ("collateral", "LTV", "LT", "bonus", "HF", "liq. drop", "repaid $", "seized $",
                "liq. bonus $", "fee $", "close factor", "HF after"):
        table.add_column(col, justify="left" if col == "collateral" else "right")
    for i, a in enumerate(assets):
        p = aave.params
        table.add_row(
            a, f"{p[f'{a}.ltv_bps'] / 100:.2f}%", f"{p[f'{a}.liquidation_threshold_bps'] / 100:.2f}%",
            f"{p[f'{a}.liquidation_bonus_bps'] / 100 - 100:.2f}%", f"{hf[i]:.3f}", f"{drop[i]:.2%}",
            f"{out.debt_repaid_usd[i]:,.0f}", f"{out.collateral_seized_usd[i]:,.0f}",
            f"{out.liquidator_bonus_usd[i]:,.0f}", f"{out.protocol_fee_usd[i]:,.0f}",
            "50%" if out.extra["close_factor_applied"][i] else "100%", f"{hf_after[i]:.3f}",
        )
    return table


def run_demo() -> None:
    con = console()
    con.print("[bold]cascade demo[/bold]: the liquidation-cascade simulator is not built yet (issue 3); "
              "this runs the exact Aave v3.3+ liquidation rules on the bundled snapshot.")
    con.print(aave_liquidation_table())
    con.print("liq. drop: fall of the collateral price (debt price fixed) that brings HF to 1. The call happens "
              f"{OVERSHOOT:.1%} past it; the liquidator asks for the maximum the close factor allows.")
