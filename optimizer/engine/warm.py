"""Compile the fast kernel into numba's on-disk cache: ``python -m optimizer.engine.warm``.

The kernel (:func:`optimizer.engine.kernel.run_paths` and every hook it calls: lending, perp and auction
venues) has one numba signature, so one evaluation of any bundled scenario compiles all of it; later
processes load the machine code from the cache next to the installed package instead of compiling for a
minute or two each. ``make test`` runs this once before the test workers start (each worker would
otherwise compile the same kernel at the same time); an installed package that was never warmed compiles
on its first evaluation instead, with the same results.

Prints one line: how long it took, and whether the cache was already warm.
"""

from __future__ import annotations

import sys
import time

#: a bundled scenario whose kernel run reaches the lending, perp and market code (one signature covers all)
WARM_SCENARIO = "perp_mixed_aave_hyperliquid_eth_12h"


def warm(scenario: str = WARM_SCENARIO) -> tuple[float, bool]:
    """Run the kernel on one path of ``scenario``; returns the seconds taken and whether it had to compile
    (numba found no usable cache entry)."""
    from ..compare import load_scenario_arg
    from .kernel import _run_chunk
    from .model import bind, prepare
    from .simulate import run_kernel

    t0 = time.perf_counter()
    bound = bind(prepare(load_scenario_arg(scenario)))
    p = bound.prepared.paths
    run_kernel(bound, close=p.close[:1], low=p.low[:1], high=p.bar_high[:1], n_chunks=1)
    return time.perf_counter() - t0, bool(_run_chunk.stats.cache_misses)


def main() -> int:
    s, compiled = warm()
    state = "compiled and cached" if compiled else "already cached"
    print(f"cascade kernel {state} ({s:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":  # pragma: no cover - entry point
    raise SystemExit(main())
