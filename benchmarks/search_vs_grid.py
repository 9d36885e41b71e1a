"""Does the optuna search find what an exhaustive grid finds, for a tenth of the simulations? And how long do
200 trials take on the simulator's reference workload?

Part 1, quality. The bundled ``aave_v3_core_24h_jumps`` scenario with a small book (2,000 positions, 200
paths), a 3-parameter steward-limited space (WETH LTV and liquidation threshold +-500 bps in 50 bps steps,
WETH liquidation bonus +-200 bps in 100 bps steps) and the default chance constraint (upper 95 % CI end of
VaR 99 of bad debt / debt <= 0.1 %). The grid evaluates every point on all paths (infeasible points by
invariant are skipped, as the search skips them); the search is the default TPE with the adaptive path
budget on the same prepared paths (common random numbers: a fully evaluated candidate gets exactly the
grid's numbers), given as many trials as 10 % of the grid's simulations, for several sampler seeds. It
"reaches" the grid's best when its best feasible efficiency is within one grid step of the grid's best
(the largest efficiency change one step of any parameter makes at the grid's best point). Simulations
are counted both as candidate evaluations and in path units (paths simulated / paths per evaluation).

Part 2, speed. 200 trials of ``cascade optimize`` (TPE, adaptive path budget, one worker, journal storage)
on ``benchmarks/reference_workload.toml`` (50,000 positions x 1,000 paths x 288 steps), 5 free parameters
(WETH LTV / LT / bonus, WBTC LTV / LT) and a 0.05 % budget.

Prints a table, then one JSON line (the last line of stdout), also written to
``runs/bench/search_vs_grid.json``. ``--quick`` shrinks both parts (smoke test).
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import shutil
import sys
import time
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HERE = Path(__file__).resolve().parent

try:  # the installed package first (as `make bench`), else the checkout
    import optimizer  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(ROOT))

import numba

from optimizer.engine import prepare
from optimizer.scenario.config import parse_scenario
from optimizer.search import Evaluator, SearchRequest, make_plan, risk_of, run_study
from optimizer.search.objective import efficiency, stage_paths
from optimizer.search.report import best_trial

CORE = ROOT / "data" / "scenarios" / "aave_v3_core_24h_jumps.toml"
REFERENCE = HERE / "reference_workload.toml"

QUALITY_OPTIMIZE = """
[optimize]
free = ["aave_v3:WETH.ltv_bps", "aave_v3:WETH.liquidation_threshold_bps", "aave_v3:WETH.liquidation_bonus_bps"]
risk_metric = "var_99"
budget_share_of_debt = 0.001
min_screen_paths = 25
[optimize.steward_limits]
ltv_bps = 500
liquidation_threshold_bps = 500
liquidation_bonus_bps = 200
[optimize.step]
ltv_bps = 50
liquidation_threshold_bps = 50
liquidation_bonus_bps = 100
"""

SPEED_OPTIMIZE = """
[optimize]
free = ["aave_v3:WETH.ltv_bps", "aave_v3:WETH.liquidation_threshold_bps", "aave_v3:WETH.liquidation_bonus_bps",
        "aave_v3:WBTC.ltv_bps", "aave_v3:WBTC.liquidation_threshold_bps"]
risk_metric = "var_99"
budget_share_of_debt = 0.0005
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def write_variant(src: Path, dst: Path, optimize: str, positions: int | None, paths: int | None) -> Path:
    """The scenario with another book size / path count and our [optimize] table (TOML text edit)."""
    data = tomllib.loads(src.read_text())
    text = src.read_text().split("\n[optimize]")[0].split("\n# `cascade optimize")[0]
    if positions is not None:
        old = data["protocols"][0]["book"]["positions"]
        text = text.replace(f"positions = {old}", f"positions = {positions}", 1)
    if paths is not None:
        text = text.replace(f"paths = {data['scenario']['paths']}", f"paths = {paths}", 1)
    dst.write_text(text.rstrip() + "\n" + optimize)
    # relative paths in the scenario (none in these two) would resolve next to dst
    parse_scenario(tomllib.loads(dst.read_text()), file=str(dst), base_dir=src.parent)
    return dst


