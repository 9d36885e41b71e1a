"""Reading parameter snapshots from data/ (the I/O edge for protocols/).

Bundled data ships inside the wheel as ``optimizer/_bundled_data``; in a source checkout the
top-level ``data/`` folder is used. Both have the same layout.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Any

from protocols import ADAPTERS, Adapter, InvalidParameters, SnapshotError

from .errors import InputError

# adapter name -> its bundled snapshot under data/ (each adapter class states its own file)
DEFAULT_SNAPSHOTS: dict[str, str] = {name: cls.bundled_snapshot for name, cls in ADAPTERS.items()
                                     if cls.bundled_snapshot}


def data_dir() -> Path:
    """The bundled data folder (wheel install first, then the source checkout)."""
    here = Path(__file__).resolve().parent
    for cand in (here / "_bundled_data", here.parent / "data"):
        if (cand / "protocols").is_dir():
            return cand
    raise FileNotFoundError("bundled data folder not found (expected optimizer/_bundled_data or ./data)")


def read_json(path: str | Path) -> Any:
    from .io import read_text

    p = Path(path)
    text = read_text(p)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise InputError(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}", file=str(p)) from None


@lru_cache(maxsize=16)
def _load_cached(path: str) -> Any:
    return read_json(path)


def snapshot_path(protocol: str) -> Path:
    if protocol not in DEFAULT_SNAPSHOTS:
        raise InputError(f"unknown adapter '{protocol}' (known: {', '.join(sorted(ADAPTERS))})", field="protocol")
    return data_dir() / DEFAULT_SNAPSHOTS[protocol]


def load_adapter(protocol: str, snapshot: str | Path | None = None, params: dict[str, float] | None = None) -> Adapter:
    """Build an adapter from its bundled snapshot (or ``snapshot``), with optional overrides.

    Every failure is an :class:`InputError` naming the file and the field.
    """
    if protocol not in ADAPTERS:
        raise InputError(f"unknown adapter '{protocol}' (known: {', '.join(sorted(ADAPTERS))})", field="protocol")
    path = Path(snapshot) if snapshot is not None else snapshot_path(protocol)
    data = _load_cached(str(path)) if snapshot is None else read_json(path)
    if not isinstance(data, dict):
        raise InputError("snapshot must be a JSON object", file=str(path))
    try:
        adapter = ADAPTERS[protocol](data, params)
    except SnapshotError as e:
        raise InputError(str(e), file=str(path)) from None
    except InvalidParameters as e:
        raise InputError(str(e), file=str(path) if params is None else None) from None
    return adapter
