"""Keepers in Maker Flipper auctions (Liquidations 1.x): finite DAI, gas-price limits, two strategies.

A pure, data-driven model that an engine's Maker 1.x venue calls once per step (no I/O but
:func:`load_population`, no loop over auctions in Python: loops run over the few keepers). The rules of
the auction are :mod:`protocols.maker_flipper`; this module decides who bids what.

**What a keeper is.** Keeper ``k`` holds ``dai_free_dai[k]`` DAI in the Vat (DAI locked in its live high
bids is not free; it comes back when it is outbid) and gets a transaction mined in a step only while
the step's average gas price is at most ``max_gas_gwei[k]``: the reference ``auction-keeper`` of 2020 sent
bids at a fixed gas price unless configured otherwise, so when gas spiked its bids stayed in the mempool
(the Black Thursday post-mortems below). Each bid costs ``gas_per_bid × gas price × ETH price`` USD.
Two strategies:

- ``value`` (the auction-keeper with a price model): bids for the lot what it is worth to it,
  ``lot·P·(1 − margin)`` USD minus gas, converted to DAI at the DAI/USD price (a keeper short of DAI buys
  it at the squeezed price, so the same ETH fetches fewer DAI), capped at ``tab``; in the dent phase it
  asks for the lot that is worth ``tab`` DAI + gas to it. It never outbids itself and bids only if that
  beats the current bid by ``beg`` (the Flipper refuses smaller steps).
- ``minimal`` (the Black Thursday "zero bidders"): puts ``min_bid_dai`` on every auction that has no bid
  yet, whatever the lot is worth, with a gas limit above the day's peak.

**One step** (:func:`bid_step`): the keepers that can get a transaction mined this step allocate their
free DAI over the auctions they want, best surplus first (the last one gets what is left, if that still
beats ``beg``); then, per auction, the bids are applied lowest first with :func:`protocols.maker_flipper.tend`
(so the highest valid bid ends as the high bid, as when the competing transactions land in one block
interval), the auctions that reached ``tab`` go through the same for ``dent`` (highest lot first), and
balances move as the Flipper moves DAI: the bidder pays, the outbid keeper is refunded at once.
Competing for the DAI is done with the balances at the start of the step (refunds within the step
are not re-spent in it). :func:`deal_step` deals every auction that allows it and credits the lot to
the winner. With ``recycle_collateral`` the winner turns the lot back into DAI: with
``recycle_delay_min = 0`` at once at the step's market price (no impact: the ample default keepers);
with a delay the lot is held (``collateral_won_tokens``) and the engine sells it ``recycle_delay_min``
after the deal into the collateral's market, with its impact, at the DAI price of that step, and
credits the DAI with :func:`sell_collateral` (the bundled Black Thursday population does so). :func:`refill` adds DAI
bought in the market: ``dai_refill_share`` of the bar's traded DAI volume, split among the ``value``
keepers. With ``ttl`` = 600 s and 10-minute steps a bid that nobody tops within its own step has won:
at the next step ``now == tic`` (the Flipper allows neither a bid nor a deal in that second) and the step
after deals it. So with gas above the ``value`` keepers' limits the first (minimal) bid wins the lot.

**Parameters and their sources** (bundled: ``data/behaviour/keepers_2020-03-12.json``; every value
there carries its source and a plausible range, and tests check the model's direction over the
ranges: the model is not tuned to reproduce the day's 5.67 M DAI of bad debt):

- number of competing ``value`` keepers ~ 4: 3.67 unique bidders per ETH-A auction (and 42
  participants) over the 150 flip auctions of Jan–Feb 2021 (MakerDAO forum, "MakerDAO FLIP Auction
  Stats - YTD data", 2021);
- fixed gas prices 10–40 gwei for most of them: auction-keeper PR #76 (2020-08) raised the fail-safe
  default gas price "from 10 to 40 Gwei"; the day's 10-minute average went from 10 to 225 gwei
  (``data/gas/eth_gas_gwei_10m_2020-03-12.csv``); "liquidators use scripts from MakerDAO that are not
  programmed for adjusting high gas prices" (whiterabbit, 2020-03-14); "the majority of Keepers within
  the system used the same script provided by MakerDAO that was not flexible enough to adapt to the
  high gas prices" (Linum Labs); bids stuck behind unreplaceable deal transactions (auction-keeper
  issue #45, 2020-03-15);
- ``minimal`` bidders: "four separate wallet addresses placed zero DAI bids for over 62,890 ETH"
  (White Rabbit via Cointelegraph); 36 % of the liquidations won by zero bids, $8.32 M of collateral
  (whiterabbit);
- DAI: the DAI/USD squeeze of the day (``data/prices/dai_usd_10m_2020-03-12.csv``, high 1.126) and
  "a shortage of Dai ... all Keepers became insolvent except for one" (DeFi.win, 2020-03-13). The DAI each
  keeper held is not public: it is an assumption with a range;
- ``margin``: the auction-keeper models bid "market × (1 − discount)" (dockerized-auction-keeper
  ``FLIP_*_DISCOUNT``, e.g. 0.25 for MANA); ETH-A values are the operators' choice, assumed 3–10 %;
- recycling: won ETH sold back into DAI ``recycle_delay_min`` = 60 minutes after the deal (an assumption,
  range 10-240: deal, Vat exit and an exchange sale on a chain with "average transaction times of up to
  44 minutes", Meter.io citing Etherscan, 2020-03-13), through the engine's market with its impact;
- gas per bid 150k gas: an assumption; at the day's peak (225 gwei, ETH $110) a bid costs ~$4, small
  against a 50-ETH lot, so what matters is whether a transaction gets in, not its cost.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from protocols import maker_flipper as fl

from ..errors import InputError

VALUE, MINIMAL = "value", "minimal"
STRATEGIES = (VALUE, MINIMAL)


@dataclass(frozen=True)
class KeeperPopulation:
    """The keepers of one Flipper market (arrays over keepers). Constructed by :func:`population`."""

    strategy: tuple[str, ...]
    dai_capacity_dai: np.ndarray  # DAI in the Vat at the start
    max_gas_gwei: np.ndarray  # a transaction is mined in a step only while the gas price is <= this
    margin: np.ndarray  # value keepers bid lot*P*(1 - margin)
    min_bid_dai: float = 1e-6  # minimal keepers' bid on auctions with no bid
    gas_per_bid: float = 150_000.0  # gas units of one tend/dent
    dai_refill_share: float = 0.0  # share of each bar's DAI volume the value keepers buy together
    recycle_collateral: bool = True  # a won lot is sold back into DAI (at once, or after recycle_delay_min)
    recycle_delay_min: float = 0.0  # minutes between a deal and the sale of the lot (0: at once, no impact)
    sources: Mapping[str, str] = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.strategy)

    @property
    def is_value(self) -> np.ndarray:
        return np.array([s == VALUE for s in self.strategy])


@dataclass(frozen=True)
class KeeperState:
    """Balances through time (arrays over keepers)."""

    dai_free_dai: np.ndarray
    gas_spent_usd: np.ndarray
    collateral_won_tokens: np.ndarray
    bids: np.ndarray  # bids (tend + dent) that landed

    @classmethod
    def start(cls, pop: KeeperPopulation) -> KeeperState:
        z = np.zeros(pop.n)
        return cls(np.array(pop.dai_capacity_dai, np.float64), z, z.copy(), np.zeros(pop.n, np.int64))


def population(spec: Mapping[str, Any], *, file: str | None = None) -> KeeperPopulation:
    """Build and validate a population from a dict (the JSON format of ``data/behaviour/``).

    ``spec["keepers"]`` is a list of ``{"strategy", "count", "dai_capacity_dai", "max_gas_gwei", "margin"}``
    groups; the other keys are the scalar fields of :class:`KeeperPopulation`. Errors are one-line
    :class:`~optimizer.errors.InputError` naming the field.
    """
    def num(node: Mapping[str, Any], key: str, where: str, lo: float, hi: float, default: float | None = None) -> float:
        v = node.get(key, default)
        if v is None:
            raise InputError("missing", file=file, field=f"{where}{key}")
        if isinstance(v, dict) and "value" in v:
            v = v["value"]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or not lo <= v <= hi:
            raise InputError(f"must be a number in [{lo:g}, {hi:g}], got {v!r}", file=file, field=f"{where}{key}")
        return float(v)

    groups = spec.get("keepers")
    if not isinstance(groups, list) or not groups:
        raise InputError("must be a non-empty list of keeper groups", file=file, field="keepers")
    strat: list[str] = []
    cap, gas, margin = [], [], []
    for g_i, g in enumerate(groups):
        where = f"keepers[{g_i}]."
        if not isinstance(g, Mapping):
            raise InputError("must be an object", file=file, field=where[:-1])
        s = g.get("strategy")
        if s not in STRATEGIES:
            raise InputError(f"must be one of {', '.join(STRATEGIES)}, got {s!r}", file=file, field=f"{where}strategy")
        count = num(g, "count", where, 0, 1000)
        if count != int(count):
            raise InputError(f"must be a whole number, got {count:g}", file=file, field=f"{where}count")
        vals = (num(g, "dai_capacity_dai", where, 0, 1e10), num(g, "max_gas_gwei", where, 0, 1e5),
                num(g, "margin", where, 0, 1, 0.0))
        for _ in range(int(count)):
            strat.append(s)
            cap.append(vals[0])
            gas.append(vals[1])
            margin.append(vals[2])
    sources = {k: str(v.get("source", "")) for k, v in spec.items() if isinstance(v, dict) and "source" in v}
    return KeeperPopulation(
        tuple(strat), np.array(cap), np.array(gas), np.array(margin),
        min_bid_dai=num(spec, "min_bid_dai", "", 0, 1e9, 1e-6),
        gas_per_bid=num(spec, "gas_per_bid", "", 0, 1e8, 150_000.0),
        dai_refill_share=num(spec, "dai_refill_share", "", 0, 1, 0.0),
        recycle_collateral=bool(spec.get("recycle_collateral", True)),
        recycle_delay_min=num(spec, "recycle_delay_min", "", 0, 10080, 0.0),
        sources=sources,
    )


def load_population(path: str | Path) -> KeeperPopulation:
    """Read a keeper population JSON file (the I/O edge of this module)."""
    from ..snapshots import read_json

    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError("must be a JSON object", file=str(path))
    return population(data, file=str(path))


# --------------------------------------------------------------------------------------------
# One step
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StepReport:
    """What the keepers did in one :func:`bid_step` (arrays over auctions unless said)."""

    tends: np.ndarray  # tend calls that landed per auction
    dents: np.ndarray  # dent calls that landed per auction
    active_keepers: np.ndarray  # bool over keepers: could get a transaction mined this step
    dai_paid_dai: float  # DAI moved from keepers into auctions (net of refunds)


def gas_cost_usd(pop: KeeperPopulation, gas_gwei: float, eth_usd: float) -> float:
    """USD cost of one bid transaction."""
    return pop.gas_per_bid * gas_gwei * 1e-9 * eth_usd


def _allocate(want: np.ndarray, need: np.ndarray, surplus: np.ndarray, free: float, floor: np.ndarray) -> np.ndarray:
    """Greedy DAI allocation of one keeper over auctions, best surplus first.

    ``want`` is the bid (NaN = none), ``need`` the DAI it requires; bids whose cumulative need exceeds
    ``free`` are cut to what is left (kept only if still >= ``floor``). Returns bids (NaN = none).
    """
    out = np.full(want.shape, np.nan)
    cand = np.flatnonzero(~np.isnan(want))
    if cand.size == 0 or free <= 0:
        return out
    order = cand[np.argsort(-surplus[cand], kind="stable")]
    before = np.cumsum(need[order]) - need[order]
    left = free - before
    cut = np.where(need[order] <= left, want[order], want[order] - (need[order] - left))
    ok = (left > 0) & (cut >= floor[order]) & (cut > 0)
    out[order[ok]] = cut[ok]
    return out


def bid_step(flips: fl.Flips, pop: KeeperPopulation, state: KeeperState, *, now_s: float, price_usd: np.ndarray,
             dai_usd: float, gas_gwei: float, eth_usd: float, beg: float, ttl_s: float,
             version: str = fl.V1_0) -> tuple[fl.Flips, KeeperState, StepReport]:
    """Keepers bid in every open auction once (see the module docstring); returns the new state.

    ``price_usd`` is the market price of each auction's collateral (per auction, or one value).
    """
    n = flips.n
    p = np.broadcast_to(np.asarray(price_usd, np.float64), (n,))
    active = np.asarray(gas_gwei <= pop.max_gas_gwei)
    gas_usd = gas_cost_usd(pop, gas_gwei, eth_usd)
    free0 = state.dai_free_dai.copy()
    tends, dents = np.zeros(n, np.int64), np.zeros(n, np.int64)
    st = replace(state, dai_free_dai=state.dai_free_dai.copy(), gas_spent_usd=state.gas_spent_usd.copy(),
                 bids=state.bids.copy())
    paid_total = 0.0

    def apply(result: fl.Bid, who: int) -> None:
        nonlocal paid_total
        go = result.reason == fl.OK
        if not go.any():
            return
        st.dai_free_dai[who] -= float(result.paid_dai[go].sum())
        paid_total += float(result.paid_dai[go].sum() - result.refund_dai[go].sum())
        for r_k in np.unique(result.refund_to[go]):
            if r_k >= 0:
                st.dai_free_dai[r_k] += float(result.refund_dai[go & (result.refund_to == r_k)].sum())
        st.gas_spent_usd[who] += gas_usd * int(go.sum())
        st.bids[who] += int(go.sum())

    # ---- tend phase
    status = fl.status(flips, now_s)
    in_tend = status == fl.TEND
    floor = np.where(flips.bid_dai > 0, beg * flips.bid_dai, 0.0)
    bids = np.full((pop.n, n), np.nan)
    for k in np.flatnonzero(active):
        mine = flips.guy == k
        if pop.strategy[k] == MINIMAL:
            want = np.where(in_tend & (flips.bid_dai == 0) & ~mine & (pop.min_bid_dai < flips.tab_dai),
                            pop.min_bid_dai, np.nan)
            surplus = np.zeros(n)
        else:
            value_dai = (flips.lot * p * (1 - pop.margin[k]) - gas_usd) / dai_usd
            b = np.minimum(value_dai, flips.tab_dai)
            ok = in_tend & ~mine & (b > flips.bid_dai) & ((b >= floor) | (b == flips.tab_dai))
            want = np.where(ok, b, np.nan)
            surplus = value_dai - flips.bid_dai
        need = want.copy()  # a new bidder needs its whole bid
        bids[k] = _allocate(want, need, surplus, float(free0[k]), np.maximum(floor, 1e-300))
    flips = _apply_in_order(flips, bids, ascending=True, apply=apply, counter=tends,
                            call=lambda f, b, k: fl.tend(f, b, k, now_s, beg=beg, ttl_s=ttl_s, version=version))

    # ---- dent phase (auctions whose bid reached tab, now or earlier)
    in_dent = fl.status(flips, now_s) == fl.DENT
    lots = np.full((pop.n, n), np.nan)
    for k in np.flatnonzero(active & pop.is_value):
        mine = flips.guy == k
        with np.errstate(divide="ignore", invalid="ignore"):
            ask = (flips.tab_dai * dai_usd + gas_usd) / (p * (1 - pop.margin[k]))
        ok = in_dent & ~mine & (ask <= flips.lot / beg) & (ask > 0)
        want = np.where(ok, ask, np.nan)
        need = np.where(ok, flips.tab_dai, 0.0)
        alloc = _allocate(np.where(ok, flips.tab_dai, np.nan), need, flips.lot - ask, float(st.dai_free_dai[k]),
                          flips.tab_dai)  # all or nothing: a dent needs the whole tab
        lots[k] = np.where(np.isnan(alloc), np.nan, want)
    flips = _apply_in_order(flips, lots, ascending=False, apply=apply, counter=dents,
                            call=lambda f, b, k: fl.dent(f, b, k, now_s, beg=beg, ttl_s=ttl_s, version=version))
    return flips, st, StepReport(tends, dents, active, paid_total)


def _apply_in_order(flips: fl.Flips, offers: np.ndarray, *, ascending: bool, apply, counter: np.ndarray, call) -> fl.Flips:
    """Apply each auction's offers (rows = keepers) one rank at a time, lowest (or highest) first."""
    if np.all(np.isnan(offers)):
        return flips
    key = np.where(np.isnan(offers), np.inf, offers if ascending else -offers)
    order = np.argsort(key, axis=0, kind="stable")  # (K, n): keeper index by rank, per auction
    for rank in range(offers.shape[0]):
        who = order[rank]
        offer = offers[who, np.arange(flips.n)]
        if np.all(np.isnan(offer)):
            break
        for k in np.unique(who[~np.isnan(offer)]):
            sel = (who == k) & ~np.isnan(offer)
            r = call(flips, np.where(sel, offer, np.nan), int(k))
            apply(r, int(k))
            counter += r.reason == fl.OK
            flips = r.flips
    return flips


