"""Running one evaluation: choose the engine, build its inputs, collect raw per-path results."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import numba
import numpy as np

from .kernel import KIND_AAVE, KIND_COMET, run_paths
from .model import Bound, oracle_lag_steps
from .reference import EVENT_COLUMNS, RawResults, protocol_kind, run_reference

ENGINES = ("auto", "kernel", "reference")


def kernel_unsupported_reason(bound: Bound) -> str | None:
    """Why the fast kernel cannot run this candidate (None when it can)."""
    for ad, pb in zip(bound.adapters, bound.books, strict=True):
        if protocol_kind(ad.name) not in (KIND_AAVE, KIND_COMET):
            return f"{ad.name} liquidations are auctions (reference engine)"
        if not pb.single_pair:
            return f"{ad.name} book has accounts with several collaterals or debts"
        if ad.circuit_breakers().liquidations_paused & set(pb.book.collateral_assets + pb.book.debt_assets):
            return f"{ad.name} has paused assets in the book"
    return None


@dataclass(frozen=True)
class KernelInputs:
    """Flat arrays the kernel reads; built once per candidate, reusable with other price paths."""

    arrays: dict
    n_positions_total: int


def build_kernel_inputs(bound: Bound) -> KernelInputs:
    prep = bound.prepared
    sc = prep.scenario
    cols = {k: [] for k in ("proto", "row", "ca", "da", "c0", "d0", "lt", "lb", "fee")}
    per_proto = {k: [] for k in ("kind", "close_factor", "cf_hf", "min_base", "floor", "sf", "target",
                                 "res0")}
    n_assets = len(prep.market.assets)
    max_cols = max(len(pb.book.collateral_assets) for pb in bound.books)
    comet_cols = np.full((len(bound.books), max_cols), -1, np.int64)
    comet_lf = np.zeros((len(bound.books), max_cols))
    for j, (ad, pb) in enumerate(zip(bound.adapters, bound.books, strict=True)):
        book = pb.book
        kind = protocol_kind(ad.name)
        held = (book.collateral_tokens > 0).any(1) & (book.debt_tokens > 0).any(1)
        rows = np.flatnonzero(held)
        ci = np.argmax(book.collateral_tokens[rows], axis=1)
        di = np.argmax(book.debt_tokens[rows], axis=1)
        if kind == KIND_AAVE:
            t = ad._tables(book)
            r = ad._rows(book, t)[rows]
            lt, lb, fee = t.lt[r, ci], t.bonus[r, ci], t.fee[ci]
            if not t.counted[r, ci].all():
                raise ValueError("kernel: Aave position with a collateral that has LT = 0")
            c = ad.constants
            per_proto["close_factor"].append(c["close_factor"])
            per_proto["cf_hf"].append(c["close_factor_hf_threshold"])
            per_proto["min_base"].append(c["min_base_max_close_factor_threshold_usd"])
            per_proto["floor"].append(c["min_leftover_base_usd"])
            per_proto["sf"].append(0.0)
            per_proto["target"].append(np.inf)
        else:
            colmap = ad._columns(book)
            lt = ad.liquidate_cf[colmap][ci]
            lb = ad.liquidation_factor[colmap][ci]
            fee = np.zeros(rows.size)
            for key in ("close_factor", "cf_hf", "min_base", "floor"):
                per_proto[key].append(0.0)
            per_proto["sf"].append(ad.store_front_price_factor)
            per_proto["target"].append(ad.target_reserves_usd)
            comet_cols[j, :len(book.collateral_assets)] = bound.coll_market[j]
            comet_lf[j, :len(book.collateral_assets)] = ad.liquidation_factor[colmap]
        per_proto["kind"].append(kind)
        per_proto["res0"].append(sc.protocols[j].reserves_usd)
        cols["proto"].append(np.full(rows.size, j))
        cols["row"].append(rows)
        cols["ca"].append(bound.coll_market[j][ci])
        cols["da"].append(bound.debt_market[j][di])
        cols["c0"].append(book.collateral_tokens[rows, ci])
        cols["d0"].append(book.debt_tokens[rows, di])
        cols["lt"].append(lt)
        cols["lb"].append(lb)
        cols["fee"].append(fee)
    flat = {k: np.concatenate(v) for k, v in cols.items()}
    n = flat["c0"].size
    # groups (protocol, collateral asset, debt asset); within a group positions sorted by liquidation ratio desc
    gid_key = (flat["proto"] * n_assets + flat["ca"]) * n_assets + flat["da"]
    uniq, pos_group = np.unique(gid_key, return_inverse=True)
    with np.errstate(divide="ignore"):
        key = flat["d0"] / (flat["c0"] * flat["lt"])
    order = np.lexsort((-key, pos_group))
    counts = np.bincount(pos_group, minlength=uniq.size)
    goff = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    # Store positions in their walk order (group, then liquidation ratio): the kernel then reads them
    # nearly sequentially instead of at random (a measured win: the per-call cost is cache misses).
    flat = {k: v[order] for k, v in flat.items()}
    arrays = dict(
        pos_proto=flat["proto"].astype(np.int64), pos_row=flat["row"].astype(np.int64),
        pos_ca=flat["ca"].astype(np.int64), pos_da=flat["da"].astype(np.int64),
        pos_group=pos_group[order].astype(np.int64),
        c0=flat["c0"].astype(np.float64), d0=flat["d0"].astype(np.float64), lt=flat["lt"].astype(np.float64),
        lb=flat["lb"].astype(np.float64), fee=flat["fee"].astype(np.float64),
        proto_kind=np.array(per_proto["kind"], np.int64), proto_lag=np.array(oracle_lag_steps(bound), np.int64),
        close_factor=np.array(per_proto["close_factor"], float), cf_hf=np.array(per_proto["cf_hf"], float),
        min_base=np.array(per_proto["min_base"], float), floor=np.array(per_proto["floor"], float),
        sf=np.array(per_proto["sf"], float), target_res=np.array(per_proto["target"], float),
        res0=np.array(per_proto["res0"], float), comet_cols=comet_cols, comet_lf=comet_lf,
        grp_proto=(uniq // (n_assets * n_assets)).astype(np.int64),
        grp_ca=((uniq // n_assets) % n_assets).astype(np.int64), grp_da=(uniq % n_assets).astype(np.int64),
        goff=goff, gorder=np.arange(n, dtype=np.int64), gkey=key[order].astype(np.float64),
    )
    return KernelInputs(arrays, n)


def run_kernel(bound: Bound, inputs: KernelInputs | None = None, *, close: np.ndarray | None = None,
               low: np.ndarray | None = None, gas_gwei: np.ndarray | None = None, events: bool = False,
               n_chunks: int | None = None) -> tuple[RawResults, np.ndarray | None]:
    prep = bound.prepared
    sc = prep.scenario
    lc = sc.liquidators
    inputs = inputs or build_kernel_inputs(bound)
    close = prep.paths.close if close is None else close
    low = prep.paths.low if low is None else low
    gas = prep.gas_gwei if gas_gwei is None else gas_gwei
    n_paths, t1, n_assets = close.shape
    res = RawResults(n_paths, len(bound.adapters), n_assets, t1 - 1, tuple(b.book.n_positions for b in bound.books))
    chunks = 1 if events else min(n_chunks or numba.get_num_threads(), n_paths)
    acct = np.zeros((chunks, inputs.n_positions_total), np.int64)
    ev_cap = 0
    ev = np.zeros((1, 10))
    ev_n = np.zeros(1, np.int64)
    while True:
        if events:
            ev = np.zeros((max(ev_cap, 1), 10))
        res = RawResults(n_paths, len(bound.adapters), n_assets, t1 - 1, res.positions)
        acct[:] = 0
        ev_n[0] = 0
        a = inputs.arrays
        run_paths(chunks, close, low, prep.market.liquidity, prep.market.half_life_s, sc.step_s, lc.gas_per_call,
                  prep.gas_token, gas,
                  a["pos_proto"], a["pos_row"], a["pos_ca"], a["pos_da"], a["pos_group"], a["c0"], a["d0"], a["lt"],
                  a["lb"], a["fee"], a["proto_kind"], a["proto_lag"], a["close_factor"], a["cf_hf"], a["min_base"],
                  a["floor"], a["sf"], a["target_res"], a["res0"], a["comet_cols"], a["comet_lf"],
                  a["grp_proto"], a["grp_ca"], a["grp_da"], a["goff"], a["gorder"], a["gkey"],
                  lc.max_calls_per_step, lc.reaction_delay_steps, lc.min_profit_usd,
                  res.liquidations, res.debt_repaid_usd, res.collateral_seized_usd, res.liquidator_bonus_usd,
                  res.protocol_fee_usd, res.realised_bad_debt_usd, res.unrealised_bad_debt_usd, res.inventory_usd,
                  res.returned_to_owner_usd, res.debt_removed_usd,
                  res.first_liquidation_step, res.last_liquidation_step, res.market_low_min,
                  res.exo_low_min, acct, ev, ev_n, ev_cap if events else -1)
        if not events or ev_n[0] <= ev_cap:
            break
        ev_cap = int(ev_n[0])  # first pass counted the events; run again with room for all of them
    # initial debt is the same on every path (all paths start at the same prices)
    debt0 = np.bincount(inputs.arrays["pos_proto"], inputs.arrays["d0"] * close[0, 0, inputs.arrays["pos_da"]],
                        minlength=len(bound.adapters))
    res.initial_debt_usd[:] = debt0
    per_pos = acct.sum(0)
    proto, row = inputs.arrays["pos_proto"], inputs.arrays["pos_row"]
    for j in range(len(bound.adapters)):
        res.account_liquidated[j][row[proto == j]] = per_pos[proto == j]
    return res, (ev[: ev_n[0]] if events else None)


def run(bound: Bound, engine: str = "auto", events: bool = False,
        progress: Callable[[int, int], None] | None = None,
        batches: int = 1) -> tuple[RawResults, np.ndarray | None, str]:
    """Run one evaluation; returns raw results, the event rows (if asked) and the engine used.

    With ``batches > 1`` the paths run in consecutive batches (results are identical: paths are
    independent) and ``progress(done_paths, total_paths)`` is called after each batch.
    """
    if engine not in ENGINES:
        raise ValueError(f"engine must be one of {ENGINES}")
    reason = kernel_unsupported_reason(bound)
    if engine == "kernel" and reason:
        raise ValueError(f"kernel engine cannot run this scenario: {reason}")
    use_ref = engine == "reference" or (engine == "auto" and reason is not None)
    prep = bound.prepared
    n = prep.n_paths
    edges = np.linspace(0, n, min(max(batches, 1), n) + 1).astype(int)
    inputs = None if use_ref else build_kernel_inputs(bound)
    parts, ev_parts = [], []
    for lo, hi in itertools.pairwise(edges):
        if use_ref:
            ev_list: list[tuple] | None = [] if events else None
            parts.append(run_reference(bound, path_indices=np.arange(lo, hi), events=ev_list))
            if events:
                ev_parts.append(np.array(ev_list, float).reshape(-1, len(EVENT_COLUMNS)))
        else:
            raw, ev = run_kernel(bound, inputs, close=prep.paths.close[lo:hi], low=prep.paths.low[lo:hi],
                                 events=events)
            parts.append(raw)
            if events:
                ev[:, 0] += lo  # kernel numbers paths within the batch
                ev_parts.append(ev)
        if progress is not None:
            progress(int(hi), n)
    raw = parts[0] if len(parts) == 1 else RawResults.concat(parts)
    ev = np.concatenate(ev_parts) if events else None
    return raw, ev, "reference" if use_ref else "kernel"
