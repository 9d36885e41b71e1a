"""What the venue readers share: fixed-point conversions, token amounts, symbols, feed staleness."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .abi import CHAINLINK_AGGREGATOR, ERC20
from .markets import Account, Market
from .rpc import BlockRef, Call, ChainClient, ChainError

POSITION_COLUMNS = ("account", "protocol", "collateral_asset", "collateral_amount", "debt_asset", "debt_amount")


@dataclass
class Options:
    """What a fetch may accept: the oldest price it takes and whether a stale one is an error."""

    max_price_age_s: float = 90_000.0  # 25 h: a day's heartbeat plus slack
    allow_stale: bool = False


@dataclass
class Fetched:
    """One venue read at one block: the snapshot dict, position rows (if accounts were given), notes."""

    protocol: str
    market: Market
    block: BlockRef
    snapshot: dict[str, Any]
    positions: list[dict[str, str]] | None = None
    position_columns: tuple[str, ...] = POSITION_COLUMNS
    notes: list[str] = field(default_factory=list)
    accounts: list[Account] = field(default_factory=list)


def ratio(raw: int, scale: int) -> float:
    """A fixed-point integer as the nearest float (exact integer division, correctly rounded)."""
    return raw / scale


def amount(raw: int, scale: int) -> int | float:
    """A token/DAI amount: an int when whole, else the nearest float."""
    q, r = divmod(int(raw), int(scale))
    return q if r == 0 else raw / scale


def decimal_text(raw: int, decimals: int) -> str:
    """``raw / 10**decimals`` written exactly, without exponent or trailing zeros (``"1.5"``, ``"0"``)."""
    d = (Decimal(int(raw)) / (Decimal(10) ** int(decimals)))
    s = format(d, "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s or "0"


def decimals_of_scale(scale: int, what: str) -> int:
    s = str(int(scale))
    if s[0] != "1" or set(s[1:]) - {"0"}:
        raise ChainError(f"{what}: scale {scale} is not a power of ten")
    return len(s) - 1


def bytes32_text(b: bytes) -> str:
    return bytes(b).rstrip(b"\0").decode("utf-8", "replace")


def text_bytes32(s: str) -> bytes:
    b = s.encode()
    if len(b) > 32:
        raise ChainError(f"'{s}' is longer than 32 bytes")
    return b.ljust(32, b"\0")


def read_symbols(client: ChainClient, addresses: list[str]) -> dict[str, str]:
    """ERC-20 ``symbol()`` of each address: ``string``, or ``bytes32`` as MKR returns; address if neither."""
    calls = [Call("ERC20", a, ERC20["symbol"], allow_failure=True) for a in addresses]
    outs = client.run(calls)
    res: dict[str, str] = {}
    retry = []
    for a, o in zip(addresses, outs, strict=True):
        if o.ok and o.value[0]:
            res[a] = o.value[0]
        else:
            retry.append(a)
    if retry:
        b32 = client.run([Call("ERC20", a, ERC20["symbol_bytes32"], allow_failure=True) for a in retry])
        for a, o in zip(retry, b32, strict=True):
            res[a] = bytes32_text(o.value[0]) if o.ok and bytes32_text(o.value[0]) else a
    return res


def unique_symbols(pairs: list[tuple[str, str]], notes: list[str]) -> dict[str, str]:
    """address -> symbol with duplicates made unique (``SYM``, ``SYM#2``) and noted."""
    seen: dict[str, int] = {}
    out = {}
    for addr, sym in pairs:
        sym = sym.strip() or addr
        sym = sym.replace(".", "_")  # '.' separates names in parameter keys (WETH.ltv_bps)
        n = seen.get(sym, 0) + 1
        seen[sym] = n
        out[addr] = sym if n == 1 else f"{sym}#{n}"
        if n > 1:
            notes.append(f"two reserves share the symbol '{sym}': {addr} is named '{out[addr]}'")
    return out


def feed_checks(client: ChainClient, feeds: dict[str, str], opts: Options, *, kind: str) -> dict[str, dict]:
    """Chainlink ``latestRoundData`` of each feed (name -> address) with a staleness check.

    A feed is stale when ``updatedAt`` is older than ``opts.max_price_age_s`` at the pinned block,
    when ``answeredInRound < roundId``, or when the answer is not positive. A feed without
    ``latestRoundData`` (an adapter that only has ``latestAnswer``) is recorded as unchecked.
    Stale feeds raise :class:`ChainError` unless ``opts.allow_stale``.
    """
    assert client.block is not None
    names = [n for n, a in feeds.items() if a and int(a, 16) != 0]
    calls = [Call(f"{kind} price feed ({n})", feeds[n], CHAINLINK_AGGREGATOR["latestRoundData"], allow_failure=True)
             for n in names]
    out: dict[str, dict] = {n: {"source": feeds[n], "checked": False, "stale": False} for n in feeds}
    stale = []
    for n, o in zip(names, client.run(calls), strict=True):
        if not o.ok:
            out[n]["note"] = f"no latestRoundData ({o.reason})"
            continue
        round_id, answer, _started, updated, answered_in = o.value
        age = client.block.timestamp - int(updated)
        why = []
        if answer <= 0:
            why.append(f"answer {answer} is not positive")
        if updated == 0 or age > opts.max_price_age_s:
            why.append(f"updated {age / 3600:.1f} h before the block (limit {opts.max_price_age_s / 3600:g} h)")
        if answered_in < round_id:
            why.append(f"answeredInRound {answered_in} < roundId {round_id}")
        out[n].update(checked=True, updated_at=int(updated), age_s=int(age), stale=bool(why))
        if why:
            out[n]["why"] = "; ".join(why)
            stale.append(f"{n} ({feeds[n]}): {'; '.join(why)}")
    if stale and not opts.allow_stale:
        raise ChainError(f"stale price at block {client.block.number}: {stale[0]}"
                         + (f" (and {len(stale) - 1} more)" if len(stale) > 1 else "")
                         + "; use --allow-stale to record it, or --max-price-age", field="--max-price-age")
    return out


def position_rows(protocol: str, account: str, collateral: list[tuple[str, str]], debt: list[tuple[str, str]],
                  extra: dict[str, str] | None = None) -> list[dict[str, str]]:
    """Rows of one account in the CSV book format: collateral and debt legs side by side."""
    rows = []
    for k in range(max(len(collateral), len(debt))):
        c = collateral[k] if k < len(collateral) else ("", "")
        d = debt[k] if k < len(debt) else ("", "")
        rows.append({"account": account, "protocol": protocol, "collateral_asset": c[0], "collateral_amount": c[1],
                     "debt_asset": d[0], "debt_amount": d[1], **(extra or {})})
    return rows


def provenance_text(contract: str, fn: str, block: BlockRef) -> str:
    return f"on chain: {contract}.{fn} at block {block.number} ({block.time_iso})"


def chain_block(client: ChainClient, market: Market, contracts: dict[str, str], assets: dict[str, str],
                **extra: Any) -> dict[str, Any]:
    """The snapshot's ``chain`` block: where and when it was read (never the RPC URL)."""
    blk = client.block
    assert blk is not None
    return {"chain_id": client.chain_id, "block_number": blk.number, "block_hash": blk.hash,
            "block_timestamp": blk.timestamp, "block_time": blk.time_iso, "multicall3": client.multicall,
            "contracts": contracts, "assets": assets, "market": market.to_json(), **extra}
