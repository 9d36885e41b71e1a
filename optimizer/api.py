"""The notebook API: simulate, compare and analyse a proposal, by bundled scenario name or file.

    from optimizer import api
    res = api.simulate("aave_v3_core_24h_jumps", paths=200)          # SimulationResult
    res.summary()                    # DataFrame: mean, stderr and 95 % intervals per metric
    res.events(), res.accounts()     # DataFrames (events need events=True)
    res.plot_bad_debt()              # matplotlib Figure

    cmp = api.compare("aave_v3_core_24h_jumps", {"aave_v3": {"WETH.liquidation_threshold_bps": 8200}}, paths=200)
    cmp.summary(), cmp.verdict()["text"], cmp.plot_bad_debt()

    prop = api.analyse_proposal("data/proposals/2024-04-11_aave_v3_dai_risk_parameters.toml", paths=200)
    prop.verdict()["text"], prop.summary(), prop.plot_liquidation_map()

    opt = api.optimize("aave_v3_core_24h_jumps", trials=40, paths=200)   # SearchResult (a local study file)
    opt.recommendation, opt.verdict()["text"], opt.summary(), opt.exit_code
    api.load_optimization("aave-v3-core-24h-jumps-200paths")              # read back, without simulating

Parameters are in the units ``cascade protocols`` lists (bps, fractions, ratios, whole tokens, USD);
metrics in USD or as a share of the book's debt; every Monte Carlo estimate carries its error.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from .compare import Comparison, load_scenario_arg
from .compare import compare as _compare
from .engine import SimulationResult
from .engine import simulate as _simulate
from .proposals import ProposalResult
from .proposals import analyse_proposal as _analyse
from .scenario.config import Scenario
from .search import SearchRequest, SearchResult, load_result
from .search import optimize as _optimize

__all__ = ["Comparison", "ProposalResult", "SearchResult", "SimulationResult", "analyse_proposal", "compare",
           "load_optimization", "optimize", "simulate"]


def simulate(scenario: str | Path | Scenario, params: Mapping[str, Mapping[str, float]] | None = None, *,
             paths: int | None = None, seed: int | None = None, engine: str = "auto", events: bool = False,
             analyses: bool = True) -> SimulationResult:
    """Simulate one parameter set on a scenario.

    Parameters
    ----------
    scenario
        A bundled scenario's name (``"aave_v3_core_24h_jumps"``), a scenario TOML file or a Scenario.
    params
        Overrides ``{adapter: {key: value}}`` in the adapter's units (``{"aave_v3": {"WETH.ltv_bps": 7900}}``).
    paths, seed
        Monte Carlo paths and seed (default: the scenario's).
    engine
        ``auto`` (fast kernel where supported), ``kernel`` or ``reference``.
    events
        Keep one row per liquidation call (``result.events()``).
    analyses
        Also compute the critical drop and the liquidation map (deterministic shocks).

    Returns
    -------
    SimulationResult
        ``summary()``, ``metrics()``, ``events()``, ``accounts()``, ``plot_bad_debt()``, ``plot_liquidation_map()``.
    """
    return _simulate(load_scenario_arg(scenario), params, paths=paths, seed=seed, engine=engine, events=events,
                     analyses=analyses)


def compare(scenario: str | Path | Scenario, params: Mapping[str, Mapping[str, float]], *,
            baseline: Mapping[str, Mapping[str, float]] | None = None, paths: int | None = None,
            seed: int | None = None, engine: str = "auto", analyses: bool = True) -> Comparison:
    """Current vs a candidate on the same paths; see :func:`optimizer.compare.compare` for the parameters.

    Returns
    -------
    Comparison
        ``summary()`` (paired deltas with stderr and CI), ``verdict()``, ``to_json()``, ``plot_*()``.
    """
    return _compare(scenario, params, baseline=baseline, paths=paths, seed=seed, engine=engine, analyses=analyses)


def analyse_proposal(proposal: str | Path, scenario: str | Path | Scenario | None = None, *,
                     index: int | None = None, title: str | None = None, paths: int | None = None,
                     seed: int | None = None, engine: str = "auto", recommend_trials: int = 24,
                     recommend_paths: int | None = 200, sensitivity: bool = True,
                     replays: bool = True) -> ProposalResult:
    """Analyse a governance proposal file; see :func:`optimizer.proposals.analyse_proposal`.

    Parameters
    ----------
    proposal
        A proposal file (TOML or JSON; ``docs/proposal_format.md``).
    scenario
        A scenario (bundled name, file or object); default: the proposal's bundled default stress.
    index, title
        Which record of a file of several.
    paths, seed, engine
        As for :func:`simulate`.
    recommend_trials, recommend_paths
        Size of the short search for the optimiser's recommendation (0 trials skips it).
    sensitivity, replays
        Run the one-at-a-time sensitivity / the historical replays.

    Returns
    -------
    ProposalResult
        ``verdict()``, ``summary()``, ``to_json()``, ``plot_bad_debt()``, ``plot_liquidation_map()``,
        ``plot_price_fan()``, ``plot_sensitivity()``.
    """
    return _analyse(proposal, scenario, index=index, title=title, paths=paths, seed=seed, engine=engine,
                    recommend_trials=recommend_trials, recommend_paths=recommend_paths, sensitivity_on=sensitivity,
                    replays_on=replays)


def optimize(scenario: str | Path, *, trials: int | None = None, paths: int | None = None, seed: int | None = None,
             storage: str | None = None, study: str | None = None, timeout: float | None = None,
             sampler: str | None = None, objectives: tuple[str, ...] | None = None, per_asset: bool | None = None,
             free: tuple[str, ...] | None = None, engine: str = "auto") -> SearchResult:
    """``cascade optimize``: the search of the scenario's ``[optimize]`` table, run or resumed.

    Parameters
    ----------
    scenario
        A bundled scenario's name or a scenario TOML file with an ``[optimize]`` table.
    trials, paths, seed, timeout, sampler, objectives, per_asset
        As the command's options (default: the scenario's ``[optimize]`` table).
    storage, study
        Where the study lives (a journal file or an RDB URL; default ``runs/<study>.journal`` under the current
        directory) and its name (default: the scenario's name and path count). The same call again resumes it.
    free
        Override the free parameters (``("aave_v3:WETH.ltv_bps", ...)``).
    engine
        ``auto``, ``kernel`` or ``reference``.

    Returns
    -------
    SearchResult
        ``recommendation`` (None when nothing holds within budget out of sample), ``exit_code`` (0 / 3),
        ``verdict()``, ``summary()``, ``to_json()``.
    """
    from .cli._common import resolve_scenario

    req = SearchRequest(resolve_scenario(str(scenario)), seed=seed, trials=trials, timeout=timeout, storage=storage,
                        study=study, sampler=sampler, objectives=tuple(objectives) if objectives else None,
                        per_asset=per_asset, engine=engine, paths=paths, free=tuple(free) if free else None)
    return _optimize(req)


def load_optimization(study: str, storage: str | None = None) -> SearchResult:
    """The :class:`SearchResult` a finished search stored with its study (``cascade report``), no simulation."""
    return load_result(storage, study)
