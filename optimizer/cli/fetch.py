"""``cascade fetch``: read a market's parameters, prices and accounts from the chain into a snapshot."""

from __future__ import annotations

import click

from ._app import cli
from ._chain_options import RPC_ENV, client_options, rpc_options

_PROTOCOLS = click.Choice(["aave-v3", "compound-v3", "maker", "aave_v3", "compound_v3"], case_sensitive=False)


@cli.command("fetch")
@rpc_options
@click.option("--protocol", required=True, type=_PROTOCOLS, help="Which venue to read.")
@click.option("--market", metavar="NAME|FILE.json",
              help="A built-in market (aave-v3: ethereum-core; compound-v3: usdc-mainnet; maker: mainnet — the "
                   "defaults) or a market JSON file with chain id and root addresses (docs/chain.md).")
@click.option("--block", type=click.IntRange(min=0), help="Block to read at (default: the latest).")
@click.option("--accounts", "accounts_file", type=click.Path(dir_okay=False),
              help="File of accounts (one address a line; maker: ILK:0xURN or an address for every ilk) whose "
                   "positions are written as a CSV book.")
@click.option("--out", type=click.Path(dir_okay=False),
              help="Snapshot JSON to write (default: data/snapshots/<protocol>-<market>-<block>.json).")
@click.option("--positions", "positions_out", type=click.Path(dir_okay=False),
              help="Positions CSV to write (default: next to --out, <name>.positions.csv).")
@click.option("--max-price-age", default="25h", show_default=True, metavar="DURATION",
              help="Oldest Chainlink round accepted (e.g. 90m, 25h, 2d).")
@click.option("--allow-stale", is_flag=True, help="Record stale prices (flagged in price_feeds) instead of failing.")
def fetch_cmd(rpc: str | None, protocol: str, market: str | None, block: int | None, accounts_file: str | None,
              out: str | None, positions_out: str | None, max_price_age: str, allow_stale: bool, **client_kw) -> None:
    """Read one market at one block into a snapshot with the bundled format (and a positions CSV).

    The RPC URL comes from --rpc or the CASCADE_RPC_URL environment variable (keeps an API key out of
    shell history and process lists); it is never printed or written. The snapshot records the
    chain id, block number and block time and is accepted wherever a bundled snapshot is, through a
    scenario's `snapshot = "file.json"` key.
    """
    from pathlib import Path

    from ..chain import Options, fetch, protocol_name, read_accounts, resolve_market, write_fetched
    from ..duration import parse_duration

    proto = protocol_name(protocol)
    mk = resolve_market(proto, market)
    opts = Options(max_price_age_s=parse_duration(max_price_age, "--max-price-age"), allow_stale=allow_stale)
    accounts = read_accounts(accounts_file, proto) if accounts_file else []
    url = _require_rpc(rpc)
    fetched = fetch(proto, rpc=url, market=mk, block=block, accounts=accounts, options=opts,
                    client_options=client_options(**client_kw))
    out_path = Path(out) if out else Path("data/snapshots") / f"{proto}-{mk.name}-{fetched.block.number}.json"
    pos_path = (Path(positions_out) if positions_out else out_path.with_name(out_path.stem + ".positions.csv")) \
        if fetched.positions is not None else None
    written = write_fetched(fetched, out_path, pos_path)
    snap = fetched.snapshot
    n_params = len(snap.get("assets") or snap.get("ilks") or {})
    what = {"aave_v3": f"{n_params} reserves, {len(snap.get('emodes', {}))} eModes",
            "compound_v3": f"{n_params} collaterals", "maker": f"{n_params} ilks"}[proto]
    stale = [k for k, v in snap.get("price_feeds", {}).items() if v.get("stale")]
    click.echo(f"{proto} {mk.title} at block {fetched.block.number} ({fetched.block.time_iso}), chain id "
               f"{snap['chain']['chain_id']}: {what}, {len(snap.get('prices_usd', {}))} prices"
               + (f" ({len(stale)} STALE: {', '.join(stale[:5])})" if stale else ""))
    if fetched.positions is not None:
        n_acc = len({r["account"] for r in fetched.positions})
        click.echo(f"positions: {n_acc} of {len(accounts)} accounts hold positions ({len(fetched.positions)} rows)")
    for note in fetched.notes:
        click.echo(f"note: {note}")
    for p in written:
        click.echo(f"wrote {p}")


def _require_rpc(rpc: str | None) -> str:
    from ..errors import InputError

    if not rpc or not rpc.strip():
        raise InputError(f"no RPC endpoint: give --rpc URL or set {RPC_ENV}", field="--rpc")
    return rpc
