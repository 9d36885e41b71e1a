"""The study journal file: a lock that survives kills and signals, and a torn tail that is repaired.

optuna's :class:`~optuna.storages.journal.JournalFileBackend` appends each operation as one JSON
line and reads a line without its newline as "not written yet". Two things go wrong with it on its
own, and this module fixes both:

**A torn tail.** A crash or a full disk in the middle of an append leaves a partial last line.
optuna still reads the file (the partial line is skipped), but its next append goes straight onto
the partial line: the merged line is invalid JSON, and from then on every read of the study fails.
:class:`SafeJournalBackend` checks the last byte under the lock before every append and when the
study is opened: a partial last line is moved to ``<journal>.torn-<UTC time>`` (a backup, nothing is
deleted) and the journal is truncated to its last complete record, so every complete record is
kept and nothing is ever appended onto a partial line. A last line that is a complete JSON record
missing only its newline is kept (the newline is added). The damage older versions did (a record
appended onto a torn line) is repaired the same way at open time: the torn prefix goes to the
backup, the record after it is kept. Any other damage (a line in the middle that is not a
record) is refused with a one-line error naming the file and the line and giving the command that
keeps the records before it; the file is not touched.

**A stale lock.** optuna's default lock is a symlink ``<journal>.lock`` (optuna-dashboard uses the
same one); a process killed while holding it leaves it behind, and the next process waits 30 s
and then breaks it, silently. :class:`CascadeJournalLock` first takes an ``flock`` on
``<journal>.lock.flock`` (the kernel releases it when its holder dies, so cascade processes never
wait on a dead one), then the symlink, after writing its owner (``host:pid:start``) to
``<journal>.lock.owner``. A symlink found while holding the flock belongs to a dead cascade process
(its owner file names it: removed at once, announced in one line) or to another program such as
optuna-dashboard (waited for, announced in one line after 2 s, broken after optuna's 30 s grace
period as optuna would). Taking and releasing the lock and appending a record run with SIGINT and
SIGTERM deferred (:func:`optimizer.interrupts.deferred`), so a signal never leaves the lock held or
a record half written.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from optuna.storages.journal import JournalFileBackend
from optuna.storages.journal._file import BaseJournalFileLock

from ..errors import InputError
from ..interrupts import deferred

GRACE_S = 30.0  # optuna's grace period for a lock held by another program
ANNOUNCE_AFTER_S = 2.0
OWNER_SUFFIX = ".lock.owner"
FLOCK_SUFFIX = ".lock.flock"


def _say(msg: str) -> None:
    """A notice (not an error): one line ``cascade: note: ...`` on stderr."""
    print(f"cascade: note: {msg}", file=sys.stderr, flush=True)


def _worker_alive(wid: str) -> bool | None:
    from .objective import worker_alive

    return worker_alive(wid)


def _this_process() -> str:
    from .objective import worker_id

    return worker_id()


class CascadeJournalLock(BaseJournalFileLock):
    """optuna's symlink lock, guarded by an flock and an owner file (see the module docstring)."""

    def __init__(self, journal: str, *, grace_s: float = GRACE_S, announce_after_s: float = ANNOUNCE_AFTER_S) -> None:
        self.journal = journal
        self.symlink = journal + ".lock"
        self.owner = journal + OWNER_SUFFIX
        self.flock_path = journal + FLOCK_SUFFIX
        self.grace_s, self.announce_after_s = grace_s, announce_after_s
        self._fd: int | None = None

    # -- the BaseJournalFileLock interface (optuna calls these around every append)
    def acquire(self) -> bool:
        with deferred() as pending:
            self._take_flock(pending)
            try:
                self._take_symlink(pending)
            except BaseException:
                self._drop_flock()
                raise
        return True

    def release(self) -> None:
        with deferred():
            try:
                self._drop_symlink()
            finally:
                self._drop_flock()

    # -- parts
    def _take_flock(self, pending) -> None:
        fd = os.open(self.flock_path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if pending:
                        raise KeyboardInterrupt from None
                    time.sleep(0.005)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _drop_flock(self) -> None:
        if self._fd is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = None

    def _take_symlink(self, pending) -> None:
        me = _this_process()
        t0 = time.monotonic()
        announced = False
        mtime, since = None, time.monotonic()
        while True:
            if not os.path.lexists(self.symlink):
                Path(self.owner).write_text(me)  # before the symlink: a holder is always on record
                try:
                    os.symlink(self.journal, self.symlink)
                    return
                except FileExistsError:  # another program took it meanwhile: the record is not ours
                    _unlink(self.owner)
            holder = self._recorded_owner(me)
            if holder is not None and _worker_alive(holder) is False:
                pid = holder.split(":")[1] if holder.count(":") >= 2 else holder
                _say(f"removed the stale lock {self.symlink} left by process {pid} (no longer running)")
                _unlink(self.owner)
                self._remove_symlink()
                continue
            if pending:
                raise KeyboardInterrupt
            try:
                m = os.lstat(self.symlink).st_mtime
            except FileNotFoundError:
                continue
            if m != mtime:
                mtime, since = m, time.monotonic()
            if not announced and time.monotonic() - t0 > self.announce_after_s:
                _say(f"waiting for the study journal lock {self.symlink}, held by another program "
                     f"(optuna-dashboard?); a lock unchanged for {self.grace_s:g} s is treated as stale")
                announced = True
            if time.monotonic() - since > self.grace_s:
                _say(f"removed the lock {self.symlink}: unchanged for {self.grace_s:g} s (stale)")
                self._remove_symlink()
                continue
            time.sleep(0.01)

    def _recorded_owner(self, me: str) -> str | None:
        """The cascade process on record as holding the symlink (None: another program, or unknown).

        Only cascade processes holding the flock write the record, just before creating the symlink,
        and remove it just before removing the symlink; so while we hold the flock, a record naming
        another process means that process died holding the lock.
        """
        try:
            owner = Path(self.owner).read_text().strip()
        except OSError:
            return None
        return owner if owner and owner != me else None

    def _drop_symlink(self) -> None:
        _unlink(self.owner)
        self._remove_symlink()

    def _remove_symlink(self) -> None:
        tmp = f"{self.symlink}{uuid.uuid4()}.rename"
        try:
            os.rename(self.symlink, tmp)
        except FileNotFoundError:
            return
        os.unlink(tmp)


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


# ------------------------------------------------------------------------------------------------
# The backend
# ------------------------------------------------------------------------------------------------


def _stamp() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")


def _is_record(line: bytes) -> bool:
    try:
        return isinstance(json.loads(line), dict)
    except ValueError:
        return False


class SafeJournalBackend(JournalFileBackend):
    """optuna's journal file backend with :class:`CascadeJournalLock` and torn-tail repair.

    ``display`` is how the file is named in messages (a relative path).
    """

    def __init__(self, file_path: str, display: str | None = None) -> None:
        self.display = display or file_path
        super().__init__(file_path, lock_obj=CascadeJournalLock(file_path))

    # -- appends: lock, repair a torn tail, write one fsynced chunk, unlock; signals held meanwhile
    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        data = ("\n".join(json.dumps(log, separators=(",", ":")) for log in logs) + "\n").encode("utf-8")
        with deferred():
            self._lock.acquire()
            try:
                self._repair_tail()
                fd = os.open(self._file_path, os.O_WRONLY | os.O_APPEND)
                try:
                    _write_all(fd, data)
                    os.fsync(fd)
                finally:
                    os.close(fd)
            except OSError as e:
                why = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else e.strerror
                raise InputError(f"cannot append to the study journal ({why}); finished trials are kept, the "
                                 "partial record (if any) is repaired on the next run", file=self.display,
                                 field="--storage") from None
            finally:
                self._lock.release()

    def check(self) -> None:
        """At open time, under the lock: repair a torn tail or an old torn-then-appended line; refuse other damage."""
        with deferred():
            self._lock.acquire()
            try:
                self._repair_merged_lines()  # first: a file that is not a journal at all is refused untouched
                self._repair_tail()
            finally:
                self._lock.release()

    # -- repairs (lock held)
    def _repair_tail(self) -> None:
        """A partial last line: keep it if it is a whole record (add the newline), else back it up and cut it."""
        with open(self._file_path, "rb+") as fh:
            size = fh.seek(0, os.SEEK_END)
            if size == 0:
                return
            fh.seek(size - 1)
            if fh.read(1) == b"\n":
                return
            # find the start of the last line
            pos, chunk = size, 1 << 16
            start = 0
            while pos > 0:
                lo = max(0, pos - chunk)
                fh.seek(lo)
                buf = fh.read(pos - lo)
                nl = buf.rfind(b"\n")
                if nl >= 0:
                    start = lo + nl + 1
                    break
                pos = lo
            fh.seek(start)
            tail = fh.read()
            if _is_record(tail):
                fh.seek(size)
                fh.write(b"\n")
                fh.flush()
                os.fsync(fh.fileno())
                _say(f"{self.display}: the last record had lost its newline (a crash while writing); kept it")
                return
            backup = f"{self._file_path}.torn-{_stamp()}"
            with open(backup, "wb") as b:
                b.write(tail)
                b.flush()
                os.fsync(b.fileno())
            fh.truncate(start)
            fh.flush()
            os.fsync(fh.fileno())
        # offsets optuna cached are those of complete lines before ``start``: still valid
        _say(f"{self.display}: the last record was cut off (a crash or a full disk while writing); kept every "
             f"complete record, moved the {len(tail)} torn bytes to {os.path.basename(backup)}")

    def _repair_merged_lines(self) -> None:
        """Lines that are a torn record with a whole record appended (older versions did that): keep the record."""
        bad: list[int] = []
        fixed: list[bytes] = []
        changed = False
        with open(self._file_path, "rb") as fh:
            lines = fh.readlines()
        tail = lines.pop() if lines and not lines[-1].endswith(b"\n") else None  # _repair_tail's business
        for i, line in enumerate(lines):
            if _is_record(line):
                fixed.append(line)
                continue
            if not line.strip():  # a blank line holds nothing, but optuna cannot read past it
                changed = True
                continue
            body = line.rstrip(b"\r\n")
            cut = body.rfind(b'{"op_code"')
            if cut > 0 and _is_record(body[cut:]):
                fixed.append(body[cut:] + b"\n")
                changed = True
                continue
            bad.append(i + 1)
        total = len(lines) + (tail is not None)
        if bad and bad[0] == 1:
            raise InputError(f"not an optuna study journal (line 1 of {total} is not a study record); nothing was "
                             "changed: pass another file, or a new one to start a study", file=self.display,
                             field="--storage")
        if bad:
            more = "" if len(bad) == 1 else f" ({len(bad)} such lines)"
            keep = bad[0] - 1
            raise InputError(f"line {bad[0]} of {total} is not a study record{more}: the file is damaged and "
                             f"was not changed; to resume from the {keep} records before it: cp {self.display} "
                             f"{self.display}.bak && head -n {keep} {self.display}.bak > {self.display} "
                             "(or start over with --storage NEW_FILE)", file=self.display, field="--storage")
        if changed:
            if tail is not None:
                lines.append(tail)
                fixed.append(tail)
            backup = f"{self._file_path}.bak-{_stamp()}"
            with open(backup, "wb") as b:
                b.writelines(lines)
                b.flush()
                os.fsync(b.fileno())
            tmp = f"{self._file_path}.{uuid.uuid4().hex}.tmp"
            with open(tmp, "wb") as t:
                t.writelines(fixed)
                t.flush()
                os.fsync(t.fileno())
            os.replace(tmp, self._file_path)
            self._log_number_offset = {0: 0}
            _say(f"{self.display}: repaired records appended onto a torn line (kept every complete record; "
                 f"the original is {os.path.basename(backup)})")


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]
