"""The file edge: reading user files with checks, writing outputs atomically.

Reading: :func:`read_text` is the one checked reader every input file goes through (scenarios,
CSV books and price histories, snapshots, proposals, account lists). It refuses, with a one-line
:class:`~optimizer.errors.InputError` naming the file, what is not a regular file (a directory, a
FIFO, a device such as ``/dev/zero``) before opening it, files larger than a cap, binary content
and text that is not UTF-8 (UTF-16 and Latin-1 are named as such).

Writing: a reader (or a crash) never sees half a file.
"""

from __future__ import annotations

import csv
import io
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


def atomic_write_text(path: str | Path, text: str) -> None:
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", dir=p.parent)
    except OSError as e:
        raise InputError(f"cannot write ({e.strerror})", file=str(p)) from None
    try:
        with os.fdopen(fd, "w", newline="") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_csv(path: str | Path, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> int:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    n = 0
    for r in rows:
        w.writerow(r)
        n += 1
    atomic_write_text(path, buf.getvalue())
    return n
