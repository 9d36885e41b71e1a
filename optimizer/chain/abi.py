"""Minimal ABIs: only the functions ``cascade fetch`` calls, with the real contracts' signatures.

Each :class:`Fn` is one function: its name, input and output ABI types, the 4-byte selector, and
strict encode/decode through ``eth_abi``. The signatures are those of the deployed contracts:

- Aave v3 (``aave-dao/aave-v3-origin`` v3.3–v3.6): ``IPoolAddressesProvider``, ``IPool``,
  ``IPoolDataProvider`` (AaveProtocolDataProvider), ``IAaveOracle``; structs
  ``DataTypes.ReserveConfigurationMap`` (one ``uint256``), ``ReserveDataLegacy`` (15 words),
  ``CollateralConfig`` (three ``uint16``), ``UserConfigurationMap`` (one ``uint256``).
- Compound III (``compound-finance/comet`` ``CometMainInterface`` / ``CometCore.AssetInfo``).
- Maker (``makerdao/dss`` ``vat.sol``, ``spot.sol``, ``dog.sol``, ``clip.sol``, ``abaci.sol``;
  ``makerdao/clipper-mom``; ``makerdao/osm``; ``makerdao/dss-chain-log``).
- Chainlink ``AggregatorV3Interface`` and ``AggregatorInterface.latestAnswer``.
- Multicall3 (``mds1/multicall``) ``aggregate3``.
- ERC-20 ``symbol`` / ``decimals`` (``symbol`` may return ``bytes32``, as MKR's does).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Fn:
    """One contract function: ``name(inputs) returns (outputs)``."""

    name: str
    inputs: tuple[str, ...] = ()
    outputs: tuple[str, ...] = ()
    selector: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        from eth_utils import keccak

        object.__setattr__(self, "selector", keccak(text=self.signature)[:4])

    @property
    def signature(self) -> str:
        return f"{self.name}({','.join(self.inputs)})"

    def encode(self, *args: Any) -> bytes:
        from eth_abi import encode

        return self.selector + (encode(list(self.inputs), list(args)) if self.inputs else b"")

    def decode(self, data: bytes) -> tuple:
        """Strictly decoded outputs; raises ``ValueError`` with a short reason when malformed."""
        from eth_abi import decode
        from eth_abi.exceptions import DecodingError

        if not self.outputs:
            return ()
        if not data:
            raise ValueError("returned no data")
        try:
            values = decode(list(self.outputs), bytes(data), strict=True)
        except (DecodingError, OverflowError, ValueError, TypeError) as e:
            raise ValueError(f"returned {len(data)} bytes that do not decode as ({','.join(self.outputs)}): "
                             f"{type(e).__name__}") from None
        return tuple(_checksummed(v, t) for v, t in zip(values, self.outputs, strict=True))

    def json_abi(self) -> dict[str, Any]:
        """The ABI entry (types only), e.g. to compare with a compiled contract's ABI."""
        return {"type": "function", "name": self.name, "inputs": [{"type": t} for t in self.inputs],
                "outputs": [{"type": t} for t in self.outputs]}


def _checksummed(value: Any, typ: str) -> Any:
    """Addresses inside a decoded value as EIP-55 checksum strings (eth_abi returns lower case)."""
    from eth_abi.grammar import parse
    from eth_utils import to_checksum_address

    def walk(v: Any, t: Any) -> Any:
        if t.is_array:
            return [walk(x, t.item_type) for x in v]
        if hasattr(t, "components"):
            return tuple(walk(x, c) for x, c in zip(v, t.components, strict=True))
        return to_checksum_address(v) if t.base == "address" else v

    return walk(value, parse(typ)) if "address" in typ else value


# --- Aave v3 ---------------------------------------------------------------------------------
_RESERVE_DATA_LEGACY = ("((uint256),uint128,uint128,uint128,uint128,uint128,uint40,uint16,address,address,address,"
                        "address,uint128,uint128,uint128)")

AAVE_ADDRESSES_PROVIDER = {
    "getPool": Fn("getPool", (), ("address",)),
    "getPriceOracle": Fn("getPriceOracle", (), ("address",)),
    "getPoolDataProvider": Fn("getPoolDataProvider", (), ("address",)),
}
AAVE_POOL = {
    "getReservesList": Fn("getReservesList", (), ("address[]",)),
    "getConfiguration": Fn("getConfiguration", ("address",), ("(uint256)",)),
    "getReserveData": Fn("getReserveData", ("address",), (_RESERVE_DATA_LEGACY,)),
    "getEModeCategoryCollateralConfig": Fn("getEModeCategoryCollateralConfig", ("uint8",), ("(uint16,uint16,uint16)",)),
    "getEModeCategoryLabel": Fn("getEModeCategoryLabel", ("uint8",), ("string",)),
    "getEModeCategoryCollateralBitmap": Fn("getEModeCategoryCollateralBitmap", ("uint8",), ("uint128",)),
    "getEModeCategoryBorrowableBitmap": Fn("getEModeCategoryBorrowableBitmap", ("uint8",), ("uint128",)),
    "getUserEMode": Fn("getUserEMode", ("address",), ("uint256",)),
    "getUserConfiguration": Fn("getUserConfiguration", ("address",), ("(uint256)",)),
}
AAVE_DATA_PROVIDER = {
    "getAllReservesTokens": Fn("getAllReservesTokens", (), ("(string,address)[]",)),
    "getUserReserveData": Fn("getUserReserveData", ("address", "address"),
                             ("uint256", "uint256", "uint256", "uint256", "uint256", "uint256", "uint256", "uint40",
                              "bool")),
}
AAVE_ORACLE = {
    "BASE_CURRENCY": Fn("BASE_CURRENCY", (), ("address",)),
    "BASE_CURRENCY_UNIT": Fn("BASE_CURRENCY_UNIT", (), ("uint256",)),
    "getAssetPrice": Fn("getAssetPrice", ("address",), ("uint256",)),
    "getSourceOfAsset": Fn("getSourceOfAsset", ("address",), ("address",)),
}

