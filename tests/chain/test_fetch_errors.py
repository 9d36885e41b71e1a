"""cascade fetch over HTTP against a JSON-RPC server wrapping the test chain: retries, timeouts, rate limits,
wrong chain, a server that dies mid-fetch; and one-line errors naming contract and function."""

import json
import os
import socket

import pytest
from deploy import address_of
from rpc_server import RpcServer

from optimizer.chain import ChainClient, ChainError, ClientOptions, fetch
from optimizer.chain.markets import market_from_json
from optimizer.cli import main

SECRET = "0123456789abcdef0123456789abcdef"
QUERY_KEY = "TOPSECRETKEY42"


def cli(args, capsys):
    try:
        main(args)
        code = 0
    except SystemExit as e:
        code = e.code
    out, err = capsys.readouterr()
    return code, out, err


def one_line(code, err, *fragments):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    for f in fragments:
        assert f in lines[0], lines[0]
    assert SECRET not in err and QUERY_KEY not in err
    return lines[0]


@pytest.fixture
def server(chain):
    s = RpcServer(chain.tester)
    yield s
    s.close()


def secret_url(server):
    return server.url(f"/v3/{SECRET}?apikey={QUERY_KEY}")


def _fast(*extra):
    return ["--retry-backoff", "0.01", "--concurrency", "2", *extra]


