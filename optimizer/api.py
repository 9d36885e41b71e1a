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

__all__ = ["Comparison", "ProposalResult", "SimulationResult", "analyse_proposal", "compare", "simulate"]


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
