"""The governance vocabulary of every registered adapter, for the proposal reader.

The terms themselves are venue facts and live with the adapters (``protocols/governance.py``, attached
to each adapter class as ``governance``); this module only looks them up through the adapter registry,
so no venue is named here.
"""

from __future__ import annotations

from protocols import ADAPTERS
from protocols.governance import (
    NOT_MODELLED,
    UNIT_ALIASES,
    Term,
    Vocabulary,
    canonical_unit,
    find_term,
    known_parameters,
    normalise_parameter,
)

Venue = Vocabulary  # the name the proposal reader uses

#: adapter name -> its vocabulary, for every adapter that reads proposals
VOCABULARY: dict[str, Vocabulary] = {n: c.governance for n, c in ADAPTERS.items() if c.governance is not None}


def venue_for(protocol: str) -> Vocabulary | None:
    """The venue a proposal's ``protocol`` field names (case and spacing insensitive)."""
    p = " ".join(str(protocol).strip().lower().replace("_", " ").split())
    for v in VOCABULARY.values():
        if p in {" ".join(n.replace("_", " ").split()) for n in v.names}:
            return v
    return None


def known_protocols() -> str:
    """``"Aave v3 Ethereum Core = aave_v3, ..."``: the venues a proposal may name, for messages."""
    return ", ".join(f"{ADAPTERS[n].title} = {n}" for n in VOCABULARY)


__all__ = ["NOT_MODELLED", "UNIT_ALIASES", "VOCABULARY", "Term", "Venue", "Vocabulary", "canonical_unit",
           "find_term", "known_parameters", "known_protocols", "normalise_parameter", "venue_for"]
