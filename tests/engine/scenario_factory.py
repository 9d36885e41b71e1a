"""Small scenarios written to disk for engine tests (fast: ~1-2k positions, a few paths)."""

from pathlib import Path

BASE = """
[scenario]
name = "engine-test"
horizon_h = {horizon_h}
step_min = 10
paths = {paths}
seed = {seed}

[assets.WETH]
price_usd = 3000
model = "merton"
sigma_annual = 0.9
jump_intensity_per_day = 4.0
jump_mean = -0.04
jump_std = 0.05
shocks = [{{ at_h = 2.0, drop = {shock} }}]
[assets.WETH.liquidity]
model = "{liq_model}"
{liq_params}
recovery_half_life_min = 30

[assets.WBTC]
price_usd = 60000
model = "gbm"
sigma_annual = 0.7
[assets.WBTC.liquidity]
model = "sqrt"
daily_volume_usd = 5e8
daily_sigma = 0.04
recovery_half_life_min = 30

[assets.USDC]
price_usd = 1.0
model = "constant"

[correlation]
assets = ["WETH", "WBTC"]
matrix = [[1.0, 0.7], [0.7, 1.0]]

[liquidators]
gas_per_call = 600000
gas_gwei = {gas_gwei}
gas_token = "WETH"
max_calls_per_step = {max_calls}
reaction_delay_steps = {delay}

[oracle]
lag_steps = {lag}
"""

AAVE = """
[[protocols]]
adapter = "aave_v3"
[protocols.book]
kind = "synthetic"
positions = {positions}
collateral = {{ WETH = 0.7, WBTC = 0.3 }}
debt = {aave_debt}
collateral_usd = {{ dist = "lognormal", median = 20000, sigma = 1.6, min = 300 }}
ltv_utilisation = {{ dist = "beta", a = 6.0, b = 2.0 }}
"""

COMET = """
[[protocols]]
adapter = "compound_v3"
reserves_usd = {reserves}
[protocols.book]
kind = "synthetic"
positions = {positions}
collateral = {{ WETH = 0.6, WBTC = 0.4 }}
debt = {{ USDC = 1.0 }}
collateral_usd = {{ dist = "lognormal", median = 30000, sigma = 1.4, min = 300 }}
ltv_utilisation = {{ dist = "beta", a = 7.0, b = 2.0 }}
"""

DEFAULTS = dict(horizon_h=12, paths=6, seed=11, shock=0.15, liq_model="sqrt",
                liq_params="daily_volume_usd = 2e9\ndaily_sigma = 0.045", gas_gwei=30.0, max_calls=100000,
                delay=0, lag=0, positions=1500, reserves=1.5e7, protocols=("aave",), aave_debt="{ USDC = 1.0 }")


def write_scenario(tmp: Path, name: str = "s.toml", **over) -> Path:
    v = {**DEFAULTS, **over}
    text = BASE.format(**v)
    for p in v["protocols"]:
        text += (AAVE if p == "aave" else COMET).format(**v)
    path = tmp / name
    path.write_text(text)
    return path
