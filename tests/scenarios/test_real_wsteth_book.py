"""The bundled real book: the Aave v3 wstETH-collateral accounts of 19 Jun 2023 (data/books/).

The simulator's health factor of every account whose legs are all named in the source (no pseudo-asset
leg) equals the health factor the source read from chain. Single-collateral accounts agree to 2e-7 (all
but six to 1e-9; six accounts' WETH debt amounts differ from their USD debt by up to 1e-7, interest accrued
between the source's reads); the multi-collateral ones agree as closely once the Pool v3.0 rounding the
2023 read carries is applied (v3.0 truncated the account's average liquidation threshold to whole bps
before multiplying; v3.3+, which the adapter implements, keeps the sum's precision: aave-v3-origin
GenericLogic.calculateUserAccountData).
"""

import csv

import numpy as np
import pytest

from optimizer.engine import evaluate, prepare
from optimizer.scenario.config import load_scenario
from optimizer.snapshots import data_dir
from protocols import Prices

SCENARIO = data_dir() / "scenarios" / "aave_v3_wsteth_book_2023-06-19.toml"
REPORTED = data_dir() / "books" / "aave_v3_wsteth_accounts_2023-06-19_reported.csv"
PSEUDO = ("OTHER_COLLATERAL_USD", "OTHER_DEBT_USD")


@pytest.fixture(scope="module")
def prepared():
    return prepare(load_scenario(SCENARIO).with_overrides(paths=1))


def _reported() -> dict[str, dict[str, float]]:
    with REPORTED.open(newline="") as fh:
        return {r["account"]: {k: float(v) for k, v in r.items() if k != "account"} for r in csv.DictReader(fh)}


def test_health_factor_equals_the_chain_read_for_fully_known_accounts(prepared):
    pb = prepared.draws["aave_v3"]
    book = pb.book
    ad = prepared.current["aave_v3"]
    close0 = prepared.paths.close[0, 0]
    assets = prepared.market.assets
    prices = Prices(close0[[assets.index(a) for a in book.collateral_assets]],
                    close0[[assets.index(a) for a in book.debt_assets]])
    hf = ad.health(book, prices)
    rep = _reported()
    pseudo_c = [book.collateral_assets.index(a) for a in PSEUDO if a in book.collateral_assets]
    pseudo_d = [book.debt_assets.index(a) for a in PSEUDO if a in book.debt_assets]
    named = ~((book.collateral_tokens[:, pseudo_c] > 0).any(1) | (book.debt_tokens[:, pseudo_d] > 0).any(1))
    debt_usd = (book.debt_tokens * prices.debt_usd).sum(1)
    known = named & (debt_usd > 1.0)  # two dust accounts owe < $1 in an unnamed asset
    assert known.sum() >= 125 and (book.category[known] == 1).sum() >= 100
    chain = np.array([rep[a]["health_factor"] for a in pb.accounts])
    coll_usd = book.collateral_tokens * prices.collateral_usd
    single = known & ((book.collateral_tokens > 0).sum(1) == 1)
    np.testing.assert_allclose(hf[single], chain[single], rtol=2e-7)
    assert (np.abs(hf[single] / chain[single] - 1) < 1e-9).sum() >= single.sum() - 8  # all but the six
    multi = known & ~single
    assert multi.sum() >= 1
    t = ad.position_terms(book)
    # v3.0: HF = total collateral x floor(sum(value x LT) / total collateral, bps) / debt
    m = multi
    lt_bps = np.floor((coll_usd[m] * t.health_weight[m] * 1e4).sum(1) / coll_usd[m].sum(1) + 1e-9)
    v30 = np.zeros(len(hf))
    v30[m] = coll_usd[m].sum(1) * lt_bps / 1e4 / debt_usd[m]
    np.testing.assert_allclose(v30[multi], chain[multi], rtol=2e-7)
    assert np.all(np.abs(hf[multi] / chain[multi] - 1) < 1e-4)  # the two rules differ by the truncation only
    # and the totals (a few small accounts' USD totals in the source are at its own prices, 0.019 % above
    # the oracle on both sides, which leaves their health factor unchanged)
    np.testing.assert_allclose(coll_usd.sum(1)[known], [rep[a]["collateral_usd"] for a in pb.accounts[known]],
                               rtol=2e-4)


def test_book_keeps_the_legs_emodes_and_totals_of_the_source(prepared):
    pb = prepared.draws["aave_v3"]
    rep = _reported()
    assert len(pb.accounts) == len(rep) == 502
    assert int((pb.book.category == 1).sum()) == 130
    b = pb.book
    close0 = prepared.paths.close[0, 0]
    assets = prepared.market.assets
    coll = (b.collateral_tokens * close0[[assets.index(a) for a in b.collateral_assets]]).sum()
    debt = (b.debt_tokens * close0[[assets.index(a) for a in b.debt_assets]]).sum()
    assert coll == pytest.approx(sum(r["collateral_usd"] for r in rep.values()), rel=1e-6)
    assert debt == pytest.approx(sum(r["debt_usd"] for r in rep.values()), rel=1e-6)


def test_the_scenario_runs_on_the_kernel_and_liquidates_emode_loops(prepared):
    res = evaluate(prepared, analyses=False)
    assert res.engine == "kernel"  # accounts with several collaterals and debts run on the fast path (issue 11)
    m = res.metrics()
    assert m["liquidations"]["mean"] > 0 and m["liquidated_usd"]["mean"] > 1e7
    liquidated = res.raw.account_liquidated[0] > 0
    assert (liquidated & (res.bound.books[0].book.category == 1)).sum() > 10, "the wstETH discount hits eMode loops"
    r = res.raw
    np.testing.assert_allclose(r.collateral_seized_usd, r.debt_repaid_usd + r.liquidator_bonus_usd
                               + r.protocol_fee_usd + r.returned_to_owner_usd, rtol=1e-9)
