"""Aave v3: reserves, configuration bitmaps, caps, eModes, oracle prices and accounts, into the snapshot format.

Reads (``aave-dao/aave-v3-origin`` v3.3–v3.6 interfaces), all at one block:

- ``PoolAddressesProvider.getPool / getPriceOracle / getPoolDataProvider``;
- ``Pool.getReservesList``, per reserve ``Pool.getConfiguration`` (the ``ReserveConfigurationMap``
  bitmap, decoded by :func:`decode_reserve_configuration` with the bit layout of
  ``ReserveConfiguration.sol``) and ``Pool.getReserveData`` (for the reserve ``id`` the eMode and
  user bitmaps index); symbols from ``AaveProtocolDataProvider.getAllReservesTokens`` (which
  special-cases MKR's ``bytes32`` symbol);
- eModes: ``Pool.getEModeCategoryCollateralConfig(id)`` for every id 1..255 (there is no list of
  ids; a category exists when its liquidation threshold is non-zero, as ``configureEModeCategory``
  requires), then its label and its collateral / borrowable bitmaps;
- prices: ``AaveOracle.getAssetPrice`` in ``BASE_CURRENCY_UNIT`` (1e8 = USD on v3 markets whose
  ``BASE_CURRENCY`` is the zero address), and each source's Chainlink ``latestRoundData`` for the
  staleness check;
- accounts: ``Pool.getUserEMode`` and ``Pool.getUserConfiguration`` (two bits per reserve id: bit
  ``2·id`` borrowing, bit ``2·id+1`` using as collateral), then
  ``AaveProtocolDataProvider.getUserReserveData`` for the reserves the bitmap flags.

Units are the snapshot's: bps and whole tokens, ``liquidation_bonus_bps`` as stored (10000 + bonus),
debt ceilings in USD (the bitmap has 2 decimals). ``usage_as_collateral_enabled`` is
``liquidationThreshold != 0``, as ``AaveProtocolDataProvider.getReserveConfigurationData`` reports it.
The liquidation constants (close factor and its thresholds, dust floors) are Solidity constants of
``LiquidationLogic`` with no getter: they are copied from the bundled snapshot, which cites them.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..snapshots import data_dir, read_json
from ._common import (
    Fetched,
    Options,
    chain_block,
    decimal_text,
    feed_checks,
    position_rows,
    provenance_text,
    unique_symbols,
)
from .abi import AAVE_ADDRESSES_PROVIDER as AP
from .abi import AAVE_DATA_PROVIDER as DP
from .abi import AAVE_ORACLE as ORC
from .abi import AAVE_POOL as POOL
from .markets import Account, Market
from .rpc import Call, ChainClient, ChainError

MAX_EMODE_ID = 255  # eMode ids are uint8; 0 is "no eMode"
_CAP_BITS = (1 << 36) - 1

PROVENANCE_FIELDS = ("ltv_bps", "liquidation_threshold_bps", "liquidation_bonus_bps", "liquidation_protocol_fee_bps",
                     "reserve_factor_bps", "supply_cap_tokens", "borrow_cap_tokens", "debt_ceiling_usd")


def decode_reserve_configuration(data: int) -> dict[str, Any]:
    """``ReserveConfigurationMap.data`` → the snapshot's reserve fields (bit layout of ReserveConfiguration.sol)."""
    def bit(n: int) -> bool:
        return bool((data >> n) & 1)

    lt = (data >> 16) & 0xFFFF
    return {
        "decimals": (data >> 48) & 0xFF,
        "ltv_bps": data & 0xFFFF,
        "liquidation_threshold_bps": lt,
        "liquidation_bonus_bps": (data >> 32) & 0xFFFF,
        "liquidation_protocol_fee_bps": (data >> 152) & 0xFFFF,
        "reserve_factor_bps": (data >> 64) & 0xFFFF,
        "supply_cap_tokens": (data >> 116) & _CAP_BITS,
        "borrow_cap_tokens": (data >> 80) & _CAP_BITS,
        "debt_ceiling_usd": ((data >> 212) & ((1 << 40) - 1)) / 100,  # DEBT_CEILING_DECIMALS = 2
        "borrowing_enabled": bit(58),
        "usage_as_collateral_enabled": lt != 0,
        "frozen": bit(57),
        "paused": bit(60),
        "active": bit(56),
        "borrowable_in_isolation": bit(61),
        "siloed_borrowing": bit(62),
    }


def reserves_in_bitmap(bitmap: int, by_id: dict[int, str]) -> tuple[list[str], list[int]]:
    """Symbols of the reserve ids set in an eMode bitmap, and ids set that no listed reserve has."""
    names, orphans = [], []
    for i in range(bitmap.bit_length()):
        if (bitmap >> i) & 1:
            (names.append(by_id[i]) if i in by_id else orphans.append(i))
    return names, orphans


