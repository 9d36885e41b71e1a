"""The ``cascade`` console script: signals are handled from the first instant, then the CLI is imported.

Until the command line is imported (numpy, click, ...) nothing has started, so SIGINT or SIGTERM
then just ends the process with exit code 130 and one line, instead of a traceback from inside an
import. :func:`optimizer.cli.main` then installs the real handling (``KeyboardInterrupt`` for both).
"""

from __future__ import annotations

import os
import signal


def _early(signum, frame) -> None:
    os.write(2, b"cascade: interrupted\n")
    os._exit(130)


def main() -> None:
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _early)
    from .cli import main as cli_main

    try:
        cli_main()
    except KeyboardInterrupt:  # a signal between the command's own handling and here: the command has ended
        _ignore_late_signals()
        os.write(2, b"cascade: interrupted\n")
        raise SystemExit(130) from None
    finally:
        _ignore_late_signals()


def _ignore_late_signals() -> None:
    """The command is over (output written, files closed): a signal while the interpreter shuts down (a few
    tenths of a second of module teardown) must not turn a finished run into a death by signal (exit -2)."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, signal.SIG_IGN)


def worker(*args) -> None:
    """Entry point of a ``cascade optimize --workers N`` process: the same early handling, then the worker."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _early_quiet)
    from .search.runner import _worker_main

    _worker_main(*args)


def _early_quiet(signum, frame) -> None:
    os._exit(130)  # the parent reports the interruption
