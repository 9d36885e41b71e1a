"""``cascade simulate``: the Monte Carlo liquidation cascade of one parameter set."""

from __future__ import annotations

import sys

import click

from ._app import cli
from ._common import (
    PathProgress,
    check_engine,
    check_overrides,
    dumps_json,
    resolve_scenario,
    split_protocol_overrides,
)


@cli.command("simulate")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--paths", type=click.IntRange(min=1), help="Monte Carlo paths (default: the scenario's).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed (default: the scenario's).")
@click.option("--set", "sets", multiple=True, metavar="[ID:]KEY=VALUE",
              help="Override one protocol parameter, e.g. --set WETH.liquidation_threshold_bps=8200 "
                   "(prefix with the protocol id, aave_v3:WETH..., when the scenario has several protocols; "
                   "the id defaults to the adapter name). "
                   "Keys as listed by `cascade protocols`.")
@click.option("--engine", type=click.Choice(["auto", "kernel", "reference"]), default="auto", show_default=True,
              help="auto = fast kernel when it supports the scenario, else the reference engine.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--events", "events_file", type=click.Path(dir_okay=False),
              help="Write one CSV row per liquidation to this file (streamed to disk while the paths run; "
                   "refused early when it is projected not to fit on its disk).")
@click.option("--accounts", "accounts_file", type=click.Path(dir_okay=False),
              help="Write each account's probability of liquidation within the horizon to this CSV.")
@click.option("--no-analyses", is_flag=True, help="Skip the critical-drop search and the liquidation map.")
def simulate_cmd(scenario: str, paths: int | None, seed: int | None, sets: tuple[str, ...], engine: str,
                 as_json: bool, events_file: str | None, accounts_file: str | None, no_analyses: bool) -> None:
    """Risk metrics of one parameter set on one scenario (Monte Carlo liquidation cascade).

    SCENARIO is a TOML file (see docs/scenario_format.md) or the name of a bundled scenario,
    e.g. aave_v3_core_24h_jumps.
    """
    from ..io import check_writable, write_csv
    from ..scenario.config import load_scenario

    for path, option in ((events_file, "--events"), (accounts_file, "--accounts")):
        if path:
            check_writable(path, option)  # before the simulation, not after it
    sc = load_scenario(resolve_scenario(scenario)).with_overrides(paths=paths, seed=seed)
    overrides = split_protocol_overrides(sets, list(sc.protocol_ids))
    check_overrides(sc, overrides)
    from ..engine import evaluate, prepare  # numba: imported once the inputs are known to be good
    with PathProgress(sc.paths, enabled=not as_json or sys.stderr.isatty()) as tick:
        import time as _time

        t0 = _time.perf_counter()
        prepared = prepare(sc)
        check_engine(prepared, overrides, engine)
        if events_file:
            from ..events import simulate_with_events

            res = simulate_with_events(prepared, overrides, events_path=events_file, engine=engine,
                                       analyses=not no_analyses, progress=tick)
        else:
            res = evaluate(prepared, overrides, engine=engine, analyses=not no_analyses, progress=tick,
                           batches=10 if sc.paths >= 50 else 1)
        res.elapsed_s = _time.perf_counter() - t0
    out = res.to_json()
    if accounts_file:
        write_csv(accounts_file, ["protocol", "account", "p_liquidated", "stderr"], res.account_probabilities())
    if as_json:
        click.echo(dumps_json(out))
        return
    from ..report_text import render_simulation

    render_simulation(out)


