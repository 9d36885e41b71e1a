"""``cascade report``: a report from what a finished run stored, without simulating."""

from __future__ import annotations

import json
import time
from pathlib import Path

import click

from ..errors import InputError
from ._app import cli
from ._reporting import finish, out_dir_for


@cli.command("report")
@click.argument("target", metavar="RUN_OR_STUDY")
@click.option("--study", "study_name", metavar="NAME", help="Study name (when the storage holds several).")
@click.option("--out", type=click.Path(file_okay=False),
              help="Report folder (default: the same folder when re-rendering one, else reports/<date>_<name>/).")
@click.option("--json", "as_json", is_flag=True, help="Print the report's numbers as JSON (stdout).")
def report_cmd(target: str, study_name: str | None, out: str | None, as_json: bool) -> None:
    """Render a report for a finished simulation, comparison, proposal or optimisation study.

    RUN_OR_STUDY is a report folder (its result.json), a JSON file written by `cascade simulate
    --json`, `compare --json`, `proposal --json` or `optimize --json`, or a study: a journal file or an
    RDB URL (the result `cascade optimize` stored with it). Nothing is simulated.
    """
    from ..report.manifest import build_manifest
    from ..report.sources import classify, load_study_report, study_data
    from ..snapshots import read_json

    t0 = time.perf_counter()
    p = Path(target)
    manifest = None
    if p.is_dir():
        res_file = p / "result.json"
        if not res_file.is_file():
            raise InputError("is a folder without result.json (not a cascade report folder)", file=target)
        data = read_json(res_file)
        classify(data, str(res_file))
        if (p / "manifest.json").is_file():
            manifest = read_json(p / "manifest.json")
        out_dir = out_dir_for(out, "") if out else p
    elif "://" in target or p.suffix == ".journal" or p.suffix in (".db", ".sqlite", ".sqlite3"):
        storage = target if "://" in target or p.suffix == ".journal" else f"sqlite:///{target}"
        rep, study, display = load_study_report(storage, study_name)
        data = study_data(rep, study, display)
        out_dir = out_dir_for(out, f"study-{study.study_name}")
    else:
        raw = read_json(p)
        kind = classify(raw, target)
        if kind == "study" and raw.get("kind") != "study":
            data = study_data(raw, _stored_study(raw), None)
            name = f"study-{(raw.get('study') or {}).get('name', p.stem)}"
        elif kind == "simulation" and raw.get("kind") != "simulation":
            data = {"kind": "simulation", **raw}
            name = f"simulation-{raw.get('scenario', p.stem)}"
        else:
            data = raw
            name = p.stem
        out_dir = out_dir_for(out, name)
    if manifest is None:
        src = [target] if p.is_file() else []
        scen = (data.get("search") or data).get("scenario_file") if isinstance(data.get("search") or data, dict) else None
        if isinstance(scen, str) and Path(scen).is_file():
            src.append(scen)
        manifest = build_manifest(kind=data["kind"], extra_files=src,
                                  seed=_get(data, "seed"), paths=_get(data, "paths"), engine=_get(data, "engine"),
                                  elapsed_s=time.perf_counter() - t0, extra={"rendered_from": _display(target)})
    finish(json.loads(json.dumps(data)), manifest, out_dir, as_json)


def _stored_study(rep):
    """The study a search result names, when its journal file is here (for the trials' scatter); else None."""
    st = rep.get("study") or {}
    where, name = st.get("storage"), st.get("name")
    if not where or not name or "://" in where or not Path(where).is_file():
        return None
    from ..report.sources import load_study_report

    try:
        return load_study_report(where, name)[1]
    except InputError:  # no stored report in it: read the study for its trials only
        from ..report.sources import _open_study

        return _open_study(where, name, None)[0]


def _get(data, key):
    if key in data:
        return data[key]
    for sub in ("scenario", "search"):
        if isinstance(data.get(sub), dict) and key in data[sub]:
            return data[sub][key]
    return None


def _display(target: str) -> str:
    from ..compare import display_path
    from ..redact import redact_url

    return redact_url(target) if "://" in target else display_path(target)