def fetch(client: ChainClient, market: Market, accounts: list[Account], opts: Options) -> Fetched:
    blk = client.block
    assert blk is not None
    notes: list[str] = []
    provider = market.contracts["PoolAddressesProvider"]
    client.require_code(provider, "Aave PoolAddressesProvider")
    pool, oracle, dp = (v[0] for v in client.values([
        Call("Aave PoolAddressesProvider", provider, AP["getPool"]),
        Call("Aave PoolAddressesProvider", provider, AP["getPriceOracle"]),
        Call("Aave PoolAddressesProvider", provider, AP["getPoolDataProvider"]),
    ]))
    for addr, name in ((pool, "Aave Pool"), (oracle, "AaveOracle"), (dp, "AaveProtocolDataProvider")):
        client.require_code(addr, name)

    (reserves,) = client.call(Call("Aave Pool", pool, POOL["getReservesList"], batch=False))
    (tokens,) = client.call(Call("AaveProtocolDataProvider", dp, DP["getAllReservesTokens"], batch=False))
    reserves = list(reserves)
    if not reserves:
        raise ChainError(f"Aave Pool {pool}: getReservesList() is empty at block {blk.number}")
    symbol_of = dict((addr, sym) for sym, addr in tokens)
    missing = [r for r in reserves if r not in symbol_of]
    if missing:
        from ._common import read_symbols

        symbol_of.update(read_symbols(client, missing))
    names = unique_symbols([(r, symbol_of[r]) for r in reserves], notes)

    n = len(reserves)
    stage = client.values(
        [Call("AaveOracle", oracle, ORC["BASE_CURRENCY"]), Call("AaveOracle", oracle, ORC["BASE_CURRENCY_UNIT"])]
        + [Call("Aave Pool", pool, POOL["getConfiguration"], (r,)) for r in reserves]
        + [Call("Aave Pool", pool, POOL["getReserveData"], (r,)) for r in reserves]
        + [Call("AaveOracle", oracle, ORC["getAssetPrice"], (r,)) for r in reserves]
        + [Call("AaveOracle", oracle, ORC["getSourceOfAsset"], (r,)) for r in reserves]
        + [Call("Aave Pool", pool, POOL["getEModeCategoryCollateralConfig"], (i,))
           for i in range(1, MAX_EMODE_ID + 1)])
    (base_currency,), (base_unit,) = stage[0], stage[1]
    configs = [v[0][0] for v in stage[2:2 + n]]
    ids = [v[0][7] for v in stage[2 + n:2 + 2 * n]]
    prices_raw = [v[0] for v in stage[2 + 2 * n:2 + 3 * n]]
    sources = [v[0] for v in stage[2 + 3 * n:2 + 4 * n]]
    emode_cfg = {i: v[0] for i, v in zip(range(1, MAX_EMODE_ID + 1), stage[2 + 4 * n:], strict=True)}
    if base_unit <= 0:
        raise ChainError(f"AaveOracle {oracle} BASE_CURRENCY_UNIT() at block {blk.number}: is {base_unit}")
    if int(base_currency, 16) != 0:
        notes.append(f"the oracle's BASE_CURRENCY is {base_currency}, not USD: prices_usd are in that currency")

    by_id = {int(i): names[r] for r, i in zip(reserves, ids, strict=True)}
    emode_ids = [i for i, (_ltv, lt, _lb) in emode_cfg.items() if lt != 0]
    em = client.values([c for i in emode_ids for c in (
        Call("Aave Pool", pool, POOL["getEModeCategoryLabel"], (i,)),
        Call("Aave Pool", pool, POOL["getEModeCategoryCollateralBitmap"], (i,)),
        Call("Aave Pool", pool, POOL["getEModeCategoryBorrowableBitmap"], (i,)))])

    when = {"as_of": blk.date}
    assets: dict[str, Any] = {}
    for r, cfg in zip(reserves, configs, strict=True):
        entry = decode_reserve_configuration(int(cfg))
        entry["provenance"] = {k: {"set_by": provenance_text("Pool", "getConfiguration", blk), **when}
                               for k in PROVENANCE_FIELDS}
        assets[names[r]] = entry
    emodes: dict[str, Any] = {}
    for k, i in enumerate(emode_ids):
        (label,), (coll_bm,), (borrow_bm,) = em[3 * k], em[3 * k + 1], em[3 * k + 2]
        ltv, lt, lb = emode_cfg[i]
        coll, orphan_c = reserves_in_bitmap(int(coll_bm), by_id)
        borr, orphan_b = reserves_in_bitmap(int(borrow_bm), by_id)
        if orphan_c or orphan_b:
            notes.append(f"eMode {i}: bitmap bits {sorted(set(orphan_c + orphan_b))} name no listed reserve "
                         "(dropped reserves); left out")
        emodes[str(i)] = {"label": label, "ltv_bps": ltv, "liquidation_threshold_bps": lt,
                          "liquidation_bonus_bps": lb, "collateral_assets": coll, "borrowable_assets": borr,
                          "provenance": {"set_by": provenance_text("Pool", "getEModeCategory*", blk), **when}}

    prices = {names[r]: p / base_unit for r, p in zip(reserves, prices_raw, strict=True)}
    zero = [s for s, p in prices.items() if p <= 0]
    if zero:
        notes.append(f"the oracle prices {', '.join(zero[:5])}{' ...' if len(zero) > 5 else ''} at 0")
    feeds = feed_checks(client, {names[r]: s for r, s in zip(reserves, sources, strict=True)}, opts, kind="Aave")

    bundled = read_json(data_dir() / "protocols" / "aave_v3_ethereum_core.json")
    snapshot = {
        "protocol": "aave_v3",
        "market": f"{market.title} (Pool {pool})",
        "as_of": blk.date,
        "source": (f"Read on chain id {client.chain_id} at block {blk.number} ({blk.time_iso}) by cascade fetch "
                   f"{__version__}: PoolAddressesProvider {provider}, Pool {pool}, AaveProtocolDataProvider {dp}, "
                   f"AaveOracle {oracle}."),
        "units": bundled["units"],
        "caveats": [
            "Values read on chain at the block named in 'source' and 'chain'; no governance provenance "
            "(provenance.set_by names the getter).",
            "usage_as_collateral_enabled = liquidationThreshold != 0 (as AaveProtocolDataProvider reports it).",
            "constants are Solidity constants of LiquidationLogic (no getter): copied from the bundled snapshot.",
            f"eMode categories found by reading ids 1..{MAX_EMODE_ID} (a category exists when its liquidation "
            "threshold is non-zero).",
            *notes,
        ],
        "constants": bundled["constants"],
        "assets": assets,
        "emodes": emodes,
        "prices_usd": prices,
        "price_feeds": feeds,
        "chain": chain_block(client, market, {"PoolAddressesProvider": provider, "Pool": pool,
                                               "AaveOracle": oracle, "AaveProtocolDataProvider": dp},
                              {names[r]: r for r in reserves}),
    }
    fetched = Fetched("aave_v3", market, blk, snapshot, notes=notes, accounts=list(accounts))
    if accounts:
        fetched.positions = _positions(client, pool, dp, accounts, reserves, ids, names, assets, notes)
        fetched.position_columns = (*fetched.position_columns, "emode")
    return fetched


