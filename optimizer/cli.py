"""The ``cascade`` command line.

Every bad input ends in one line on stderr (``cascade: error: <file>: <field>: <rule>``) and exit
code 2, never a traceback.
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence

import click

from protocols import ADAPTERS, InvalidParameters, SnapshotError

from .errors import InputError

EXIT_BAD_INPUT = 2


def parse_overrides(items: Sequence[str], option: str = "--set") -> dict[str, float]:
    """``["WETH.ltv_bps=7900", ...]`` → ``{"WETH.ltv_bps": 7900.0}``."""
    out: dict[str, float] = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise InputError(f"expected KEY=VALUE, got '{item}'", field=option)
        try:
            out[key.strip()] = float(raw)
        except ValueError:
            raise InputError(f"value of '{key.strip()}' is not a number: '{raw}'", field=option) from None
    return out


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cascade-risk", prog_name="cascade")
def cli() -> None:
    """cascade: liquidation-cascade risk and parameter optimisation for DeFi lending and perps."""


@cli.command("protocols")
@click.argument("adapter", required=False)
@click.option("--asset", "assets", multiple=True, help="Only parameters of this asset/ilk (repeatable).")
@click.option("--snapshot", type=click.Path(dir_okay=False), help="Read this snapshot file instead of data/.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def protocols_cmd(adapter: str | None, assets: tuple[str, ...], snapshot: str | None, as_json: bool) -> None:
    """List the adapters with their tunable parameters and current values."""
    from .snapshots import load_adapter

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
        click.echo(json.dumps({"adapters": report}, indent=1, default=_json_default))
        return
    from .report_text import render_protocols

    render_protocols(report)


@cli.command("validate")
@click.argument("adapter")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE", help="Parameter override, e.g. WETH.ltv_bps=7900.")
@click.option("--snapshot", type=click.Path(dir_okay=False), help="Read this snapshot file instead of data/.")
def validate_cmd(adapter: str, sets: tuple[str, ...], snapshot: str | None) -> None:
    """Check a candidate parameter set against the adapter's bounds and invariants."""
    from .snapshots import load_adapter

    overrides = parse_overrides(sets)
    base = load_adapter(adapter, snapshot)
    base.with_params(overrides)
    for key, value in overrides.items():
        cur = base.schema().spec(key).current
        click.echo(f"{key}: {cur:g} -> {value:g} ({value - cur:+g} {base.schema().spec(key).unit})")
    click.echo(f"ok: candidate for {adapter} satisfies every bound and invariant")


def split_protocol_overrides(sets: Sequence[str], protocols: Sequence[str]) -> dict[str, dict[str, float]]:
    """``--set [ADAPTER:]KEY=VALUE``: the adapter prefix is needed only with several protocols."""
    out: dict[str, dict[str, float]] = {}
    for item in sets:
        head, sep, _ = item.partition("=")
        adapter, colon, key = head.partition(":")
        if not colon:
            if len(protocols) != 1:
                raise InputError(f"'{item}': name the protocol as ADAPTER:KEY=VALUE (scenario has "
                                 f"{', '.join(protocols)})", field="--set")
            adapter, key = protocols[0], head
        if adapter not in protocols:
            raise InputError(f"'{item}': no protocol '{adapter}' in the scenario ({', '.join(protocols)})",
                             field="--set")
        out.setdefault(adapter, {}).update(parse_overrides([f"{key}={item[len(head) + 1:]}" if sep else key]))
    return out


@cli.command("simulate")
@click.argument("scenario", type=click.Path(dir_okay=False))
@click.option("--paths", type=click.IntRange(min=1), help="Monte Carlo paths (default: the scenario's).")
@click.option("--seed", type=click.IntRange(min=0), help="Seed (default: the scenario's).")
@click.option("--set", "sets", multiple=True, metavar="[ADAPTER:]KEY=VALUE",
              help="Override one protocol parameter, e.g. --set WETH.liquidation_threshold_bps=8200 "
                   "(prefix with the adapter, aave_v3:WETH..., when the scenario has several protocols). "
                   "Keys as listed by `cascade protocols`.")
@click.option("--engine", type=click.Choice(["auto", "kernel", "reference"]), default="auto", show_default=True,
              help="auto = fast kernel when it supports the scenario, else the reference engine.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@click.option("--events", "events_file", type=click.Path(dir_okay=False),
              help="Write one CSV row per liquidation to this file.")
@click.option("--accounts", "accounts_file", type=click.Path(dir_okay=False),
              help="Write each account's probability of liquidation within the horizon to this CSV.")
