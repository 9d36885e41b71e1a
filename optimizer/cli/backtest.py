"""``cascade backtest``: a historical replay beside a record of real liquidations, with a report."""

from __future__ import annotations

import time

import click

from ._app import cli
from ._common import resolve_scenario
from ._reporting import out_dir_for


@cli.command("backtest")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--actual", type=click.Path(dir_okay=False),
              help="Events CSV of the real liquidations (format: docs/backtest.md); default: the scenario's "
                   "[backtest] actual.")
@click.option("--replicas", type=click.IntRange(min=1, max=256),
              help="Book redraws for the Monte Carlo error (default: the scenario's [backtest] replicas, else 1).")
@click.option("--engine", type=click.Choice(["auto", "kernel", "reference"]), default="auto", show_default=True)
@click.option("--out", type=click.Path(file_okay=False),
              help="Report folder (default reports/<date>_backtest-<scenario>/).")
@click.option("--json", "as_json", is_flag=True, help="Print the report's numbers as JSON (stdout).")
def backtest_cmd(scenario: str, actual: str | None, replicas: int | None, engine: str, out: str | None,
                 as_json: bool) -> None:
    """Replay SCENARIO and compare its liquidations with real ones, per hour and in total.

    Count, collateral seized, debt repaid and bad debt per bin and in total, the timing of the first and
    largest waves, and the relative error of each (simulated: mean ± standard error over the book
    replicas). Writes DIR/report.md, backtest.png, result.json and manifest.json.
    """
    from ..backtest.report import write_backtest_report
    from ..backtest.run import run_backtest
    from ..report.manifest import build_manifest
    from ..report.writer import dumps
    from ..scenario.config import load_scenario

    t0 = time.perf_counter()
    sc = load_scenario(resolve_scenario(scenario))
    out_dir = out_dir_for(out, f"backtest-{sc.name}")
    res = run_backtest(sc, actual, replicas=replicas, engine=engine)
    manifest = build_manifest(kind="backtest", scenarios=[sc], extra_files=[res.actual_file], seed=sc.seed,
                              paths=sc.paths, engine=res.engine, elapsed_s=time.perf_counter() - t0,
                              extra={"replicas": res.replicas})
    write_backtest_report(out_dir, res, manifest)
    data = res.to_json()
    click.echo(f"backtest report written to {out_dir}", err=as_json)
    if as_json:
        click.echo(dumps(data), nl=False)
        return
    for m, d in data["totals"].items():
        rel = d["relative_error"]
        se = d["simulated_stderr"]
        click.echo(f"  {m:<22} simulated {d['simulated']:>16,.2f}" + (f" ± {se:,.2f}" if se is not None else "")
                   + f"   actual {d['actual']:>16,.2f}   "
                   + ("not in the record" if not d["documented"] else
                      "rel. error n/a" if rel is None else f"rel. error {rel * 100:+.1f} %"))
