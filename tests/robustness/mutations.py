"""Bad inputs generated from the valid bundled scenarios, snapshots and CSVs, and a runner for them.

Every case is one command line of ``cascade`` plus the files it reads, written into a temporary
folder. The promise checked for each (:func:`check`): exit 0 or 2, never a traceback, and an exit-2
message that is one line ``cascade: error: <file or option>: <field>: <rule>`` naming the file (or
option) the bad value is in and, for a bad value, the field.

Mutations of a value (each leaf of the TOML/JSON tree): removed, wrong type, negative, NaN, inf,
huge; of a table: an unknown key. Of a whole file: truncated, empty, binary, UTF-16, Latin-1, a
directory, a FIFO, ``/dev/zero``. CSV files: a cell made non-numeric, negative, NaN, inf, huge or
empty, a short row, the header removed, and the whole-file mutations.

Cases run in-process through :func:`optimizer.cli.main` (fast); a sample also runs through the real
installed ``cascade`` executable. ``CASCADE_FULL_TESTS=1`` runs every case.
"""

from __future__ import annotations

import contextlib
import functools
import io
import json
import math
import os
import random
import re
import sys
import tomllib
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optimizer.snapshots import data_dir

FULL = os.environ.get("CASCADE_FULL_TESTS") == "1"
DATA = data_dir()
SCENARIOS = sorted((DATA / "scenarios").glob("*.toml"))
SNAPSHOTS = sorted((DATA / "protocols").glob("*.json"))
ADAPTER_OF = {s.name: json.loads(s.read_text())["protocol"] for s in SNAPSHOTS}
MISSING = object()


# ------------------------------------------------------------------------------------------------
# TOML writing (the tests need to write what tomllib reads; no writer ships with Python)
# ------------------------------------------------------------------------------------------------

