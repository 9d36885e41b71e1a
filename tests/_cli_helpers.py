"""Running the installed ``cascade`` command in tests, and checking one-line errors."""

import subprocess
import sys


def cascade(*args, cwd, timeout=300):
    """``python -m optimizer ARGS`` from ``cwd`` (a temp dir, so the installed wheel is what runs)."""
    return subprocess.run([sys.executable, "-m", "optimizer", *args], capture_output=True, text=True, cwd=cwd,
                          check=False, timeout=timeout)


def one_line_error(res, *fragments):
    """Exit code 2, exactly one line on stderr, no traceback, containing every fragment."""
    assert res.returncode == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    for f in fragments:
        assert f in lines[0], lines[0]
