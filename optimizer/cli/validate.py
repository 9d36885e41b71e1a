"""``cascade validate``: a candidate parameter set against bounds and invariants."""

from __future__ import annotations

import click

from ._app import cli
from ._common import parse_overrides


@cli.command("validate")
@click.argument("adapter")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Parameter override, e.g. WETH.ltv_bps=7900.")
@click.option("--snapshot", type=click.Path(dir_okay=False), help="Read this snapshot file instead of data/.")
def validate_cmd(adapter: str, sets: tuple[str, ...], snapshot: str | None) -> None:
    """Check a candidate parameter set against the adapter's bounds and invariants."""
    from ..snapshots import load_adapter

    overrides = parse_overrides(sets)
    base = load_adapter(adapter, snapshot)
    base.with_params(overrides)
    for key, value in overrides.items():
        cur = base.schema().spec(key).current
        click.echo(f"{key}: {cur:g} -> {value:g} ({value - cur:+g} {base.schema().spec(key).unit})")
    click.echo(f"ok: candidate for {adapter} satisfies every bound and invariant")


