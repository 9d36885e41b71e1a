"""``cascade optimize``: the optuna search of the scenario's free parameters."""

from __future__ import annotations

import sys

import click

from ._app import cli
from ._common import dumps_json, resolve_scenario


@cli.command("optimize")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--trials", type=click.IntRange(min=1),
              help="Finished trials the study should hold (complete or pruned; default: [optimize] trials, "
                   "grid: the whole grid). Running the command again continues the study up to this total.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), help="Stop starting trials after S seconds.")
@click.option("--storage", metavar="URL|PATH",
              help="Study storage: an RDB URL (postgresql+psycopg://..., sqlite:///...) or a journal file "
                   "(default runs/<study>.journal in the current directory).")
@click.option("--study", "study_name", metavar="NAME", help="Study name (default: from the scenario name).")
@click.option("--workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="Local worker processes on the one study. One worker is the reproducible reference (same "
                   "seed, same trials, same answer); with several, each trial is reproducible but which ones "
                   "are tried depends on timing, so the best set may differ: confirm it with --workers 1.")
@click.option("--sampler", type=click.Choice(["tpe", "cmaes", "nsga2", "grid"]),
              help="Default: tpe (one objective), nsga2 (two).")
@click.option("--objectives", metavar="efficiency[,RISK]",
              help="efficiency alone (under the risk budget), or efficiency,es_99 (var_99, var_95, mean) for "
                   "the Pareto front.")
@click.option("--per-asset", is_flag=True, default=None,
              help="Tune each asset's parameters in turn, then check all changes together.")
@click.option("--seed", type=click.IntRange(min=0), help="Seed (default: the scenario's).")
@click.option("--engine", type=click.Choice(["auto", "kernel", "reference"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")
def optimize_cmd(scenario: str, trials: int | None, timeout: float | None, storage: str | None,
                 study_name: str | None, workers: int, sampler: str | None, objectives: str | None,
                 per_asset: bool | None, seed: int | None, engine: str, as_json: bool) -> None:
    """Search the safest parameters that still let users borrow (optuna, resumable, parallel).

    Maximises capital efficiency subject to a chance constraint on bad debt (the upper end of a 95 %
    CI of VaR 99 / ES 99 / mean bad debt as a share of debt, within the scenario's budget), over the
    free parameters of the scenario's [optimize] table, inside governance step limits. See
    docs/scenario_format.md.
    """
    from ..search import SearchInterrupted, SearchRequest, optimize

    objs = tuple(o.strip() for o in objectives.split(",")) if objectives else None
    req = SearchRequest(resolve_scenario(scenario), seed=seed, trials=trials, timeout=timeout, storage=storage,
                        study=study_name, workers=workers, sampler=sampler, objectives=objs, per_asset=per_asset,
                        engine=engine)
    bar = SearchProgress(enabled=not as_json or sys.stderr.isatty())
    try:
        with bar:
            out = optimize(req, progress=bar.update)
    except SearchInterrupted as e:
        click.echo(f"cascade: {e}", err=True)
        sys.exit(130)
    if as_json:
        click.echo(dumps_json(out))
        return
    from ..search.report import render

    render(out)


class SearchProgress:
    """Trials done / target and the best feasible efficiency so far (stderr, terminals only)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled, self.bar, self.task = enabled and sys.stderr.isatty(), None, None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                TextColumn("{task.completed}/{task.total} trials"), TextColumn("{task.fields[best]}"),
                                TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self.bar.start()
        return self

    def update(self, study, target: int, name: str) -> None:
        if self.bar is None:
            return
        from ..search.objective import feasible, is_full

        trials = study.get_trials(deepcopy=False)
        done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in trials)
        vals = [t.values[0] for t in trials if is_full(t) and feasible(t)]
        best = f"best feasible efficiency {max(vals):.4%}" if vals else "no feasible trial yet"
        if self.task is None or self.bar.tasks[-1].description != name:
            self.task = self.bar.add_task(name, total=target, best=best)
        self.bar.update(self.task, completed=done, total=target, best=best)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


