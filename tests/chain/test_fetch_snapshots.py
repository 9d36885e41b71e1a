"""cascade fetch on a real EVM: each venue deployed with the bundled values reads back value for value."""

import csv
import json
from decimal import Decimal

import pytest
from compare import assert_aave_equal, assert_comet_equal, assert_maker_equal
from deploy import bundled

from optimizer.chain import ChainClient, ClientOptions, fetch, write_fetched
from optimizer.chain.markets import Account, market_from_json
from optimizer.snapshots import load_adapter


def _fetch(chain, deployed, protocol, accounts=(), **kw):
    market = market_from_json(deployed.market, file=None, protocol=protocol)
    client = ChainClient(chain.provider, ClientOptions(concurrency=1, **kw))
    return fetch(protocol, client=client, market=market, accounts=list(accounts)), client


def _accounts(deployed):
    return [Account(a.split(":")[-1], a.split(":")[0] if ":" in a else None) for a in deployed.positions]


def _legs(rows):
    """account -> {"collateral": {asset: Decimal}, "debt": {asset: Decimal}} from position rows."""
    out = {}
    for r in rows:
        acc = out.setdefault(r["account"], {"collateral": {}, "debt": {}})
        for side, a, q in (("collateral", r["collateral_asset"], r["collateral_amount"]),
                           ("debt", r["debt_asset"], r["debt_amount"])):
            if a:
                acc[side][a] = acc[side].get(a, Decimal(0)) + Decimal(q)
    return out


def _expected(deployed):
    return {a: {"collateral": {s: Decimal(q) for s, q in p["collateral"].items()},
                "debt": {s: Decimal(q) for s, q in p["debt"].items()}} for a, p in deployed.positions.items()}


def test_aave_snapshot_equals_bundled_and_positions_match(chain, aave, tmp_path):
    f, client = _fetch(chain, aave, "aave_v3", _accounts(aave) + [Account(next(iter(aave.tokens.values())))])
    snap = f.snapshot
    assert_aave_equal(snap, bundled("aave_v3_ethereum_core.json"), aave.expected["pt"])
    assert snap["chain"]["chain_id"] == chain.chain_id and snap["chain"]["block_number"] == chain.block_number()
    assert snap["chain"]["block_timestamp"] == chain.now() and snap["as_of"] == snap["chain"]["block_time"][:10]
    assert snap["market"] == f"Aave v3 Ethereum Core (Pool {aave.contracts['pool'].address})"
    assert snap["prices_usd"] == aave.prices
    checked = {s for s, v in snap["price_feeds"].items() if v["checked"]}
    assert checked == {"WETH", "WBTC", "USDC"} and not any(v["stale"] for v in snap["price_feeds"].values())
    assert client.multicall == aave.market["multicall3"] and client.requests < 40  # batched: 63 reserves, 255 eModes
    # the adapter reads the fetched file exactly as the bundled one: same current parameters
    out = tmp_path / "aave.json"
    write_fetched(f, out, tmp_path / "aave.positions.csv")
    cur_f = load_adapter("aave_v3", out).schema().current()
    cur_b = load_adapter("aave_v3").schema().current()
    assert {k: cur_f[k] for k in cur_b} == cur_b
    # positions: what was deployed, in whole tokens, with the account's eMode on every row
    rows = list(csv.DictReader((tmp_path / "aave.positions.csv").open()))
    assert _legs(rows) == _expected(aave)
    emode = {r["account"]: r["emode"] for r in rows}
    assert emode == {a: str(p["emode"]) for a, p in aave.positions.items()}
    assert any("no collateral and no debt" in n for n in f.notes)


def test_comet_snapshot_equals_bundled_and_positions_match(chain, comet, tmp_path):
    f, _ = _fetch(chain, comet, "compound_v3", _accounts(comet))
    assert_comet_equal(f.snapshot, bundled("compound_v3_usdc_mainnet.json"), comet.expected["caps"],
                       comet.expected["reserves_usd"])
    assert f.snapshot["prices_usd"] == comet.prices
    assert all(v["checked"] and not v["stale"] for v in f.snapshot["price_feeds"].values())
    assert _legs(f.positions) == _expected(comet)
    out = tmp_path / "comet.json"
    write_fetched(f, out)
    assert load_adapter("compound_v3", out).schema().current()["WETH.liquidation_factor"] == 0.93


def test_maker_snapshot_equals_bundled_and_urns_match(chain, maker):
    f, _ = _fetch(chain, maker, "maker", [Account(a.split(":")[1]) for a in maker.positions])
    assert_maker_equal(f.snapshot, bundled("maker_ilks.json"))
    assert f.snapshot["prices_usd"] == maker.prices
    rates = f.snapshot["chain"]["ilks"]
    assert all(rates[i]["rate"] == maker.expected["rates"][i] / 10**27 for i in rates)
    assert _legs(f.positions) == _expected(maker)


