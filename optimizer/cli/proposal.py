"""``cascade proposal``: analyse one governance proposal and write a forum-ready report."""

from __future__ import annotations

import sys
import time

import click

from ._app import cli
from ._reporting import finish, out_dir_for, progress_printer

EXIT_OVER_BUDGET = 3


@cli.command("proposal")
@click.argument("proposal", type=click.Path(dir_okay=False))
@click.option("--index", type=click.IntRange(min=0), help="With a file of several proposals: the record (0-based).")
@click.option("--title", "title_part", metavar="TEXT", help="With a file of several proposals: a part of its title.")
@click.option("--scenario", metavar="SCENARIO",
              help="Stress scenario (file or bundled name). Default: the proposal's, else the bundled default "
                   "stress for its protocol and assets (named in the report).")
@click.option("--paths", type=click.IntRange(min=2), help="Monte Carlo paths (default: the scenario's).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed (default: the scenario's).")
@click.option("--engine", type=click.Choice(["auto", "kernel", "reference"]), default="auto", show_default=True)
@click.option("--recommend-trials", type=click.IntRange(min=0), default=24, show_default=True,
              help="Trials of the short search for the optimiser's recommendation (0 = skip).")
@click.option("--recommend-paths", type=click.IntRange(min=2), default=200, show_default=True,
              help="Paths per trial of that search (at most --paths).")
@click.option("--sensitivity-paths", type=click.IntRange(min=2), default=200, show_default=True,
              help="Paths of the one-at-a-time sensitivity runs (at most --paths).")
@click.option("--no-sensitivity", is_flag=True, help="Skip the sensitivity runs.")
@click.option("--no-replays", is_flag=True, help="Skip the historical replays.")
@click.option("--replay", "replays", multiple=True, metavar="SCENARIO", help="Another replay scenario (repeatable).")
@click.option("--out", type=click.Path(file_okay=False), help="Report folder (default reports/<date>_<title>/).")
@click.option("--json", "as_json", is_flag=True, help="Print the report's numbers as JSON (stdout).")
def proposal_cmd(proposal: str, index: int | None, title_part: str | None, scenario: str | None, paths: int | None,
                 seed: int | None, engine: str, recommend_trials: int, recommend_paths: int, sensitivity_paths: int,
                 no_sensitivity: bool, no_replays: bool, replays: tuple[str, ...], out: str | None,
                 as_json: bool) -> None:
    """Analyse a governance proposal: current vs proposed on the same stress paths, with a report.

    PROPOSAL is a TOML or JSON file in the project's format (docs/proposal_format.md) or a governance
    record as collected in governance_proposals_examples.json (one record, or a file of records with
    --index N / --title TEXT). Writes DIR/report.md, its PNG figures, result.json and manifest.json.

    Exit codes: 0 the report is written and the proposed parameters are within the scenario's risk
    budget (or the scenario sets none); 3 the report is written and the proposed parameters break the
    budget (upper end of the 95 % CI of its risk metric above it); 2 bad input (nothing is written).
    """
    from ..proposals import analyse_proposal, load_proposal
    from ..report.manifest import build_manifest

    t0 = time.perf_counter()
    spec = load_proposal(proposal, index=index, title=title_part)
    out_dir = out_dir_for(out, spec.title)
    res = analyse_proposal(spec, scenario, paths=paths, seed=seed, engine=engine, recommend_trials=recommend_trials,
                           recommend_paths=recommend_paths, sensitivity_paths=sensitivity_paths,
                           replays_on=not no_replays, sensitivity_on=not no_sensitivity, extra_replays=replays,
                           progress=progress_printer(not as_json))
    data = res.to_json()
    sc = res.comparison.scenario
    manifest = build_manifest(kind="proposal", scenarios=[sc, *res.extra.get("replay_scenarios", [])],
                              extra_files=[proposal], seed=sc.seed,
                              paths=res.comparison.prepared.n_paths, engine=res.comparison.current.engine,
                              elapsed_s=time.perf_counter() - t0,
                              extra={"proposal": {"title": spec.title, "index": spec.index},
                                     "replays": [r["file"] for r in data["replays"]]})
    finish(data, manifest, out_dir, as_json)
    b = data["proposed"].get("budget")
    if b is not None and not b["feasible"]:
        sys.exit(EXIT_OVER_BUDGET)
