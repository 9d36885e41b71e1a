"""Running one evaluation: choose the engine, build its inputs, collect the per-path ledger."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from .flows import FORCED_SOLD_FIELD, MAX_ROUNDS_PER_STEP, flow_sources
from .kernel import (
    RULE_CLOSE_FACTOR_CALL,
    VENUE_CONSTANTS,
    KGroups,
    KLiquidators,
    KMarket,
    KOut,
    KPositions,
    KVenues,
    run_paths,
)
from .kernel_auctions import (
    KAuctions,
    auction_inputs,
    auction_outputs,
    default_capacity,
    finish_auction_ledger,
)
from .kernel_flows import KFlowOut, KFlows, build_flow_inputs
from .kernel_perp import KPerpPositions, KPerpVenues, build_perp_inputs, perp_out
from .ledger import EVENT_DTYPE, Ledger
from .model import Bound
from .reference import new_ledger, run_reference, venue_simulators
from .venues import KernelSpec, PerpKernelSpec, VenueSimulator

ENGINES = ("auto", "kernel", "reference")


def kernel_specs(bound: Bound, sims: list[VenueSimulator] | None = None) -> list[KernelSpec | PerpKernelSpec] | str:
    """Each venue's kernel spec, or the first venue's or forced-flow source's reason why the kernel cannot run
    the candidate (a source declares its mirror with ``kernel_spec``, as a venue does)."""
    out = []
    for sim in sims if sims is not None else venue_simulators(bound):
        spec = sim.kernel_spec()
        if isinstance(spec, str):
            return spec
        out.append(spec)
    flows = flow_sources(bound)
    for src in flows:
        spec = src.kernel_spec()
        if isinstance(spec, str):
            return spec
        if src.ctx.pool != src.ctx.asset:
            return f"forced flows {src.ctx.id} trade a pool other than their asset's own (no kernel rule)"
    if flows:
        # forced_sold_usd nets each venue's flows per pool and round; the kernel nets the close-factor venues'
        # flows together and the perp venues' together (auction and storefront sales are never netted)
        calls = sum(1 for s in out if not isinstance(s, PerpKernelSpec) and s.rule == RULE_CLOSE_FACTOR_CALL)
        perps = sum(1 for s in out if isinstance(s, PerpKernelSpec))
        if calls > 1 or perps > 1:
            return (f"forced flows with {calls} close-factor and {perps} perp venues run on the reference engine "
                    "(the kernel's forced_sold_usd nets flows per venue with at most one of each)")
    return out


def kernel_unsupported_reason(bound: Bound) -> str | None:
    """Why the fast kernel cannot run this candidate (None when it can), as its venues declare."""
    specs = kernel_specs(bound)
    return specs if isinstance(specs, str) else None


def fallback_reason(bound: Bound, engine: str, used: str) -> str | None:
    """What a result says of its engine (``SimulationResult.engine_reason``): why ``engine="auto"`` ran the
    reference engine (the declining venue's one-line reason), None when the kernel ran or the reference was
    asked for."""
    return kernel_unsupported_reason(bound) if engine == "auto" and used == "reference" else None


@dataclass(frozen=True)
class KernelInputs:
    """The kernel's structs for one candidate, reusable with other price paths (same initial prices)."""

    positions: KPositions
    venues: KVenues
    groups: KGroups
    ledger: Ledger  # an empty ledger with the venues' declared fields (the shape of the results)
    n_positions_total: int
    p0: np.ndarray  # the initial prices the keys and the walk order refer to
    auctions: KAuctions  # the auction rule's vaults and terms (empty without an auction venue)
    perp_venues: KPerpVenues | None = None  # the perp venues (optimizer.engine.kernel_perp)
    perp_positions: KPerpPositions | None = None
    flows: KFlows | None = None  # the forced-flow sources (optimizer.engine.kernel_flows)
    flow_fields: tuple[tuple[str, str], ...] = ()  # (sold, bought) ledger field of each KFlows.col

    @property
    def arrays(self) -> dict[str, np.ndarray]:  # the former flat dict, for inspection
        return {**self.positions._asdict(), **self.venues._asdict(), **self.groups._asdict()}


def _legs(tokens: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR legs of ``rows`` of a (positions, columns) token matrix: offsets, row of each leg, column."""
    sub = tokens[rows] > 0
    r, col = np.nonzero(sub)  # row-major: each account's legs in column order
    off = np.zeros(rows.size + 1, np.int64)
    np.cumsum(np.bincount(r, minlength=rows.size), out=off[1:])
    return off, r, col


def _pack(mask: np.ndarray) -> np.ndarray:
    """Rows of a boolean matrix as uint64 words (n, ceil(columns / 64))."""
    b = np.packbits(mask, axis=1, bitorder="little")
    pad = (-b.shape[1]) % 8
    if pad:
        b = np.concatenate([b, np.zeros((b.shape[0], pad), np.uint8)], axis=1)
    return np.ascontiguousarray(b).view(np.uint64)


def _permute_legs(off: np.ndarray, order: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets and leg gather index after reordering accounts by ``order``."""
    lens = np.diff(off)[order]
    new_off = np.zeros(order.size + 1, np.int64)
    np.cumsum(lens, out=new_off[1:])
    idx = np.repeat(off[:-1][order] - new_off[:-1], lens) + np.arange(new_off[-1])
    return new_off, idx


def build_kernel_inputs(bound: Bound, sims: list[VenueSimulator] | None = None,
                        p0: np.ndarray | None = None, specs: list[KernelSpec] | None = None) -> KernelInputs:
    """The kernel's structs from the venues' kernel specs (raises ValueError when a venue has none).

    Accounts with debt become kernel accounts with one leg per collateral and debt column they hold;
    they are grouped by (venue, counted collateral assets, debt assets) and sorted by their key at the
    initial prices ``p0`` (default: the prepared paths' start). ``specs``: the venues' kernel specs when the
    caller already has them (:func:`kernel_specs` of ``sims``; building them reads every position's terms).
    """
    prep = bound.prepared
    sc = prep.scenario
    sims = venue_simulators(bound) if sims is None else sims
    specs = kernel_specs(bound, sims) if specs is None else specs
    if isinstance(specs, str):
        raise ValueError(f"kernel engine cannot run this scenario: {specs}")
    p0 = np.asarray(prep.paths.close[0, 0] if p0 is None else p0, np.float64)
    n_assets = len(prep.market.assets)
    per: dict[str, list] = {k: [] for k in VENUE_CONSTANTS}
    lend = [j for j, spec in enumerate(specs) if not isinstance(spec, PerpKernelSpec)]
    max_cols = max([len(bound.books[j].book.collateral_assets) for j in lend], default=1)
    store_cols = np.full((len(bound.books), max_cols), -1, np.int64)
    store_lf = np.zeros((len(bound.books), max_cols))
    acc: dict[str, list] = {k: [] for k in ("venue", "row", "ncl", "ndl")}
    leg: dict[str, list] = {k: [] for k in ("ca", "cc", "c0", "lt", "lb", "fee", "cpaused", "da", "dc", "d0",
                                            "dpaused")}
    for j, (spec, pb) in enumerate(zip(specs, bound.books, strict=True)):
        if isinstance(spec, PerpKernelSpec):  # a perp venue: no lending accounts (its own structs below)
            for key in VENUE_CONSTANTS:
                per[key].append(np.inf if key == "target" else 0.0)
            continue
        book = pb.book
        rows = np.flatnonzero((book.debt_tokens > 0).any(1))
        if spec.auctions is not None:  # the auction rule's vaults live in KAuctions
            rows = rows[:0]
        for key in VENUE_CONSTANTS:
            per[key].append(spec.constants.get(key, np.inf if key == "target" else 0.0))
        if spec.store_factor is not None:
            store_cols[j, :len(book.collateral_assets)] = bound.coll_market[j]
            store_lf[j, :len(book.collateral_assets)] = spec.store_factor
        coff, cr, ccol = _legs(book.collateral_tokens, rows)
        doff, dr, dcol = _legs(book.debt_tokens, rows)
        br, bdr = rows[cr], rows[dr]
        acc["venue"].append(np.full(rows.size, j))
        acc["row"].append(rows)
        acc["ncl"].append(np.diff(coff))
        acc["ndl"].append(np.diff(doff))
        cpz = np.zeros(len(book.collateral_assets), bool) if spec.collateral_paused is None else spec.collateral_paused
        dpz = np.zeros(len(book.debt_assets), bool) if spec.debt_paused is None else spec.debt_paused
        leg["ca"].append(bound.coll_market[j][ccol])
        leg["cc"].append(ccol)
        leg["c0"].append(book.collateral_tokens[br, ccol])
        leg["lt"].append(np.asarray(spec.lt, np.float64)[br, ccol])
        leg["lb"].append(np.asarray(spec.lb, np.float64)[br, ccol])
        leg["fee"].append(np.asarray(spec.fee, np.float64)[br, ccol])
        leg["cpaused"].append(np.asarray(cpz, bool)[ccol])
        leg["da"].append(bound.debt_market[j][dcol])
        leg["dc"].append(dcol)
        leg["d0"].append(book.debt_tokens[bdr, dcol])
        leg["dpaused"].append(np.asarray(dpz, bool)[dcol])
    a = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in acc.items()}
    lg = {k: np.concatenate(v) if v else np.zeros(0, np.int64) for k, v in leg.items()}
    n = a["row"].size
    i64, f64 = np.int64, np.float64
    coff = np.zeros(n + 1, i64)
    np.cumsum(a["ncl"], out=coff[1:])
    doff = np.zeros(n + 1, i64)
    np.cumsum(a["ndl"], out=doff[1:])
    # keys at p0: total debt / weighted collateral (1 / health at the initial prices)
    cacc = np.repeat(np.arange(n), a["ncl"])
    dacc = np.repeat(np.arange(n), a["ndl"])
    w = np.bincount(cacc, lg["c0"] * p0[lg["ca"]] * lg["lt"], minlength=n)
    debt = np.bincount(dacc, lg["d0"] * p0[lg["da"]], minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        key = np.where(debt > 0, np.where(w > 0, debt / np.where(w > 0, w, 1.0), np.inf), -1.0)
    # groups: venue, set of counted collateral assets, set of debt assets
    cmask = np.zeros((n, n_assets), bool)
    counted = lg["lt"] > 0
    cmask[cacc[counted], lg["ca"][counted]] = True
    dmask = np.zeros((n, n_assets), bool)
    dmask[dacc, lg["da"]] = True
    # (packed bits and a lexsort: np.unique(axis=0) sorts rows as structured values, ~10x slower)
    words = [a["venue"].astype(np.uint64)] + [_pack(m) for m in (cmask, dmask)]
    cols = [w_ for blk in words for w_ in (blk.T if blk.ndim == 2 else [blk])]
    by = np.lexsort(cols[::-1])  # venue first: each venue's groups are contiguous
    change = np.zeros(n, bool)
    if n:
        change[0] = True
        for col in cols:
            change[1:] |= col[by][1:] != col[by][:-1]
    first = by[change]
    pos_group = np.empty(n, i64)
    pos_group[by] = np.cumsum(change) - 1
    uniq = np.column_stack([a["venue"][first], cmask[first], dmask[first]]).astype(i64)
    order = np.lexsort((-key, pos_group))
    counts = np.bincount(pos_group, minlength=uniq.shape[0])
    goff = np.zeros(uniq.shape[0] + 1, i64)
    np.cumsum(counts, out=goff[1:])
    # Store accounts in their walk order (group, then key): the kernel then reads them nearly
    # sequentially instead of at random (a measured win: the per-call cost is cache misses).
    coff_w, cidx = _permute_legs(coff, order)
    doff_w, didx = _permute_legs(doff, order)
    # single-pair accounts (one counted collateral leg, one debt leg): the kernel's inline path
    lt_w = lg["lt"][cidx]
    leg_acc = np.repeat(np.arange(n), np.diff(coff_w))
    counted_legs = np.flatnonzero(lt_w > 0)
    n_counted = np.bincount(leg_acc[counted_legs], minlength=n)
    pair_c = np.full(n, -1, i64)
    one = n_counted[leg_acc[counted_legs]] == 1
    pair_c[leg_acc[counted_legs][one]] = counted_legs[one]
    pair_d = np.where(np.diff(doff_w) == 1, doff_w[:-1], -1).astype(i64)
    positions = KPositions(venue=a["venue"][order].astype(i64), row=a["row"][order].astype(i64),
                           group=pos_group[order].astype(i64), coff=coff_w, doff=doff_w,
                           ca=lg["ca"][cidx].astype(i64), cc=lg["cc"][cidx].astype(i64), c0=lg["c0"][cidx].astype(f64),
                           lt=lg["lt"][cidx].astype(f64), lb=lg["lb"][cidx].astype(f64), fee=lg["fee"][cidx].astype(f64),
                           cpaused=lg["cpaused"][cidx].astype(np.bool_), da=lg["da"][didx].astype(i64),
                           dc=lg["dc"][didx].astype(i64), d0=lg["d0"][didx].astype(f64),
                           dpaused=lg["dpaused"][didx].astype(np.bool_), pair_c=pair_c, pair_d=pair_d)
    gvenue = uniq[:, 0].astype(i64)
    venue_off = np.searchsorted(gvenue, np.arange(len(bound.books) + 1)).astype(i64)
    gcm, gdm = uniq[:, 1:1 + n_assets].astype(bool), uniq[:, 1 + n_assets:].astype(bool)
    gc_off = np.zeros(uniq.shape[0] + 1, i64)
    np.cumsum(gcm.sum(1), out=gc_off[1:])
    gd_off = np.zeros(uniq.shape[0] + 1, i64)
    np.cumsum(gdm.sum(1), out=gd_off[1:])
    venues = KVenues(rule=np.array([0 if isinstance(s, PerpKernelSpec) else s.rule for s in specs], i64),
                     lag=np.array([s.oracle_spec.lag_steps for s in sims], i64),
                     close_factor=np.array(per["close_factor"], f64), cf_hf=np.array(per["cf_hf"], f64),
                     min_base=np.array(per["min_base"], f64), floor=np.array(per["floor"], f64),
                     sf=np.array(per["sf"], f64), target_res=np.array(per["target"], f64),
                     res0=np.array([pc.reserves_usd for pc in sc.protocols], f64),
                     store_cols=store_cols, store_lf=store_lf,
                     cf_on_reserve=np.array(per["cf_on_reserve"], f64) != 0.0,
                     no_deficit=np.array(per["no_deficit"], f64) != 0.0)
    groups = KGroups(venue=gvenue, venue_off=venue_off, off=goff, gc_off=gc_off,
                     gc=np.nonzero(gcm)[1].astype(i64), gd_off=gd_off, gd=np.nonzero(gdm)[1].astype(i64),
                     key=key[order].astype(f64))
    auctions = auction_inputs(specs, sims, bound.coll_market, bound.debt_market)
    # only the perp venues' simulators: building a lending venue's spec again reads every position's terms
    pv, pp = build_perp_inputs([sim for sim, spec in zip(sims, specs, strict=True) if isinstance(spec, PerpKernelSpec)],
                               n_assets)
    srcs = flow_sources(bound)
    fields: list[tuple[str, str]] = []
    for src in srcs:
        if (src.sold_field, src.bought_field) not in fields:
            fields.append((src.sold_field, src.bought_field))
    fl = build_flow_inputs([src.kernel_spec() for src in srcs], [src.ctx.asset for src in srcs],
                           [src.ctx.min_trade_usd for src in srcs],
                           [fields.index((src.sold_field, src.bought_field)) for src in srcs], MAX_ROUNDS_PER_STEP)
    return KernelInputs(positions, venues, groups, new_ledger(bound, sims, 0, flows=srcs), n, p0, auctions, pv, pp, fl,
                        tuple(fields))


def run_kernel(bound: Bound, inputs: KernelInputs | None = None, *, close: np.ndarray | None = None,
               low: np.ndarray | None = None, high: np.ndarray | None = None, gas_gwei: np.ndarray | None = None,
               events: bool = False, n_chunks: int | None = None) -> tuple[Ledger, np.ndarray | None]:
    """The kernel on ``bound``'s paths (or the given ``close``/``low``/``high`` bars, e.g. a batch or a
    shock); returns the ledger and, with ``events``, the event records (paths numbered within the call)."""
    prep = bound.prepared
    sc = prep.scenario
    lc = sc.liquidators
    if close is None:
        close, low, high = prep.paths.close, prep.paths.low, prep.paths.bar_high
    else:
        low = close if low is None else low
        high = close if high is None else high
    if not (close.shape == low.shape == high.shape):
        raise ValueError(f"close {close.shape}, low {low.shape} and high {high.shape} must have one shape")
    p0 = close[0, 0]
    if not (close[:, 0] == p0).all():
        raise ValueError("every path must start at the same prices (the kernel's keys refer to them)")
    if inputs is None or not np.array_equal(inputs.p0, p0):
        inputs = build_kernel_inputs(bound, p0=p0)
    gas = prep.gas_gwei if gas_gwei is None else gas_gwei
    n_paths, t1, n_assets = close.shape
    chunks = 1 if events else min(n_chunks or numba.get_num_threads(), n_paths)
    acct = np.zeros((chunks, inputs.n_positions_total), np.int64)
    pacct = np.zeros((chunks, inputs.perp_positions.row.shape[0]), np.int64)
    market = KMarket(close, low, high, prep.market.liquidity, prep.market.half_life_s, float(sc.step_s),
                     float(lc.gas_per_call), int(prep.gas_token), gas, np.ascontiguousarray(p0, np.float64))
    liquidators = KLiquidators(int(lc.max_calls_per_step), int(lc.reaction_delay_steps), float(lc.min_profit_usd))
    ev_cap = 0
    ev_n = np.zeros(1, np.int64)
    au_cap = default_capacity(inputs.auctions)
    while True:
        ev = np.zeros(max(ev_cap, 1), EVENT_DTYPE)
        res = Ledger(inputs.ledger.fields, n_paths, len(bound.adapters), n_assets, t1 - 1, inputs.ledger.positions)
        acct[:] = 0
        ev_n[0] = 0
        n_v = len(bound.adapters)
        out = KOut(*(res[name] if name in res else np.zeros((n_paths, n_v)) for name in KOut._fields[:-3]), ev, ev_n,
                   ev_cap if events else -1)
        au_out = auction_outputs(res, inputs.auctions, chunks, au_cap)
        pacct[:] = 0
        fo = KFlowOut(np.zeros((n_paths, len(inputs.flow_fields))), np.zeros((n_paths, len(inputs.flow_fields))),
                      np.zeros(n_paths))
        run_paths(chunks, market, inputs.positions, inputs.venues, inputs.groups, liquidators, out, acct,
                  inputs.auctions, au_out, inputs.perp_venues, inputs.perp_positions, perp_out(res, n_paths, n_v),
                  pacct, inputs.flows, fo)
        if au_out.overflow[0]:  # a path kicked more auctions than the table holds: again with a larger one
            au_cap *= 4
            continue
        if not events or ev_n[0] <= ev_cap:
            break
        ev_cap = int(ev_n[0])  # first pass counted the events; run again with room for all of them
    if inputs.flow_fields:  # the forced-flow sources' fields (path axis)
        for c, (sold, bought) in enumerate(inputs.flow_fields):
            res[sold][:] = fo.sold[:, c]
            res[bought][:] = fo.bought[:, c]
        res[FORCED_SOLD_FIELD.name][:] = fo.forced_sold
    # initial debt is the same on every path (all paths start at the same prices)
    pos = inputs.positions
    leg_venue = np.repeat(pos.venue, np.diff(pos.doff))
    debt0 = np.bincount(leg_venue, pos.d0 * close[0, 0, pos.da], minlength=len(bound.adapters))
    res.initial_debt_usd[:] = debt0
    per_pos = acct.sum(0)
    for j in range(len(bound.adapters)):
        res.account_liquidated[j][pos.row[pos.venue == j]] = per_pos[pos.venue == j]
    finish_auction_ledger(res, inputs.auctions, au_out, close[0, 0])
    pv, pp = inputs.perp_venues, inputs.perp_positions
    per_perp = pacct.sum(0)
    for v, j in enumerate(pv.col):  # a perp venue's exposure: its open notional at the start (initial_debt_usd)
        lo, hi = pv.off[v], pv.off[v + 1]
        res.initial_debt_usd[:, j] = float((pp.size0[lo:hi] * close[0, 0, pp.pool[lo:hi]]).sum())
        res.account_liquidated[j][pp.row[lo:hi]] = per_perp[lo:hi]
    return res, (ev[: ev_n[0]] if events else None)


def run(bound: Bound, engine: str = "auto", events: bool = False,
        progress: Callable[[int, int], None] | None = None,
        batches: int = 1) -> tuple[Ledger, np.ndarray | None, str]:
    """Run one evaluation; returns the ledger, the event records (if asked) and the engine used.

    With ``batches > 1`` the paths run in consecutive batches (results are identical: paths are
    independent) and ``progress(done_paths, total_paths)`` is called after each batch.
    """
    from .ledger import events_array

    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    sims = venue_simulators(bound)
    specs = kernel_specs(bound, sims) if engine != "reference" else "reference engine asked for"
    reason = specs if isinstance(specs, str) else None
    if engine == "kernel" and reason:
        raise ValueError(f"kernel engine cannot run this scenario: {reason}")
    use_ref = engine == "reference" or (engine == "auto" and reason is not None)
    prep = bound.prepared
    n = prep.n_paths
    edges = np.linspace(0, n, min(max(batches, 1), n) + 1).astype(int)
    inputs = None if use_ref else build_kernel_inputs(bound, sims, specs=specs)
    paths = prep.paths
    parts, ev_parts = [], []
    for lo, hi in itertools.pairwise(edges):
        if use_ref:
            ev_list: list[tuple] | None = [] if events else None
            parts.append(run_reference(bound, path_indices=np.arange(lo, hi), events=ev_list))
            if events:
                assert ev_list is not None
                ev_parts.append(events_array(ev_list))
        else:
            raw, ev = run_kernel(bound, inputs, close=paths.close[lo:hi], low=paths.low[lo:hi],
                                 high=paths.bar_high[lo:hi], events=events)
            parts.append(raw)
            if events:
                assert ev is not None
                ev["path"] += lo  # the kernel numbers paths within the batch
                ev_parts.append(ev)
        if progress is not None:
            progress(int(hi), n)
    raw = parts[0] if len(parts) == 1 else Ledger.concat(parts)
    ev_all = np.concatenate(ev_parts) if events else None
    return raw, ev_all, "reference" if use_ref else "kernel"
