"""`make bench`: how fast is one evaluation of the cascade simulator, and is it still right?

For each workload (a scenario TOML: the same 50,000-position Aave v3 Core-like book under two stress
levels, a multi-collateral book, the bundled Maker Black Thursday replay) this measures, in one process and on the same inputs:

* the floor: generating the price paths alone (``generate_paths``, the same seed stream as ``prepare``);
* the kernel: warm ``run_kernel`` on all paths (best of N), liquidations per path, kernel / floor;
* ``bind`` + ``build_kernel_inputs`` alone, and one end-to-end ``evaluate()`` (what a search trial pays);
* the reference engine (per-step boolean masks over the whole book) on the first K paths, and the kernel
  on exactly those paths: liquidation counts must be identical and USD totals equal to 1e-9 relative,
  otherwise the script exits 1 (after printing everything);
* speed-up = reference s/path / kernel s/path, and the process's peak RSS.

It prints a table, then one JSON line (the last line of stdout), also written to
``runs/bench/latest.json`` (``latest-quick.json`` with ``--quick``). See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import os
import platform
import resource
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

try:  # `make bench` benchmarks the installed package; fall back to the checkout when not installed
    import optimizer
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(ROOT))
    import optimizer

import numba

from optimizer.engine import bind, evaluate, prepare
from optimizer.engine.model import build_models
from optimizer.engine.reference import run_reference
from optimizer.engine.simulate import build_kernel_inputs, kernel_unsupported_reason, run_kernel
from optimizer.scenario.config import Scenario, load_scenario, parse_scenario
from optimizer.scenario.prices import generate_paths

# (name, scenario file, K = paths 0..K-1 run through the reference engine). On the 2-core reference
# machine a reference path takes ~3-10 s (bad day) and ~6-20 s (severe), so K makes ~30-60 s per
# workload; the run stops early (after at least MIN_REF_PATHS) once REF_BUDGET_S would be exceeded.
WORKLOADS = (
    ("reference_workload", HERE / "reference_workload.toml", 8),
    ("aave_v3_core_24h_jumps", ROOT / "data" / "scenarios" / "aave_v3_core_24h_jumps.toml", 4),
    ("multi_collateral_book", HERE / "multi_collateral_workload.toml", 2),
    ("black_thursday_replay", ROOT / "data" / "scenarios" / "maker_eth_a_black_thursday.toml", 4),
    ("perp_isolated_50k", HERE / "perp_workload.toml", 2),
    ("perp_mixed_aave_hyperliquid_eth_12h", ROOT / "data" / "scenarios" / "perp_mixed_aave_hyperliquid_eth_12h.toml", 2),
)
#: workloads run on their own bundled book (--positions does not resize it) and their default path count (the
#: replay's paths are one price history: copies, so the kernel's per-path time is not one thread launch)
BUNDLED_BOOK = {"black_thursday_replay"}
DEFAULT_PATHS = {"black_thursday_replay": 100}
#: workloads the quick smoke run skips (a generated book, a Maker replay, the perps; the smoke test pins the other two)
FULL_ONLY = {"multi_collateral_book", "black_thursday_replay", "perp_isolated_50k", "perp_mixed_aave_hyperliquid_eth_12h"}
MULTI_ACCOUNTS = 50_000
#: evaluate() / path-generation floor, per workload (issue 11): bad day, severe stress, multi-asset book
TARGET_OVER_FLOOR = {"reference_workload": 10.0, "aave_v3_core_24h_jumps": 30.0, "multi_collateral_book": 20.0,
                     "perp_isolated_50k": 10.0, "perp_mixed_aave_hyperliquid_eth_12h": 20.0}  # issue 12: perps
REF_BUDGET_S, MIN_REF_PATHS = 60.0, 2
FLOOR_REPEATS = 5  # generating paths is cheap but noisy (page faults, neighbours): best of 5 after a warm-up
QUICK = {"paths": 100, "positions": 5_000, "ref_paths": 2, "repeats": 2}
TARGET_EVAL_S, TARGET_SPEEDUP, TARGET_PEAK_GB = 1.0, 50.0, 2.0
# engine agreement: counts exactly, USD totals to RTOL relative (ATOL_USD absorbs sums that should be 0)
RTOL, ATOL_USD = 1e-9, 1e-6
USD_FIELDS = ("debt_repaid_usd", "collateral_seized_usd", "liquidator_bonus_usd", "protocol_fee_usd",
              "realised_bad_debt_usd", "unrealised_bad_debt_usd", "horizon_exposure_usd", "bad_debt_usd",
              "debt_removed_usd", "returned_to_owner_usd", "inventory_usd")
EXACT_FIELDS = ("liquidations", "first_liquidation_step", "last_liquidation_step")
#: the perp venues' USD totals (optimizer.engine.venues.perp), compared where a workload has a perp venue
PERP_USD_FIELDS = ("perp_liquidated_long_usd", "perp_liquidated_short_usd", "perp_deficit_usd", "perp_fee_usd",
                   "insurance_fund_paid_usd", "insurance_fund_drawdown_usd", "backstop_loss_usd", "adl_volume_usd",
                   "adl_overshoot_usd")


def usd_fields(ledger) -> tuple[str, ...]:
    """The USD totals the bench compares that this workload's ledger has."""
    return tuple(f for f in (*USD_FIELDS, *PERP_USD_FIELDS) if f == "bad_debt_usd" or f in ledger)