def deal_step(flips: fl.Flips, pop: KeeperPopulation, state: KeeperState, *, now_s: float, price_usd: np.ndarray,
              dai_usd: float, version: str = fl.V1_0) -> tuple[fl.Flips, KeeperState, fl.Deal]:
    """Deal every auction that allows it; winners receive the lot (sold for DAI at once, at the market
    price, when ``recycle_collateral`` with no delay; otherwise held in ``collateral_won_tokens`` until
    :func:`sell_collateral`). Anyone may call ``deal``; its gas is not charged (it does not change who wins)."""
    d = fl.deal(flips, now_s, version=version)
    p = np.broadcast_to(np.asarray(price_usd, np.float64), (flips.n,))
    free = state.dai_free_dai.copy()
    won = state.collateral_won_tokens.copy()
    go = d.reason == fl.OK
    for k in np.unique(d.winner[go]):
        if k < 0:
            continue
        sel = go & (d.winner == k)
        if pop.recycle_collateral and pop.recycle_delay_min <= 0:
            free[k] += float((d.lot_tokens[sel] * p[sel]).sum()) / dai_usd
        else:
            won[k] += float(d.lot_tokens[sel].sum())
    return d.flips, replace(state, dai_free_dai=free, collateral_won_tokens=won), d


def sell_collateral(state: KeeperState, keeper: np.ndarray, tokens: np.ndarray, dai_received: np.ndarray) -> KeeperState:
    """Keepers ``keeper`` sold ``tokens`` of won collateral for ``dai_received`` DAI (the engine prices the
    sale in its market, with impact): the DAI becomes free to bid again."""
    free = state.dai_free_dai.copy()
    won = state.collateral_won_tokens.copy()
    np.add.at(free, keeper, dai_received)
    np.add.at(won, keeper, -np.asarray(tokens, np.float64))
    return replace(state, dai_free_dai=free, collateral_won_tokens=np.maximum(won, 0.0))


def refill(state: KeeperState, pop: KeeperPopulation, *, dai_volume_dai: float) -> KeeperState:
    """Value keepers buy ``dai_refill_share × dai_volume_dai`` DAI in the market this bar, in equal shares."""
    value = pop.is_value
    if not value.any() or pop.dai_refill_share <= 0:
        return state
    add = np.where(value, pop.dai_refill_share * float(dai_volume_dai) / value.sum(), 0.0)
    return replace(state, dai_free_dai=state.dai_free_dai + add)
