"""Protocol adapters: each venue's liquidation rules, vectorised over positions.

Pure rules: no file or network I/O and no simulation loop. Two families behind one lifecycle
(:class:`VenueAdapter`): lending (:class:`Adapter`) and perpetual futures (:class:`PerpAdapter`).
"""

from ._base import (
    Adapter,
    Book,
    BufferPair,
    CircuitBreakers,
    InvalidParameters,
    Invariant,
    LiquidationOutcome,
    ParameterSchema,
    ParamSpec,
    PositionTerms,
    Prices,
    RiskLevers,
    SnapshotError,
    VenueAdapter,
)
from ._perp import (
    CROSS,
    ISOLATED,
    MarketOrderRule,
    OpenInterest,
    PerpAdapter,
    PerpBook,
    PerpCircuitBreakers,
    PerpLiquidationOutcome,
)
from ._perp_losses import (
    AdlOutcome,
    WaterfallOutcome,
    adl_pro_rata,
    adl_queue,
    apply_adl,
    apply_funding,
    deficits_by_group,
    funding_payments_usd,
    loss_waterfall,
    waterfall_of,
    winner_groups,
)
from .aave_v2 import AaveV2
from .aave_v3 import AaveV3
from .binance_usdm import BinanceUsdm
from .compound_v3 import CompoundV3
from .dydx_v4 import DydxV4
from .gmx_v2 import GmxV2
from .hyperliquid import Hyperliquid
from .maker import Maker
from .maker_liq12 import MakerLiq12

ADAPTERS: dict[str, type[VenueAdapter]] = {
    cls.name: cls for cls in (AaveV2, AaveV3, CompoundV3, Maker, MakerLiq12, DydxV4, Hyperliquid, BinanceUsdm, GmxV2)
}
LENDING_ADAPTERS: dict[str, type[Adapter]] = {n: c for n, c in ADAPTERS.items() if issubclass(c, Adapter)}
PERP_ADAPTERS: dict[str, type[PerpAdapter]] = {n: c for n, c in ADAPTERS.items() if issubclass(c, PerpAdapter)}

__all__ = [
    "ADAPTERS",
    "CROSS",
    "ISOLATED",
    "LENDING_ADAPTERS",
    "PERP_ADAPTERS",
    "AaveV2",
    "AaveV3",
    "Adapter",
    "AdlOutcome",
    "BinanceUsdm",
    "Book",
    "BufferPair",
    "CircuitBreakers",
    "CompoundV3",
    "DydxV4",
    "GmxV2",
    "Hyperliquid",
    "InvalidParameters",
    "Invariant",
    "LiquidationOutcome",
    "Maker",
    "MakerLiq12",
    "MarketOrderRule",
    "OpenInterest",
    "ParamSpec",
    "ParameterSchema",
    "PerpAdapter",
    "PerpBook",
    "PerpCircuitBreakers",
    "PerpLiquidationOutcome",
    "PositionTerms",
    "Prices",
    "RiskLevers",
    "SnapshotError",
    "VenueAdapter",
    "WaterfallOutcome",
    "adl_pro_rata",
    "adl_queue",
    "apply_adl",
    "apply_funding",
    "deficits_by_group",
    "funding_payments_usd",
    "loss_waterfall",
    "waterfall_of",
    "winner_groups",
]
