"""Position books: synthetic (drawn from distributions) or explicit CSV.

A synthetic book is built in two stages so candidates share common random numbers: the random
draws (which asset, how much collateral, how much of the borrowing power is used) depend only on the
scenario and its seed; :func:`materialize` turns them into token balances under one candidate's
parameters. With ``ltv_utilisation`` the debt scales with the candidate's borrowing power (users
borrow a share of what is allowed); with ``health`` the debt is fixed from the *current* parameters
(the book as it stands today), so a candidate changes only how close it is to liquidation.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from protocols import Adapter, Book, Prices

from ..errors import InputError
from .limits import MAX_POSITION_USD, MAX_TOKENS, MAX_USD, check_book

BOOK_KEYS = {"kind", "positions", "collateral", "debt", "collateral_usd", "ltv_utilisation", "health", "path",
             "emode", "scale_to_caps"}
MIN_HEALTH, MAX_HEALTH = 1e-3, 1e6  # a synthetic book's health factors (debt = collateral x LT / health)
# Parameter fields that cap a book's exposure (whole tokens, 0 = no cap), in every adapter that has them.
SUPPLY_CAP_FIELD, BORROW_CAP_FIELD = "supply_cap_tokens", "borrow_cap_tokens"
CSV_COLUMNS = ("account", "protocol", "collateral_asset", "collateral_amount", "debt_asset", "debt_amount")
CSV_OPTIONAL = ("emode",)  # the account's Aave eMode id (0 = none), the same on every row of an account


@dataclass(frozen=True)
class ProtocolBook:
    """One protocol's positions: account ids and the dense :class:`~protocols.Book`."""

    protocol: str
    accounts: np.ndarray  # (n,) str
    book: Book

    @property
    def single_pair(self) -> bool:
        """True when every account holds one collateral asset and owes one debt asset."""
        return bool(((self.book.collateral_tokens > 0).sum(1) <= 1).all()
                    and ((self.book.debt_tokens > 0).sum(1) <= 1).all())


@dataclass(frozen=True)
class SyntheticDraws:
    """Parameter-free random draws of a synthetic book (common random numbers across candidates)."""

    collateral_assets: tuple[str, ...]
    debt_assets: tuple[str, ...]
    collateral_index: np.ndarray
    debt_index: np.ndarray
    collateral_usd: np.ndarray
    mode: str  # "ltv_utilisation" | "health"
    level: np.ndarray  # utilisation in (0, 1) or target health factor
    category: np.ndarray
    scale_to_caps: bool = False  # grow/shrink each collateral to its supply cap (the exposure the cap permits)


@dataclass(frozen=True)
class Dist:
    """A validated distribution table (``dist`` + its parameters + optional ``min``/``max`` clip)."""

    kind: str
    params: Mapping[str, float]
    lo: float
    hi: float

    def draw(self, rng: np.random.Generator, n: int) -> np.ndarray:
        p = self.params
        if self.kind == "lognormal":
            x = p["median"] * np.exp(p["sigma"] * rng.standard_normal(n))
        elif self.kind == "beta":
            x = rng.beta(p["a"], p["b"], n)
        elif self.kind == "uniform":
            x = rng.uniform(p["low"], p["high"], n)
        else:
            x = np.full(n, p["value"])
        return np.clip(x, self.lo, self.hi)


DIST_PARAMS = {"lognormal": ("median", "sigma"), "beta": ("a", "b"), "uniform": ("low", "high"),
               "constant": ("value",)}
MAX_LOGNORMAL_SIGMA = 10.0


