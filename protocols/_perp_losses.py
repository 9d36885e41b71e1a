"""After a perp liquidation: the loss waterfall and the ADL policies, as pure functions.

Waterfall (every venue, layers a venue lacks have capacity 0)::

    position margin -> insurance fund -> backstop (vault or pool) -> ADL of the opposite side

ADL works in the PnL-haircut domain of Chitra, Thogiti, Trujillo Ramirez & Xu, "Autodeleveraging as
Online Learning" (arXiv 2602.15182, 2026), §2.6 and §3.5: a winner (an open position on the side
opposite to the loss, with positive unrealised PnL ``u_i``) can lose at most ``u_i``; posted
collateral is never haircut. Two policies:

- :func:`adl_queue`, the production queue (Binance, Hyperliquid; dYdX scans without a ranking):
  winners in the venue's ranking order, each one closed as a whole position and its whole profit
  seized, until the deficit is covered. Closing whole positions takes more than the deficit;
  that **overshoot** is reported.
- :func:`adl_pro_rata`: every winner gives up the same fraction ``min(1, D / U)`` of its profit and
  keeps its position. It covers exactly the deficit (overshoot 0 up to float rounding).

Every ADL here is an internal match against the bankrupt positions: it creates no market flow.
Value convention: what a queue seizes beyond the deficit (the overshoot) is credited to the
insurance fund, so the money is accounted for; the record states it apart so an engine can route it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._perp import PerpBook, PerpLiquidationOutcome

# --------------------------------------------------------------------------------------------
# Loss waterfall
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WaterfallOutcome:
    """How each loss event (one liquidated position) was paid, settled in the given order.

    Per event, exact up to float rounding::

        loss_usd = from_margin_usd + from_insurance_usd + from_backstop_usd + to_adl_usd

    and for the funds::

        insurance_fund_after_usd = insurance_fund_before_usd + sum(fee_income_usd) - sum(from_insurance_usd)
        backstop_after_usd       = backstop_before_usd - sum(from_backstop_usd)

    ``to_adl_usd`` is what the opposite side must cover (see :func:`adl_queue`, :func:`adl_pro_rata`).
    """

    loss_usd: np.ndarray
    from_margin_usd: np.ndarray
    from_insurance_usd: np.ndarray
    from_backstop_usd: np.ndarray
    to_adl_usd: np.ndarray
    fee_income_usd: np.ndarray
    insurance_fund_before_usd: float
    insurance_fund_after_usd: float
    backstop_before_usd: float
    backstop_after_usd: float

    @property
    def deficit_usd(self) -> np.ndarray:
        """Loss beyond margin, per event."""
        return self.loss_usd - self.from_margin_usd


def loss_waterfall(
    loss_usd: np.ndarray,
    margin_usd: np.ndarray,
    insurance_fund_usd: float,
    backstop_usd: float = 0.0,
    *,
    fee_income_usd: np.ndarray | None = None,
    insurance_eligible: np.ndarray | None = None,
) -> WaterfallOutcome:
    """Pay each event's loss from its margin, then the insurance fund, then the backstop, then ADL.

    Parameters
    ----------
    loss_usd : (k,)
        Trading loss of each event (>= 0), e.g. ``max(-realized_pnl, 0)`` of a liquidation.
    margin_usd : (k,)
        Margin that backs it (>= 0); pays first.
    insurance_fund_usd, backstop_usd : float
        Balances before this batch (>= 0).
    fee_income_usd : (k,), optional
        Fees the insurance fund earns from each event (credited when the event settles).
    insurance_eligible : (k,) bool, optional
        False where the venue skips the fund and deleverages directly (dYdX negative-TNC
        deleveraging, Hyperliquid ADL); such deficits go to the backstop, then ADL.

    Events settle one after another in array order, as fills settle against the fund in turn: the
    fund's balance follows ``B_k = max(B_{k-1} + fee_k - d_k, 0)``, computed without a Python loop
    (``B_k = S_k - min(0, min_{j<=k} S_j)`` with ``S`` the running sum).
    """
    loss = np.maximum(np.asarray(loss_usd, dtype=np.float64), 0.0)
    k = loss.shape[0]
    margin = np.maximum(np.asarray(margin_usd, dtype=np.float64), 0.0)
    if margin.shape != (k,):
        raise ValueError(f"margin_usd must have shape ({k},), got {margin.shape}")
    fee = np.zeros(k) if fee_income_usd is None else np.maximum(np.asarray(fee_income_usd, np.float64), 0.0)
    eligible = np.ones(k, dtype=bool) if insurance_eligible is None else np.asarray(insurance_eligible, bool)
    if insurance_fund_usd < 0 or backstop_usd < 0:
        raise ValueError("fund balances must be >= 0")
    from_margin = np.minimum(loss, margin)
    deficit = loss - from_margin
    draw = np.where(eligible, deficit, 0.0)
    running = insurance_fund_usd + np.cumsum(fee - draw)
    low = np.minimum.accumulate(np.minimum(running, 0.0)) if k else running
    balance = running - low  # the reflected (never negative) fund balance after each event
    before = np.concatenate([[insurance_fund_usd], balance[:-1]]) if k else balance
    from_insurance = np.where(eligible, np.minimum(deficit, before + fee), 0.0)
    rest = deficit - from_insurance
    used_before = np.concatenate([[0.0], np.cumsum(rest)[:-1]]) if k else rest
    from_backstop = np.clip(backstop_usd - used_before, 0.0, rest)
    to_adl = rest - from_backstop
    return WaterfallOutcome(
        loss_usd=loss,
        from_margin_usd=from_margin,
        from_insurance_usd=from_insurance,
        from_backstop_usd=from_backstop,
        to_adl_usd=to_adl,
        fee_income_usd=fee,
        insurance_fund_before_usd=float(insurance_fund_usd),
        insurance_fund_after_usd=float(insurance_fund_usd + fee.sum() - from_insurance.sum()),
        backstop_before_usd=float(backstop_usd),
        backstop_after_usd=float(backstop_usd - from_backstop.sum()),
    )


def waterfall_of(outcome: PerpLiquidationOutcome, insurance_fund_usd: float, backstop_usd: float = 0.0,
                 *, fees_to_insurance: bool = True) -> WaterfallOutcome:
    """The waterfall of one liquidation step, over all positions of the book (in book order).

    Loss = margin used + deficit, with margin used ``max(-realized - deficit, 0)``; the step's
    fees are the fund's income when the venue pays them to the insurance fund.
    """
    deficit = outcome.deficit_usd
    margin_used = np.maximum(-outcome.realized_pnl_usd - deficit, 0.0)
    return loss_waterfall(margin_used + deficit, margin_used, insurance_fund_usd, backstop_usd,
                          fee_income_usd=outcome.fee_usd if fees_to_insurance else None,
                          insurance_eligible=outcome.insurance_eligible)


# --------------------------------------------------------------------------------------------
# ADL
# --------------------------------------------------------------------------------------------


def winner_groups(book: PerpBook) -> tuple[np.ndarray, int]:
    """ADL group of each position as a potential winner: ``2 * market + (side is long)``."""
    return 2 * book.market + (book.side > 0), 2 * len(book.markets)


def deficits_by_group(book: PerpBook, to_adl_usd: np.ndarray) -> np.ndarray:
    """Deficits to be covered per ADL group: a bankrupt long in market m is covered by m's shorts."""
    target = 2 * book.market + (book.side < 0)  # the opposite side's group
    return np.bincount(target, weights=np.asarray(to_adl_usd, np.float64), minlength=2 * len(book.markets))


