"""Small scenarios with an [optimize] table for the search tests (1,000 positions, a few paths)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from scenario_factory import write_scenario

OPTIMIZE = """
[optimize]
free = ["WETH.ltv_bps", "WETH.liquidation_threshold_bps", "WETH.liquidation_bonus_bps"]
budget_share_of_debt = 0.01
min_screen_paths = 4
trials = 8
"""


def scenario(tmp: Path, optimize: str = OPTIMIZE, name: str = "s.toml", **over) -> Path:
    over = {"paths": 16, "positions": 1000, **over}
    p = write_scenario(tmp, name=name, **over)
    p.write_text(p.read_text() + optimize)
    return p
