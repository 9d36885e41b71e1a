"""Deploy each venue on the test chain with the real values of the bundled snapshots (data/protocols).

Each ``deploy_*`` returns a :class:`Deployed`: the market JSON to pass as ``--market``, the token
addresses, the prices and the positions that were put on chain (what a fetch must give back).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from evm import Chain, address_of, fixed

from optimizer import data_dir

HERE = Path(__file__).parent
WAD, RAY, RAD = 18, 27, 45


def bundled(name: str) -> dict[str, Any]:
    return json.loads((data_dir() / "protocols" / name).read_text())


@dataclass
class Deployed:
    market: dict[str, Any]
    tokens: dict[str, str]  # symbol -> address
    prices: dict[str, float]  # symbol (ilk for maker) -> USD
    contracts: dict[str, Any]  # name -> web3 contract
    positions: dict[str, dict[str, Any]] = field(default_factory=dict)  # account -> {"collateral": {}, "debt": {}}
    feeds: dict[str, Any] = field(default_factory=dict)  # symbol -> aggregator contract
    expected: dict[str, Any] = field(default_factory=dict)  # chain-only values for the extra assets

    def market_file(self, tmp: Path, **changes: Any) -> Path:
        p = tmp / f"market-{self.market['protocol']}-{len(changes)}.json"
        p.write_text(json.dumps({**self.market, **changes}))
        return p


def deploy_multicall(chain: Chain) -> str:
    return chain.deploy("Multicall3").address


def _aggregator(chain: Chain, price: float, label: str, updated_at: int | None = None):
    return chain.deploy("Aggregator", 8, f"{label} / USD", fixed(price, 8), chain.now() if updated_at is None
                        else updated_at)


# ------------------------------------------------------------------------------------------------ Aave
AAVE_FEED_PRICES = {"WETH": 3012.5, "WBTC": 61234.56789012, "USDC": 0.99985}  # assets with a Chainlink source


def _fallback_price(sym: str) -> float:
    """Deterministic prices for the reserves read through the oracle's fallback (no Chainlink source)."""
    if any(s in sym for s in ("USD", "DAI", "GHO", "FRAX", "EUR")):
        return 1.0 if "EUR" not in sym else 1.08
    if "BTC" in sym:
        return 60000.0
    if "ETH" in sym:
        return 3300.0
    return 12.5


def deploy_aave(chain: Chain, multicall: str | None) -> Deployed:
    snap = bundled("aave_v3_ethereum_core.json")
    pts = json.loads((HERE / "data" / "aave_v3_pt_reserves.json").read_text())["assets"]
    assets = {**snap["assets"], **{k: v for k, v in pts.items()}}
    tokens = {s: address_of(f"aave:{s}") for s in assets}
    pool = chain.deploy("AavePool")
    oracle = chain.deploy("AaveOracle", 10**8)
    dp = chain.deploy("AaveDataProvider")
    provider = chain.deploy("AaveAddressesProvider", pool.address, oracle.address, dp.address)

    rows = []
    for s, a in assets.items():
        rows.append((tokens[s], a["ltv_bps"], a["liquidation_threshold_bps"], a["liquidation_bonus_bps"], a["decimals"],
                     a["active"], a["frozen"], a["borrowing_enabled"], a["paused"], a["borrowable_in_isolation"],
                     a["siloed_borrowing"], True, a["reserve_factor_bps"], int(a["borrow_cap_tokens"]),
                     int(a["supply_cap_tokens"]), a["liquidation_protocol_fee_bps"], fixed(a["debt_ceiling_usd"], 2)))
    for k in range(0, len(rows), 32):
        chain.send(pool.functions.initReserves(rows[k:k + 32]))
    syms = list(assets)
    for k in range(0, len(syms), 64):
        chain.send(dp.functions.addTokens([(s, tokens[s]) for s in syms[k:k + 64]]))
    rid = {s: i for i, s in enumerate(syms)}

    def bitmap(names: list[str]) -> int:
        return sum(1 << rid[n] for n in names)

    em = [(int(i), e["ltv_bps"], e["liquidation_threshold_bps"], e["liquidation_bonus_bps"], e["label"],
           bitmap(e["collateral_assets"]), bitmap(e["borrowable_assets"])) for i, e in snap["emodes"].items()]
    chain.send(pool.functions.configureEModes(em))

    feeds = {s: _aggregator(chain, p, s) for s, p in AAVE_FEED_PRICES.items()}
    chain.send(oracle.functions.setAssetSources([tokens[s] for s in feeds], [f.address for f in feeds.values()]))
    fallback = {s: _fallback_price(s) for s in syms if s not in feeds}
    fb = list(fallback)
    for k in range(0, len(fb), 64):
        chain.send(oracle.functions.setFallbackPrices([tokens[s] for s in fb[k:k + 64]],
                                                      [fixed(fallback[s], 8) for s in fb[k:k + 64]]))
    prices = {**fallback, **AAVE_FEED_PRICES}

    # Accounts: (emode, {symbol: (supplied, collateral?)}, {symbol: (stable, variable)})
    accounts = {
        address_of("aave-user-1"): (0, {"WETH": ("10.5", True)}, {"USDC": ("0", "12000.123456")}),
        address_of("aave-user-2"): (1, {"wstETH": ("100", True), "USDC": ("5000", False)}, {"WETH": ("0", "70.25")}),
        address_of("aave-user-3"): (0, {"WBTC": ("0.5", True), "WETH": ("1", True)},
                                    {"USDT": ("0", "1000"), "DAI": ("0.5", "500.25")}),
        address_of("aave-user-4"): (0, {}, {}),
    }
    users, reserves_in = [], []
    positions = {}
    for user, (emode, coll, debt) in accounts.items():
        bits = 0
        for s, (_amt, as_coll) in coll.items():
            bits |= (1 << (2 * rid[s] + 1)) if as_coll else 0
        for s in debt:
            bits |= 1 << (2 * rid[s])
        users.append((user, emode, bits))
        for s in dict.fromkeys([*coll, *debt]):
            dec = assets[s]["decimals"]
            a_amt, as_coll = coll.get(s, ("0", False))
            st, var = debt.get(s, ("0", "0"))
            reserves_in.append((user, tokens[s], fixed(a_amt, dec), fixed(st, dec), fixed(var, dec), as_coll))
        positions[user] = {"emode": emode, "collateral": {s: a for s, (a, c) in coll.items() if c},
                           "debt": {s: str(Decimal(st) + Decimal(v)) for s, (st, v) in debt.items()}}
    chain.send(pool.functions.setUsers(users))
    for k in range(0, len(reserves_in), 32):
        chain.send(dp.functions.setUserReserves(reserves_in[k:k + 32]))
    market = {"protocol": "aave_v3", "name": "test-core", "title": "Aave v3 Ethereum Core", "chain_id": chain.chain_id,
              "contracts": {"PoolAddressesProvider": provider.address}, "multicall3": multicall}
    return Deployed(market, tokens, prices, {"pool": pool, "oracle": oracle, "dp": dp, "provider": provider},
                    {u: p for u, p in positions.items() if p["collateral"] or p["debt"]}, feeds,
                    {"pt": pts, "assets": assets})


