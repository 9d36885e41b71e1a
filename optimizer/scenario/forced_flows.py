"""``[[forced_flows]]``: the scenario's non-protocol forced-flow sources, validated once at load time.

Each table names a registered flow source (``model``, :data:`optimizer.engine.flows.FLOW_SOURCES`), the
market asset it trades on (``asset``, declared under ``[assets]``) and its data: either inline keys (the
model's own keys, e.g. ``options = [...]`` for dealers) or ``file = "behaviour/....json"`` (the same keys
in a JSON file, resolved like every scenario path), never both. The model's builder checks the data;
every error is one line naming the scenario file (and the JSON file), the key and the rule.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError

COMMON_KEYS = ("model", "id", "asset", "file", "min_trade_usd")
MAX_MIN_TRADE_USD = 1e12


@dataclass(frozen=True)
class ForcedFlowConfig:
    """One validated ``[[forced_flows]]`` table."""

    kind: str  # the source's model name (dealers | leverage_targeting | stops | a registered one)
    id: str  # unique among the scenario's forced flows (default: the model name)
    asset: str
    model: Any  # the behaviour model the builder returned (DealerBook, LeverageTargeters, StopClusters)
    min_trade_usd: float = 1.0
    file: Path | None = None  # the JSON data file, when given


def parse_forced_flows(raw: Any, *, file: str, assets: Mapping[str, Any],
                       resolve: Callable[[str, str], Path]) -> tuple[ForcedFlowConfig, ...]:
    """Validate the ``forced_flows`` array of tables of a scenario (``None``: no forced flows)."""
    if raw is None:
        return ()
    from ..engine.flows import FLOW_SOURCES  # late: the engine imports the scenario package

    if not isinstance(raw, list):
        raise InputError("must be an array of tables ([[forced_flows]])", file=file, field="forced_flows")
    out: list[ForcedFlowConfig] = []
    for i, t in enumerate(raw):
        key = f"forced_flows[{i}]"
        if not isinstance(t, dict):
            raise InputError(f"expected a table, got {type(t).__name__}", file=file, field=key)
        model = t.get("model")
        if model not in FLOW_SOURCES:
            raise InputError(f"must be one of {', '.join(sorted(FLOW_SOURCES))}, got {model!r}"[:200], file=file,
                             field=f"{key}.model")
        cls = FLOW_SOURCES[model]
        extra = sorted(set(t) - set(COMMON_KEYS) - set(cls.data_keys))
        if extra:
            raise InputError(f"unknown key (expected one of: {', '.join((*COMMON_KEYS, *cls.data_keys))})", file=file,
                             field=f"{key}.{extra[0]}")
        fid = t.get("id", model)
        if not isinstance(fid, str) or not fid:
            raise InputError(f"must be a non-empty string, got {fid!r}"[:200], file=file, field=f"{key}.id")
        if fid in {f.id for f in out}:
            raise InputError(f"'{fid}' appears twice (give each [[forced_flows]] table its own id)", file=file,
                             field=f"{key}.id")
        asset = t.get("asset")
        if not isinstance(asset, str) or asset not in assets:
            raise InputError(f"unknown asset {asset!r} (declare it under [assets])"[:200], file=file,
                             field=f"{key}.asset")
        mt = t.get("min_trade_usd", 1.0)
        if isinstance(mt, bool) or not isinstance(mt, (int, float)) or not math.isfinite(mt) \
                or not 0 < mt <= MAX_MIN_TRADE_USD:
            raise InputError(f"must be a number in (0, {MAX_MIN_TRADE_USD:g}] USD, got {mt!r}"[:200], file=file,
                             field=f"{key}.min_trade_usd")
        inline = {k: v for k, v in t.items() if k in cls.data_keys}
        data_file = None
        if "file" in t:
            rel = t["file"]
            if not isinstance(rel, str) or not rel:
                raise InputError(f"must be the path of a JSON file, got {rel!r}"[:200], file=file, field=f"{key}.file")
            if inline:
                raise InputError(f"give the data either inline or in 'file', not both (inline: "
                                 f"{', '.join(sorted(inline))})", file=file, field=f"{key}.file")
            data_file = resolve(rel, f"{key}.file")
            spec = _read_json(data_file, file, f"{key}.file")
            try:
                built = cls.build(spec, file=str(data_file))
            except InputError as e:  # name the scenario key that points at the file too
                raise InputError(str(e), file=file, field=f"{key}.file") from None
        else:
            try:
                built = cls.build(inline, file=file)
            except InputError as e:
                raise InputError(e.rule, file=file, field=f"{key}.{e.field}" if e.field else key) from None
        out.append(ForcedFlowConfig(model, fid, asset, built, float(mt), data_file))
    return tuple(out)


def _read_json(path: Path, file: str, key: str) -> Mapping[str, Any]:
    from ..snapshots import read_json

    try:
        data = read_json(path)
    except InputError as e:
        raise InputError(str(e), file=file, field=key) from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: must be a JSON object", file=file, field=key)
    return data
