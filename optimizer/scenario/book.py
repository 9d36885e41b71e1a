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
from pathlib import Path
from typing import Any

import numpy as np

from protocols import Adapter, Book, Prices

from ..errors import InputError

BOOK_KEYS = {"kind", "positions", "collateral", "debt", "collateral_usd", "ltv_utilisation", "health", "path",
             "emode"}
CSV_COLUMNS = ("account", "protocol", "collateral_asset", "collateral_amount", "debt_asset", "debt_amount")


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


def _dist(spec: Any, key: str, file: str, rng: np.random.Generator, n: int) -> np.ndarray:
    if not isinstance(spec, Mapping) or "dist" not in spec:
        raise InputError("must be a table with 'dist' (lognormal | beta | uniform | constant)", file=file, field=key)

    def num(name: str, lo: float = -math.inf, lo_open: bool = False) -> float:
        v = spec.get(name)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise InputError(f"'{name}' must be a finite number, got {v!r}", file=file, field=f"{key}.{name}")
        if v < lo or (lo_open and v == lo):
            raise InputError(f"'{name}' must be {'>' if lo_open else '>='} {lo:g}, got {v:g}", file=file,
                             field=f"{key}.{name}")
        return float(v)

    d = spec["dist"]
    allowed = {"lognormal": {"median", "sigma"}, "beta": {"a", "b"}, "uniform": {"low", "high"},
               "constant": {"value"}}
    if d not in allowed:
        raise InputError(f"unknown dist '{d}' (lognormal | beta | uniform | constant)", file=file,
                         field=f"{key}.dist")
    extra = set(spec) - allowed[d] - {"dist", "min", "max"}
    if extra:
        raise InputError(f"unknown key '{sorted(extra)[0]}' for dist '{d}'", file=file, field=key)
    if d == "lognormal":
        x = num("median", 0, True) * np.exp(num("sigma", 0) * rng.standard_normal(n))
    elif d == "beta":
        x = rng.beta(num("a", 0, True), num("b", 0, True), n)
    elif d == "uniform":
        lo, hi = num("low"), num("high")
        if hi < lo:
            raise InputError("high must be >= low", file=file, field=f"{key}.high")
        x = rng.uniform(lo, hi, n)
    else:
        x = np.full(n, num("value"))
    lo = spec.get("min", -np.inf)
    hi = spec.get("max", np.inf)
    return np.clip(x, lo, hi)


def _shares(spec: Any, key: str, file: str, allowed: tuple[str, ...]) -> tuple[tuple[str, ...], np.ndarray]:
    if not isinstance(spec, Mapping) or not spec:
        raise InputError("must be a table of asset = share", file=file, field=key)
    names, weights = [], []
    for a, w in spec.items():
        if a not in allowed:
            raise InputError(f"'{a}' is not available here (known: {', '.join(allowed[:12])}"
                             f"{', ...' if len(allowed) > 12 else ''})", file=file, field=f"{key}.{a}")
        if isinstance(w, bool) or not isinstance(w, (int, float)) or not w > 0:
            raise InputError(f"share must be a positive number, got {w!r}", file=file, field=f"{key}.{a}")
        names.append(a)
        weights.append(float(w))
    w = np.array(weights)
    return tuple(names), w / w.sum()


def draw_synthetic(raw: Mapping[str, Any], adapter: Adapter, file: str, key: str,
                   rng: np.random.Generator) -> SyntheticDraws:
    """Random draws of a synthetic book (no dependence on the candidate's parameters)."""
    extra = set(raw) - BOOK_KEYS
    if extra:
        raise InputError("unknown key", file=file, field=f"{key}.{sorted(extra)[0]}")
    n = raw.get("positions")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"must be a whole number >= 1, got {n!r}", file=file, field=f"{key}.positions")
    coll_names, coll_w = _shares(raw.get("collateral"), f"{key}.collateral", file, adapter.collateral_assets)
    debt_names, debt_w = _shares(raw.get("debt"), f"{key}.debt", file, adapter.debt_assets)
    modes = [m for m in ("ltv_utilisation", "health") if m in raw]
    if len(modes) != 1:
        raise InputError("give exactly one of ltv_utilisation or health", file=file, field=key)
    ci = rng.choice(len(coll_names), size=n, p=coll_w)
    di = rng.choice(len(debt_names), size=n, p=debt_w)
    if "collateral_usd" not in raw:
        raise InputError("missing", file=file, field=f"{key}.collateral_usd")
    coll_usd = _dist(raw["collateral_usd"], f"{key}.collateral_usd", file, rng, n)
    if not (coll_usd > 0).all():
        raise InputError("collateral sizes must be positive (set min > 0)", file=file, field=f"{key}.collateral_usd")
    mode = modes[0]
    level = _dist(raw[mode], f"{key}.{mode}", file, rng, n)
    if mode == "ltv_utilisation" and not ((level > 0) & (level <= 1)).all():
        raise InputError("utilisation must lie in (0, 1]", file=file, field=f"{key}.ltv_utilisation")
    if mode == "health" and not (level > 0).all():
        raise InputError("health factors must be positive", file=file, field=f"{key}.health")
    emode = raw.get("emode", 0)
    if isinstance(emode, bool) or not isinstance(emode, int) or emode < 0:
        raise InputError(f"must be an eMode id (whole number), got {emode!r}", file=file, field=f"{key}.emode")
    return SyntheticDraws(coll_names, debt_names, ci, di, coll_usd, mode, level,
                          np.full(n, emode, dtype=np.int64))