def test_without_multicall_the_same_snapshot(chain, maker):
    two = type(maker)({**maker.market, "ilks": ["ETH-A", "LSEV2-SKY-A"]}, {}, {}, {})
    with_mc, c1 = _fetch(chain, two, "maker")
    plain, c2 = _fetch(chain, two, "maker", multicall=False)
    assert c2.multicall is None and c2.requests > 3 * c1.requests
    a, b = dict(with_mc.snapshot), dict(plain.snapshot)
    a["chain"], b["chain"] = {**a["chain"], "multicall3": None}, {**b["chain"], "multicall3": None}
    assert a == b


@pytest.mark.parametrize("proto", ["aave_v3", "compound_v3", "maker"])
def test_fetched_snapshot_is_a_drop_in_for_simulate(chain, aave, comet, maker, tmp_path, proto):
    """A scenario's `snapshot =` key takes the fetched file and its CSV book the fetched positions."""
    from optimizer.engine import simulate

    deployed = {"aave_v3": aave, "compound_v3": comet, "maker": maker}[proto]
    f, _ = _fetch(chain, deployed, proto, _accounts(deployed))
    write_fetched(f, tmp_path / "snap.json", tmp_path / "book.csv")
    assets = {"aave_v3": {"WETH": 3012.5, "wstETH": 3300, "WBTC": 61234.56789012, "USDC": 1, "USDT": 1, "DAI": 1},
              "compound_v3": {"WETH": 3011.25, "WBTC": 61000.5, "LINK": 14.7251, "USDC": 1},
              "maker": {"ETH": 3005.5, "wstETH": 3590.5, "DAI": 1}}[proto]
    toml = ["[scenario]", 'name = "fetched"', "step_min = 30", "horizon_h = 2", "paths = 4", "seed = 1"]
    for a, p in assets.items():
        toml += [f"[assets.{a}]", f"price_usd = {p}",
                 'model = "gbm"\nsigma_annual = 0.5' if p > 2 else 'model = "constant"']
    toml += ["[[protocols]]", f'adapter = "{proto}"', 'snapshot = "snap.json"', "[protocols.book]", 'kind = "csv"',
             'path = "book.csv"']
    (tmp_path / "s.toml").write_text("\n".join(toml) + "\n")
    res = simulate(tmp_path / "s.toml", analyses=False)
    assert res.bound.books[0].book.n_positions == len(deployed.positions)
    assert res.metrics()["capital_efficiency"]["debt_usd"] > 0
    assert json.loads((tmp_path / "snap.json").read_text())["chain"]["block_number"] == chain.block_number()


@pytest.mark.parametrize("kind", ["LinearDecrease", pytest.param("ExponentialDecrease", marks=pytest.mark.skipif(
    not __import__("os").environ.get("CASCADE_FULL_TESTS"), reason="CASCADE_FULL_TESTS=1"))])
def test_abacus_type_is_told_by_its_getters(chain, maker, kind):
    """An ilk whose Clipper uses another abacus: the reader tells the type from which getters answer."""
    from evm import fixed

    calc = chain.deploy("MakerLinear", 3600) if kind == "LinearDecrease" else \
        chain.deploy("MakerExponential", fixed("0.9999", 27))
    mom = maker.contracts["mom"]
    clip = chain.deploy("MakerClipper", fixed("1.2", 27), 7200, fixed("0.4", 27), fixed("0.001", 18),
                        fixed(300, 45), 0, calc.address, mom.address)
    dog = chain.deploy("MakerDog", fixed(100_000_000, 45))
    chain.send(dog.functions.setIlks([(b"ETH-A".ljust(32, b"\0"), clip.address, fixed("1.1", 18), fixed(10**6, 45))]))
    log = chain.deploy("MakerChainlog")
    for k, a in (("MCD_VAT", maker.contracts["vat"].address), ("MCD_SPOT", maker.contracts["spot"].address),
                 ("MCD_DOG", dog.address), ("CLIPPER_MOM", mom.address)):
        chain.send(log.functions.setAddress(k.encode().ljust(32, b"\0"), a))
    market = {**maker.market, "contracts": {"Chainlog": log.address}, "ilks": ["ETH-A"]}
    f, _ = _fetch(chain, type(maker)(market, {}, {}, {}), "maker")
    ilk = f.snapshot["ilks"]["ETH-A"]
    assert ilk["calc"] == ({"type": kind, "tau_s": 3600} if kind == "LinearDecrease"
                           else {"type": kind, "cut": 0.9999, "tau_s": 0})
    assert (ilk["buf"], ilk["tail_s"], ilk["cusp"], ilk["tip_dai"], ilk["chop"]) == (1.2, 7200, 0.4, 300, 1.1)
    assert ilk["clipper_mom_tolerance"] is None  # ClipperMom is a ward but has no tolerance for this clip
