"""A live stress gauge: re-fetch a scenario's protocols from the chain and re-run its stress, tick after tick.

Each tick (:meth:`Watcher.tick`):

1. pins one block and fetches every protocol of the scenario there (parameters, oracle prices and,
   for CSV books, the book's accounts), writing the snapshot and positions into a work folder;
2. rebuilds the scenario on them: ``snapshot =`` the fetched file, the CSV book the fetched
   positions, each asset's starting price the fetched oracle price (replayed assets keep their
   series), Comet reserves the fetched reserves;
3. runs the scenario's stress with the same seed every tick (common random numbers: a change
   between ticks is the state's, not Monte Carlo noise; deltas carry a paired standard error);
4. appends one JSON line to the log (block, time, headline metrics with their errors, what changed
   since the last tick, alerts) and prints a one-line status, plus an alert line when a threshold is
   crossed.

A failed tick is logged (``"ok": false`` and the one-line reason) and retried after a shorter
wait; it is never fatal. The RPC URL never reaches the log or the screen.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..redact import redact_text
from .markets import Market, market_from_json, protocol_name, read_accounts, resolve_market
from .rpc import ChainClient, ClientOptions

# Headline metrics an alert can name (``NAME`` or ``NAME.STAT``; a bare name means its mean).
HEADLINE = ("bad_debt_usd", "bad_debt_share", "liquidated_usd", "liquidations", "debt_usd", "collateral_usd",
            "liquidatable_now", "debt_at_risk_usd", "stale_feeds")
_ALERT = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*(>=|<=|>|<)\s*([-+0-9.eE_]+)\s*$")


@dataclass(frozen=True)
class Alert:
    metric: str
    op: str
    threshold: float
    text: str

    def holds(self, value: float | None) -> bool:
        if value is None or not math.isfinite(value):
            return False
        return {">": value > self.threshold, ">=": value >= self.threshold, "<": value < self.threshold,
                "<=": value <= self.threshold}[self.op]


def parse_alert(text: str) -> Alert:
    """``METRIC>VALUE`` (also ``>=``, ``<``, ``<=``); METRIC is a headline metric, optionally ``.STAT``."""
    m = _ALERT.match(text)
    if not m:
        raise InputError(f"'{text}' is not METRIC>VALUE (e.g. bad_debt_usd.var_99>1e6, liquidatable_now>0)",
                         field="--alert")
    metric, op, raw = m.groups()
    head = metric.split(".", 1)[0]
    if head not in HEADLINE:
        raise InputError(f"unknown metric '{head}' in '{text}' (one of {', '.join(HEADLINE)})", field="--alert")
    try:
        value = float(raw)
    except ValueError:
        raise InputError(f"'{raw}' is not a number in '{text}'", field="--alert") from None
    metric = metric if "." in metric else metric + ".mean"
    return Alert(metric, op, value, text.strip())


@dataclass
class WatchConfig:
    scenario: str
    rpc: Any
    every_s: float = 600.0
    paths: int | None = None
    alerts: tuple[Alert, ...] = ()
    log: Path | None = None
    exit_on_alert: bool = False
    ticks: int | None = None
    retry_s: float | None = None  # wait after a failed tick (default: min(every, 60 s))
    markets: Mapping[str, str] = field(default_factory=dict)  # adapter -> market name or file
    client: ClientOptions = field(default_factory=ClientOptions)
    max_price_age_s: float = 90_000.0
    workdir: Path | None = None


class Watcher:
    """Runs ticks; ``echo`` prints a status line (stdout) or an alert line."""

    def __init__(self, cfg: WatchConfig, echo: Callable[[str], None] = print) -> None:
        from ..scenario.config import load_scenario

        self.cfg = cfg
        self.echo = echo
        self.scenario = load_scenario(cfg.scenario)
        if cfg.paths is not None:
            self.scenario = self.scenario.with_overrides(paths=cfg.paths)
        self.markets = {pc.adapter: self._market_for(i) for i, pc in enumerate(self.scenario.protocols)}
        self.prev: dict[str, Any] | None = None
        self.prev_paths: np.ndarray | None = None
        self.firing: set[str] = set()
        self._tmp = None if cfg.workdir else tempfile.TemporaryDirectory(prefix="cascade-watch-")
        self.workdir = Path(cfg.workdir) if cfg.workdir else Path(self._tmp.name)
        self.client = ChainClient(cfg.rpc, cfg.client)  # one connection pool for the whole watch

    def _market_for(self, i: int) -> Market:
        """--market for the adapter, else the ``chain.market`` recorded in a fetched snapshot, else the default."""
        pc = self.scenario.protocols[i]
        if pc.adapter in self.cfg.markets:
            return resolve_market(pc.adapter, self.cfg.markets[pc.adapter])
        if pc.snapshot is not None:
            from ..snapshots import read_json

            data = read_json(pc.snapshot)
            block = data.get("chain", {}).get("market") if isinstance(data, dict) else None
            if isinstance(block, dict):
                return market_from_json(block, file=f"{pc.snapshot} (chain.market)", protocol=pc.adapter)
        return resolve_market(pc.adapter, None)

    # ------------------------------------------------------------------ one tick
    def tick(self, k: int) -> dict[str, Any]:
        from protocols import Prices

        from ..engine import simulate
        from ..scenario.book import market_asset
        from ..scenario.config import BookConfig
        from ..snapshots import load_adapter
        from . import Options, fetch, write_fetched

        t0 = time.perf_counter()
        sc = self.scenario
        client = self.client
        requests_before = client.requests
        block = None
        protos, prices, sources, snaps, stale = [], {}, {}, {}, 0
        for i, pc in enumerate(sc.protocols):
            accounts = read_accounts(pc.book.path, pc.adapter) if pc.book.kind == "csv" else []
            f = fetch(pc.adapter, client=client, market=self.markets[pc.adapter], block=block, accounts=accounts,
                      options=Options(max_price_age_s=self.cfg.max_price_age_s, allow_stale=True))
            block = f.block.number
            snap_path = self.workdir / f"{i}-{pc.adapter}.json"
            pos_path = self.workdir / f"{i}-{pc.adapter}.positions.csv"
            write_fetched(f, snap_path, pos_path)
            snaps[pc.adapter] = f.snapshot
            stale += sum(1 for v in f.snapshot.get("price_feeds", {}).values() if v.get("stale"))
            adapter = load_adapter(pc.adapter, snap_path)
            for col, p in f.snapshot.get("prices_usd", {}).items():
                a = market_asset(adapter, col)
                if a in sc.assets and a not in prices and p > 0:
                    prices[a], sources[a] = float(p), pc.adapter
            new_pc = replace(pc, snapshot=snap_path)
            if pc.book.kind == "csv":
                if f.positions:
                    new_pc = replace(new_pc, book=BookConfig("csv", pc.book.raw, pos_path))
                else:
                    raise InputError(f"none of the {len(accounts)} accounts of {pc.book.path} holds a position at "
                                     f"block {block}", field=f"protocols[{i}].book")
            if pc.adapter == "compound_v3":
                r = f.snapshot.get("market_params", {}).get("reserves_usd")
                if isinstance(r, (int, float)):
                    new_pc = replace(new_pc, reserves_usd=float(r))
            protos.append(new_pc)
        assets = {a: (replace(cfg, price_usd=prices[a]) if a in prices and cfg.model.get("model") != "replay"
                      else cfg) for a, cfg in sc.assets.items()}
        sc2 = replace(sc, protocols=tuple(protos), assets=assets)
        res = simulate(sc2, analyses=False)
        m = res.metrics()
        pp = res.per_path()["bad_debt_usd"]

        # deterministic "now": accounts liquidatable at the fetched prices, and their debt
        b = res.bound
        close0 = b.prepared.paths.close[0, 0]
        liq_now, at_risk = 0, 0.0
        for j, (ad, book) in enumerate(zip(b.adapters, b.books, strict=True)):
            pr = Prices(close0[b.coll_market[j]], close0[b.debt_market[j]])
            bad = ad.health(book.book, pr) < 1.0
            liq_now += int(bad.sum())
            at_risk += float((book.book.debt_tokens[bad] * pr.debt_usd).sum())
        ce = m["capital_efficiency"]
        metrics = {
            "bad_debt_usd": _pick(m["bad_debt_usd"], ("mean", "stderr", "var_99", "var_99_ci95", "es_99",
                                                      "es_99_stderr", "p_positive", "p_positive_stderr")),
            "bad_debt_share": _pick(m["bad_debt_share"], ("mean", "stderr", "var_99", "var_99_ci95")),
            "liquidated_usd": _pick(m["liquidated_usd"], ("mean", "stderr", "p99", "p99_ci95")),
            "liquidations": _pick(m["liquidations"], ("mean", "stderr", "p99")),
            "debt_usd": {"mean": ce["debt_usd"]},
            "collateral_usd": {"mean": ce["collateral_usd"]},
            "liquidatable_now": {"mean": float(liq_now)},
            "debt_at_risk_usd": {"mean": at_risk},
            "stale_feeds": {"mean": float(stale)},
        }
        blk = client.block
        record: dict[str, Any] = {
            "tick": k, "ok": True, "time": _now(), "chain_id": client.chain_id, "block": blk.number,
            "block_time": blk.time_iso, "paths": int(res.raw.n_paths), "seed": sc.seed, "engine": res.engine,
            "prices_usd": prices, "price_sources": sources, "metrics": metrics,
            "changes": self._changes(snaps, prices, pp, metrics, blk.number, {p.adapter: p for p in protos}),
            "requests": client.requests - requests_before, "elapsed_s": round(time.perf_counter() - t0, 3),
        }
        self.prev = {"snaps": snaps, "prices": prices, "block": blk.number, "metrics": metrics,
                     "books": {p.adapter: _book_digest(p) for p in protos}}
        self.prev_paths = pp
        return record

    def _changes(self, snaps: dict, prices: dict, pp: np.ndarray, metrics: dict, block: int,
                 protos: dict) -> dict[str, Any]:
        if self.prev is None:
            return {"first_tick": True}
        out: dict[str, Any] = {"blocks": block - self.prev["block"]}
        params = []
        for name, snap in snaps.items():
            old = _flat(self.prev["snaps"].get(name, {}))
            new = _flat(snap)
            for key in sorted(set(old) | set(new)):
                if old.get(key) != new.get(key):
                    params.append({"field": f"{name}:{key}", "from": old.get(key), "to": new.get(key)})
        if params:
            out["params"] = params[:50]
            out["params_changed"] = len(params)
        moved = {}
        for a, p in prices.items():
            q = self.prev["prices"].get(a)
            if q != p:
                moved[a] = {"from": q, "to": p, "change": (p / q - 1.0) if q else None}
        if moved:
            out["prices"] = moved
        books = {}
        for name, pc in protos.items():
            now, before = _book_digest(pc), self.prev["books"].get(name)
            if before is not None and now != before:
                books[name] = {"accounts_from": before[0], "accounts_to": now[0], "rows_changed": now[1] != before[1]}
        if books:
            out["positions"] = books
        if self.prev_paths is not None and self.prev_paths.shape == pp.shape:
            d = pp - self.prev_paths
            se = float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0
            out["bad_debt_usd"] = {"delta_mean": float(d.mean()), "delta_stderr": se, "paired": True}
        for key in ("liquidatable_now", "debt_at_risk_usd", "debt_usd"):
            a, b = self.prev["metrics"][key]["mean"], metrics[key]["mean"]
            if a != b:
                out[key] = {"from": a, "to": b}
        return out

    # ------------------------------------------------------------------ alerts, log, loop
    def check_alerts(self, record: dict[str, Any]) -> list[dict[str, Any]]:
        fired = []
        now_firing = set()
        for al in self.cfg.alerts:
            value = _lookup(record["metrics"], al.metric)
            if al.holds(value):
                now_firing.add(al.text)
                if al.text not in self.firing:
                    se = _lookup(record["metrics"], al.metric.rsplit(".", 1)[0] + ".stderr")
                    fired.append({"alert": al.text, "value": value, "stderr": se})
        cleared = sorted(self.firing - now_firing)
        self.firing = now_firing
        record["alerts"] = sorted(now_firing)
        record["new_alerts"] = fired
        if cleared:
            record["cleared_alerts"] = cleared
        return fired

    def log(self, record: dict[str, Any]) -> None:
        if self.cfg.log is None:
            return
        line = json.dumps(_finite(record), default=_json_default, allow_nan=False) + "\n"
        p = Path(self.cfg.log)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            os.write(fd, line.encode())  # one write of a whole line: a reader never sees half a record
            os.fsync(fd)
        finally:
            os.close(fd)

    def status(self, r: dict[str, Any]) -> str:
        m = r["metrics"]
        bd = m["bad_debt_usd"]
        ch = r["changes"]
        moved = ", ".join(f"{a} {v['change']:+.1%}" for a, v in (ch.get("prices") or {}).items()
                          if v.get("change") is not None)
        parts = [f"[{r['time']}] tick {r['tick']} block {r['block']}",
                 f"bad debt ${bd['mean']:,.0f} ± {bd['stderr']:,.0f} (VaR99 ${bd['var_99']:,.0f})",
                 f"liquidated ${m['liquidated_usd']['mean']:,.0f}",
                 f"liquidatable now {int(m['liquidatable_now']['mean'])} (${m['debt_at_risk_usd']['mean']:,.0f} debt)"]
        if moved:
            parts.append(f"prices {moved}")
        if ch.get("params_changed"):
            parts.append(f"{ch['params_changed']} parameter(s) changed")
        if m["stale_feeds"]["mean"]:
            parts.append(f"{int(m['stale_feeds']['mean'])} STALE feed(s)")
        if r.get("alerts"):
            parts.append("ALERTS: " + "; ".join(r["alerts"]))
        return " | ".join(parts)

    def run(self, clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep) -> int:
        """Tick until ``ticks`` are done (forever without); 3 when an alert fired with ``exit_on_alert``."""
        cfg = self.cfg
        retry = cfg.retry_s if cfg.retry_s is not None else min(cfg.every_s, 60.0)
        k = finished = 0
        try:
            while cfg.ticks is None or k < cfg.ticks:
                k += 1
                began = clock()
                try:
                    record = self.tick(k)
                except Exception as e:
                    msg = str(e) if isinstance(e, InputError) else f"{type(e).__name__}: {e}"
                    msg = redact_text(" ".join(msg.split()), self.client.secrets)[:500]
                    self.log({"tick": k, "ok": False, "time": _now(), "error": msg})
                    more = cfg.ticks is None or k < cfg.ticks
                    self.echo(f"[{_now()}] tick {k} failed: {msg}" + (f"; retrying in {retry:g} s" if more else ""))
                    next_at = clock() + retry
                    finished = k
                else:
                    fired = self.check_alerts(record)
                    self.log(record)
                    self.echo(self.status(record))
                    for f in fired:
                        err = f" ± {f['stderr']:.4g}" if isinstance(f.get("stderr"), float) else ""
                        self.echo(f"ALERT tick {k} block {record['block']}: {f['alert']} (now {f['value']:.6g}{err})")
                    for c in record.get("cleared_alerts", []):
                        self.echo(f"cleared tick {k} block {record['block']}: {c}")
                    if fired and cfg.exit_on_alert:
                        return 3
                    next_at = began + cfg.every_s
                finished = k
                if cfg.ticks is not None and k >= cfg.ticks:
                    break
                wait = next_at - clock()
                if wait > 0:
                    sleep(wait)
        except KeyboardInterrupt:
            self.echo(f"stopped after {finished} tick(s)" + (f"; the log {cfg.log} holds one line per tick"
                                                              if cfg.log else ""))
            return 130
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()
        return 0


# ------------------------------------------------------------------------------------------------
def parse_market_overrides(items: tuple[str, ...]) -> dict[str, str]:
    """``--market ADAPTER=NAME|FILE`` → ``{adapter: market}``."""
    out = {}
    for item in items:
        head, sep, value = item.partition("=")
        if not sep or not value:
            raise InputError(f"expected ADAPTER=NAME|FILE, got '{item}'", field="--market")
        out[protocol_name(head)] = value
    return out


def _pick(d: Mapping[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: d[k] for k in keys if k in d}


def _lookup(metrics: Mapping[str, Any], path: str) -> float | None:
    node: Any = metrics
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None


_SKIP = {"provenance", "caveats", "source", "as_of", "market", "units", "status", "note", "chain", "price_feeds",
         "prices_usd", "constants"}


def _flat(node: Any, prefix: str = "") -> dict[str, Any]:
    """Parameter fields of a snapshot as ``path -> value`` (text and metadata left out)."""
    out: dict[str, Any] = {}
    if isinstance(node, Mapping):
        for k, v in node.items():
            if k in _SKIP:
                continue
            out.update(_flat(v, f"{prefix}{k}."))
    elif isinstance(node, list):
        out[prefix[:-1]] = sorted(map(str, node))
    else:
        out[prefix[:-1]] = node
    return out


def _book_digest(pc: Any) -> tuple[int, int] | None:
    if pc.book.kind != "csv" or pc.book.path is None:
        return None
    import hashlib

    from ..io import read_text

    text = read_text(pc.book.path)
    return (len({ln.split(",", 1)[0] for ln in text.splitlines()[1:] if ln}), int(hashlib.sha256(text.encode())
                                                                                  .hexdigest()[:12], 16))


def _finite(x: Any) -> Any:
    """NaN and infinities as null (JSON has neither)."""
    if isinstance(x, float):
        return x if math.isfinite(x) else None
    if isinstance(x, Mapping):
        return {k: _finite(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_finite(v) for v in x]
    return x


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _json_default(x: Any) -> Any:
    if isinstance(x, (np.floating, np.integer)):
        return x.item()
    if isinstance(x, Path):
        return str(x)
    return str(x)