@dataclass(frozen=True)
class AdlOutcome:
    """What an ADL policy took from each winner (rows = positions, groups = market x side).

    Per group, exact up to float rounding::

        seized_usd  = sum of haircut_usd over the group = covered_usd + overshoot_usd
        deficit_usd = covered_usd + uncovered_usd

    ``closed`` positions (queue only) are closed whole against the bankrupt side: an internal match,
    no market flow; ``closed_size_base`` is their size. ``uncovered_usd`` is what no winner could
    cover (bad debt left on the venue).
    """

    policy: str
    group: np.ndarray
    haircut_usd: np.ndarray
    closed: np.ndarray
    closed_size_base: np.ndarray
    deficit_usd: np.ndarray
    seized_usd: np.ndarray
    covered_usd: np.ndarray
    uncovered_usd: np.ndarray
    overshoot_usd: np.ndarray

    def totals(self) -> dict[str, float]:
        return {k: float(np.sum(getattr(self, k)))
                for k in ("deficit_usd", "seized_usd", "covered_usd", "uncovered_usd", "overshoot_usd")}


def _check_adl_inputs(deficit_usd: np.ndarray, group: np.ndarray, capacity_usd: np.ndarray,
                      size_base: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    d = np.asarray(deficit_usd, dtype=np.float64)
    g = np.asarray(group, dtype=np.int64)
    u = np.maximum(np.asarray(capacity_usd, dtype=np.float64), 0.0)
    n = g.shape[0]
    if u.shape != (n,):
        raise ValueError(f"capacity_usd must have shape ({n},), got {u.shape}")
    if n and (g.max() >= d.shape[0]):
        raise ValueError(f"group index {g.max()} out of range for {d.shape[0]} groups")
    if (d < 0).any():
        raise ValueError("deficits must be >= 0")
    size = np.zeros(n) if size_base is None else np.asarray(size_base, dtype=np.float64)
    u = np.where(g >= 0, u, 0.0)
    return d, g, u, size


def _group_sums(d: np.ndarray, g: np.ndarray, values: np.ndarray) -> np.ndarray:
    ok = g >= 0
    return np.bincount(g[ok], weights=values[ok], minlength=d.shape[0])


def _outcome(policy: str, d: np.ndarray, g: np.ndarray, haircut: np.ndarray, closed: np.ndarray,
             size: np.ndarray) -> AdlOutcome:
    seized = _group_sums(d, g, haircut)
    covered = np.minimum(seized, d)
    return AdlOutcome(policy=policy, group=g, haircut_usd=haircut, closed=closed,
                      closed_size_base=np.where(closed, size, 0.0), deficit_usd=d, seized_usd=seized,
                      covered_usd=covered, uncovered_usd=d - covered, overshoot_usd=seized - covered)


def adl_pro_rata(deficit_usd: np.ndarray, group: np.ndarray, capacity_usd: np.ndarray,
                 size_base: np.ndarray | None = None) -> AdlOutcome:
    """Pro-rata haircut: each winner of group g gives ``u_i * min(1, D_g / U_g)``; nobody is closed.

    ``deficit_usd`` (G,) per group; ``group`` (n,) each position's group (-1 = not a winner);
    ``capacity_usd`` (n,) its haircut capacity (positive unrealised PnL; negatives count as 0).
    """
    d, g, u, size = _check_adl_inputs(deficit_usd, group, capacity_usd, size_base)
    cap = _group_sums(d, g, u)
    with np.errstate(divide="ignore", invalid="ignore"):
        frac = np.where(cap > 0, np.minimum(1.0, d / cap), 0.0)
    haircut = np.where(g >= 0, u * frac[np.maximum(g, 0)], 0.0)
    return _outcome("pro_rata", d, g, haircut, np.zeros(g.shape[0], dtype=bool), size)


def adl_queue(deficit_usd: np.ndarray, group: np.ndarray, capacity_usd: np.ndarray, score: np.ndarray,
              size_base: np.ndarray | None = None) -> AdlOutcome:
    """Production queue: winners by descending ``score`` (ties: book order), closed whole until covered.

    In each group the positions ranked before the deficit is covered, and the one that covers it,
    are closed and give up their whole profit ``u_i``; the total seized exceeds the deficit by the
    last closed winner's excess, the overshoot. Winners with no profit are skipped (nothing to take).
    """
    d, g, u, size = _check_adl_inputs(deficit_usd, group, capacity_usd, size_base)
    n = g.shape[0]
    s = np.asarray(score, dtype=np.float64)
    if s.shape != (n,):
        raise ValueError(f"score must have shape ({n},), got {s.shape}")
    live = (g >= 0) & (u > 0)
    idx = np.flatnonzero(live)
    closed = np.zeros(n, dtype=bool)
    if idx.size:
        order = idx[np.lexsort((idx, -s[idx], g[idx]))]  # by group, then score desc, then book order
        go = g[order]
        uo = u[order]
        before = np.empty(order.size)
        for grp in np.unique(go):  # the group's profit ranked ahead, summed within the group only (a running
            sel = go == grp  # sum across groups would leak rounding into a group without a deficit)
            before[sel] = np.cumsum(uo[sel]) - uo[sel]
        closed[order] = before < d[go]
    haircut = np.where(closed, u, 0.0)
    return _outcome("queue", d, g, haircut, closed, size)


def apply_adl(book: PerpBook, adl: AdlOutcome, mark_usd: np.ndarray) -> PerpBook:
    """The book after an ADL: closed winners leave (profit seized, margin back to the wallet);
    pro-rata winners keep their positions with the haircut taken from their margin pool."""
    mark_usd = np.asarray(mark_usd, dtype=np.float64)
    cross = book.is_cross
    upnl = book.unrealized_pnl_usd(mark_usd)
    # a closed row realises its PnL at the mark and gives up the haircut; a kept row gives the haircut
    delta = np.where(adl.closed, upnl, 0.0) - adl.haircut_usd
    iso_closed = ~cross & adl.closed
    to_account = np.where(cross, delta, np.where(iso_closed, book.margin_usd + delta, 0.0))
    coll = book.cross_collateral_usd + np.bincount(book.account, weights=to_account, minlength=book.n_accounts)
    margin = np.where(cross | iso_closed, 0.0, book.margin_usd + delta)
    size = np.where(adl.closed, 0.0, book.size_base)
    return book.with_state(size_base=size, margin_usd=margin, cross_collateral_usd=coll)


# --------------------------------------------------------------------------------------------
# Funding: a periodic transfer between longs and shorts through their margin
# --------------------------------------------------------------------------------------------


def funding_payments_usd(book: PerpBook, mark_usd: np.ndarray, rate_by_market: np.ndarray) -> np.ndarray:
    """What each position pays at one funding time, USD (> 0 pays, < 0 receives).

    ``payment = side * rate * size * mark``: with a positive rate longs pay and shorts receive, each on its
    notional at the mark (the convention every venue here states: "positive funding, longs pay shorts").
    ``rate_by_market`` is the funding rate of the interval per market (indexed like ``book.markets``). The
    rate itself (premium index, interest component, caps, interval) is venue data this function takes as
    given. The book's payments net to zero only when its longs and shorts carry equal notional; the rest
    is the counterparty outside the book (the venue's other traders).
    """
    rate = np.asarray(rate_by_market, dtype=np.float64)[book.market]
    return np.where(book.size_base > 0, book.side * rate * book.size_base * np.asarray(mark_usd, dtype=np.float64),
                    0.0)


def apply_funding(book: PerpBook, payment_usd: np.ndarray) -> PerpBook:
    """The book after a funding transfer: each isolated position's margin and each cross account's
    collateral changes by minus what it pays (it may go negative: the liquidation check then flags it)."""
    pay = np.asarray(payment_usd, dtype=np.float64)
    cross = book.is_cross
    margin = np.where(cross, book.margin_usd, book.margin_usd - pay)
    coll = book.cross_collateral_usd - np.bincount(book.account, weights=np.where(cross, pay, 0.0),
                                                   minlength=book.n_accounts)
    return book.with_state(margin_usd=margin, cross_collateral_usd=coll)