# ------------------------------------------------------------------------------------------------ Comet
COMET_PRICES = {"USDC": 0.99993, "WETH": 3011.25, "WBTC": 61000.5, "wstETH": 3600.75, "cbBTC": 60990.0,
                "tBTC": 60500.0, "USDe": 0.9991, "LINK": 14.7251, "UNI": 7.8512, "COMP": 45.5}
# The bundled file does not know these supply caps (null): stand-ins put on chain, compared with the chain.
COMET_UNKNOWN_CAPS = {"WETH": 350000, "WBTC": 18000}


def deploy_comet(chain: Chain, multicall: str | None) -> Deployed:
    snap = bundled("compound_v3_usdc_mainnet.json")
    base = snap["base_asset"]
    tokens = {base["symbol"]: chain.deploy("ERC20", base["symbol"], base["decimals"]).address}
    feeds = {base["symbol"]: _aggregator(chain, COMET_PRICES[base["symbol"]], base["symbol"])}
    for s, a in snap["assets"].items():
        tokens[s] = chain.deploy("ERC20", s, a["decimals"]).address
        feeds[s] = _aggregator(chain, COMET_PRICES[s], s)
    mp = snap["market_params"]
    reserves = 12_345_678.5
    comet = chain.deploy("Comet", tokens[base["symbol"]], feeds[base["symbol"]].address, base["decimals"],
                         fixed(mp["store_front_price_factor"], 18), fixed(mp["target_reserves_usd"], base["decimals"]),
                         fixed(mp["base_borrow_min_usd"], base["decimals"]), fixed(reserves, base["decimals"]))
    infos = []
    caps = {}
    for i, (s, a) in enumerate(snap["assets"].items()):
        cap = a["supply_cap_tokens"] if a["supply_cap_tokens"] is not None else COMET_UNKNOWN_CAPS.get(s, 0)
        caps[s] = cap
        # Comet stores factors with 4 decimals and returns them scaled to 1e18 (descale = 1e18 / 1e4)
        infos.append((i, tokens[s], feeds[s].address, 10 ** a["decimals"], fixed(a["borrow_collateral_factor"], 4) * 10**14,
                      fixed(a["liquidate_collateral_factor"], 4) * 10**14, fixed(a["liquidation_factor"], 4) * 10**14,
                      fixed(cap, a["decimals"])))
    chain.send(comet.functions.addAssets(infos))
    u1, u2, u3 = (address_of(f"comet-user-{i}") for i in (1, 2, 3))
    positions = {u1: {"collateral": {"WETH": "12.75"}, "debt": {"USDC": "20000.5"}},
                 u2: {"collateral": {"WBTC": "0.33", "LINK": "1000"}, "debt": {"USDC": "9000"}}}
    coll = [(u, tokens[s], fixed(a, snap["assets"][s]["decimals"])) for u, p in positions.items()
            for s, a in p["collateral"].items()]
    debt = [(u, fixed(p["debt"]["USDC"], base["decimals"])) for u, p in positions.items()]
    chain.send(comet.functions.setBalances(coll, debt + [(u3, 0)]))
    market = {"protocol": "compound_v3", "name": "test-usdc", "title": "Compound III cUSDCv3 Ethereum mainnet",
              "chain_id": chain.chain_id, "contracts": {"Comet": comet.address}, "multicall3": multicall}
    return Deployed(market, tokens, dict(COMET_PRICES), {"comet": comet}, positions, feeds,
                    {"caps": caps, "reserves_usd": reserves})


