"""Running one evaluation: choose the engine, build its inputs, collect the per-path ledger."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from .kernel import VENUE_CONSTANTS, KGroups, KLiquidators, KMarket, KOut, KPositions, KVenues, run_paths
from .ledger import EVENT_DTYPE, Ledger
from .model import Bound
from .reference import new_ledger, run_reference, venue_simulators
from .venues import KernelSpec, VenueSimulator

ENGINES = ("auto", "kernel", "reference")


def kernel_specs(bound: Bound, sims: list[VenueSimulator] | None = None) -> list[KernelSpec] | str:
    """Each venue's kernel spec, or the first venue's reason why the kernel cannot run the candidate."""
    out = []
    for sim in sims if sims is not None else venue_simulators(bound):
        spec = sim.kernel_spec()
        if isinstance(spec, str):
            return spec
        out.append(spec)
    return out


def kernel_unsupported_reason(bound: Bound) -> str | None:
    """Why the fast kernel cannot run this candidate (None when it can), as its venues declare."""
    specs = kernel_specs(bound)
    return specs if isinstance(specs, str) else None


@dataclass(frozen=True)
class KernelInputs:
    """The kernel's structs for one candidate, reusable with other price paths."""

    positions: KPositions
    venues: KVenues
    groups: KGroups
    ledger: Ledger  # an empty ledger with the venues' declared fields (the shape of the results)
    n_positions_total: int

    @property
    def arrays(self) -> dict[str, np.ndarray]:  # the former flat dict, for inspection
        return {**self.positions._asdict(), **self.venues._asdict(), **self.groups._asdict()}


