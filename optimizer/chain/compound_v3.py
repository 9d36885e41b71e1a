"""Compound III (Comet): asset infos, storefront and reserve parameters, prices and accounts.

Reads (``compound-finance/comet`` ``CometMainInterface``) at one block: ``numAssets`` and
``getAssetInfo(i)`` for each collateral (factors are ``uint64`` at ``FACTOR_SCALE`` 1e18, already
truncated to the 4 decimals the contract stores; ``supplyCap`` in the asset's smallest unit, scaled
by ``scale``), ``storeFrontPriceFactor`` (1e18), ``targetReserves``, ``baseBorrowMin`` and
``getReserves`` (base-token units), ``baseToken`` and ``decimals``, ``getPrice(priceFeed)`` for each
asset and the base (8 decimals, USD) with each feed's Chainlink ``latestRoundData`` for staleness,
ERC-20 ``symbol`` of every token; for accounts ``borrowBalanceOf`` and ``collateralBalanceOf``.

``target_reserves_usd`` / ``base_borrow_min_usd`` / ``reserves_usd`` are base-token amounts, as
the contract compares them (equal to USD for a USD-stablecoin base such as USDC, the convention of
the bundled snapshot). ``max_collateral_assets`` is a contract constant (``MAX_ASSETS`` of the
deployed AssetList) with no getter: copied from the bundled snapshot.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..snapshots import data_dir, read_json
from ._common import (
    Fetched,
    Options,
    amount,
    chain_block,
    decimal_text,
    decimals_of_scale,
    feed_checks,
    position_rows,
    provenance_text,
    ratio,
    read_symbols,
    unique_symbols,
)
from .abi import COMET
from .markets import Account, Market
from .rpc import Call, ChainClient, ChainError

FACTOR_SCALE = 10**18
PRICE_SCALE = 10**8  # Comet PRICE_FEED_DECIMALS


def fetch(client: ChainClient, market: Market, accounts: list[Account], opts: Options) -> Fetched:
    blk = client.block
    assert blk is not None
    notes: list[str] = []
    comet = market.contracts["Comet"]
    client.require_code(comet, "Comet")
    head = client.values([Call("Comet", comet, COMET[f]) for f in (
        "numAssets", "baseToken", "baseTokenPriceFeed", "decimals", "storeFrontPriceFactor", "targetReserves",
        "baseBorrowMin", "getReserves")])
    (n_assets,), (base,), (base_feed,), (base_dec,), (sfpf,), (target,), (borrow_min,), (reserves,) = head
    infos = [v[0] for v in client.values([Call("Comet", comet, COMET["getAssetInfo"], (i,)) for i in range(n_assets)])]
    for i, info in enumerate(infos):
        if info[0] != i:
            raise ChainError(f"Comet {comet} getAssetInfo({i}) at block {blk.number}: offset is {info[0]}, not {i}")
    tokens = [info[1] for info in infos]
    sym = read_symbols(client, [base, *tokens])
    names = unique_symbols([(t, sym[t]) for t in tokens], notes)
    base_sym = sym[base]
    feeds = {base_sym: base_feed, **{names[info[1]]: info[2] for info in infos}}
    price_vals = client.values([Call("Comet", comet, COMET["getPrice"], (f,)) for f in feeds.values()])
    prices = {s: v[0] / PRICE_SCALE for s, v in zip(feeds, price_vals, strict=True)}
    feed_info = feed_checks(client, feeds, opts, kind="Comet")

    bundled = read_json(data_dir() / "protocols" / "compound_v3_usdc_mainnet.json")
    base_scale = 10**base_dec
    status = f"read on chain (block {blk.number})"
    assets: dict[str, Any] = {}
    for info in infos:
        _off, token, _feed, scale, bcf, lcf, lf, cap = info
        dec = decimals_of_scale(scale, f"Comet {comet} getAssetInfo: {names[token]}")
        assets[names[token]] = {
            "decimals": dec,
            "borrow_collateral_factor": ratio(bcf, FACTOR_SCALE),
            "liquidate_collateral_factor": ratio(lcf, FACTOR_SCALE),
            "liquidation_factor": ratio(lf, FACTOR_SCALE),
            "supply_cap_tokens": amount(cap, scale),
            "as_of": blk.date,
            "status": status,
            "source": provenance_text("Comet", "getAssetInfoByAddress", blk) + f" (asset {token})",
        }
    mp_prov = {k: {"as_of": blk.date, "status": provenance_text("Comet", fn, blk)} for k, fn in (
        ("store_front_price_factor", "storeFrontPriceFactor"), ("target_reserves_usd", "targetReserves"),
        ("base_borrow_min_usd", "baseBorrowMin"), ("reserves_usd", "getReserves"))}
    snapshot = {
        "protocol": "compound_v3",
        "market": f"{market.title} (Comet {comet})",
        "as_of": blk.date,
        "source": (f"Read on chain id {client.chain_id} at block {blk.number} ({blk.time_iso}) by cascade fetch "
                   f"{__version__}: Comet {comet}."),
        "base_asset": {"symbol": base_sym, "decimals": int(base_dec)},
        "market_params": {
            "store_front_price_factor": ratio(sfpf, FACTOR_SCALE),
            "target_reserves_usd": amount(target, base_scale),
            "base_borrow_min_usd": amount(borrow_min, base_scale),
            "max_collateral_assets": bundled["market_params"]["max_collateral_assets"],
            "reserves_usd": amount(reserves, base_scale),
            "provenance": mp_prov,
        },
        "caveats": [
            "Values read on chain at the block named in 'source' and 'chain'.",
            "target_reserves_usd, base_borrow_min_usd and reserves_usd are base-token amounts (what the contract "
            f"compares), i.e. {base_sym}.",
            "max_collateral_assets is a contract constant (no getter): copied from the bundled snapshot.",
            "supply_cap_tokens 0 on chain means no supply is accepted (the adapter reads 0 as 'no cap known').",
            *notes,
        ],
        "assets": assets,
        "prices_usd": prices,
        "price_feeds": feed_info,
        "chain": chain_block(client, market, {"Comet": comet}, {base_sym: base, **{names[t]: t for t in tokens}}),
    }
    fetched = Fetched("compound_v3", market, blk, snapshot, notes=notes, accounts=list(accounts))
    if accounts:
        fetched.positions = _positions(client, comet, accounts, tokens, names, assets, base_sym, int(base_dec), notes)
    return fetched


def _positions(client: ChainClient, comet: str, accounts: list[Account], tokens: list[str], names: dict[str, str],
               assets: dict[str, Any], base_sym: str, base_dec: int, notes: list[str]) -> list[dict[str, str]]:
    for a in accounts:
        if a.ilk is not None:
            raise ChainError(f"account '{a.label}': an ILK prefix is only meaningful for maker", field="--accounts")
    per = 1 + len(tokens)
    vals = client.values([c for a in accounts for c in (
        Call("Comet", comet, COMET["borrowBalanceOf"], (a.address,)),
        *(Call("Comet", comet, COMET["collateralBalanceOf"], (a.address, t)) for t in tokens))])
    rows: list[dict[str, str]] = []
    empty = 0
    for k, a in enumerate(accounts):
        (borrow,) = vals[k * per]
        coll = [(names[t], decimal_text(vals[k * per + 1 + j][0], assets[names[t]]["decimals"]))
                for j, t in enumerate(tokens) if vals[k * per + 1 + j][0] > 0]
        debt = [(base_sym, decimal_text(borrow, base_dec))] if borrow > 0 else []
        if not coll and not debt:
            empty += 1
            continue
        rows += position_rows("compound_v3", a.address, coll, debt)
    if empty:
        notes.append(f"{empty} account(s) hold no collateral and no borrow: not in the positions file")
    return rows
