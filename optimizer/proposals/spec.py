"""Proposal files: read and validated in one place (format in ``docs/proposal_format.md``).

Two shapes are accepted, as they are:

* the project's own format, TOML or JSON: ``protocol``, ``market``, ``title``, ``date``, ``link`` and
  ``[[changes]]`` with ``asset`` (or ``emode`` / ``ilk``), ``parameter``, ``before``, ``after``, ``unit``;
* governance records as collected in the team's research folder (``governance_proposals_examples.json``):
  one record, a list of records or ``{"proposals": [...]}``, with their own names (``ltv``,
  ``liquidation_bonus`` as raw 10000 + bps, ``emode_ltv``, ``liquidation_penalty``, ``chop (liquidation
  penalty)``, ...), an ``asset`` field that may list several assets (``"USDC, USDT, DAI"``, ``"DAI and
  sDAI"``) or an eMode (``"ETH-correlated eMode (id 1)"``), and a ``source`` object.

:func:`load_proposal` reads the file (one checked reader, :func:`optimizer.io.read_text`) and returns a
:class:`ProposalSpec`; :func:`resolve` maps it onto one adapter (the snapshot in use), converting every
value into the adapter's unit and checking targets, units, bounds and invariants. Every failure is an
:class:`~optimizer.errors.InputError` naming the file, the change and the rule (CLI exit code 2).
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from protocols import Adapter, InvalidParameters

from ..errors import InputError
from .vocabulary import (
    NOT_MODELLED,
    Term,
    Venue,
    canonical_unit,
    find_term,
    known_parameters,
    known_protocols,
    venue_for,
)

RECORD_KEYS = {"protocol", "market", "title", "date", "link", "author", "summary", "asset", "emode", "ilk",
               "changes", "scenario", "source",
               # keys of the research folder's records, accepted as they are
               "rationale_summary", "author_or_risk_provider", "values_verified_in", "id", "status", "chain",
               "network", "url", "notes", "note"}
CHANGE_KEYS = {"asset", "emode", "ilk", "parameter", "before", "after", "unit", "note", "notes", "market"}
MAX_PROPOSAL_BYTES = 4 * 2**20


@dataclass(frozen=True)
class ChangeSpec:
    """One change as written (targets parsed, values still in governance units)."""

    index: int
    parameter: str
    before: float
    after: float
    unit: str
    targets: tuple[str, ...]  # reserve/collateral/ilk symbols, "emode<ID>", or () for the market
    target_text: str  # how the file names the target(s)
    note: str = ""

    @property
    def where(self) -> str:
        tgt = self.target_text or "market"
        return f"changes[{self.index}] ({tgt} {self.parameter})"


@dataclass(frozen=True)
class ProposalSpec:
    """A proposal as read from its file."""

    file: str
    protocol: str  # as written
    adapter: str  # registry key
    title: str
    market: str
    date: str
    link: str
    author: str
    summary: str
    changes: tuple[ChangeSpec, ...]
    scenario: str | None = None
    source: Mapping[str, Any] = field(default_factory=dict)
    record: Mapping[str, Any] = field(default_factory=dict, repr=False)  # the record exactly as read
    index: int | None = None  # position in a file of several records


@dataclass(frozen=True)
class ResolvedChange:
    """One (change, target) pair mapped onto an adapter."""

    change: ChangeSpec
    target: str  # "WETH", "emode1", "WBTC-A", "" (market)
    label: str  # how the specification table names it
    term: Term
    key: str | None  # adapter parameter key (None: the adapter does not hold it)
    before: float  # governance units
    after: float
    before_param: float | None  # adapter units
    after_param: float | None
    current_param: float | None  # the snapshot/scenario value in adapter units (None: unknown)
    current_governance: float | None  # the same in the proposal's unit, when convertible back
    modelled: bool
    notes: tuple[str, ...] = ()

    @property
    def mismatch(self) -> bool:
        if self.current_param is None or self.before_param is None:
            return False
        return not math.isclose(self.current_param, self.before_param, rel_tol=1e-9, abs_tol=1e-9)

    @property
    def status(self) -> str:
        return "modelled" if self.modelled else NOT_MODELLED


# ------------------------------------------------------------------------------------------------
# Reading
# ------------------------------------------------------------------------------------------------


def load_proposal(path: str | Path, *, index: int | None = None, title: str | None = None) -> ProposalSpec:
    """Read a proposal file (TOML or JSON; one record or several chosen by ``index`` or ``title``).

    Parameters
    ----------
    path
        The file. ``.toml`` is read as TOML, anything else as JSON.
    index
        With a file of several records: the 0-based record to analyse.
    title
        With a file of several records: a case-insensitive part of the title that matches exactly one.
    """
    from ..io import read_text

    p = Path(path)
    file = str(path)
    text = read_text(p, label=file, max_bytes=MAX_PROPOSAL_BYTES)
    if p.suffix.lower() == ".toml":
        try:
            data: Any = tomllib.loads(text)
        except tomllib.TOMLDecodeError as e:
            raise InputError(f"malformed TOML: {e}", file=file) from None
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"malformed JSON at line {e.lineno} column {e.colno}: {e.msg}", file=file) from None
    records = _records(data, file)
    chosen = _choose(records, file, index, title)
    return parse_record(records[chosen], file=file, index=chosen if len(records) > 1 else None)


def _records(data: Any, file: str) -> list[Any]:
    if isinstance(data, Mapping) and "proposals" in data and "changes" not in data:
        recs = data["proposals"]
        if not isinstance(recs, list) or not recs:
            raise InputError("must be a non-empty list of proposal records", file=file, field="proposals")
        return recs
    if isinstance(data, list):
        if not data:
            raise InputError("the file holds an empty list (no proposal)", file=file)
        return data
    if isinstance(data, Mapping):
        return [data]
    raise InputError(f"must be a proposal object or a list of them, got {type(data).__name__}", file=file)


def _choose(records: list[Any], file: str, index: int | None, title: str | None) -> int:
    n = len(records)
    if index is not None and title is not None:
        raise InputError("give --index or --title, not both", field="--index")
    if index is not None:
        if not 0 <= index < n:
            raise InputError(f"no record {index}: the file holds {n} (0..{n - 1})", file=file, field="--index")
        return index
    titles = [str(r.get("title", "")) if isinstance(r, Mapping) else "" for r in records]
    if title is not None:
        hits = [i for i, t in enumerate(titles) if title.lower() in t.lower()]
        if len(hits) != 1:
            what = "no title contains" if not hits else f"{len(hits)} titles contain"
            raise InputError(f"{what} '{title}' ({n} records; titles: "
                             + "; ".join(f"[{i}] {t[:60]}" for i, t in enumerate(titles)) + ")",
                             file=file, field="--title")
        return hits[0]
    if n > 1:
        raise InputError(f"the file holds {n} proposals; choose one with --index N or --title TEXT ("
                         + "; ".join(f"[{i}] {t[:60]}" for i, t in enumerate(titles)) + ")", file=file)
    return 0


def _text(rec: Mapping[str, Any], key: str, file: str, where: str, required: bool = False) -> str:
    v = rec.get(key)
    if v is None:
        if required:
            raise InputError("missing", file=file, field=f"{where}{key}")
        return ""
    if isinstance(v, (_dt.date, _dt.datetime)):
        return v.isoformat()
    if not isinstance(v, str):
        raise InputError(f"must be a string, got {v!r}"[:200], file=file, field=f"{where}{key}")
    return v.strip()


def _number(v: Any, file: str, field_: str, *, allow_bool: bool = False) -> float:
    if isinstance(v, bool):
        if allow_bool:
            return float(v)
        raise InputError(f"must be a number, got {v!r}", file=file, field=field_)
    if isinstance(v, str):
        s = v.strip().replace(",", "").replace("_", "")
        try:
            v = float(s)
        except ValueError:
            raise InputError(f"must be a number, got {v!r}"[:200], file=file, field=field_) from None
    if not isinstance(v, (int, float)):
        raise InputError(f"must be a number, got {v!r}"[:200], file=file, field=field_)
    x = float(v)
    if not math.isfinite(x):
        raise InputError(f"must be finite, got {x}", file=file, field=field_)
    return x


_EMODE = re.compile(r"e-?mode", re.IGNORECASE)
_EMODE_ID = re.compile(r"(?:\bid\s*[:=#]?\s*|e-?mode\s*(?:id\s*)?#?)(\d+)", re.IGNORECASE)
_PARENS = re.compile(r"\(([^)]*)\)")


def parse_targets(text: str, file: str, where: str) -> tuple[tuple[str, ...], bool]:
    """``"DAI and sDAI"`` -> (DAI, sDAI); ``"ETH-correlated eMode (id 1)"`` -> (emode1,);
    ``"USDC (market-level)"`` -> ((USDC,), market-level)."""
    s = str(text).strip()
    if not s:
        return (), True
    if _EMODE.search(s):
        m = _EMODE_ID.search(s)
        if not m:
            raise InputError(f"'{s}' names an eMode without its id; write e.g. 'eMode (id 1)'", file=file,
                             field=where)
        return (f"emode{int(m.group(1))}",), False
    market = any("market" in p.lower() for p in _PARENS.findall(s))
    s = _PARENS.sub("", s)
    parts = [p.strip() for p in re.split(r"\s*,\s*|\s+and\s+|\s*&\s*|\s*\+\s*", s) if p.strip()]
    if not parts:
        raise InputError(f"no asset in '{text}'", file=file, field=where)
    return tuple(parts), market


def parse_record(rec: Any, *, file: str, index: int | None = None) -> ProposalSpec:
    """Validate one proposal record (own format or a research-folder record)."""
    where = f"proposals[{index}]." if index is not None else ""
    if not isinstance(rec, Mapping):
        raise InputError(f"must be an object, got {type(rec).__name__}", file=file, field=where.rstrip(".") or None)
    extra = sorted(set(rec) - RECORD_KEYS)
    if extra:
        raise InputError(f"unknown key (expected: {', '.join(sorted(RECORD_KEYS))})", file=file,
                         field=f"{where}{extra[0]}")
    protocol = _text(rec, "protocol", file, where, required=True)
    venue = venue_for(protocol)
    if venue is None:
        raise InputError(f"unknown protocol '{protocol}' (known: {known_protocols()})", file=file,
                         field=f"{where}protocol")
    title = _text(rec, "title", file, where, required=True)
    src = rec.get("source")
    source: dict[str, Any] = {}
    link = _text(rec, "link", file, where) or _text(rec, "url", file, where)
    if isinstance(src, Mapping):
        source = {str(k): v for k, v in src.items() if isinstance(v, (str, int, float))}
        link = link or next((str(src[k]) for k in ("discussion", "url", "forum", "link") if src.get(k)), "")
    elif isinstance(src, str):
        source = {"source": src}
    elif src is not None:
        raise InputError("must be a string or an object", file=file, field=f"{where}source")
    scen = rec.get("scenario")
    if scen is not None and not (isinstance(scen, str) and scen.strip()):
        raise InputError("must be a scenario file or bundled scenario name", file=file, field=f"{where}scenario")
    changes_raw = rec.get("changes")
    if not isinstance(changes_raw, list) or not changes_raw:
        raise InputError("must be a non-empty list of changes", file=file, field=f"{where}changes")
    rec_target = _target_of(rec, file, f"{where}asset")
    changes = []
    for i, ch in enumerate(changes_raw):
        cw = f"{where}changes[{i}]"
        if not isinstance(ch, Mapping):
            raise InputError(f"must be an object, got {type(ch).__name__}", file=file, field=cw)
        extra = sorted(set(ch) - CHANGE_KEYS)
        if extra:
            raise InputError(f"unknown key (expected: {', '.join(sorted(CHANGE_KEYS))})", file=file,
                             field=f"{cw}.{extra[0]}")
        param = ch.get("parameter")
        if not isinstance(param, str) or not param.strip():
            raise InputError("missing (the parameter's name, e.g. 'ltv')", file=file, field=f"{cw}.parameter")
        own = _target_of(ch, file, f"{cw}.asset")
        targets, text, market = own if own is not None else (rec_target or ((), "", True))
        label = f"{cw} ({text or 'market'} {param.strip()})"
        unit = ch.get("unit")
        if not isinstance(unit, str) or not unit.strip():
            raise InputError("missing (the unit the values are in, e.g. 'bps')", file=file, field=f"{label}.unit")
        for k in ("before", "after"):
            if k not in ch or ch[k] is None:
                raise InputError("missing", file=file, field=f"{label}.{k}")
        note = ch.get("note") or ch.get("notes") or ""
        changes.append(ChangeSpec(i, param.strip(), _number(ch["before"], file, f"{label}.before", allow_bool=True),
                                  _number(ch["after"], file, f"{label}.after", allow_bool=True), unit.strip(),
                                  () if market and not targets else targets, text,
                                  str(note) if isinstance(note, (str, int, float)) else ""))
    return ProposalSpec(
        file=file, protocol=protocol, adapter=venue.adapter, title=title,
        market=_text(rec, "market", file, where), date=_text(rec, "date", file, where), link=link,
        author=_text(rec, "author", file, where) or _text(rec, "author_or_risk_provider", file, where),
        summary=_text(rec, "summary", file, where) or _text(rec, "rationale_summary", file, where),
        changes=tuple(changes), scenario=scen.strip() if isinstance(scen, str) else None, source=source,
        record=dict(rec), index=index)


def _target_of(node: Mapping[str, Any], file: str, where: str) -> tuple[tuple[str, ...], str, bool] | None:
    """(targets, text, market-level) from ``asset`` / ``emode`` / ``ilk`` of a record or change."""
    given = [k for k in ("asset", "emode", "ilk") if node.get(k) not in (None, "")]
    if len(given) > 1:
        raise InputError(f"give one of asset, emode or ilk, not {' and '.join(given)}", file=file, field=where)
    if not given:
        return None
    k = given[0]
    v = node[k]
    if k == "emode":
        if isinstance(v, bool) or not isinstance(v, (int, str)) or not str(v).strip().isdigit():
            raise InputError(f"must be an eMode category id (a whole number), got {v!r}", file=file,
                             field=where.rsplit(".", 1)[0] + ".emode" if "." in where else "emode")
        return (f"emode{int(v)}",), f"eMode {int(v)}", False
    if isinstance(v, list):
        if not v or not all(isinstance(x, str) and x.strip() for x in v):
            raise InputError("must be a list of asset symbols", file=file, field=where)
        return tuple(x.strip() for x in v), ", ".join(v), False
    if not isinstance(v, str):
        raise InputError(f"must be a string, got {v!r}"[:200], file=file, field=where)
    targets, market = parse_targets(v, file, where)
    return targets, v.strip(), market


# ------------------------------------------------------------------------------------------------
# Resolving onto an adapter
# ------------------------------------------------------------------------------------------------


def _has_target(adapter: Adapter, target: str) -> bool:
    return any(n.startswith(f"{target}.") for n in adapter.schema().names)


def _targets_known(adapter: Adapter) -> list[str]:
    seen: list[str] = []
    for n in adapter.schema().names:
        if "." in n:
            t = n.split(".", 1)[0]
            if t not in seen and not t.startswith("emode"):
                seen.append(t)
    return seen


def _lookup(snapshot: Mapping[str, Any] | None, path: str) -> float | None:
    node: Any = snapshot
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return float(node) if isinstance(node, (int, float)) and not isinstance(node, bool) else None


def _unit_conv(term: Term, unit: str, target: str):
    u = canonical_unit(unit)
    if u in term.units:
        return term.units[u]
    if "token" in term.units and (u == "tokens" or unit.strip().lower() == target.lower()):
        return term.units["token"]
    return None


def _accepted_units(term: Term) -> str:
    return " or ".join("tokens (or the asset's symbol)" if u == "token" else u for u in term.units)


def _inverse(conv, value: float | None) -> float | None:
    """The governance value whose conversion is ``value`` (conversions are affine)."""
    if value is None:
        return None
    a, b = conv(0.0), conv(1.0)
    return None if b == a else (value - a) / (b - a)


def resolve(spec: ProposalSpec, adapter: Adapter, snapshot: Mapping[str, Any] | None = None,
            venue: Venue | None = None) -> list[ResolvedChange]:
    """Map every (change, target) of ``spec`` onto ``adapter`` (the scenario's current parameters).

    Checks, each an :class:`InputError` naming the file, the change and the rule: the target exists in
    the snapshot, the parameter is known, its unit is one it is given in, the values convert to the
    adapter's unit. Bounds and invariants are checked by :func:`baseline_and_proposed`.
    """
    from .vocabulary import VOCABULARY

    venue = venue or VOCABULARY[spec.adapter]
    out: list[ResolvedChange] = []
    for ch in spec.changes:
        scope_hint = "emode" if ch.targets and all(t.startswith("emode") for t in ch.targets) else None
        term = find_term(venue, ch.parameter, scope_hint)
        if term is None:
            raise InputError(f"unknown parameter '{ch.parameter}' for {adapter.title} (known: "
                             f"{', '.join(known_parameters(venue))})", file=spec.file, field=ch.where)
        targets: tuple[str, ...] = ch.targets
        if term.scope == "market":
            targets = ("",)
        elif not targets:
            raise InputError(f"'{term.name}' is set per {venue.targets[:-1]}: name the asset", file=spec.file,
                             field=ch.where)
        for target in targets:
            is_emode = target.startswith("emode") and target[5:].isdigit()
            if term.scope == "emode" and not is_emode:
                raise InputError(f"'{term.name}' is an eMode parameter: name the eMode category (e.g. "
                                 "'eMode (id 1)')", file=spec.file, field=ch.where)
            if term.scope == "asset" and is_emode:
                raise InputError(f"'{term.name}' is not an eMode parameter (eMode categories have ltv, "
                                 "liquidation_threshold and liquidation_bonus)", file=spec.file, field=ch.where)
            if target and not _has_target(adapter, target):
                kind = "eMode category" if is_emode else venue.targets[:-1]
                known = _targets_known(adapter)
                base = " (it is the market's base asset: only market-level parameters apply)" if (
                    target in adapter.debt_assets) else ""
                raise InputError(f"{kind} '{target}' is not in the {adapter.title} snapshot{base} (known: "
                                 f"{', '.join(known[:15])}{', ...' if len(known) > 15 else ''})",
                                 file=spec.file, field=ch.where)
            conv = _unit_conv(term, ch.unit, target)
            if conv is None:
                raise InputError(f"unit '{ch.unit}' does not match: {term.name} is given in {_accepted_units(term)}",
                                 file=spec.file, field=ch.where)
            for k, v in (("before", ch.before), ("after", ch.after)):
                msg = term.check(v, canonical_unit(ch.unit)) if term.check else None
                if msg:
                    raise InputError(f"{k}: {msg}", file=spec.file, field=ch.where)
            if term.field is not None:
                key = term.field if term.scope == "market" else f"{target}.{term.field}"
                if key not in adapter.params:
                    raise InputError(f"'{term.name}' does not apply to '{target or 'the market'}' in this snapshot "
                                     f"(no parameter {key})", file=spec.file, field=ch.where)
                current = adapter.params[key]
            else:
                key = None
                current = (_lookup(snapshot, term.snapshot_key[0].format(target=target)) if term.snapshot_key
                           else None)
            before_p, after_p = conv(ch.before), conv(ch.after)
            current_gov = _inverse(conv, current)
            notes = []
            if ch.note:
                notes.append(ch.note)
                if re.search(r"interpolat|lerp|ramp|step by step|gradual", ch.note, re.IGNORECASE):
                    notes.append("the simulator applies the after value at once")
            if term.note:
                notes.append(term.note)
            label = (f"eMode {target[5:]}" if is_emode else target) or "market"
            out.append(ResolvedChange(ch, target, label, term, key, ch.before, ch.after, before_p, after_p,
                                      current, current_gov, term.modelled and key is not None, tuple(notes)))
    return out


def baseline_and_proposed(spec: ProposalSpec, changes: list[ResolvedChange],
                          adapter: Adapter) -> tuple[dict[str, float], dict[str, float]]:
    """Parameter overrides for the baseline (the proposal's ``before``) and the proposed set (``after``).

    Both are validated against the adapter's bounds and invariants; a failure names the change whose
    value breaks the rule.
    """
    base = {c.key: c.before_param for c in changes if c.key is not None}
    prop = {c.key: c.after_param for c in changes if c.key is not None}
    for label, params, ref in (("before", base, adapter), ("after", prop, None)):
        try:
            (ref or adapter.with_params(base)).with_params(params)
        except InvalidParameters as e:
            msg = str(e)
            culprit = next((c for c in changes if c.key and re.search(rf"(?<![\w.-]){re.escape(c.key)}\b", msg)),
                           changes[0])
            raise InputError(f"{label} = {culprit.before if label == 'before' else culprit.after:g} "
                             f"{culprit.change.unit} ({culprit.key} = "
                             f"{culprit.before_param if label == 'before' else culprit.after_param:g}): {msg}",
                             file=spec.file, field=culprit.change.where) from None
    return base, prop
