"""``make demo`` / ``cascade demo``: the main job on bundled defaults.

Simulates the bundled Aave v3 Ethereum Core book under a 24 h stress with jumps (1,000 paths) and
prints its risk metrics with their uncertainty, the critical drop and the liquidation map.
"""

from __future__ import annotations

import time

from rich.table import Table

from .engine import evaluate, prepare
from .report_text import console, render_simulation
from .scenario.config import load_scenario
from .snapshots import data_dir

DEFAULT_SCENARIO = "aave_v3_core_24h_jumps.toml"


def run_demo(paths: int | None = None) -> dict:
    con = console()
    path = data_dir() / "scenarios" / DEFAULT_SCENARIO
    sc = load_scenario(path).with_overrides(paths=paths)
    con.print(f"[bold]cascade demo[/bold]: {sc.description} ({path.name})")
    t0 = time.perf_counter()
    res = evaluate(prepare(sc), analyses=True)
    res.elapsed_s = time.perf_counter() - t0
    out = res.to_json()
    render_simulation(out)
    lm = out["liquidation_map"]
    t = Table(title=f"Liquidation map of {lm['asset']} (every non-stable asset falls together)", title_justify="left")
    for col in ("price", "USD", "liquidatable collateral (static)", "seized with cascade feedback",
                "market low after cascade"):
        t.add_column(col, justify="right")
    for i, r in enumerate(lm["price_ratio"]):
        if i % 3 == 0 and r >= 0.4:
            t.add_row(f"{r:.0%}", f"{lm['price_usd'][i]:,.0f}", f"{lm['static_liquidatable_usd'][i]:,.0f}",
                      f"{lm['cascade_liquidated_usd'][i]:,.0f}", f"{lm['cascade_market_price_ratio'][i]:.1%}")
    con.print(t)
    con.print("Full output: cascade simulate aave_v3_core_24h_jumps --json  (see README for the metrics' meaning)")
    return out
