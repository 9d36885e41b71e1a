"""Options shared by the commands that read the chain (``fetch``, ``watch``)."""

from __future__ import annotations

import click

RPC_ENV = "CASCADE_RPC_URL"


def rpc_options(f):
    """``--rpc`` (or $CASCADE_RPC_URL) and the transport knobs: timeout, retries, concurrency, batching."""
    for opt in reversed((
        click.option("--rpc", envvar=RPC_ENV, show_envvar=True, metavar="URL",
                     help="JSON-RPC endpoint (http/https). Prefer the environment variable: the URL usually "
                          "holds an API key. Never printed or written."),
        click.option("--timeout", "timeout_s", type=click.FloatRange(min=0.01), default=15.0, show_default=True,
                     help="Seconds per JSON-RPC request."),
        click.option("--retries", type=click.IntRange(min=0, max=20), default=4, show_default=True,
                     help="Retries of a request on transient errors (connection, timeout, HTTP 429/5xx)."),
        click.option("--retry-backoff", "backoff_s", type=click.FloatRange(min=0.0), default=0.5, show_default=True,
                     help="First retry delay in seconds; doubles each retry (a 429's Retry-After wins)."),
        click.option("--concurrency", type=click.IntRange(min=1, max=64), default=4, show_default=True,
                     help="Requests in flight at once."),
        click.option("--batch-size", type=click.IntRange(min=1, max=1000), default=100, show_default=True,
                     help="Calls per Multicall3 aggregate3 request."),
        click.option("--no-multicall", is_flag=True, help="Send every call on its own (no Multicall3)."),
    )):
        f = opt(f)
    return f


def client_options(*, timeout_s: float, retries: int, backoff_s: float, concurrency: int, batch_size: int,
                   no_multicall: bool):
    from ..chain import ClientOptions

    return ClientOptions(timeout_s=timeout_s, retries=retries, backoff_s=backoff_s, concurrency=concurrency,
                         batch_size=batch_size, multicall=not no_multicall)
