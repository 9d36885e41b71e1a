"""Rewrite the golden files (``make golden``): run by a person, who reviews and commits the diff.

    make golden                       # every case
    .venv/bin/python tests/golden/regenerate.py --only core_24h_jumps --only base

It refuses to run in CI (``CI`` set in the environment): a CI job must compare against the files, never
rewrite them. Scenario cases run on their first engine and, when they list two, are checked to agree on
both before anything is written; variants run on the reference engine (the definition of the model) and
are checked against the kernel. For each file that changes it prints the first differences, so the
commit message can state what moved and why.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from golden_cases import (
    SCENARIO_CASES,
    differences,
    dumps,
    golden_path,
    run_scenario_case,
    run_variant,
    variants,
)


def _write(kind: str, name: str, data: dict) -> None:
    import json

    p = golden_path(kind, name)
    old = json.loads(p.read_text()) if p.is_file() else None
    p.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(data)
    if old is None:
        print(f"new      {kind}/{name}.json")
    else:
        diff = differences(old, data)
        print(f"{'changed' if diff else 'same   '}  {kind}/{name}.json")
        for d in diff[:8]:
            print(f"           {d}")
    tmp = p.with_suffix(".json.tmp")
    tmp.write_text(text)
    os.replace(tmp, p)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", action="append", default=[], help="a case or variant name (repeatable)")
    args = ap.parse_args(argv)
    if os.environ.get("CI"):
        print("regenerate.py: refusing to rewrite golden files in CI (CI is set); a CI job compares "
              "against them (pytest tests/golden)", file=sys.stderr)
        return 2
    want = set(args.only)
    known = {c.name for c in SCENARIO_CASES} | set(variants())
    if want - known:
        print(f"regenerate.py: unknown case(s) {sorted(want - known)} (known: {sorted(known)})", file=sys.stderr)
        return 2
    for case in SCENARIO_CASES:
        if want and case.name not in want:
            continue
        results = [run_scenario_case(case, e) for e in case.engines]
        for e, r in zip(case.engines[1:], results[1:], strict=True):
            diff = differences(results[0], r)
            if diff:
                print(f"{case.name}: {e} engine disagrees with {case.engines[0]}:\n" + "\n".join(diff),
                      file=sys.stderr)
                return 1
        _write("scenarios", case.name, results[0])
    with tempfile.TemporaryDirectory() as tmp:
        for v in sorted(variants()):
            if want and v not in want:
                continue
            ref = run_variant(Path(tmp), v, "reference")
            diff = differences(ref, run_variant(Path(tmp), v, "kernel"))
            if diff:
                print(f"variant {v}: kernel disagrees with the reference:\n" + "\n".join(diff), file=sys.stderr)
                return 1
            _write("variants", v, ref)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
