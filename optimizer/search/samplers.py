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
* ``grid``: every point of the steward-limited grid (:meth:`SearchSpace.grid`) that satisfies the invariants
  (:class:`FeasibleGridSampler`), shuffled once by the seed.

**Sampling inside the invariant region** (``[optimize] feasible_sampling``, on by default). A box of steward
limits is mostly infeasible once its parameters are coupled (LT >= LTV + buffer, LT x bonus <= 100 %, ...):
8 of the first 10 TPE trials on the bundled 7-parameter scenario broke a rule. :class:`FeasibleSampler`
wraps TPE / CMA-ES / NSGA-II: it asks the wrapped sampler for a joint proposal (``sample_relative``) and
accepts it only if :meth:`SearchSpace.check` passes (:meth:`SearchSpace.feasible`), asking again up to ``tries`` times (TPE and NSGA-II
draw a new proposal each time: the accepted one is a draw from the sampler's proposal conditioned on the
feasible region). If none passes (CMA-ES restores its state per call and proposes the same point), the
groups (assets) of the last proposal that satisfy their rules are kept and the others redrawn uniformly
inside their feasible region (:meth:`SearchSpace.random_feasible`); the random start-up trials are drawn
that way from the beginning. The trial stores exactly the values simulated, so samplers, the dashboard
and a resumed study see the real candidates.