def quality(work: Path, seeds: int, positions: int, paths: int) -> dict:
    scen = write_variant(CORE, work / "quality.toml", QUALITY_OPTIMIZE, positions, paths)
    plan = make_plan(SearchRequest(str(scen), storage=str(work / "grid-unused.journal"), cwd=str(work)))
    space, budget = plan.space, plan.settings.budget
    prepared = prepare(plan.scenario)
    ev = Evaluator(prepared)
    grid = space.grid(plan.cfg.grid_points)
    names = list(grid)
    t0 = time.perf_counter()
    points = list(itertools.product(*grid.values()))
    results = []
    for i, vals in enumerate(points):
        params = dict(zip(names, vals, strict=True))
        if space.check(params)[0]:
            continue
        res = ev.evaluate(space.split(params))
        r = risk_of(res.metrics(), plan.settings.risk_metric, ev.n_paths)
        results.append((params, res.capital_efficiency()["ratio"], r))
        if i % 200 == 0:
            log(f"  grid {i}/{len(points)}")
    grid_s = time.perf_counter() - t0
    feasible = [x for x in results if x[2].high <= budget]
    g_params, g_eff, g_risk = max(feasible, key=lambda x: (x[1], -x[2].value))
    # one grid step of any parameter, in efficiency, at the grid's best point
    tol = 0.0
    for d in space.dims:
        for sgn in (-1, 1):
            v = g_params[d.name] + sgn * (d.step or 0)
            if d.low <= v <= d.high:
                p = dict(g_params) | {d.name: v}
                if space.check(p)[0]:
                    continue
                tol = max(tol, abs(efficiency(ev.bind(space.split(p)))["ratio"] - g_eff))
    grid_sims = len(results)
    budget_trials = max(1, grid_sims // 10)
    runs = []
    for k in range(seeds):
        journal = work / f"search-{k}.journal"
        for f in work.glob(f"search-{k}.journal*"):
            f.unlink()
        p = make_plan(SearchRequest(str(scen), trials=budget_trials, storage=str(journal), study=f"search-{k}",
                                    cwd=str(work)))
        p.seed = plan.seed + 1000 * k  # another sampler seed on the same paths
        t1 = time.perf_counter()
        r = run_study(p, None, prepared=prepared)
        s = time.perf_counter() - t1
        bt = best_trial(r.study)
        eff = bt.values[0] if bt else None
        runs.append({
            "sampler_seed": p.seed, "trials": budget_trials, "simulated_trials": sum(
                1 for t in r.study.get_trials() if (t.user_attrs.get("paths") or 0) > 0),
            "simulation_calls": r.evaluator_stats["simulation_calls"],
            "path_units": r.evaluator_stats["paths_simulated"] / ev.n_paths,
            "best_efficiency": eff, "best_params": dict(bt.params) if bt else None,
            "gap": None if eff is None else g_eff - eff, "within_one_step": eff is not None and g_eff - eff <= tol + 1e-12,
            "seconds": round(s, 2),
        })
        runs[-1]["share_of_grid_path_units"] = runs[-1]["path_units"] / grid_sims
        runs[-1]["share_of_grid_trials"] = runs[-1]["simulated_trials"] / grid_sims
        runs[-1]["ok"] = runs[-1]["within_one_step"] and runs[-1]["share_of_grid_path_units"] <= 0.10
        log(f"  search seed {p.seed}: best {eff} vs grid {g_eff:.6f} (tol {tol:.6f}), "
            f"{runs[-1]['path_units']:.1f} path units / {grid_sims} grid sims, {s:.1f} s")
    return {
        "scenario": str(CORE.relative_to(ROOT)), "positions": positions, "paths": paths,
        "space": space.describe(), "budget_share_of_debt": budget, "grid_points": len(points),
        "grid_simulations": grid_sims, "grid_feasible": len(feasible), "grid_s": round(grid_s, 2),
        "grid_best": {"params": g_params, "efficiency": g_eff, "risk": g_risk.as_dict(budget)},
        "one_step_efficiency": tol, "search_trials": budget_trials, "runs": runs,
        "reached": sum(r["within_one_step"] for r in runs), "ok": all(r["ok"] for r in runs),
    }


def speed(work: Path, trials: int, positions: int | None, paths: int | None, adaptive: bool = True) -> dict:
    tag = "speed" if adaptive else "speed-all-paths"
    extra = "" if adaptive else "adaptive = false\n"
    scen = write_variant(REFERENCE, work / f"{tag}.toml", SPEED_OPTIMIZE + extra, positions, paths)
    journal = work / f"{tag}.journal"
    t0 = time.perf_counter()
    plan = make_plan(SearchRequest(str(scen), trials=trials, storage=str(journal), study=tag, cwd=str(work)))
    prepared = prepare(plan.scenario)
    prep_s = time.perf_counter() - t0
    ev = Evaluator(prepared)
    ev.evaluate({})  # warm the kernel (JIT cache load) outside the timed search
    t1 = time.perf_counter()
    last = [t1]

    def progress(study, target, name):
        done = sum(t.state.name in ("COMPLETE", "PRUNED") for t in study.get_trials(deepcopy=False))
        if time.perf_counter() - last[0] > 15:
            last[0] = time.perf_counter()
            log(f"  {tag}: {done}/{target} trials, {last[0] - t1:.0f} s")

    r = run_study(plan, None, prepared=prepared, progress=progress)
    search_s = time.perf_counter() - t1
    trials_ = r.study.get_trials()
    bt = best_trial(r.study)
    fid = {k: sum(1 for t in trials_ if t.user_attrs.get("fidelity") == k) for k in ("full", "screen", "none")}
    return {
        "scenario": str(REFERENCE.relative_to(ROOT)), "positions": plan.scenario.protocols[0].book.raw["positions"],
        "paths": prepared.n_paths, "steps": prepared.n_steps, "trials": len(trials_), "free": list(plan.space.names),
        "stages": stage_paths(prepared.n_paths, plan.settings),
        "fidelity": fid, "infeasible_before_simulation": sum(1 for t in trials_ if "infeasible" in t.user_attrs),
        "dominated_unsimulated": sum(1 for t in trials_ if t.user_attrs.get("stopped") == "dominated"),
        "path_units": r.evaluator_stats["paths_simulated"] / prepared.n_paths,
        "simulation_s": r.evaluator_stats["simulation_s"], "prepare_s": round(prep_s, 2),
        "search_s": round(search_s, 2), "s_per_trial": round(search_s / max(len(trials_), 1), 3),
        "best_efficiency": bt.values[0] if bt else None, "best_params": dict(bt.params) if bt else None,
        "adaptive": adaptive, "within_10_min": search_s <= 600.0,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="smoke test: small grid book, 20 speed trials, 200 paths")
    ap.add_argument("--seeds", type=int, default=3, help="sampler seeds of the quality search (default 3)")
    ap.add_argument("--trials", type=int, default=200, help="trials of the speed part (default 200)")
    ap.add_argument("--no-all-paths", action="store_true", help="skip the speed run without the adaptive budget")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "search_vs_grid.json")
    args = ap.parse_args(argv)
    work = ROOT / "runs" / "bench" / "search_vs_grid"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    log("part 1: exhaustive grid vs TPE search")
    q = quality(work, 1 if args.quick else args.seeds, 500 if args.quick else 2000, 50 if args.quick else 200)
    log("part 2: 200 trials on the reference workload (adaptive path budget, then every candidate on all paths)")
    shape = (20 if args.quick else args.trials, 5000 if args.quick else None, 200 if args.quick else None)
    s = speed(work, *shape)
    s_all = speed(work, *shape, adaptive=False) if not args.no_all_paths else None
    out = {"benchmark": "cascade-search-vs-grid", "quick": args.quick, "numba_threads": numba.get_num_threads(),
           "quality": q, "speed": s, "speed_all_paths": s_all, "total_s": round(time.perf_counter() - t0, 1),
           "ok": q["ok"] and s["within_10_min"]}

    print(f"{'quality (grid vs TPE, same paths)':<48}")
    print(f"  grid: {q['grid_points']} points, {q['grid_simulations']} simulated (rest infeasible by invariant), "
          f"{q['grid_feasible']} within budget, {q['grid_s']:.1f} s")
    gb = q["grid_best"]
    print(f"  grid best: efficiency {gb['efficiency']:.5f}, {gb['params']}, "
          f"VaR99 upper CI {gb['risk']['ci95'][1]:.5f} <= {q['budget_share_of_debt']}")
    print(f"  one grid step = {q['one_step_efficiency']:.5f} of efficiency; search budget {q['search_trials']} trials")
    print(f"  {'seed':>6} {'best eff':>9} {'gap':>9} {'sim trials':>10} {'path units':>10} {'% of grid':>9} "
          f"{'reached':>7} {'s':>6}")
    for r in q["runs"]:
        print(f"  {r['sampler_seed']:>6} {r['best_efficiency'] or math.nan:>9.5f} {r['gap'] if r['gap'] is not None else math.nan:>9.5f} "
              f"{r['simulated_trials']:>10} {r['path_units']:>10.1f} {100 * r['share_of_grid_path_units']:>8.1f}% "
              f"{'yes' if r['within_one_step'] else 'no':>7} {r['seconds']:>6.1f}")
    print("speed (reference workload, one worker, journal storage)")
    for x in (s, s_all):
        if x is None:
            continue
        print(f"  {'adaptive path budget' if x['adaptive'] else 'all paths, no skipping':<24} {x['trials']} trials on "
              f"{x['positions']} positions x {x['paths']} paths x {x['steps']} steps: {x['search_s']:.1f} s "
              f"({x['s_per_trial']:.2f} s/trial; simulation {x['simulation_s']:.1f} s); fidelity {x['fidelity']}, "
              f"{x['infeasible_before_simulation']} infeasible, {x['dominated_unsimulated']} dominated, "
              f"{x['path_units']:.1f} full-evaluation equivalents; within 10 min: "
              f"{'yes' if x['within_10_min'] else 'no'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, default=str) + "\n")
    print(json.dumps(out, default=str))
    return 0 if out["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
