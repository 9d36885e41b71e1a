"""Maker/Sky Liquidations 2.0 (Dog + Clipper + Abacus), vectorised over vaults and auctions.

Read from ``makerdao/dss`` ``src/dog.sol`` and ``src/clip.sol`` (commit 3f30552a) and
``src/abaci.sol`` (c8d4c806), ``makerdao/clipper-mom`` ``src/ClipperMom.sol`` (1150d335) and the OSM
(``hop`` is a ``uint16``; ``step`` requires ``ts > 0``); see ``shared/docs/protocol_rules.md`` §3 and
``shared/docs/oracles.md`` §3. (protocol_rules.md cites dss fa4f6630; that exact commit was not
readable, the versions above are the ones with ``chost``, ``stopped`` level 3 and ``cut <= RAY``.)
Governance values come from the snapshot (``sky-ecosystem/spells-mainnet`` ``config.sol``).

Units: DAI amounts (rad on chain) and prices in DAI per token (ray) are floats, collateral in whole
tokens (wad). The contracts' integer rounding (a few wei) is not reproduced.

Modelling choices (each one is stated again where it is used):

- **No stability fees.** ``rate = 1``, so a vault's ``art`` equals its DAI debt (``art·rate``).
- **par = 1.** The rules (``spot``, ``top``) value DAI at par. USD figures in
  :class:`LiquidationOutcome` convert DAI with ``prices.debt_usd`` (1 in every book we build).
- **Prices are the OSM's** ``peek()`` (already one ``hop`` old); the simulator applies the delay.
- **Book layout.** ``collateral_assets`` are ilk names in snapshot order; a vault holds ``ink`` in
  exactly one ilk column. ``debt_assets == ("DAI",)``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType
from typing import Any

import numpy as np

from . import governance as _governance
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

PAR = 1.0  # Spotter.par: DAI per USD target

LINEAR, STAIRSTEP, EXPONENTIAL = "LinearDecrease", "StairstepExponentialDecrease", "ExponentialDecrease"
CALC_TYPES = (LINEAR, STAIRSTEP, EXPONENTIAL)

# Clipper `stopped` levels (clip.sol): each level also blocks everything the lower ones block.
LIVE, NO_KICK, NO_REDO, NO_TAKE = 0, 1, 2, 3

# Why a call did not happen, named after the dss revert strings (``extra["reason"]``, ``.reason``).
OK = 0
NOT_SELECTED = 1  # not in the caller's mask
NOT_UNSAFE = 2  # Dog/not-unsafe
STOPPED = 3  # Clipper/stopped-incorrect (kick inside bark, redo, take)
LIMIT_HIT = 4  # Dog/liquidation-limit-hit: Hole <= Dirt or hole <= dirt
DUSTY_PARTIAL = 5  # Dog/dusty-auction-from-partial-liquidation
NULL_AUCTION = 6  # Dog/null-auction: dink == 0
NOT_RUNNING = 7  # Clipper/not-running-auction
NEEDS_RESET = 8  # Clipper/needs-reset (take)
CANNOT_RESET = 9  # Clipper/cannot-reset (redo)
TOO_EXPENSIVE = 10  # Clipper/too-expensive: max < price
NO_PARTIAL_PURCHASE = 11  # Clipper/no-partial-purchase: tab <= chost and the buy is partial

# Token behind each ilk family (the ilk name minus its "-A"/"-B" suffix); others map to themselves.
_UNDERLYING = {"ETH": "ETH", "WBTC": "WBTC", "WSTETH": "wstETH", "LSEV2-SKY": "SKY"}


class MakerRevert(ValueError):
    """A Clipper call that reverts as a whole on chain (e.g. ``kick`` while ``stopped >= 1``)."""


# --------------------------------------------------------------------------------------------
# Abacus price curves (abaci.sol)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Calc:
    """One abacus: ``kind`` in :data:`CALC_TYPES`; ``cut`` is the per-step (per-second for
    ExponentialDecrease) multiplier, ``step_s`` the stair length, ``tau_s`` the linear run-out."""

    kind: str
    cut: float = 1.0
    step_s: float = 1.0
    tau_s: float = 0.0

    def price(self, top: np.ndarray | float, elapsed_s: np.ndarray | float) -> np.ndarray:
        return auction_price(self, top, elapsed_s)


def auction_price(calc: Calc, top: np.ndarray | float, elapsed_s: np.ndarray | float) -> np.ndarray:
    """Auction price after ``elapsed_s`` seconds, DAI per token (``Abacus.price(top, dur)``).

    - LinearDecrease: ``top·(tau − dur)/tau``, and 0 once ``dur >= tau``.
    - StairstepExponentialDecrease: ``top·cut^floor(dur/step)`` (``rpow(cut, dur / step)``).
    - ExponentialDecrease: ``top·cut^dur``.

    On chain ``dur`` is whole seconds; fractional inputs are used as given.
    """
    top = np.asarray(top, dtype=np.float64)
    dur = np.asarray(elapsed_s, dtype=np.float64)
    if np.any(dur < 0):
        raise ValueError("elapsed_s must be >= 0 (Clipper.status computes sub(block.timestamp, tic))")
    if calc.kind == LINEAR:
        if not calc.tau_s > 0:
            raise ValueError("LinearDecrease needs tau_s > 0 (price divides by tau)")
        return np.where(dur >= calc.tau_s, 0.0, top * (calc.tau_s - dur) / calc.tau_s)
    if calc.kind == STAIRSTEP:
        if not calc.step_s > 0:
            raise ValueError("StairstepExponentialDecrease needs step_s > 0 (price divides by step)")
        return top * calc.cut ** np.floor(dur / calc.step_s)
    if calc.kind == EXPONENTIAL:
        return top * calc.cut**dur
    raise ValueError(f"unknown abacus {calc.kind!r} (known: {', '.join(CALC_TYPES)})")


# --------------------------------------------------------------------------------------------
# Dog.bark
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bark:
    """Result of barking vaults in order. Arrays are per vault; ``dirt_dai`` per ilk."""

    dart: np.ndarray  # normalised debt taken from the vault
    dink: np.ndarray  # collateral taken from the vault (the auction lot), tokens
    due_dai: np.ndarray  # dart·rate: debt removed from the vault (Vow.fess)
    tab_dai: np.ndarray  # due·chop: DAI the auction must raise
    reason: np.ndarray  # OK or a Dog revert code
    dirt_dai: np.ndarray  # per-ilk DAI target in active auctions after the barks
    Dirt_dai: float  # system-wide DAI target in active auctions after the barks


def _bark_one_class(ink, art, tab_full, rate, chop, dust, room_ilk, room_all):
    """Dog.bark's checks for vaults facing the given rooms: (dart, reason), no state change.

    Order as in dss: limit check, then the partial-liquidation dust rules, then dink > 0.
    """
    room = np.minimum(room_all, room_ilk)
    reason = np.where((room_all <= 0) | (room_ilk <= 0), LIMIT_HIT, OK)
    fits = tab_full <= room  # dart = min(art, room/rate/chop) = art
    with np.errstate(divide="ignore", invalid="ignore"):
        part = np.where(fits, art, room / rate / chop)
    leftover_dusty = (art - part) * rate < dust  # take the whole vault instead
    dart = np.where(fits | leftover_dusty, art, part)
    reason = np.where((reason == OK) & (dart < art) & (dart * rate < dust), DUSTY_PARTIAL, reason)
    reason = np.where((reason == OK) & (ink <= 0), NULL_AUCTION, reason)
    return np.where(reason == OK, dart, 0.0), reason


def bark(
    ink: np.ndarray,
    art: np.ndarray,
    ilk: np.ndarray,
    *,
    chop: np.ndarray,
    dust_dai: np.ndarray,
    hole_dai: np.ndarray,
    Hole_dai: float,
    rate: np.ndarray | float = 1.0,
    dirt_dai: np.ndarray | None = None,
    Dirt_dai: float = 0.0,
) -> Bark:
    """``Dog.bark`` on unsafe vaults, one after another in array order.

    Per vault (dss dog.sol): require ``Hole > Dirt`` and ``hole > dirt``;
    ``room = min(Hole − Dirt, hole − dirt)``; ``dart = min(art, room/rate/chop)``; if
    ``0 < (art − dart)·rate < dust`` take the whole vault (``dart = art``, which may push ``dirt``
    past ``hole``), otherwise a partial bark must itself satisfy ``dart·rate >= dust``;
    ``dink = ink·dart/art > 0``; ``tab = dart·rate·chop``; ``Dirt`` and ``dirt`` grow by ``tab``.

    ``ink``, ``art`` and ``ilk`` (index into the per-ilk arrays ``chop``, ``dust_dai``,
    ``hole_dai``, ``rate``, ``dirt_dai``) describe vaults the caller already found unsafe.

    Vectorised by runs: under the current room, every vault that fits whole (cumulative ``tab``
    within both rooms) or that reverts is settled at once. Reverts never change the state and
    stay reverts as the room shrinks, so only the vault where a run ends is handled on its own:
    the one that fills a room (partial or dusty whole take) or overruns it. That loop is over
    the few vaults at the ``hole``/``Hole`` boundary, not over all vaults. A partial bark fills
    its binding room exactly (dss leaves a few wei of room from integer division).
    """
    ink = np.asarray(ink, dtype=np.float64)
    art = np.asarray(art, dtype=np.float64)
    ilk = np.asarray(ilk, dtype=np.int64)
    hole = np.asarray(hole_dai, dtype=np.float64)
    n, k_n = ink.shape[0], hole.shape[0]
    rate_k = np.broadcast_to(np.asarray(rate, np.float64), (k_n,))
    chop_k = np.broadcast_to(np.asarray(chop, np.float64), (k_n,))
    dust_k = np.broadcast_to(np.asarray(dust_dai, np.float64), (k_n,))
    dirt = np.zeros(k_n) if dirt_dai is None else np.array(dirt_dai, dtype=np.float64)
    Hole, Dirt = float(Hole_dai), float(Dirt_dai)
    rate_v, chop_v, dust_v = rate_k[ilk], chop_k[ilk], dust_k[ilk]
    tab_full = art * rate_v * chop_v

    dart = np.zeros(n)
    reason = np.full(n, NOT_UNSAFE, dtype=np.int8)  # art == 0 vaults are never unsafe
    todo = art > 0
    tab = np.zeros(n)
    pos = 0
    idx_all = np.flatnonzero(todo)
    while pos < idx_all.size:
        idx = idx_all[pos:]
        k = ilk[idx]
        room_ilk, room_all = (hole - dirt)[k], Hole - Dirt
        _, r = _bark_one_class(ink[idx], art[idx], tab_full[idx], rate_v[idx], chop_v[idx], dust_v[idx],
                               room_ilk, room_all)
        whole = (r == OK) & (tab_full[idx] <= np.minimum(room_ilk, room_all))
        f_tab = np.where(whole, tab_full[idx], 0.0)
        cum_all = np.cumsum(f_tab)
        cum_ilk = np.empty_like(f_tab)
        for kk in np.unique(k):  # loop over ilks, not vaults
            sel = k == kk
            cum_ilk[sel] = np.cumsum(f_tab[sel])
        overrun = whole & ((cum_all > room_all) | (cum_ilk > room_ilk))
        stop = ((r == OK) & ~whole) | overrun
        j = int(np.argmax(stop)) if stop.any() else idx.size

        # Settle the run [0, j) with the room each vault actually saw (earlier whole barks taken out).
        run = idx[:j]
        if j:
            d_run, r_run = _bark_one_class(
                ink[run], art[run], tab_full[run], rate_v[run], chop_v[run], dust_v[run],
                room_ilk[:j] - (cum_ilk[:j] - f_tab[:j]), room_all - (cum_all[:j] - f_tab[:j]))
            dart[run], reason[run] = d_run, r_run
            tab[run] = np.where(r_run == OK, tab_full[run], 0.0)
            dirt += np.bincount(k[:j], weights=tab[run], minlength=k_n)
            Dirt += float(tab[run].sum())
        if j == idx.size:
            break

        # The vault that ends the run, against the state the run left.
        i, ki = int(idx[j]), int(k[j])
        r_ilk, r_all = hole[ki] - dirt[ki], Hole - Dirt
        d_i, r_i = _bark_one_class(ink[i:i + 1], art[i:i + 1], tab_full[i:i + 1], rate_v[i:i + 1],
                                   chop_v[i:i + 1], dust_v[i:i + 1], np.array([r_ilk]), np.array([r_all]))
        dart[i], reason[i] = d_i[0], r_i[0]
        if r_i[0] == OK:
            if dart[i] < art[i]:  # partial: tab = room exactly, the binding counter reaches its cap
                tab[i] = min(r_ilk, r_all)
                dirt[ki] = hole[ki] if r_ilk <= r_all else dirt[ki] + tab[i]
                Dirt = Hole if r_all <= r_ilk else Dirt + tab[i]
            else:
                tab[i] = tab_full[i]
                dirt[ki] += tab[i]
                Dirt += tab[i]
        pos += j + 1

    with np.errstate(divide="ignore", invalid="ignore"):
        dink = np.where(dart >= art, ink, ink * dart / np.where(art > 0, art, 1.0))
    dink = np.where(reason == OK, dink, 0.0)
    return Bark(dart, dink, dart * rate_v, tab, reason, dirt, Dirt)


# --------------------------------------------------------------------------------------------
# Clipper: kick, status/redo, take
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Auctions:
    """Auction state of one Clipper (``sales``), arrays over auctions.

    An auction is running while ``tab > 0`` and ``lot > 0``; finished ones have both set to 0
    (``_remove`` deletes the sale).
    """

    tab: np.ndarray  # DAI still to raise
    lot: np.ndarray  # collateral tokens for sale
    top: np.ndarray  # starting price, DAI per token
    tic: np.ndarray  # start (or last redo) time, s

    def __post_init__(self) -> None:
        arrays = np.broadcast_arrays(*(np.atleast_1d(np.asarray(getattr(self, f), np.float64))
                                       for f in ("tab", "lot", "top", "tic")))
        for f, a in zip(("tab", "lot", "top", "tic"), arrays, strict=False):
            object.__setattr__(self, f, np.array(a, dtype=np.float64))

    @property
    def running(self) -> np.ndarray:
        return (self.tab > 0) & (self.lot > 0)


def kick(
    tab_dai: np.ndarray | float,
    lot: np.ndarray | float,
    feed_price: np.ndarray | float,
    *,
    buf: np.ndarray | float,
    tip_dai: np.ndarray | float,
    chip: np.ndarray | float,
    now_s: float = 0.0,
    stopped: int = LIVE,
) -> tuple[Auctions, np.ndarray]:
    """``Clipper.kick``: start auctions at ``top = feed·buf/par``.

    Returns the auctions and the keeper incentive ``coin = tip + chip·tab`` (DAI, sucked from the
    Vow, i.e. paid from surplus). Raises :class:`MakerRevert` when the Clipper is stopped
    (level >= 1), or for a zero tab, lot or top, as the whole ``bark`` would revert.
    """
    if stopped >= NO_KICK:
        raise MakerRevert(f"Clipper/stopped-incorrect: kick needs stopped < 1, stopped = {stopped}")
    tab, lot_, feed = np.broadcast_arrays(*(np.atleast_1d(np.asarray(x, np.float64))
                                            for x in (tab_dai, lot, feed_price)))
    top = feed * buf / PAR
    for bad, msg in ((tab <= 0, "Clipper/zero-tab"), (lot_ <= 0, "Clipper/zero-lot"),
                     (top <= 0, "Clipper/zero-top-price")):
        if np.any(bad):
            raise MakerRevert(msg)
    coin = np.broadcast_to(tip_dai + chip * tab, tab.shape).astype(np.float64)
    return Auctions(tab, lot_, top, np.full(tab.shape, float(now_s))), coin


def needs_redo(auctions: Auctions, calc: Calc, now_s: float, *, tail_s: float, cusp: float
               ) -> tuple[np.ndarray, np.ndarray]:
    """``Clipper.getStatus``: ``(needsRedo, price)``.

    ``needsRedo`` is true for a running auction once ``now − tic > tail`` or ``price/top < cusp``
    (``Clipper.status``; note the strict ``>`` on tail).
    """
    dur = np.where(auctions.running, now_s - auctions.tic, 0.0)
    price = auction_price(calc, auctions.top, dur)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(auctions.top > 0, price / auctions.top, 0.0)
    return auctions.running & ((dur > tail_s) | (ratio < cusp)), price


@dataclass(frozen=True)
class Redo:
    """Result of :func:`redo`: auctions after the resets and the incentive paid for each."""

    auctions: Auctions
    coin_dai: np.ndarray  # keeper incentive paid per auction
    reason: np.ndarray  # OK (reset) or STOPPED / NOT_RUNNING / CANNOT_RESET


def redo(
    auctions: Auctions,
    calc: Calc,
    now_s: float,
    feed_price: float,
    *,
    buf: float,
    tail_s: float,
    cusp: float,
    tip_dai: float,
    chip: float,
    chost_dai: float,
    stopped: int = LIVE,
) -> Redo:
    """``Clipper.redo`` on every auction that needs it (the others would revert).

    Restarts at ``top = feed·buf/par``, ``tic = now``. The keeper incentive ``tip + chip·tab``
    is paid only if ``tab >= chost`` and ``lot·feed >= chost`` (``chost = dust·chop``), so
    dusty auctions cannot be reset for profit. Blocked entirely at ``stopped >= 2``.
    """
    done, _ = needs_redo(auctions, calc, now_s, tail_s=tail_s, cusp=cusp)
    reason = np.where(~auctions.running, NOT_RUNNING, np.where(done, OK, CANNOT_RESET)).astype(np.int8)
    if stopped >= NO_REDO:
        reason[:] = STOPPED
    go = reason == OK
    top_new = feed_price * buf / PAR
    if go.any() and not top_new > 0:
        raise MakerRevert("Clipper/zero-top-price")
    a = auctions
    pays = go & (tip_dai > 0 or chip > 0) & (a.tab >= chost_dai) & (a.lot * feed_price >= chost_dai)
    coin = np.where(pays, tip_dai + chip * a.tab, 0.0)
    out = Auctions(a.tab, a.lot, np.where(go, top_new, a.top), np.where(go, float(now_s), a.tic))
    return Redo(out, coin, reason)


def purchase(
    tab_dai: np.ndarray, lot: np.ndarray, price: np.ndarray, amt: np.ndarray, chost_dai: np.ndarray | float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The arithmetic of ``Clipper.take``: ``(owe_dai, slice, ok)``.

    ``slice = min(lot, amt)``, ``owe = slice·price``. If ``owe > tab``: ``owe = tab``,
    ``slice = owe/price``. Else if ``owe < tab`` and ``slice < lot`` and ``tab − owe < chost``:
    require ``tab > chost`` (else ``ok`` is false: Clipper/no-partial-purchase), then
    ``owe = tab − chost``, ``slice = owe/price``, leaving exactly ``chost`` to raise.
    """
    tab, lot, price, amt = np.broadcast_arrays(*(np.asarray(x, np.float64) for x in (tab_dai, lot, price, amt)))
    slice_ = np.minimum(lot, amt)
    owe = slice_ * price
    with np.errstate(divide="ignore", invalid="ignore"):
        over = owe > tab
        near = ~over & (owe < tab) & (slice_ < lot) & (tab - owe < chost_dai)
        ok = (~near | (tab > chost_dai)) & ~((over | near) & (price <= 0))  # owe/price: division by 0
        owe = np.where(over, tab, np.where(near, tab - chost_dai, owe))
        # min(.., lot) only guards float rounding: on chain owe/price <= slice <= lot.
        slice_ = np.where(over | near, np.minimum(owe / price, lot), slice_)
    return np.where(ok, owe, 0.0), np.where(ok, slice_, 0.0), ok


