"""Where each market lives on chain: the one registry of deployments ``cascade fetch`` knows.

A market is the adapter it feeds (``aave_v3``, ``compound_v3``, ``maker``), a chain id and the one
or two root addresses everything else is read from (Aave's ``PoolAddressesProvider`` gives the
Pool, the oracle and the data provider; Maker's Chainlog gives the Vat, Spotter, Dog and
ClipperMom; Comet is its own root). ``--market`` takes a name below or a JSON file of the same shape
(a fork, a testnet, another deployment)::

    {"protocol": "aave_v3", "name": "my-fork", "title": "Aave v3 Ethereum Core", "chain_id": 1,
     "contracts": {"PoolAddressesProvider": "0x..."}, "multicall3": "0xcA11...CA11"}

Maker markets also list the ``ilks`` to read (names such as ``"ETH-A"``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError
from .rpc import MULTICALL3_ADDRESS

PROTOCOLS = ("aave_v3", "compound_v3", "maker")
ROOTS = {"aave_v3": ("PoolAddressesProvider",), "compound_v3": ("Comet",), "maker": ("Chainlog",)}


@dataclass(frozen=True)
class Market:
    protocol: str
    name: str
    title: str
    chain_id: int
    contracts: Mapping[str, str]
    multicall3: str | None = MULTICALL3_ADDRESS
    ilks: tuple[str, ...] = ()
    source: str = "built-in"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"protocol": self.protocol, "name": self.name, "title": self.title,
                               "chain_id": self.chain_id, "contracts": dict(self.contracts),
                               "multicall3": self.multicall3}
        if self.ilks:
            out["ilks"] = list(self.ilks)
        return out


MAKER_MAINNET_ILKS = ("ETH-A", "ETH-B", "ETH-C", "WBTC-A", "WBTC-B", "WBTC-C", "WSTETH-A", "WSTETH-B",
                      "LSEV2-SKY-A")

KNOWN: dict[str, dict[str, Market]] = {
    "aave_v3": {
        "ethereum-core": Market("aave_v3", "ethereum-core", "Aave v3 Ethereum Core", 1,
                                {"PoolAddressesProvider": "0x2f39d218133AFaB8F2B819B1066c7E434Ad94E9e"}),
    },
    "compound_v3": {
        "usdc-mainnet": Market("compound_v3", "usdc-mainnet", "Compound III cUSDCv3 Ethereum mainnet", 1,
                               {"Comet": "0xc3d688B66703497DAA19211EEdff47f25384cdc3"}),
    },
    "maker": {
        "mainnet": Market("maker", "mainnet", "Maker/Sky Liquidations 2.0 (Dog + Clipper + Abacus), Ethereum mainnet",
                          1, {"Chainlog": "0xdA0Ab1e0017DEbCd72Be8599041a2aa3bA7e740F"}, ilks=MAKER_MAINNET_ILKS),
    },
}
DEFAULT_MARKET = {"aave_v3": "ethereum-core", "compound_v3": "usdc-mainnet", "maker": "mainnet"}


def protocol_name(text: str) -> str:
    """``aave-v3`` / ``aave_v3`` → ``aave_v3``; InputError naming ``--protocol`` otherwise."""
    p = text.strip().lower().replace("-", "_")
    if p not in PROTOCOLS:
        raise InputError(f"unknown protocol '{text}' (one of aave-v3, compound-v3, maker)", field="--protocol")
    return p


def resolve_market(protocol: str, market: str | None) -> Market:
    """A built-in market by name (default: the protocol's), or a market JSON file."""
    known = KNOWN[protocol]
    if market is None:
        return known[DEFAULT_MARKET[protocol]]
    if market in known:
        return known[market]
    p = Path(market)
    if p.suffix.lower() == ".json" or p.exists():
        return load_market_file(p, protocol)
    raise InputError(f"unknown market '{market}' for {protocol} (known: {', '.join(known)}; or a market JSON file)",
                     field="--market")


def load_market_file(path: Path, protocol: str | None) -> Market:
    from ..io import read_text

    file = str(path)
    text = read_text(path, field="--market")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}", file=file) from None
    return market_from_json(data, file=file, protocol=protocol)


