"""The bundled default stress of a proposal (``data/proposals/defaults.toml``): scenario and replays."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass

from ..errors import InputError
from ..snapshots import data_dir

DEFAULTS_FILE = "proposals/defaults.toml"


@dataclass(frozen=True)
class StressChoice:
    scenario: str  # bundled scenario name (or the path the user gave)
    replays: tuple[str, ...]
    why: str
    chosen_by: str  # "--scenario", "the proposal file", "default for <protocol> and <targets>"


def _entries() -> list[dict]:
    path = data_dir() / DEFAULTS_FILE
    from ..io import read_text

    try:
        data = tomllib.loads(read_text(path))
    except tomllib.TOMLDecodeError as e:  # a broken bundled file is a bug, but say where
        raise InputError(f"malformed TOML: {e}", file=str(path)) from None
    return list(data.get("stress", []))


def default_stress(adapter: str, targets: set[str]) -> StressChoice:
    """The first entry of the defaults file for ``adapter`` whose targets meet ``targets``."""
    for e in _entries():
        if e.get("protocol") != adapter:
            continue
        want = set(e.get("targets", []))
        if want and not (want & targets):
            continue
        why = e.get("why", "")
        how = f"default for {adapter}" + (f" ({', '.join(sorted(want & targets))})" if want else "")
        return StressChoice(e["scenario"], tuple(e.get("replays", [])), why, how)
    raise InputError(f"no bundled default stress for protocol '{adapter}'; pass --scenario", field="--scenario")


def replays_for(adapter: str) -> tuple[str, ...]:
    """The replays the defaults file lists for any entry of ``adapter`` (used with an explicit --scenario)."""
    for e in _entries():
        if e.get("protocol") == adapter and e.get("replays"):
            return tuple(e["replays"])
    return ()
