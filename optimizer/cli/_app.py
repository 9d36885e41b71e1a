"""The ``cascade`` click group and the console entry point.

Exit codes: 0 ok (also when the reader of the output closes the pipe, ``cascade protocols | head -1``),
2 bad input, 3 no answer within budget (optimize), 130 interrupted (SIGINT or SIGTERM; finished work is
kept). Every bad input ends in one line on stderr (``cascade: error: <file>: <field>: <rule>``; URLs
and credentials redacted), never a traceback; ``cascade`` with no arguments prints the help (exit 2). Commands live in one module each (``optimizer/cli/<command>.py``) and
register themselves on :data:`cli`.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Sequence

import click

from protocols import InvalidParameters, SnapshotError

from ..errors import InputError

EXIT_BAD_INPUT = 2


class _Interrupted(Exception):
    """A ``KeyboardInterrupt`` (SIGINT/SIGTERM) out of a command, carried past click (which would print a blank
    line and turn it into ``Abort``) to :func:`main`."""


class _Group(click.Group):
    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise _Interrupted from None


def _interrupt_in_chain(e: BaseException) -> bool:
    """True when ``e`` arose while handling an interrupt (a library that turns a ``KeyboardInterrupt`` in its
    own code into another error, e.g. a compiler cut mid-way): the user interrupted, nothing failed."""
    seen = set()
    c: BaseException | None = e
    while c is not None and id(c) not in seen:
        if isinstance(c, KeyboardInterrupt):
            return True
        seen.add(id(c))
        c = c.__cause__ or c.__context__
    return False


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cascade-risk", prog_name="cascade")
def cli() -> None:
    """cascade: liquidation-cascade risk and parameter optimisation for DeFi lending and perps."""


def main(argv: Sequence[str] | None = None) -> None:
    """Console entry point: one-line errors (exit 2), 130 on SIGINT/SIGTERM, 0 on a closed output pipe."""
    from ..interrupts import sigterm_as_interrupt

    sigterm_as_interrupt()
    _broken_pipe_is_an_exception()
    try:
        cli.main(args=list(argv) if argv is not None else None, prog_name="cascade", standalone_mode=False)
        sys.stdout.flush()  # a closed pipe shows up here for buffered output
    except (InputError, InvalidParameters, SnapshotError) as e:
        _fail(str(e))
    except click.exceptions.NoArgsIsHelpError as e:
        click.echo(e.ctx.get_help() if e.ctx is not None else cli.get_help(click.Context(cli)))
        sys.exit(EXIT_BAD_INPUT)
    except click.exceptions.NoSuchOption as e:
        _fail(e.format_message())
    except click.UsageError as e:
        _fail(e.format_message().replace("\n", " "))
    except click.exceptions.Abort:
        _fail("interrupted", code=EXIT_INTERRUPTED)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.ClickException as e:
        _fail(e.format_message().replace("\n", " "))
    except (KeyboardInterrupt, _Interrupted):
        _fail("interrupted; finished work is saved", code=EXIT_INTERRUPTED)
    except BrokenPipeError:
        _stdout_to_devnull()
        sys.exit(0)
    except Exception as e:
        if _interrupt_in_chain(e):
            _fail("interrupted; finished work is saved", code=EXIT_INTERRUPTED)
        raise


EXIT_INTERRUPTED = 130


def _stdout_to_devnull() -> None:
    """After a closed pipe: point stdout at /dev/null so the interpreter's final flush cannot fail."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def _broken_pipe_is_an_exception() -> None:
    """rich turns a closed pipe into ``SystemExit(1)``; make it the BrokenPipeError that exits 0."""
    try:
        from rich.console import Console
    except ImportError:  # pragma: no cover - rich is a dependency
        return

    def on_broken_pipe(self) -> None:
        raise BrokenPipeError

    Console.on_broken_pipe = on_broken_pipe  # type: ignore[method-assign]


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> None:
    from ..redact import redact_text

    with contextlib.suppress(BrokenPipeError):
        click.echo(f"cascade: error: {redact_text(message)}", err=True)
    sys.exit(code)
