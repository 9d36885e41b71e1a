"""Protocol adapters: each venue's liquidation rules, vectorised over positions.

Pure rules: no file or network I/O and no simulation loop (see :class:`Adapter`).
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
)
from .aave_v3 import AaveV3
from .compound_v3 import CompoundV3
from .maker import Maker

ADAPTERS: dict[str, type[Adapter]] = {cls.name: cls for cls in (AaveV3, CompoundV3, Maker)}

__all__ = [
    "ADAPTERS",
    "AaveV3",
    "Adapter",
    "Book",
    "BufferPair",
    "CircuitBreakers",
    "CompoundV3",
    "InvalidParameters",
    "Invariant",
    "LiquidationOutcome",
    "Maker",
    "ParamSpec",
    "ParameterSchema",
    "PositionTerms",
    "Prices",
    "RiskLevers",
    "SnapshotError",
]
