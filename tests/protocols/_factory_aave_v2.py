"""Random Aave v2 books around the liquidation boundary, for the shared contract suite."""

import numpy as np

from protocols import Book, Prices

COLLATERALS = ("WETH", "WBTC", "DAI", "USDC", "LINK", "YFI")
DEBTS = ("DAI", "USDC", "USDT", "WETH")
# Levels of 19 May 2021 (rough): the rules are ratio-invariant, so only relative sizes matter.
PRICES = {"WETH": 2500.0, "WBTC": 38000.0, "DAI": 1.0, "USDC": 1.0, "USDT": 1.0, "LINK": 30.0, "YFI": 40000.0}


def make_book(adapter, rng: np.random.Generator, n: int) -> tuple[Book, Prices]:
    """n accounts with 1-3 collaterals and 1-2 debts, health spread uniformly over [0.5, 1.5]."""
    pc = np.array([PRICES[a] for a in COLLATERALS])
    pd = np.array([PRICES[a] for a in DEBTS])
    held = rng.random((n, len(COLLATERALS))) < 0.35
    held[np.arange(n), rng.integers(0, len(COLLATERALS), n)] = True
    coll_tokens = np.exp(rng.normal(9.5, 2.0, (n, len(COLLATERALS)))) * held / pc
    one = np.zeros((n, len(DEBTS)))
    one[:, 0] = 1.0
    weighted = adapter.health(Book(COLLATERALS, DEBTS, coll_tokens, one), Prices(pc, pd))  # Σ C·LT per $1 debt
    debt_usd = weighted / rng.uniform(0.5, 1.5, n)
    split = rng.dirichlet(np.ones(len(DEBTS)), n) * (rng.random((n, len(DEBTS))) < 0.5)
    split[split.sum(1) == 0, 0] = 1.0
    split /= split.sum(1, keepdims=True)
    return Book(COLLATERALS, DEBTS, coll_tokens, debt_usd[:, None] * split / pd), Prices(pc, pd)
