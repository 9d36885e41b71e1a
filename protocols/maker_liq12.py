"""Maker Liquidations 1.x (Cat + Flipper English auctions), vectorised over vaults and auctions.

Rules read from ``makerdao/dss``:

- ``src/cat.sol`` at tag 1.0.0 (6fd7de0, deployed at the MCD launch 2019-11-18; unchanged but for
  pragmas and comments until the Liquidations 1.2 rewrite): ``bite`` takes ``lot = min(ink, lump)``
  collateral per call (``lump`` per ilk, in tokens) and ``art·lot/ink`` of the debt; ``chop`` a ray.
  This is the Cat that liquidated the vaults of 12–13 March 2020 (``cat_version = "1.0"``).
- ``src/cat.sol`` at tag 1.1.0 (ee01dab, 2020-08-24; the Liquidations 1.2 upgrade, executive of
  2020-08-28): ``bite`` takes debt chunks of ``dunk`` DAI (per ilk) under a global cap ``box`` on the
  DAI being raised by active auctions (``litter``, released by ``claw`` on ``deal``) and refuses to
  bite when ``box − litter < dust``; ``chop`` a wad (``cat_version = "1.2"``).
- ``src/flip.sol``: the English auctions, in :mod:`protocols.maker_flipper` (``flipper_version``).

The registry name ``maker_liq12`` is the name issue 14 gives this rule family; the bundled snapshot
(``data/protocols/maker_liq12_eth_a_2020-03-12.json``) is the system actually in force in March 2020,
i.e. Cat 1.0 + Flipper 1.0: Liquidations 1.2 (box/dunk/litter) did not exist yet. The snapshot states
the contracts, the tag and ``valid_from``/``valid_to``; a Liquidations 1.2 snapshot selects the 1.2
Cat with ``cat_version = "1.2"``.

Units and modelling choices as in :mod:`protocols.maker` (Liquidations 2.0): DAI and prices in DAI per
token as floats, collateral in whole tokens; ``rate = 1`` (stability fees not simulated, so a vault's
``art`` is its DAI debt); ``par = 1``; prices are the OSM's current value (the simulator applies the
delay ``osm_hop_s``, :class:`CircuitBreakers.oracle_delay_s`). A book holds one ilk column per vault
and ``debt_assets == ("DAI",)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np

from . import maker_flipper as flipper
from ._base import (
    Adapter,
    Book,
    CircuitBreakers,
    Invariant,
    LiquidationOutcome,
    ParameterSchema,
    ParamSpec,
    PositionTerms,
    Prices,
    RiskLevers,
    SnapshotError,
    as_mask,
    field_of,
)
from .maker import PAR, _underlying

CAT_V1_0, CAT_V1_2 = "1.0", "1.2"
CAT_VERSIONS = (CAT_V1_0, CAT_V1_2)

# Why a bite did not happen (``extra["reason"]``, :attr:`Bite.reason`), named after cat.sol reverts.
OK = 0
NOT_SELECTED = 1  # not in the caller's mask
NOT_UNSAFE = 2  # Cat/not-unsafe (spot > 0 and ink·spot < art·rate fails)
STOPPED = 3  # liquidations disabled for the ilk (Cat/not-live, or no Flipper rights)
LIMIT_HIT = 4  # Cat/liquidation-limit-hit (1.2: litter >= box or box − litter < dust)
NULL_AUCTION = 5  # Cat/null-auction (1.2); 1.0: ink == 0 divides by zero and reverts


# --------------------------------------------------------------------------------------------
# Cat.bite
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bite:
    """Result of biting vaults (arrays per vault; zeros where ``reason != OK``)."""

    lot: np.ndarray  # collateral taken from the vault (the auction lot), tokens
    art: np.ndarray  # debt taken from the vault (normalised; DAI with rate = 1)
    due_dai: np.ndarray  # art·rate: debt moved to the Vow (Vow.fess)
    tab_dai: np.ndarray  # due·chop: DAI the Flipper must raise
    reason: np.ndarray
    litter_dai: float  # Liquidations 1.2: DAI in active auctions after the bites (0 for 1.0)


def _unsafe(ink: np.ndarray, art: np.ndarray, spot: np.ndarray, rate: np.ndarray) -> np.ndarray:
    return (spot > 0) & (ink * spot < art * rate)


def bite_v10(ink, art, spot, *, lump_tokens, chop, rate=1.0) -> Bite:
    """``Cat.bite`` of dss 1.0.0 on each vault (independent: the 1.0 Cat keeps no state between bites).

    Requires ``spot > 0 and ink·spot < art·rate``; then ``lot = min(ink, lump)``,
    ``art' = min(art, lot·art/ink)``, ``tab = art'·rate·chop``. ``spot = price/(par·mat)``;
    ``lump_tokens``, ``chop``, ``rate`` broadcast per vault. No dust check: a bite may leave a vault
    below ``dust``. ``ink == 0`` divides by zero in the contract (revert, :data:`NULL_AUCTION`).
    """
    ink, art, spot, lump, chop_, rate_ = np.broadcast_arrays(*(np.asarray(x, np.float64) for x in
                                                               (ink, art, spot, lump_tokens, chop, rate)))
    reason = np.where(_unsafe(ink, art, spot, rate_), OK, NOT_UNSAFE).astype(np.int8)
    reason[(reason == OK) & (ink <= 0)] = NULL_AUCTION
    go = reason == OK
    lot = np.where(go, np.minimum(ink, lump), 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        taken = np.where(go, np.where(lot >= ink, art, np.minimum(art, lot * art / np.where(ink > 0, ink, 1.0))), 0.0)
    due = taken * rate_
    return Bite(lot, taken, due, due * chop_, reason, 0.0)


def bite_v12(ink, art, spot, *, dunk_dai, chop, dust_dai, box_dai: float, litter_dai: float = 0.0,
             rate=1.0) -> Bite:
    """``Cat.bite`` of dss 1.1.0 (Liquidations 1.2) on vaults in array order, sharing ``litter``.

    Per vault: require unsafe; ``room = box − litter``; require ``litter < box and room >= dust``
    (else :data:`LIMIT_HIT`); ``dart = min(art, min(dunk, room)/rate/chop)``,
    ``dink = min(ink, ink·dart/art)``, both > 0 (else :data:`NULL_AUCTION`); ``tab = dart·rate·chop``;
    ``litter += tab``. May leave a vault dusty. ``dunk_dai``, ``chop``, ``dust_dai``, ``rate`` broadcast
    per vault (from its ilk).

    Vectorised by runs, as :func:`protocols.maker.bark`: under the current room every vault whose
    whole ``min(art·rate·chop, dunk)`` fits is settled at once; the vault where a run ends (partial
    bite of the remaining room, or a limit hit, which changes nothing and is skipped together with the
    following vaults that the same room also refuses) is handled on its own.
    """
    ink, art, spot, dunk, chop_, dust, rate_ = np.broadcast_arrays(
        *(np.asarray(x, np.float64) for x in (ink, art, spot, dunk_dai, chop, dust_dai, rate)))
    n = ink.shape[0]
    reason = np.where(_unsafe(ink, art, spot, rate_), OK, NOT_UNSAFE).astype(np.int8)
    tab_full = np.minimum(art * rate_ * chop_, dunk)
    null_full = (tab_full <= 0) | (ink <= 0)
    tab = np.zeros(n)
    box, litter = float(box_dai), float(litter_dai)
    todo = np.flatnonzero(reason == OK)
    pos = 0
    while pos < todo.size:
        idx = todo[pos:]
        f_tab = np.where(null_full[idx], 0.0, tab_full[idx])
        room_before = (box - litter) - (np.cumsum(f_tab) - f_tab)
        limit_ok = (room_before > 0) & (room_before >= dust[idx])
        clean = limit_ok & (null_full[idx] | (room_before >= f_tab))
        j = int(np.argmin(clean)) if not clean.all() else idx.size
        run = idx[:j]
        reason[run] = np.where(null_full[run], NULL_AUCTION, OK)
        tab[run] = f_tab[:j]
        litter += float(f_tab[:j].sum())
        if j == idx.size:
            break
        i = int(idx[j])
        room = box - litter
        if not (room > 0 and room >= dust[i]):
            # Limit hit: the state does not change, so skip every later vault this room also refuses.
            rest = idx[j:]
            refused = ~((room > 0) & (room >= dust[rest]))
            k = int(np.argmin(refused)) if not refused.all() else rest.size
            reason[rest[:k]] = LIMIT_HIT
            pos += j + k
            continue
        # Partial bite of the remaining room (room < the vault's whole tab).
        if null_full[i] or not room / rate_[i] / chop_[i] > 0:
            reason[i] = NULL_AUCTION
        else:
            reason[i] = OK
            tab[i] = min(room, tab_full[i])
            litter = box if tab[i] >= room else litter + tab[i]
        pos += j + 1

    go = reason == OK
    with np.errstate(divide="ignore", invalid="ignore"):
        dart = np.where(go, np.minimum(art, tab / (rate_ * chop_)), 0.0)
        dink = np.where(go, np.where(dart >= art, ink, np.minimum(ink, ink * dart / np.where(art > 0, art, 1.0))), 0.0)
    dart = np.where(go & (tab >= art * rate_ * chop_), art, dart)  # exact whole bites
    return Bite(dink, dart, dart * rate_, np.where(go, tab, 0.0), reason, litter)


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IlkRules:
    """One ilk's current parameters (candidate's params) plus snapshot facts."""

    name: str
    mat: float
    chop: float
    dust_dai: float
    beg: float
    ttl_s: float
    tau_s: float
    lump_tokens: float  # Cat 1.0 (nan under 1.2)
    dunk_dai: float  # Cat 1.2 (nan under 1.0)
    liquidations_enabled: bool


# (param suffix, unit, lower, upper, integer, description); the snapshot field has the same name.
_COMMON: tuple[tuple[str, str, float, float, bool, str], ...] = (
    ("mat", "ratio", 1.0, 5.0, False, "liquidation ratio: unsafe when ink*price/mat < art*rate (Spotter)"),
    ("chop", "multiplier", 1.0, 2.0, False, "liquidation penalty: tab = debt*chop (Cat)"),
    ("dust_dai", "DAI", 0.0, 1e6, False, "minimum vault debt (Vat); the 1.2 Cat refuses to bite when box-litter < dust"),
    ("beg", "multiplier", 1.0, 2.0, False, "Flipper minimum bid increase (tend) / lot decrease (dent), 1.03 = 3 %"),
    ("ttl_s", "s", 0.0, 30 * 86_400.0, True, "Flipper bid lifetime: an auction closes ttl after its last bid"),
    ("tau_s", "s", 0.0, 30 * 86_400.0, True, "Flipper auction length from kick (or tick)"),
)
_BY_CAT = {
    CAT_V1_0: ("lump_tokens", "tokens", 0.0, 1e9, False, "Cat 1.0: most collateral one bite sends to auction"),
    CAT_V1_2: ("dunk_dai", "DAI", 0.0, 1e9, False, "Cat 1.2: DAI (debt x chop) one bite sends to auction"),
}


def _invariants(ilk: str, cat_version: str) -> list[Invariant]:
    p = {k: f"{ilk}.{k}" for k in ("mat", "chop", "beg", "ttl_s", "tau_s", "lump_tokens", "dunk_dai", "dust_dai")}
    out = [
        Invariant("mat > 1 (a vault must be over-collateralised: spot = price/(par*mat))", (p["mat"],),
                  lambda v: v[p["mat"]] > 1.0),
        Invariant("chop >= 1 (tab = debt*chop covers at least the debt)", (p["chop"],), lambda v: v[p["chop"]] >= 1.0),
        Invariant("beg > 1 (each tend must raise the bid, each dent lower the lot)", (p["beg"],),
                  lambda v: v[p["beg"]] > 1.0),
        Invariant("ttl > 0 (tic = now + ttl must differ from 'no bid', tic = 0)", (p["ttl_s"],),
                  lambda v: v[p["ttl_s"]] > 0.0),
        Invariant("tau > 0 (an auction must be open after kick)", (p["tau_s"],), lambda v: v[p["tau_s"]] > 0.0),
    ]
    if cat_version == CAT_V1_0:
        out.append(Invariant("lump > 0 (a bite must move collateral)", (p["lump_tokens"],),
                             lambda v: v[p["lump_tokens"]] > 0.0))
    else:
        out.append(Invariant("dunk >= dust (a whole chunk must be a valid vault debt)", (p["dunk_dai"], p["dust_dai"]),
                             lambda v: v[p["dunk_dai"]] >= v[p["dust_dai"]] and v[p["dunk_dai"]] > 0))
    return out


class MakerLiq12(Adapter):
    """Maker Liquidations 1.x: Cat.bite + Flipper English auctions (tend, dent, deal, tick).

    Health ``= ink·P / (art·mat)`` (par = 1, rate = 1): ``health < 1`` ⇔ the Cat's ``not-unsafe`` check
    fails. One :meth:`liquidate` call bites each selected unsafe vault once (1.0: ``lot = min(ink,
    lump)``; 1.2: ``dunk`` chunks under ``box``, from ``litter = 0``) and settles its auction as a
    competitive English auction at the oracle price (see there). Running auctions through time with
    keepers is done with :mod:`protocols.maker_flipper` and ``optimizer.behaviour.keepers``.

    Parameters: ``<ILK>.mat``, ``.chop``, ``.dust_dai``, ``.beg``, ``.ttl_s``, ``.tau_s`` and
    ``.lump_tokens`` (Cat 1.0) or ``.dunk_dai`` (Cat 1.2); ``box_dai`` (Cat 1.2) and ``osm_hop_s``.
    """

    name = "maker_liq12"
    bundled_snapshot = "protocols/maker_liq12_eth_a_2020-03-12.json"
    title = "Maker Liquidations 1.x (Cat + Flipper English auctions)"
    default_search_fields = ("mat", "chop")
    default_steward_limits = MappingProxyType({"mat": (0.05, False), "chop": (0.02, False)})

    # ------------------------------------------------------------------ schema
    @classmethod
    def _versions(cls, snapshot: Mapping[str, Any]) -> tuple[str, str]:
        cat = field_of(snapshot, "cat_version", "str")
        flip = field_of(snapshot, "flipper_version", "str")
        if cat not in CAT_VERSIONS:
            raise SnapshotError(f"cat_version: unknown {cat!r} (known: {', '.join(CAT_VERSIONS)})")
        if flip not in flipper.VERSIONS:
            raise SnapshotError(f"flipper_version: unknown {flip!r} (known: {', '.join(flipper.VERSIONS)})")
        if (cat == CAT_V1_2) != (flip == flipper.V1_2):
            raise SnapshotError(f"flipper_version: {flip!r} does not go with cat_version {cat!r} "
                                "(the 1.2 Cat needs the 1.2 Flipper, whose deal calls cat.claw)")
        return cat, flip

    @classmethod
    def _build_schema(cls, snapshot: Mapping[str, Any]) -> ParameterSchema:
        cat, _ = cls._versions(snapshot)
        source = field_of(snapshot, "source", "str")
        as_of = field_of(snapshot, "as_of", "str")
        field_of(snapshot, "valid_from", "str")
        field_of(snapshot, "valid_to", "str")
        ilks = field_of(snapshot, "ilks", "dict")
        if not ilks:
            raise SnapshotError("ilks: no ilks in the snapshot")
        specs: list[ParamSpec] = []
        invariants: list[Invariant] = []
        for ilk in ilks:
            if "." in ilk:
                raise SnapshotError(f"ilks.{ilk}: ilk names may not contain '.'")
            field_of(snapshot, f"ilks.{ilk}.liquidations_enabled", "bool")
            for key, unit, lo, hi, integer, desc in (*_COMMON, _BY_CAT[cat]):
                value = float(field_of(snapshot, f"ilks.{ilk}.{key}"))
                specs.append(ParamSpec(f"{ilk}.{key}", unit, lo, hi, value, desc, integer, source, as_of))
            invariants += _invariants(ilk, cat)
        if cat == CAT_V1_2:
            specs.append(ParamSpec("box_dai", "DAI", 0.0, 1e10, float(field_of(snapshot, "global.box_dai")),
                                   "Cat 1.2: cap on DAI (tab) in active auctions (litter)", False, source, as_of))
        specs.append(ParamSpec("osm_hop_s", "s", 1.0, 65_535.0, float(field_of(snapshot, "global.osm_hop_s")),
                               "OSM delay: prices lag the feed by one hop (uint16)", True, source, as_of))
        return ParameterSchema(tuple(specs), tuple(invariants))

    # ------------------------------------------------------------------ facts
    @cached_property
    def cat_version(self) -> str:
        return self._versions(self._snapshot)[0]

    @cached_property
    def flipper_version(self) -> str:
        return self._versions(self._snapshot)[1]

    @property
    def snapshot_meta(self) -> dict[str, Any]:
        keys = ("protocol", "market", "as_of", "valid_from", "valid_to", "cat_version", "flipper_version")
        return {k: self._snapshot.get(k) for k in keys if k in self._snapshot}

    @property
    def collateral_assets(self) -> tuple[str, ...]:
        return tuple(self._snapshot["ilks"])

    @property
    def debt_assets(self) -> tuple[str, ...]:
        return ("DAI",)

    @property
    def underlying(self) -> dict[str, str]:
        """Ilk -> token whose price the ilk's column carries (ETH-A -> ETH)."""
        return {ilk: _underlying(ilk) for ilk in self.collateral_assets}

    def priced_asset(self, column: str) -> str:
        """The token behind an ilk column (ETH-A -> ETH)."""
        return _underlying(column)

    def position_terms(self, book: Book) -> PositionTerms:
        """``1/mat`` as both weights, ``chop`` as the bonus, recovery 1 (the penalty comes from a surplus)."""
        self.vault_ilk(book)
        shape = book.collateral_tokens.shape
        w = np.broadcast_to(1.0 / (PAR * self._per_ilk("mat", book.collateral_assets)), shape).copy()
        chop = np.broadcast_to(self._per_ilk("chop", book.collateral_assets), shape).copy()
        return PositionTerms(health_weight=w, borrow_weight=w.copy(), liquidation_bonus=chop, recovery=np.ones(shape),
                             protocol_share=np.ones(shape), seizable=np.ones(shape, dtype=bool))

    def risk_levers(self, asset: str) -> RiskLevers | None:
        p = self.params
        if f"{asset}.mat" not in p:
            return None
        return RiskLevers(ltv=1.0 / p[f"{asset}.mat"], liquidation_threshold=1.0 / p[f"{asset}.mat"],
                          liquidator_incentive=p[f"{asset}.chop"] - 1.0, ltv_param=f"{asset}.mat")

    def ilk(self, name: str) -> IlkRules:
        if name not in self._snapshot["ilks"]:
            raise ValueError(f"unknown ilk '{name}' (known: {', '.join(self.collateral_assets)})")
        p = self.params
        return IlkRules(name, p[f"{name}.mat"], p[f"{name}.chop"], p[f"{name}.dust_dai"], p[f"{name}.beg"],
                        p[f"{name}.ttl_s"], p[f"{name}.tau_s"], p.get(f"{name}.lump_tokens", np.nan),
                        p.get(f"{name}.dunk_dai", np.nan), bool(self._snapshot["ilks"][name]["liquidations_enabled"]))

    def _per_ilk(self, suffix: str, ilks: tuple[str, ...]) -> np.ndarray:
        return np.array([self.params[f"{i}.{suffix}"] for i in ilks], np.float64)

    def vault_ilk(self, book: Book) -> np.ndarray:
        """Ilk column of each vault (its one non-zero ink column; 0 for an empty vault)."""
        unknown = [a for a in book.collateral_assets if a not in self._snapshot["ilks"]]
        if unknown or book.debt_assets != self.debt_assets:
            raise ValueError(f"a Maker book has ilk columns (known: {', '.join(self.collateral_assets)}) and "
                             f"debt_assets ('DAI',); got unknown ilks {unknown} / debt {book.debt_assets}")
        held = book.collateral_tokens > 0
        if np.any(held.sum(axis=1) > 1):
            raise ValueError("a Maker vault holds ink in exactly one ilk; found rows with several")
        return np.argmax(held, axis=1)

    # ------------------------------------------------------------------ rules
    def health(self, book: Book, prices: Prices) -> np.ndarray:
        """``ink·P/(par·mat) / (art·rate)``; +inf with no debt."""
        cap = self.borrow_capacity_usd(book, prices)
        debt = book.debt_tokens[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(debt > 0, cap / debt, np.inf)

    def borrow_capacity_usd(self, book: Book, prices: Prices) -> np.ndarray:
        """``ink·P/(par·mat)`` (Vat.frob's safety check uses the same ``spot``)."""
        self.vault_ilk(book)
        mat = self._per_ilk("mat", book.collateral_assets)
        return np.sum(book.collateral_tokens * prices.collateral_usd / (PAR * mat), axis=-1)

    def bite(self, book: Book, prices: Prices, mask: np.ndarray | None = None, *, litter_dai: float = 0.0) -> Bite:
        """``Cat.bite`` on the selected vaults (book order) at the given (OSM) prices, with this
        adapter's Cat version; vaults of ilks with liquidations disabled are :data:`STOPPED`."""
        col = self.vault_ilk(book)
        ilks = book.collateral_assets
        sel = as_mask(book, mask)
        n = book.n_positions
        idx = np.arange(n)
        price = np.broadcast_to(prices.collateral_usd, book.collateral_tokens.shape)[idx, col]
        ink, art = book.collateral_tokens[idx, col], book.debt_tokens[:, 0]
        spot = price / (PAR * self._per_ilk("mat", ilks)[col])
        chop = self._per_ilk("chop", ilks)[col]
        live = np.array([self.ilk(i).liquidations_enabled for i in ilks])[col]
        cand = sel & live
        if self.cat_version == CAT_V1_0:
            b = bite_v10(ink, np.where(cand, art, 0.0), spot, lump_tokens=self._per_ilk("lump_tokens", ilks)[col],
                         chop=chop)
        else:
            order = np.flatnonzero(cand)
            sub = bite_v12(ink[order], art[order], spot[order], dunk_dai=self._per_ilk("dunk_dai", ilks)[col][order],
                           chop=chop[order], dust_dai=self._per_ilk("dust_dai", ilks)[col][order],
                           box_dai=self.params["box_dai"], litter_dai=litter_dai)
            arrays = {k: np.zeros(n) for k in ("lot", "art", "due_dai", "tab_dai")}
            for k, a in arrays.items():
                a[order] = getattr(sub, k)
            reason = np.full(n, NOT_UNSAFE, np.int8)
            reason[order] = sub.reason
            b = Bite(arrays["lot"], arrays["art"], arrays["due_dai"], arrays["tab_dai"], reason, sub.litter_dai)
        reason = b.reason.copy()
        unsafe = _unsafe(ink, art, spot, np.ones(n))
        reason[~live & unsafe] = STOPPED
        reason[~sel] = NOT_SELECTED
        keep = reason == OK
        return Bite(np.where(keep, b.lot, 0.0), np.where(keep, b.art, 0.0), np.where(keep, b.due_dai, 0.0),
                    np.where(keep, b.tab_dai, 0.0), reason, b.litter_dai)

    def liquidate(self, book: Book, prices: Prices, mask: np.ndarray | None = None) -> LiquidationOutcome:
        """Bite every unsafe vault in ``mask`` once and settle its Flipper auction at the oracle price.

        Settlement assumes competitive keepers bidding the market value ``lot·P/P_DAI`` DAI: the tend
        phase ends at ``raised = min(tab, lot·P/P_DAI)``; if that reaches ``tab`` the dent phase lowers
        the lot to ``tab·P_DAI/P`` and the rest goes back to the owner (outside the vault, so not put
        back in the book). ``debt_repaid = min(raised, due)``, ``protocol_fee = max(raised − due, 0)``
        (penalty to surplus), ``bad_debt = max(due − raised, 0)`` (Vow sin), ``liquidator_bonus = 0``.
        The ``beg`` granularity, ``ttl``/``tau`` timing and keepers' DAI and gas are not in this
        one-call settlement: they are what :mod:`protocols.maker_flipper` and the keeper model add.
        Bitten partly (1.0: ``ink > lump``; 1.2: ``dunk`` or ``box``), a vault keeps the rest.
        """
        n = book.n_positions
        col = self.vault_ilk(book)
        idx = np.arange(n)
        b = self.bite(book, prices, mask)
        go = b.reason == OK
        p_coll = np.broadcast_to(prices.collateral_usd, book.collateral_tokens.shape)[idx, col]
        p_dai = np.broadcast_to(prices.debt_usd, book.debt_tokens.shape)[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            value_dai = np.where(go, b.lot * p_coll / p_dai, 0.0)
            raised = np.minimum(b.tab_dai, value_dai)
            sold = np.where(go & (value_dai > b.tab_dai), b.tab_dai * p_dai / p_coll, b.lot)
        sold = np.where(go, np.minimum(sold, b.lot), 0.0)
        returned = b.lot - sold
        ink, art = book.collateral_tokens[idx, col], book.debt_tokens[:, 0]
        whole = go & (b.art >= art)
        new_coll = book.collateral_tokens.copy()
        new_debt = book.debt_tokens.copy()
        new_coll[idx, col] = np.where(go, np.where(b.lot >= ink, 0.0, ink - b.lot), ink)
        new_debt[:, 0] = np.where(whole, 0.0, art - b.art)
        seized = np.zeros_like(book.collateral_tokens)
        seized[idx, col] = b.lot
        repaid = np.minimum(raised, b.due_dai)
        return LiquidationOutcome(
            book=book.with_balances(new_coll, new_debt),
            liquidated=go,
            debt_repaid_tokens=repaid[:, None],
            collateral_seized_tokens=seized,
            debt_repaid_usd=repaid * p_dai,
            collateral_seized_usd=b.lot * p_coll,
            liquidator_bonus_usd=np.zeros(n),
            protocol_fee_usd=np.maximum(raised - b.due_dai, 0.0) * p_dai,
            bad_debt_usd=np.maximum(b.due_dai - raised, 0.0) * p_dai,
            returned_to_owner_usd=returned * p_coll,
            keeper_incentive_usd=np.zeros(n),
            extra={"reason": b.reason, "ilk_index": col, "lot": b.lot, "art": b.art, "due_dai": b.due_dai,
                   "tab_dai": b.tab_dai, "raised_dai": raised, "collateral_sold_tokens": sold,
                   "returned_tokens": returned, "litter_dai": b.litter_dai},
        )

    def circuit_breakers(self) -> CircuitBreakers:
        rules = [self.ilk(i) for i in self.collateral_assets]
        return CircuitBreakers(
            oracle_delay_s=self.params["osm_hop_s"],
            global_auction_debt_cap_usd=self.params["box_dai"] if self.cat_version == CAT_V1_2 else float("inf"),
            liquidations_paused=frozenset(r.name for r in rules if not r.liquidations_enabled),
        )
