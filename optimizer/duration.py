"""Durations on the command line: ``90s``, ``10m``, ``25h``, ``2d`` or plain seconds."""

from __future__ import annotations

import math

from .errors import InputError

_UNITS = {"s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(text: str, option: str) -> float:
    """Seconds in ``text``; an :class:`InputError` naming ``option`` when it is not a positive duration."""
    t = str(text).strip().lower()
    num, unit = t, "s"
    for u in sorted(_UNITS, key=len, reverse=True):
        if t.endswith(u):
            num, unit = t[: -len(u)].strip(), u
            break
    try:
        value = float(num) * _UNITS[unit]
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        raise InputError(f"'{text}' is not a duration (e.g. 90s, 10m, 25h, 2d)", field=option)
    return value