def parse_dist(spec: Any, key: str, file: str, *, lo: float = -MAX_USD, hi: float = MAX_USD) -> Dist:
    """Check a distribution table; every number finite and within ``[lo, hi]`` (values and clips)."""
    if not isinstance(spec, Mapping) or "dist" not in spec:
        raise InputError("must be a table with 'dist' (lognormal | beta | uniform | constant)", file=file, field=key)

    def num(name: str, low: float = lo, lo_open: bool = False, high: float = hi) -> float:
        v = spec.get(name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"'{name}' must be a finite number, got {v!r}"[:200], file=file, field=f"{key}.{name}")
        if v < low or (lo_open and v == low) or v > high:
            raise InputError(f"'{name}' must be in {'(' if lo_open else '['}{low:g}, {high:g}], got {v:g}", file=file,
                             field=f"{key}.{name}")
        return float(v)

    d = spec["dist"]
    if not isinstance(d, str) or d not in DIST_PARAMS:
        raise InputError(f"unknown dist {d!r} (lognormal | beta | uniform | constant)"[:200], file=file,
                         field=f"{key}.dist")
    extra = set(spec) - set(DIST_PARAMS[d]) - {"dist", "min", "max"}
    if extra:
        raise InputError(f"unknown key '{sorted(extra)[0]}' for dist '{d}'", file=file, field=key)
    if d == "lognormal":
        params = {"median": num("median", 0.0, True), "sigma": num("sigma", 0.0, high=MAX_LOGNORMAL_SIGMA)}
    elif d == "beta":
        params = {"a": num("a", 0.0, True, 1e6), "b": num("b", 0.0, True, 1e6)}
    elif d == "uniform":
        params = {"low": num("low"), "high": num("high")}
        if params["high"] < params["low"]:
            raise InputError("high must be >= low", file=file, field=f"{key}.high")
    else:
        params = {"value": num("value")}
    clip_lo = num("min") if "min" in spec else -np.inf
    clip_hi = num("max") if "max" in spec else np.inf
    if clip_hi < clip_lo:
        raise InputError(f"max {clip_hi:g} must be >= min {clip_lo:g}", file=file, field=f"{key}.max")
    return Dist(d, MappingProxyType(params), clip_lo, clip_hi)


def _dist(spec: Any, key: str, file: str, rng: np.random.Generator, n: int) -> np.ndarray:
    """Check a distribution table and draw ``n`` values (see :func:`parse_dist`; used by the perp books too)."""
    return parse_dist(spec, key, file).draw(rng, n)


