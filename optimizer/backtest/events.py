"""Liquidation events files: the record of real (or simulated) liquidations a backtest compares.

Format: a UTF-8 CSV with a header row, one liquidation per row, in any order. Columns (names exact):

==========================  ========  ==============================================================
column                      required  meaning
==========================  ========  ==============================================================
``timestamp``               yes       when it happened, ISO 8601 in UTC (``2020-03-12T13:05:00Z``;
                                      ``+00:00`` or no zone are read as UTC, other offsets are refused)
``protocol``                yes       venue, e.g. ``maker_liq12``, ``aave_v2``
``account``                 yes       vault / urn / borrower address (free text)
``collateral_asset``        yes       symbol of the collateral seized (``ETH``, ``WBTC``, ``ETH-A``)
``collateral_seized_tokens`` yes      collateral taken from the account, whole tokens (>= 0)
``debt_asset``              yes       symbol of the debt repaid (``DAI``, ``USDC``)
``debt_repaid_tokens``      yes       debt repaid by the liquidation, whole tokens (>= 0)
``collateral_price_usd``    yes       price of the collateral at the event, USD per token (> 0)
``debt_price_usd``          no        price of the debt asset, USD per token (> 0; default 1)
``bad_debt_usd``            no        debt the liquidation left uncovered, USD (>= 0; default 0; e.g. a
                                      Maker auction's ``due − raised``)
==========================  ========  ==============================================================

Other columns are ignored. Every error is one line naming the file, the line and the column
(``EVENTS.csv: line 4: collateral_price_usd: must be > 0, got -3``).
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError
from ..io import read_text

REQUIRED = ("timestamp", "protocol", "account", "collateral_asset", "collateral_seized_tokens", "debt_asset",
            "debt_repaid_tokens", "collateral_price_usd")
OPTIONAL = {"debt_price_usd": 1.0, "bad_debt_usd": 0.0}
_POSITIVE = ("collateral_price_usd", "debt_price_usd")


@dataclass(frozen=True)
class Events:
    """Liquidation events as arrays, sorted by time (seconds since the epoch, UTC)."""

    timestamp_s: np.ndarray  # int64
    protocol: np.ndarray  # str
    account: np.ndarray  # str
    collateral_asset: np.ndarray  # str
    collateral_seized_tokens: np.ndarray
    debt_asset: np.ndarray  # str
    debt_repaid_tokens: np.ndarray
    collateral_price_usd: np.ndarray
    debt_price_usd: np.ndarray
    bad_debt_usd: np.ndarray

    def __post_init__(self) -> None:
        t = np.asarray(self.timestamp_s, np.int64)
        order = np.argsort(t, kind="stable")
        for name in self.__dataclass_fields__:
            a = np.asarray(getattr(self, name))
            if a.shape != t.shape:
                raise ValueError(f"Events.{name} has shape {a.shape}, expected {t.shape}")
            if name not in ("protocol", "account", "collateral_asset", "debt_asset", "timestamp_s"):
                a = a.astype(np.float64)
            object.__setattr__(self, name, a[order])

    @classmethod
    def from_columns(cls, *, timestamp_s, protocol, account, collateral_asset, collateral_seized_tokens, debt_asset,
                     debt_repaid_tokens, collateral_price_usd, debt_price_usd=None, bad_debt_usd=None) -> Events:
        """Events from arrays (scalars broadcast); what an engine hands over for its simulated events."""
        t = np.atleast_1d(np.asarray(timestamp_s, np.int64))
        n = t.shape[0]

        def col(x, default=None, dtype=np.float64):
            x = default if x is None else x
            return np.array(np.broadcast_to(np.asarray(x, dtype), (n,)))

        return cls(t, col(protocol, dtype=object).astype(str), col(account, dtype=object).astype(str),
                   col(collateral_asset, dtype=object).astype(str), col(collateral_seized_tokens),
                   col(debt_asset, dtype=object).astype(str), col(debt_repaid_tokens), col(collateral_price_usd),
                   col(debt_price_usd, 1.0), col(bad_debt_usd, 0.0))

    @property
    def n(self) -> int:
        return int(self.timestamp_s.shape[0])

    @property
    def collateral_seized_usd(self) -> np.ndarray:
        return self.collateral_seized_tokens * self.collateral_price_usd

    @property
    def debt_repaid_usd(self) -> np.ndarray:
        return self.debt_repaid_tokens * self.debt_price_usd

    def select(self, mask: np.ndarray) -> Events:
        return Events(*(getattr(self, f)[mask] for f in self.__dataclass_fields__))

    def for_protocol(self, protocol: str | None) -> Events:
        return self if protocol is None else self.select(self.protocol == protocol)


def parse_timestamp_s(text: str) -> int:
    """ISO 8601 UTC text to whole seconds since the epoch; ``ValueError`` names what is wrong."""
    s = text.strip()
    if s.endswith(("Z", "z")):
        s = s[:-1]
    elif s.endswith("+00:00"):
        s = s[:-6]
    elif len(s) > 10 and ("+" in s[10:] or "-" in s[10:]):
        raise ValueError(f"{text!r} has a UTC offset other than +00:00 (write times in UTC)")
    try:
        t = np.datetime64(s, "s")
    except ValueError:
        raise ValueError(f"{text!r} is not an ISO 8601 time (e.g. 2020-03-12T13:05:00Z)") from None
    if np.isnat(t):
        raise ValueError(f"{text!r} is not a time")
    return int(t.astype(np.int64))


def read_events(path: str | Path, *, label: str | None = None, field: str | None = None) -> Events:
    """Read and validate an events CSV (format in the module docstring) through :func:`optimizer.io.read_text`."""
    name = label or str(path)
    text = read_text(path, label=label, field=field)
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise InputError("is empty: expected a header row " + ",".join(REQUIRED), file=name, field=field) from None
    missing = [c for c in REQUIRED if c not in header]
    if missing:
        raise InputError(f"missing column(s) {', '.join(missing)} (required: {', '.join(REQUIRED)})", file=name,
                         field=field)
    dup = sorted({h for h in header if header.count(h) > 1 and h in (*REQUIRED, *OPTIONAL)})
    if dup:
        raise InputError(f"column(s) {', '.join(dup)} appear more than once", file=name, field=field)
    pos = {c: header.index(c) for c in (*REQUIRED, *OPTIONAL) if c in header}
    cols: dict[str, list] = {c: [] for c in (*REQUIRED, *OPTIONAL)}
    for line_no, row in enumerate(reader, start=2):
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) < len(header):
            raise InputError(f"has {len(row)} fields, the header has {len(header)}", file=name, field=f"line {line_no}")
        for c in (*REQUIRED, *OPTIONAL):
            raw = row[pos[c]].strip() if c in pos else ""
            where = f"line {line_no}: {c}"
            if c == "timestamp":
                try:
                    cols[c].append(parse_timestamp_s(raw))
                except ValueError as e:
                    raise InputError(str(e), file=name, field=where) from None
            elif c in ("protocol", "account", "collateral_asset", "debt_asset"):
                if not raw:
                    raise InputError("is empty", file=name, field=where)
                cols[c].append(raw)
            else:
                if raw == "" and c in OPTIONAL:
                    cols[c].append(OPTIONAL[c])
                    continue
                try:
                    v = float(raw)
                except ValueError:
                    raise InputError(f"not a number ({raw!r})", file=name, field=where) from None
                if not math.isfinite(v):
                    raise InputError(f"must be finite, got {raw}", file=name, field=where)
                if c in _POSITIVE and not v > 0:
                    raise InputError(f"must be > 0, got {raw}", file=name, field=where)
                if v < 0:
                    raise InputError(f"must be >= 0, got {raw}", file=name, field=where)
                cols[c].append(v)
    return Events.from_columns(
        timestamp_s=np.array(cols["timestamp"], np.int64), protocol=np.array(cols["protocol"], dtype=str),
        account=np.array(cols["account"], dtype=str), collateral_asset=np.array(cols["collateral_asset"], dtype=str),
        collateral_seized_tokens=cols["collateral_seized_tokens"], debt_asset=np.array(cols["debt_asset"], dtype=str),
        debt_repaid_tokens=cols["debt_repaid_tokens"], collateral_price_usd=cols["collateral_price_usd"],
        debt_price_usd=cols["debt_price_usd"], bad_debt_usd=cols["bad_debt_usd"])


def write_events(path: str | Path, events: Events) -> Path:
    """Write ``events`` as an events CSV (the format above, every column), atomically."""
    from ..io import write_csv

    cols = [*REQUIRED, *OPTIONAL]
    rows = []
    for i in range(events.n):
        values = [f"{np.datetime64(int(events.timestamp_s[i]), 's')}Z", events.protocol[i], events.account[i],
                  events.collateral_asset[i], repr(float(events.collateral_seized_tokens[i])), events.debt_asset[i],
                  repr(float(events.debt_repaid_tokens[i])), repr(float(events.collateral_price_usd[i])),
                  repr(float(events.debt_price_usd[i])), repr(float(events.bad_debt_usd[i]))]
        rows.append(dict(zip(cols, values, strict=True)))
    write_csv(path, cols, rows)
    return Path(path)
