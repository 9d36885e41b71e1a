"""Maker/Sky Liquidations 2.0: ilk parameters through Vat, Spotter, Dog, Clipper and abacus, and urns.

Reads (``makerdao/dss``) at one block, starting from the Chainlog (``getAddress("MCD_VAT")``,
``"MCD_SPOT"``, ``"MCD_DOG"``, ``"CLIPPER_MOM"``):

- ``Vat.ilks(ilk)`` → ``Art, rate, spot, line, dust`` (``dust`` in rad); ``Spotter.ilks(ilk)`` →
  ``pip, mat`` (ray) and ``Spotter.par`` (ray); ``Dog.ilks(ilk)`` → ``clip, chop`` (wad)``, hole``
  (rad)``, dirt``; ``Dog.Hole`` (rad);
- the ilk's Clipper: ``buf`` and ``cusp`` (ray), ``tail`` (s), ``chip`` (wad), ``tip`` (rad),
  ``stopped`` (liquidations are enabled when 0), ``calc``, and ``wards(ClipperMom)``;
  ``ClipperMom.tolerance(clip)`` (ray) is the breaker's tolerance when ClipperMom is a ward, else
  ``null`` (not wired);
- the abacus type is told by its getters: ``step`` and ``cut`` → StairstepExponentialDecrease,
  ``cut`` alone → ExponentialDecrease, ``tau`` → LinearDecrease;
- the OSM ``hop`` of each ilk's ``pip`` (the snapshot's one global ``osm_hop_s``);
- prices: ``spot · mat · par`` (the OSM value at the last ``Spotter.poke``; the OSM's own ``peek``
  needs whitelisting), in DAI per token = USD at par;
- urns: ``Vat.urns(ilk, urn)`` → ``ink, art``; the positions file owes ``art · rate`` DAI.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from .. import __version__
from ..snapshots import data_dir, read_json
from ._common import (
    Fetched,
    Options,
    amount,
    bytes32_text,
    chain_block,
    decimal_text,
    position_rows,
    ratio,
    text_bytes32,
)
from .abi import (
    MAKER_ABACUS,
    MAKER_CHAINLOG,
    MAKER_CLIPPER,
    MAKER_CLIPPER_MOM,
    MAKER_DOG,
    MAKER_OSM,
    MAKER_SPOTTER,
    MAKER_VAT,
)
from .markets import Account, Market
from .rpc import Call, ChainClient, ChainError

WAD, RAY, RAD = 10**18, 10**27, 10**45
STAIRSTEP, EXPONENTIAL, LINEAR = "StairstepExponentialDecrease", "ExponentialDecrease", "LinearDecrease"


def fetch(client: ChainClient, market: Market, accounts: list[Account], opts: Options) -> Fetched:
    blk = client.block
    assert blk is not None
    notes: list[str] = []
    log = market.contracts["Chainlog"]
    client.require_code(log, "Maker Chainlog")
    keys = ("MCD_VAT", "MCD_SPOT", "MCD_DOG", "CLIPPER_MOM")
    vat, spot, dog, mom = (v[0] for v in client.values(
        [Call("Maker Chainlog", log, MAKER_CHAINLOG["getAddress"], (text_bytes32(k),)) for k in keys]))
    for addr, name in ((vat, "Maker Vat"), (spot, "Maker Spotter"), (dog, "Maker Dog"), (mom, "Maker ClipperMom")):
        client.require_code(addr, name)
    ilks = list(market.ilks)
    b32 = {i: text_bytes32(i) for i in ilks}
    head = client.values(
        [Call("Maker Spotter", spot, MAKER_SPOTTER["par"]), Call("Maker Dog", dog, MAKER_DOG["Hole"])]
        + [c for i in ilks for c in (Call("Maker Vat", vat, MAKER_VAT["ilks"], (b32[i],)),
                                     Call("Maker Spotter", spot, MAKER_SPOTTER["ilks"], (b32[i],)),
                                     Call("Maker Dog", dog, MAKER_DOG["ilks"], (b32[i],)))])
    (par,), (hole_all,) = head[0], head[1]
    vat_i, spot_i, dog_i = {}, {}, {}
    for k, i in enumerate(ilks):
        vat_i[i], spot_i[i], dog_i[i] = head[2 + 3 * k], head[3 + 3 * k], head[4 + 3 * k]
        if vat_i[i][1] == 0:
            raise ChainError(f"Maker Vat {vat} ilks({i!r}) at block {blk.number}: rate is 0 (the ilk is not "
                             "initialised; check --market ilks)")
        if int(dog_i[i][0], 16) == 0:
            raise ChainError(f"Maker Dog {dog} ilks({i!r}) at block {blk.number}: no Clipper (clip is 0x0)")
    if par <= 0:
        raise ChainError(f"Maker Spotter {spot} par() at block {blk.number}: is 0")

    clip_fns = ("buf", "tail", "cusp", "chip", "tip", "stopped", "calc")
    per = len(clip_fns) + 3
    cl = client.run([c for i in ilks for c in (
        *(Call(f"Maker Clipper ({i})", dog_i[i][0], MAKER_CLIPPER[f]) for f in clip_fns),
        Call(f"Maker Clipper ({i})", dog_i[i][0], MAKER_CLIPPER["wards"], (mom,)),
        Call("Maker ClipperMom", mom, MAKER_CLIPPER_MOM["tolerance"], (dog_i[i][0],)),
        Call(f"Maker OSM ({i})", spot_i[i][0], MAKER_OSM["hop"], allow_failure=True))])
    clip: dict[str, dict[str, Any]] = {}
    hops: dict[str, int] = {}
    for k, i in enumerate(ilks):
        vals = [o.value for o in cl[k * per:(k + 1) * per]]
        clip[i] = {f: vals[j][0] for j, f in enumerate(clip_fns)}
        clip[i]["ward"] = vals[len(clip_fns)][0]
        clip[i]["tolerance"] = vals[len(clip_fns) + 1][0]
        hop = cl[k * per + per - 1]
        if hop.ok:
            hops[i] = int(hop.value[0])
    calcs = list(dict.fromkeys(clip[i]["calc"] for i in ilks))
    probe = client.run([Call("Maker abacus", c, MAKER_ABACUS[f], allow_failure=True)
                        for c in calcs for f in ("cut", "step", "tau")])
    calc_of: dict[str, dict[str, Any]] = {}
    for k, c in enumerate(calcs):
        cut, step, tau = probe[3 * k:3 * k + 3]
        if cut.ok and step.ok:
            calc_of[c] = {"type": STAIRSTEP, "step_s": int(step.value[0]), "cut": ratio(cut.value[0], RAY), "tau_s": 0}
        elif cut.ok:
            calc_of[c] = {"type": EXPONENTIAL, "cut": ratio(cut.value[0], RAY), "tau_s": 0}
        elif tau.ok:
            calc_of[c] = {"type": LINEAR, "tau_s": int(tau.value[0])}
        else:
            users = [i for i in ilks if clip[i]["calc"] == c]
            raise ChainError(f"Maker abacus {c} (calc of {', '.join(users)}) at block {blk.number}: none of cut(), "
                             "step(), tau() answers, so its type (Stairstep/Exponential/Linear) is unknown")
    if not hops:
        raise ChainError(f"no OSM of the ilks {', '.join(ilks)} answers hop() at block {blk.number}")
    hop_s, count = Counter(hops.values()).most_common(1)[0]
    if count < len(hops):
        notes.append(f"OSM hops differ between ilks ({hops}); osm_hop_s is the most common, {hop_s} s")
    if len(hops) < len(ilks):
        notes.append(f"no hop() from the pips of {', '.join(i for i in ilks if i not in hops)} (not OSMs)")

    out_ilks: dict[str, Any] = {}
    prices: dict[str, float] = {}
    for i in ilks:
        _art, _rate, spot_v, _line, dust = vat_i[i]
        _pip, mat = spot_i[i]
        _clip, chop, hole, _dirt = dog_i[i]
        c = clip[i]
        tol = ratio(c["tolerance"], RAY) if c["ward"] == 1 and c["tolerance"] > 0 else None
        out_ilks[i] = {
            "mat": ratio(mat, RAY), "chop": ratio(chop, WAD), "hole_dai": amount(hole, RAD),
            "dust_dai": amount(dust, RAD), "buf": ratio(c["buf"], RAY), "tail_s": int(c["tail"]),
            "cusp": ratio(c["cusp"], RAY), "chip": ratio(c["chip"], WAD), "tip_dai": amount(c["tip"], RAD),
            "liquidations_enabled": c["stopped"] == 0, "clipper_mom_tolerance": tol,
            "calc": dict(calc_of[c["calc"]]),
        }
        if c["stopped"]:
            out_ilks[i]["note"] = f"Clipper stopped = {c['stopped']} (liquidations off)"
        prices[i] = spot_v * mat * par / RAY**3

    bundled = read_json(data_dir() / "protocols" / "maker_ilks.json")
    snapshot = {
        "protocol": "maker",
        "market": market.title,
        "as_of": blk.date,
        "source": (f"Read on chain id {client.chain_id} at block {blk.number} ({blk.time_iso}) by cascade fetch "
                   f"{__version__}: Chainlog {log}, Vat {vat}, Spotter {spot}, Dog {dog}, ClipperMom {mom}."),
        "units": bundled["units"],
        "global": {"Hole_dai": amount(hole_all, RAD), "osm_hop_s": hop_s},
        "caveats": [
            "Values read on chain at the block named in 'source' and 'chain'.",
            "clipper_mom_tolerance is null when ClipperMom is not a ward of the ilk's Clipper (breaker not wired).",
            "prices_usd = Vat spot x Spotter mat x par: the OSM value at the last Spotter.poke, in DAI at par.",
            "Stability fees: the positions file owes art x rate DAI; the simulator models no further accrual.",
            *notes,
        ],
        "ilks": out_ilks,
        "prices_usd": prices,
        "price_feeds": {i: {"source": spot_i[i][0], "checked": False, "stale": False,
                            "note": "OSM value via Vat.spot (no round data)"} for i in ilks},
        "chain": chain_block(client, market, {"Chainlog": log, "Vat": vat, "Spotter": spot, "Dog": dog,
                                              "ClipperMom": mom}, {},
                             ilks={i: {"clip": dog_i[i][0], "calc": clip[i]["calc"], "pip": spot_i[i][0],
                                       "rate": ratio(vat_i[i][1], RAY), "osm_hop_s": hops.get(i)} for i in ilks}),
    }
    fetched = Fetched("maker", market, blk, snapshot, notes=notes, accounts=list(accounts))
    if accounts:
        fetched.positions = _positions(client, vat, accounts, ilks, b32, {i: vat_i[i][1] for i in ilks}, notes)
    return fetched


def _positions(client: ChainClient, vat: str, accounts: list[Account], ilks: list[str], b32: dict[str, bytes],
               rates: dict[str, int], notes: list[str]) -> list[dict[str, str]]:
    pairs: list[tuple[str, str]] = []
    for a in accounts:
        if a.ilk is not None and a.ilk not in b32:
            raise ChainError(f"account '{a.label}': ilk '{a.ilk}' is not one of the market's ilks "
                             f"({', '.join(ilks)})", field="--accounts")
        pairs += [(a.ilk, a.address)] if a.ilk else [(i, a.address) for i in ilks]
    urns = client.values([Call("Maker Vat", vat, MAKER_VAT["urns"], (b32[i], u)) for i, u in pairs])
    rows: list[dict[str, str]] = []
    for (i, u), (ink, art) in zip(pairs, urns, strict=True):
        if ink == 0 and art == 0:
            continue
        # debt = art * rate [rad] -> DAI: exact decimal of art*rate / 1e45
        rows += position_rows("maker", f"{i}:{u}", [(i, decimal_text(ink, 18))] if ink else [],
                              [("DAI", decimal_text(art * rates[i], 45))] if art else [])
    empty = len({u for _i, u in pairs} - {r["account"].split(":", 1)[1] for r in rows})
    if empty:
        notes.append(f"{empty} address(es) have no urn with ink or art in the ilks read: not in the positions file")
    return rows


def ilk_name(b: bytes) -> str:
    return bytes32_text(b)