@dataclass(frozen=True)
class Take:
    """Result of :func:`take`, per auction (zeros where the take reverted; see ``reason``)."""

    auctions: Auctions  # state after the takes
    price: np.ndarray  # abacus price paid, DAI per token
    owe_dai: np.ndarray  # DAI paid by the buyer
    slice: np.ndarray  # collateral bought, tokens
    returned: np.ndarray  # collateral sent back to the vault owner (tab reached 0), tokens
    digs_dai: np.ndarray  # Dog.digs: reduction of dirt and Dirt
    uncollected_dai: np.ndarray  # tab still open when the lot ran out (stays as Vow sin)
    reason: np.ndarray


def take(
    auctions: Auctions,
    calc: Calc,
    now_s: float,
    amt: np.ndarray | float,
    *,
    tail_s: float,
    cusp: float,
    chost_dai: float,
    max_price: np.ndarray | float = np.inf,
    stopped: int = LIVE,
) -> Take:
    """``Clipper.take`` of up to ``amt`` tokens from each running auction at the abacus price.

    Reverts (per auction, ``reason``) when the auction is not running, needs a reset, costs more
    than ``max_price``, or the buy would leave ``0 < tab < chost`` with ``tab <= chost``; blocked
    entirely at ``stopped >= 3``. After the buy: if ``lot == 0`` the sale is removed and the whole
    old ``tab`` is dug (the unpaid part stays as bad debt); if ``tab == 0`` the leftover lot goes
    back to the owner. ``Dog.digs`` gets ``owe`` (or the old ``tab`` when the lot is gone).
    """
    a = auctions
    done, price = needs_redo(a, calc, now_s, tail_s=tail_s, cusp=cusp)
    owe, slice_, ok = purchase(a.tab, a.lot, price, amt, chost_dai)
    reason = np.full(a.tab.shape, OK, dtype=np.int8)
    reason[~ok] = NO_PARTIAL_PURCHASE
    reason[np.asarray(max_price) < price] = TOO_EXPENSIVE  # checked before the purchase maths
    reason[done] = NEEDS_RESET
    reason[~a.running] = NOT_RUNNING
    if stopped >= NO_TAKE:
        reason[:] = STOPPED
    go = reason == OK
    owe, slice_ = np.where(go, owe, 0.0), np.where(go, slice_, 0.0)
    tab = np.where(go & (owe >= a.tab), 0.0, a.tab - owe)
    lot = np.where(go & (slice_ >= a.lot), 0.0, a.lot - slice_)
    gone = go & (lot == 0)
    paid = go & ~gone & (tab == 0)
    digs = np.where(gone, a.tab, owe)
    uncollected = np.where(gone, tab, 0.0)
    returned = np.where(paid, lot, 0.0)
    end = gone | paid
    after = Auctions(np.where(end, 0.0, tab), np.where(end, 0.0, lot), a.top, a.tic)
    return Take(after, price, owe, slice_, returned, digs, uncollected, reason)


