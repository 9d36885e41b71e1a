"""The ``cascade`` click group and the console entry point.

Every bad input ends in one line on stderr (``cascade: error: <file>: <field>: <rule>``) and exit
code 2, never a traceback. Commands live in one module each (``optimizer/cli/<command>.py``) and
register themselves on :data:`cli`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence

import click

from protocols import InvalidParameters, SnapshotError

from ..errors import InputError

EXIT_BAD_INPUT = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cascade-risk", prog_name="cascade")
def cli() -> None:
    """cascade: liquidation-cascade risk and parameter optimisation for DeFi lending and perps."""


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



