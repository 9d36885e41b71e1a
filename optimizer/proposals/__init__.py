"""Governance proposals: read them (:mod:`.spec`, :mod:`.vocabulary`) and analyse them (:mod:`.analysis`).

    from optimizer.proposals import analyse_proposal
    r = analyse_proposal("data/proposals/2024-04-11_aave_v3_dai_risk_parameters.toml", paths=200)
    r.verdict()["text"], r.summary(), r.plot_bad_debt()
"""

from .analysis import ProposalResult, analyse_proposal
from .spec import ChangeSpec, ProposalSpec, ResolvedChange, load_proposal, parse_record, resolve

__all__ = ["ChangeSpec", "ProposalResult", "ProposalSpec", "ResolvedChange", "analyse_proposal", "load_proposal",
           "parse_record", "resolve"]
