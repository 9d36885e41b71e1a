"""Random Aave v3 books around the liquidation boundary, for the shared contract suite."""

import numpy as np

from protocols import Book, Prices

COLLATERALS = ("WETH", "wstETH", "WBTC", "USDC", "LINK")
DEBTS = ("USDC", "USDT", "WETH")
PRICES = {"WETH": 3000.0, "wstETH": 3600.0, "WBTC": 60000.0, "USDC": 1.0, "LINK": 15.0, "USDT": 1.0}


def make_book(adapter, rng: np.random.Generator, n: int) -> tuple[Book, Prices]:
    pc = np.array([PRICES[a] for a in COLLATERALS])
    pd = np.array([PRICES[a] for a in DEBTS])
    held = rng.random((n, len(COLLATERALS))) < 0.45
    held[np.arange(n), rng.integers(0, len(COLLATERALS), n)] = True
    coll_usd = np.exp(rng.normal(9.5, 2.0, (n, len(COLLATERALS)))) * held
    book0 = Book(COLLATERALS, DEBTS, coll_usd / pc, np.zeros((n, len(DEBTS))),
                 category=np.where(rng.random(n) < 0.2, 1, 0))
    weighted = adapter.health(Book(COLLATERALS, DEBTS, book0.collateral_tokens, np.tile([1.0, 0, 0], (n, 1)),
                                   category=book0.category), Prices(pc, pd))  # Σ C·LT for $1 of debt
    target_hf = rng.uniform(0.5, 1.5, n)
    debt_usd_total = weighted / target_hf
    split = rng.dirichlet(np.ones(len(DEBTS)), n) * (rng.random((n, len(DEBTS))) < 0.6)
    split[split.sum(1) == 0, 0] = 1.0
    split /= split.sum(1, keepdims=True)
    debt_tokens = debt_usd_total[:, None] * split / pd
    return Book(COLLATERALS, DEBTS, book0.collateral_tokens, debt_tokens, category=book0.category), Prices(pc, pd)
