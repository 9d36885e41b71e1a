"""Perp position books: an explicit positions CSV, or synthetic books drawn from distributions.

Both produce a :class:`PerpPositions`: the account names and the dense :class:`protocols.PerpBook`
one perp venue (a :class:`protocols.PerpAdapter`) reads. Everything is validated here, once, when the
scenario loads; every bad value is a one-line :class:`~optimizer.errors.InputError` naming the file,
the line (or key) and the rule.

Positions CSV
-------------
``account,venue,market,side,size,entry_price,margin,margin_mode`` (the unit-suffixed names
``size_base``, ``entry_price_usd``, ``margin_usd`` are accepted too):

- ``venue``: a perp adapter name (``protocols.PERP_ADAPTERS``); rows of other perp venues are
  skipped (one file may hold several venues' positions), an unknown venue is an error;
- ``market``: one of the venue's markets (``cascade protocols``); ``side``: ``long`` or ``short``;
- ``size``: base units (BTC, ETH), > 0; ``entry_price``: USD, > 0;
- ``margin``: USD. On an ``isolated`` row the position's isolated margin (> 0, at most the entry
  notional: leverage >= 1). On a ``cross`` row the account's cross collateral (wallet balance not
  allocated to isolated margin), repeated on each of the account's cross rows, which must agree; it
  may exceed the notional (a wallet larger than its positions);
- leverage at entry (``size * entry_price / margin``) may not exceed the venue's maximum at that
  notional (``PerpAdapter.max_leverage``, with the file's own open interest where the venue scales
  margin with it); a cross account's collateral must cover the initial margin of all its positions.

Synthetic books
---------------
Drawn in two stages, like the lending books of :mod:`optimizer.scenario.book`, so candidates share
common random numbers: :func:`draw_perp_synthetic` makes every random draw (market, side, entry
notional, entry price offset, margin mode, leverage level) from the scenario's one Generator, with no
dependence on the venue's tunable parameters; :func:`materialize_perp` turns the draws into a book
under one candidate's parameters. Leverage is given in exactly one of three ways:

- ``leverage``: a distribution of leverage (>= 1). Margins are ``notional / leverage``; a candidate
  whose maximum leverage at that notional is lower caps it (the trader must post more margin).
- ``leverage_fraction``: a distribution in (0, 1]: each trader uses this share of the candidate's
  maximum leverage at its notional (at least 1x), so a candidate offering more leverage gets more
  levered accounts.
- ``calibration``: a liquidation-map calibration file (``data/flows/*.json``, written by
  ``tools/calibrate_perp_flows.py``). Each side's liquidation distances ``d`` (fall for longs, rise
  for shorts, from the mark at the start) are drawn so that the book's static liquidation map has
  the fitted shape: nothing within the dead band ``d0``, then ``rho`` of the side's open interest
  per unit of price move (the fitted slope, extrapolated linearly up to a 100 % move); the notional
  left over is unlevered (1x). Margins are solved from the CURRENT parameters so that each position's
  closed-form liquidation price is exactly ``mark * (1 - side * d)``; a candidate keeps those margins
  (it changes how close the book is to liquidation), except that leverage above the candidate's
  maximum is capped as above.

Position notionals come from ``size_usd`` (a distribution of relative sizes) rescaled so that each
market and side carries exactly its target open interest: ``open_interest_usd[market] * long_share``
of longs and the rest shorts, at entry. Every position is its own account (cross rows are one-position
cross accounts). Distributions are those of :mod:`optimizer.scenario.book` (``lognormal``, ``beta``,
``uniform``, ``constant``, with optional ``min``/``max``).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from protocols import CROSS, ISOLATED, PERP_ADAPTERS, OpenInterest, PerpAdapter, PerpBook

from ..errors import InputError
from ..io import read_text
from .book import _dist

PERP_CSV_COLUMNS = ("account", "venue", "market", "side", "size", "entry_price", "margin", "margin_mode")
_CSV_ALIASES = {"size_base": "size", "entry_price_usd": "entry_price", "margin_usd": "margin"}
PERP_SYNTHETIC_KEYS = frozenset({"kind", "positions", "open_interest_usd", "long_share", "size_usd", "leverage",
                                 "leverage_fraction", "calibration", "entry_offset", "cross_share"})
LEVERAGE_MODES = ("leverage", "leverage_fraction", "calibration")
_LEV_RTOL = 1e-9  # leverage exactly at the venue's maximum, written with rounded decimals, is accepted

Resolver = Callable[[str, str], Path]


@dataclass(frozen=True)
class PerpPositions:
    """One perp venue's positions: account names (indexed by ``book.account``) and the dense book."""

    venue: str
    accounts: np.ndarray  # (n_accounts,) str
    book: PerpBook


# --------------------------------------------------------------------------------------------
# Positions CSV
# --------------------------------------------------------------------------------------------


