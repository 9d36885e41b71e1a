"""Random Compound III (cUSDCv3) books around the liquidation boundary, for the shared contract suite."""

import numpy as np

from protocols import Book, Prices

# Rough mainnet levels; anything not listed is priced at $10.
PRICES_USD = {"WETH": 3000.0, "wstETH": 3600.0, "WBTC": 60000.0, "cbBTC": 60000.0, "tBTC": 60000.0,
              "USDe": 1.0, "LINK": 15.0, "UNI": 8.0, "COMP": 50.0, "USDC": 1.0}


def make_book(adapter, rng: np.random.Generator, n: int) -> tuple[Book, Prices]:
    """n accounts with 1-3 collaterals each and USDC debt, health spread over ~[0.5, 1.5]."""
    coll, debt = adapter.collateral_assets, adapter.debt_assets
    pc = np.array([PRICES_USD.get(a, 10.0) for a in coll]) * np.exp(rng.normal(0.0, 0.05, len(coll)))
    pd = np.array([PRICES_USD.get(a, 1.0) for a in debt])
    # Pick k in {1, 2, 3} distinct assets per account: the k smallest of a random key per column.
    k = rng.integers(1, min(3, len(coll)) + 1, n)
    rank = np.argsort(np.argsort(rng.random((n, len(coll))), axis=1), axis=1)
    held = rank < k[:, None]
    coll_usd = np.exp(rng.normal(9.5, 1.5, (n, len(coll)))) * held  # ~$13k median per asset
    coll_tokens = coll_usd / pc
    # Σ value·liquidateCF per $1 of debt, from the adapter's own health rule.
    weighted = adapter.health(Book(coll, debt, coll_tokens, np.full((n, 1), 1.0 / pd[0])), Prices(pc, pd))
    target_health = rng.uniform(0.5, 1.5, n)
    debt_tokens = (weighted / target_health / pd[0])[:, None]
    return Book(coll, debt, coll_tokens, debt_tokens), Prices(pc, pd)
