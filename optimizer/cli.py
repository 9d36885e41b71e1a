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
