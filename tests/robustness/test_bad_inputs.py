"""Bad inputs generated from the valid bundled scenarios, snapshots and CSVs, through every command.

Each case must end with exit 0 or 2, never a traceback, and every exit-2 message must be one line
naming the file (or option), the field and the rule (see ``mutations.check``). The default run
takes a deterministic sample that keeps every (file, mutation kind) pair at least once;
``CASCADE_FULL_TESTS=1`` runs all of them (about 16,400 cases with the bundled files of today; tens of minutes).
"""

from __future__ import annotations

import mutations as m
import pytest

GROUPS = {
    # group: (cases, sample size in the default run[, one per mutation kind only: same loaders as simulate])
    "scenario-simulate": (lambda: [c for c in m.scenario_cases() if c.id.endswith(":simulate")], 260),
    "scenario-optimize": (lambda: [c for c in m.scenario_cases() if c.id.endswith(":optimize")], 90),
    "snapshot": (m.snapshot_cases, 150),
    "csv": (m.csv_cases, 70),
    "compare": (m.compare_cases, 16, False),
    "proposal": (m.proposal_cases, 24, False),
    "report": (m.report_cases, 100),
    "options": (m.option_cases, 1000),
}


@pytest.mark.parametrize("group", list(GROUPS))
def test_every_bad_input_is_one_line_exit_2_or_accepted(group, tmp_path):
    make, n, *per_file = GROUPS[group]
    cases = m.sample(make(), n, per_file=per_file[0] if per_file else True)
    bad = m.check_cases(cases, tmp_path)
    assert not bad, f"{len(bad)} of {len(cases)} cases broke the promise:\n" + "\n".join(bad[:20])


INSTALLED_SAMPLE = (  # a FIFO and a device through the real process; the rest run in-process (same installed package)
    "aave_v3:file:dev_zero:protocols",
    "aave_v3_core_24h_jumps:file:fifo:simulate",
)


def test_the_installed_executable_keeps_the_promise_too(tmp_path):
    """A sample through the real ``cascade`` console script (process exit codes, real stdio, signal setup)."""
    cases = m.all_cases()
    if m.FULL:  # 200 of them (each is a process start)
        import random

        chosen = random.Random(1).sample(cases, 200)
    else:
        chosen = [c for c in cases if c.id in INSTALLED_SAMPLE]
        assert len(chosen) == len(INSTALLED_SAMPLE)
    bad = m.check_cases(chosen, tmp_path, runner=m.run_installed)
    assert not bad, "\n".join(bad)


def test_generated_cases_cover_every_mutation_and_command():
    cases = m.all_cases()
    kinds = {c.kind for c in cases}
    assert {"removed", "wrong_type", "negative", "nan", "inf", "huge", "unknown_key", "truncated", "empty", "binary",
            "utf16", "latin1", "directory", "fifo", "dev_zero"} <= kinds
    commands = {c.argv[0] for c in cases}
    assert {"simulate", "optimize", "validate", "protocols", "compare", "proposal", "report", "fetch", "watch"} <= commands
    assert {c.id.split(":")[0] for c in cases} >= {s.stem for s in m.SCENARIOS} | {s.stem for s in m.SNAPSHOTS}


def test_the_toml_writer_round_trips_every_bundled_scenario():
    import math
    import tomllib

    for src in m.SCENARIOS:
        data = tomllib.loads(src.read_text())
        assert tomllib.loads(m.dump_toml(data)) == data
    odd = {"a": {"x": math.inf, "y": -math.inf, "z": 1e308, "k y": "s\"q", "l": [{"p": 1}], "t": True}}
    back = tomllib.loads(m.dump_toml(odd))
    assert back["a"]["x"] == math.inf and back["a"]["k y"] == 's"q' and back["a"]["l"] == [{"p": 1}]