# ------------------------------------------------------------------------------------------------ Maker
MAKER_PRICES = {"ETH": 3005.5, "WBTC": 60100.25, "wstETH": 3590.5, "SKY": 0.075}


def _b32(s: str) -> bytes:
    return s.encode().ljust(32, b"\0")


def deploy_maker(chain: Chain, multicall: str | None) -> Deployed:
    from protocols.maker import Maker

    snap = bundled("maker_ilks.json")
    under = Maker.from_snapshot(snap).underlying
    vat = chain.deploy("MakerVat")
    spot = chain.deploy("MakerSpotter", 10**27)
    dog = chain.deploy("MakerDog", fixed(snap["global"]["Hole_dai"], RAD))
    mom = chain.deploy("MakerClipperMom")
    log = chain.deploy("MakerChainlog")
    for k, c in (("MCD_VAT", vat), ("MCD_SPOT", spot), ("MCD_DOG", dog), ("CLIPPER_MOM", mom)):
        chain.send(log.functions.setAddress(_b32(k), c.address))
    osm = {t: chain.deploy("MakerOSM", snap["global"]["osm_hop_s"]) for t in dict.fromkeys(under.values())}
    calcs: dict[tuple, Any] = {}
    vat_in, spot_in, dog_in, clips, tols = [], [], [], [], []
    rates = {}
    prices = {}
    for n, (ilk, p) in enumerate(snap["ilks"].items()):
        c = p["calc"]
        key = (c["cut"], c["step_s"])
        if key not in calcs:
            calcs[key] = chain.deploy("MakerStairstep", fixed(c["cut"], RAY), c["step_s"])
        wired = p["clipper_mom_tolerance"] is not None
        clip = chain.deploy("MakerClipper", fixed(p["buf"], RAY), p["tail_s"], fixed(p["cusp"], RAY),
                            fixed(p["chip"], WAD), fixed(p["tip_dai"], RAD), 0 if p["liquidations_enabled"] else 1,
                            calcs[key].address, mom.address if wired else "0x" + "00" * 20)
        clips.append(clip.address)
        tols.append(fixed(p["clipper_mom_tolerance"], RAY) if wired else 0)
        mat = fixed(p["mat"], RAY)
        price = MAKER_PRICES[under[ilk]]
        spot_v = fixed(price, 18) * 10**9 * 10**27 // 10**27 * 10**27 // mat  # Spotter.poke with par = 1
        rate = 10**27 + (n + 1) * 10**25  # rate > 1: debt = art x rate
        rates[ilk] = rate
        prices[ilk] = spot_v * mat / 10**54
        vat_in.append((_b32(ilk), 0, rate, spot_v, 10**60, fixed(p["dust_dai"], RAD)))
        spot_in.append((_b32(ilk), osm[under[ilk]].address, mat))
        dog_in.append((_b32(ilk), clip.address, fixed(p["chop"], WAD), fixed(p["hole_dai"], RAD)))
    chain.send(vat.functions.setIlks(vat_in))
    chain.send(spot.functions.setIlks(spot_in))
    chain.send(dog.functions.setIlks(dog_in))
    chain.send(mom.functions.setTolerances(clips, tols))
    u1, u2 = address_of("maker-urn-1"), address_of("maker-urn-2")
    urns = [("ETH-A", u1, "100.5", "150000"), ("WSTETH-A", u2, "20", "30000.123"), ("ETH-B", u2, "3", "0")]
    chain.send(vat.functions.setUrns([(_b32(i), u, fixed(ink, 18), fixed(art, 18)) for i, u, ink, art in urns]))
    positions = {}
    for i, u, ink, art in urns:
        debt = Decimal(fixed(art, 18) * rates[i]) / Decimal(10) ** 45
        positions[f"{i}:{u}"] = {"collateral": {i: ink}, "debt": {"DAI": format(debt.normalize(), "f")} if art != "0"
                                 else {}}
    market = {"protocol": "maker", "name": "test-maker", "title": snap["market"], "chain_id": chain.chain_id,
              "contracts": {"Chainlog": log.address}, "multicall3": multicall, "ilks": list(snap["ilks"])}
    return Deployed(market, {}, prices, {"vat": vat, "spot": spot, "dog": dog, "mom": mom, "log": log}, positions,
                    {}, {"rates": rates})
