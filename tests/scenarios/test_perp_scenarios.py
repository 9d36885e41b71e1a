"""The bundled perp scenarios (``data/scenarios/perp_*.toml``): the 10 Oct 2025 replay liquidates where the
crash is, the mixed lending + perp scenario shows contagion across venues on the same paths, and a perp
scenario optimises through ``cascade optimize`` keeping the adapters' invariants.

Books are shrunk and horizons cut (the same TOML otherwise) so the reference engine runs them in seconds.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np

from optimizer.engine import evaluate, prepare
from optimizer.scenario.config import parse_scenario
from optimizer.snapshots import data_dir

SCENARIOS = data_dir() / "scenarios"
REPLAY = SCENARIOS / "perp_hyperliquid_btc_2025-10-10.toml"
MIXED = SCENARIOS / "perp_mixed_aave_hyperliquid_eth_12h.toml"
BINANCE = SCENARIOS / "perp_binance_btc_synthetic_crash_3h.toml"


def _load(path: Path, *, positions: dict[str, int] | None = None, paths: int | None = None,
          horizon_h: float | None = None, drop: tuple[str, ...] = ()):
    data = tomllib.loads(path.read_text())
    data["protocols"] = [p for p in data["protocols"] if p["adapter"] not in drop]
    for p in data["protocols"]:
        if positions and p["adapter"] in positions:
            p["book"]["positions"] = positions[p["adapter"]]
    if horizon_h is not None:
        data["scenario"]["horizon_h"] = horizon_h
    return parse_scenario(data, file=str(path), base_dir=path.parent).with_overrides(paths=paths)


def test_the_replay_liquidates_longs_in_the_crash_minutes_and_deleverages():
    res = evaluate(prepare(_load(REPLAY, positions={"hyperliquid": 800})), events=True)
    m = res.metrics()
    ev = res.event_array
    ts = res.bound.prepared.paths.timestamps
    # a falling window: longs are liquidated (the window's high is only 0.2 % above its open: no short is)
    assert m["perp_liquidated_long_usd"]["mean"] > 1e8 and m["perp_liquidated_short_usd"]["mean"] == 0
    # the bulk of the long liquidations comes in the 21:13-21:26 crash minutes (the 21:19 bar fell 6.1 %)
    crash = (ts[ev["step"]] >= np.datetime64("2025-10-10T21:13")) & (ts[ev["step"]] <= np.datetime64("2025-10-10T21:26"))
    assert ev["debt_repaid_usd"][crash].sum() > 0.5 * ev["debt_repaid_usd"].sum()
    assert m["p_adl"]["mean"] == 1.0 and m["adl_volume_usd"]["mean"] > 0  # Hyperliquid has no insurance fund
    assert m["amplification"]["mean"] > 1.0  # the book's own sales deepen the low


def test_perp_liquidations_move_the_price_the_lending_oracle_reads():
    """Contagion: the same Aave book on the same paths liquidates more and loses more when a Hyperliquid ETH
    book trades on its WETH market than alone (the perp longs' forced sales push the oracle price down), and
    the perp book liquidates more with the Aave book there (the Aave liquidators' sales push the marks)."""
    kw = {"positions": {"aave_v3": 800, "hyperliquid": 600}, "paths": 3, "horizon_h": 5.0}
    both = evaluate(prepare(_load(MIXED, **kw)), engine="reference")  # one engine for all three runs
    alone = evaluate(prepare(_load(MIXED, drop=("hyperliquid",), **kw)), engine="reference")
    perp_alone = evaluate(prepare(_load(MIXED, drop=("aave_v3",), **kw)), engine="reference")
    rb, ra, rp = both.raw, alone.raw, perp_alone.raw
    np.testing.assert_array_equal(both.bound.prepared.paths.close, alone.bound.prepared.paths.close)  # same paths
    assert rb.perp_market_sold_base[:, 1].min() > 0
    assert np.all(rb.market_low_min[:, 0] < ra.market_low_min[:, 0])  # a deeper WETH low on every path
    assert rb.liquidations[:, 0].sum() > ra.liquidations[:, 0].sum()
    assert rb.collateral_seized_usd[:, 0].sum() > 1.05 * ra.collateral_seized_usd[:, 0].sum()
    assert rb.bad_debt_usd[:, 0].sum() > ra.bad_debt_usd[:, 0].sum()
    # and back: the lending sales move the perp marks
    assert rb.perp_liquidated_long_usd[:, 1].sum() > rp.perp_liquidated_long_usd[:, 0].sum()


def test_a_perp_scenario_optimises_and_every_candidate_keeps_the_bracket_invariants(tmp_path):
    """``cascade optimize`` on the Binance crash (book shrunk, horizon cut): the search runs over leverage
    limits and maintenance margins; every simulated candidate has its brackets in order and each MMR below
    the initial margin rate (1 / max leverage); candidates that break them are rejected before simulation."""
    import optuna

    from optimizer.search import StorageSpec
    from optimizer.search.runner import SearchRequest, optimize

    text = BINANCE.read_text()
    for old, new in (("positions = 3000", "positions = 300"), ("horizon_h = 3\n", "horizon_h = 2.25\n")):
        assert old in text
        text = text.replace(old, new)
    f = tmp_path / "binance.toml"
    f.write_text(text)
    journal = tmp_path / "study.journal"
    res = optimize(SearchRequest(str(f), trials=6, paths=8, storage=str(journal), study="perp", cwd=str(tmp_path)))
    out = res._data
    study = optuna.load_study(study_name="perp", storage=StorageSpec(path=str(journal)).open())
    cur = {"BTCUSDT.bracket3.max_leverage": 50, "BTCUSDT.bracket4.max_leverage": 20,
           "BTCUSDT.bracket3.maintenance_margin_rate": 0.01, "BTCUSDT.bracket4.maintenance_margin_rate": 0.025}
    simulated = [t for t in study.trials if t.user_attrs.get("fidelity") in ("full", "screen")]
    assert simulated, "no candidate was simulated"
    for t in simulated:
        p = cur | {k.split(":", 1)[1]: v for k, v in t.params.items()}
        assert 10 <= p["BTCUSDT.bracket4.max_leverage"] <= p["BTCUSDT.bracket3.max_leverage"] <= 100
        assert 0.005 <= p["BTCUSDT.bracket3.maintenance_margin_rate"] <= p["BTCUSDT.bracket4.maintenance_margin_rate"]
        assert p["BTCUSDT.bracket4.maintenance_margin_rate"] <= 0.05
        assert p["BTCUSDT.bracket3.maintenance_margin_rate"] < 1.0 / p["BTCUSDT.bracket3.max_leverage"]
        assert p["BTCUSDT.bracket4.maintenance_margin_rate"] < 1.0 / p["BTCUSDT.bracket4.max_leverage"]
        assert "p_insurance_depletion" in t.system_attrs["cascade:metrics"]
        assert 0.0 <= t.user_attrs["risk_ci95_low"] <= t.user_attrs["risk_ci95_high"] <= 1.0
    for t in study.trials:
        if "infeasible" in t.user_attrs:
            assert t.user_attrs["fidelity"] == "none" and t.constraints["invariants"] > 0
    assert out["objective"]["risk_metric"] == "p_insurance_depletion"
    assert "Wilson 95 % interval of p_insurance_depletion" in out["objective"]["description"]
    # a perp book is judged by the leverage it is offered, and the result shows perp losses, not bad debt
    assert out["objective"]["efficiency_unit"] == "leverage" and "leverage offered" in out["objective"]["description"]
    from optimizer.search.result import metric_columns
    from optimizer.search.rows import table_rows

    rows = dict(table_rows(out, metric_columns(out)))
    eff = out["current"]["metrics"]["capital_efficiency"]["ratio"]
    assert rows["leverage offered (notional at the maximum leverage / margin)"][0] == f"{eff:.2f}×" and eff > 1
    assert "p_insurance_depletion (probability per path) (constraint)" in rows
    assert "insurance-fund drawdown (mean, USD)" in rows and "P(ADL) (Wilson 95 % interval)" in rows
    assert not any("borrower penalty" in k or "bad debt / debt" in k for k in rows)
    assert all(t.user_attrs.get("efficiency_unit") == "leverage" for t in simulated)


AUG5 = (SCENARIOS / "perp_binance_btc_2024-08-05_0013-0226.toml", SCENARIOS / "perp_binance_btc_2024-08-05_0502-0715.toml")


def test_the_5_aug_2024_legs_liquidate_longs_by_the_low_and_the_fund_takes_the_fees():
    """Each replayed leg of 5 Aug 2024 on the Binance book: longs go (the windows fall 9.4 % and 8.3 %), every long
    liquidation (95 % of the notional) comes by two minutes after the leg's low (little new is reached once it recovers),
    and the clearance fees reach the insurance fund, which pays no more than the deficits."""
    for path, low_at in zip(AUG5, ("2024-08-05T01:13", "2024-08-05T06:24"), strict=True):
        res = evaluate(prepare(_load(path, positions={"binance_usdm": 800})), events=True)
        m, r = res.metrics(), res.raw
        assert m["perp_liquidated_long_usd"]["mean"] > 1e8
        assert m["perp_liquidated_long_usd"]["mean"] > 100 * m["perp_liquidated_short_usd"]["mean"]
        ev = res.event_array
        ts = res.bound.prepared.paths.timestamps
        when = ts[ev["step"]]
        longs = ev["debt_repaid_usd"] > 0
        late = when > np.datetime64(low_at) + np.timedelta64(2, "m")
        assert ev["debt_repaid_usd"][longs & late].sum() < 0.05 * ev["debt_repaid_usd"][longs].sum()
        assert float(r.insurance_fee_income_usd.sum()) > 0
        assert float(r.insurance_fund_paid_usd.sum()) <= float(r.perp_deficit_usd.sum()) + 1e-6