def _positions(client: ChainClient, pool: str, dp: str, accounts: list[Account], reserves: list[str], ids: list[int],
               names: dict[str, str], assets: dict[str, Any], notes: list[str]) -> list[dict[str, str]]:
    for a in accounts:
        if a.ilk is not None:
            raise ChainError(f"account '{a.label}': an ILK prefix is only meaningful for maker", field="--accounts")
    head = client.values([c for a in accounts for c in (
        Call("Aave Pool", pool, POOL["getUserEMode"], (a.address,)),
        Call("Aave Pool", pool, POOL["getUserConfiguration"], (a.address,)))])
    flagged: list[tuple[int, str, bool, bool]] = []  # (account index, reserve, collateral bit, borrowing bit)
    for k, _a in enumerate(accounts):
        (bits,) = head[2 * k + 1][0]
        for r, i in zip(reserves, ids, strict=True):
            borrowing, coll = bool((bits >> (2 * i)) & 1), bool((bits >> (2 * i + 1)) & 1)
            if borrowing or coll:
                flagged.append((k, r, coll, borrowing))
    data = client.values([Call("AaveProtocolDataProvider", dp, DP["getUserReserveData"], (r, accounts[k].address))
                          for k, r, _c, _b in flagged])
    legs: dict[int, tuple[list, list]] = {k: ([], []) for k in range(len(accounts))}
    skipped_coll = 0
    for (k, r, coll, _b), v in zip(flagged, data, strict=True):
        a_bal, stable, variable, *_rest, use_coll = v
        sym = names[r]
        dec = assets[sym]["decimals"]
        if a_bal > 0 and (coll or use_coll):
            if assets[sym]["usage_as_collateral_enabled"]:
                legs[k][0].append((sym, decimal_text(a_bal, dec)))
            else:
                skipped_coll += 1
        if stable + variable > 0:
            legs[k][1].append((sym, decimal_text(stable + variable, dec)))
            if not assets[sym]["borrowing_enabled"]:
                notes.append(f"{accounts[k].address} owes {sym}, whose borrowing is now disabled: the debt is kept "
                             "in the positions file")
    if skipped_coll:
        notes.append(f"{skipped_coll} collateral balance(s) in reserves with liquidation threshold 0 are left out "
                     "(they do not count in the health factor)")
    rows: list[dict[str, str]] = []
    empty = 0
    for k, a in enumerate(accounts):
        coll, debt = legs[k]
        if not coll and not debt:
            empty += 1
            continue
        rows += position_rows("aave_v3", a.address, coll, debt, {"emode": str(int(head[2 * k][0]))})
    if empty:
        notes.append(f"{empty} account(s) hold no collateral and no debt: not in the positions file")
    return rows

