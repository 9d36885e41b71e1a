"""Golden file of one small comparison report.

Regenerate (after an intended change of the model, the metrics or the layout) with::

    CASCADE_REGEN_GOLDEN=1 ../.venv/bin/python -m pytest report/test_golden.py

and review the diff of ``tests/report/golden/`` before committing it.
"""

import json
import os
import re
from pathlib import Path

from report_helpers import check_report_dir, write_small

GOLDEN = Path(__file__).resolve().parent / "golden"
VOLATILE = re.compile(r"^(Generated .*|- cascade .*Python .*)$", re.MULTILINE)


def _normalise(text: str) -> str:
    return VOLATILE.sub("<volatile>", text)


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
    assert json.loads(json.dumps(numbers)) == json.loads((GOLDEN / "compare_small_numbers.json").read_text())
    assert sc.is_file()