def test_fetch_over_http_from_env_var_writes_files_and_never_the_key(server, comet, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CASCADE_RPC_URL", secret_url(server))
    accounts = tmp_path / "accounts.txt"
    accounts.write_text("# comet borrowers\n" + "\n".join(comet.positions) + "\n")
    out = tmp_path / "out" / "comet.json"
    code, stdout, err = cli(["fetch", "--protocol", "compound-v3", "--market", str(comet.market_file(tmp_path)),
                             "--accounts", str(accounts), "--out", str(out), *_fast()], capsys)
    assert code == 0, err
    snap = out.read_text()
    book = (tmp_path / "out" / "comet.positions.csv").read_text()
    for text in (stdout, err, snap, book):
        assert SECRET not in text and QUERY_KEY not in text and "127.0.0.1" not in text
    assert server.paths and all(p == f"/v3/{SECRET}?apikey={QUERY_KEY}" for p in server.paths)
    assert json.loads(snap)["chain"]["block_number"] > 0
    assert "positions: 2 of 2 accounts" in stdout and f"wrote {out}" in stdout


def test_transient_errors_are_retried(server, maker, tmp_path, capsys):
    server.faults.extend([("status", 429), ("status", 503), ("sleep", 2.5), ("rpc_error", (-32005, "limit exceeded"))])
    out = tmp_path / "m.json"
    code, _, err = cli(["fetch", "--protocol", "maker", "--market", str(maker.market_file(tmp_path)), "--rpc",
                        secret_url(server), "--out", str(out), "--timeout", "1.5", *_fast()], capsys)
    assert code == 0, err
    assert json.loads(out.read_text())["global"]["osm_hop_s"] == 3600
    # four failed attempts (429, 503, a timeout, a JSON-RPC limit error), each retried, then the fetch went through
    assert not server.faults and len(server.paths) >= 4 + len(server.methods) - 1


def test_rate_limit_that_outlasts_the_retries(server, maker, tmp_path, capsys):
    server.faults.extend([("status", 429)] * 10)
    out = tmp_path / "m.json"
    code, _, err = cli(["fetch", "--protocol", "maker", "--market", str(maker.market_file(tmp_path)), "--rpc",
                        secret_url(server), "--out", str(out), "--retries", "2", *_fast()], capsys)
    one_line(code, err, "--rpc: rate limited by the RPC endpoint", "HTTP 429", "eth_chainId", "(3 attempts)",
             "/v3/***")
    assert not out.exists()


def test_json_rpc_limit_error_that_persists(server, maker, tmp_path, capsys):
    server.faults.extend([("rpc_error", (-32005, "daily request limit exceeded"))] * 5)
    code, _, err = cli(["fetch", "--protocol", "maker", "--market", str(maker.market_file(tmp_path)), "--rpc",
                        secret_url(server), "--retries", "1", *_fast()], capsys)
    one_line(code, err, "rate limited by the RPC endpoint", "JSON-RPC error -32005: daily request limit exceeded")


@pytest.mark.skipif(not os.environ.get("CASCADE_FULL_TESTS"), reason="a subprocess start (~3 s); CASCADE_FULL_TESTS=1")
def test_installed_command_one_line_error(tmp_path):
    from _cli_helpers import cascade, one_line_error

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    res = cascade("fetch", "--protocol", "maker", "--rpc", f"http://127.0.0.1:{port}/v3/{SECRET}", "--retries", "0",
                  cwd=tmp_path)
    one_line_error(res, "cannot reach the RPC endpoint", "connection refused")
    assert SECRET not in res.stderr + res.stdout


def test_timeout(server, maker, tmp_path, capsys):
    server.faults.extend([("sleep", 1.0)] * 3)
    code, _, err = cli(["fetch", "--protocol", "maker", "--market", str(maker.market_file(tmp_path)), "--rpc",
                        secret_url(server), "--out", str(tmp_path / "m.json"), "--timeout", "0.2", "--retries", "1",
                        *_fast()], capsys)
    one_line(code, err, "did not answer eth_chainId within 0.2 s", "(2 attempts)")


def test_wrong_chain_id(chain, maker, tmp_path, capsys):
    s = RpcServer(chain.tester, chain_id=1)
    try:
        code, _, err = cli(["fetch", "--protocol", "maker", "--market", str(maker.market_file(tmp_path)), "--rpc",
                            s.url(), "--out", str(tmp_path / "m.json"), *_fast()], capsys)
    finally:
        s.close()
    one_line(code, err, "serves chain id 1, but market 'test-maker'", f"is on chain id {chain.chain_id}")


def test_default_market_is_mainnet(server, tmp_path, capsys, chain):
    code, _, err = cli(["fetch", "--protocol", "aave-v3", "--rpc", secret_url(server), *_fast()], capsys)
    one_line(code, err, f"serves chain id {chain.chain_id}, but market 'ethereum-core'",
             "is on chain id 1 (Ethereum mainnet)")


def test_unreachable_endpoint(tmp_path, capsys):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://user:hunter2pass@127.0.0.1:{port}/v3/{SECRET}?apikey={QUERY_KEY}"
    code, _, err = cli(["fetch", "--protocol", "maker", "--rpc", url, "--retries", "1", *_fast()], capsys)
    line = one_line(code, err, f"cannot reach the RPC endpoint http://user:***@127.0.0.1:{port}/v3/***",
                    "connection refused", "eth_chainId")
    assert "hunter2pass" not in line


def test_server_dies_mid_fetch_nothing_written(server, comet, tmp_path, capsys):
    server.faults.extend([("ok", None)] * 6 + [("die", None)])
    out = tmp_path / "c.json"
    code, _, err = cli(["fetch", "--protocol", "compound-v3", "--market", str(comet.market_file(tmp_path)), "--rpc",
                        secret_url(server), "--out", str(out), "--retries", "2", *_fast()], capsys)
    one_line(code, err, "cannot reach the RPC endpoint", "/v3/***")
    assert list(tmp_path.iterdir()) == [tmp_path / "market-compound_v3-0.json"]  # no snapshot, no temp file


# ------------------------------------------------------------------ errors naming contract and function
def _client(chain):
    return ChainClient(chain.provider, ClientOptions(concurrency=1))


def test_address_without_code(chain, comet):
    nowhere = address_of("no-code-here")
    market = market_from_json({**comet.market, "contracts": {"Comet": nowhere}}, file=None, protocol="compound_v3")
    with pytest.raises(ChainError, match=rf"^Comet {nowhere}: no contract code at this address on chain id "
                                         rf"{chain.chain_id} at block \d+ \(wrong address or wrong network\?\)$"):
        fetch("compound_v3", client=_client(chain), market=market)


def test_reverted_call_names_contract_function_and_reason(chain, maker):
    log = chain.deploy("MakerChainlog")
    chain.send(log.functions.setAddress(b"MCD_VAT".ljust(32, b"\0"), maker.contracts["vat"].address))
    market = market_from_json({**maker.market, "contracts": {"Chainlog": log.address}}, file=None, protocol="maker")
    with pytest.raises(ChainError, match=rf"^Maker Chainlog {log.address} getAddress\(bytes32\) at block \d+: "
                                         r"reverted: 'dss-chain-log/invalid-key'$"):
        fetch("maker", client=_client(chain), market=market)


def test_malformed_return_and_missing_function(chain, comet):
    bad = chain.deploy("Malformed")
    market = market_from_json({**comet.market, "contracts": {"Comet": bad.address}}, file=None, protocol="compound_v3")
    with pytest.raises(ChainError, match=rf"Comet {bad.address} (numAssets|baseToken)\(\) at block \d+: "):
        fetch("compound_v3", client=_client(chain), market=market)
    with pytest.raises(ChainError, match=r"numAssets\(\) at block \d+: malformed return: returned 32 bytes that do not "
                                         r"decode as \(uint8\)"):
        fetch("compound_v3", client=ChainClient(chain.provider, ClientOptions(concurrency=1, multicall=False)),
              market=market)
    token = comet.tokens["WETH"]  # an ERC-20 has code but none of Comet's functions
    market = market_from_json({**comet.market, "contracts": {"Comet": token}}, file=None, protocol="compound_v3")
    with pytest.raises(ChainError, match=r"reverted: no reason given \(the contract may not have this function\)"):
        fetch("compound_v3", client=_client(chain), market=market)


def test_stale_price_and_block_pinning(chain, comet, restore):
    before = chain.block_number()
    feed = comet.feeds["WETH"]
    chain.send(feed.functions.setAnswer(2_500 * 10**8, chain.now() - 30 * 3600))
    market = market_from_json(comet.market, file=None, protocol="compound_v3")
    with pytest.raises(ChainError, match=r"stale price at block \d+: WETH \(0x[0-9a-fA-F]{40}\): updated 30\.\d h "
                                         r"before the block \(limit 25 h\); use --allow-stale"):
        fetch("compound_v3", client=_client(chain), market=market)
    from optimizer.chain import Options

    f = fetch("compound_v3", client=_client(chain), market=market, options=Options(allow_stale=True))
    assert f.snapshot["price_feeds"]["WETH"]["stale"] and f.snapshot["prices_usd"]["WETH"] == 2500
    old = fetch("compound_v3", client=_client(chain), market=market, block=before)
    assert old.snapshot["prices_usd"]["WETH"] == comet.prices["WETH"] and old.block.number == before


# ------------------------------------------------------------------ bad input: one line, exit 2
def test_bad_inputs(tmp_path, capsys, monkeypatch, maker):
    monkeypatch.delenv("CASCADE_RPC_URL", raising=False)
    one_line(*cli(["fetch", "--protocol", "maker"], capsys)[::2],
             "--rpc: no RPC endpoint: give --rpc URL or set CASCADE_RPC_URL")
    one_line(*cli(["fetch", "--protocol", "maker", "--rpc", f"wss://x.example/{SECRET}"], capsys)[::2],
             "--rpc: must be an http:// or https:// URL")
    one_line(*cli(["fetch", "--protocol", "maker", "--market", "nope", "--rpc", "http://x"], capsys)[::2],
             "--market: unknown market 'nope' for maker (known: mainnet")
    acc = tmp_path / "a.txt"
    acc.write_text("0x" + "ab" * 20 + "\n0x1234\n")
    one_line(*cli(["fetch", "--protocol", "aave-v3", "--accounts", str(acc), "--rpc", "http://x"], capsys)[::2],
             f"{acc}: line 2: must be a 0x-prefixed 20-byte address")
    acc.write_text("ETH-A:0x" + "ab" * 20 + "\n")
    one_line(*cli(["fetch", "--protocol", "aave-v3", "--accounts", str(acc), "--rpc", "http://x"], capsys)[::2],
             "line 1: 'ETH-A:0x", "only meaningful for maker")
    one_line(*cli(["fetch", "--protocol", "maker", "--max-price-age", "soon", "--rpc", "http://x"], capsys)[::2],
             "--max-price-age: 'soon' is not a duration")
    bad_market = maker.market_file(tmp_path, chain_id="one")
    one_line(*cli(["fetch", "--protocol", "maker", "--market", str(bad_market), "--rpc", "http://x"], capsys)[::2],
             f"{bad_market}: chain_id: must be a positive whole number")
