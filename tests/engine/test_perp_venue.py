"""The perp venue simulator on the cascade loop: marks at bar extremes, closed-form liquidation prices, ADL
policies, the waterfall, and perp books in scenario files (bad input)."""

from __future__ import annotations

import numpy as np
import pytest

from optimizer.engine import bind, evaluate, prepare
from optimizer.engine.reference import run_reference
from optimizer.engine.testing import bundled_cases, perp_cases
from optimizer.errors import InputError
from optimizer.scenario.config import load_scenario
from optimizer.snapshots import data_dir
from protocols import ADAPTERS, ISOLATED, PerpBook

REPLAY = "prices/btc_usdt_perp_1m_2025-10-10_1913-2229.csv"
# venue, market, maximum leverage of the first tier (the book's positions are small: first tier)
VENUES = [("hyperliquid", "BTC", 40), ("binance_usdm", "BTCUSDT", 125), ("dydx_v4", "BTC-USD", 20),
          ("gmx_v2", "BTC-USD", 100)]


def _replay_scenario(tmp_path, venue: str, rows: list[str]) -> object:
    (tmp_path / "book.csv").write_text("account,venue,market,side,size,entry_price,margin,margin_mode\n"
                                       + "\n".join(rows) + "\n")
    (tmp_path / "s.toml").write_text(f"""
[scenario]
name = "perp-replay-{venue}"
step_min = 1
paths = 1

[assets.BTC]
model = "replay"
csv = "{REPLAY}"

[[protocols]]
adapter = "{venue}"
[protocols.book]
kind = "perp_csv"
path = "book.csv"
""")
    return load_scenario(tmp_path / "s.toml")


@pytest.mark.parametrize("venue,market,max_lev", VENUES, ids=[v[0] for v in VENUES])
def test_replayed_isolated_position_is_liquidated_in_the_first_bar_crossing_its_liquidation_price(
        tmp_path, venue, market, max_lev):
    """With no price impact (no liquidity table: an infinitely deep market), a long is first liquidated in the
    first 1-minute bar whose LOW reaches its closed-form liquidation price, a short in the first bar whose HIGH
    does: for every leverage from 2x to the venue's maximum, both sides."""
    p0 = 116935.6  # the window's first open
    levs = sorted({*np.linspace(2, max_lev, 12).round(3).tolist(), float(max_lev)})
    rows = []
    for i, lev in enumerate(levs):
        for side in ("long", "short"):
            size = 0.05  # $5.8k of notional: the first tier, whole closes
            rows.append(f"{side[0]}{i},{venue},{market},{side},{size},{p0},{size * p0 / lev:.6f},isolated")
    sc = _replay_scenario(tmp_path, venue, rows)
    res = evaluate(prepare(sc), events=True)
    bound = res.bound
    book: PerpBook = bound.books[0].book
    ad = bound.adapters[0]
    paths = bound.prepared.paths
    low, high = paths.low[0, 1:, 0], paths.bar_high[0, 1:, 0]
    lp = ad.liquidation_price_usd(book, np.full(book.n_positions, p0))
    ev = res.event_array
    first = {int(r): int(ev["step"][ev["position"] == r].min()) for r in np.unique(ev["position"])}
    checked = 0
    for r in range(book.n_positions):
        cross = np.flatnonzero(low <= lp[r]) if book.side[r] > 0 else np.flatnonzero(high >= lp[r])
        want = int(cross[0]) + 1 if cross.size else None  # steps count from 1
        assert first.get(r) == want, (venue, r, int(book.side[r]), lp[r], first.get(r), want)
        checked += want is not None
    assert checked >= 6  # the window liquidates the levered longs (and the most levered shorts)
    assert book.margin_mode.tolist() == [ISOLATED] * book.n_positions


def _case(name: str):
    return next(c for c in perp_cases() if c.name == name)