@click.option("--no-analyses", is_flag=True, help="Skip the critical-drop search and the liquidation map.")
def simulate_cmd(scenario: str, paths: int | None, seed: int | None, sets: tuple[str, ...], engine: str,
                 as_json: bool, events_file: str | None, accounts_file: str | None, no_analyses: bool) -> None:
    """Risk metrics of one parameter set on one scenario (Monte Carlo liquidation cascade).

    SCENARIO is a TOML file (see docs/scenario_format.md) or the name of a bundled scenario,
    e.g. aave_v3_core_24h_jumps.
    """
    from .engine import evaluate, prepare
    from .io import write_csv
    from .scenario.config import load_scenario

    sc = load_scenario(resolve_scenario(scenario)).with_overrides(paths=paths, seed=seed)
    overrides = split_protocol_overrides(sets, [p.adapter for p in sc.protocols])
    with _progress(sc.paths, enabled=not as_json or sys.stderr.isatty()) as tick:
        import time as _time

        t0 = _time.perf_counter()
        prepared = prepare(sc)
        res = evaluate(prepared, overrides, engine=engine, events=events_file is not None,
                       analyses=not no_analyses, progress=tick, batches=10 if sc.paths >= 50 else 1)
        res.elapsed_s = _time.perf_counter() - t0
    out = res.to_json()
    if events_file:
        from .engine.reference import EVENT_COLUMNS

        cols = ["path", "step", "timestamp", "protocol", "account", *EVENT_COLUMNS[4:]]
        write_csv(events_file, cols, res.event_rows())
    if accounts_file:
        write_csv(accounts_file, ["protocol", "account", "p_liquidated", "stderr"], res.account_probabilities())
    if as_json:
        click.echo(json.dumps(out, indent=1, default=_json_default))
        return
    from .report_text import render_simulation

    render_simulation(out)


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
              help="Local worker processes on the one study.")
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
    from .search import SearchInterrupted, SearchRequest, optimize

    objs = tuple(o.strip() for o in objectives.split(",")) if objectives else None
    req = SearchRequest(resolve_scenario(scenario), seed=seed, trials=trials, timeout=timeout, storage=storage,
                        study=study_name, workers=workers, sampler=sampler, objectives=objs, per_asset=per_asset,
                        engine=engine)
    bar = _search_progress(enabled=not as_json or sys.stderr.isatty())
    try:
        with bar:
            out = optimize(req, progress=bar.update)
    except SearchInterrupted as e:
        click.echo(f"cascade: {e}", err=True)
        sys.exit(130)
    if as_json:
        click.echo(json.dumps(out, indent=1, default=_json_default))
        return
    from .search.report import render

    render(out)


class _search_progress:
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
        from .search.objective import feasible, is_full

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


def resolve_scenario(name: str) -> str:
    """A path, or the name of a bundled scenario (with or without .toml)."""
    from pathlib import Path

    from .snapshots import data_dir

    p = Path(name)
    if p.exists() or (p.suffix == ".toml" and p.parent != Path(".")):
        return name
    bundled = data_dir() / "scenarios" / (name if name.endswith(".toml") else f"{name}.toml")
    return str(bundled) if bundled.exists() else name


class _progress:
    """A rich progress bar on stderr (silent when disabled or not a terminal)."""

    def __init__(self, total: int, enabled: bool = True) -> None:
        self.total, self.enabled, self.bar = total, enabled and sys.stderr.isatty(), None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

            self.bar = Progress(TextColumn("simulating"), BarColumn(), TextColumn("{task.completed}/{task.total} paths"),
                                TimeElapsedColumn(), console=Console(stderr=True), transient=True)
            self.bar.start()
            self.task = self.bar.add_task("paths", total=self.total)
        return self.tick

    def tick(self, done: int, total: int) -> None:
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total)

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.stop()


@cli.command("demo")
def demo_cmd() -> None:
    """Run the main job on the bundled defaults and print its result."""
    from .demo import run_demo

    run_demo()


def _json_default(x: object) -> object:
    if isinstance(x, float) and math.isnan(x):
        return None
    return str(x)


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: one-line errors, exit code 2 on bad input."""
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="cascade", standalone_mode=False)
    except (InputError, InvalidParameters, SnapshotError) as e:
        _fail(str(e))
    except click.exceptions.NoSuchOption as e:
        _fail(e.format_message())
    except click.UsageError as e:
        _fail(e.format_message().replace("\n", " "))
    except click.exceptions.Abort:
        _fail("aborted", code=130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        _fail(e.format_message().replace("\n", " "))
    except KeyboardInterrupt:
        _fail("interrupted; finished work is saved", code=130)
    except BrokenPipeError:
        sys.exit(0)


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    click.echo(f"cascade: error: {message}", err=True)
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    main()