def peak_rss_mb() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return r / 2**20 if sys.platform == "darwin" else r / 1024


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def timed(fn, *args, **kw):
    t0 = time.perf_counter()
    out = fn(*args, **kw)
    return time.perf_counter() - t0, out


def load(path: Path, paths: int | None, positions: int | None) -> Scenario:
    """The scenario, with the path count and (synthetic) book size overridden if asked."""
    if positions is None:
        sc = load_scenario(path)
    else:
        data = tomllib.loads(path.read_text())
        for i, pr in enumerate(data.get("protocols", [])):
            if pr.get("book", {}).get("kind") not in ("synthetic", "perp_synthetic"):
                raise SystemExit(f"--positions: {path} protocols[{i}] has no synthetic book")
            pr["book"]["positions"] = positions
        sc = parse_scenario(data, file=str(path), base_dir=path.resolve().parent)
    return sc.with_overrides(paths=paths)


def multi_collateral_scenario(template: Path, folder: Path, n_accounts: int, seed: int = 20261202) -> Path:
    """The multi-asset workload: ``n_accounts`` drawn from the real wstETH sub-book (same legs, eMode and
    health factor, sizes scaled by a lognormal factor), written as book.csv next to a copy of ``template``."""
    import csv

    from optimizer.snapshots import data_dir

    real = data_dir() / "books" / "aave_v3_wsteth_accounts_2023-06-19.csv"
    rows = list(csv.DictReader(real.open()))
    accounts: dict[str, list[dict]] = {}
    for r in rows:
        accounts.setdefault(r["account"], []).append(r)
    legs = list(accounts.values())
    rng = np.random.default_rng(seed)
    pick = rng.integers(0, len(legs), n_accounts)
    scale = rng.lognormal(0.0, 1.0, n_accounts)
    folder.mkdir(parents=True, exist_ok=True)
    with (folder / "book.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["account", "protocol", "collateral_asset", "collateral_amount", "debt_asset", "debt_amount",
                    "emode"])
        for i, (k, x) in enumerate(zip(pick.tolist(), scale.tolist(), strict=True)):
            for r in legs[k]:
                ca = f"{float(r['collateral_amount']) * x:.12g}" if r["collateral_asset"] else ""
                da = f"{float(r['debt_amount']) * x:.12g}" if r["debt_asset"] else ""
                w.writerow([f"b{i}", r["protocol"], r["collateral_asset"], ca, r["debt_asset"], da, r["emode"]])
    out = folder / template.name
    out.write_text(template.read_text().replace("@DATA@", str(data_dir())))
    return out


def floor_paths(sc: Scenario, repeats: int, reference_close: np.ndarray) -> list[float]:
    """Time generating the price paths alone, from the same seed stream as ``prepare``."""
    models, initial, corr, n_steps = build_models(sc)
    times = []
    for i in range(repeats + 1):  # the first run is a warm-up (allocator, caches), not timed
        path_seed, _book_seed = np.random.SeedSequence(sc.seed).spawn(2)
        dt, pp = timed(generate_paths, models, corr, sc.paths, n_steps, sc.step_s,
                       np.random.default_rng(path_seed), initial)
        if i:
            times.append(dt)
        if not np.array_equal(pp.close, reference_close):
            raise SystemExit("bench: generate_paths does not reproduce prepare()'s paths (seed streams changed?)")
        del pp
    return times


