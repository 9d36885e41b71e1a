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
@click.option("--paths", type=click.IntRange(min=1),
              help="Monte Carlo paths per candidate, in sample and out of sample (default: the scenario's). "
                   "The default study name then ends in -<N>paths.")
@click.option("--seed", type=click.IntRange(min=0), help="Seed (default: the scenario's).")
@click.option("--engine", type=click.Choice(["auto", "kernel", "reference"]), default="auto", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON (SearchResult.to_json()).")
def optimize_cmd(scenario: str, trials: int | None, timeout: float | None, storage: str | None,
                 study_name: str | None, workers: int, sampler: str | None, objectives: str | None,
                 per_asset: bool | None, paths: int | None, seed: int | None, engine: str, as_json: bool) -> None:
    """Search the parameter set a risk steward can propose (optuna, resumable, parallel).

    Today's set is simulated first, on the search paths and on fresh ones (out of sample). If it is within
    budget on both, the search looks for more capital efficiency (borrow capacity / collateral); if it breaks
    the budget on either, for the smallest change that brings it within budget and what that costs in
    borrowing power. The budget is a chance constraint on bad debt: the upper end of a 95 % CI of VaR 99 /
    ES 99 / mean bad debt as a share of debt (optionally also the mean liquidation penalty borrowers pay).
    Free parameters, steward step limits and the budget come from the scenario's [optimize] table
    (docs/scenario_format.md). Out of sample decides: the recommendation is the best set that holds on
    fresh paths. Parameters that do not move the objective stay at today's values.

    \b
    Exit codes:
      0  a recommendation within budget in sample and out of sample (possibly "keep today's set")
      3  no set within budget, or every candidate fails out of sample: nothing to propose
      2  bad input (a one-line error naming the file or option, the field and the rule)
      130 interrupted (finished trials are kept; the same command resumes)
    """
    from ..search import SearchInterrupted, SearchRequest, optimize

    objs = tuple(o.strip() for o in objectives.split(",")) if objectives else None
    req = SearchRequest(resolve_scenario(scenario), seed=seed, trials=trials, timeout=timeout, storage=storage,
                        study=study_name, workers=workers, sampler=sampler, objectives=objs, per_asset=per_asset,
                        engine=engine, paths=paths)
    bar = SearchProgress()
    try:
        with bar:
            result = optimize(req, progress=bar.update, log=bar.log)
    except SearchInterrupted as e:
        click.echo(f"cascade: {e}", err=True)
        sys.exit(130)
    try:
        if as_json:
            click.echo(dumps_json(result.to_json()))
        else:
            from ..search.report import render

            render(result.to_json())
    except KeyboardInterrupt:  # the search and its choice are done and stored: only the printing was cut
        click.echo("cascade: interrupted while printing the result: the search finished and its result is saved "
                   "in the study; run the same command again to show it", err=True)
        sys.exit(130)
    sys.exit(result.exit_code)


class SearchProgress:
    """Progress on stderr: a bar on a terminal; otherwise one plain line per finished trial (logs of nohup
    or CI runs), and the phases of the command (today's set, out of sample, the choice)."""

    def __init__(self, tty: bool | None = None) -> None:
        self.tty = sys.stderr.isatty() if tty is None else tty
        self.bar, self.task = None, None
        self.seen: dict[str, int] = {}

    def log(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.console.print(f"[dim]{msg}[/dim]")
        else:
            click.echo(f"cascade optimize: {msg}", err=True)

    def __enter__(self):
        if self.tty:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("{task.description}"), BarColumn(),
                                TextColumn("{task.completed}/{task.total} trials"), TextColumn("{task.fields[best]}"),
                                TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self.bar.start()
        return self

    def update(self, study, target: int, name: str) -> None:
        from ..search.objective import feasible, is_full

        trials = study.get_trials(deepcopy=False)
        finished = [t for t in trials if t.state.name in ("COMPLETE", "PRUNED")]
        ok = [t for t in trials if is_full(t) and feasible(t)]
        top = max(ok, key=lambda t: t.values[0]) if ok else None
        best = (f"best within budget: efficiency {_efficiency(top)} (trial {top.number})"
                if top else "none within budget yet")
        if self.bar is not None:
            if self.task is None or self.bar.tasks[-1].description != name:
                self.task = self.bar.add_task(name, total=target, best=best)
            self.bar.update(self.task, completed=len(finished), total=target, best=best)
            return
        if name not in self.seen:  # the first call: trials finished by an earlier run are not news
            self.seen[name] = max((t.number for t in finished), default=-1)
            if finished:
                click.echo(f"cascade optimize: {name}: resuming with {len(finished)}/{target} trials finished; {best}",
                           err=True)
            return
        last = self.seen[name]
        for t in sorted(finished, key=lambda t: t.number):
            if t.number > last:
                click.echo(f"cascade optimize: {name}: {trial_line(t, len(finished), target)}; {best}", err=True)
        if finished:
            self.seen[name] = max(last, *(t.number for t in finished))

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


def _efficiency(t) -> str:
    """A trial's capital efficiency (a share of collateral, or the leverage offered on a perp book)."""
    x = float(t.user_attrs.get("efficiency", 0.0))
    return f"{x:.4f}×" if t.user_attrs.get("efficiency_unit") == "leverage" else f"{x:.4%}"


def trial_line(t, done: int, target: int) -> str:
    """One finished trial in plain words: ``trial 7 (12/100): within budget, efficiency 78.21 %, ...``."""
    ua = t.user_attrs
    parts = [f"trial {t.number} ({done}/{target}): {ua.get('outcome') or t.state.name.lower()}"]
    if ua.get("efficiency") is not None:
        parts.append(f"efficiency {_efficiency(t)}")
    if ua.get("risk_value") is not None:
        parts.append(f"risk {ua['risk_value']:.4%} [{ua['risk_ci95_low']:.4%}, {ua['risk_ci95_high']:.4%}] "
                     f"on {ua.get('paths')} paths")
    if ua.get("infeasible"):
        parts.append(str(ua["infeasible"])[:160])
    return ", ".join(parts)