def test_adl_pro_rata_covers_exactly_the_deficit_and_the_queue_overshoots(tmp_path):
    """Same paths, same book: the production queue closes whole winners and takes more than the deficit (the
    overshoot, reported); the pro-rata haircut takes exactly what the waterfall left to ADL."""
    base = _case("perp_binance_usdm_pro_rata")
    (tmp_path / "pro").mkdir()
    pro = base.build(tmp_path / "pro")
    queue_toml = base.toml.replace('adl_policy = "pro_rata"', 'adl_policy = "queue"')
    assert queue_toml != base.toml
    (tmp_path / "q").mkdir()
    (tmp_path / "q" / "s.toml").write_text(queue_toml)
    queue = bind(prepare(load_scenario(tmp_path / "q" / "s.toml")))
    rp, rq = run_reference(pro.bound), run_reference(queue)
    assert rp.adl_volume_usd.sum() > 0 and rq.adl_volume_usd.sum() > 0
    np.testing.assert_allclose(rp.adl_overshoot_usd, 0.0, atol=1e-6)
    assert rq.adl_overshoot_usd.sum() > 0
    for r in (rp, rq):  # value conserved through the waterfall, per path
        np.testing.assert_allclose(r.insurance_fund_paid_usd + r.backstop_paid_usd + r.adl_volume_usd
                                   + r.realised_bad_debt_usd, r.perp_deficit_usd, rtol=1e-9, atol=1e-6)
    # the same liquidations before the first ADL: the policies differ only after the waterfall
    assert rp.first_liquidation_step.tolist() == rq.first_liquidation_step.tolist()


def test_perp_metrics_carry_their_errors_and_only_perp_scenarios_show_them(tmp_path, monkeypatch):
    res = evaluate(prepare(load_scenario(_write(tmp_path, _case("perp_binance_usdm_pro_rata")))))
    m = res.metrics()
    for k in ("perp_liquidated_long_usd", "perp_liquidated_short_usd", "adl_overshoot_usd"):
        assert {"mean", "stderr", "p99", "p99_ci95"} <= set(m[k])
    for k in ("insurance_fund_drawdown_usd", "adl_volume_usd", "backstop_loss_usd", "perp_deficit_usd"):
        assert {"mean", "stderr", "var_99", "var_99_ci95", "p_positive", "p_positive_stderr"} <= set(m[k])
    for k in ("p_adl", "p_insurance_depletion"):
        lo, hi = m[k]["ci95"]
        assert 0.0 <= lo <= m[k]["mean"] <= hi <= 1.0 and "stderr" in m[k]
    assert m["p_insurance_depletion"]["mean"] == 1.0  # a $20k fund: it runs dry on both paths
    assert m["perp_liquidated_short_usd"]["mean"] > 0 and m["perp_liquidated_long_usd"]["mean"] > 0
    # the terminal table shows every one of them (tail, mean-p99 and probability summaries alike)
    import io

    from rich.console import Console

    from optimizer import report_text

    buf = io.StringIO()
    monkeypatch.setattr(report_text, "console", lambda: Console(file=buf, width=400, highlight=False))
    report_text.render_simulation(res.to_json())
    text = buf.getvalue()
    for k in ("insurance_fund_drawdown_usd", "adl_volume_usd", "backstop_loss_usd", "perp_deficit_usd", "p_adl",
              "p_insurance_depletion", "perp_liquidated_long_usd"):
        assert k in text, k
    lo, hi = m["p_adl"]["ci95"]
    assert f"{m['p_adl']['mean']:.3f} ± {m['p_adl']['stderr']:.3f} [{lo:.3f}, {hi:.3f}]" in text
    acc = res.accounts()
    assert len(acc) == res.bound.books[0].book.n_positions and acc["p_liquidated"].between(0, 1).all()
    assert (acc["p_liquidated"] > 0).any() and (acc["stderr"] >= 0).all()
    aave = next(c for c in bundled_cases() if c.name == "aave_v3")
    (tmp_path / "aave").mkdir()
    lending = evaluate(aave.build(tmp_path / "aave").bound.prepared, engine="reference")
    assert lending.metrics()["liquidations"]["mean"] > 0
    assert not {"p_adl", "adl_volume_usd", "perp_liquidated_long_usd"} & set(lending.metrics())


def _write(tmp_path, case) -> object:
    (tmp_path / "s.toml").write_text(case.toml)
    return tmp_path / "s.toml"


# ------------------------------------------------------------------------------ scenario files: bad input

_PERP_TOML = _case("perp_hyperliquid").toml