def trip_breaker(stopped: np.ndarray, cur_price: np.ndarray, nxt_price: np.ndarray,
                 tolerance: np.ndarray) -> np.ndarray:
    """``ClipperMom.tripBreaker``: new ``stopped`` levels.

    Anyone may set ``stopped = 2`` when the clipper is below level 2 and the OSM's next price
    ``peep()`` is below ``tolerance·peek()``. ``tolerance`` NaN means ClipperMom is not wired
    (never trips). The governance ``locked`` delay after ``setBreaker`` is not modelled.
    """
    stopped = np.asarray(stopped)
    with np.errstate(invalid="ignore"):
        trips = (stopped < NO_REDO) & (np.asarray(nxt_price) < np.asarray(cur_price) * np.asarray(tolerance))
    return np.where(trips, NO_REDO, stopped)


# --------------------------------------------------------------------------------------------
# The adapter
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IlkRules:
    """One ilk's current parameters (from a candidate's params) plus its snapshot facts."""

    name: str
    mat: float
    chop: float
    hole_dai: float
    dust_dai: float
    buf: float
    tail_s: float
    cusp: float
    chip: float
    tip_dai: float
    calc: Calc
    # LIVE, or NO_KICK where the snapshot has liquidations disabled: spells-mainnet only asserts
    # ``clip.stopped() > 0`` for liqOn = false, so 1 is the least the level can be.
    stopped: int
    clipper_mom_tolerance: float | None

    @property
    def chost_dai(self) -> float:
        """``Clipper.chost = dust·chop`` (``upchost``): the smallest tab a partial take may leave."""
        return self.dust_dai * self.chop


