"""No credential survives redaction, whatever part of the URL holds it."""

import pytest

from optimizer.redact import redact_text, redact_url

SECRET = "S3cretPW"


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://user:{SECRET}@db.example.com:5432/cascade",
    f"postgresql+psycopg://:{SECRET}@db.example.com/cascade",
    f"postgresql+psycopg://user:S3c@{SECRET}@db.example.com/cascade",
    f"postgresql+psycopg://user:a/b{SECRET}@db.example.com/cascade",
    f"postgresql+psycopg://user@db.example.com/cascade?password={SECRET}",
    f"postgresql+psycopg://user@db.example.com/cascade?sslmode=require&PASSWORD={SECRET}",
    f"https://rpc.example.com/?apikey={SECRET}&chain=1",
    f"https://rpc.example.com/#token={SECRET}",
    "https://mainnet.infura.io/v3/0123456789abcdef0123456789abcdef",
    "https://eth-mainnet.g.alchemy.com/v2/AbCdEfGh12345678_IjKlMnOpQr",
])
def test_every_credential_form_is_masked(url):
    out = redact_url(url)
    assert SECRET not in out
    assert "0123456789abcdef0123456789abcdef" not in out and "AbCdEfGh12345678" not in out
    assert "***" in out
    assert redact_text(f"cannot open {url}: refused") == f"cannot open {out}: refused"


@pytest.mark.parametrize("url", ["sqlite:///runs/study.db", "http://127.0.0.1:8545", "postgresql://host/db",
                                 "https://example.com/runs/a-study-name-without-digits?chain=1"])
def test_urls_without_credentials_are_unchanged(url):
    assert redact_url(url) == url


def test_host_and_user_stay_readable():
    assert redact_url(f"postgresql+psycopg://alice:{SECRET}@db:5432/x") == "postgresql+psycopg://alice:***@db:5432/x"


def test_known_secrets_are_masked_in_free_text_also_url_quoted():
    assert redact_text("password p@ss:word! and p%40ss%3Aword%21", ("p@ss:word!",)) == "password *** and ***"


@pytest.mark.parametrize("url", [
    f"postgresql+psycopg://user:{SECRET}@db.example.com/cascade",
    f"postgresql+psycopg://:{SECRET}@db.example.com/cascade",
    f"postgresql+psycopg://user:S3c@{SECRET}@db.example.com/cascade",
    f"postgresql+psycopg://user@db.example.com/cascade?password={SECRET}",
])
def test_driver_messages_that_render_the_password_otherwise_are_masked(url):
    from optimizer.redact import url_secrets

    secrets = url_secrets(url)
    for text in (f'connection failed: password "{SECRET}" rejected', f"dsn: user=user password={SECRET} host=db",
                 f"could not parse {url.replace('://', ':// ')}"):
        assert SECRET not in redact_text(text, secrets)


@pytest.mark.parametrize("url", [
    f"nosuchdriver://user:{SECRET}@host/db",
    f"postgresql+psycopg://user:{SECRET}@127.0.0.1:1/db",
    f"postgresql+psycopg://:{SECRET}@127.0.0.1:1/db?connect_timeout=1",
    f"postgresql+psycopg://user@127.0.0.1:1/db?password={SECRET}&connect_timeout=1",
    f"postgresql+psycopg://user:S3c@{SECRET}@127.0.0.1:1/db?connect_timeout=1",
])
def test_cascade_optimize_never_prints_a_storage_password(tmp_path, url):
    import sys
    from pathlib import Path

    from _cli_helpers import cascade_in_process

    sys.path.insert(0, str(Path(__file__).resolve().parent / "search"))
    from search_helpers import scenario

    res = cascade_in_process("optimize", scenario(tmp_path, paths=4, positions=100), "--storage", url, "--trials", "1",
                             cwd=tmp_path)
    assert res.returncode == 2 and "--storage" in res.stderr, res.stderr
    assert SECRET not in res.stderr + res.stdout and "S3c@" not in res.stderr


@pytest.mark.parametrize("url, key", [
    ("https://eth-mainnet.g.alchemy.com/v2/AbCdEfghijklmnop", "AbCdEfghijklmnop"),  # letters only, after /v2/
    ("https://mainnet.infura.io/v3/0123456789abcdef", "0123456789abcdef"),  # shorter than 20, after /v3/
])
def test_a_key_right_after_a_version_segment_is_masked_whatever_its_length(url, key):
    assert key not in redact_url(url) and redact_url(url).endswith("/***")
    assert key not in redact_text(f"cannot reach {url}: timeout")
