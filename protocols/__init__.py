"""Protocol adapters: each venue's liquidation rules, vectorised over positions.

Pure rules: no file or network I/O and no simulation loop (see :class:`Adapter`).
"""

from ._base import (
    Adapter,
    Book,
    CircuitBreakers,
    InvalidParameters,
    Invariant,
    LiquidationOutcome,
    ParameterSchema,
    ParamSpec,
    Prices,
    SnapshotError,
)
from .aave_v2 import AaveV2
from .aave_v3 import AaveV3
from .compound_v3 import CompoundV3
from .maker import Maker
from .maker_liq12 import MakerLiq12

ADAPTERS: dict[str, type[Adapter]] = {cls.name: cls for cls in (AaveV2, AaveV3, CompoundV3, Maker, MakerLiq12)}

__all__ = [
    "ADAPTERS",
    "AaveV2",
    "AaveV3",
    "Adapter",
    "Book",
    "CircuitBreakers",
    "CompoundV3",
    "InvalidParameters",
    "Invariant",
    "LiquidationOutcome",
    "Maker",
    "MakerLiq12",
    "ParamSpec",
    "ParameterSchema",
    "Prices",
    "SnapshotError",
]
