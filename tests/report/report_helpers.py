"""Small scenarios and proposals for report tests, and the checks every rendered report must pass.

``check_report_dir`` renders ``report.md`` to HTML with markdown-it-py, checks that every image link
resolves to a PNG in the folder and that every table is well formed, and returns the tables;
``check_risk_numbers`` checks that the numbers in the risk table are the JSON's (``result.json``).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

SMALL = """
[scenario]
name = "report-test"
description = "Small Aave book under a 6 h stress (report tests)"
horizon_h = 6
step_min = 10
paths = {paths}
seed = 7

[assets.WETH]
price_usd = 3000
model = "merton"
sigma_annual = 0.9
jump_intensity_per_day = 4.0
jump_mean = -0.04
jump_std = 0.05
shocks = [{{ at_h = 1.0, drop = 0.15 }}]
[assets.WETH.liquidity]
model = "sqrt"
daily_volume_usd = 2e8
daily_sigma = 0.045
recovery_half_life_min = 30

[assets.DAI]
price_usd = 1.0
model = "gbm"
sigma_annual = 0.05
[assets.DAI.liquidity]
model = "linear"
depth_usd_2pct = 2e7
recovery_half_life_min = 60

[assets.USDC]
price_usd = 1.0
model = "constant"

[liquidators]
gas_per_call = 600000
gas_gwei = 30
gas_token = "WETH"
max_calls_per_step = 200

[[protocols]]
adapter = "aave_v3"
[protocols.book]
kind = "synthetic"
positions = {positions}
collateral = {{ WETH = 0.8, DAI = 0.2 }}
debt = {{ USDC = 1.0 }}
collateral_usd = {{ dist = "lognormal", median = 20000, sigma = 1.6, min = 300 }}
health = {{ dist = "lognormal", median = 1.3, sigma = 0.2, min = 1.005 }}

[optimize]
free = ["aave_v3:WETH.ltv_bps", "aave_v3:WETH.liquidation_threshold_bps"]
risk_metric = "var_99"
budget_share_of_debt = {budget}
"""

PROPOSAL = """
protocol = "aave_v3"
market = "Ethereum Core"
title = "Test proposal: WETH threshold cut"
date = "2024-05-01"
link = "https://example.org/t/weth-lt"
summary = "Cut the WETH threshold; raise the DAI reserve factor."

[[changes]]
asset = "WETH"
parameter = "liquidation_threshold"
before = 8300
after = 8000
unit = "bps"

[[changes]]
asset = "WETH"
parameter = "ltv"
before = 8050
after = 7800
unit = "bps"

[[changes]]
asset = "DAI"
parameter = "reserve_factor"
before = 25
after = 30
unit = "%"
"""


def write_small(tmp: Path, name: str = "small.toml", *, paths: int = 24, positions: int = 600,
                budget: float = 0.005) -> Path:
    p = tmp / name
    p.write_text(SMALL.format(paths=paths, positions=positions, budget=budget))
    return p


def write_proposal(tmp: Path, text: str = PROPOSAL, name: str = "proposal.toml") -> Path:
    p = tmp / name
    p.write_text(text)
    return p


# ------------------------------------------------------------------------------------------------
# Checks
# ------------------------------------------------------------------------------------------------


def _tables(tokens):
    tables, cur, row, in_cell, cell_text = [], None, None, False, []
    for t in tokens:
        if t.type == "table_open":
            cur = []
        elif t.type == "table_close":
            tables.append(cur)
            cur = None
        elif t.type == "tr_open":
            row = []
        elif t.type == "tr_close":
            cur.append(row)
        elif t.type in ("th_open", "td_open"):
            in_cell, cell_text = True, []
        elif t.type in ("th_close", "td_close"):
            row.append("".join(cell_text).strip())
            in_cell = False
        elif t.type == "inline" and in_cell:
            cell_text.append(t.content)
    return tables


def check_report_dir(d: Path) -> tuple[str, list[list[list[str]]]]:
    """HTML of report.md (markdown-it-py), after checking images and tables; returns (html, tables)."""
    from markdown_it import MarkdownIt

    md = MarkdownIt("commonmark", {"html": False}).enable("table")
    text = (d / "report.md").read_text()
    tokens = md.parse(text)
    html = md.render(text)
    images = re.findall(r'<img src="([^"]+)"', html)
    assert images, "a report without figures"
    for src in images:
        f = d / src
        assert f.is_file(), f"image link {src} does not resolve"
        assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", f"{src} is not a PNG"
    # every markdown table line became part of an HTML table with one cell count throughout
    pipe_blocks = re.findall(r"(?:^\|.*\|\n)+", text, re.MULTILINE)
    tables = _tables(tokens)
    assert len(tables) == len(pipe_blocks), "a pipe block did not parse as a table"
    for tb in tables:
        width = len(tb[0])
        assert width >= 2 and all(len(r) == width for r in tb), tb
        assert len(tb) >= 2, "a table without rows"
    assert "<table>" in html
    return html, tables


_NUM = re.compile(r"([+-]?)\$?(\d[\d,]*\.?\d*)\s*([kMB]?)")
_SCALE = {"": 1.0, "k": 1e3, "M": 1e6, "B": 1e9}


def parse_number(cell: str, percent: bool = True) -> tuple[float, float] | None:
    """The first number of a cell as displayed and half a unit of its last printed digit (the rounding)."""
    s = cell.replace("±", "").replace("\\", "")
    m = _NUM.search(s)
    if not m:
        return None
    sign, digits, suf = m.groups()
    x = float(digits.replace(",", "")) * _SCALE[suf]
    dec = len(digits.split(".")[1]) if "." in digits else 0
    tol = 0.5 * 10 ** (-dec) * _SCALE[suf]
    if percent and s[m.end():].lstrip().startswith("%"):
        x, tol = x / 100.0, tol / 100.0
    return (-x if sign == "-" else x), tol


def check_risk_numbers(data: dict, tables, columns: tuple[str, ...]) -> int:
    """Every Monte Carlo cell of the risk table equals the JSON value it comes from (to its rounding)."""
    from optimizer.engine.metrics import METRICS

    risk = next(t for t in tables if t[0][0] == "metric")
    by_label = {r[0]: r for r in risk[1:]}
    header = risk[0]
    checked = 0
    for spec in METRICS:
        if not (spec.table and spec.monte_carlo):
            continue
        if not any(spec.name in (data[c]["metrics"] if c in data else data["recommendation"]["metrics"])
                   for c in columns):
            continue  # a metric of venues the scenario does not have
        for key, lab in spec.table_rows:
            row = next((r for label, r in by_label.items() if label.startswith(f"{spec.title}: {lab}")
                        or (lab == "mean" and label.startswith(f"{spec.title} ("))), None)
            assert row is not None, f"no row for {spec.name} {key}"
            for col in columns:
                m = data[col]["metrics"] if col in data else data["recommendation"]["metrics"]
                shown = parse_number(row[header.index(col)])
                want = m[spec.name][key]
                assert shown is not None, row
                x, tol = shown
                assert abs(x - want) <= tol * 1.0001 + 1e-12, (spec.name, key, col, row, want)
                checked += 1
    return checked


def load_json(d: Path) -> dict:
    return json.loads((d / "result.json").read_text())