def materialize(draws: SyntheticDraws, adapter: Adapter, current: Adapter, prices_usd: Mapping[str, float],
                protocol: str) -> ProtocolBook:
    """Token balances under ``adapter`` (the candidate); ``current`` fixes debts in ``health`` mode."""
    n = draws.collateral_usd.shape[0]
    pc = np.array([prices_usd[a] for a in draws.collateral_assets])
    pd = np.array([prices_usd[a] for a in draws.debt_assets])
    coll = np.zeros((n, len(draws.collateral_assets)))
    coll[np.arange(n), draws.collateral_index] = draws.collateral_usd / pc[draws.collateral_index]
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
    return ProtocolBook(protocol, np.array([f"{protocol}-{i}" for i in range(n)]), book)


def read_csv_book(path: Path, protocol: str, adapter: Adapter, known_assets: set[str]) -> ProtocolBook:
    """Explicit book: ``account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount``.

    Several rows per account add up (several collaterals or debts). Rows of other protocols are
    skipped. Amounts are whole tokens. Errors name the file, the line and the column.
    """
    import io

    from ..io import read_text

    file = str(path)
    fh = io.StringIO(read_text(path, label=file), newline="")  # regular file, size cap, UTF-8
    with fh:
        reader = csv.DictReader(fh)
        missing = [c for c in CSV_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise InputError(f"missing column '{missing[0]}' (need {', '.join(CSV_COLUMNS)})", file=file)
        accounts: dict[str, int] = {}
        coll: dict[tuple[int, str], float] = {}
        debt: dict[tuple[int, str], float] = {}
        for line, row in enumerate(reader, start=2):
            if row["protocol"] != protocol:
                continue
            acct = row["account"].strip()
            if not acct:
                raise InputError("empty account", file=file, field=f"line {line}: account")
            idx = accounts.setdefault(acct, len(accounts))
            for col, amount_col, bucket, allowed in (
                ("collateral_asset", "collateral_amount", coll, adapter.collateral_assets),
                ("debt_asset", "debt_amount", debt, adapter.debt_assets),
            ):
                asset = row[col].strip()
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
                if not math.isfinite(amount) or amount < 0:
                    raise InputError(f"must be a finite amount >= 0, got {raw_amount}", file=file,
                                     field=f"line {line}: {amount_col}")
                bucket[(idx, asset)] = bucket.get((idx, asset), 0.0) + amount
    if not accounts:
        raise InputError(f"no rows for protocol '{protocol}' (empty book)", file=file)
    c_assets = tuple(a for a in adapter.collateral_assets if any(k[1] == a for k in coll))
    d_assets = tuple(a for a in adapter.debt_assets if any(k[1] == a for k in debt))
    if not d_assets:
        raise InputError("no account has debt (empty book)", file=file)
    ct = np.zeros((len(accounts), len(c_assets)))
    dt = np.zeros((len(accounts), len(d_assets)))
    for (i, a), v in coll.items():
        ct[i, c_assets.index(a)] = v
    for (i, a), v in debt.items():
        dt[i, d_assets.index(a)] = v
    return ProtocolBook(protocol, np.array(list(accounts)), Book(c_assets, d_assets, ct, dt))


def market_asset(adapter: Adapter, asset: str) -> str:
    """The priced asset behind a book column (Maker ilk → its collateral token)."""
    underlying = getattr(adapter, "underlying", None)
    return underlying.get(asset, asset) if underlying else asset
