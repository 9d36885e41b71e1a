"""A real EVM for the chain tests: py-evm through eth-tester, contracts compiled from Vyper.

Compiled artefacts are cached per test session (per process); every test process builds its own
chain, so tests stay independent and parallel-safe.
"""

from __future__ import annotations

import functools
from decimal import Decimal
from pathlib import Path

CONTRACTS = Path(__file__).parent / "contracts"


@functools.cache
def compiled(name: str) -> tuple[list, str]:
    """(abi, bytecode) of ``contracts/<name>.vy``, compiled once per process."""
    import vyper

    out = vyper.compile_code((CONTRACTS / f"{name}.vy").read_text(), output_formats=["abi", "bytecode"])
    return out["abi"], out["bytecode"]


class Chain:
    """One py-evm chain with a funded deployer; ``w3`` talks to it through web3's EthereumTesterProvider."""

    def __init__(self) -> None:
        from eth_tester import EthereumTester, PyEVMBackend
        from web3 import EthereumTesterProvider, Web3

        self.tester = EthereumTester(PyEVMBackend())
        self.provider = EthereumTesterProvider(self.tester)
        self.w3 = Web3(self.provider)
        self.me = self.w3.eth.accounts[0]

    def deploy(self, name: str, *args):
        abi, bytecode = compiled(name)
        tx = self.w3.eth.contract(abi=abi, bytecode=bytecode).constructor(*args).transact(
            {"from": self.me, "gas": 8_000_000})
        addr = self.w3.eth.get_transaction_receipt(tx).contractAddress
        return self.w3.eth.contract(address=addr, abi=abi)

    def send(self, fn) -> None:
        tx = fn.transact({"from": self.me, "gas": 25_000_000})
        assert self.w3.eth.get_transaction_receipt(tx).status == 1

    @property
    def chain_id(self) -> int:
        return self.w3.eth.chain_id

    def now(self) -> int:
        return self.w3.eth.get_block("latest")["timestamp"]

    def block_number(self) -> int:
        return self.w3.eth.block_number


def fixed(x: float | int | str, decimals: int) -> int:
    """``x`` as an exact fixed-point integer with ``decimals`` decimals (refuses values that do not fit)."""
    d = Decimal(str(x)) * (Decimal(10) ** decimals)
    if d != d.to_integral_value():
        raise ValueError(f"{x} has more than {decimals} decimals")
    return int(d)


def address_of(label: str) -> str:
    """A deterministic address for a token that needs no code (Aave reserves)."""
    from eth_utils import keccak, to_checksum_address

    return to_checksum_address(keccak(text=f"cascade-test:{label}")[12:])