def compare(kr, k_row: int, rr, r_row: int) -> tuple[list[str], dict[str, float]]:
    """Differences between kernel row k_row and reference row r_row (empty list: identical)."""
    bad, rel = [], {}
    for f in EXACT_FIELDS:
        a, b = np.asarray(getattr(kr, f)[k_row]), np.asarray(getattr(rr, f)[r_row])
        if not np.array_equal(a, b):
            bad.append(f"{f}: kernel {a.tolist()} vs reference {b.tolist()}")
    for f in usd_fields(kr):
        a, b = np.asarray(getattr(kr, f)[k_row], float), np.asarray(getattr(rr, f)[r_row], float)
        scale = np.maximum(np.abs(a), np.abs(b))
        d = np.abs(a - b)
        rel[f] = float(np.max(np.where(scale > 0, d / np.where(scale > 0, scale, 1.0), 0.0)))
        if not np.all(d <= RTOL * scale + ATOL_USD):
            bad.append(f"{f}: kernel {a.tolist()} vs reference {b.tolist()} (rel diff {rel[f]:.2e})")
    return bad, rel


def bench_workload(name: str, path: Path, args, k_ref: int) -> tuple[dict, list[str]]:
    failures: list[str] = []
    if name == "multi_collateral_book":  # a generated CSV book: --positions sets its account count
        path = multi_collateral_scenario(path, ROOT / "runs" / "bench" / "multi", args.positions or MULTI_ACCOUNTS)
        sc = load(path, args.paths, None)
    elif name in BUNDLED_BOOK:
        sc = load(path, args.paths or DEFAULT_PATHS.get(name), None)
    else:
        sc = load(path, args.paths, args.positions)
    log(f"[{name}] prepare {sc.paths} paths ...")
    t_prep, prep = timed(prepare, sc)
    n_paths, n_steps = prep.n_paths, prep.n_steps
    n_assets = len(prep.market.assets)
    gen = floor_paths(sc, max(args.repeats, FLOOR_REPEATS), prep.paths.close)

    binds = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        bound = bind(prep)
        inputs = build_kernel_inputs(bound)
        binds.append(time.perf_counter() - t0)
    reason = kernel_unsupported_reason(bound)
    if reason:
        raise SystemExit(f"bench: {name}: the kernel cannot run this scenario ({reason})")
    n_pos = sum(b.book.n_positions for b in bound.books)
    close, low, high = prep.paths.close, prep.paths.low, prep.paths.bar_high

    log(f"[{name}] kernel warm-up (JIT compile or cache load) ...")
    t_first, _ = timed(run_kernel, bound, inputs, close=close[:2], low=low[:2], high=high[:2])
    runs, kr = [], None
    for i in range(args.repeats):
        dt, (kr, _) = timed(run_kernel, bound, inputs)
        runs.append(dt)
        log(f"[{name}] kernel run {i + 1}/{args.repeats}: {dt:.3f} s")
    t_kernel = min(runs)
    liqs = kr.liquidations.sum(1)
    acct = sum(a.sum() for a in kr.account_liquidated)

    # one candidate end to end (bind + inputs + kernel + result): a no-op override of a real parameter,
    # so it goes through with_params like a search trial and does the same kernel work as above
    proto = sc.protocols[0].adapter
    key, value = candidate_param(prep, proto)
    log(f"[{name}] evaluate() one candidate ({proto}: {key} = {value}) ...")
    import importlib

    _sim = importlib.import_module("optimizer.engine.simulate")  # the package exports a function of that name

    spent_in_kernel: list[float] = []
    orig_paths = _sim.run_paths

    def _timed_paths(*a, **k):  # the split of evaluate(): inside the kernel vs everything around it
        t0 = time.perf_counter()
        try:
            return orig_paths(*a, **k)
        finally:
            spent_in_kernel.append(time.perf_counter() - t0)

    _sim.run_paths = _timed_paths
    try:
        t_eval, ev = timed(evaluate, prep, {proto: {key: value}}, engine="kernel")
    finally:
        _sim.run_paths = orig_paths
    ev_kernel_s = sum(spent_in_kernel)
    if not np.array_equal(ev.raw.liquidations, kr.liquidations):
        failures.append(f"{name}: evaluate() with a no-op override changed the liquidations")

    # reference engine on paths 0..K-1 vs the kernel on exactly those paths
    k_max = max(1, min(k_ref, n_paths))
    ref_times, ref_raw = [], []
    for p in range(k_max):
        spent = sum(ref_times)
        if p >= MIN_REF_PATHS and spent + spent / p > args.ref_budget:
            log(f"[{name}] reference engine: stopping after {p} paths ({spent:.0f} s, budget {args.ref_budget:g} s)")
            break
        log(f"[{name}] reference engine path {p + 1}/{k_max} ...")
        dt, rr = timed(run_reference, bound, path_indices=np.array([p]))
        ref_times.append(dt)
        ref_raw.append(rr)
        log(f"[{name}]   {dt:.1f} s, {rr.liquidations[0].sum():.0f} liquidations")
    k = len(ref_times)
    ks = slice(0, k)
    kk, _ = run_kernel(bound, inputs, close=close[ks], low=low[ks], high=high[ks])
    one = []
    for _ in range(args.repeats):  # like-for-like: the kernel on the same K paths on one thread
        one.append(timed(run_kernel, bound, inputs, close=close[ks], low=low[ks], high=high[ks], n_chunks=1)[0])
    rel_max = {f: 0.0 for f in usd_fields(kk)}
    for p, rr in enumerate(ref_raw):
        bad, rel = compare(kk, p, rr, 0)
        rel_max = {f: max(rel_max[f], rel[f]) for f in rel_max}
        failures += [f"{name} path {p}: {b}" for b in bad]
    for j in range(len(bound.books)):  # which accounts were liquidated, on how many of the K paths
        a = kk.account_liquidated[j]
        b = sum(rr.account_liquidated[j] for rr in ref_raw)
        if not np.array_equal(a, b):
            failures.append(f"{name} paths 0..{k - 1}: account_liquidated of protocol {j} differs on "
                            f"{int((a != b).sum())} accounts")
    ref_liqs = [float(rr.liquidations[0].sum()) for rr in ref_raw]
    ref_s = sum(ref_times) / k
    k_s = t_kernel / n_paths
    agree = not any(f.startswith(f"{name} path") for f in failures)  # "path p:" and "paths 0..k:"
    out = {
        "name": name,
        "scenario": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
        "positions": n_pos, "paths": n_paths, "steps": n_steps, "assets": n_assets,
        "prepare_s": t_prep,
        "floor_paths_s": min(gen), "floor_paths_runs_s": gen,
        "bind_inputs_s": min(binds),
        "kernel_first_call_s": t_first,
        "kernel_s": t_kernel, "kernel_runs_s": runs, "kernel_s_per_path": k_s,
        "kernel_over_floor": t_kernel / min(gen),
        "evaluate_over_floor": t_eval / min(gen),
        "evaluate_kernel_s": ev_kernel_s, "evaluate_outside_kernel_s": t_eval - ev_kernel_s,
        "liquidations_per_path": float(liqs.mean()),
        "liquidations_per_path_p50": float(np.percentile(liqs, 50)),
        "liquidations_per_path_p95": float(np.percentile(liqs, 95)),
        "positions_liquidated_frac": float(acct / (n_paths * n_pos)),
        "evaluate_s": t_eval, "evaluate_candidate": {proto: {key: value}},
        "reference": {
            "paths": k, "s_per_path": ref_s, "runs_s": ref_times, "liquidations": ref_liqs,
            "kernel_liquidations": [float(x) for x in kk.liquidations.sum(1)],
            "kernel_1thread_s_per_path": min(one) / k,
            "identical": agree, "max_rel_diff": rel_max,
        },
        # the kernel's cost per liquidation (CPU time: wall x numba threads), for workloads whose cost is the
        # liquidations rather than the paths (a floor-relative target hides how many there are per path)
        "kernel_cpu_ns_per_liquidation": (1e9 * t_kernel * numba.get_num_threads() / float(liqs.sum())
                                          if liqs.sum() > 0 else None),
        "speedup": ref_s / k_s,
        "speedup_same_paths_1thread": ref_s / (min(one) / k),
        "peak_rss_mb": peak_rss_mb(),
    }
    out["targets_met"] = {
        "kernel_le_1s": t_kernel <= TARGET_EVAL_S,
        "evaluate_le_1s": t_eval <= TARGET_EVAL_S,
        "speedup_ge_50x": out["speedup"] >= TARGET_SPEEDUP,
        "peak_le_2gb": out["peak_rss_mb"] <= TARGET_PEAK_GB * 1024,
        "evaluate_over_floor": out["evaluate_over_floor"] <= TARGET_OVER_FLOOR.get(name, math.inf),
        "engines_identical": agree,
    }
    return out, failures


