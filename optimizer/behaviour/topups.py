"""Vault owners adding collateral when their vault nears liquidation (Maker ETH-A, Liquidations 1.x).

A pure, data-driven model that the Maker 1.x venue calls once per step *before* the Cat bites (no I/O
but :func:`load_model`; vectorised over vaults). On 12 March 2020 owners defended their vaults: "the total
ETH in DeFi has actually increased some 200,000 ETH. The most likely driver: users with loans on Maker
looking to boost their collateralization" (CoinDesk, 12 Mar 2020). Without it a replay bites vaults
hours earlier and in greater number than the day did.

**The rule.** Each vault's owner is a *responder* with the probability of its size bucket
(``size_shares``: owners of large vaults watch them more closely); the draw is made once per path from
the scenario's seed. An owner *watches* the vault's health at the lower of the OSM price (what the Cat
bites at) and the market price (what the owner sees on a dashboard, and where the OSM goes within the
hour): ``watched = health(book, min(osm, market))``. When ``watched < trigger_health`` the owner's
clock starts; ``reaction_delay_min`` later (still below the trigger) the owner adds ETH so that the
watched health is ``target_health`` again, at most ``capacity_share`` × the vault's collateral at the
start of the window in all (the ETH the owner can still bring). When the watched health climbs back
over the trigger the clock resets. A vault that was bitten is no longer defended (the owner lost it).
The top-up goes into the Vat (``frob``): it needs no price and moves no market.

Parameters live in a JSON file (``data/behaviour/vault_topups_2020-03-12.json``), each with its source or
stated as an assumption with a range; the one public calibration target is the ~200k ETH aggregate
(the venue's ledger reports ``owner_topup_tokens`` to compare with it). A scenario turns the model on with
``owner_topups = "behaviour/vault_topups_2020-03-12.json"`` in its ``[[protocols]]`` entry; without it
nobody tops up.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError


@dataclass(frozen=True)
class TopupModel:
    """Vault owners' top-up behaviour (constructed by :func:`model`)."""

    trigger_health: float  # the owner acts when the watched health falls below this (1 = liquidation ratio)
    target_health: float  # ... and adds collateral back to this watched health
    reaction_delay_min: float  # minutes between the first step below the trigger and the top-up landing
    capacity_share: float  # most an owner adds over the window, as a share of the vault's initial collateral
    size_min_usd: np.ndarray  # lower bound of each size bucket (initial collateral, USD), ascending, first 0
    size_share: np.ndarray  # share of owners in each bucket who respond
    sources: Mapping[str, str] = field(default_factory=dict)

    def responder_share(self, collateral_usd: np.ndarray) -> np.ndarray:
        """Probability that the owner of a vault with ``collateral_usd`` responds (by size bucket)."""
        b = np.searchsorted(self.size_min_usd, np.asarray(collateral_usd, np.float64), side="right") - 1
        return self.size_share[np.clip(b, 0, self.size_share.size - 1)]


@dataclass(frozen=True)
class TopupState:
    """Per-vault state through one path."""

    responder: np.ndarray  # bool: this owner defends the vault
    capacity_tokens: np.ndarray  # collateral the owner can still add
    below_since_s: np.ndarray  # time the watched health fell below the trigger (nan: not below)
    added_tokens: np.ndarray  # collateral added so far

    @classmethod
    def start(cls, m: TopupModel, collateral_tokens: np.ndarray, collateral_usd: np.ndarray,
              rng: np.random.Generator) -> TopupState:
        """Draw the responders (one uniform per vault) and their capacity from the initial collateral."""
        c = np.asarray(collateral_tokens, np.float64)
        resp = rng.random(c.size) < m.responder_share(collateral_usd)
        return cls(resp, np.where(resp, m.capacity_share * c, 0.0), np.full(c.size, np.nan), np.zeros(c.size))


def topup_step(m: TopupModel, st: TopupState, *, now_s: float, watched_health: np.ndarray,
               collateral_tokens: np.ndarray, defended: np.ndarray) -> tuple[np.ndarray, TopupState]:
    """Collateral each owner adds this step (tokens, per vault) and the new state.

    ``watched_health`` is the health at the price the owner watches; ``collateral_tokens`` the vault's
    collateral now; ``defended`` the vaults still defended (open, with debt, never bitten). Health is
    proportional to collateral, so reaching ``target_health`` from ``h`` needs ``c·(target/h − 1)``.
    """
    h = np.asarray(watched_health, np.float64)
    c = np.asarray(collateral_tokens, np.float64)
    watch = st.responder & defended
    below = watch & (h < m.trigger_health)
    since = np.where(below, np.where(np.isnan(st.below_since_s), now_s, st.below_since_s), np.nan)
    ready = below & (now_s - since >= 60.0 * m.reaction_delay_min - 1e-9) & (st.capacity_tokens > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        need = np.where(ready & (h > 0), c * (m.target_health / h - 1.0), 0.0)
    add = np.clip(need, 0.0, st.capacity_tokens)
    return add, TopupState(st.responder, st.capacity_tokens - add, since, st.added_tokens + add)


def model(spec: Mapping[str, Any], *, file: str | None = None) -> TopupModel:
    """Build and validate a model from a dict (the JSON format of ``data/behaviour/``); one-line errors."""
    def num(key: str, lo: float, hi: float) -> float:
        v = spec.get(key)
        if isinstance(v, dict) and "value" in v:
            v = v["value"]
        if v is None:
            raise InputError("missing", file=file, field=key)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or not lo <= v <= hi:
            raise InputError(f"must be a number in [{lo:g}, {hi:g}], got {v!r}"[:200], file=file, field=key)
        return float(v)

    trigger = num("trigger_health", 1.0, 10.0)
    target = num("target_health", 1.0, 20.0)
    if target < trigger:
        raise InputError(f"must be at least trigger_health ({trigger:g}), got {target:g}", file=file,
                         field="target_health")
    delay = num("reaction_delay_min", 0.0, 10080.0)
    cap = num("capacity_share", 0.0, 100.0)
    buckets = spec.get("size_shares")
    if isinstance(buckets, dict) and "value" in buckets:
        buckets = buckets["value"]
    if not isinstance(buckets, list) or not buckets:
        raise InputError("must be a non-empty list of {min_collateral_usd, share}", file=file, field="size_shares")
    lo_usd, share = [], []
    for i, b in enumerate(buckets):
        where = f"size_shares[{i}]"
        if not isinstance(b, Mapping):
            raise InputError("must be an object", file=file, field=where)
        for k, hi in (("min_collateral_usd", 1e15), ("share", 1.0)):
            v = b.get(k)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or not 0 <= v <= hi:
                raise InputError(f"must be a number in [0, {hi:g}], got {v!r}"[:200], file=file, field=f"{where}.{k}")
        lo_usd.append(float(b["min_collateral_usd"]))
        share.append(float(b["share"]))
    if lo_usd[0] != 0 or any(b <= a for a, b in itertools.pairwise(lo_usd)):
        raise InputError("min_collateral_usd must start at 0 and increase", file=file, field="size_shares")
    sources = {k: str(v.get("source", "")) for k, v in spec.items() if isinstance(v, dict) and "source" in v}
    return TopupModel(trigger, target, delay, cap, np.array(lo_usd), np.array(share), sources)


def load_model(path: str | Path) -> TopupModel:
    """Read a top-up model JSON file (the I/O edge of this module)."""
    from ..snapshots import read_json

    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError("must be a JSON object", file=str(path))
    return model(data, file=str(path))


__all__ = ["TopupModel", "TopupState", "load_model", "model", "topup_step"]