# (param suffix, snapshot field, unit, lower, upper, integer, description)
_ILK_FIELDS: tuple[tuple[str, str, str, float, float, bool, str], ...] = (
    ("mat", "mat", "ratio", 1.0, 5.0, False,
     "liquidation ratio: unsafe when ink*price/mat < art*rate (Spotter spot = price/(par*mat))"),
    ("chop", "chop", "multiplier", 1.0, 2.0, False, "liquidation penalty: tab = debt*chop"),
    ("hole_dai", "hole_dai", "DAI", 0.0, 1e9, False, "per-ilk cap on DAI target (tab) in active auctions"),
    ("dust_dai", "dust_dai", "DAI", 0.0, 1e6, False,
     "minimum vault debt; partial barks and takes may not leave less (chost = dust*chop)"),
    ("buf", "buf", "multiplier", 1.0, 5.0, False, "auction start price top = feed*buf"),
    ("tail_s", "tail_s", "s", 0.0, 86_400.0, True, "auction needs a reset once elapsed > tail"),
    ("cusp", "cusp", "ratio", 0.0, 1.0, False, "auction needs a reset once price/top < cusp"),
    ("chip", "chip", "fraction", 0.0, 0.1, False, "keeper incentive: share of tab paid on kick/redo"),
    ("tip_dai", "tip_dai", "DAI", 0.0, 1e5, False, "keeper incentive: flat DAI paid on kick/redo"),
)
_CALC_FIELDS: dict[str, tuple[tuple[str, str, str, float, float, bool, str], ...]] = {
    STAIRSTEP: (("step_s", "calc.step_s", "s", 0.0, 3_600.0, True, "seconds between price cuts"),
                ("cut", "calc.cut", "multiplier", 0.0, 1.0, False, "price multiplier per step")),
    EXPONENTIAL: (("cut", "calc.cut", "multiplier", 0.0, 1.0, False, "price multiplier per second"),),
    LINEAR: (("tau_s", "calc.tau_s", "s", 0.0, 86_400.0, True, "seconds until the price reaches 0"),),
}


