"""Random ETH-A vault books around the liquidation boundary, for the shared contract suite."""

import numpy as np

from protocols import Book, Prices


def make_book(adapter, rng: np.random.Generator, n: int) -> tuple[Book, Prices]:
    """n ETH-A vaults at ETH ~ $150 (March 2020), debt >= dust, health uniform over [0.5, 1.5].

    Collateral sizes straddle the 50-ETH lump, so both whole and partial bites occur."""
    ilks = adapter.collateral_assets
    pc = np.array([150.0 * float(np.exp(rng.normal(0.0, 0.05)))] * len(ilks))
    col = np.zeros(n, np.int64)
    mat = adapter.ilk(ilks[0]).mat
    debt = np.maximum(np.exp(rng.normal(8.5, 1.3, n)), adapter.ilk(ilks[0]).dust_dai)  # median ~5k DAI
    health = rng.uniform(0.5, 1.5, n)
    ink = np.zeros((n, len(ilks)))
    ink[np.arange(n), col] = debt * mat * health / pc[col]
    return Book(ilks, ("DAI",), ink, debt[:, None]), Prices(pc, np.array([1.0]))