_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        r = repr(v)
        return r if any(c in r for c in ".en") else r + ".0"
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def dump_toml(data: dict[str, Any]) -> str:
    """A TOML document that :func:`tomllib.loads` reads back as ``data``."""
    out: list[str] = []

    def is_tables(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    def table(path: list[str], d: dict[str, Any], header: str | None) -> None:
        if header:
            out.append(header)
        for k, v in d.items():
            if not isinstance(v, dict) and not is_tables(v):
                out.append(f"{_key(k)} = {_value(v)}")
        for k, v in d.items():
            sub = [*path, _key(k)]
            if isinstance(v, dict):
                table(sub, v, f"[{'.'.join(sub)}]")
            elif is_tables(v):
                for x in v:
                    table(sub, x, f"[[{'.'.join(sub)}]]")

    table([], data, None)
    return "\n".join(out) + "\n"


# ------------------------------------------------------------------------------------------------
# Cases
# ------------------------------------------------------------------------------------------------


@dataclass
class Case:
    """One bad (or harmless) input and the command that reads it."""

    id: str
    argv: list[str]
    files: dict[str, bytes | str] = field(default_factory=dict)  # name -> content ("<dir>", "<fifo>" special)
    culprit: str = ""  # the file name or option the message must name
    key: str | None = None  # the mutated key (dotted), when a value was mutated
    kind: str = ""

    def materialise(self, root: Path) -> list[str]:
        for name, content in self.files.items():
            p = root / name
            p.parent.mkdir(parents=True, exist_ok=True)
            if content == "<dir>":
                p.mkdir(exist_ok=True)
            elif content == "<fifo>":
                if not p.exists():
                    os.mkfifo(p)
            elif isinstance(content, bytes):
                p.write_bytes(content)
            else:
                p.write_text(content)
        return [a.replace("{root}", str(root)) for a in self.argv]


def leaves(tree: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    """(path, value) of every value in a parsed TOML/JSON tree; lists of scalars count as one value."""
    if isinstance(tree, dict):
        for k, v in tree.items():
            yield from leaves(v, (*path, k))
    elif isinstance(tree, list) and tree and all(isinstance(x, dict) for x in tree):
        for i, x in enumerate(tree):
            yield from leaves(x, (*path, i))
    else:
        yield path, tree


def tables(tree: Any, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(tree, dict):
        yield path
        for k, v in tree.items():
            yield from tables(v, (*path, k))
    elif isinstance(tree, list) and tree and all(isinstance(x, dict) for x in tree):
        for i, x in enumerate(tree):
            yield from tables(x, (*path, i))


def _set(tree: Any, path: tuple, value: Any) -> Any:
    import copy

    t = copy.deepcopy(tree)
    node = t
    for p in path[:-1]:
        node = node[p]
    if value is MISSING:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return t


def dotted(path: tuple) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def value_mutations(v: Any) -> list[tuple[str, Any]]:
    """(name, new value) for one leaf."""
    wrong = {bool: "yes", int: "x", float: "x", str: 12345, list: "x", dict: 7}
    out: list[tuple[str, Any]] = [("removed", MISSING), ("wrong_type", wrong.get(type(v), "x"))]
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        out += [("negative", -abs(v) - 1 if isinstance(v, int) else -abs(v) - 1.0), ("nan", math.nan),
                ("inf", math.inf), ("huge", 10**18 if isinstance(v, int) else 1e308)]
    return out


def file_mutations(text: bytes) -> list[tuple[str, bytes | str]]:
    latin = text.replace(b"\n", "\n# caf\u00e9\n".encode("latin-1"), 1) if b"\n" in text else b"caf\xe9"
    return [("truncated", text[: len(text) // 2]), ("empty", b""), ("binary", b"\x7fELF\x02\x01\x01\x00" + bytes(range(256))),
            ("utf16", text.decode("utf-8").encode("utf-16")), ("latin1", latin), ("directory", "<dir>"),
            ("fifo", "<fifo>")]


def shrink_scenario(data: dict[str, Any]) -> dict[str, Any]:
    """The same scenario, small enough that a valid mutation simulates in well under a second."""
    import copy

    d = copy.deepcopy(data)
    d["scenario"]["paths"] = 2
    if "horizon_h" in d["scenario"]:
        d["scenario"]["horizon_h"] = min(d["scenario"]["horizon_h"], 6)
        for a in d.get("assets", {}).values():
            for s in a.get("shocks", []) or []:
                s["at_h"] = min(s["at_h"], 3.0)
    for p in d.get("protocols", []):
        b = p.get("book", {})
        if isinstance(b.get("positions"), int):
            b["positions"] = min(b["positions"], 200)
    if "optimize" in d:
        d["optimize"]["trials"] = 1
    return d


def scenario_commands(name: str) -> list[tuple[str, list[str]]]:
    """(command id, argv) that read a scenario file ``name`` in the case folder."""
    return [("simulate", ["simulate", "{root}/" + name, "--no-analyses", "--json", "--paths", "2"]),
            ("optimize", ["optimize", "{root}/" + name, "--trials", "1", "--json", "--storage",
                          "{root}/runs/s.journal"])]


@functools.cache
def scenario_cases() -> list[Case]:
    cases: list[Case] = []
    for src in SCENARIOS:
        base = shrink_scenario(tomllib.loads(src.read_text()))
        stem = src.stem
        fname = f"{stem}.toml"
        variants: list[tuple[str, str | None, dict | bytes | str]] = []
        for path, v in leaves(base):
            if path[:1] == ("scenario",) and path[-1] == "description":
                continue
            for mname, nv in value_mutations(v):
                variants.append((mname, dotted(path), _set(base, path, nv)))
        for tpath in tables(base):
            t = _set(base, (*tpath, "bogus_key"), 1) if tpath else {**base, "bogus_key": 1}
            variants.append(("unknown_key", dotted((*tpath, "bogus_key")), t))
        raw = dump_toml(base).encode()
        for mname, content in file_mutations(raw):
            variants.append((mname, None, content))
        for mname, key, content in variants:
            body = dump_toml(content) if isinstance(content, dict) else content
            for cmd, argv in scenario_commands(fname):
                cases.append(Case(f"{stem}:{key or 'file'}:{mname}:{cmd}", argv, {fname: body}, fname, key, mname))
        for cmd, argv in scenario_commands("dev_zero.toml"):
            cases.append(Case(f"{stem}:file:dev_zero:{cmd}", [a.replace("{root}/dev_zero.toml", "/dev/zero")
                                                                for a in argv], {}, "/dev/zero", None, "dev_zero"))
    return cases


def _a_valid_set(adapter: str) -> str:
    """A valid ``--set`` for ``validate``: the adapter's first parameter at its bundled value (no change)."""
    from optimizer.snapshots import load_adapter

    spec = load_adapter(adapter).schema().specs[0]
    return f"{spec.name}={spec.current!r}"


def _snapshot_leaves(data: dict[str, Any]) -> list[tuple[tuple, Any]]:
    """All leaves of small snapshots; for a large one, its top level, constants, 3 assets and 2 eModes."""
    out = list(leaves(data))
    if len(out) < 400 or FULL:
        return out
    keep_assets = set(list(data.get("assets", {}))[:3])
    keep_emodes = set(list(data.get("emodes", {}))[:2])
    return [(p, v) for p, v in out
            if not (p[:1] == ("assets",) and len(p) > 1 and p[1] not in keep_assets)
            and not (p[:1] == ("emodes",) and len(p) > 1 and p[1] not in keep_emodes)
            and "provenance" not in p]


@functools.cache
def snapshot_cases() -> list[Case]:
    cases: list[Case] = []
    for src in SNAPSHOTS:
        adapter = ADAPTER_OF[src.name]
        base = json.loads(src.read_text())
        variants: list[tuple[str, str | None, bytes | str]] = []
        for path, v in _snapshot_leaves(base):
            for mname, nv in value_mutations(v):
                variants.append((mname, dotted(path), json.dumps(_set(base, path, nv))))
        variants.append(("unknown_key", "bogus_key", json.dumps({**base, "bogus_key": 1})))
        for mname, content in file_mutations(json.dumps(base, indent=1).encode()):
            variants.append((mname, None, content))
        fname = f"{src.stem}.json"
        for mname, key, content in variants:
            for cmd, argv in (("protocols", ["protocols", adapter, "--snapshot", "{root}/" + fname, "--json"]),
                              ("validate", ["validate", adapter, "--snapshot", "{root}/" + fname, "--set",
                                            _a_valid_set(adapter)])):
                cases.append(Case(f"{src.stem}:{key or 'file'}:{mname}:{cmd}", argv, {fname: content}, fname, key,
                                  mname))
    for adapter in dict.fromkeys(ADAPTER_OF.values()):  # several snapshots may share an adapter
        cases.append(Case(f"{adapter}:file:dev_zero:protocols", ["protocols", adapter, "--snapshot", "/dev/zero"], {},
                          "/dev/zero", None, "dev_zero"))
    return cases


def _csv_variants(text: str) -> list[tuple[str, str | None, bytes | str]]:
    lines = text.splitlines()
    header, rows = lines[0], lines[1:]
    cols = header.split(",")
    out: list[tuple[str, str | None, bytes | str]] = []
    mid = len(rows) // 2
    for ci, c in enumerate(cols):
        for mname, val in (("non_numeric", "x"), ("negative", "-1"), ("nan", "nan"), ("inf", "inf"),
                           ("huge", "1e308"), ("empty_cell", "")):
            r = rows[mid].split(",")
            r[ci] = val
            out.append((mname, f"line {mid + 2}: {c}", "\n".join([header, *rows[:mid], ",".join(r), *rows[mid + 1:]])
                        + "\n"))
    r = rows[mid].split(",")
    out.append(("short_row", f"line {mid + 2}", "\n".join([header, *rows[:mid], ",".join(r[:-1]), *rows[mid + 1:]])
                + "\n"))
    out.append(("no_header", None, "\n".join(rows) + "\n"))
    out += [(m, None, c) for m, c in file_mutations(text.encode())]
    return out


def csv_book(n: int = 40) -> str:
    rows = ["account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount"]
    rng = random.Random(7)
    for i in range(n):
        eth = round(rng.uniform(1, 30), 4)
        rows.append(f"0x{i:040x},aave_v3,WETH,{eth},USDC,{round(eth * 3000 * rng.uniform(0.3, 0.78), 2)}")
    return "\n".join(rows) + "\n"


CSV_BOOK_SCENARIO = """
[scenario]
name = "csv-book"
horizon_h = 2
step_min = 10
paths = 2
seed = 3

[assets.WETH]
price_usd = 3000
model = "gbm"
sigma_annual = 0.8

[assets.USDC]
price_usd = 1.0
model = "constant"

[[protocols]]
adapter = "aave_v3"
[protocols.book]
kind = "csv"
path = "book.csv"
"""


@functools.cache
def csv_cases() -> list[Case]:
    cases: list[Case] = []
    # a CSV book
    for mname, key, content in _csv_variants(csv_book()):
        cases.append(Case(f"book.csv:{key or 'file'}:{mname}:simulate",
                          ["simulate", "{root}/scenario.toml", "--no-analyses", "--json"],
                          {"scenario.toml": CSV_BOOK_SCENARIO, "book.csv": content}, "book.csv", key, mname))
    # the price and gas CSVs of the replay scenario
    replay = tomllib.loads((DATA / "scenarios" / "aave_v3_replay_2020-03-12.toml").read_text())
    for key_path, rel in ((("assets", "WETH", "csv"), replay["assets"]["WETH"]["csv"]),
                          (("liquidators", "gas_csv"), replay["liquidators"]["gas_csv"])):
        text = (DATA / rel).read_text()
        name = Path(rel).name
        sc = dump_toml(_set(shrink_scenario(replay), key_path, name))
        variants = _csv_variants(text)
        if not FULL:
            variants = [v for i, v in enumerate(variants) if v[0] not in ("non_numeric", "empty_cell", "huge")
                        or i % 3 == 0]
        for mname, key, content in variants:
            cases.append(Case(f"{name}:{key or 'file'}:{mname}:simulate",
                              ["simulate", "{root}/replay.toml", "--no-analyses", "--json"],
                              {"replay.toml": sc, name: content}, name, key, mname))
    return cases


def _first_param(adapter: str) -> str:
    from optimizer.snapshots import load_adapter

    spec = load_adapter(adapter).schema().specs[0]
    return f"{adapter}:{spec.name}={spec.current!r}"


@functools.cache
def compare_cases() -> list[Case]:
    """``cascade compare`` on mutated (shrunk) scenarios: the candidate is today's first parameter, unchanged."""
    out = []
    for c in scenario_cases():
        if not c.id.endswith(":simulate"):
            continue
        name = next(iter(c.files)) if c.files else None
        src = next((p for p in SCENARIOS if name and p.stem == Path(name).stem), None)
        base = tomllib.loads(src.read_text()) if src is not None else {}
        protos = base.get("protocols") or [{}]
        adapter = protos[0].get("adapter", "aave_v3")
        argv = ["compare", *c.argv[1:2], "--set", _first_param(adapter), "--paths", "2", "--no-analyses", "--json",
                "--out", "{root}/rep"]
        out.append(Case(c.id.rsplit(":", 1)[0] + ":compare", argv, c.files, c.culprit, c.key, c.kind))
    return out


PROPOSALS = sorted(p for p in (DATA / "proposals").glob("*.toml") if p.name != "defaults.toml")


@functools.cache
def proposal_cases() -> list[Case]:
    """``cascade proposal`` on mutated bundled proposal files (and whole-file mutations)."""
    cases: list[Case] = []
    for src in PROPOSALS:
        base = tomllib.loads(src.read_text())
        fname = src.name
        variants: list[tuple[str, str | None, Any]] = []
        for path, v in leaves(base):
            if path[-1] in ("summary", "source", "link", "author", "title", "date", "market"):
                continue
            for mname, nv in value_mutations(v):
                variants.append((mname, dotted(path), dump_toml(_set(base, path, nv))))
        variants.append(("unknown_key", "bogus_key", dump_toml({**base, "bogus_key": 1})))
        for mname, content in file_mutations(dump_toml(base).encode()):
            variants.append((mname, None, content))
        for mname, key, content in variants:
            cases.append(Case(f"{src.stem}:{key or 'file'}:{mname}:proposal",
                              ["proposal", "{root}/" + fname, "--paths", "2", "--json", "--out", "{root}/rep"],
                              {fname: content}, fname, key, mname))
    cases.append(Case("proposal:file:dev_zero:proposal", ["proposal", "/dev/zero", "--paths", "2"], {}, "/dev/zero",
                      None, "dev_zero"))
    return cases


def _small_journal() -> bytes:
    """A real optuna journal of a two-trial study (no cascade result in it)."""
    import tempfile

    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.journal"
        optuna.logging.set_verbosity(optuna.logging.ERROR)
        study = optuna.create_study(study_name="s", storage=JournalStorage(JournalFileBackend(str(p))))
        study.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)
        return p.read_bytes()


@functools.cache
def report_cases() -> list[Case]:
    """``cascade report`` on a study journal that is not a cascade study, damaged or not a file at all."""
    base = _small_journal()
    variants = [("no_result", base), *file_mutations(base)]
    lines = base.splitlines(keepends=True)
    variants.append(("damaged_line", b"".join(lines[:2] + [b"not json\n"] + lines[2:])))
    cases = [Case(f"s.journal:file:{m}:report", ["report", "{root}/s.journal", "--out", "{root}/rep"],
                  {"s.journal": c}, "s.journal", None, m) for m, c in variants]
    cases.append(Case("report:file:dev_zero:report", ["report", "/dev/zero"], {}, "/dev/zero", None, "dev_zero"))
    return cases


def option_cases() -> list[Case]:
    """Bad command-line values (the message must name the option)."""
    sc = "aave_v3_core_24h_jumps"
    bad = [
        (["simulate", sc, "--paths", "0"], "--paths"),
        (["simulate", sc, "--paths", "nan"], "--paths"),
        (["simulate", sc, "--paths", "10000000000"], "--paths"),
        (["simulate", sc, "--seed", "-1"], "--seed"),
        (["simulate", sc, "--set", "WETH.ltv_bps=nan"], "--set"),
        (["simulate", sc, "--set", "WETH.ltv_bps=inf"], "--set"),
        (["simulate", sc, "--set", "WETH.ltv_bps=1e308"], "--set"),
        (["simulate", sc, "--set", "WETH.ltv_bps=9900"], "--set"),
        (["simulate", sc, "--set", "WETH.nope=1"], "--set"),
        (["simulate", sc, "--set", "=1"], "--set"),
        (["simulate", sc, "--engine", "fast"], "--engine"),
        (["simulate", sc, "--events", "{root}"], "--events"),
        (["simulate", sc, "--events", "/proc/nope/x.csv"], "--events"),
        (["simulate", sc, "--accounts", "{root}"], "--accounts"),
        (["simulate", "maker_eth_a_black_thursday", "--engine", "kernel"], "--engine"),
        (["optimize", "maker_eth_a_black_thursday", "--engine", "kernel", "--trials", "1", "--storage",
          "{root}/s.journal"], "--engine"),
        (["compare", "maker_eth_a_black_thursday", "--engine", "kernel", "--set", "maker:ETH-A.mat=1.45", "--paths",
          "2"], "--engine"),
        (["optimize", sc, "--trials", "0"], "--trials"),
        (["optimize", sc, "--workers", "0"], "--workers"),
        (["optimize", sc, "--timeout", "-1"], "--timeout"),
        (["optimize", sc, "--sampler", "random"], "--sampler"),
        (["optimize", sc, "--objectives", "efficiency,nope"], "--objectives"),
        (["optimize", sc, "--storage", "{root}"], "--storage"),
        (["optimize", sc, "--storage", "nosuchdriver://u:S3cretPW@host/db"], "--storage"),
        (["validate", "aave_v3", "--set", "WETH.ltv_bps=x"], "--set"),
        (["validate", "aave_v3", "--set", "WETH.ltv_bps=3000"], "--set"),
        (["validate", "aave_v9"], "aave_v9"),
        (["protocols", "aave_v9"], "aave_v9"),
        (["protocols", "--snapshot", "{root}/x.json"], "--snapshot"),
        (["simulate", "{root}/missing.toml"], "missing.toml"),
        (["simulate", "{root}"], "{root}"),
        (["compare", sc, "--paths", "2"], "--set"),
        (["compare", sc, "--set", "WETH.ltv_bps=9900", "--paths", "2"], "--set"),
        (["compare", sc, "--set", "WETH.ltv_bps=nan", "--paths", "2"], "--set"),
        (["proposal", "{root}/missing.toml"], "missing.toml"),
        (["proposal", str(PROPOSALS[0]), "--index", "5"], "--index"),
        (["proposal", str(PROPOSALS[0]), "--scenario", "{root}/missing.toml"], "missing.toml"),
        (["report", "{root}/missing.journal"], "missing.journal"),
        (["report", "postgresql+psycopg://u:S3cretPW@127.0.0.1:1/db?connect_timeout=1"], "127.0.0.1"),
        (["fetch", "--protocol", "aave_v3", "--rpc", "http://u:S3cretPW@127.0.0.1:1/v3/0123456789abcdef0123456789abcdef",
          "--retries", "0", "--timeout", "1", "--out", "{root}/snap.json"], "--rpc"),
        (["fetch", "--protocol", "aave_v3", "--rpc", "not a url", "--out", "{root}/snap.json"], "--rpc"),
        (["fetch", "--protocol", "aave_v3", "--accounts", "/dev/zero", "--rpc", "http://127.0.0.1:1",
          "--out", "{root}/snap.json"], "/dev/zero"),
        (["watch", "{root}/missing.toml", "--rpc", "http://127.0.0.1:1"], "missing.toml"),
        (["watch", sc, "--rpc", "http://127.0.0.1:1", "--every", "soon"], "--every"),
    ]
    return [Case(f"option:{' '.join(a[:1] + a[2:])}", a, {}, c, None, "option") for a, c in bad]


def all_cases() -> list[Case]:
    """Every case (the generators are cached: cases are read-only once made)."""
    return (scenario_cases() + snapshot_cases() + csv_cases() + compare_cases() + proposal_cases() + report_cases()
            + option_cases())


def sample(cases: list[Case], n: int, seed: int = 0, per_file: bool = True) -> list[Case]:
    """A deterministic sample that keeps at least one case of every (file, mutation kind), or of every
    mutation kind with ``per_file=False`` (for commands that read files through the same loaders)."""
    if FULL or len(cases) <= n:
        return cases
    rng = random.Random(seed)
    by: dict[tuple[str, str], list[Case]] = {}
    for c in cases:
        by.setdefault((c.id.split(":")[0] if per_file else "", c.kind), []).append(c)
    picked = [rng.choice(v) for v in by.values()]
    rest = [c for c in cases if c not in picked]
    picked += rng.sample(rest, max(0, min(len(rest), n - len(picked))))
    return sorted(picked, key=lambda c: c.id)


# ------------------------------------------------------------------------------------------------
# Running a case and checking the promise
# ------------------------------------------------------------------------------------------------


@dataclass
class Outcome:
    code: int | None
    stdout: str
    stderr: str
    traceback: str | None = None


def run_in_process(argv: list[str], cwd: Path) -> Outcome:
    """``cascade ARGV`` through :func:`optimizer.cli.main` in this process, from ``cwd``."""
    from optimizer.cli import main

    out, err = io.StringIO(), io.StringIO()
    old = Path.cwd()
    os.chdir(cwd)
    code: int | None = 0
    tb = None
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                main(argv)
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            except BaseException:  # a traceback: exactly what must never happen
                tb = traceback.format_exc()
                code = None
    finally:
        os.chdir(old)
    return Outcome(code, out.getvalue(), err.getvalue(), tb)


def run_installed(argv: list[str], cwd: Path, timeout: float = 120) -> Outcome:
    """The real installed ``cascade`` executable (the console script next to this Python)."""
    import subprocess

    exe = Path(sys.executable).with_name("cascade")
    res = subprocess.run([str(exe), *argv], cwd=cwd, capture_output=True, text=True, timeout=timeout, check=False)
    tb = res.stderr if "Traceback" in res.stderr else None
    return Outcome(res.returncode, res.stdout, res.stderr, tb)


def _no_constant(name: str) -> None:
    raise ValueError(f"{name} in the output")


def check(case: Case, out: Outcome, root: Path) -> str | None:
    """None when the outcome keeps the promise, else why not."""
    if out.traceback:
        return f"traceback:\n{out.traceback[-1500:]}"
    allowed = (0, 2, 3) if case.argv[0] in ("optimize", "proposal", "compare") else (0, 2)  # 3: a failing verdict
    if out.code not in allowed:
        return f"exit code {out.code}: {out.stderr[-500:]}"
    if out.code in (0, 3):
        if "--json" in case.argv and out.stdout.strip():
            try:
                json.loads(out.stdout, parse_constant=_no_constant)
            except ValueError as e:
                return f"exit 0 but the JSON is not strict JSON ({e})"
        return None
    # `cascade optimize` logs its phases on stderr when it is not a terminal; the error is one more line
    # and notices ("cascade: note: a torn journal tail was repaired") are not part of the error
    lines = [ln for ln in out.stderr.splitlines()
             if ln.strip() and not ln.startswith(("cascade optimize: ", "cascade: note: "))]
    if len(lines) != 1:
        return f"{len(lines)} lines on stderr: {out.stderr[-800:]}"
    msg = lines[0]
    if not msg.startswith("cascade: error: "):
        return f"not a 'cascade: error:' line: {msg}"
    body = msg[len("cascade: error: "):]
    culprit = case.culprit.replace("{root}", str(root))
    if culprit not in body and Path(culprit).name not in body:
        return f"does not name {culprit}: {msg}"
    if "S3cretPW" in msg:
        return f"leaks a secret: {msg}"
    if case.key is not None and not _names_a_field(body, culprit):
        return f"names no field: {msg}"
    return None


_PARAM_VALUE = re.compile(r"^[\w.\[\]-]+=\S")


def _names_a_field(body: str, culprit: str) -> bool:
    """``<file>: <field>: <rule>``, or ``<file>: <param>=<value> <rule>`` (the adapters' bound messages)."""
    for prefix in (culprit, Path(culprit).name):
        i = body.find(prefix)
        if i >= 0:
            rest = body[i + len(prefix):].lstrip(": ")
            break
    else:
        rest = body
    return ": " in rest or bool(_PARAM_VALUE.match(rest)) or body.startswith("--")


def check_cases(cases: list[Case], root: Path, runner: Callable[[list[str], Path], Outcome] = run_in_process
                ) -> list[str]:
    """Run each case in its own sub-folder of ``root``; the list of broken promises (empty: all kept)."""
    bad = []
    for i, case in enumerate(cases):
        folder = root / f"c{i}"
        folder.mkdir()
        argv = case.materialise(folder)
        out = runner(argv, folder)
        why = check(case, out, folder)
        if why:
            bad.append(f"{case.id}: {why}")
    return bad
