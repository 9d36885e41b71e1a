"""Does the search find the cheapest fix an exhaustive grid finds, for a tenth of the simulations? How many of
its trials are wasted on candidates that break an invariant? And how long do 200 trials take?

Part 1, quality (``quality``). The bundled severe scenario ``aave_v3_core_24h_jumps`` with a small book
(2,000 positions, 200 paths), where today's set breaks the budget, a 3-parameter steward-limited space
(WETH LTV and liquidation threshold +-500 bps in 50 bps steps, WETH liquidation bonus +-200 bps in 100 bps
steps) and the default chance constraint (upper 95 % CI end of VaR 99 of bad debt / debt <= 0.1 %). The
grid simulates every feasible point (invariants and the 250 bps buffer) on all paths; its answer is the
most efficient point within budget (ties: the smaller change). The search is ``optimize()`` as a user runs
it (repair mode, TPE inside the invariant region, adaptive path budget) on the same paths (same seed: a
fully evaluated candidate gets exactly the grid's numbers), with as many trials as 10 % of the grid's
simulations, for several sampler seeds. It "reaches" the grid's best when its in-sample answer's
efficiency is within one grid step of the grid's best (the largest efficiency change one step of any
parameter makes at the grid's best point). Simulations count in path units (paths simulated / paths per
evaluation), today's set included; out-of-sample checks are reported apart (the grid has none).

Part 2, waste (``rejected``). The bundled 7-parameter search of ``aave_v3_core_24h_jumps`` (50,000
positions; 32 paths, so it is cheap) run twice for 100 trials with the default TPE: sampling inside the
invariant region off (the candidates of PR 1) and on. The share of trials rejected before simulation.

Part 3, speed (``speed``; ``--no-speed`` skips it). 200 trials on ``benchmarks/reference_workload.toml``
(50,000 positions x 1,000 paths x 288 steps), 5 free parameters (WETH LTV / LT / bonus, WBTC LTV / LT) and a
0.05 % budget, one worker, journal storage.

Prints a table, then one JSON line (the last line of stdout), also written to
``runs/bench/search_vs_grid.json``. ``--quick`` shrinks every part (smoke test).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
import tomllib
from dataclasses import replace
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
from optimizer.search import (
    Evaluator,
    SearchRequest,
    fresh_paths,
    make_plan,
    optimize,
    run_study,
    search_paths,
)
from optimizer.search.decide import assess
from optimizer.search.objective import efficiency, stage_paths
from optimizer.search.report import best_trial
from optimizer.search.runner import _mode

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
    req = SearchRequest(str(scen), storage=str(work / "grid-unused.journal"), cwd=str(work))
    plan = make_plan(req)
    prepared = prepare(plan.scenario)
    # the paths the search judges candidates on: optimize() decides them from today's set (runner._mode)
    loose = replace(plan.settings, samples=())
    cur_in = assess(Evaluator(prepared), plan.space, plan.space.current(), loose)
    cur_oos = assess(Evaluator(fresh_paths(prepared, plan.oos_seed, plan.oos_paths)), plan.space,
                     plan.space.current(), loose, samples=False)
    mode, _, two = _mode(cur_in, cur_oos, False)
    plan = make_plan(replace(req, mode=mode, path_seeds=(plan.seed, plan.oos_seed) if two else None))
    space, settings = plan.space, plan.settings
    ev = Evaluator(search_paths(plan, prepared))
    points = space.feasible_grid(plan.cfg.grid_points)
    t0 = time.perf_counter()
    results = []
    for i, params in enumerate(points):
        a = assess(ev, space, params, settings)
        results.append((params, efficiency(ev.bind(space.split(params)))["ratio"], a))
        if i % 100 == 0:
            log(f"  grid {i}/{len(points)}")
    grid_s = time.perf_counter() - t0
    today = assess(ev, space, space.current(), settings)
    feasible = [x for x in results if x[2]["holds"]]
    g_params, g_eff, g_a = max(feasible, key=lambda x: (x[1], -space.change_size(x[0]), -x[2]["risk"]["value"]))
    # one grid step of any parameter, in efficiency, at the grid's best point
    tol = 0.0
    for d in space.dims:
        for sgn in (-1, 1):
            v = g_params[d.name] + sgn * (d.step or 0)
            p = dict(g_params) | {d.name: v}
            if d.low <= v <= d.high and space.check(p)[0] == 0:
                tol = max(tol, abs(efficiency(ev.bind(space.split(p)))["ratio"] - g_eff))
    grid_sims = len(results)
    budget_trials = max(1, grid_sims // 10 - 1)  # + today's set, evaluated first: 10 % of the grid in all
    runs = []
    for k in range(seeds):
        t1 = time.perf_counter()
        res = optimize(SearchRequest(str(scen), trials=budget_trials, storage=str(work / f"search-{k}.journal"),
                                     study=f"search-{k}", cwd=str(work), sampler_seed=plan.seed + 1000 * k))
        s = time.perf_counter() - t1
        out = res.to_json()
        best = out["best"]
        eff = best["efficiency"] if best else None
        st = out["study"]
        path_units = st["paths_simulated"] / ev.n_paths + 1  # + today's set, evaluated to choose the mode
        oos_checks = len(out["out_of_sample_checks"])
        runs.append({
            "sampler_seed": plan.seed + 1000 * k, "trials": budget_trials, "mode": out["mode"],
            "simulated_trials": st["simulated_trials"], "path_units": path_units,
            "rejected_before_simulation": st["infeasible_before_simulation"],
            "best_efficiency": eff, "best_params": best["params"] if best else None,
            "gap": None if eff is None else g_eff - eff, "within_one_step": eff is not None and g_eff - eff <= tol + 1e-12,
            "recommendation": (out["recommendation"] or {}).get("params"), "exit_code": res.exit_code,
            "out_of_sample_checks": oos_checks, "seconds": round(s, 2),
        })
        runs[-1]["share_of_grid_path_units"] = path_units / grid_sims
        runs[-1]["ok"] = runs[-1]["within_one_step"] and runs[-1]["share_of_grid_path_units"] <= 0.10
        log(f"  search seed {plan.seed + 1000 * k}: best {eff} vs grid {g_eff:.6f} (tol {tol:.6f}), "
            f"{path_units:.1f} path units / {grid_sims} grid sims, {s:.1f} s")
    return {
        "scenario": str(CORE.relative_to(ROOT)), "positions": positions, "paths": paths,
        "space": space.describe(), "budget_share_of_debt": settings.budget, "grid_points": space.grid_size(5),
        "grid_feasible_points": len(points), "grid_simulations": grid_sims, "grid_within_budget": len(feasible),
        "grid_s": round(grid_s, 2), "today": {"holds": today["holds"], "risk": today["risk"]}, "mode": mode,
        "path_sets": list(plan.path_seeds),
        "grid_best": {"params": g_params, "efficiency": g_eff, "risk": g_a["risk"]},
        "one_step_efficiency": tol, "search_trials": budget_trials, "runs": runs,
        "reached": sum(r["within_one_step"] for r in runs), "ok": all(r["ok"] for r in runs),
    }


def rejected(work: Path, trials: int, paths: int) -> dict:
    """Trials rejected before simulation on the bundled 7-parameter search, sampling inside the region off / on."""
    out = {}
    for on in (False, True):
        tag = "inside" if on else "box"
        extra = "" if on else "feasible_sampling = false\n"
        text = CORE.read_text().replace("[optimize]\n", "[optimize]\n" + extra, 1)
        scen = work / f"rejected-{tag}.toml"
        scen.write_text(text)
        plan = make_plan(SearchRequest(str(scen), trials=trials, paths=paths, storage=str(work / f"rej-{tag}.journal"),
                                       study=f"rej-{tag}", cwd=str(work), mode="repair"))
        t0 = time.perf_counter()
        study = run_study(plan, None).study
        ts = study.get_trials()
        n_bad = sum(1 for t in ts if "infeasible" in t.user_attrs)
        out[tag] = {"trials": len(ts), "rejected_before_simulation": n_bad, "share": n_bad / len(ts),
                    "first_10": sum(1 for t in ts[:10] if "infeasible" in t.user_attrs),
                    "seconds": round(time.perf_counter() - t0, 1)}
        log(f"  {tag}: {n_bad}/{len(ts)} rejected before simulation")
    out["ok"] = out["inside"]["share"] <= 0.05
    return out


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
    ap.add_argument("--quick", action="store_true", help="smoke test: small grid book, 20 trials, few paths")
    ap.add_argument("--seeds", type=int, default=3, help="sampler seeds of the quality search (default 3)")
    ap.add_argument("--trials", type=int, default=200, help="trials of the speed part (default 200)")
    ap.add_argument("--no-speed", action="store_true", help="skip part 3 (speed)")
    ap.add_argument("--no-all-paths", action="store_true", help="skip the speed run without the adaptive budget")
    ap.add_argument("--out", type=Path, default=ROOT / "runs" / "bench" / "search_vs_grid.json")
    args = ap.parse_args(argv)
    work = ROOT / "runs" / "bench" / "search_vs_grid"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    t0 = time.perf_counter()
    log("part 1: exhaustive grid vs the search, same paths")
    q = quality(work, 1 if args.quick else args.seeds, 500 if args.quick else 2000, 50 if args.quick else 200)
    log("part 2: trials rejected before simulation, 7 parameters, sampling inside the invariant region off / on")
    rj = rejected(work, 20 if args.quick else 100, 32)
    s = s_all = None
    if not args.no_speed:
        log("part 3: 200 trials on the reference workload (adaptive path budget, then every candidate on all paths)")
        shape = (20 if args.quick else args.trials, 5000 if args.quick else None, 200 if args.quick else None)
        s = speed(work, *shape)
        s_all = speed(work, *shape, adaptive=False) if not args.no_all_paths else None
    out = {"benchmark": "cascade-search-vs-grid", "quick": args.quick, "numba_threads": numba.get_num_threads(),
           "quality": q, "rejected": rj, "speed": s, "speed_all_paths": s_all,
           "total_s": round(time.perf_counter() - t0, 1),
           "ok": q["ok"] and rj["ok"] and (s is None or s["within_10_min"])}

    print(f"{'quality (grid vs search, same paths)':<48}")
    print(f"  today's set: {'within' if q['today']['holds'] else 'over'} budget "
          f"(VaR99 upper CI {q['today']['risk']['ci95'][1]:.5f} vs {q['budget_share_of_debt']}); mode {q['mode']}, "
          f"path sets (seeds) {q['path_sets']}")
    print(f"  grid: {q['grid_points']} points, {q['grid_feasible_points']} feasible and simulated, "
          f"{q['grid_within_budget']} within budget, {q['grid_s']:.1f} s")
    gb = q["grid_best"]
    print(f"  grid best (cheapest fix): efficiency {gb['efficiency']:.5f}, {gb['params']}, "
          f"VaR99 upper CI {gb['risk']['ci95'][1]:.5f} <= {q['budget_share_of_debt']}")
    print(f"  one grid step = {q['one_step_efficiency']:.5f} of efficiency; search budget {q['search_trials']} trials")
    print(f"  {'seed':>9} {'mode':>7} {'best eff':>9} {'gap':>9} {'sim trials':>10} {'path units':>10} {'% of grid':>9} "
          f"{'reached':>7} {'rejected':>8} {'oos':>4} {'s':>6}")
    for r in q["runs"]:
        print(f"  {r['sampler_seed']:>9} {r['mode']:>7} {r['best_efficiency'] or math.nan:>9.5f} "
              f"{r['gap'] if r['gap'] is not None else math.nan:>9.5f} {r['simulated_trials']:>10} "
              f"{r['path_units']:>10.1f} {100 * r['share_of_grid_path_units']:>8.1f}% "
              f"{'yes' if r['within_one_step'] else 'no':>7} {r['rejected_before_simulation']:>8} "
              f"{r['out_of_sample_checks']:>4} {r['seconds']:>6.1f}")
    print("rejected before simulation (bundled 7-parameter search, 32 paths)")
    for tag, label in (("box", "sampling in the box, reject after"), ("inside", "sampling inside the region")):
        x = rj[tag]
        print(f"  {label:<36} {x['rejected_before_simulation']:>4}/{x['trials']} ({100 * x['share']:.0f} %), "
              f"first 10: {x['first_10']}")
    if s is not None:
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
