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

    cli_main()


def worker(*args) -> None:
    """Entry point of a ``cascade optimize --workers N`` process: the same early handling, then the worker."""
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, _early_quiet)
    from .search.runner import _worker_main

    _worker_main(*args)


def _early_quiet(signum, frame) -> None:
    os._exit(130)  # the parent reports the interruption
