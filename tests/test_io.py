"""The checked reader refuses what is not a regular UTF-8 text file, by name, without reading it all."""

import os

import pytest

from optimizer.errors import InputError
from optimizer.io import read_text


def _err(path, **kw):
    with pytest.raises(InputError) as e:
        read_text(path, **kw)
    return str(e.value)


def test_regular_utf8_file_is_read_and_bom_dropped(tmp_path):
    p = tmp_path / "a.toml"
    p.write_bytes(b"\xef\xbb\xbfname = 'x'\n")
    assert read_text(p) == "name = 'x'\n"


def test_directory_fifo_and_device_are_refused_before_reading(tmp_path):
    assert "is a directory" in _err(tmp_path)
    fifo = tmp_path / "f"
    os.mkfifo(fifo)
    assert "is a FIFO" in _err(fifo)  # would block forever if opened
    assert "character device" in _err("/dev/zero")  # would read until memory runs out


@pytest.mark.parametrize("data,words", [
    ("name = 'x'".encode("utf-16"), "UTF-16"),
    ("caf\u00e9 = 1".encode("latin-1"), "Latin-1"),
    (b"\x7fELF\x02\x01\x00\x00binary", "binary"),
])
def test_non_utf8_content_is_named(tmp_path, data, words):
    p = tmp_path / "s.toml"
    p.write_bytes(data)
    msg = _err(p, label="s.toml", field="protocols[0].book.path")
    assert msg.startswith("s.toml: protocols[0].book.path: ") and words in msg and "\n" not in msg


def test_size_cap(tmp_path):
    p = tmp_path / "big.csv"
    p.write_bytes(b"x" * 2048)
    assert "limit" in _err(p, max_bytes=1024)
    assert _err(tmp_path / "missing.csv").endswith("file not found")


def test_atomic_files_get_the_umask_and_keep_an_existing_mode(tmp_path):
    from optimizer.io import atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o644
        (tmp_path / "a.txt").chmod(0o600)
        atomic_write_text(tmp_path / "a.txt", "y")
        assert (tmp_path / "a.txt").stat().st_mode & 0o777 == 0o600 and (tmp_path / "a.txt").read_text() == "y"
    finally:
        os.umask(old)


def test_an_interrupted_write_leaves_neither_a_partial_file_nor_a_temporary(tmp_path):
    from optimizer.io import AtomicFile

    (tmp_path / "out.csv").write_text("old\n")
    with pytest.raises(KeyboardInterrupt), AtomicFile(tmp_path / "out.csv") as fh:
        fh.write("half")
        raise KeyboardInterrupt
    assert (tmp_path / "out.csv").read_text() == "old\n" and [p.name for p in tmp_path.iterdir()] == ["out.csv"]


def test_check_writable(tmp_path):
    from optimizer.io import check_writable

    check_writable(tmp_path / "new" / "deeper" / "x.csv", "--out")  # folders still to be created: fine
    assert not (tmp_path / "new").exists() and not list(tmp_path.iterdir())  # and nothing left behind
    with pytest.raises(InputError, match="--out: is a directory"):
        check_writable(tmp_path, "--out")
    (tmp_path / "f").write_text("")
    with pytest.raises(InputError, match="not a directory"):
        check_writable(tmp_path / "f" / "x.csv", "--out")


def test_chunked_csv_writer_is_atomic_generic_and_stops_before_filling_the_disk(tmp_path, monkeypatch):
    import shutil
    from collections import namedtuple

    import pandas as pd

    from optimizer.io import CsvChunkWriter

    p = tmp_path / "ev.csv"
    with CsvChunkWriter(p, option="--events", total=4) as w:
        w.write(pd.DataFrame({"path": [0, 0], "asset": ["WETH", "x,y"], "usd": [1.5, 2.0]}), done=1)
        assert not p.exists()  # appears whole or not at all
        w.write(pd.DataFrame({"path": [3], "asset": ["USDC"], "usd": [0.1]}), done=4)
    assert p.read_text() == 'path,asset,usd\n0,WETH,1.5\n0,"x,y",2.0\n3,USDC,0.1\n'
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda _: usage(10**9, 0, 64 * 2**20 + 100))
    big = pd.DataFrame({"v": range(20000)})
    with pytest.raises(InputError) as e, CsvChunkWriter(tmp_path / "big.csv", option="--events", total=1000) as w:
        w.write(big, done=1)
    assert "--events" in str(e.value) and "GiB free" in str(e.value) and "fewer paths" in str(e.value)
    assert not list(tmp_path.glob("*big*"))
