"""Report folders of `cascade compare`, `proposal` and `report`: rendered HTML, images, tables, numbers
equal to the JSON, determinism, atomic writes, umask, no secret or home path, exit codes."""

import json
import os

import pytest
from report_helpers import (
    check_report_dir,
    check_risk_numbers,
    load_json,
    parse_number,
    write_proposal,
    write_small,
)


def run_main(args, capsys=None):
    """The installed entry point in this process: (exit code, stdout, stderr)."""
    from optimizer.cli import main

    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    out = capsys.readouterr() if capsys else None
    return code, (out.out if out else ""), (out.err if out else "")


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Through the installed entry point (in this process): one comparison twice, one proposal with
    --json, and a re-render of its folder."""
    import contextlib
    import io

    d = tmp_path_factory.mktemp("reports")
    sc = write_small(d)
    pr = write_proposal(d)
    old = os.getcwd()
    os.chdir(d)
    out, err = io.StringIO(), io.StringIO()
    try:
        for name in ("c1", "c2"):
            code, _, _ = run_main(["compare", str(sc), "--set", "WETH.liquidation_threshold_bps=8000", "--set",
                                   "WETH.ltv_bps=7800", "--paths", "16", "--out", name])
            assert code == 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code, _, _ = run_main(["proposal", str(pr), "--scenario", str(sc), "--paths", "16", "--recommend-trials",
                                   "3", "--recommend-paths", "16", "--sensitivity-paths", "8", "--out", "p1", "--json"])
        assert code == 0, err.getvalue()
        code, _, _ = run_main(["report", "p1", "--out", "p2"])
        assert code == 0
    finally:
        os.chdir(old)
    return {"dir": d, "scenario": sc, "proposal": pr, "proposal_stdout": out.getvalue(),
            "proposal_stderr": err.getvalue()}


def test_every_report_renders_with_resolving_images_and_well_formed_tables(runs):
    for name in ("c1", "p1", "p2"):
        html, tables = check_report_dir(runs["dir"] / name)
        assert len(tables) >= 2
        for f in ("result.json", "manifest.json"):
            assert (runs["dir"] / name / f).is_file()
    html, _ = check_report_dir(runs["dir"] / "p1")
    for section in ("Specification", "Risk: current vs proposed", "Positions liquidated at once", "Stress replays",
                    "Sensitivity", "Smart LTV baseline", "Assumptions and limitations", "Raw JSON diff",
                    "recommendation within the same step limits", "Reproducibility"):
        assert section in html, section
    assert "not modelled: no effect on liquidation risk in this model" in html  # the DAI reserve factor


def test_numbers_in_the_tables_are_the_json_numbers(runs):
    d = runs["dir"]
    _, tables = check_report_dir(d / "c1")
    assert check_risk_numbers(load_json(d / "c1"), tables, ("current", "candidate")) >= 20
    data = load_json(d / "p1")
    _, tables = check_report_dir(d / "p1")
    cols = ("current", "proposed") + (("recommended",) if data["recommendation"].get("metrics") else ())
    assert check_risk_numbers(data, tables, cols) >= 30
    spec = next(t for t in tables if t[0][:2] == ["asset", "parameter"])
    for row, s in zip(spec[1:], data["specification"], strict=True):
        assert row[0] == s["target"] and row[1] == s["parameter"]
        for col, key in ((2, "before"), (3, "after")):
            x, tol = parse_number(row[col], percent=False)
            assert abs(x - s[key]) <= tol
    im = data["immediate"]["newly_liquidatable"]
    assert f"{im['positions']:,} of" in (d / "p1" / "report.md").read_text()


def test_json_flag_prints_the_numbers_of_the_report(runs):
    printed = json.loads(runs["proposal_stdout"])
    assert printed == load_json(runs["dir"] / "p1")
    assert printed["kind"] == "proposal" and "report: p1/report.md" in runs["proposal_stderr"]


def test_same_inputs_give_the_same_report_apart_from_the_timestamp(runs):
    d = runs["dir"]
    a, b = (d / "c1" / "report.md").read_text().splitlines(), (d / "c2" / "report.md").read_text().splitlines()
    diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    assert all(x.startswith("Generated ") for x, _ in diff) and len(diff) <= 1
    for png in (d / "c1").glob("*.png"):
        assert png.read_bytes() == (d / "c2" / png.name).read_bytes(), png.name
    ja, jb = load_json(d / "c1"), load_json(d / "c2")
    ja.pop("elapsed_s"), jb.pop("elapsed_s")
    assert ja == jb
    ma, mb = (json.loads((d / c / "manifest.json").read_text()) for c in ("c1", "c2"))
    for k in ("created_utc", "elapsed_s"):
        ma.pop(k), mb.pop(k)
    assert ma == mb
    assert set(ma) >= {"version", "git_commit", "command", "files_sha256", "seed", "paths", "engine"}
    assert any(k.endswith("small.toml") for k in ma["files_sha256"])
    assert any(k.startswith("bundled:protocols/") for k in ma["files_sha256"])


def test_report_rerenders_a_folder_without_simulating(runs, monkeypatch, tmp_path):
    d = runs["dir"]
    assert (d / "p2" / "report.md").read_text() == (d / "p1" / "report.md").read_text()
    import optimizer.engine as eng

    def boom(*a, **k):
        raise AssertionError("cascade report simulated")

    monkeypatch.setattr(eng, "evaluate", boom)
    monkeypatch.setattr(eng, "prepare", boom)
    code, _, _ = run_main(["report", str(d / "c1"), "--out", str(tmp_path / "again")])
    assert code == 0
    assert (tmp_path / "again" / "report.md").read_text() == (d / "c1" / "report.md").read_text()


def test_report_of_a_simulation_json(runs, tmp_path, capsys):
    code, out, _ = run_main(["simulate", str(runs["scenario"]), "--paths", "6", "--json"], capsys)
    assert code == 0
    sim = tmp_path / "sim.json"
    sim.write_text(out)
    code, _, err = run_main(["report", str(sim), "--out", str(tmp_path / "simrep")], capsys)
    assert code == 0, err
    _, tables = check_report_dir(tmp_path / "simrep")
    risk = next(t for t in tables if t[0][0] == "metric")
    want = json.loads(out)["metrics"]["bad_debt_usd"]["mean"]
    x, tol = parse_number(risk[1][1])
    assert abs(x - want) <= tol


def test_a_crash_never_leaves_a_half_written_folder(tmp_path, monkeypatch, runs):
    from optimizer.report import bundle, figures, write_report

    data = load_json(runs["dir"] / "c1")
    manifest = json.loads((runs["dir"] / "c1" / "manifest.json").read_text())
    target = tmp_path / "out"
    write_report(target, data, manifest)
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    calls = {"n": 0}
    real = figures.save_png

    def crash(fig):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(fig)

    monkeypatch.setattr(figures, "save_png", crash)
    monkeypatch.setattr(bundle.fg, "save_png", crash)
    with pytest.raises(KeyboardInterrupt):
        write_report(target, data, manifest)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before  # the old report, whole
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left
    calls["n"] = 1  # the next figure fails
    with pytest.raises(KeyboardInterrupt):
        write_report(tmp_path / "new", data, manifest)
    assert not (tmp_path / "new").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_report_files_get_the_users_umask(runs):
    mask = os.umask(0)
    os.umask(mask)
    for p in (runs["dir"] / "c1").iterdir():
        assert p.stat().st_mode & 0o777 == 0o666 & ~mask, p
    assert (runs["dir"] / "c1").stat().st_mode & 0o777 == 0o777 & ~mask


def test_no_secret_and_no_home_path_in_report_or_manifest(tmp_path, monkeypatch):
    from optimizer.report.manifest import build_manifest, command_line

    home = tmp_path / "home" / "alice"
    home.mkdir(parents=True)
    monkeypatch.setenv("HOME", str(home))
    line = command_line(["report", "postgresql+psycopg://bob:S3cretPW@db.example/cascade?password=S3cretPW",
                         str(home / "study.journal")])
    assert "S3cretPW" not in line and str(home) not in line and "~/study.journal" in line
    sc_file = write_small(home, paths=4, positions=200)
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    from optimizer.compare import compare
    from optimizer.report import write_report

    c = compare(str(sc_file), {"aave_v3": {"WETH.liquidation_threshold_bps": 8100}}, analyses=False)
    m = build_manifest(kind="comparison", command=line, scenarios=[c.scenario], seed=7, paths=4, engine="kernel")
    out = write_report(elsewhere / "r", c.to_json(), m)
    for f in out.iterdir():
        if f.suffix in (".md", ".json"):
            text = f.read_text()
            assert str(home) not in text and "S3cretPW" not in text, f.name
    assert "~/small.toml" in (out / "manifest.json").read_text()


def test_proposal_over_the_budget_exits_3_and_still_writes_the_report(tmp_path, capsys):
    sc = write_small(tmp_path, "tight.toml", paths=8, positions=300, budget=1e-12)
    pr = write_proposal(tmp_path)
    code, out, err = run_main(["proposal", str(pr), "--scenario", str(sc), "--recommend-trials", "0",
                               "--no-sensitivity", "--no-replays", "--out", str(tmp_path / "r")], capsys)
    assert code == 3, err
    data = load_json(tmp_path / "r")
    assert data["proposed"]["budget"]["feasible"] is False
    assert "proposed OVER" in out
    assert (tmp_path / "r" / "report.md").is_file()


def test_report_of_an_optimisation_study_from_its_stored_result(tmp_path, capsys, monkeypatch):
    """`cascade report STUDY` renders the JSON `cascade optimize` stores as the study attr `cascade_report`
    and the trials' own attributes; a study without it is a one-line error."""
    import warnings

    import optuna

    from optimizer.report.sources import STUDY_ATTR
    from optimizer.search import SearchRequest, optimize
    from optimizer.search.result import REPORT_ATTR
    from optimizer.search.storage import StorageSpec

    assert STUDY_ATTR == REPORT_ATTR
    monkeypatch.chdir(tmp_path)
    bare = str(tmp_path / "bare.journal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.create_study(study_name="bare", storage=StorageSpec(path=bare).open())
    code, _, err = run_main(["report", bare, "--out", "nothing"], capsys)
    assert code == 2 and "holds no stored report" in err and err.count("\n") == 1
    sc = write_small(tmp_path, "study.toml", paths=8, positions=200)
    journal = str(tmp_path / "s.journal")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = optimize(SearchRequest(str(sc), trials=3, storage=journal, cwd=str(tmp_path))).to_json()
    code, _, err = run_main(["report", journal, "--out", "study"], capsys)
    assert code == 0, err
    _html, tables = check_report_dir(tmp_path / "study")
    data = load_json(tmp_path / "study")
    assert data["kind"] == "study" and len(data["trials"]) >= 1
    risk = next(t for t in tables if t[0][0] == "metric")
    eff = next(r for r in risk if r[0] == "capital efficiency")
    x, tol = parse_number(eff[1])
    assert abs(x - out["current"]["metrics"]["capital_efficiency"]["ratio"]) <= tol
    assert (tmp_path / "study" / "efficiency_risk.png").is_file()
    # the report says what `cascade optimize` said: its verdict and its recommendation (after the
    # no-free-moves reversion), not the raw in-sample best trial
    md = (tmp_path / "study" / "report.md").read_text()
    assert out["verdict"]["message"] in md
    rec = out["recommendation"]
    if rec is not None:
        spec = next(t for t in tables if t[0][:3] == ["parameter", "today", "recommended"])
        for ch, row in zip(rec["changes"], spec[1:], strict=True):
            x, tol = parse_number(row[2])
            assert abs(x - ch["new"]) <= tol and row[4] == ch["status"]
    # every simulated trial is a point of the figure, within budget or not (over-budget ones are PRUNED)
    simulated = [t for t in out["trials"] if t.get("risk_value") is not None]
    assert len(data["trials"]) == len(simulated)
    assert "/site-packages/" not in json.dumps(data) and "/work/" not in json.dumps(data)


@pytest.mark.parametrize("args, fragments", [
    (["compare", "{sc}", "--set", "WETH.ltv_bps=9000", "--out", "{out}"], ["--set", "ltv <= liquidation threshold"]),
    (["compare", "{sc}", "--set", "maker:ETH-A.mat=2", "--out", "{out}"], ["--set", "no protocol 'maker'"]),
    (["report", "{bogus}", "--out", "{out}"], ["bogus.json", "is not a cascade result"]),
    (["report", "{missing}", "--out", "{out}"], ["nothing.journal", "no such study file"]),
])
def test_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, args, fragments):
    sc = write_small(tmp_path, paths=2, positions=50)
    bogus = tmp_path / "bogus.json"
    bogus.write_text('{"hello": 1}')
    fill = {"sc": str(sc), "out": str(tmp_path / "out"), "bogus": str(bogus), "missing": str(tmp_path / "nothing.journal")}
    code, _, err = run_main([a.format(**fill) for a in args], capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in lines[0], lines[0]
    assert not (tmp_path / "out").exists()
