"""``cascade protocols``: the adapters, their tunable parameters and invariants."""

from __future__ import annotations

import click

from protocols import ADAPTERS

from ..errors import InputError
from ._app import cli
from ._common import dumps_json


@cli.command("protocols")
@click.argument("adapter", required=False)
@click.option("--asset", "assets", multiple=True, help="Only parameters of this asset/ilk (repeatable).")
@click.option("--snapshot", type=click.Path(dir_okay=False), help="Read this snapshot file instead of data/.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def protocols_cmd(adapter: str | None, assets: tuple[str, ...], snapshot: str | None, as_json: bool) -> None:
    """List the adapters with their tunable parameters and current values."""
    from ..snapshots import load_adapter

    names = [adapter] if adapter else sorted(ADAPTERS)
    if snapshot and not adapter:
        raise InputError("--snapshot needs an ADAPTER argument", field="--snapshot")
    report = []
    for name in names:
        ad = load_adapter(name, snapshot)
        specs = [s for s in ad.schema().specs
                 if not assets or any(s.name.startswith(f"{a}.") for a in assets)]
        report.append({
            "adapter": name,
            "title": ad.title,
            **ad.snapshot_meta,
            "invariants": sorted({inv.rule for inv in ad.schema().invariants}),
            "parameters": [
                {"name": s.name, "unit": s.unit, "current": s.current, "lower": s.lower, "upper": s.upper,
                 "description": s.description, "source": s.source, "as_of": s.as_of}
                for s in specs
            ],
        })
    if as_json:
        click.echo(dumps_json({"adapters": report}))
        return
    from ..report_text import render_protocols

    render_protocols(report)