def market_from_json(data: Any, *, file: str | None, protocol: str | None) -> Market:
    """Validate a market mapping (a market file, or the ``chain.market`` block of a fetched snapshot)."""
    def err(key: str, msg: str) -> InputError:
        return InputError(msg, file=file, field=key)

    if not isinstance(data, Mapping):
        raise err("<root>", "must be a JSON object")
    proto = data.get("protocol")
    if proto not in PROTOCOLS:
        raise err("protocol", f"must be one of {', '.join(PROTOCOLS)}, got {proto!r}"[:200])
    if protocol is not None and proto != protocol:
        raise err("protocol", f"is '{proto}', but --protocol is '{protocol}'")
    cid = data.get("chain_id")
    if isinstance(cid, bool) or not isinstance(cid, int) or cid <= 0:
        raise err("chain_id", f"must be a positive whole number, got {cid!r}"[:200])
    contracts = data.get("contracts")
    if not isinstance(contracts, Mapping):
        raise err("contracts", "must be an object of role -> address")
    for role in ROOTS[proto]:
        if role not in contracts:
            raise err(f"contracts.{role}", "missing")
    out_contracts = {str(k): _address(v, err, f"contracts.{k}") for k, v in contracts.items()}
    mc = data.get("multicall3", MULTICALL3_ADDRESS)
    mc = None if mc is None else _address(mc, err, "multicall3")
    ilks: tuple[str, ...] = ()
    if proto == "maker":
        raw = data.get("ilks")
        if not isinstance(raw, list) or not raw or not all(isinstance(i, str) and 0 < len(i.encode()) <= 32
                                                          and "." not in i for i in raw):
            raise err("ilks", "must be a non-empty list of ilk names (at most 32 bytes, no '.')")
        ilks = tuple(dict.fromkeys(raw))
    name = data.get("name", Path(file).stem if file else "custom")
    title = data.get("title", name)
    if not isinstance(name, str) or not isinstance(title, str):
        raise err("name", "name and title must be strings")
    return Market(proto, name, title, cid, out_contracts, mc, ilks, source=file or "snapshot")


def _address(v: Any, err, key: str) -> str:
    from eth_utils import is_checksum_address, to_checksum_address

    if not (isinstance(v, str) and len(v) == 42 and v.startswith("0x")):
        raise err(key, f"must be a 0x-prefixed 20-byte address, got {v!r}"[:200])
    try:
        int(v, 16)
    except ValueError:
        raise err(key, f"not a hex address: {v!r}"[:200]) from None
    if v != v.lower() and v != "0x" + v[2:].upper() and not is_checksum_address(v):
        raise err(key, f"bad EIP-55 checksum: {v}")
    return to_checksum_address(v)


@dataclass(frozen=True)
class Account:
    """An account to read: an address, and for Maker optionally the ilk of the urn."""

    address: str
    ilk: str | None = None

    @property
    def label(self) -> str:
        return f"{self.ilk}:{self.address}" if self.ilk else self.address


@dataclass
class AccountList:
    accounts: list[Account] = field(default_factory=list)
    file: str | None = None


def parse_account(text: str, *, file: str | None, where: str, maker: bool) -> Account:
    """``0xADDRESS`` or, for Maker, ``ILK:0xADDRESS`` / ``ILK,0xADDRESS``."""
    raw = text.strip()
    ilk = None
    for sep in (":", ","):
        if sep in raw:
            ilk, _, raw = (s.strip() for s in raw.partition(sep))
            break
    if ilk is not None and not maker:
        raise InputError(f"'{text.strip()}': an ILK prefix is only meaningful for maker", file=file, field=where)
    if ilk is not None and not (0 < len(ilk.encode()) <= 32):
        raise InputError(f"bad ilk name '{ilk}'", file=file, field=where)

    def err(key: str, msg: str) -> InputError:
        return InputError(msg, file=file, field=where)

    return Account(_address(raw, err, where), ilk)


def read_accounts(path: str | Path, protocol: str) -> list[Account]:
    """An accounts file: one account per line, ``#`` comments and blank lines ignored.

    A CSV with an ``account`` header (a positions file, e.g. one ``cascade fetch`` wrote) also
    works: its account column is read. Duplicates are dropped, order kept.
    """
    import csv
    import io

    from ..io import read_text

    file = str(path)
    text = read_text(path, field="--accounts")
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip() and not ln.lstrip().startswith("#")), "")
    out: dict[str, Account] = {}
    maker = protocol == "maker"
    if "account" in [c.strip() for c in first.split(",")]:
        reader = csv.DictReader(io.StringIO(text))
        for n, row in enumerate(reader, start=2):
            if row.get("protocol") not in (None, "", protocol):
                continue
            a = parse_account(row.get("account") or "", file=file, where=f"line {n}: account", maker=maker)
            out.setdefault(a.label, a)
    else:
        for n, ln in enumerate(lines, start=1):
            body = ln.split("#", 1)[0].strip()
            if body:
                a = parse_account(body, file=file, where=f"line {n}", maker=maker)
                out.setdefault(a.label, a)
    if not out:
        raise InputError("no accounts in the file", file=file, field="--accounts")
    return list(out.values())
