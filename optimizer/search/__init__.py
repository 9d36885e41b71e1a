"""``cascade optimize``: the optuna search for the safest parameters that still let users borrow.

Public API::

    from optimizer.search import SearchRequest, optimize
    report = optimize(SearchRequest("data/scenarios/aave_v3_core_24h_jumps.toml", trials=50))
    report["best"]["params"], report["best"]["risk"], report["out_of_sample"], report["baseline"]

Modules:

* :mod:`.space` -- free parameters, steward-limited bounds and steps (:func:`build_space`, :class:`SearchSpace`);
* :mod:`.objective` -- efficiency under the chance constraint, invariant rejection before simulation and
  the successive path budget on common random numbers (:class:`SearchObjective`, :class:`Evaluator`);
* :mod:`.samplers` -- TPE / CMA-ES (constraint-aware) / NSGA-II / grid, seeded per trial;
* :mod:`.storage` -- journal or RDB storage, exactly-N trials over several processes, dead-worker recovery;
* :mod:`.runner` -- plan, workers, the whole command (:func:`optimize`);
* :mod:`.report` -- best set or Pareto front, changes, importance, text output;
* :mod:`.baseline` -- the closed-form Smart LTV beside the optimised LTV (:func:`smart_ltv`).
"""

from .baseline import smart_ltv, smart_ltv_table
from .objective import Evaluator, ObjectiveSettings, SearchObjective, risk_of, stage_paths
from .runner import Plan, SearchInterrupted, SearchRequest, fresh_paths, make_plan, optimize, run_study
from .samplers import SAMPLERS, ConstrainedCmaEsSampler, sampler_factory
from .space import Dim, Limit, SearchSpace, build_space, scenario_adapters
from .storage import StorageSpec, counts, create_or_load, recover_dead_trials, work

__all__ = [
    "SAMPLERS", "ConstrainedCmaEsSampler", "Dim", "Evaluator", "Limit", "ObjectiveSettings", "Plan",
    "SearchInterrupted", "SearchObjective", "SearchRequest", "SearchSpace", "StorageSpec", "build_space", "counts",
    "create_or_load", "fresh_paths", "make_plan", "optimize", "recover_dead_trials", "risk_of", "run_study",
    "sampler_factory", "scenario_adapters", "smart_ltv", "smart_ltv_table", "stage_paths", "work",
]
