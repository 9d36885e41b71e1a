"""Golden file of one small comparison report.

Regenerate (after an intended change of the model, the metrics or the layout) with::

    CASCADE_REGEN_GOLDEN=1 ../.venv/bin/python -m pytest report/test_golden.py

and review the diff of ``tests/report/golden/`` before committing it.

The report's text must match exactly (its figures are rounded). The raw numbers match within a relative
1e-9: on one machine they are bit-identical run to run, but numpy's vectorised ``exp``/``log`` (the path
generator) and numba's code are compiled for the machine's instruction set, so an AVX2 and an AVX-512 CPU
differ in the last digits (measured: 93.88670205702863 here vs 93.88670205702908 in the golden file, 5e-15, on one path).
"""

import json
import math
import os
import re
from pathlib import Path

from report_helpers import check_report_dir, write_small

GOLDEN = Path(__file__).resolve().parent / "golden"
VOLATILE = re.compile(r"^(Generated .*|- cascade .*Python .*)$", re.MULTILINE)


def _normalise(text: str) -> str:
    return VOLATILE.sub("<volatile>", text)


def _close(got, want, path: str = "") -> list[str]:
    """Where two JSON values differ beyond a relative 1e-9 (numbers) or at all (everything else)."""
    if isinstance(want, dict) and isinstance(got, dict):
        if got.keys() != want.keys():
            return [f"{path}: keys {sorted(got)} != {sorted(want)}"]
        return [d for k in want for d in _close(got[k], want[k], f"{path}.{k}")]
    if isinstance(want, list) and isinstance(got, list):
        if len(got) != len(want):
            return [f"{path}: length {len(got)} != {len(want)}"]
        return [d for i, (g, w) in enumerate(zip(got, want, strict=True)) for d in _close(g, w, f"{path}[{i}]")]
    if isinstance(want, float) and isinstance(got, (int, float)) and not isinstance(got, bool):
        return [] if math.isclose(got, want, rel_tol=1e-9, abs_tol=1e-12) else [f"{path}: {got!r} != {want!r}"]
    return [] if got == want else [f"{path}: {got!r} != {want!r}"]


def test_close_compares_numbers_within_1e9_and_the_rest_exactly():
    assert _close({"a": [1.0, 2.0], "b": "x"}, {"a": [1.0 + 1e-14, 2.0], "b": "x"}) == []
    assert _close({"a": 1.0}, {"a": 1.0 + 1e-6}) == [".a: 1.0 != 1.000001"]
    assert _close({"a": "x"}, {"a": "y"}) and _close({"a": [1.0]}, {"a": [1.0, 2.0]}) and _close({"a": 1}, {"b": 1})


def test_small_comparison_report_matches_the_golden_file(tmp_path, monkeypatch):
    from optimizer.compare import compare
    from optimizer.report import write_report
    from optimizer.report.manifest import build_manifest

    monkeypatch.delenv("CASCADE_GIT_COMMIT", raising=False)
    monkeypatch.chdir(tmp_path)
    sc = write_small(tmp_path, "golden.toml", paths=10, positions=250)
    c = compare("golden.toml", {"aave_v3": {"WETH.liquidation_threshold_bps": 8000, "WETH.ltv_bps": 7800}})
    m = build_manifest(kind="comparison", command="cascade compare golden.toml --set WETH.liquidation_threshold_bps=8000 "
                       "--set WETH.ltv_bps=7800", scenarios=[c.scenario], seed=c.scenario.seed, paths=10,
                       engine=c.current.engine, created_utc="2000-01-01T00:00:00Z", elapsed_s=0.0)
    data = c.to_json()
    data["elapsed_s"] = 0.0
    out = write_report(tmp_path / "r", data, m)
    check_report_dir(out)
    got = _normalise((out / "report.md").read_text())
    numbers = {k: data["candidate"]["metrics"][k] for k in ("bad_debt_usd", "liquidated_usd", "capital_efficiency")}
    if os.environ.get("CASCADE_REGEN_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        (GOLDEN / "compare_small.md").write_text(got)
        (GOLDEN / "compare_small_numbers.json").write_text(json.dumps(numbers, indent=1, sort_keys=True) + "\n")
    assert got == (GOLDEN / "compare_small.md").read_text()
    assert _close(json.loads(json.dumps(numbers)), json.loads((GOLDEN / "compare_small_numbers.json").read_text())) == []
    assert sc.is_file()