Seeds: a fresh sampler is made for every trial with ``SeedSequence([seed, worker, trials so far])``, so a
single worker replays the same trials on the same seed even across a resume, and parallel workers
(distinct ``worker``) never draw the same stream. The grid sampler keeps one seed for all workers: its
grid order must be the same everywhere (trial k evaluates grid point k).
"""

from __future__ import annotations

import copy
import json
import warnings
from collections.abc import Callable

import numpy as np
import optuna
from optuna.samplers import BaseSampler, CmaEsSampler, GridSampler, NSGAIISampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from .space import SearchSpace

SAMPLERS = ("tpe", "cmaes", "nsga2", "grid")
GRID_ID_ATTR = "cascade:grid_id"


def violation(trial: FrozenTrial) -> float:
    """Total violation of the named constraints (the legacy unnamed copy, keys "0", "1", ..., is skipped)."""
    return float(sum(v for k, v in trial.constraints.items() if v > 0 and not k.isdigit()))


class DeferredLiarTPESampler(TPESampler):
    """Multivariate TPE whose constant-liar record of a proposal can be written once, for the proposal kept.

    ``TPESampler.sample_relative`` writes each proposal to the running trial's system attributes (how the
    other workers' liar sees the parameters of a running trial), one study-journal record per proposal.
    :class:`FeasibleSampler` draws many proposals per trial and keeps one (about 28 per trial on the bundled
    LST scenario: the writes were 40 % of the sampler's time); with ``share`` off a proposal is drawn
    exactly as before (same estimators, same random draws) without the record, and :meth:`share_proposal`
    writes the kept one in optuna's own format. A single worker's trials are the same either way."""

    share = True

    def sample_relative(self, study, trial, search_space):
        if self.share or self._group:
            return super().sample_relative(study, trial, search_space)
        return self._sample_relative(study, trial, search_space)

    def share_proposal(self, study, trial, params) -> None:
        """The record ``TPESampler.sample_relative`` writes for ``params`` (nothing without the liar)."""
        if not params or not self._constant_liar:
            return
        from optuna.samplers._tpe.sampler import _RELATIVE_PARAMS_KEY, _SYSTEM_ATTR_MAX_LENGTH

        text = json.dumps(params)
        for i in range(0, len(text), _SYSTEM_ATTR_MAX_LENGTH):
            study._storage.set_trial_system_attr(trial._trial_id, f"{_RELATIVE_PARAMS_KEY}:{i // _SYSTEM_ATTR_MAX_LENGTH}",
                                                 text[i:i + _SYSTEM_ATTR_MAX_LENGTH])


class FeasibleSampler(BaseSampler):
    """A sampler whose candidates satisfy every invariant of the space (see the module docstring)."""

    def __init__(self, base: BaseSampler, space: SearchSpace, seed: int, tries: int = 100) -> None:
        self.base, self.space, self.tries = base, space, tries
        self._rng = np.random.default_rng(seed)

    def reseed_rng(self) -> None:
        self.base.reseed_rng()

    def infer_relative_search_space(self, study, trial):
        return self.space.distributions()

    def sample_relative(self, study, trial, search_space):
        if trial.system_attrs.get("fixed_params"):  # enqueued (current parameters, retries): nothing to draw
            return {}
        base_space = self.base.infer_relative_search_space(study, trial)
        proposal: dict = {}
        deferred = isinstance(self.base, DeferredLiarTPESampler)
        if deferred:
            self.base.share = False  # one liar record, for the proposal kept
        try:
            for _ in range(self.tries if base_space else 0):
                proposal = self.base.sample_relative(study, trial, base_space)
                if set(proposal) >= set(self.space.names):
                    if self.space.feasible(proposal):
                        if deferred:
                            self.base.share_proposal(study, trial, proposal)
                        return {n: proposal[n] for n in self.space.names}
                else:
                    break  # the wrapped sampler is in its random start-up phase
        finally:
            if deferred:
                self.base.share = True
        out = self.space.random_feasible(self._rng, start=proposal or None) or {}
        if deferred and proposal:
            self.base.share_proposal(study, trial, out)
        return out

    def sample_independent(self, study, trial, param_name, param_distribution):
        return self.base.sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study, trial) -> None:
        self.base.before_trial(study, trial)

    def after_trial(self, study, trial, state, values) -> None:
        self.base.after_trial(study, trial, state, values)


class FeasibleGridSampler(BaseSampler):
    """Every feasible grid point once, in one seeded order shared by all workers.

    A point is taken when a trial that is not FAIL holds its parameters (as values or as enqueued fixed
    parameters), so a failed trial's point is offered again and a re-queued retry is not duplicated.
    """

    def __init__(self, points: list[dict[str, float]], space: SearchSpace, seed: int) -> None:
        self.points, self.space = points, space
        self.order = np.random.default_rng(seed).permutation(len(points)).tolist()
        self._index = {self._key(p): i for i, p in enumerate(points)}
        self._pending: dict[int, int] = {}

    def _key(self, params) -> tuple:
        return tuple(round(float(params[n]), 9) for n in self.space.names)

    def _taken(self, study) -> set[int]:
        out = set()
        for t in study.get_trials(deepcopy=False):
            if t.state == TrialState.FAIL:
                continue
            p = t.params if set(t.params) >= set(self.space.names) else t.system_attrs.get("fixed_params") or {}
            if set(p) >= set(self.space.names):
                i = self._index.get(self._key(p))
                if i is not None:
                    out.add(i)
            elif GRID_ID_ATTR in t.system_attrs:
                out.add(int(t.system_attrs[GRID_ID_ATTR]))
        return out

    def is_exhausted(self, study) -> bool:
        return len(self._taken(study)) >= len(self.points)

    def infer_relative_search_space(self, study, trial):
        return self.space.distributions()

    def before_trial(self, study, trial) -> None:
        if trial.system_attrs.get("fixed_params"):
            return
        taken = self._taken(study)
        free = [i for i in self.order if i not in taken]
        if free:
            self._pending[trial._trial_id] = free[0]
            study._storage.set_trial_system_attr(trial._trial_id, GRID_ID_ATTR, free[0])

    def sample_relative(self, study, trial, search_space):
        i = self._pending.get(trial._trial_id)
        return {} if i is None else dict(self.points[i])

    def sample_independent(self, study, trial, param_name, param_distribution):
        # every grid point is taken (the last slots race): a random feasible point keeps the trial valid
        return self.space.random_feasible(np.random.default_rng(trial.number))[param_name]


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
                    population_size: int = 20, grid_points: int = 5,
                    feasible: bool = True) -> Callable[[int], BaseSampler]:
    """``factory(n_trials_so_far) -> sampler`` for one worker (``feasible``: inside the invariant region)."""
    if name not in SAMPLERS:
        raise ValueError(name)
    n_startup = min(10, max(4, trials // 4))

    def make(n_trials: int) -> BaseSampler:
        s = trial_seed(seed, worker, n_trials)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            if name == "tpe":
                base: BaseSampler = DeferredLiarTPESampler(seed=s, multivariate=True, constant_liar=True,
                                                           n_startup_trials=n_startup)
            elif name == "cmaes":
                base = ConstrainedCmaEsSampler(seed=s, n_startup_trials=1, warn_independent_sampling=False)
            elif name == "nsga2":
                base = NSGAIISampler(seed=s, population_size=population_size)
            else:
                return grid
        return FeasibleSampler(base, space, s) if feasible else base
    grid: BaseSampler | None = None
    if name == "grid":
        grid = (FeasibleGridSampler(space.feasible_grid(grid_points), space, int(seed) % 2**32) if feasible
                else GridSampler(space.grid(grid_points), seed=int(seed) % 2**32))
    return make
