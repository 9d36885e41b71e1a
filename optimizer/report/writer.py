"""Writing a report folder atomically: ``report.md``, its PNG figures, ``result.json``, ``manifest.json``.

Everything is written into a hidden temporary folder next to the target and renamed into place in
one step, so a reader (or a crash) never sees a half-written report: either the previous folder or
the complete new one. Files get the user's umask (not the 0600/0700 of ``tempfile``).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path

from ..errors import InputError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def slug(text: str, max_len: int = 60) -> str:
    """``"Update ETH E-Mode (Aave)"`` -> ``update-eth-e-mode-aave``."""
    s = re.sub(r"[^a-z0-9]+", "-", str(text).lower()).strip("-")
    return (s[:max_len].rstrip("-") or "report")


def default_dir(name: str, *, today: dt.date | None = None, cwd: str | Path | None = None) -> Path:
    """``reports/<YYYY-MM-DD>_<slug(name)>`` under the current directory."""
    d = (today or dt.datetime.now(dt.UTC).date()).isoformat()
    return Path(cwd or Path.cwd()) / "reports" / f"{d}_{slug(name)}"


def check_writable(out_dir: str | Path, option: str = "--out") -> Path:
    """Fail early (before any simulation) when the report folder cannot be created."""
    p = Path(out_dir)
    if p.exists() and not p.is_dir():
        raise InputError("exists and is not a folder", file=str(p), field=option)
    parent = p.parent
    probe = parent
    while not probe.exists():
        probe = probe.parent
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"cannot write a report folder here ({probe} is not writable)", file=str(p), field=option)
    return p


def write_report_dir(out_dir: str | Path, files: Mapping[str, bytes | str]) -> Path:
    """Write ``files`` (name -> content) as the folder ``out_dir``, atomically replacing an old one."""
    out = Path(out_dir)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    except OSError as e:
        raise InputError(f"cannot write ({e.strerror})", file=str(out)) from None
    mask = _umask()
    try:
        os.chmod(tmp, 0o777 & ~mask)
        for name, content in files.items():
            if "/" in name or name.startswith("."):
                raise ValueError(f"bad report file name {name!r}")
            path = tmp / name
            data = content.encode() if isinstance(content, str) else content
            with open(path, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(path, 0o666 & ~mask)
        old = None
        if out.exists():
            old = out.parent / f".{out.name}.{os.getpid()}.old"
            os.replace(out, old)
        os.replace(tmp, out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def dumps(obj) -> str:
    """The JSON a report folder stores (stable key order, NaN/inf as null/strings)."""
    import math

    def clean(x):
        if isinstance(x, float):
            if math.isnan(x):
                return None
            if math.isinf(x):
                return "inf" if x > 0 else "-inf"
            return x
        if isinstance(x, Mapping):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if hasattr(x, "item") and callable(x.item):  # numpy scalars
            return clean(x.item())
        return x

    return json.dumps(clean(obj), indent=1, allow_nan=False) + "\n"