def _invariants(ilk: str, kind: str) -> list[Invariant]:
    p = {s: f"{ilk}.{s}" for s in ("mat", "chop", "buf", "cusp", "tail_s", "cut", "step_s", "tau_s")}
    out = [
        Invariant("mat > 1 (a vault must be over-collateralised: spot = price/(par*mat))", (p["mat"],),
                  lambda v: v[p["mat"]] > 1.0),
        Invariant("chop >= 1 (Dog.file: chop >= WAD)", (p["chop"],), lambda v: v[p["chop"]] >= 1.0),
        Invariant("buf >= 1 (auctions start at or above the feed price)", (p["buf"],),
                  lambda v: v[p["buf"]] >= 1.0),
        Invariant("0 < cusp < 1 (Clipper.status resets when price/top < cusp)", (p["cusp"],),
                  lambda v: 0.0 < v[p["cusp"]] < 1.0),
        Invariant("tail > 0 (Clipper.status resets when elapsed > tail)", (p["tail_s"],),
                  lambda v: v[p["tail_s"]] > 0.0),
    ]
    if kind in (STAIRSTEP, EXPONENTIAL):
        out.append(Invariant("0 < cut < 1 (abaci: cut <= RAY; cut = 1 never decays, cut = 0 drops to 0)",
                             (p["cut"],), lambda v: 0.0 < v[p["cut"]] < 1.0))
    if kind == STAIRSTEP:
        out.append(Invariant("step > 0 (StairstepExponentialDecrease divides by step)", (p["step_s"],),
                             lambda v: v[p["step_s"]] > 0.0))
    if kind == LINEAR:
        out.append(Invariant("tau > 0 (LinearDecrease divides by tau)", (p["tau_s"],),
                             lambda v: v[p["tau_s"]] > 0.0))
    return out