# --- Compound III ----------------------------------------------------------------------------
COMET = {
    "numAssets": Fn("numAssets", (), ("uint8",)),
    "getAssetInfo": Fn("getAssetInfo", ("uint8",),
                       ("(uint8,address,address,uint64,uint64,uint64,uint64,uint128)",)),
    "baseToken": Fn("baseToken", (), ("address",)),
    "baseTokenPriceFeed": Fn("baseTokenPriceFeed", (), ("address",)),
    "decimals": Fn("decimals", (), ("uint8",)),
    "storeFrontPriceFactor": Fn("storeFrontPriceFactor", (), ("uint256",)),
    "targetReserves": Fn("targetReserves", (), ("uint256",)),
    "baseBorrowMin": Fn("baseBorrowMin", (), ("uint256",)),
    "getReserves": Fn("getReserves", (), ("int256",)),
    "getPrice": Fn("getPrice", ("address",), ("uint256",)),
    "borrowBalanceOf": Fn("borrowBalanceOf", ("address",), ("uint256",)),
    "collateralBalanceOf": Fn("collateralBalanceOf", ("address", "address"), ("uint128",)),
}

# --- Maker -----------------------------------------------------------------------------------
MAKER_CHAINLOG = {"getAddress": Fn("getAddress", ("bytes32",), ("address",))}
MAKER_VAT = {
    "ilks": Fn("ilks", ("bytes32",), ("uint256", "uint256", "uint256", "uint256", "uint256")),  # Art rate spot line dust
    "urns": Fn("urns", ("bytes32", "address"), ("uint256", "uint256")),  # ink art
}
MAKER_SPOTTER = {
    "ilks": Fn("ilks", ("bytes32",), ("address", "uint256")),  # pip mat
    "par": Fn("par", (), ("uint256",)),
}
MAKER_DOG = {
    "ilks": Fn("ilks", ("bytes32",), ("address", "uint256", "uint256", "uint256")),  # clip chop hole dirt
    "Hole": Fn("Hole", (), ("uint256",)),
}
MAKER_CLIPPER = {
    "buf": Fn("buf", (), ("uint256",)),
    "tail": Fn("tail", (), ("uint256",)),
    "cusp": Fn("cusp", (), ("uint256",)),
    "chip": Fn("chip", (), ("uint64",)),
    "tip": Fn("tip", (), ("uint192",)),
    "stopped": Fn("stopped", (), ("uint256",)),
    "calc": Fn("calc", (), ("address",)),
    "wards": Fn("wards", ("address",), ("uint256",)),
}
MAKER_ABACUS = {  # StairstepExponentialDecrease: cut, step; ExponentialDecrease: cut; LinearDecrease: tau
    "cut": Fn("cut", (), ("uint256",)),
    "step": Fn("step", (), ("uint256",)),
    "tau": Fn("tau", (), ("uint256",)),
}
MAKER_CLIPPER_MOM = {"tolerance": Fn("tolerance", ("address",), ("uint256",))}
MAKER_OSM = {"hop": Fn("hop", (), ("uint16",))}

# --- Feeds, tokens, batching -----------------------------------------------------------------
CHAINLINK_AGGREGATOR = {
    "latestRoundData": Fn("latestRoundData", (), ("uint80", "int256", "uint256", "uint256", "uint80")),
    "decimals": Fn("decimals", (), ("uint8",)),
}
ERC20 = {
    "symbol": Fn("symbol", (), ("string",)),
    "symbol_bytes32": Fn("symbol", (), ("bytes32",)),
    "decimals": Fn("decimals", (), ("uint8",)),
}
MULTICALL3 = {
    "aggregate3": Fn("aggregate3", ("(address,bool,bytes)[]",), ("(bool,bytes)[]",)),
}

ALL: dict[str, dict[str, Fn]] = {
    "AavePoolAddressesProvider": AAVE_ADDRESSES_PROVIDER, "AavePool": AAVE_POOL,
    "AaveProtocolDataProvider": AAVE_DATA_PROVIDER, "AaveOracle": AAVE_ORACLE, "Comet": COMET,
    "MakerChainlog": MAKER_CHAINLOG, "MakerVat": MAKER_VAT, "MakerSpotter": MAKER_SPOTTER, "MakerDog": MAKER_DOG,
    "MakerClipper": MAKER_CLIPPER, "MakerAbacus": MAKER_ABACUS, "MakerClipperMom": MAKER_CLIPPER_MOM,
    "MakerOSM": MAKER_OSM, "ChainlinkAggregator": CHAINLINK_AGGREGATOR, "ERC20": ERC20, "Multicall3": MULTICALL3,
}
