"""``cascade optimize``: the optuna search for the safest parameters that still let users borrow.

Public API::

    from optimizer.search import SearchRequest, load_result, optimize
    result = optimize(SearchRequest("aave_v3_core_24h_jumps.toml", trials=50, paths=200))
    result.recommendation, result.exit_code, result.summary(), result.to_json()
    load_result(None, "aave-v3-core-24h-jumps-200paths")   # the same result, read back without simulating

Modules:

* :mod:`.space` -- free parameters, steward-limited bounds and steps (:func:`build_space`, :class:`SearchSpace`);
* :mod:`.objective` -- efficiency under the chance constraint, invariant rejection before simulation and
  the successive path budget on common random numbers (:class:`SearchObjective`, :class:`Evaluator`);
* :mod:`.samplers` -- TPE / CMA-ES (constraint-aware) / NSGA-II / grid, seeded per trial;
* :mod:`.storage` -- journal or RDB storage, exactly-N trials over several processes, dead-worker recovery;
* :mod:`.runner` -- plan, workers, the whole command (:func:`optimize`);
* :mod:`.decide` -- steward order, out-of-sample checks, no free moves, trade-off curve, cheapest fix;
* :mod:`.result` -- :class:`SearchResult` and :func:`load_result`;
* :mod:`.report` -- Pareto front, importance, study summary, text output;
* :mod:`.baseline` -- the closed-form Smart LTV beside the optimised LTV (:func:`smart_ltv`).
"""

from .baseline import smart_ltv, smart_ltv_table
from .objective import Evaluator, ObjectiveSettings, SearchObjective, risk_of, stage_paths
from .result import SearchResult, load_result
from .runner import (
    Plan,
    SearchInterrupted,
    SearchRequest,
    fresh_paths,
    make_plan,
    optimize,
    run_study,
    search_paths,
)
from .samplers import SAMPLERS, ConstrainedCmaEsSampler, FeasibleGridSampler, FeasibleSampler, sampler_factory
from .space import Dim, Limit, SearchSpace, build_space, scenario_adapters
from .storage import StorageSpec, counts, create_or_load, recover_dead_trials, work

__all__ = [
    "SAMPLERS", "ConstrainedCmaEsSampler", "Dim", "Evaluator", "FeasibleGridSampler", "FeasibleSampler", "Limit",
    "ObjectiveSettings", "Plan", "SearchInterrupted", "SearchObjective", "SearchRequest", "SearchResult",
    "SearchSpace", "StorageSpec", "build_space", "counts", "create_or_load", "fresh_paths", "load_result",
    "make_plan", "optimize", "recover_dead_trials", "risk_of", "run_study", "sampler_factory", "scenario_adapters",
    "search_paths", "smart_ltv", "smart_ltv_table", "stage_paths", "work",
]