@pytest.mark.parametrize("old,new,field,rule", [
    ('kind = "perp_synthetic"', 'kind = "synthetic"', "protocols[0].book.kind", "must be one of perp_synthetic, perp_csv"),
    ('adapter = "hyperliquid"', 'adapter = "hyperliquid"\nmarket_assets = { BTC = "WBTC" }',
     "protocols[0].market_assets.BTC", "unknown asset 'WBTC'"),
    ('adapter = "hyperliquid"', 'adapter = "hyperliquid"\nadl_policy = "random"', "protocols[0].adl_policy",
     "must be one of queue, pro_rata"),
    ('open_interest_usd = { BTC = 300000000.0 }', 'open_interest_usd = { ETH = 3e8 }', "protocols[0].book",
     "market ETH trades on asset 'ETH', which has no price model"),
    ('open_interest_usd = { BTC = 300000000.0 }', 'open_interest_usd = { DOGE = 3e8 }',
     "protocols[0].book.open_interest_usd.DOGE", "'DOGE' is not a market of hyperliquid"),
])
def test_bad_perp_protocol_tables_are_one_line_errors(tmp_path, old, new, field, rule):
    assert old in _PERP_TOML
    f = tmp_path / "s.toml"
    f.write_text(_PERP_TOML.replace(old, new, 1))
    with pytest.raises(InputError) as e:
        load_scenario(f)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"{f}: {field}: ") and rule in msg, msg


def test_a_lending_protocol_takes_no_perp_keys(tmp_path):
    text = (data_dir() / "scenarios" / "compound_v3_usdc_24h.toml").read_text()
    f = tmp_path / "s.toml"
    f.write_text(text.replace('adapter = "compound_v3"', 'adapter = "compound_v3"\nadl_policy = "queue"', 1))
    with pytest.raises(InputError, match=r"protocols\[0\]\.adl_policy: unknown key"):
        load_scenario(f)


def test_a_perp_csv_above_the_venues_leverage_is_refused_by_the_cli_with_exit_2(tmp_path):
    from _cli_helpers import cascade_in_process, one_line_error

    p0 = 116935.6
    sc_rows = [f"a,hyperliquid,BTC,long,0.1,{p0},{0.1 * p0 / 41:.6f},isolated"]  # 41x > 40x
    with pytest.raises(InputError) as e:
        _replay_scenario(tmp_path, "hyperliquid", sc_rows)
    msg = str(e.value)
    assert "\n" not in msg and "book.csv: line 2, column margin: leverage 41x is above hyperliquid's maximum 40x" in msg
    r = cascade_in_process("simulate", str(tmp_path / "s.toml"), "--no-analyses", cwd=tmp_path)
    one_line_error(r, "protocols[0].book.path", "leverage 41x is above hyperliquid's maximum 40x")


def test_every_perp_adapter_runs_in_a_scenario():
    """The registry has a simulator for every perp adapter, and the contract's perp cases cover each."""
    from optimizer.engine.venues import PerpVenue, simulator_class
    from protocols import PERP_ADAPTERS

    covered = {a for a in PERP_ADAPTERS if any(f'adapter = "{a}"' in c.toml for c in perp_cases())}
    assert covered == set(PERP_ADAPTERS)
    assert all(simulator_class(ADAPTERS[a].__new__(ADAPTERS[a])) is PerpVenue for a in PERP_ADAPTERS)


def test_a_given_mark_series_replaces_the_bar_extremes(tmp_path):
    """With ``mark_assets`` the venue marks on that series (here a flat mark at the start price): the same levered
    longs that the replayed bar lows liquidate are never liquidated, and their liquidation flows stay out."""
    p0 = 116935.6
    rows = [f"l{i},hyperliquid,BTC,long,0.05,{p0},{0.05 * p0 / 30:.6f},isolated" for i in range(3)]
    sc = _replay_scenario(tmp_path, "hyperliquid", rows)
    assert evaluate(prepare(sc)).raw.liquidations.sum() == 3
    text = (tmp_path / "s.toml").read_text()
    text = text.replace('adapter = "hyperliquid"', 'adapter = "hyperliquid"\nmark_assets = { BTC = "BTC_MARK" }')
    text = text.replace("[[protocols]]", f'[assets.BTC_MARK]\nprice_usd = {p0}\nmodel = "constant"\n\n[[protocols]]')
    (tmp_path / "m.toml").write_text(text)
    assert evaluate(prepare(load_scenario(tmp_path / "m.toml"))).raw.liquidations.sum() == 0
    (tmp_path / "bad.toml").write_text(text.replace('mark_assets = { BTC = "BTC_MARK" }',
                                                    'mark_assets = { DOGE = "BTC_MARK" }'))
    with pytest.raises(InputError, match=r"protocols\[0\]\.mark_assets\.DOGE: 'DOGE' is neither a market"):
        load_scenario(tmp_path / "bad.toml")
