"""Reading protocol state from the chain into the project's snapshot and book formats (I/O at the edge).

    from optimizer.chain import fetch, write_fetched
    f = fetch("aave_v3", rpc="https://...", accounts=[...])      # one block, batched, retried
    write_fetched(f, "data/snapshots/aave.json", "data/snapshots/aave.positions.csv")

:func:`fetch` pins one block, reads one market through its venue reader (the registry
:data:`READERS`), checks that the result loads as an adapter snapshot and returns a
:class:`Fetched`; nothing is written until :func:`write_fetched`, which writes each file
atomically. ``protocols/`` stays pure: this package only produces the dicts its adapters read.
web3 is imported here and by nothing outside ``optimizer.chain`` (and the ``fetch`` / ``watch``
commands that use it), so other commands start as fast as before.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from ._common import Fetched, Options
from .markets import Account, Market, protocol_name, read_accounts, resolve_market
from .rpc import ChainClient, ChainError, ClientOptions

__all__ = ["READERS", "Account", "ChainClient", "ChainError", "ClientOptions", "Fetched", "Market", "Options",
           "fetch", "protocol_name", "read_accounts", "resolve_market", "write_fetched"]


def _reader(protocol: str) -> Callable[..., Fetched]:
    from . import aave_v3, compound_v3, maker

    return {"aave_v3": aave_v3.fetch, "compound_v3": compound_v3.fetch, "maker": maker.fetch}[protocol]


READERS = ("aave_v3", "compound_v3", "maker")  # adapter name -> venue reader (see _reader)


def fetch(protocol: str, *, rpc: Any = None, client: ChainClient | None = None, market: Market | str | None = None,
          block: int | None = None, accounts: list[Account] | None = None, options: Options | None = None,
          client_options: ClientOptions | None = None) -> Fetched:
    """Read one market at one block (``block=None``: the latest) into a snapshot dict and position rows.

    ``rpc`` is an http(s) URL or a web3 provider; or pass a ready ``client``. Raises
    :class:`ChainError` (an :class:`~optimizer.errors.InputError`) with a one-line message.
    """
    from protocols import ADAPTERS, InvalidParameters, SnapshotError

    protocol = protocol_name(protocol)
    mk = market if isinstance(market, Market) else resolve_market(protocol, market)
    if mk.protocol != protocol:
        raise ChainError(f"market '{mk.name}' is a {mk.protocol} market, not {protocol}", field="--market")
    cl = client or ChainClient(rpc, client_options)
    cl.pin(block, mk.chain_id, f"market '{mk.name}' ({mk.title})", mk.multicall3)
    unique = list({a.label: a for a in accounts or []}.values())  # each account once, order kept
    fetched = _reader(protocol)(cl, mk, unique, options or Options())
    try:
        ADAPTERS[protocol](fetched.snapshot)
    except (SnapshotError, InvalidParameters) as e:
        raise ChainError(f"the state read at block {cl.block.number} does not load as a {protocol} snapshot: {e}") \
            from None
    return fetched


def write_fetched(fetched: Fetched, out: str | Path, positions_out: str | Path | None = None) -> list[Path]:
    """Write the snapshot JSON (and the positions CSV when there are position rows), each atomically."""
    import json

    from ..io import atomic_write_text, write_csv

    written = []
    if fetched.positions is not None and positions_out is not None:
        write_csv(positions_out, fetched.position_columns, fetched.positions)
        written.append(Path(positions_out))
    atomic_write_text(out, json.dumps(fetched.snapshot, indent=1, ensure_ascii=False) + "\n")
    written.append(Path(out))
    return written
