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


def cascade_in_process(*args, cwd):
    """``cascade ARGS`` through ``optimizer.cli.main`` in this process (the installed package), from ``cwd``.

    Same result shape as :func:`cascade` (returncode, stdout, stderr); an exception escaping ``main``
    (a traceback) is re-raised. Much cheaper than a subprocess for error-path tests.
    """
    import contextlib
    import io
    import os

    from optimizer.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = os.getcwd()
    os.chdir(cwd)
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main([str(a) for a in args])
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    finally:
        os.chdir(old)
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
