"""`benchmarks/run.py --quick` runs, ends with one JSON line, and both engines find the same liquidations."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


@pytest.mark.skipif(not SCRIPT.is_file(), reason=f"benchmark script not found at {SCRIPT} "
                                                  "(tests run from an installed wheel without the repository)")
def test_quick_bench_reports_identical_liquidations(tmp_path):
    out = tmp_path / "bench.json"
    proc = subprocess.run([sys.executable, str(SCRIPT), "--quick", "--out", str(out)], capture_output=True,
                          text=True, timeout=300, check=False)
    lines = proc.stdout.strip().splitlines()
    assert lines, f"no output; stderr:\n{proc.stderr[-3000:]}"
    assert lines[-1].startswith("{"), f"last line is not JSON: {lines[-1][:200]!r}\nstderr:\n{proc.stderr[-3000:]}"
    res = json.loads(lines[-1])
    assert json.loads(out.read_text()) == res

    assert res["quick"] is True
    assert res["failures"] == [] and res["ok"] is True, res["failures"]
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert set(res["workloads"]) == {"reference_workload", "aave_v3_core_24h_jumps"}
    for name, w in res["workloads"].items():
        ref = w["reference"]
        assert ref["paths"] >= 1, name
        assert ref["liquidations"] == ref["kernel_liquidations"], name
        assert ref["identical"] is True, name
        assert w["liquidations_per_path"] > 0, name
        for key in ("kernel_s", "floor_paths_s", "evaluate_s", "bind_inputs_s", "speedup", "peak_rss_mb"):
            assert w[key] > 0, (name, key)
    assert res["machine"]["cpus"] >= 1 and res["machine"]["numba_threads"] >= 1
