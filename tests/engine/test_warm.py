"""``make warm`` (``python -m optimizer.engine.warm``) leaves the installed kernel in numba's on-disk cache:
a later process loads it instead of compiling it again."""

import subprocess
import sys


def _warm(cwd):
    return subprocess.run([sys.executable, "-m", "optimizer.engine.warm"], capture_output=True, text=True,
                          timeout=900, cwd=cwd)


def test_a_second_process_loads_the_kernel_from_the_cache(tmp_path):
    first = _warm(tmp_path)  # compiles unless `make warm` (or an earlier test run) already did
    assert first.returncode == 0, first.stderr
    assert first.stderr.startswith("cascade kernel "), first.stderr
    second = _warm(tmp_path)
    assert second.returncode == 0, second.stderr
    assert second.stderr.startswith("cascade kernel already cached ("), second.stderr
    assert second.stdout == ""