def csv_columns(text: str, file: str, required: tuple[str, ...], aliases: Mapping[str, str] | None = None
                ) -> tuple[np.ndarray, dict[str, list[str]]]:
    """Parse CSV text into string columns (header names lower-cased, ``aliases`` applied).

    Returns the line number of each data row and ``{column: [values]}``; blank lines are skipped.
    Missing, duplicate or extra-width fields are one-line :class:`InputError` naming the line.
    """
    aliases = aliases or {}
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader, None)
        while header is not None and not any(c.strip() for c in header):
            header = next(reader, None)
        if header is None:
            raise InputError(f"empty file (expected a header line: {','.join(required)})", file=file)
        names = [aliases.get(h.strip().lower(), h.strip().lower()) for h in header]
        missing = [c for c in required if c not in names]
        if missing:
            raise InputError(f"missing column '{missing[0]}' (need {','.join(required)})", file=file,
                             field=f"line {reader.line_num}")
        dup = sorted({n for n in names if n in required and names.count(n) > 1})
        if dup:
            raise InputError(f"column '{dup[0]}' given twice", file=file, field=f"line {reader.line_num}")
        where = {c: names.index(c) for c in required}
        cols: dict[str, list[str]] = {c: [] for c in required}
        lines: list[int] = []
        for row in reader:
            if not any(c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise InputError(f"expected {len(header)} fields, got {len(row)}", file=file,
                                 field=f"line {reader.line_num}")
            lines.append(reader.line_num)
            for c, i in where.items():
                cols[c].append(row[i].strip())
    except csv.Error as e:
        raise InputError(f"malformed CSV ({e})", file=file, field=f"line {reader.line_num}") from None
    return np.asarray(lines, dtype=np.int64), cols


def _err(file: str, lines: np.ndarray, i: int, col: str, rule: str) -> InputError:
    return InputError(rule, file=file, field=f"line {int(lines[i])}, column {col}")


def parse_numbers(raw: list[str], col: str, lines: np.ndarray, file: str) -> np.ndarray:
    """Finite floats from strings; the first bad row is named (not a number, NaN or inf)."""
    try:
        x = np.array(raw, dtype=np.float64) if raw else np.zeros(0)
    except ValueError:
        for i, s in enumerate(raw):
            try:
                float(s)
            except ValueError:
                raise _err(file, lines, i, col, f"not a number: '{s}'") from None
        raise  # pragma: no cover - the row pass always finds the culprit
    bad = np.flatnonzero(~np.isfinite(x))
    if bad.size:
        i = int(bad[0])
        raise _err(file, lines, i, col, f"must be a finite number, got '{raw[i]}'")
    return x


def _first(mask: np.ndarray) -> int | None:
    idx = np.flatnonzero(mask)
    return int(idx[0]) if idx.size else None


def read_perp_csv(path: str | Path, venue: str, adapter: PerpAdapter, *, label: str | None = None) -> PerpPositions:
    """Read a positions CSV for one perp venue (format: module docstring).

    Parameters
    ----------
    path : str or Path
        The CSV file, read through :func:`optimizer.io.read_text` (regular UTF-8 file, size cap).
    venue : str
        The venue whose rows are kept (``adapter.name`` of a perp adapter).
    adapter : PerpAdapter
        The venue's rules under the scenario's current parameters (markets, max leverage).
    label : str, optional
        How the file is named in messages (default: the path).

    Returns
    -------
    PerpPositions
        ``book.markets`` is ``adapter.markets``; accounts are renumbered in sorted name order.

    Raises
    ------
    InputError
        ``file: line N, column C: rule`` for every bad value (unknown venue or market, side not
        long/short, margin mode not isolated/cross, NaN/inf or non-numbers, size or entry price
        <= 0, negative margin, isolated margin above the notional (leverage < 1), leverage above the
        venue's maximum at that notional, cross rows disagreeing on an account's collateral, cross
        collateral below the account's initial margin, two cross positions of one account in one
        market); missing columns or an empty book.
    """
    file = label or str(path)
    text = read_text(path, label=label)
    lines, cols = csv_columns(text, file, PERP_CSV_COLUMNS, _CSV_ALIASES)
    venues = np.array(cols["venue"], dtype=object)
    known = np.isin(venues, list(PERP_ADAPTERS)) if venues.size else np.zeros(0, bool)
    i = _first(~known)
    if i is not None:
        raise _err(file, lines, i, "venue", f"unknown perp venue '{venues[i]}' (known: {', '.join(sorted(PERP_ADAPTERS))})")
    keep = venues == venue
    if not keep.any():
        raise InputError(f"no rows for venue '{venue}' (empty book)", file=file)
    lines = lines[keep]
    rows = {c: [v for v, k in zip(vals, keep, strict=True) if k] for c, vals in cols.items()}

    account = np.array(rows["account"], dtype=object)
    i = _first(account == "")
    if i is not None:
        raise _err(file, lines, i, "account", "empty account")
    market_names = np.array(rows["market"], dtype=object)
    ok = np.isin(market_names, list(adapter.markets))
    i = _first(~ok)
    if i is not None:
        raise _err(file, lines, i, "market", f"'{market_names[i]}' is not a market of {venue} "
                                             f"(known: {', '.join(adapter.markets)})")
    market = np.array([adapter.markets.index(m) for m in rows["market"]], dtype=np.int64)
    side_raw = np.array([s.lower() for s in rows["side"]], dtype=object)
    i = _first(~np.isin(side_raw, ["long", "short"]))
    if i is not None:
        raise _err(file, lines, i, "side", f"must be long or short, got '{rows['side'][i]}'")
    side = np.where(side_raw == "long", 1, -1).astype(np.int8)
    mode_raw = np.array([s.lower() for s in rows["margin_mode"]], dtype=object)
    i = _first(~np.isin(mode_raw, ["isolated", "cross"]))
    if i is not None:
        raise _err(file, lines, i, "margin_mode", f"must be isolated or cross, got '{rows['margin_mode'][i]}'")
    cross = mode_raw == "cross"
    i = _first(cross) if not adapter.supports_cross_margin else None
    if i is not None:
        raise _err(file, lines, i, "margin_mode", f"{venue} has isolated positions only")

    size = parse_numbers(rows["size"], "size", lines, file)
    entry = parse_numbers(rows["entry_price"], "entry_price", lines, file)
    margin = parse_numbers(rows["margin"], "margin", lines, file)
    for x, col, rule in ((size, "size", "must be > 0 (base units of an open position)"),
                         (entry, "entry_price", "must be > 0 (USD)")):
        i = _first(~(x > 0))
        if i is not None:
            raise _err(file, lines, i, col, f"{rule}, got {x[i]:g}")
    i = _first(margin < 0)
    if i is not None:
        raise _err(file, lines, i, "margin", f"must be >= 0 (USD), got {margin[i]:g}")

    notional = size * entry
    iso = ~cross
    i = _first(iso & (margin > notional))
    if i is not None:
        raise _err(file, lines, i, "margin", f"isolated margin {margin[i]:g} USD is above the notional "
                                             f"{notional[i]:g} USD (leverage {notional[i] / margin[i]:.4g} < 1)")
    oi = _entry_open_interest(market, side, notional, len(adapter.markets))
    max_lev = np.asarray(adapter.max_leverage(market, side, notional, oi), dtype=np.float64)
    i = _first(~np.isfinite(max_lev) | ~(max_lev > 0))
    if i is not None:
        raise _err(file, lines, i, "size", f"notional {notional[i]:g} USD is above the largest position "
                                           f"{venue} allows in {market_names[i]}")
    with np.errstate(divide="ignore"):
        lev = np.where(margin > 0, notional / margin, np.inf)
    i = _first(iso & (lev > max_lev * (1 + _LEV_RTOL)))
    if i is not None:
        shown = "infinite (margin 0)" if not np.isfinite(lev[i]) else f"{lev[i]:.6g}x"
        raise _err(file, lines, i, "margin", f"leverage {shown} is above {venue}'s maximum "
                                             f"{max_lev[i]:g}x at {notional[i]:g} USD of notional")
    if cross.any():
        _check_cross(file, lines, account, market, cross, margin, notional / max_lev, market_names)
    try:
        book = PerpBook.from_rows(tuple(adapter.markets), market, side, size, entry, margin,
                                  np.where(cross, CROSS, ISOLATED).astype(np.int8), account.astype(str))
    except ValueError as e:  # pragma: no cover - every rule PerpBook enforces is checked above
        raise InputError(str(e), file=file) from None
    return PerpPositions(venue, np.unique(account.astype(str)), book)


def _entry_open_interest(market: np.ndarray, side: np.ndarray, notional: np.ndarray, n_markets: int) -> OpenInterest:
    long_ = side > 0
    return OpenInterest(np.bincount(market, weights=np.where(long_, notional, 0.0), minlength=n_markets),
                        np.bincount(market, weights=np.where(long_, 0.0, notional), minlength=n_markets))


def _check_cross(file: str, lines: np.ndarray, account: np.ndarray, market: np.ndarray, cross: np.ndarray,
                 collateral: np.ndarray, initial_margin: np.ndarray, market_names: np.ndarray) -> None:
    """Cross rows: one collateral per account, one position per market, collateral >= initial margin."""
    idx = np.flatnonzero(cross)
    names, acct = np.unique(account[idx].astype(str), return_inverse=True)
    acct = acct.reshape(-1)
    first = np.full(names.size, idx.size)
    np.minimum.at(first, acct, np.arange(idx.size))
    ref = collateral[idx][first[acct]]
    k = _first(collateral[idx] != ref)
    if k is not None:
        j = idx[k]
        raise _err(file, lines, j, "margin", f"cross collateral {collateral[j]:g} USD of account '{account[j]}' "
                                             f"differs from {ref[k]:g} USD on line {int(lines[idx[first[acct[k]]]])}")
    key = acct * (int(market.max()) + 1) + market[idx]
    _, first_key = np.unique(key, return_index=True)
    dup = np.ones(idx.size, bool)
    dup[first_key] = False
    k = _first(dup)
    if k is not None:
        j = idx[k]
        raise _err(file, lines, j, "market", f"account '{account[j]}' has a second cross position in "
                                             f"{market_names[j]} (one position per market in one-way mode)")
    need = np.bincount(acct, weights=initial_margin[idx], minlength=names.size)
    have = collateral[idx][first]
    a = _first(have < need * (1 - _LEV_RTOL))
    if a is not None:
        j = idx[first[a]]
        raise _err(file, lines, j, "margin", f"cross collateral {have[a]:g} USD of account '{names[a]}' is below "
                                             f"the initial margin {need[a]:g} USD of its positions (leverage above "
                                             "the venue's maximum)")


# --------------------------------------------------------------------------------------------
# Synthetic books
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LiquidationMap:
    """One side's calibrated static liquidation map (see :mod:`optimizer.scenario.perp_calibration`).

    ``liquidated share of the side's open interest = slope * max(move - dead_band, 0)``, for a move
    (fall for longs, rise for shorts) from the current mark.
    """

    dead_band: float  # relative move below which nothing liquidates
    slope: float  # share of open interest liquidated per unit of relative move beyond the dead band

    @property
    def levered_share(self) -> float:
        """Share of the side's notional whose liquidation distance lies in the map (the rest is 1x)."""
        return min(1.0, self.slope * (1.0 - self.dead_band))

    @property
    def max_distance(self) -> float:
        """Largest liquidation distance of the levered share (1 unless the slope is steeper than 1/(1-d0))."""
        return self.dead_band + self.levered_share / self.slope


@dataclass(frozen=True)
class PerpSyntheticDraws:
    """Parameter-free random draws of a synthetic perp book (common random numbers across candidates).

    ``level`` is the leverage (mode ``leverage``), the share of the maximum leverage
    (``leverage_fraction``) or the liquidation distance, NaN for unlevered rows (``calibration``).
    """

    venue: str
    markets: tuple[str, ...]
    market: np.ndarray  # (n,) int64, index into markets (= adapter.markets)
    side: np.ndarray  # (n,) int8, +1 long / -1 short
    notional_usd: np.ndarray  # (n,) entry notional
    entry_log_offset: np.ndarray  # (n,) log(entry price / mark at the start)
    cross: np.ndarray  # (n,) bool
    mode: str
    level: np.ndarray  # (n,)

    @property
    def n_positions(self) -> int:
        return int(self.market.shape[0])


def _number(raw: Mapping[str, Any], key: str, file: str, field: str, lo: float, hi: float, default: float) -> float:
    v = raw.get(key, default)
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise InputError(f"must be a number in [{lo:g}, {hi:g}], got {v!r}", file=file, field=field)
    return float(v)


def draw_perp_synthetic(raw: Mapping[str, Any], adapter: PerpAdapter, file: str, key: str,
                        rng: np.random.Generator, resolve: Resolver | None = None,
                        maps: Mapping[str, LiquidationMap] | None = None) -> PerpSyntheticDraws:
    """Validate a ``kind = "perp_synthetic"`` book table and make all its random draws.

    Parameters
    ----------
    raw : mapping
        The book table (keys: module docstring and ``docs/scenario_format.md``).
    adapter : PerpAdapter
        The venue under the scenario's current parameters (markets; the largest notional it allows).
    file, key : str
        The scenario file and the table's key, named in every error.
    rng : np.random.Generator
        The scenario's book Generator; the only source of randomness.
    resolve : callable, optional
        ``(relative path, key) -> Path`` for the calibration file (default: next to ``file``, then
        the bundled ``data/``).
    maps : mapping, optional
        The calibration file's maps, already read (``load_scenario`` reads them once, so ``prepare``
        does no I/O); without them a ``calibration`` book reads its file here.

    Returns
    -------
    PerpSyntheticDraws
        Independent of the venue's tunable parameters: the same seed gives the same draws under
        every candidate.
    """
    extra = set(raw) - PERP_SYNTHETIC_KEYS
    if extra:
        raise InputError(f"unknown key (allowed: {', '.join(sorted(PERP_SYNTHETIC_KEYS))})", file=file,
                         field=f"{key}.{sorted(extra)[0]}")
    n = raw.get("positions")
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise InputError(f"must be a whole number >= 1, got {n!r}", file=file, field=f"{key}.positions")
    from .limits import check_book

    check_book(n, 1, 1, file=file, field=f"{key}.positions")  # the memory the book will need, before drawing it
    oi = raw.get("open_interest_usd")
    if not isinstance(oi, Mapping) or not oi:
        raise InputError("must be a table of market = open interest in USD (long + short, at entry)", file=file,
                         field=f"{key}.open_interest_usd")
    target = np.zeros(len(adapter.markets))
    for m, v in oi.items():
        if m not in adapter.markets:
            raise InputError(f"'{m}' is not a market of {adapter.name} (known: {', '.join(adapter.markets)})",
                             file=file, field=f"{key}.open_interest_usd.{m}")
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not v > 0:
            raise InputError(f"must be a positive number of USD, got {v!r}", file=file,
                             field=f"{key}.open_interest_usd.{m}")
        target[adapter.markets.index(m)] = float(v)
    long_share = _number(raw, "long_share", file, f"{key}.long_share", 0.0, 1.0, 0.5)
    cross_share = _number(raw, "cross_share", file, f"{key}.cross_share", 0.0, 1.0, 0.0)
    if cross_share > 0 and not adapter.supports_cross_margin:
        raise InputError(f"{adapter.name} has isolated positions only (cross_share must be 0)", file=file,
                         field=f"{key}.cross_share")
    modes = [m for m in LEVERAGE_MODES if m in raw]
    if len(modes) != 1:
        raise InputError(f"give exactly one of {', '.join(LEVERAGE_MODES)}", file=file, field=key)
    mode = modes[0]
    if mode == "calibration" and maps is None:
        maps = _calibration_maps(raw["calibration"], file, f"{key}.calibration", resolve)
    if "size_usd" not in raw:
        raise InputError("missing (a distribution of position sizes in USD, rescaled to the open interest)",
                         file=file, field=f"{key}.size_usd")

    # ---- draws (fixed order; none depends on the venue's parameters)
    market = rng.choice(len(target), size=n, p=target / target.sum()).astype(np.int64)
    side = np.where(rng.random(n) < long_share, 1, -1).astype(np.int8)
    weight = _dist(raw["size_usd"], f"{key}.size_usd", file, rng, n)
    if not (weight > 0).all():
        raise InputError("position sizes must be positive (set min > 0)", file=file, field=f"{key}.size_usd")
    offset = (_dist(raw["entry_offset"], f"{key}.entry_offset", file, rng, n) if "entry_offset" in raw
              else np.zeros(n))
    if not (np.abs(offset) < 1).all():
        raise InputError("entry offsets are log(entry / mark) and must lie in (-1, 1)", file=file,
                         field=f"{key}.entry_offset")
    cross = rng.random(n) < cross_share
    if mode == "calibration":
        assert maps is not None
        u, band = rng.random(n), rng.random(n)
        level = np.full(n, np.nan)
        for s, cal in ((1, maps["long"]), (-1, maps["short"])):
            rows = (side == s) & (band < cal.levered_share)
            level[rows] = cal.dead_band + u[rows] * (cal.max_distance - cal.dead_band)
    else:
        level = _dist(raw[mode], f"{key}.{mode}", file, rng, n)
        if mode == "leverage" and not (level >= 1).all():
            raise InputError("leverage must be >= 1 (set min = 1)", file=file, field=f"{key}.leverage")
        if mode == "leverage_fraction" and not ((level > 0) & (level <= 1)).all():
            raise InputError("a share of the maximum leverage must lie in (0, 1]", file=file,
                             field=f"{key}.leverage_fraction")

    # ---- notionals: each market and side carries exactly its target open interest
    side_target = np.stack([target * (1 - long_share), target * long_share])  # (2, M): shorts, longs
    group = market * 2 + (side > 0)
    total = np.bincount(group, weights=weight, minlength=2 * len(target))
    want = side_target.T.reshape(-1)  # index market*2 + is_long
    empty = np.flatnonzero((want > 0) & (total == 0))
    if empty.size:
        g = int(empty[0])
        raise InputError(f"no {'long' if g % 2 else 'short'} position was drawn in {adapter.markets[g // 2]}; "
                         "raise positions", file=file, field=f"{key}.positions")
    notional = weight * np.where(total[group] > 0, want[group] / np.where(total[group] > 0, total[group], 1.0), 0.0)
    oi_entry = _entry_open_interest(market, side, notional, len(adapter.markets))
    max_lev = np.asarray(adapter.max_leverage(market, side, notional, oi_entry), dtype=np.float64)
    bad = _first(~np.isfinite(max_lev))
    if bad is not None:
        raise InputError(f"a drawn position of {notional[bad]:g} USD in {adapter.markets[market[bad]]} is above the "
                         f"largest position {adapter.name} allows; lower size_usd (set max) or raise positions",
                         file=file, field=f"{key}.size_usd")
    return PerpSyntheticDraws(adapter.name, tuple(adapter.markets), market, side, notional, offset, cross, mode, level)


def _calibration_maps(spec: Any, file: str, field: str, resolve: Resolver | None) -> dict[str, LiquidationMap]:
    from ..snapshots import read_json
    from .config import resolve_path

    if not isinstance(spec, str) or not spec:
        raise InputError("must be the path of a liquidation-map calibration file (e.g. "
                         "\"flows/eth_usdt_perp_liquidation_map_2021-01.json\")", file=file, field=field)
    path = resolve(spec, field) if resolve else resolve_path(spec, Path(file).resolve().parent, file, field)
    return liquidation_maps(read_json(path), file=str(path))


def liquidation_maps(data: Any, *, file: str | None = None) -> dict[str, LiquidationMap]:
    """Both sides' :class:`LiquidationMap` from a calibration file's content (validated)."""
    if not isinstance(data, Mapping):
        raise InputError("must be a JSON object", file=file)
    out = {}
    for s in ("long", "short"):
        node = data.get(s)
        if not isinstance(node, Mapping):
            raise InputError("missing (an object with dead_band and slope_share_of_open_interest_per_unit_move)",
                             file=file, field=s)
        d0 = _number(node, "dead_band", file or "", f"{s}.dead_band", 0.0, 0.99, math.nan)
        slope = _number(node, "slope_share_of_open_interest_per_unit_move", file or "",
                        f"{s}.slope_share_of_open_interest_per_unit_move", 1e-9, 1e6, math.nan)
        out[s] = LiquidationMap(d0, slope)
    return out


def materialize_perp(draws: PerpSyntheticDraws, adapter: PerpAdapter, current: PerpAdapter,
                     prices_usd: Mapping[str, float]) -> PerpPositions:
    """The book under ``adapter`` (one candidate); ``current`` fixes the margins in ``calibration`` mode.

    Parameters
    ----------
    draws : PerpSyntheticDraws
        From :func:`draw_perp_synthetic`.
    adapter : PerpAdapter
        The candidate's rules (its maximum leverage caps every position).
    current : PerpAdapter
        The scenario's current rules (calibration mode solves margins under them).
    prices_usd : mapping
        Mark price at the start per base asset (``adapter.base_assets``, e.g. ``{"BTC": 60000}``); only
        the assets of markets the book trades are needed.

    Returns
    -------
    PerpPositions
        One account per position (``<venue>-<i>``); sizes ``notional / entry price`` with entry price
        ``mark * exp(entry_log_offset)``.
    """
    mark_by_market = np.full(len(adapter.markets), np.nan)
    for i in np.unique(draws.market):
        asset = adapter.base_assets[i]
        if asset not in prices_usd:
            raise ValueError(f"no price for {asset}, the base asset of {adapter.markets[i]}")
        mark_by_market[i] = float(prices_usd[asset])
    mark = mark_by_market[draws.market]
    entry = mark * np.exp(draws.entry_log_offset)
    notional = draws.notional_usd
    size = notional / entry
    mode = np.where(draws.cross, CROSS, ISOLATED).astype(np.int8)
    n = draws.n_positions
    account = np.arange(n)
    oi_entry = _entry_open_interest(draws.market, draws.side, notional, len(adapter.markets))
    max_lev = np.asarray(adapter.max_leverage(draws.market, draws.side, notional, oi_entry), dtype=np.float64)
    max_lev = np.where(np.isfinite(max_lev) & (max_lev >= 1), max_lev, 1.0)  # beyond the candidate's cap: 1x
    if draws.mode == "leverage":
        lev = np.minimum(draws.level, max_lev)
        margin = notional / lev
    elif draws.mode == "leverage_fraction":
        lev = np.maximum(draws.level * max_lev, 1.0)
        margin = notional / lev
    else:
        margin = np.maximum(_margin_for_distance(draws, current, mark, entry, size), notional / max_lev)
    book = PerpBook(draws.markets, draws.market, draws.side, size, entry, np.where(draws.cross, 0.0, margin), mode,
                    account, np.where(draws.cross, margin, 0.0))
    return PerpPositions(draws.venue, _account_names(draws.venue, n), book)


@lru_cache(maxsize=16)
def _account_names(venue: str, n: int) -> np.ndarray:
    """``<venue>-<i>`` for i < n, read-only and shared by every candidate's book: the names do not depend on
    the candidate, and formatting them was a measured share of ``bind`` (0.6 ms per 2,000 positions)."""
    out = np.array([f"{venue}-{i}" for i in range(n)])
    out.flags.writeable = False
    return out


def _margin_for_distance(draws: PerpSyntheticDraws, current: PerpAdapter, mark: np.ndarray, entry: np.ndarray,
                         size: np.ndarray) -> np.ndarray:
    """Margin (USD) that puts each position's liquidation price at ``mark * (1 - side * distance)`` under
    ``current``; unlevered rows (distance NaN) get their whole entry notional (1x).

    Each position is its own margin pool, so equity is affine in its mark: ``margin + eq0(x)``, with
    ``eq0`` the equity at margin 0 (unrealised PnL less the venue's closing costs). The venue flags the
    position where equity falls below its maintenance requirement ``req(x)``; solving
    ``margin + eq0(x) = req(x)`` at the target price gives the margin.
    """
    n = draws.n_positions
    d = np.nan_to_num(draws.level, nan=0.0)
    target = mark * (1.0 - draws.side * d)
    probe = PerpBook(draws.markets, draws.market, draws.side, size, entry, np.zeros(n),
                     np.full(n, ISOLATED, np.int8), np.arange(n), np.zeros(n))
    need = current.requirement_usd(probe, target) - current.equity_usd(probe, target)
    return np.where(np.isnan(draws.level), draws.notional_usd, np.maximum(need, 0.0))


def static_liquidation_map(adapter: PerpAdapter, book: PerpBook, mark_usd: np.ndarray, moves: np.ndarray,
                           side: int) -> np.ndarray:
    """Base units of one side that are liquidatable after each relative move, all else held still.

    ``moves`` are falls (``side = +1``, longs) or rises (``side = -1``, shorts) of every market's
    mark, as fractions; a position counts at a move once its closed-form liquidation price
    (:meth:`protocols.PerpAdapter.liquidation_price_usd`) is reached. Returns ``(len(moves),)``.
    Exact for one-position margin pools (isolated positions, synthetic books); for a cross account
    with positions in several markets the closed form holds the other marks still, so the map is
    the one-market-at-a-time approximation.
    """
    mark_usd = np.asarray(mark_usd, dtype=np.float64)
    lp = adapter.liquidation_price_usd(book, mark_usd)
    rows = (book.side == side) & (book.size_base > 0)
    with np.errstate(invalid="ignore"):
        distance = np.where(side > 0, 1.0 - lp / mark_usd, lp / mark_usd - 1.0)
    distance = np.where(rows, distance, np.inf)
    order = np.argsort(distance)
    cum = np.concatenate([[0.0], np.cumsum(book.size_base[order])])
    k = np.searchsorted(distance[order], np.asarray(moves, dtype=np.float64), side="right")
    return cum[k]


# --------------------------------------------------------------------------------------------
# Perp venues in a scenario (the cascade loop's view of a perp book)
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PerpProtocolBook:
    """One scenario protocol's perp book as the engine binds it (the perp counterpart of
    :class:`~optimizer.scenario.book.ProtocolBook`).

    ``accounts`` names the account of each ROW (position), so per-position results
    (``account_liquidated``) line up with it; ``positions`` keeps the per-account view.
    """

    protocol: str
    accounts: np.ndarray  # (n_positions,) str: the account of each position
    book: PerpBook
    positions: PerpPositions

    @property
    def single_pair(self) -> bool:
        return False

    @classmethod
    def of(cls, protocol: str, positions: PerpPositions) -> PerpProtocolBook:
        return cls(protocol, positions.accounts[positions.book.account], positions.book, positions)


def market_assets(adapter: PerpAdapter, mapping: Mapping[str, str]) -> tuple[str, ...]:
    """The scenario asset each of the adapter's markets trades on: ``mapping[base asset]`` (the
    protocol's ``market_assets`` table, keyed by base asset or market name), else the base asset."""
    return tuple(mapping.get(m, mapping.get(a, a)) for m, a in zip(adapter.markets, adapter.base_assets, strict=True))


def check_perp_protocol(scenario: Any, i: int, adapter: PerpAdapter, known_assets: set[str], *,
                        start_prices_usd: Mapping[str, float | None] | None = None
                        ) -> tuple[PerpPositions | None, dict[str, LiquidationMap] | None]:
    """Read (``perp_csv``) or validate (``perp_synthetic``) protocol ``i``'s perp book at load time.

    Returns the CSV's positions (None for a synthetic book, drawn by ``prepare``) and, for a
    ``calibration`` book, its calibration file's maps (read here, once: ``prepare`` does no I/O).
    Every market the book holds must trade on a scenario asset (``market_assets`` or the base asset's
    own name). With ``start_prices_usd`` (scenario asset -> price at the start), a synthetic book whose
    distributions can open a position already liquidatable at the start is refused
    (:func:`check_not_liquidatable_at_start`).
    """
    pc = scenario.protocols[i]
    key = f"protocols[{i}].book"
    for name, table in (("market_assets", pc.market_assets), ("mark_assets", pc.mark_assets)):
        unknown = set(table) - set(adapter.markets) - set(adapter.base_assets)
        if unknown:
            raise InputError(f"'{sorted(unknown)[0]}' is neither a market nor a base asset of {adapter.name} "
                             f"(markets: {', '.join(adapter.markets)})", file=scenario.file,
                             field=f"protocols[{i}].{name}.{sorted(unknown)[0]}")
    if pc.book.kind == "perp_csv":
        try:
            pos = read_perp_csv(pc.book.path, adapter.name, adapter)
        except InputError as e:  # name the scenario key that points at the CSV too
            raise InputError(str(e), file=scenario.file, field=f"{key}.path") from None
        held = np.unique(pos.book.market)
        maps = d = None
    else:
        raw = pc.book.raw
        maps = (_calibration_maps(raw["calibration"], scenario.file, f"{key}.calibration", scenario.resolve)
                if "calibration" in raw else None)
        d = draw_perp_synthetic(raw, adapter, scenario.file, key, np.random.default_rng(0), maps=maps)
        pos, held = None, np.unique(d.market)
    names = market_assets(adapter, pc.market_assets)
    for m in held:
        if names[m] not in known_assets:
            raise InputError(f"market {adapter.markets[m]} trades on asset '{names[m]}', which has no price model in "
                             f"the scenario (declare it under [assets] or map it with market_assets = "
                             f"{{ {adapter.base_assets[m]} = \"ASSET\" }})", file=scenario.file, field=key)
    if d is not None and start_prices_usd is not None:
        prices = {a: start_prices_usd.get(names[m]) for m, a in enumerate(adapter.base_assets)
                  if m in set(held.tolist())}
        if all(v is not None for v in prices.values()):
            check_not_liquidatable_at_start(pc.book.raw, d, adapter, prices, scenario.file, key)
    return pos, maps


def _support(spec: Any, key: str, file: str) -> tuple[float, float]:
    """Smallest and largest value a distribution table can draw (its clips and natural bounds)."""
    from .book import parse_dist

    dist = parse_dist(spec, key, file)
    p = dist.params
    lo, hi = {"uniform": (p.get("low", 0.0), p.get("high", 0.0)), "constant": (p.get("value", 0.0),) * 2,
              "beta": (0.0, 1.0)}.get(dist.kind, (0.0, math.inf))
    return max(lo, dist.lo), min(hi, dist.hi)


def check_not_liquidatable_at_start(raw: Mapping[str, Any], draws: PerpSyntheticDraws, adapter: PerpAdapter,
                                    prices_usd: Mapping[str, float], file: str, key: str) -> None:
    """Refuse a synthetic book whose distributions can open a position that the venue liquidates at once.

    Rule: every position the book can draw must start with its pool's equity at or above its maintenance
    margin at the start price. Checked at the worst corner of the distributions, for every drawn notional:
    the most adverse entry offset (the largest for a long, which entered above the start price; the smallest
    for a short) and the highest leverage (``leverage``: its ``max``, capped by the venue's maximum at that
    notional; ``leverage_fraction``: its ``max``, of the venue's maximum). ``calibration`` books solve their
    margins so that each liquidation price sits at least the dead band away: never liquidatable at the start.
    """
    if draws.mode == "calibration":
        return
    lo_off, hi_off = _support(raw["entry_offset"], f"{key}.entry_offset", file) if "entry_offset" in raw else (0, 0)
    _, hi_level = _support(raw[draws.mode], f"{key}.{draws.mode}", file)
    worst = replace(draws, entry_log_offset=np.where(draws.side > 0, hi_off, lo_off).astype(np.float64),
                    level=np.full(draws.n_positions, hi_level, dtype=np.float64))
    pos = materialize_perp(worst, adapter, adapter, prices_usd)
    book = pos.book
    mark = book.entry_price_usd * np.exp(-worst.entry_log_offset)
    bad = _first(adapter.liquidatable(book, mark))
    if bad is None:
        return
    notional = float(book.size_base[bad] * book.entry_price_usd[bad])
    lev = notional / float(book.margin_usd[bad]) if book.margin_usd[bad] > 0 else math.inf
    long_ = book.side[bad] > 0
    off = hi_off if long_ else lo_off
    raise InputError(f"a {'long' if long_ else 'short'} at {lev:.4g}x entered {abs(math.expm1(off)):.2%} "
                     f"{'above' if long_ else 'below'} the start price ({notional:,.0f} USD in "
                     f"{adapter.markets[book.market[bad]]}) is liquidatable on {adapter.name} at once (equity below "
                     "its maintenance margin); every position must start above maintenance: narrow entry_offset or "
                     f"lower the {draws.mode} max", file=file, field=f"{key}.entry_offset")
