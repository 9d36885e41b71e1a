"""``cascade watch``: a live stress gauge on the chain's current state."""

from __future__ import annotations

import sys

import click

from ._app import cli
from ._chain_options import client_options, rpc_options
from ._common import resolve_scenario


@cli.command("watch")
@click.argument("scenario", type=click.Path(dir_okay=False))
@rpc_options
@click.option("--every", default="10m", show_default=True, metavar="DURATION",
              help="Time between ticks (e.g. 30s, 10m, 1h).")
@click.option("--paths", type=click.IntRange(min=2), help="Monte Carlo paths per tick (default: the scenario's).")
@click.option("--alert", "alerts", multiple=True, metavar="METRIC>VALUE",
              help="Alert when a headline metric crosses a threshold, e.g. bad_debt_usd.var_99>5e6, "
                   "liquidatable_now>0 (repeatable; also >=, <, <=; a bare name means its mean).")
@click.option("--log", "log_file", type=click.Path(dir_okay=False), help="Append one JSON line per tick here.")
@click.option("--exit-on-alert", is_flag=True, help="Stop with exit code 3 when an alert fires.")
@click.option("--ticks", type=click.IntRange(min=1), help="Stop after this many ticks (default: run until Ctrl-C).")
@click.option("--retry-after", default=None, metavar="DURATION",
              help="Wait after a failed tick (default: the shorter of --every and 60 s).")
@click.option("--market", "markets", multiple=True, metavar="ADAPTER=NAME|FILE",
              help="Market of a protocol (default: the chain.market a fetched snapshot records, else the built-in "
                   "default).")
@click.option("--max-price-age", default="25h", show_default=True, metavar="DURATION",
              help="Chainlink rounds older than this count as stale (the stale_feeds metric).")
def watch_cmd(scenario: str, rpc: str | None, every: str, paths: int | None, alerts: tuple[str, ...],
              log_file: str | None, exit_on_alert: bool, ticks: int | None, retry_after: str | None,
              markets: tuple[str, ...], max_price_age: str, **client_kw) -> None:
    """Re-fetch a scenario's protocols on a schedule and re-run its stress on the live state.

    Each tick pins one block, fetches parameters, oracle prices and the accounts of the scenario's
    CSV books, re-runs the scenario (same seed every tick, so changes are paired), prints a status
    line and appends a JSON line to --log. A failed tick is logged and retried; Ctrl-C stops
    (exit 130). The RPC URL comes from --rpc or CASCADE_RPC_URL and is never printed or written.
    """
    from pathlib import Path

    from ..chain.watch import WatchConfig, Watcher, parse_alert, parse_market_overrides
    from ..duration import parse_duration
    from .fetch import _require_rpc

    cfg = WatchConfig(
        scenario=resolve_scenario(scenario), rpc=_require_rpc(rpc), every_s=parse_duration(every, "--every"),
        paths=paths, alerts=tuple(parse_alert(a) for a in alerts), log=Path(log_file) if log_file else None,
        exit_on_alert=exit_on_alert, ticks=ticks,
        retry_s=parse_duration(retry_after, "--retry-after") if retry_after else None,
        markets=parse_market_overrides(markets), client=client_options(**client_kw),
        max_price_age_s=parse_duration(max_price_age, "--max-price-age"))
    watcher = Watcher(cfg, echo=lambda line: click.echo(line))
    code = watcher.run()
    if code:
        sys.exit(code)  # 3: an alert fired with --exit-on-alert; 130: Ctrl-C
