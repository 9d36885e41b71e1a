"""Maker Flipper (Liquidations 1.x collateral auctions) as a pure state machine over auctions.

Read from ``makerdao/dss`` ``src/flip.sol``: tag 1.0.0 (6fd7de0, the code deployed at the MCD launch of
2019-11-18 and in force on 2020-03-12), commit 1f38996 (2020-04-08, "Avoid need of extra funds when
overbidding their own bid", the Liquidations 1.1 change) and tag 1.1.0 (ee01dab, Liquidations 1.2:
``deal``/``yank`` call ``cat.claw(tab)``). The three are selected with ``version``:
:data:`V1_0`, :data:`V1_1`, :data:`V1_2`.

An auction sells a ``lot`` of collateral for DAI to cover ``tab`` (debt × chop) in two phases:

- **tend**: bidders raise the DAI ``bid`` for the whole lot; each bid must be ``> bid``, ``<= tab``
  and at least ``beg × bid`` unless it equals ``tab``. The previous high bidder is refunded at
  once, the increment goes to the Vow (``gal``).
- **dent**: once ``bid == tab``, bidders offer to take less collateral for the same ``tab``: each
  lot must be ``< lot`` and ``<= lot / beg``; the collateral given up goes back to the vault owner
  (``usr``) at once, the previous high bidder gets his ``tab`` back.

Every bid sets the bid expiry ``tic = now + ttl``. Bidding is open while ``(tic > now or tic == 0)``
and ``end > now`` (``end = kick time + tau``). ``deal`` (anyone) needs a bid and an expiry:
``tic != 0 and (tic < now or end < now)``: the high bidder gets the lot and the auction is deleted.
An auction that reached ``end`` with no bid cannot be dealt: ``tick`` restarts it (``end = now + tau``)
and it waits for a bid again. Note the strict inequalities: at ``now == tic`` or ``now == end``
nothing can happen (bidding closed, deal not yet allowed); :func:`status` reports that as
:data:`CLOSING`.

How an engine drives it, per step at time ``now`` (all functions are pure and vectorised over
auctions; none loops over auctions in Python):

1. ``status(flips, now)`` → per auction :data:`TEND` / :data:`DENT` / :data:`CLOSING` /
   :data:`DEALABLE` / :data:`TICKABLE` / :data:`DELETED`;
2. ``deal(flips, now)`` on the dealable ones (the winner gets ``lot``; ``bid`` raised vs ``due``
   gives the Vow's loss or penalty income), ``tick(flips, now, tau_s=...)`` on the tickable ones;
3. new bites → ``kick(...)`` and ``Flips.concat``;
4. bids: ``tend(flips, bid_dai, bidder, now, ...)`` / ``dent(flips, lot, bidder, now, ...)`` with one
   bid per auction per call (NaN = no bid on that auction); several competing bids in one instant are
   several calls, lowest first. Each result carries the DAI the bidder must hold (``required_dai``),
   the DAI it pays net (``paid_dai``), the refund to the previous high bidder and the collateral
   returned to the owner, so a keeper model can keep balances.

Units: DAI (rad on chain) and tokens (wad) as floats; times in seconds; ``beg`` a multiplier
(1.03 = 3 %). ``due_dai`` (the debt the bite moved to the Vow, ``art·rate``) is bookkeeping carried
along with the auction; it is not Flipper state. Bidders are integer ids ``>= 0``;
``guy == KICKER`` means no bid yet (on chain ``guy`` is the Cat), ``guy == NONE`` a deleted auction.
``yank`` (End only, emergency shutdown) is not modelled. The contracts' integer rounding is not
reproduced.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

V1_0, V1_1, V1_2 = "1.0", "1.1", "1.2"
VERSIONS = (V1_0, V1_1, V1_2)

KICKER, NONE = -1, -2  # guy: the Cat (kick, no bid yet) / deleted auction

# status()
TEND, DENT, CLOSING, DEALABLE, TICKABLE, DELETED = range(6)

# Why a call did not happen, named after the flip.sol revert strings (``.reason``).
OK = 0
NOT_SELECTED = 1  # no bid given for this auction in the call
GUY_NOT_SET = 2  # Flipper/guy-not-set (deleted auction)
FINISHED_TIC = 3  # Flipper/already-finished-tic
FINISHED_END = 4  # Flipper/already-finished-end
HIGHER_THAN_TAB = 5  # Flipper/higher-than-tab
BID_NOT_HIGHER = 6  # Flipper/bid-not-higher
INSUFFICIENT_INCREASE = 7  # Flipper/insufficient-increase
TEND_NOT_FINISHED = 8  # Flipper/tend-not-finished (dent before bid == tab)
LOT_NOT_LOWER = 9  # Flipper/lot-not-lower
INSUFFICIENT_DECREASE = 10  # Flipper/insufficient-decrease
NOT_FINISHED = 11  # Flipper/not-finished (deal, tick)
BID_ALREADY_PLACED = 12  # Flipper/bid-already-placed (tick)


def _check_version(version: str) -> None:
    if version not in VERSIONS:
        raise ValueError(f"unknown Flipper version {version!r} (known: {', '.join(VERSIONS)})")


@dataclass(frozen=True)
class Flips:
    """Flipper ``bids`` as arrays over auctions (append-only; deleted auctions keep their row)."""

    bid_dai: np.ndarray  # DAI paid by the high bidder
    lot: np.ndarray  # collateral for sale, tokens
    tab_dai: np.ndarray  # DAI wanted (debt x chop)
    tic_s: np.ndarray  # bid expiry, 0 = no bid yet
    end_s: np.ndarray  # auction expiry
    guy: np.ndarray  # high bidder id, KICKER or NONE
    usr: np.ndarray  # vault (book row) that receives collateral given up in dent
    due_dai: np.ndarray  # bookkeeping: debt moved to the Vow by the bite (art x rate)

    def __post_init__(self) -> None:
        n = np.asarray(self.bid_dai).shape[0] if np.ndim(self.bid_dai) else 1
        for f in fields(self):
            dtype = np.int64 if f.name in ("guy", "usr") else np.float64
            a = np.array(np.broadcast_to(np.asarray(getattr(self, f.name), dtype), (n,)), dtype=dtype)
            object.__setattr__(self, f.name, a)

    @classmethod
    def empty(cls) -> Flips:
        z = np.zeros(0)
        return cls(z, z, z, z, z, np.zeros(0, np.int64), np.zeros(0, np.int64), z)

    @property
    def n(self) -> int:
        return self.bid_dai.shape[0]

    @property
    def live(self) -> np.ndarray:
        return self.guy != NONE

    def replace(self, **changes: np.ndarray) -> Flips:
        return Flips(**{f.name: changes.get(f.name, getattr(self, f.name)) for f in fields(self)})

    def concat(self, other: Flips) -> Flips:
        return Flips(**{f.name: np.concatenate([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self)})


def kick(tab_dai, lot, *, usr, due_dai, now_s: float, tau_s: float, bid_dai=0.0) -> Flips:
    """``Flipper.kick(usr, gal, tab, lot, bid)`` for new auctions: ``end = now + tau``, no bid yet
    (``tic = 0``, ``guy`` = the Cat). The Cat always kicks with ``bid = 0``."""
    tab, lot_ = np.broadcast_arrays(np.atleast_1d(np.asarray(tab_dai, np.float64)),
                                    np.atleast_1d(np.asarray(lot, np.float64)))
    n = tab.shape[0]
    return Flips(np.broadcast_to(bid_dai, (n,)), lot_, tab, np.zeros(n), np.full(n, float(now_s) + float(tau_s)),
                 np.full(n, KICKER), np.broadcast_to(np.asarray(usr, np.int64), (n,)),
                 np.broadcast_to(np.asarray(due_dai, np.float64), (n,)))


def biddable(flips: Flips, now_s: float) -> np.ndarray:
    """``tend``/``dent`` time checks: live, ``(tic > now or tic == 0)`` and ``end > now``."""
    return flips.live & ((flips.tic_s > now_s) | (flips.tic_s == 0)) & (flips.end_s > now_s)


def dealable(flips: Flips, now_s: float) -> np.ndarray:
    """``deal`` allowed: live, ``tic != 0 and (tic < now or end < now)``."""
    return flips.live & (flips.tic_s != 0) & ((flips.tic_s < now_s) | (flips.end_s < now_s))


def tickable(flips: Flips, now_s: float) -> np.ndarray:
    """``tick`` allowed: live, ``end < now`` and no bid (``tic == 0``)."""
    return flips.live & (flips.end_s < now_s) & (flips.tic_s == 0)


def status(flips: Flips, now_s: float) -> np.ndarray:
    """Per auction: TEND, DENT (bidding open, ``bid < tab`` / ``bid == tab``), DEALABLE, TICKABLE,
    CLOSING (``now`` equals ``tic`` or ``end``: nothing is allowed this second) or DELETED."""
    out = np.full(flips.n, CLOSING, dtype=np.int8)
    bid = biddable(flips, now_s)
    out[bid & (flips.bid_dai < flips.tab_dai)] = TEND
    out[bid & (flips.bid_dai >= flips.tab_dai)] = DENT
    out[dealable(flips, now_s)] = DEALABLE
    out[tickable(flips, now_s)] = TICKABLE
    out[~flips.live] = DELETED
    return out


def min_tend_bid(flips: Flips, beg: float) -> np.ndarray:
    """Smallest bid ``tend`` accepts: ``min(tab, beg·bid)``; with no bid yet any bid ``> 0`` (returns 0:
    the check is strict)."""
    return np.where(flips.bid_dai > 0, np.minimum(flips.tab_dai, beg * flips.bid_dai), 0.0)


def max_dent_lot(flips: Flips, beg: float) -> np.ndarray:
    """Largest lot ``dent`` accepts: ``lot / beg`` (and ``< lot``)."""
    return flips.lot / beg


@dataclass(frozen=True)
class Bid:
    """Result of :func:`tend` or :func:`dent`, per auction (zeros where ``reason != OK``)."""

    flips: Flips  # state after the bids
    reason: np.ndarray
    required_dai: np.ndarray  # DAI the bidder must hold for the call not to revert (Vat.move checks)
    paid_dai: np.ndarray  # DAI leaving the bidder, net
    refund_dai: np.ndarray  # DAI sent to the previous high bidder (``refund_to``)
    refund_to: np.ndarray  # previous high bidder id (KICKER: the Cat, always refunded 0)
    to_vow_dai: np.ndarray  # DAI to the Vow (tend increments)
    returned_tokens: np.ndarray  # collateral sent back to ``usr`` (dent)


def _common_checks(flips: Flips, given: np.ndarray, now_s: float) -> np.ndarray:
    reason = np.full(flips.n, OK, dtype=np.int8)
    reason[~given] = NOT_SELECTED
    open_tic = (flips.tic_s > now_s) | (flips.tic_s == 0)
    reason[(reason == OK) & ~flips.live] = GUY_NOT_SET
    reason[(reason == OK) & ~open_tic] = FINISHED_TIC
    reason[(reason == OK) & ~(flips.end_s > now_s)] = FINISHED_END
    return reason


def tend(flips: Flips, bid_dai, bidder, now_s: float, *, beg: float, ttl_s: float, version: str = V1_0) -> Bid:
    """``Flipper.tend(id, lot, bid)`` with ``lot`` = the current lot (so ``Flipper/lot-not-matching``
    cannot occur), one bid per auction (NaN = none).

    Checks in the contract's order; then the previous high bidder is refunded his bid, the increment
    goes to the Vow, ``guy = bidder``, ``bid = bid``, ``tic = now + ttl``. DAI the bidder needs: a new
    bidder ``bid``; the current high bidder raising his own bid ``max(old, bid − old)`` in 1.0 (flip.sol
    first moves his old bid to himself, which needs it in hand: the "double liquidity" that 1.1
    removed) and ``bid − old`` from 1.1 on.
    """
    _check_version(version)
    bid = np.broadcast_to(np.asarray(bid_dai, np.float64), (flips.n,))
    who = np.broadcast_to(np.asarray(bidder, np.int64), (flips.n,))
    given = ~np.isnan(bid)
    b = np.where(given, bid, 0.0)
    reason = _common_checks(flips, given, now_s)
    reason[(reason == OK) & ~(b <= flips.tab_dai)] = HIGHER_THAN_TAB
    reason[(reason == OK) & ~(b > flips.bid_dai)] = BID_NOT_HIGHER
    reason[(reason == OK) & ~((b >= beg * flips.bid_dai) | (b == flips.tab_dai))] = INSUFFICIENT_INCREASE
    go = reason == OK
    old = flips.bid_dai
    same = who == flips.guy
    inc = b - old
    required = np.where(same, np.maximum(old, inc) if version == V1_0 else inc, b)
    refund = np.where(same, 0.0, old)
    paid = np.where(same, inc, b)  # a new bidder refunds the old bid and adds the increment
    out = flips.replace(bid_dai=np.where(go, b, old), guy=np.where(go, who, flips.guy),
                        tic_s=np.where(go, float(now_s) + float(ttl_s), flips.tic_s))
    z = np.zeros(flips.n)
    return Bid(out, reason, np.where(go, required, 0.0), np.where(go, paid, 0.0), np.where(go, refund, 0.0),
               flips.guy.copy(), np.where(go, inc, 0.0), z)


def dent(flips: Flips, lot, bidder, now_s: float, *, beg: float, ttl_s: float, version: str = V1_0) -> Bid:
    """``Flipper.dent(id, lot, bid)`` with ``bid`` = the current bid (so ``Flipper/not-matching-bid``
    cannot occur), one lot per auction (NaN = none).

    Requires ``bid == tab`` (tend phase over), ``lot < old lot`` and ``beg·lot <= old lot``. The
    previous high bidder gets ``tab`` back from the new one (not from 1.1 on when it is the same
    bidder; in 1.0 the self-move needs ``tab`` in hand), ``old lot − lot`` goes back to ``usr``,
    ``guy = bidder``, ``tic = now + ttl``.
    """
    _check_version(version)
    new_lot = np.broadcast_to(np.asarray(lot, np.float64), (flips.n,))
    who = np.broadcast_to(np.asarray(bidder, np.int64), (flips.n,))
    given = ~np.isnan(new_lot)
    lt = np.where(given, new_lot, 0.0)
    reason = _common_checks(flips, given, now_s)
    reason[(reason == OK) & ~(flips.bid_dai == flips.tab_dai)] = TEND_NOT_FINISHED
    reason[(reason == OK) & ~(lt < flips.lot)] = LOT_NOT_LOWER
    reason[(reason == OK) & ~(beg * lt <= flips.lot)] = INSUFFICIENT_DECREASE
    go = reason == OK
    same = who == flips.guy
    tab = flips.bid_dai
    required = np.where(same, tab if version == V1_0 else 0.0, tab)
    paid = np.where(same, 0.0, tab)
    out = flips.replace(lot=np.where(go, lt, flips.lot), guy=np.where(go, who, flips.guy),
                        tic_s=np.where(go, float(now_s) + float(ttl_s), flips.tic_s))
    z = np.zeros(flips.n)
    return Bid(out, reason, np.where(go, required, 0.0), np.where(go, paid, 0.0), np.where(go, paid, 0.0),
               flips.guy.copy(), z, np.where(go, flips.lot - lt, 0.0))


@dataclass(frozen=True)
class Deal:
    """Result of :func:`deal`, per auction (zeros where ``reason != OK``)."""

    flips: Flips  # state after (dealt auctions deleted)
    reason: np.ndarray
    winner: np.ndarray  # high bidder id that receives the lot
    lot_tokens: np.ndarray  # collateral to the winner
    raised_dai: np.ndarray  # DAI the auction raised in total (its final bid)
    claw_dai: np.ndarray  # Liquidations 1.2: cat.claw(tab), the litter released (0 before 1.2)
    bad_debt_dai: np.ndarray  # max(due − raised, 0): Vow sin the auction did not cover
    penalty_dai: np.ndarray  # max(raised − due, 0): liquidation penalty earned (surplus)


def deal(flips: Flips, now_s: float, *, version: str = V1_0, mask: np.ndarray | None = None) -> Deal:
    """``Flipper.deal(id)`` on every auction in ``mask`` (default: all) that allows it."""
    _check_version(version)
    sel = np.ones(flips.n, bool) if mask is None else np.asarray(mask, bool)
    ok = dealable(flips, now_s)
    reason = np.where(~sel, NOT_SELECTED, np.where(ok, OK, np.where(flips.live, NOT_FINISHED, GUY_NOT_SET)))
    go = reason == OK
    raised = np.where(go, flips.bid_dai, 0.0)
    out = flips.replace(bid_dai=np.where(go, 0.0, flips.bid_dai), lot=np.where(go, 0.0, flips.lot),
                        tab_dai=np.where(go, 0.0, flips.tab_dai), tic_s=np.where(go, 0.0, flips.tic_s),
                        end_s=np.where(go, 0.0, flips.end_s), guy=np.where(go, NONE, flips.guy))
    claw = np.where(go, flips.tab_dai, 0.0) if version == V1_2 else np.zeros(flips.n)
    due = np.where(go, flips.due_dai, 0.0)
    return Deal(out, reason.astype(np.int8), np.where(go, flips.guy, NONE), np.where(go, flips.lot, 0.0), raised,
                claw, np.maximum(due - raised, 0.0), np.maximum(raised - due, 0.0))


def tick(flips: Flips, now_s: float, *, tau_s: float, mask: np.ndarray | None = None) -> tuple[Flips, np.ndarray]:
    """``Flipper.tick(id)``: restart auctions that ended with no bid (``end = now + tau``)."""
    sel = np.ones(flips.n, bool) if mask is None else np.asarray(mask, bool)
    reason = np.full(flips.n, OK, dtype=np.int8)
    reason[~sel] = NOT_SELECTED
    reason[(reason == OK) & ~flips.live] = GUY_NOT_SET
    reason[(reason == OK) & ~(flips.end_s < now_s)] = NOT_FINISHED
    reason[(reason == OK) & ~(flips.tic_s == 0)] = BID_ALREADY_PLACED
    go = reason == OK
    return flips.replace(end_s=np.where(go, float(now_s) + float(tau_s), flips.end_s)), reason
