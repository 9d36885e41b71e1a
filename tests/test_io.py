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
