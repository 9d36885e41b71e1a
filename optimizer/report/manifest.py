"""The reproducibility manifest of a report: what ran, on what, with which code and data.

``manifest.json`` holds the package version, the git commit when known, the command line (redacted:
no secret and no home path), the scenario, the hashes of every input file (scenario, snapshots, price /
gas / liquidity / book files, the proposal), the seed, paths and engine, and the elapsed time. Two runs
with the same inputs give the same manifest apart from ``created_utc`` and ``elapsed_s``.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..redact import redact_text

VOLATILE_KEYS = ("created_utc", "elapsed_s")


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cascade-risk")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
        return "0+unknown"


def git_commit() -> str | None:
    """The commit the code comes from, when known: ``CASCADE_GIT_COMMIT`` (set by ``make reports``), or
    the checkout the package is imported from. An installed wheel does not know its commit: None."""
    env = os.environ.get("CASCADE_GIT_COMMIT", "").strip()
    if env:
        return env[:40]
    src = Path(__file__).resolve().parents[2]
    if not (src / ".git").exists() or "site-packages" in str(src):
        return None
    try:
        out = subprocess.run(["git", "-C", str(src), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def sha256_file(path: str | Path) -> str | None:
    try:
        h = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                h.update(chunk)
        return h.hexdigest()
    except OSError:
        return None


def scrub(text: str, secrets: Sequence[str] = ()) -> str:
    """Free text safe to write: URLs redacted, the home folder shown as ``~``, given secrets masked."""
    out = redact_text(str(text), tuple(secrets))
    home = str(Path.home())
    if home not in ("", "/"):
        out = out.replace(home, "~")
    return out


def command_line(argv: Sequence[str] | None = None) -> str:
    """The command as typed (``cascade proposal ...``), redacted."""
    args = list(sys.argv[1:] if argv is None else argv)
    return scrub(" ".join(["cascade", *(shlex.quote(a) for a in args)]))


def scenario_files(scenario) -> list[Path]:
    """Every input file a scenario reads: the TOML, snapshots (explicit or bundled), CSV books, price,
    gas and liquidity histories named anywhere in it."""
    from ..snapshots import snapshot_path

    files: list[Path] = [Path(scenario.file)]
    for pc in scenario.protocols:
        files.append(Path(pc.snapshot) if pc.snapshot else snapshot_path(pc.adapter))
        if pc.book.path:
            files.append(Path(pc.book.path))
    if scenario.liquidators.gas_csv:
        files.append(Path(scenario.liquidators.gas_csv))

    def walk(node: Any) -> Iterable[str]:
        if isinstance(node, str):
            yield node
        elif isinstance(node, Mapping):
            for v in node.values():
                yield from walk(v)
        elif isinstance(node, (list, tuple)):
            for v in node:
                yield from walk(v)

    for s in walk(dict(scenario.raw)):
        if s.endswith((".csv", ".json", ".toml")):
            try:
                files.append(scenario.resolve(s, "manifest"))
            except Exception:
                continue
    seen: list[Path] = []
    for f in files:
        r = f.resolve()
        if r not in seen and r.is_file():
            seen.append(r)
    return seen


def build_manifest(*, kind: str, command: str | None = None, scenarios: Sequence[Any] = (),
                   extra_files: Sequence[str | Path] = (), seed: int | None = None, paths: int | None = None,
                   engine: str | None = None, elapsed_s: float | None = None, created_utc: str | None = None,
                   extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The manifest dict (see the module docstring); paths inside it are display paths."""
    import datetime as dt

    from ..compare import display_path

    files: dict[str, str | None] = {}
    for sc in scenarios:
        for f in scenario_files(sc):
            files[display_path(f)] = sha256_file(f)
    for f in extra_files:
        files[display_path(f)] = sha256_file(f)
    return {
        "kind": kind,
        "package": "cascade-risk",
        "version": package_version(),
        "git_commit": git_commit(),
        "python": ".".join(map(str, sys.version_info[:3])),
        "command": command if command is not None else command_line(),
        "scenarios": [{"name": sc.name, "file": display_path(sc.file)} for sc in scenarios],
        "files_sha256": dict(sorted(files.items())),
        "seed": seed,
        "paths": paths,
        "engine": engine,
        **(dict(extra) if extra else {}),
        "created_utc": created_utc or dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
        "elapsed_s": None if elapsed_s is None else round(float(elapsed_s), 2),
    }
