"""``cascade validate``: a candidate parameter set against bounds, invariants and steward step limits."""

from __future__ import annotations

import click

from ._app import cli
from ._common import parse_overrides


@cli.command("validate")
@click.argument("adapter")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Parameter override, e.g. WETH.ltv_bps=7900.")
@click.option("--snapshot", type=click.Path(dir_okay=False), help="Read this snapshot file instead of data/.")
@click.option("--steward-limits/--no-steward-limits", default=True, show_default=True,
              help="Also check each change against the governance step limit per update that `cascade optimize` "
                   "searches within (e.g. ±500 bps for an Aave LTV or LT, ±200 bps for a bonus).")
def validate_cmd(adapter: str, sets: tuple[str, ...], snapshot: str | None, steward_limits: bool) -> None:
    """Check a candidate parameter set against the adapter's bounds and invariants.

    Exit code 0 when the candidate is valid, 2 (one line naming --set, the parameter and the rule) when
    it breaks a bound, an invariant or, unless --no-steward-limits, a steward step limit.
    """
    from protocols import InvalidParameters

    from ..errors import InputError
    from ..snapshots import load_adapter

    overrides = parse_overrides(sets)
    base = load_adapter(adapter, snapshot)
    try:
        base.with_params(overrides)
        specs = {key: base.schema().spec(key) for key in overrides}
    except InvalidParameters as e:
        raise InputError(str(e), field="--set") from None
    if steward_limits:
        from ..scenario.config import OptimizeConfig
        from ..search.space import _limit as steward_limit  # the limits the search enforces, not a copy

        for key, value in overrides.items():
            spec = specs[key]
            lim = steward_limit(OptimizeConfig(), adapter, spec)
            if lim is not None and abs(value - spec.current) > lim.width(spec.current) * (1 + 1e-12):
                raise InputError(f"{key}: {spec.current:g} -> {value:g} ({value - spec.current:+g} {spec.unit}) breaks "
                                 f"the steward step limit {lim.describe(spec.unit)} per update (what `cascade optimize` "
                                 "searches within; --no-steward-limits checks bounds and invariants only)",
                                 field="--set")
    for key, value in overrides.items():
        cur = specs[key].current
        click.echo(f"{key}: {cur:g} -> {value:g} ({value - cur:+g} {specs[key].unit})")
    within = " and the steward step limits" if steward_limits else ""
    click.echo(f"ok: candidate for {adapter} satisfies every bound and invariant{within}")
