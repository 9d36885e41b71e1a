"""The project's minimal ABIs: real selectors, and the test contracts expose exactly those signatures."""

import subprocess
import sys

import pytest
from evm import compiled

from optimizer.chain.abi import ALL, Fn

# Selectors of the deployed contracts' functions, as block explorers and 4byte list them.
KNOWN_SELECTORS = {
    ("AavePool", "getReservesList"): "d1946dbc", ("AavePool", "getConfiguration"): "c44b11f7",
    ("AavePool", "getReserveData"): "35ea6a75", ("Comet", "getAssetInfo"): "c8c7fe6b",
    ("MakerChainlog", "getAddress"): "21f8a721", ("MakerVat", "ilks"): "d9638d36", ("MakerVat", "urns"): "2424be5c",
    ("ChainlinkAggregator", "latestRoundData"): "feaf968c", ("ERC20", "symbol"): "95d89b41",
    ("ERC20", "decimals"): "313ce567", ("Multicall3", "aggregate3"): "82ad56cb",
}
TEST_CONTRACT = {
    "AavePoolAddressesProvider": "AaveAddressesProvider", "AavePool": "AavePool",
    "AaveProtocolDataProvider": "AaveDataProvider", "AaveOracle": "AaveOracle", "Comet": "Comet",
    "MakerChainlog": "MakerChainlog", "MakerVat": "MakerVat", "MakerSpotter": "MakerSpotter", "MakerDog": "MakerDog",
    "MakerClipper": "MakerClipper", "MakerAbacus": "MakerStairstep", "MakerClipperMom": "MakerClipperMom",
    "MakerOSM": "MakerOSM", "ChainlinkAggregator": "Aggregator", "ERC20": "ERC20", "Multicall3": "Multicall3",
}
NOT_ON_TEST_CONTRACT = {("MakerAbacus", "tau"), ("ERC20", "symbol_bytes32")}  # LinearDecrease's; MKR-style symbol


def _canon(p):
    t = p["type"]
    if t.startswith("tuple"):
        return "(" + ",".join(_canon(c) for c in p["components"]) + ")" + t[len("tuple"):]
    return t


@pytest.mark.parametrize(("kind", "name"), sorted(KNOWN_SELECTORS))
def test_selectors_are_the_real_ones(kind, name):
    assert ALL[kind][name].selector.hex() == KNOWN_SELECTORS[(kind, name)]


@pytest.mark.parametrize("kind", sorted(TEST_CONTRACT))
def test_test_contracts_expose_the_projects_signatures(kind):
    abi, _ = compiled(TEST_CONTRACT[kind])
    entries = {(e["name"], tuple(_canon(i) for i in e["inputs"])): tuple(_canon(o) for o in e["outputs"])
               for e in abi if e["type"] == "function"}
    for key, fn in ALL[kind].items():
        if (kind, key) in NOT_ON_TEST_CONTRACT:
            continue
        assert entries.get((fn.name, fn.inputs)) == fn.outputs, (kind, fn.signature)


def test_decode_is_strict_and_checksums_addresses():
    fn = Fn("f", (), ("uint8", "address"))
    raw = (7).to_bytes(32, "big") + bytes(12) + bytes.fromhex("ab" * 20)
    assert fn.decode(raw) == (7, "0xABaBaBaBABabABabAbAbABAbABabababaBaBABaB")
    with pytest.raises(ValueError, match=r"returned 64 bytes that do not decode as \(uint8,address\)"):
        fn.decode((300).to_bytes(32, "big") + raw[32:])
    with pytest.raises(ValueError, match="returned no data"):
        fn.decode(b"")


def test_other_commands_do_not_import_web3():
    code = "import sys, optimizer.cli; print(any(m.split('.')[0] in ('web3', 'eth_abi', 'vyper') for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd="/")
    assert out.stdout.strip() == "False"