def _shares(spec: Any, key: str, file: str, allowed: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    if not isinstance(spec, Mapping) or not spec:
        raise InputError("must be a table of asset = share", file=file, field=key)
    names, weights = [], []
    for a, w in spec.items():
        if a not in allowed:
            raise InputError(f"'{a}' is not available here (known: {', '.join(allowed[:12])}"
                             f"{', ...' if len(allowed) > 12 else ''})", file=file, field=f"{key}.{a}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0 < w <= 1e12:
            raise InputError(f"share must be a positive finite number, got {w!r}"[:200], file=file,
                             field=f"{key}.{a}")
        names.append(a)
        weights.append(float(w))
    w = np.array(weights)
    return tuple(names), w / w.sum()


def draw_synthetic(raw: Mapping[str, Any], adapter: Adapter, file: str, key: str,
                   rng: np.random.Generator) -> SyntheticDraws:
    """Random draws of a synthetic book (no dependence on the candidate's parameters).

    Every key is checked (types, ranges, eMode ids against the snapshot, the memory the book will
    need) before anything is drawn or allocated.
    """
    extra = set(raw) - BOOK_KEYS
    if extra:
        raise InputError("unknown key", file=file, field=f"{key}.{sorted(extra)[0]}")
    n = raw.get("positions")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"must be a whole number >= 1, got {n!r}"[:200], file=file, field=f"{key}.positions")
    coll_names, coll_w = _shares(raw.get("collateral"), f"{key}.collateral", file, adapter.collateral_assets)
    debt_names, debt_w = _shares(raw.get("debt"), f"{key}.debt", file, adapter.debt_assets)
    check_book(n, len(coll_names), len(debt_names), file=file, field=f"{key}.positions")
    modes = [m for m in ("ltv_utilisation", "health") if m in raw]
    if len(modes) != 1:
        raise InputError("give exactly one of ltv_utilisation or health", file=file, field=key)
    if "collateral_usd" not in raw:
        raise InputError("missing", file=file, field=f"{key}.collateral_usd")
    coll_dist = parse_dist(raw["collateral_usd"], f"{key}.collateral_usd", file, lo=-MAX_POSITION_USD,
                           hi=MAX_POSITION_USD)
    mode = modes[0]
    level_dist = (parse_dist(raw[mode], f"{key}.{mode}", file, lo=-1e6, hi=1e6))
    emode = raw.get("emode", 0)
    if isinstance(emode, bool) or not isinstance(emode, int) or emode < 0:
        raise InputError(f"must be an eMode id (whole number), got {emode!r}"[:200], file=file, field=f"{key}.emode")
    if emode:
        if not hasattr(adapter, "emode_of"):
            raise InputError(f"{adapter.name} has no eMode categories (use 0)", file=file, field=f"{key}.emode")
        try:
            adapter.emode_of(emode)
        except ValueError as e:
            raise InputError(f"{e} in the snapshot", file=file, field=f"{key}.emode") from None
    scale = raw.get("scale_to_caps", False)
    if not isinstance(scale, bool):
        raise InputError(f"must be true or false, got {scale!r}"[:200], file=file, field=f"{key}.scale_to_caps")
    if scale:
        for a in coll_names:
            if not _cap(adapter, a, SUPPLY_CAP_FIELD):
                raise InputError(f"scale_to_caps needs a supply cap for {a} ({a}.{SUPPLY_CAP_FIELD} is 0 or absent: "
                                 "no cap); set it in [[protocols]] params", file=file, field=f"{key}.scale_to_caps")
    ci = rng.choice(len(coll_names), size=n, p=coll_w)
    di = rng.choice(len(debt_names), size=n, p=debt_w)
    coll_usd = coll_dist.draw(rng, n)
    if not ((coll_usd > 0) & (coll_usd <= MAX_POSITION_USD)).all():
        raise InputError(f"collateral sizes must lie in (0, {MAX_POSITION_USD:g}] USD (set min > 0, or a lower "
                         "median/sigma or a max)", file=file, field=f"{key}.collateral_usd")
    level = level_dist.draw(rng, n)
    if mode == "ltv_utilisation" and not ((level > 0) & (level <= 1)).all():
        raise InputError("utilisation must lie in (0, 1]", file=file, field=f"{key}.ltv_utilisation")
    if mode == "health" and not ((level >= MIN_HEALTH) & (level <= MAX_HEALTH)).all():
        raise InputError(f"health factors must lie in [{MIN_HEALTH:g}, {MAX_HEALTH:g}] (set min/max)", file=file,
                         field=f"{key}.health")
    return SyntheticDraws(coll_names, debt_names, ci, di, coll_usd, mode, level,
                          np.full(n, emode, dtype=np.int64), scale)


def _cap(adapter: Adapter, asset: str, field: str) -> float:
    """A cap in whole tokens from the adapter's parameters (0.0: none)."""
    return float(adapter.params.get(f"{asset}.{field}", 0.0) or 0.0)


def cap_scale(draws: SyntheticDraws, adapter: Adapter, prices_usd: Mapping[str, float]) -> np.ndarray:
    """Per position: the factor that brings each collateral asset's total to its supply cap under ``adapter``.

    The drawn book gives the *shape* (who holds what, how much of their borrowing power they use); with
    ``scale_to_caps`` its size per collateral asset is the supply cap, the exposure the cap permits
    (every supplied token assumed to back borrowing as in the book). A cap is then a risk lever the search
    can move: a larger cap means more collateral to liquidate into the same market.
    """
    if not draws.scale_to_caps:
        return np.ones(draws.collateral_usd.shape[0])
    factor = np.ones(len(draws.collateral_assets))
    for c, a in enumerate(draws.collateral_assets):
        held_usd = float(draws.collateral_usd[draws.collateral_index == c].sum())
        cap = _cap(adapter, a, SUPPLY_CAP_FIELD)
        if held_usd > 0 and cap > 0:
            factor[c] = cap * prices_usd[a] / held_usd
    return factor[draws.collateral_index]


def apply_borrow_caps(book: Book, adapter: Adapter, prices: Prices) -> Book:
    """Scale down each debt asset's debts pro rata where their total exceeds the asset's borrow cap."""
    debt = book.debt_tokens
    scale = np.ones(len(book.debt_assets))
    for d, a in enumerate(book.debt_assets):
        cap = _cap(adapter, a, BORROW_CAP_FIELD)
        total = float(debt[:, d].sum())
        if cap > 0 and total > cap:
            scale[d] = cap / total
    if (scale == 1.0).all():
        return book
    return Book(book.collateral_assets, book.debt_assets, book.collateral_tokens, debt * scale[None, :],
                category=book.category)


def materialize(draws: SyntheticDraws, adapter: Adapter, current: Adapter, prices_usd: Mapping[str, float],
                protocol: str) -> ProtocolBook:
    """Token balances under ``adapter`` (the candidate); ``current`` fixes debts in ``health`` mode."""
    n = draws.collateral_usd.shape[0]
    pc = np.array([prices_usd[a] for a in draws.collateral_assets])
    pd = np.array([prices_usd[a] for a in draws.debt_assets])
    coll = np.zeros((n, len(draws.collateral_assets)))
    coll_usd = draws.collateral_usd * cap_scale(draws, adapter, prices_usd)
    coll[np.arange(n), draws.collateral_index] = coll_usd / pc[draws.collateral_index]
    unit_debt = np.zeros((n, len(draws.debt_assets)))
    unit_debt[np.arange(n), draws.debt_index] = 1.0 / pd[draws.debt_index]  # $1 of debt
    prices = Prices(pc, pd)
    probe = Book(draws.collateral_assets, draws.debt_assets, coll, unit_debt, category=draws.category)
    if draws.mode == "ltv_utilisation":
        debt_usd = draws.level * adapter.borrow_capacity_usd(probe, prices)
    else:
        # health with $1 of debt = Σ C·LT: the liquidation-weighted collateral under CURRENT params.
        debt_usd = current.health(probe, prices) / draws.level
    book = Book(draws.collateral_assets, draws.debt_assets, coll, unit_debt * debt_usd[:, None],
                category=draws.category)
    if draws.scale_to_caps:
        book = apply_borrow_caps(book, adapter, prices)
    return ProtocolBook(protocol, synthetic_account_ids(protocol, n), book)


@lru_cache(maxsize=16)
def synthetic_account_ids(protocol: str, n: int) -> np.ndarray:
    """``<protocol>-0 .. <protocol>-(n-1)``, read-only: every candidate of a search materializes the same
    synthetic book's ids, so they are formatted once."""
    ids = np.array([f"{protocol}-{i}" for i in range(n)])
    ids.flags.writeable = False
    return ids


def read_csv_book(path: Path, protocol: str, adapter: Adapter, known_assets: set[str],
                  text: str | None = None) -> ProtocolBook:
    """Explicit book: ``account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount[,emode]``.

    Several rows per account add up (several collaterals or debts). Rows whose ``protocol`` is not
    ``protocol`` (the scenario protocol's id, by default its adapter name) are skipped. Amounts are whole
    tokens. ``emode`` (optional, integer >= 0, 0 = none) is the account's Aave eMode category, the same on
    every row of the account; the adapter must know it. The file is read through
    :func:`optimizer.io.read_text` (or given as ``text``). Errors name the file, the line and the column.
    """
    import io

    from ..io import read_text

    file = str(path)
    if text is None:
        text = read_text(path, label=file)
    reader = csv.DictReader(io.StringIO(text, newline=""))
    try:
        header = reader.fieldnames or []
    except csv.Error as e:
        raise InputError(f"malformed CSV ({e})", file=file, field="line 1") from None
    missing = [c for c in CSV_COLUMNS if c not in header]
    if missing:
        raise InputError(f"missing column '{missing[0]}' (need {', '.join(CSV_COLUMNS)}; optional "
                         f"{', '.join(CSV_OPTIONAL)})", file=file)
    has_emode = "emode" in header
    accounts: dict[str, int] = {}
    emode: dict[int, tuple[int, int]] = {}  # account index -> (eMode id, first line)
    coll: dict[tuple[int, str], float] = {}
    debt: dict[tuple[int, str], float] = {}
    try:
        for row in reader:
            line = reader.line_num
            if None in row or None in row.values():  # more / fewer fields than the header
                raise InputError(f"expected {len(header)} fields like the header, got "
                                 f"{'more' if None in row else 'fewer'}", file=file, field=f"line {line}")
            if row["protocol"] != protocol:
                continue
            acct = (row["account"] or "").strip()
            if not acct:
                raise InputError("empty account", file=file, field=f"line {line}: account")
            idx = accounts.setdefault(acct, len(accounts))
            if has_emode:
                raw_e = (row["emode"] or "").strip() or "0"
                if not raw_e.isdigit():
                    raise InputError(f"must be an eMode id (a whole number >= 0), got '{raw_e}'", file=file,
                                     field=f"line {line}: emode")
                e_id = int(raw_e)
                if idx in emode and emode[idx][0] != e_id:
                    raise InputError(f"account '{acct}' has eMode {emode[idx][0]} on line {emode[idx][1]}; an "
                                     f"account has one eMode", file=file, field=f"line {line}: emode")
                emode.setdefault(idx, (e_id, line))
            for col, amount_col, bucket, allowed in (
                ("collateral_asset", "collateral_amount", coll, adapter.held_collateral_assets),
                ("debt_asset", "debt_amount", debt, adapter.held_debt_assets),
            ):
                asset = (row[col] or "").strip()
                raw_amount = (row[amount_col] or "").strip()
                if not asset and not raw_amount:
                    continue
                if asset not in allowed:
                    raise InputError(f"'{asset}' is not a {col.split('_')[0]} asset of {protocol}", file=file,
                                     field=f"line {line}: {col}")
                if market_asset(adapter, asset) not in known_assets:
                    raise InputError(f"asset '{asset}' has no price model in the scenario", file=file,
                                     field=f"line {line}: {col}")
                try:
                    amount = float(raw_amount)
                except ValueError:
                    raise InputError(f"not a number: '{raw_amount}'", file=file,
                                     field=f"line {line}: {amount_col}") from None
                if not math.isfinite(amount) or not 0 <= amount <= MAX_TOKENS:
                    raise InputError(f"must be a finite amount in [0, {MAX_TOKENS:g}] tokens, got {raw_amount}",
                                     file=file, field=f"line {line}: {amount_col}")
                bucket[(idx, asset)] = bucket.get((idx, asset), 0.0) + amount
    except csv.Error as e:
        raise InputError(f"malformed CSV ({e})", file=file, field=f"line {reader.line_num}") from None
    if not accounts:
        raise InputError(f"no rows for protocol '{protocol}' (empty book)", file=file)
    category = np.array([emode.get(i, (0, 0))[0] for i in range(len(accounts))], dtype=np.int64)
    for e_id in np.unique(category).tolist():  # the first line of the first account in an unknown eMode
        try:
            adapter.check_categories(np.array([e_id]))
        except ValueError as e:
            first = min(line for e2, line in emode.values() if e2 == e_id)
            raise InputError(str(e), file=file, field=f"line {first}: emode") from None
    c_assets = tuple(a for a in adapter.held_collateral_assets if any(k[1] == a for k in coll))
    d_assets = tuple(a for a in adapter.held_debt_assets if any(k[1] == a for k in debt))
    if not d_assets:
        raise InputError("no account has debt (empty book)", file=file)
    ct = np.zeros((len(accounts), len(c_assets)))
    dt = np.zeros((len(accounts), len(d_assets)))
    for (i, a), v in coll.items():
        ct[i, c_assets.index(a)] = v
    for (i, a), v in debt.items():
        dt[i, d_assets.index(a)] = v
    return ProtocolBook(protocol, np.array(list(accounts)), Book(c_assets, d_assets, ct, dt, category=category))


def market_asset(adapter: Adapter, asset: str) -> str:
    """The priced asset behind a book column (Maker ilk → its collateral token): ``adapter.priced_asset``."""
    return adapter.priced_asset(asset)