def candidate_param(prep, proto: str) -> tuple[str, float]:
    """A real parameter of the protocol set to its current value (a no-op candidate)."""
    ad = prep.current[proto]
    params = dict(getattr(ad, "params", {}) or {})
    for k, v in params.items():
        if k.endswith("liquidation_threshold_bps") and isinstance(v, (int, float)):
            return k, float(v)
    for k, v in params.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return k, float(v)
    raise SystemExit(f"bench: no numeric parameter found on {proto}")


def machine() -> dict:
    cpu_model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        affinity = os.cpu_count()
    return {"cpus": os.cpu_count(), "cpus_usable": affinity, "numba_threads": numba.get_num_threads(),
            "cpu_model": cpu_model, "platform": platform.platform(), "python": platform.python_version(),
            "numpy": np.__version__, "numba": numba.__version__, "loadavg_start": list(os.getloadavg())}


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=10, check=False)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def fmt(v, unit: str = "", digits: int = 3) -> str:
    if isinstance(v, bool):
        return "yes" if v else "NO"
    if isinstance(v, (int, np.integer)):
        return f"{v:,}{unit}"
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if abs(v) >= 1000:
        return f"{v:,.0f}{unit}"
    return f"{v:.{digits}g}{unit}"


def table(res: dict) -> str:
    names = list(res["workloads"])
    rows = [
        ("positions x paths x steps", lambda w: f"{w['positions']:,} x {w['paths']:,} x {w['steps']}"),
        ("liquidations / path (mean)", lambda w: fmt(w["liquidations_per_path"])),
        ("liquidations / path (p50, p95)", lambda w: f"{w['liquidations_per_path_p50']:,.0f}, "
                                                      f"{w['liquidations_per_path_p95']:,.0f}"),
        ("positions liquidated (mean / path)", lambda w: f"{100 * w['positions_liquidated_frac']:.2f} %"),
        ("prepare (paths + book draws)", lambda w: fmt(w["prepare_s"], " s")),
        ("floor: generate_paths", lambda w: fmt(w["floor_paths_s"], " s")),
        ("bind + build_kernel_inputs", lambda w: fmt(w["bind_inputs_s"], " s")),
        ("kernel first call (JIT/cache)", lambda w: fmt(w["kernel_first_call_s"], " s")),
        ("kernel, all paths (best)", lambda w: fmt(w["kernel_s"], " s")),
        ("kernel runs", lambda w: ", ".join(f"{x:.2f}" for x in w["kernel_runs_s"]) + " s"),
        ("kernel per path", lambda w: fmt(1e3 * w["kernel_s_per_path"], " ms")),
        ("kernel / floor", lambda w: fmt(w["kernel_over_floor"], "x")),
        ("kernel CPU per liquidation", lambda w: fmt(w.get("kernel_cpu_ns_per_liquidation"), " ns")),
        ("evaluate() one candidate, e2e", lambda w: fmt(w["evaluate_s"], " s")),
        ("  of which in the kernel", lambda w: fmt(w["evaluate_kernel_s"], " s")),
        ("  of which outside the kernel", lambda w: fmt(w["evaluate_outside_kernel_s"], " s")),
        ("evaluate / floor", lambda w: fmt(w["evaluate_over_floor"], "x")),
        ("reference paths checked (K)", lambda w: str(w["reference"]["paths"])),
        ("reference per path", lambda w: fmt(w["reference"]["s_per_path"], " s")),
        ("liquidations on K paths ref/kernel", lambda w: "/".join(
            f"{sum(w['reference'][k]):,.0f}" for k in ("liquidations", "kernel_liquidations"))),
        ("max rel diff USD totals", lambda w: f"{max(w['reference']['max_rel_diff'].values()):.1e}"),
        ("engines identical", lambda w: fmt(w["reference"]["identical"])),
        ("speed-up vs reference", lambda w: fmt(w["speedup"], "x")),
        ("speed-up, same K paths, 1 thread", lambda w: fmt(w["speedup_same_paths_1thread"], "x")),
        ("peak RSS (process, so far)", lambda w: fmt(w["peak_rss_mb"], " MB")),
        (f"target kernel <= {TARGET_EVAL_S:g} s", lambda w: fmt(w["targets_met"]["kernel_le_1s"])),
        (f"target evaluate <= {TARGET_EVAL_S:g} s", lambda w: fmt(w["targets_met"]["evaluate_le_1s"])),
        (f"target speed-up >= {TARGET_SPEEDUP:g}x", lambda w: fmt(w["targets_met"]["speedup_ge_50x"])),
        (f"target peak <= {TARGET_PEAK_GB:g} GB", lambda w: fmt(w["targets_met"]["peak_le_2gb"])),
        ("target evaluate / floor", lambda w: (f"<= {TARGET_OVER_FLOOR[w['name']]:g}x: "
                                               + fmt(w["targets_met"]["evaluate_over_floor"]))
         if w["name"] in TARGET_OVER_FLOOR else "-"),
    ]
    cells = [[label] + [fn(res["workloads"][n]) for n in names] for label, fn in rows]
    head = [""] + names
    widths = [max(len(str(r[i])) for r in [head, *cells]) for i in range(len(head))]

    def line(r: list[str]) -> str:
        return "  ".join(str(c).ljust(widths[0]) if i == 0 else str(c).rjust(widths[i]) for i, c in enumerate(r))

    m = res["machine"]
    title = (f"cascade simulator benchmark ({'quick' if res['quick'] else 'full'}): {m['cpus']} CPUs, "
             f"{m['numba_threads']} numba threads, load avg {m['loadavg_start'][0]:.1f} -> {m['loadavg_end'][0]:.1f}")
    out = [title, line(head), "  ".join("-" * w for w in widths)] + [line(r) for r in cells]
    out.append(f"total {res['total_s']:.0f} s; peak RSS {res['peak_rss_mb']:.0f} MB; "
               f"{'OK' if res['ok'] else 'FAILED: ' + str(len(res['failures'])) + ' check(s)'}")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help=f"smoke test: {QUICK['paths']} paths, {QUICK['positions']:,} positions, "
                         f"{QUICK['ref_paths']} reference paths, {QUICK['repeats']} repeats")
    ap.add_argument("--paths", type=int, help="price paths per workload (default: the scenario's, 1,000)")
    ap.add_argument("--positions", type=int, help="positions in the synthetic book (default: the scenario's)")
    ap.add_argument("--ref-paths", type=int, help="K, paths run through the reference engine per workload")
    ap.add_argument("--ref-budget", type=float, default=REF_BUDGET_S,
                    help=f"seconds of reference engine per workload before stopping early (at least "
                         f"{MIN_REF_PATHS} paths; default {REF_BUDGET_S:g})")
    ap.add_argument("--repeats", type=int, help="kernel timing runs, best taken (default 3)")
    ap.add_argument("--only", choices=[w[0] for w in WORKLOADS], action="append", help="run only this workload")
    ap.add_argument("--out", type=Path, help="JSON output (default runs/bench/latest.json, latest-quick.json)")
    args = ap.parse_args(argv)
    if args.quick:
        args.paths = args.paths or QUICK["paths"]
        args.positions = args.positions or QUICK["positions"]
        args.ref_paths = args.ref_paths or QUICK["ref_paths"]
        args.repeats = args.repeats or QUICK["repeats"]
    args.repeats = max(1, args.repeats or 3)

    t0 = time.perf_counter()
    res: dict = {"benchmark": "cascade-simulator", "schema": 1, "quick": bool(args.quick),
                 "timestamp": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
                 "machine": machine(),
                 "package": {"optimizer": str(Path(optimizer.__file__).parent), "git_commit": git_commit()},
                 "targets": {"evaluate_s": TARGET_EVAL_S, "speedup": TARGET_SPEEDUP, "peak_rss_gb": TARGET_PEAK_GB,
                             "engines_rtol": RTOL, "engines_atol_usd": ATOL_USD},
                 "workloads": {}}
    failures: list[str] = []
    for name, path, k_ref in WORKLOADS:
        if args.only and name not in args.only:
            continue
        if args.quick and name in FULL_ONLY and not args.only:
            continue
        w, bad = bench_workload(name, path, args, args.ref_paths or k_ref)
        res["workloads"][name] = w
        failures += bad
    res["machine"]["loadavg_end"] = list(os.getloadavg())
    res["peak_rss_mb"] = peak_rss_mb()
    res["total_s"] = time.perf_counter() - t0
    res["ok"] = not failures
    res["failures"] = failures

    out = args.out or ROOT / "runs" / "bench" / ("latest-quick.json" if args.quick else "latest.json")
    line = json.dumps(res, separators=(",", ":"))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(line + "\n")
    print(table(res))
    print(f"(JSON written to {out})")
    if failures:
        log("bench: FAILED — the kernel and the reference engine disagree:")
        for f in failures[:20]:
            log("  " + f)
    print(line, flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
