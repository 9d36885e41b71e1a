"""Helpers shared by the commands: ``--set`` parsing, bundled scenario names, progress bars, JSON."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Sequence

from ..checks import check_engine, check_overrides  # noqa: F401 - the commands' up-front checks
from ..errors import InputError


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


def split_protocol_overrides(sets: Sequence[str], protocols: Sequence[str]) -> dict[str, dict[str, float]]:
    """``--set [ID:]KEY=VALUE``: the protocol id (default: the adapter name) is needed only with several
    protocols; ``protocols`` are the scenario's ids."""
    out: dict[str, dict[str, float]] = {}
    for item in sets:
        head, sep, _ = item.partition("=")
        adapter, colon, key = head.partition(":")
        if not colon:
            if len(protocols) != 1:
                raise InputError(f"'{item}': name the protocol as ID:KEY=VALUE (scenario has "
                                 f"{', '.join(protocols)})", field="--set")
            adapter, key = protocols[0], head
        if adapter not in protocols:
            raise InputError(f"'{item}': no protocol '{adapter}' in the scenario ({', '.join(protocols)})",
                             field="--set")
        out.setdefault(adapter, {}).update(parse_overrides([f"{key}={item[len(head) + 1:]}" if sep else key]))
    return out


def resolve_scenario(name: str) -> str:
    """A path, or the name of a bundled scenario (with or without .toml)."""
    from pathlib import Path

    from ..snapshots import data_dir

    p = Path(name)
    if p.exists() or (p.suffix == ".toml" and p.parent != Path(".")):
        return name
    bundled = data_dir() / "scenarios" / (name if name.endswith(".toml") else f"{name}.toml")
    return str(bundled) if bundled.exists() else name


class PathProgress:
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


def json_default(x: object) -> object:
    if isinstance(x, float) and math.isnan(x):
        return None
    if hasattr(x, "item") and callable(x.item):  # numpy scalars
        return _finite(x.item())
    return str(x)


def _finite(x: object) -> object:
    """``x`` with every NaN or infinite float replaced by None (strict JSON has neither)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, dict):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def dumps_json(obj: object) -> str:
    """The ``--json`` output: strict JSON (a NaN or an infinity, such as an infinitely deep market's
    liquidity, is written as null), one space indent."""
    return json.dumps(_finite(obj), indent=1, default=json_default, allow_nan=False)


