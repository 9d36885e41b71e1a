"""Random Maker vault books around the liquidation boundary, for the shared contract suite."""

import numpy as np

from protocols import Book, Prices

# Rough mainnet levels of the token behind each ilk (adapter.underlying).
PRICES_USD = {"ETH": 3000.0, "wstETH": 3600.0, "WBTC": 95000.0, "SKY": 0.07}
# Ilks with liquidations on and vaults open; WBTC-A is in wind-down but still has vaults.
ILKS = ("ETH-A", "ETH-B", "ETH-C", "WSTETH-A", "WSTETH-B", "WBTC-A")


def make_book(adapter, rng: np.random.Generator, n: int) -> tuple[Book, Prices]:
    """n vaults, one ilk each, debt >= the ilk's dust, health spread uniformly over [0.5, 1.5]."""
    ilks = adapter.collateral_assets
    tokens = sorted(set(adapter.underlying.values()))
    token_px = {t: PRICES_USD.get(t, 10.0) * float(np.exp(rng.normal(0.0, 0.05))) for t in tokens}
    pc = np.array([token_px[adapter.underlying[i]] for i in ilks])
    live = np.array([ilks.index(i) for i in ILKS if i in ilks])
    col = rng.choice(live, n)
    mat = np.array([adapter.ilk(i).mat for i in ilks])[col]
    dust = np.array([adapter.ilk(i).dust_dai for i in ilks])[col]
    debt = np.maximum(np.exp(rng.normal(11.0, 1.3, n)), dust)  # median ~ 60k DAI
    health = rng.uniform(0.5, 1.5, n)
    ink = np.zeros((n, len(ilks)))
    ink[np.arange(n), col] = debt * mat * health / pc[col]  # health = ink·P/(mat·debt)
    return Book(ilks, ("DAI",), ink, debt[:, None]), Prices(pc, np.array([1.0]))
