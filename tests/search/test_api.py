"""The notebook API's search: ``api.optimize`` is ``cascade optimize`` (same study, same answer) and resumes."""

from __future__ import annotations

import json

from _cli_helpers import cascade_in_process
from search_helpers import scenario

from optimizer import api


def _same(x) -> str:
    """JSON without wall-clock timings (``simulation_s``), which differ run to run."""
    def strip(v):
        if isinstance(v, dict):
            return {k: strip(w) for k, w in v.items() if k != "simulation_s"}
        return [strip(w) for w in v] if isinstance(v, list) else v
    return json.dumps(strip(x), sort_keys=True)


def test_api_optimize_is_the_command_and_resumes(tmp_path, monkeypatch):
    p = scenario(tmp_path)
    monkeypatch.chdir(tmp_path)
    res = api.optimize(str(p), trials=3, storage=str(tmp_path / "api.journal"))
    cli = cascade_in_process("optimize", str(p), "--trials", "3", "--storage", str(tmp_path / "cli.journal"),
                             "--json", cwd=tmp_path)
    assert cli.returncode == res.exit_code, cli.stderr
    out = json.loads(cli.stdout)
    got = res.to_json()
    assert got["study"]["trials"] == 3 and got["study"]["name"] == out["study"]["name"] == "engine-test"
    for key in ("current", "best", "pareto", "out_of_sample", "changes"):
        assert _same(got.get(key)) == _same(out.get(key)), key
    assert (res.recommendation is None) == (res.exit_code == 3)
    # the same call with more trials resumes the study (the first three trials are kept), and the stored
    # result reads back without simulating
    more = api.optimize(str(p), trials=5, storage=str(tmp_path / "api.journal"))
    assert more.to_json()["study"]["trials"] == 5
    back = api.load_optimization("engine-test", storage=str(tmp_path / "api.journal"))
    assert _same(back.to_json()["best"]) == _same(more.to_json()["best"])
