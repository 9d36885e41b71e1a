"""``cascade compare``: current vs a candidate parameter set on the same paths, with a report."""

from __future__ import annotations

import time

import click

from ._app import cli
from ._common import resolve_scenario, split_protocol_overrides
from ._reporting import finish, out_dir_for, progress_printer


@cli.command("compare")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--set", "sets", multiple=True, metavar="[ADAPTER:]KEY=VALUE", required=True,
              help="The candidate: a parameter override (repeatable), keys as `cascade protocols` lists them, "
                   "e.g. --set WETH.liquidation_threshold_bps=8200.")
@click.option("--paths", type=click.IntRange(min=2), help="Monte Carlo paths (default: the scenario's).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed (default: the scenario's).")
@click.option("--engine", type=click.Choice(["auto", "kernel", "reference"]), default="auto", show_default=True)
@click.option("--no-analyses", is_flag=True, help="Skip the critical-drop search and the liquidation map.")
@click.option("--out", type=click.Path(file_okay=False),
              help="Report folder (default reports/<date>_compare-<scenario>/).")
@click.option("--json", "as_json", is_flag=True, help="Print the report's numbers as JSON (stdout).")
def compare_cmd(scenario: str, sets: tuple[str, ...], paths: int | None, seed: int | None, engine: str,
                no_analyses: bool, out: str | None, as_json: bool) -> None:
    """Current vs candidate parameters on the same Monte Carlo paths (common random numbers).

    Every delta is a paired difference over the paths, with its standard error and 95 % CI (not two
    independent intervals). Writes DIR/report.md, PNG figures, result.json and manifest.json.
    """
    from ..compare import compare
    from ..report.manifest import build_manifest
    from ..scenario.config import load_scenario

    t0 = time.perf_counter()
    sc = load_scenario(resolve_scenario(scenario)).with_overrides(paths=paths, seed=seed)
    params = split_protocol_overrides(sets, list(sc.protocol_ids))
    out_dir = out_dir_for(out, f"compare-{sc.name}")
    res = compare(sc, params, engine=engine, analyses=not no_analyses, progress=progress_printer(not as_json),
                  params_field="--set")
    data = res.to_json()
    manifest = build_manifest(kind="comparison", scenarios=[sc], seed=sc.seed, paths=res.prepared.n_paths,
                              engine=res.current.engine, elapsed_s=time.perf_counter() - t0,
                              extra={"candidate": params})
    finish(data, manifest, out_dir, as_json)
