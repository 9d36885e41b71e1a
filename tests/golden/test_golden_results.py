"""Golden results: the bundled scenarios and the engine-agreement variants reproduce their pinned files.

A model change on purpose changes the golden file in the same commit, with the reason in the message
(``make golden`` rewrites the files; review the diff). See ``tests/golden/README.md``.
"""

from __future__ import annotations

import pytest
from golden_cases import (
    SCENARIO_CASES,
    differences,
    read_golden,
    run_scenario_case,
    run_variant,
    variants,
)

_SCENARIO_RUNS = [(c, e) for c in SCENARIO_CASES for e in c.engines]


@pytest.mark.parametrize("case,engine", _SCENARIO_RUNS, ids=[f"{c.name}-{e}" for c, e in _SCENARIO_RUNS])
def test_bundled_scenario_reproduces_its_golden_file(case, engine):
    diff = differences(read_golden("scenarios", case.name), run_scenario_case(case, engine))
    assert not diff, f"{case.name} ({engine}) departs from tests/golden/scenarios/{case.name}.json:\n" + \
        "\n".join(diff)


@pytest.mark.parametrize("variant", sorted(variants()))
def test_engine_variant_reproduces_its_golden_file(tmp_path, variant):
    """The kernel against the reference engine's pinned ledger (test_engines_agree checks kernel == reference)."""
    diff = differences(read_golden("variants", variant), run_variant(tmp_path, variant, "kernel"))
    assert not diff, f"variant {variant} departs from tests/golden/variants/{variant}.json:\n" + "\n".join(diff)
