"""Optuna samplers for the search, seeded for reproducibility.

* ``tpe`` (default, single objective): multivariate TPE with the constant liar (parallel workers do not
  pile onto one region). It reads ``trial.set_constraint`` values itself (optuna 5): feasible complete
  trials rank first, then pruned ones, then infeasible ones by total violation.
* ``nsga2`` (default with two objectives): NSGA-II; it also reads the constraints (constrained
  domination) but only over COMPLETE trials.
* ``cmaes``: CMA-ES ignores constraints in optuna 5 (it warns and ranks by value alone), which would make
  a risky candidate look best. :class:`ConstrainedCmaEsSampler` gives the CMA update the values of Deb's
  feasibility rule instead: feasible trials keep their efficiency (>= 0), infeasible ones get
  ``-(total violation)``, invariant-infeasible pruned trials included. The stored trial values are untouched.
* ``grid``: every point of the steward-limited grid (:meth:`SearchSpace.grid`), shuffled once by the seed.

Seeds: a fresh sampler is made for every trial with ``SeedSequence([seed, worker, trials so far])``, so a
single worker replays the same trials on the same seed even across a resume, and parallel workers
(distinct ``worker``) never draw the same stream. The grid sampler keeps one seed for all workers: its
grid order must be the same everywhere (trial k evaluates grid point k).
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable

import numpy as np
import optuna
from optuna.samplers import BaseSampler, CmaEsSampler, GridSampler, NSGAIISampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from .space import SearchSpace

SAMPLERS = ("tpe", "cmaes", "nsga2", "grid")


def violation(trial: FrozenTrial) -> float:
    return float(sum(v for v in trial.constraints.values() if v > 0))


class ConstrainedCmaEsSampler(CmaEsSampler):
    """CMA-ES whose update sees Deb's feasibility rule (see the module docstring)."""

    def _get_trials(self, study: optuna.Study) -> list[FrozenTrial]:
        out = []
        for t in study.get_trials(deepcopy=False):
            v = violation(t)
            if t.state == TrialState.COMPLETE:
                value = t.value if v <= 0 else -v
            elif t.state == TrialState.PRUNED and v > 0:
                value = -v
            elif t.state == TrialState.PRUNED and t.intermediate_values:
                value = t.intermediate_values[max(t.intermediate_values)]
            else:
                continue
            if value != t.value or t.state != TrialState.COMPLETE:
                t = copy.deepcopy(t)
                t.value = value
                t.state = TrialState.COMPLETE
            out.append(t)
        return out

    def after_trial(self, study, trial, state, values) -> None:  # no "constraints ignored" warning
        self._independent_sampler.after_trial(study, trial, state, values)


def trial_seed(seed: int, worker: int, n_trials: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(worker), int(n_trials)]).generate_state(1)[0])


def sampler_factory(name: str, space: SearchSpace, *, seed: int, worker: int, multi: bool, trials: int,
                    population_size: int = 20, grid_points: int = 5) -> Callable[[int], BaseSampler]:
    """``factory(n_trials_so_far) -> sampler`` for one worker."""
    if name not in SAMPLERS:
        raise ValueError(name)
    n_startup = min(10, max(4, trials // 4))

    def make(n_trials: int) -> BaseSampler:
        s = trial_seed(seed, worker, n_trials)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if name == "tpe":
                return TPESampler(seed=s, multivariate=True, constant_liar=True, n_startup_trials=n_startup)
            if name == "cmaes":
                return ConstrainedCmaEsSampler(seed=s, n_startup_trials=1, warn_independent_sampling=False)
            if name == "nsga2":
                return NSGAIISampler(seed=s, population_size=population_size)
            return grid
    grid = GridSampler(space.grid(grid_points), seed=int(seed) % 2**32) if name == "grid" else None
    return make
