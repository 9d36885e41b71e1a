"""Checks a command runs before any simulation: a ``--set`` candidate, and whether ``--engine`` can run it.

Used by the command line and the search (``cascade optimize --engine kernel``), so a bad choice is one
line naming the option, never a traceback from inside the engine after minutes of work.
"""

from __future__ import annotations

from .errors import InputError


def check_overrides(scenario, overrides: dict[str, dict[str, float]], option: str = "--set") -> None:
    """Refuse a ``--set`` candidate before any simulation, naming the option (not the scenario file).

    The scenario's own ``[protocols.params]`` are checked first (their errors name the scenario).
    """
    from protocols import InvalidParameters

    from .engine.model import scenario_adapter

    for i, pc in enumerate(scenario.protocols):
        over = overrides.get(pc.id)
        if not over:
            continue
        base = scenario_adapter(scenario, i)
        try:
            cur = base.with_params(dict(pc.params)) if pc.params else base
        except InvalidParameters as e:
            raise InputError(str(e), file=scenario.file, field=f"protocols[{i}].params") from None
        try:
            cur.with_params(dict(over))
        except InvalidParameters as e:
            raise InputError(str(e), field=option) from None


def check_engine(prepared, overrides: dict[str, dict[str, float]] | None, engine: str,
                 option: str = "--engine") -> None:
    """``--engine kernel`` on a scenario the kernel cannot run (a venue without a kernel rule, e.g. Maker's
    auctions; flows routed to shared pools): refuse, with the venue's own reason."""
    if engine != "kernel":
        return
    from .engine import bind
    from .engine.simulate import kernel_unsupported_reason

    reason = kernel_unsupported_reason(bind(prepared, overrides or {}))
    if reason:
        raise InputError(f"the kernel engine cannot run this scenario: {reason}; use --engine auto (or reference)",
                         field=option)
