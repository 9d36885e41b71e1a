"""The file edge: reading user files with checks, writing outputs atomically.

Reading: :func:`read_text` is the one checked reader every input file goes through (scenarios,
CSV books and price histories, snapshots, proposals, account lists). It refuses, with a one-line
:class:`~optimizer.errors.InputError` naming the file, what is not a regular file (a directory, a
FIFO, a device such as ``/dev/zero``) before opening it, files larger than a cap, binary content
and text that is not UTF-8 (UTF-16 and Latin-1 are named as such).

Writing: a reader (or a crash) never sees half a file (:func:`atomic_write_text`, :class:`AtomicFile`,
:class:`CsvChunkWriter` for large CSVs written chunk by chunk); new files get the user's umask;
:func:`check_writable` refuses an output path before the work that would fill it.
"""

from __future__ import annotations

import contextlib
import csv
import os
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from .errors import InputError

MAX_INPUT_BYTES = 256 * 2**20  # no input file of the tool is near this; /dev/zero-like inputs stop here


def read_bytes(path: str | Path, *, label: str | None = None, field: str | None = None,
               max_bytes: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``; anything else is an :class:`InputError`.

    ``label`` is how the file is named in messages (default: the path); ``field`` the key or option
    that pointed at it.
    """
    import stat

    p = Path(path)
    name = label or str(p)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise InputError("file not found", file=name, field=field) from None
    except OSError as e:
        raise InputError(f"cannot read ({e.strerror})", file=name, field=field) from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError("is a directory, not a file", file=name, field=field)
    if not stat.S_ISREG(st.st_mode):
        kind = ("a FIFO" if stat.S_ISFIFO(st.st_mode) else "a character device" if stat.S_ISCHR(st.st_mode)
                else "a block device" if stat.S_ISBLK(st.st_mode) else "a socket" if stat.S_ISSOCK(st.st_mode)
                else "not a regular file")
        raise InputError(f"is {kind}, not a regular file", file=name, field=field)
    if st.st_size > max_bytes:
        raise InputError(f"is {st.st_size / 2**20:.1f} MiB, larger than the {max_bytes / 2**20:.0f} MiB limit",
                         file=name, field=field)
    try:
        fd = os.open(p, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        with os.fdopen(fd, "rb") as fh:
            if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):  # replaced between stat and open
                raise InputError("is not a regular file", file=name, field=field)
            data = fh.read(max_bytes + 1)
    except OSError as e:
        raise InputError(f"cannot read ({e.strerror})", file=name, field=field) from None
    if len(data) > max_bytes:
        raise InputError(f"is larger than the {max_bytes / 2**20:.0f} MiB limit", file=name, field=field)
    return data


def decode_text(data: bytes, *, label: str, field: str | None = None) -> str:
    """UTF-8 text (an UTF-8 BOM is dropped); UTF-16/32, binary and other encodings are refused by name."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise InputError("is UTF-16 text; save it as UTF-8", file=label, field=field)
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\x00" in data[:65536]:
        raise InputError("is a binary file, not text", file=label, field=field)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        hint = " (looks like Latin-1 or Windows-1252)" if all(b >= 0x80 for b in data[e.start:e.end]) else ""
        raise InputError(f"is not UTF-8 text: byte 0x{data[e.start]:02x} at line {line}{hint}; save it as UTF-8",
                         file=label, field=field) from None


def read_text(path: str | Path, *, label: str | None = None, field: str | None = None,
              max_bytes: int = MAX_INPUT_BYTES) -> str:
    """Checked UTF-8 text of a user file (see :func:`read_bytes` and :func:`decode_text`)."""
    return decode_text(read_bytes(path, label=label, field=field, max_bytes=max_bytes), label=label or str(path),
                       field=field)


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _target_mode(p: Path) -> int:
    """The mode a new output file gets: the existing file's, else 0666 minus the user's umask."""
    import stat

    try:
        return stat.S_IMODE(os.stat(p).st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _write_error(e: OSError, p: Path, option: str | None = None) -> InputError:
    import errno

    why = "the disk is full" if e.errno in (errno.ENOSPC, errno.EDQUOT) else e.strerror or str(e)
    return InputError(f"cannot write ({why})", file=str(p), field=option)


def check_writable(path: str | Path, option: str | None = None) -> None:
    """Refuse, before any work, an output path the atomic writer could not create.

    The file is written as a temporary file in its folder and renamed, so what matters is that the
    path is not a directory and that its folder (or the nearest existing ancestor, when the folder
    is still to be created) is a writable directory. The check creates and removes a probe file
    there (permissions, read-only file systems and ACLs all show up).
    """
    p = Path(path)
    if p.is_dir():
        raise InputError("is a directory, not a file", file=str(p), field=option)
    parent = p.parent if str(p.parent) else Path(".")
    anc = parent
    while not anc.exists():
        if anc.parent == anc:
            break
        anc = anc.parent
    if not anc.is_dir():
        raise InputError(f"cannot write: '{anc}' is not a directory", file=str(p), field=option)
    try:  # a probe where the first new entry would go (the folder, or the ancestor the folders start in)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".probe", dir=anc)
    except OSError as e:
        raise _write_error(e, p, option) from None
    os.close(fd)
    os.unlink(tmp)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file renamed over it (readers never see half a file).

    The file gets the existing file's mode, or the user's umask for a new file (not mkstemp's 0600).
    """
    with AtomicFile(path) as fh:
        fh.write(text)


class AtomicFile:
    """``with AtomicFile(path) as fh: fh.write(...)``: a text file that appears whole or not at all.

    Written to a temporary file in the target folder, flushed, fsynced and renamed over ``path`` on
    success; removed on any exception (including KeyboardInterrupt). Mode as for
    :func:`atomic_write_text`. ``OSError`` while writing (a full disk) becomes an :class:`InputError`
    naming the file.
    """

    def __init__(self, path: str | Path, option: str | None = None) -> None:
        self.path, self.option = Path(path), option
        self.fh: Any = None
        self.tmp: str | None = None

    def __enter__(self):
        p = self.path
        try:
            p.parent.mkdir(parents=True, exist_ok=True)
            mode = _target_mode(p)
            fd, self.tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
            os.fchmod(fd, mode)
        except OSError as e:
            raise _write_error(e, p, self.option) from None
        self.fh = os.fdopen(fd, "w", newline="", encoding="utf-8")
        return self.fh

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self.tmp is not None
        try:
            if exc_type is None:
                self.fh.flush()
                os.fsync(self.fh.fileno())
            self.fh.close()
            if exc_type is None:
                os.replace(self.tmp, self.path)
                self.tmp = None
        except OSError as e:
            raise _write_error(e, self.path, self.option) from None
        finally:
            if self.tmp is not None:
                if not self.fh.closed:
                    with contextlib.suppress(OSError):
                        self.fh.close()
                Path(self.tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and not isinstance(exc, InputError):
            raise _write_error(exc, self.path, self.option) from None


def write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> int:
    """Rows of dicts as a CSV with a header, written atomically; returns the row count."""
    n = 0
    with AtomicFile(path) as fh:
        w = csv.DictWriter(fh, fieldnames=list(columns), lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow(r)
            n += 1
    return n


class CsvChunkWriter:
    """A CSV written chunk by chunk through pandas, atomically, never holding more than one chunk.

    Generic over the columns: the first chunk's columns (or ``columns``) make the header; every
    later chunk must have the same columns in the same order. ``projected_bytes(done, total)``
    after each chunk extrapolates the final size; when it exceeds the free space of the target's
    file system the writer stops with an :class:`InputError` (``option`` names the command-line
    option) instead of filling the disk::

        with CsvChunkWriter("events.csv", option="--events", total=n_paths) as w:
            for frame, done in chunks:
                w.write(frame, done=done)
    """

    def __init__(self, path: str | Path, *, columns: Sequence[str] | None = None, option: str | None = None,
                 total: int | None = None, reserve_bytes: int = 64 * 2**20) -> None:
        self.path, self.option, self.total = Path(path), option, total
        self.columns = list(columns) if columns is not None else None
        self.reserve_bytes = reserve_bytes
        self.rows = 0
        self._atomic = AtomicFile(path, option)
        self._fh: Any = None
        self._header_written = False

    def __enter__(self) -> CsvChunkWriter:
        self._fh = self._atomic.__enter__()
        if self.columns is not None:
            self._header(self.columns)
        return self

    def _header(self, cols: Sequence[str]) -> None:
        w = csv.writer(self._fh, lineterminator="\n")
        w.writerow(list(cols))
        self._header_written = True

    def write(self, frame: Any, *, done: int | None = None) -> None:
        """Append one chunk (a pandas DataFrame); ``done`` = units (paths) covered so far of ``total``."""
        cols = list(frame.columns)
        if self.columns is None:
            self.columns = cols
        if cols != self.columns:
            raise ValueError(f"chunk columns {cols} differ from the header {self.columns}")
        if not self._header_written:
            self._header(self.columns)
        try:
            if len(frame):
                frame.to_csv(self._fh, header=False, index=False, lineterminator="\n")
        except OSError as e:
            raise _write_error(e, self.path, self.option) from None
        self.rows += len(frame)
        if done and self.total and done < self.total:
            self._check_space(done)

    def _check_space(self, done: int) -> None:
        import shutil

        self._fh.flush()
        written = os.fstat(self._fh.fileno()).st_size
        projected = written * self.total / done
        free = shutil.disk_usage(self.path.parent).free
        if projected - written > free - self.reserve_bytes:
            raise InputError(f"the first {done} of {self.total} paths wrote {written / 2**20:.0f} MiB of rows: "
                             f"all would need ~{projected / 2**30:.1f} GiB, only {free / 2**30:.1f} GiB free on "
                             f"{self.path.parent}; use fewer paths or another folder", file=str(self.path),
                             field=self.option)

    def __exit__(self, exc_type, exc, tb) -> None:
        self._atomic.__exit__(exc_type, exc, tb)
