"""The ``cascade`` command line: one module per command, registered on one click group.

``main`` is the console entry point (``cascade`` / ``python -m optimizer``).
"""

from . import backtest, compare, demo, fetch, optimize, proposal, protocols, report, simulate, validate, watch  # noqa: F401 - register the commands
from ._app import EXIT_BAD_INPUT, cli, main
from ._common import parse_overrides, resolve_scenario, split_protocol_overrides

__all__ = ["EXIT_BAD_INPUT", "cli", "main", "parse_overrides", "resolve_scenario", "split_protocol_overrides"]
