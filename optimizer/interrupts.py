"""Signals: SIGTERM behaves like Ctrl-C, and critical sections finish before either takes effect.

The command line treats SIGINT and SIGTERM alike: both raise :class:`KeyboardInterrupt` in the
main thread, so files being written are removed (:mod:`optimizer.io`), study workers are stopped
and the exit code is 130. A few short sections must not be cut in half (taking or releasing a file
lock, appending one journal record, re-queueing an interrupted trial): :func:`deferred` holds a
signal that arrives meanwhile and delivers it when the section ends.

Deferral works at the Python level (the handler only records the signal), so it does not matter
which thread the operating system delivers the signal to. Outside the main thread (where Python
runs no handlers) it is a no-op.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Pending:
    """The signals held back by :func:`deferred` (``bool(pending)``: at least one arrived)."""

    def __init__(self) -> None:
        self.signals: list[int] = []

    def __bool__(self) -> bool:
        return bool(self.signals)


def _terminate_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt(f"signal {signal.Signals(signum).name}")


def sigterm_as_interrupt() -> None:
    """SIGINT and SIGTERM both raise :class:`KeyboardInterrupt` (main thread only; idempotent).

    SIGINT gets Python's default handler back (the console script holds both signals with a
    quick-exit handler while it imports); SIGTERM is left alone when something else (a test
    runner, an embedding program) installed its own handler.
    """
    if threading.current_thread() is not threading.main_thread():
        return
    from . import _entry

    early = (_entry._early, _entry._early_quiet)
    if signal.getsignal(signal.SIGINT) in early:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) in (signal.SIG_DFL, None, *early):
        signal.signal(signal.SIGTERM, _terminate_as_interrupt)


_depth = threading.local()


@contextmanager
def deferred() -> Iterator[Pending]:
    """Hold SIGINT/SIGTERM until the block ends, then deliver them (``KeyboardInterrupt``).

    Nested uses defer to the outermost block. The yielded :class:`Pending` lets a loop inside the
    (outermost) block, such as a wait for a lock, notice a held signal and give up cleanly.
    """
    outer = getattr(_depth, "pending", None)
    if outer is not None or threading.current_thread() is not threading.main_thread():
        # nested: the outer block decides; its held signal must not abort an inner wait either
        yield Pending()
        return
    pending = Pending()
    previous = {}

    def hold(signum, frame) -> None:
        pending.signals.append(signum)

    try:
        for s in SIGNALS:
            previous[s] = signal.signal(s, hold)
        _depth.pending = pending
        yield pending
    finally:
        _depth.pending = None
        for s, h in previous.items():
            signal.signal(s, h)
        if pending:
            _deliver(pending.signals[0], previous.get(pending.signals[0]))


def _deliver(signum: int, handler) -> None:
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)
    # SIG_IGN: ignored, as it would have been
