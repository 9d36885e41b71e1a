"""cascade watch against the JSON-RPC server: three ticks while the oracle price falls; the log shows the
change and the alert fires at the tick where an account becomes liquidatable; a failed tick is retried."""

import json

import pytest
from rpc_server import RpcServer
from test_fetch_errors import QUERY_KEY, SECRET, cli

SCENARIO = """
[scenario]
name = "watch-comet"
step_min = 30
horizon_h = 2
paths = 8
seed = 7
[assets.WETH]
price_usd = 3000
model = "gbm"
sigma_annual = 0.6
[assets.WBTC]
price_usd = 60000
model = "gbm"
sigma_annual = 0.5
[assets.LINK]
price_usd = 15
model = "gbm"
sigma_annual = 0.9
[assets.USDC]
price_usd = 1
model = "constant"
[[protocols]]
adapter = "compound_v3"
snapshot = "snap.json"
[protocols.book]
kind = "csv"
path = "snap.positions.csv"
"""


@pytest.fixture
def watched(chain, comet, tmp_path, capsys, restore):
    """A fetched snapshot + book of the deployed Comet accounts, a scenario on them, and a server."""
    server = RpcServer(chain.tester)
    url = server.url(f"/v3/{SECRET}?apikey={QUERY_KEY}")
    (tmp_path / "accounts.txt").write_text("\n".join(comet.positions) + "\n")
    code, _, err = cli(["fetch", "--protocol", "compound-v3", "--market", str(comet.market_file(tmp_path)), "--rpc", url,
                        "--accounts", str(tmp_path / "accounts.txt"), "--out", str(tmp_path / "snap.json")], capsys)
    assert code == 0, err
    (tmp_path / "s.toml").write_text(SCENARIO)
    yield server, url, tmp_path
    server.close()


def test_three_ticks_price_falls_log_shows_it_and_alert_fires_at_tick_3(chain, comet, watched, capsys):
    server, url, tmp = watched
    feed = comet.feeds["WETH"]
    ticks = {"n": 0}

    def move_price(method):  # runs in the server before it answers: the chain moves between ticks
        if method == "eth_chainId":
            ticks["n"] += 1
            new = {2: 2000, 3: 1300}.get(ticks["n"])
            if new:
                chain.send(feed.functions.setAnswer(new * 10**8, chain.now()))

    server.hook = move_price
    log = tmp / "watch.jsonl"
    code, out, err = cli(["watch", str(tmp / "s.toml"), "--rpc", url, "--every", "0.01s", "--ticks", "3",
                          "--paths", "8", "--alert", "liquidatable_now>0", "--alert", "bad_debt_usd.var_99>1e12",
                          "--log", str(log)], capsys)
    assert code == 0, err
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["tick"] for r in recs] == [1, 2, 3] and all(r["ok"] for r in recs)
    assert [r["prices_usd"]["WETH"] for r in recs] == [3011.25, 2000.0, 1300.0]
    assert recs[0]["changes"] == {"first_tick": True}
    assert recs[1]["changes"]["prices"]["WETH"]["from"] == 3011.25 and recs[1]["changes"]["prices"]["WETH"]["to"] == 2000
    assert recs[2]["changes"]["blocks"] >= 1 and recs[1]["block"] > recs[0]["block"]
    # user 1: 12.75 WETH at liquidateCF 0.88 against 20,000.5 USDC: healthy at 2,000, liquidatable at 1,300
    assert [r["metrics"]["liquidatable_now"]["mean"] for r in recs] == [0, 0, 1]
    assert [r["alerts"] for r in recs] == [[], [], ["liquidatable_now>0"]]
    assert recs[2]["new_alerts"][0]["alert"] == "liquidatable_now>0"
    assert recs[2]["changes"]["liquidatable_now"] == {"from": 0.0, "to": 1.0}
    bd = recs[2]["metrics"]["bad_debt_usd"]
    assert {"mean", "stderr", "var_99", "var_99_ci95"} <= set(bd)
    assert recs[1]["changes"]["bad_debt_usd"]["paired"] is True  # same seed every tick: paired differences
    lines = out.strip().splitlines()
    assert [ln.split(" | ")[0].split("] ")[1] for ln in lines if ln.startswith("[")] == \
        [f"tick {k} block {recs[k - 1]['block']}" for k in (1, 2, 3)]
    alert_lines = [ln for ln in lines if ln.startswith("ALERT")]
    assert len(alert_lines) == 1 and alert_lines[0].startswith(f"ALERT tick 3 block {recs[2]['block']}: "
                                                               "liquidatable_now>0 (now 1")
    assert "WETH -33.6%" in lines[1]
    assert recs[0]["metrics"]["debt_usd"]["mean"] == pytest.approx(29000.5 * 0.99993)
    for text in (out, err, log.read_text()):
        assert SECRET not in text and QUERY_KEY not in text


def test_failed_tick_is_logged_and_retried_and_exit_on_alert(chain, comet, watched, capsys):
    server, url, tmp = watched
    log = tmp / "w.jsonl"
    server.faults.extend([("status", 503)] * 2)
    code, out, err = cli(["watch", str(tmp / "s.toml"), "--rpc", url, "--every", "0.01s", "--retry-after", "0.01s",
                          "--ticks", "2", "--retries", "1", "--retry-backoff", "0", "--log", str(log)], capsys)
    assert code == 0, err
    recs = [json.loads(line) for line in log.read_text().splitlines()]
    assert [r["ok"] for r in recs] == [False, True]
    assert "HTTP 503" in recs[0]["error"] and "/v3/***" in recs[0]["error"] and SECRET not in log.read_text()
    assert "tick 1 failed: --rpc: the RPC endpoint" in out and "retrying in 0.01 s" in out
    chain.send(comet.feeds["WETH"].functions.setAnswer(1000 * 10**8, chain.now()))
    code, out, _ = cli(["watch", str(tmp / "s.toml"), "--rpc", url, "--every", "1h", "--ticks", "5",
                        "--alert", "liquidatable_now>=1", "--exit-on-alert"], capsys)
    assert code == 3 and out.count("ALERT tick 1") == 1 and "tick 2" not in out


def test_watch_bad_alert_is_one_line(tmp_path, capsys):
    (tmp_path / "s.toml").write_text(SCENARIO)
    code, _, err = cli(["watch", str(tmp_path / "s.toml"), "--rpc", "http://127.0.0.1:9", "--alert", "bad_debt>1"],
                       capsys)
    assert code == 2 and err.strip() == ("cascade: error: --alert: unknown metric 'bad_debt' in 'bad_debt>1' (one of "
                                         "bad_debt_usd, bad_debt_share, liquidated_usd, liquidations, debt_usd, "
                                         "collateral_usd, liquidatable_now, debt_at_risk_usd, stale_feeds)")


def test_ctrl_c_stops_cleanly(watched):
    from optimizer.chain.watch import WatchConfig, Watcher

    _server, url, tmp = watched
    lines = []
    w = Watcher(WatchConfig(scenario=str(tmp / "s.toml"), rpc=url, every_s=600, log=tmp / "c.jsonl"),
                echo=lines.append)

    def interrupt(_seconds):
        raise KeyboardInterrupt

    assert w.run(sleep=interrupt) == 130
    assert lines[-1] == f"stopped after 1 tick(s); the log {tmp / 'c.jsonl'} holds one line per tick"
    assert len((tmp / "c.jsonl").read_text().splitlines()) == 1 and not w.workdir.exists()