def _underlying(ilk: str) -> str:
    family = ilk.rsplit("-", 1)[0] if "-" in ilk else ilk
    return _UNDERLYING.get(family, family)


@dataclass(frozen=True)
class _IlkFacts:
    """Snapshot facts that are not tunable parameters."""

    calc_kind: str
    liquidations_enabled: bool
    clipper_mom_tolerance: float | None


def _read_facts(snapshot: Mapping[str, Any]) -> dict[str, _IlkFacts]:
    ilks = field_of(snapshot, "ilks", "dict")
    if not ilks:
        raise SnapshotError("ilks: no ilks in the snapshot")
    facts = {}
    for ilk in ilks:
        if "." in ilk:
            raise SnapshotError(f"ilks.{ilk}: ilk names may not contain '.'")
        kind = field_of(snapshot, f"ilks.{ilk}.calc.type", "str")
        if kind not in CALC_TYPES:
            raise SnapshotError(f"ilks.{ilk}.calc.type: unknown abacus {kind!r} (known: {', '.join(CALC_TYPES)})")
        tol = field_of(snapshot, f"ilks.{ilk}.clipper_mom_tolerance", optional=True)
        facts[ilk] = _IlkFacts(kind, field_of(snapshot, f"ilks.{ilk}.liquidations_enabled", "bool"),
                               None if tol is None else float(tol))
    return facts


