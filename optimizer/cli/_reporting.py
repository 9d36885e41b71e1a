"""What the report-writing commands share: the output folder, writing, printing, ``--json``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click


def out_dir_for(out: str | None, name: str) -> Path:
    """``--out`` or ``reports/<date>_<name>/`` under the current directory; checked writable up front."""
    from ..report.writer import check_writable, default_dir

    return check_writable(Path(out) if out else default_dir(name))


def finish(data: dict[str, Any], manifest: dict[str, Any], out_dir: Path, as_json: bool) -> None:
    """Write the report folder atomically, then print where (stderr with --json) and the JSON (stdout)."""
    from ..report import write_report
    from ..report.terminal import print_summary
    from ..report.writer import dumps

    write_report(out_dir, data, manifest)
    print_summary(data, out_dir, err=as_json)
    if as_json:
        click.echo(dumps(data), nl=False)


def progress_printer(enabled: bool):
    """One line per stage on stderr (terminals only)."""
    import sys

    if not (enabled and sys.stderr.isatty()):
        return None
    return lambda msg: click.echo(f"  {msg} ...", err=True)


def json_text(data: Any) -> str:
    return json.dumps(data, indent=1)
