"""Signals at the edges of a command: a library that turns the interrupt into another error, and a signal
while the interpreter shuts down after the command finished. Each is one line and exit 130, or a clean exit
with the command's own code; never a traceback or a death by signal."""

from __future__ import annotations

import subprocess
import sys

import click
import pytest

from optimizer.cli import _app

LATE = """
import atexit, os, signal, sys, time
sys.argv = ["cascade", "protocols"]
def late():  # a Ctrl-C while the interpreter shuts down, after the command printed everything
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(0.05)
atexit.register(late)
from optimizer._entry import main
main()
"""


def test_a_signal_during_shutdown_leaves_the_finished_command_alone():
    r = subprocess.run([sys.executable, "-c", LATE], capture_output=True, text=True, timeout=120, check=False)
    assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr)
    assert "aave_v3" in r.stdout


@pytest.fixture
def command():
    """A throwaway command on the real group, removed afterwards."""
    made = []

    def add(fn):
        cmd = click.command(name=f"probe-{len(made)}")(fn)
        _app.cli.add_command(cmd)
        made.append(cmd.name)
        return cmd.name

    yield add
    for name in made:
        _app.cli.commands.pop(name, None)


def _run(name, capsys) -> tuple[int, list[str]]:
    with pytest.raises(SystemExit) as e:
        _app.main([name])
    err = capsys.readouterr().err
    return e.value.code, err.splitlines()


def test_an_interrupt_is_one_line_without_clicks_blank_line(command, capsys):
    def cut():
        raise KeyboardInterrupt

    code, lines = _run(command(cut), capsys)
    assert code == 130 and lines == ["cascade: error: interrupted; finished work is saved"]


def test_an_error_raised_while_handling_an_interrupt_is_the_interrupt(command, capsys):
    def compiler_cut_midway():  # e.g. numba: "no compiled object yet" after Ctrl-C inside a compile
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise RuntimeError("no compiled object yet for <Library>") from None

    code, lines = _run(command(compiler_cut_midway), capsys)
    assert code == 130 and lines == ["cascade: error: interrupted; finished work is saved"]


def test_an_error_without_an_interrupt_is_not_hidden(command):
    def bug():
        raise RuntimeError("a real bug")

    with pytest.raises(RuntimeError, match="a real bug"):
        _app.main([command(bug)])