class Maker(Adapter):
    """Maker/Sky Liquidations 2.0: Dog.bark + Clipper auctions priced by an abacus.

    Health ``= ink·P / (debt·mat)`` (par = 1), so ``health < 1`` ⇔ ``ink·spot < art·rate`` (Dog
    ``not-unsafe`` check). One :meth:`liquidate` call barks each selected unsafe vault and
    settles its auction at the oracle price (see there); the pure functions :func:`bark`,
    :func:`kick`, :func:`needs_redo`, :func:`redo`, :func:`take` and :func:`auction_price` run
    auctions through time for the simulator.

    Parameters are ``<ILK>.<field>`` (``ETH-A.mat``, ``ETH-A.cut``, ...) plus ``Hole_dai`` and
    ``osm_hop_s``. Stability fees are not simulated (``rate = 1``: debt tokens are ``art``).
    """

    name = "maker"
    governance = _governance.MAKER
    bundled_snapshot = "protocols/maker_ilks.json"
    title = "Maker/Sky Liquidations 2.0"
    default_search_fields = ("mat", "chop")
    default_steward_limits = MappingProxyType({"mat": (0.05, False), "chop": (0.02, False)})

    # ------------------------------------------------------------------ schema
    @classmethod
    def _build_schema(cls, snapshot: Mapping[str, Any]) -> ParameterSchema:
        facts = _read_facts(snapshot)
        source = field_of(snapshot, "source", "str")
        as_of = field_of(snapshot, "as_of", "str")
        specs: list[ParamSpec] = []
        invariants: list[Invariant] = []
        for ilk, f in facts.items():
            for suffix, key, unit, lo, hi, integer, desc in (*_ILK_FIELDS, *_CALC_FIELDS[f.calc_kind]):
                value = float(field_of(snapshot, f"ilks.{ilk}.{key}"))
                specs.append(ParamSpec(f"{ilk}.{suffix}", unit, lo, hi, value, desc, integer, source, as_of))
            invariants += _invariants(ilk, f.calc_kind)
        specs.append(ParamSpec("Hole_dai", "DAI", 0.0, 1e10, float(field_of(snapshot, "global.Hole_dai")),
                               "system-wide cap on DAI target (tab) in active auctions", False, source, as_of))
        specs.append(ParamSpec("osm_hop_s", "s", 1.0, 65_535.0, float(field_of(snapshot, "global.osm_hop_s")),
                               "OSM delay: prices lag the feed by one hop (uint16, OSM.step requires > 0)",
                               True, source, as_of))
        return ParameterSchema(tuple(specs), tuple(invariants))

    # ------------------------------------------------------------------ market facts
    @cached_property
    def _facts(self) -> dict[str, _IlkFacts]:
        return _read_facts(self._snapshot)

    @property
    def collateral_assets(self) -> tuple[str, ...]:
        return tuple(self._facts)

    @property
    def debt_assets(self) -> tuple[str, ...]:
        return ("DAI",)

    @property
    def underlying(self) -> dict[str, str]:
        """Ilk -> token symbol whose price the ilk's column carries (ETH-A -> ETH, WSTETH-B -> wstETH)."""
        return {ilk: _underlying(ilk) for ilk in self._facts}

    def priced_asset(self, column: str) -> str:
        """The token behind an ilk column (ETH-A -> ETH, WSTETH-B -> wstETH)."""
        return _underlying(column)

    def position_terms(self, book: Book) -> PositionTerms:
        """``1/mat`` as both weights, ``chop`` as the bonus, recovery 1 (the penalty comes from a surplus)."""
        self._check_layout(book)
        shape = book.collateral_tokens.shape
        w = np.broadcast_to(1.0 / (PAR * self._per_ilk("mat", book.collateral_assets)), shape).copy()
        return PositionTerms(health_weight=w, borrow_weight=w.copy(),
                             liquidation_bonus=np.broadcast_to(self._per_ilk("chop", book.collateral_assets),
                                                               shape).copy(),
                             recovery=np.ones(shape), protocol_share=np.ones(shape),
                             seizable=np.ones(shape, dtype=bool))

    def risk_levers(self, asset: str) -> RiskLevers | None:
        p = self.params
        if f"{asset}.mat" not in p:
            return None
        return RiskLevers(ltv=1.0 / p[f"{asset}.mat"], liquidation_threshold=1.0 / p[f"{asset}.mat"],
                          liquidator_incentive=p[f"{asset}.chop"] - 1.0, ltv_param=f"{asset}.mat")

    def calc(self, ilk: str) -> Calc:
        p, kind = self.params, self._facts[ilk].calc_kind
        if kind == LINEAR:
            return Calc(kind, tau_s=p[f"{ilk}.tau_s"])
        if kind == STAIRSTEP:
            return Calc(kind, cut=p[f"{ilk}.cut"], step_s=p[f"{ilk}.step_s"])
        return Calc(kind, cut=p[f"{ilk}.cut"])

    def ilk(self, name: str) -> IlkRules:
        if name not in self._facts:
            raise ValueError(f"unknown ilk '{name}' (known: {', '.join(self._facts)})")
        p, f = self.params, self._facts[name]
        return IlkRules(name, *(p[f"{name}.{s[0]}"] for s in _ILK_FIELDS), calc=self.calc(name),
                        stopped=LIVE if f.liquidations_enabled else NO_KICK,
                        clipper_mom_tolerance=f.clipper_mom_tolerance)

    def _per_ilk(self, suffix: str, ilks: tuple[str, ...]) -> np.ndarray:
        return np.array([self.params[f"{ilk}.{suffix}"] for ilk in ilks])

    def vault_ilk(self, book: Book) -> np.ndarray:
        """Ilk (collateral column) of each vault: its one non-zero ink column, 0 for an empty vault."""
        return self._check_layout(book)

    def _check_layout(self, book: Book) -> np.ndarray:
        """Column (ilk) index of each vault: its one non-zero ink column, 0 for an empty vault.

        Books may carry any subset of the ilks, in any order.
        """
        unknown = [a for a in book.collateral_assets if a not in self._facts]
        if unknown or book.debt_assets != self.debt_assets:
            raise ValueError(f"a Maker book has ilk columns (known: {', '.join(self._facts)}) and debt_assets "
                             f"('DAI',); got unknown ilks {unknown} / debt {book.debt_assets}")
        held = book.collateral_tokens > 0
        if np.any(held.sum(axis=1) > 1):
            raise ValueError("a Maker vault holds ink in exactly one ilk; found rows with several")
        return np.argmax(held, axis=1)

    # ------------------------------------------------------------------ rules
    def health(self, book: Book, prices: Prices) -> np.ndarray:
        """``ink·P/(par·mat) / (art·rate)``; +inf with no debt. Values DAI at par, not at its price."""
        capacity = self.borrow_capacity_usd(book, prices)
        debt = book.debt_tokens[:, 0]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(debt > 0, capacity / debt, np.inf)

    def borrow_capacity_usd(self, book: Book, prices: Prices) -> np.ndarray:
        """``ink·P/(par·mat)``: the most DAI a vault may owe (Vat.frob checks the same ``spot``)."""
        self._check_layout(book)
        mat = self._per_ilk("mat", book.collateral_assets)
        return np.sum(book.collateral_tokens * prices.collateral_usd / (PAR * mat), axis=-1)

    def liquidate(self, book: Book, prices: Prices, mask: np.ndarray | None = None) -> LiquidationOutcome:
        """Bark every unsafe vault in ``mask`` (array order, from ``dirt = Dirt = 0``), kick its
        auction and settle it with one take of the whole lot at the oracle price.

        The auction is assumed to clear at the market price: a keeper buys the whole lot once the
        abacus price reaches ``P`` (in DAI: ``P / P_DAI``); running auctions through time with the
        abacus is the simulator's job. Per vault: ``due = dart·rate`` is removed from the vault and
        ``dink`` collateral seized; the take raises ``R = min(tab, dink·P)`` DAI for ``R/P``
        tokens; the rest of the lot goes back to the owner as free collateral outside the vault
        (so it is not put back into the book). ``debt_repaid = min(R, due)``,
        ``protocol_fee = max(0, R − due)`` (penalty to surplus), ``bad_debt = max(0, due − R)``,
        ``liquidator_bonus = 0`` (bought at the market price), ``keeper_incentive = tip + chip·tab``.
        Vaults barked only partly (room under ``hole``/``Hole``) keep the rest of their ink and
        debt. ``Dog.digs`` after the take is not tracked: every call starts from zero dirt.
        Vaults are not barked when their ilk's Clipper is stopped (``kick`` would revert the bark)
        or the price is 0 (``spot > 0`` is part of Dog's unsafe check).
        """
        n = book.n_positions
        col = self._check_layout(book)
        ilks = book.collateral_assets
        sel = as_mask(book, mask)
        idx = np.arange(n)
        p_coll = np.broadcast_to(prices.collateral_usd, book.collateral_tokens.shape)[idx, col]
        p_dai = np.broadcast_to(prices.debt_usd, book.debt_tokens.shape)[:, 0]
        ink = book.collateral_tokens[idx, col]
        art = book.debt_tokens[:, 0]  # rate = 1: no stability fees
        chop, dust = self._per_ilk("chop", ilks), self._per_ilk("dust_dai", ilks)

        live = np.array([self.ilk(i).stopped < NO_KICK for i in ilks], dtype=bool)
        reason = np.full(n, OK, dtype=np.int8)
        reason[~(self.health(book, prices) < 1.0) | ~(p_coll > 0)] = NOT_UNSAFE
        reason[(reason == OK) & ~live[col]] = STOPPED
        reason[~sel] = NOT_SELECTED
        cand = np.flatnonzero(reason == OK)

        b = bark(ink[cand], art[cand], col[cand], chop=chop, dust_dai=dust,
                 hole_dai=self._per_ilk("hole_dai", ilks), Hole_dai=self.params["Hole_dai"])
        reason[cand] = b.reason
        go = reason == OK
        dart, dink, tab = np.zeros(n), np.zeros(n), np.zeros(n)
        dart[cand], dink[cand], tab[cand] = b.dart, b.dink, b.tab_dai
        due = dart  # dart·rate with rate = 1

        coin, top = np.zeros(n), np.zeros(n)
        g = np.flatnonzero(go)
        if g.size:
            k = col[g]
            auctions, coin[g] = kick(tab[g], dink[g], p_coll[g], buf=self._per_ilk("buf", ilks)[k],
                                     tip_dai=self._per_ilk("tip_dai", ilks)[k],
                                     chip=self._per_ilk("chip", ilks)[k])
            top[g] = auctions.top
        with np.errstate(divide="ignore", invalid="ignore"):
            clearing = np.where(go, p_coll / p_dai, 1.0)  # DAI per token at the market price
        # amt = the whole lot, so the chost rule of a partial buy never applies.
        raised, sold, _ = purchase(tab, dink, clearing, dink, (dust * chop)[col])
        raised, sold = np.where(go, raised, 0.0), np.where(go, sold, 0.0)
        returned = dink - sold

        new_coll = book.collateral_tokens.copy()
        new_debt = book.debt_tokens.copy()
        whole = go & (dart >= art)  # exact zeros for whole barks
        new_coll[idx, col] = np.where(whole, 0.0, ink - dink)
        new_debt[:, 0] = np.where(whole, 0.0, art - due)
        seized_tokens = np.zeros_like(book.collateral_tokens)
        seized_tokens[idx, col] = dink
        repaid = np.minimum(raised, due)
        return LiquidationOutcome(
            book=book.with_balances(new_coll, new_debt),
            liquidated=go,
            debt_repaid_tokens=repaid[:, None],
            collateral_seized_tokens=seized_tokens,
            debt_repaid_usd=repaid * p_dai,
            collateral_seized_usd=dink * p_coll,
            liquidator_bonus_usd=np.zeros(n),
            protocol_fee_usd=np.maximum(raised - due, 0.0) * p_dai,
            bad_debt_usd=np.maximum(due - raised, 0.0) * p_dai,
            returned_to_owner_usd=returned * p_coll,
            keeper_incentive_usd=coin * p_dai,
            extra={"reason": reason, "ilk_index": col, "dart": dart, "dink": dink, "tab_dai": tab,
                   "due_dai": due, "raised_dai": raised, "collateral_sold_tokens": sold,
                   "returned_tokens": returned, "top": top, "dirt_dai": b.dirt_dai, "Dirt_dai": b.Dirt_dai},
        )

    def circuit_breakers(self) -> CircuitBreakers:
        rules = [self.ilk(i) for i in self.collateral_assets]
        return CircuitBreakers(
            oracle_delay_s=self.params["osm_hop_s"],
            auction_debt_cap_usd={r.name: r.hole_dai for r in rules},
            global_auction_debt_cap_usd=self.params["Hole_dai"],
            auction_reset_after_s={r.name: r.tail_s for r in rules},
            auction_reset_price_ratio={r.name: r.cusp for r in rules},
            price_drop_breaker_ratio={r.name: r.clipper_mom_tolerance for r in rules
                                      if r.clipper_mom_tolerance is not None},
            liquidations_paused=frozenset(r.name for r in rules if r.stopped >= NO_KICK),
        )