def build_kernel_inputs(bound: Bound, sims: list[VenueSimulator] | None = None) -> KernelInputs:
    """The kernel's structs from the venues' kernel specs (raises ValueError when a venue has none)."""
    prep = bound.prepared
    sc = prep.scenario
    sims = venue_simulators(bound) if sims is None else sims
    specs = kernel_specs(bound, sims)
    if isinstance(specs, str):
        raise ValueError(f"kernel engine cannot run this scenario: {specs}")
    cols: dict[str, list] = {k: [] for k in ("venue", "row", "ca", "da", "cc", "c0", "d0", "lt", "lb", "fee")}
    per: dict[str, list] = {k: [] for k in VENUE_CONSTANTS}
    n_assets = len(prep.market.assets)
    max_cols = max(len(pb.book.collateral_assets) for pb in bound.books)
    store_cols = np.full((len(bound.books), max_cols), -1, np.int64)
    store_lf = np.zeros((len(bound.books), max_cols))
    for j, (spec, pb) in enumerate(zip(specs, bound.books, strict=True)):
        book = pb.book
        held = (book.collateral_tokens > 0).any(1) & (book.debt_tokens > 0).any(1)
        rows = np.flatnonzero(held)
        ci = np.argmax(book.collateral_tokens[rows], axis=1)
        di = np.argmax(book.debt_tokens[rows], axis=1)
        for key in VENUE_CONSTANTS:
            per[key].append(spec.constants.get(key, np.inf if key == "target" else 0.0))
        if spec.store_factor is not None:
            store_cols[j, :len(book.collateral_assets)] = bound.coll_market[j]
            store_lf[j, :len(book.collateral_assets)] = spec.store_factor
        cols["venue"].append(np.full(rows.size, j))
        cols["row"].append(rows)
        cols["ca"].append(bound.coll_market[j][ci])
        cols["da"].append(bound.debt_market[j][di])
        cols["cc"].append(ci)
        cols["c0"].append(book.collateral_tokens[rows, ci])
        cols["d0"].append(book.debt_tokens[rows, di])
        cols["lt"].append(spec.lt)
        cols["lb"].append(spec.lb)
        cols["fee"].append(spec.fee)
    flat = {k: np.concatenate(v) for k, v in cols.items()}
    n = flat["c0"].size
    # groups (venue, collateral asset, debt asset); within a group positions sorted by liquidation ratio desc
    gid_key = (flat["venue"] * n_assets + flat["ca"]) * n_assets + flat["da"]
    uniq, pos_group = np.unique(gid_key, return_inverse=True)
    with np.errstate(divide="ignore"):
        key = flat["d0"] / (flat["c0"] * flat["lt"])
    order = np.lexsort((-key, pos_group))
    counts = np.bincount(pos_group, minlength=uniq.size)
    goff = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    # Store positions in their walk order (group, then liquidation ratio): the kernel then reads them
    # nearly sequentially instead of at random (a measured win: the per-call cost is cache misses).
    flat = {k: v[order] for k, v in flat.items()}
    i64, f64 = np.int64, np.float64
    positions = KPositions(venue=flat["venue"].astype(i64), row=flat["row"].astype(i64), ca=flat["ca"].astype(i64),
                           da=flat["da"].astype(i64), cc=flat["cc"].astype(i64), group=pos_group[order].astype(i64),
                           c0=flat["c0"].astype(f64), d0=flat["d0"].astype(f64), lt=flat["lt"].astype(f64),
                           lb=flat["lb"].astype(f64), fee=flat["fee"].astype(f64))
    venues = KVenues(rule=np.array([s.rule for s in specs], i64),
                     lag=np.array([s.oracle_spec.lag_steps for s in sims], i64),
                     close_factor=np.array(per["close_factor"], f64), cf_hf=np.array(per["cf_hf"], f64),
                     min_base=np.array(per["min_base"], f64), floor=np.array(per["floor"], f64),
                     sf=np.array(per["sf"], f64), target_res=np.array(per["target"], f64),
                     res0=np.array([pc.reserves_usd for pc in sc.protocols], f64),
                     store_cols=store_cols, store_lf=store_lf)
    groups = KGroups(venue=(uniq // (n_assets * n_assets)).astype(i64), ca=((uniq // n_assets) % n_assets).astype(i64),
                     da=(uniq % n_assets).astype(i64), off=goff, order=np.arange(n, dtype=i64),
                     key=key[order].astype(f64))
    return KernelInputs(positions, venues, groups, new_ledger(bound, sims, 0), n)


def run_kernel(bound: Bound, inputs: KernelInputs | None = None, *, close: np.ndarray | None = None,
               low: np.ndarray | None = None, high: np.ndarray | None = None, gas_gwei: np.ndarray | None = None,
               events: bool = False, n_chunks: int | None = None) -> tuple[Ledger, np.ndarray | None]:
    """The kernel on ``bound``'s paths (or the given ``close``/``low``/``high`` bars, e.g. a batch or a
    shock); returns the ledger and, with ``events``, the event records (paths numbered within the call)."""
    prep = bound.prepared
    sc = prep.scenario
    lc = sc.liquidators
    inputs = inputs or build_kernel_inputs(bound)
    if close is None:
        close, low, high = prep.paths.close, prep.paths.low, prep.paths.bar_high
    else:
        low = close if low is None else low
        high = close if high is None else high
    if not (close.shape == low.shape == high.shape):
        raise ValueError(f"close {close.shape}, low {low.shape} and high {high.shape} must have one shape")
    gas = prep.gas_gwei if gas_gwei is None else gas_gwei
    n_paths, t1, n_assets = close.shape
    chunks = 1 if events else min(n_chunks or numba.get_num_threads(), n_paths)
    acct = np.zeros((chunks, inputs.n_positions_total), np.int64)
    market = KMarket(close, low, high, prep.market.liquidity, prep.market.half_life_s, float(sc.step_s),
                     float(lc.gas_per_call), int(prep.gas_token), gas)
    liquidators = KLiquidators(int(lc.max_calls_per_step), int(lc.reaction_delay_steps), float(lc.min_profit_usd))
    ev_cap = 0
    ev_n = np.zeros(1, np.int64)
    while True:
        ev = np.zeros(max(ev_cap, 1), EVENT_DTYPE)
        res = Ledger(inputs.ledger.fields, n_paths, len(bound.adapters), n_assets, t1 - 1, inputs.ledger.positions)
        acct[:] = 0
        ev_n[0] = 0
        out = KOut(*(res[name] for name in KOut._fields[:-3]), ev, ev_n, ev_cap if events else -1)
        run_paths(chunks, market, inputs.positions, inputs.venues, inputs.groups, liquidators, out, acct)
        if not events or ev_n[0] <= ev_cap:
            break
        ev_cap = int(ev_n[0])  # first pass counted the events; run again with room for all of them
    # initial debt is the same on every path (all paths start at the same prices)
    pos = inputs.positions
    debt0 = np.bincount(pos.venue, pos.d0 * close[0, 0, pos.da], minlength=len(bound.adapters))
    res.initial_debt_usd[:] = debt0
    per_pos = acct.sum(0)
    for j in range(len(bound.adapters)):
        res.account_liquidated[j][pos.row[pos.venue == j]] = per_pos[pos.venue == j]
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
    inputs = None if use_ref else build_kernel_inputs(bound, sims)
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
