"""Forced-flow sources on the cascade loop (optimizer.engine.flows): each source alone moves a one-step market
in its documented direction by its closed form; the leverage spiral of oracles.md §5 through the engine's
synchronous rounds, round by round; selling shares add up; bad [[forced_flows]] tables are one-line errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from optimizer.behaviour import dealer_book
from optimizer.engine import bind, evaluate, prepare
from optimizer.engine.model import venue_contexts
from optimizer.engine.reference import run_reference
from optimizer.engine.simulate import kernel_unsupported_reason
from optimizer.engine.venues import PerpVenue
from optimizer.errors import InputError
from optimizer.market import depth_usd_2pct_for_kappa, leverage_spiral
from optimizer.scenario.config import load_scenario

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _cli_helpers import cascade_in_process, one_line_error

P0 = 100_000.0
# oracles.md §5: r0 = -5 %, kappa = 1, L = 10, A = 1e9, D = 2e10 -> m = 0.45, r_total = -9.0909 %
R0, KAPPA, LEV, ASSETS, DEPTH = -0.05, 1.0, 10.0, 1e9, 2e10


def _write(tmp_path: Path, flows: str, *, low: float = P0, close: float = P0, high: float = P0,
           depth_usd: float = DEPTH, name: str = "s.toml", rows: str = "") -> Path:
    """A 1-minute step of BTC (a replayed bar: open P0, then ``low``/``high``/``close``; a flat second bar
    follows, which the checks ignore: a replay needs two rows), LINEAR liquidity
    of depth ``depth_usd`` (kappa = 1, no recovery within the step), a 1x perp long that never liquidates,
    and the given [[forced_flows]] tables."""
    (tmp_path / "bar.csv").write_text("timestamp,open_usd,high_usd,low_usd,close_usd,volume_base\n"
                                      f"2025-01-01T00:00:00Z,{P0},{high},{low},{close},1\n"
                                      f"2025-01-01T00:01:00Z,{close},{close},{close},{close},1\n")
    (tmp_path / "book.csv").write_text("account,venue,market,side,size,entry_price,margin,margin_mode\n"
                                       f"a,binance_usdm,BTCUSDT,long,0.001,{P0},{P0 * 0.001},isolated\n" + rows)
    path = tmp_path / name
    path.write_text(f"""
[scenario]
name = "one-step"
step_min = 1
paths = 1

[assets.BTC]
model = "replay"
csv = "bar.csv"
[assets.BTC.liquidity]
model = "linear"
depth_usd_2pct = {depth_usd_2pct_for_kappa(KAPPA, depth_usd)!r}
recovery_half_life_min = inf

[[protocols]]
adapter = "binance_usdm"
[protocols.book]
kind = "perp_csv"
path = "book.csv"
{flows}""")
    return path


class Spy(PerpVenue):
    """The perp venue, recording the market close of BTC at the start of every round of step 1."""

    def round(self, view):
        if view.t == 1:
            self.seen.append((view.t, view.rnd, float(view.close[0])))
        return super().round(view)


def _run(path: Path):
    bound = bind(prepare(load_scenario(path)))
    spy = Spy(venue_contexts(bound)[0])
    spy.seen = []
    ledger = run_reference(bound, sims=[spy])
    return bound, ledger, np.array([c for _, _, c in spy.seen]), ledger.market_low_min


def test_leverage_spiral_through_the_engine_matches_oracles_md_round_by_round(tmp_path):
    """A sell-stop cluster in the bar's wick sells Q0 with kappa * Q0 * p0 / D = 5 % (the exogenous price stays
    P0, so impact returns add up in units of p0 as in the oracle); leverage-targeting holders ($1bn at 10x,
    first-order convention) then sell round after round: the close at the start of round n is
    p0 * (1 + r0 * sum_{k<n} m^k) to 1e-12, and the spiral ends at r0 / (1 - m) = -9.0909 %."""
    q0 = -R0 * DEPTH / (KAPPA * P0)
    flows = f"""
[[forced_flows]]
model = "stops"
asset = "BTC"
clusters = [{{ side = "sell", level_usd = {P0 * 0.999}, size_base = {q0!r} }}]

[[forced_flows]]
model = "leverage_targeting"
asset = "BTC"
convention = "first_order"
holders = [{{ exposure_usd = {ASSETS}, target_leverage = {LEV} }}]
"""
    bound, ledger, closes, _ = _run(_write(tmp_path, flows, low=P0 * 0.998))
    ret = closes[1:] / P0 - 1.0  # round 0 saw the bar before anyone traded
    n = ret.size
    assert 20 <= n <= 40  # rounds until a sale falls below min_trade_usd (1 USD)
    np.testing.assert_allclose(ret, leverage_spiral(R0, KAPPA, LEV, ASSETS, DEPTH, n), rtol=1e-12, atol=1e-15)
    assert ret[-1] == pytest.approx(R0 / (1 - 0.45), abs=1e-9)  # -9.0909 %
    # the holders sold (L - 1) A |r| at each round's price; shares: stops + holders = all forced selling
    sold_h = float(ledger.leverage_targeting_sold_usd[0])
    sold_s = float(ledger.stops_sold_usd[0])
    assert sold_s == pytest.approx(q0 * P0, rel=1e-12)
    assert sold_h + sold_s == pytest.approx(float(ledger.forced_sold_usd[0]), rel=1e-12)
    res = evaluate(bound.prepared, engine="reference")
    m = res.metrics()
    s_h, s_s = m["leverage_targeting_selling_share"]["mean"], m["stops_selling_share"]["mean"]
    assert s_h == pytest.approx(sold_h / (sold_h + sold_s), rel=1e-12)
    assert s_s == pytest.approx(sold_s / (sold_h + sold_s), rel=1e-12)
    assert s_h + s_s == pytest.approx(1.0, rel=1e-12)
    assert "dealers_selling_share" not in m and "stderr" in m["stops_selling_share"]
    assert kernel_unsupported_reason(bound) is None  # both sources have a kernel mirror


def test_short_gamma_dealers_sell_into_a_fall_by_the_difference_of_deltas(tmp_path):
    """A 2 % fall in the bar: short-put dealers sell exactly -(D(S1, t) - D(S0, 0)) in the first round (their
    delta at the new close and time), which moves the close by kappa * sold * p0 / D; the rounds then
    converge to the hedged fixed point S* = S1 * (1 - kappa * (H(S0, 0) - H(S*, t)) * p0 / D)."""
    options = ('[{ type = "put", strike_usd = 98000, expiry_days = 2, implied_vol = 0.6, '
               'dealer_position_base = -20000 }]')
    flows = f"""
[[forced_flows]]
model = "dealers"
asset = "BTC"
options = {options}
"""
    s1 = P0 * 0.98
    depth = 2e11
    bound, ledger, closes, _ = _run(_write(tmp_path, flows, low=s1, close=s1, depth_usd=depth))
    book = bound.prepared.scenario.forced_flows[0].model
    t = bound.prepared.scenario.step_s
    first = float(book.hedge_target_base(np.array([s1]), t)[0] - book.hedge_target_base(np.array([P0]), 0.0)[0])
    assert first < 0  # short gamma: they sell into the fall
    c = KAPPA * P0 / depth  # price factor per token sold
    assert closes[0] == pytest.approx(s1, rel=1e-15)
    assert closes[1] == pytest.approx(s1 * (1 + c * first), rel=1e-12)
    s_star = closes[-1]
    sold = float(book.hedge_target_base(np.array([P0]), 0.0)[0] - book.hedge_target_base(np.array([s_star]), t)[0])
    assert s_star == pytest.approx(s1 * (1 - c * sold), rel=1e-9)
    assert s_star < closes[1] < s1
    assert float(ledger.dealers_sold_usd[0]) > 0 and float(ledger.dealers_bought_usd[0]) == 0
    # long gamma (the same strike bought) buys into the fall: the market ends above the exogenous close
    _, _, closes_long, _ = _run(_write(tmp_path, flows.replace("-20000", "20000"), low=s1, close=s1,
                                       depth_usd=depth, name="long.toml"))
    assert closes_long[-1] > s1


@pytest.mark.parametrize("side,level,sign", [("sell", P0 * 0.99, -1), ("buy", P0 * 1.01, +1)])
def test_a_stop_cluster_fires_once_in_the_wick_and_moves_the_price_by_its_size(tmp_path, side, level, sign):
    size = 300.0
    flows = f"""
[[forced_flows]]
model = "stops"
asset = "BTC"
clusters = [{{ side = "{side}", level_usd = {level}, size_base = {size} }}]
"""
    _, ledger, closes, _ = _run(_write(tmp_path, flows, low=P0 * 0.985, high=P0 * 1.015))
    assert closes.tolist() == pytest.approx([P0, P0 * (1 + sign * KAPPA * size * P0 / DEPTH)], rel=1e-12)
    field = ledger.stops_sold_usd if side == "sell" else ledger.stops_bought_usd
    assert float(field[0]) == pytest.approx(size * P0, rel=1e-12)


def test_selling_shares_of_sources_and_liquidations_add_up_to_one(tmp_path):
    """A 20x perp long liquidated in the wick sells 2 BTC next to a 300 BTC sell stop, in the same round at the
    same close: all forced selling is 302 BTC at that close, the stops' share 300 / 302, the sources' shares
    add up to less than 1 (the rest is the liquidation's)."""
    flows = """
[[forced_flows]]
model = "stops"
asset = "BTC"
clusters = [{ side = "sell", level_usd = 99000, size_base = 300 }]
"""
    path = _write(tmp_path, flows, low=P0 * 0.94, rows=f"b,binance_usdm,BTCUSDT,long,2,{P0},{2 * P0 / 20},isolated\n")
    bound, ledger, _, _ = _run(path)
    assert ledger.perp_market_sold_base[0, 0] == pytest.approx(2.0)
    assert float(ledger.forced_sold_usd[0]) == pytest.approx(302 * P0, rel=1e-12)
    m = evaluate(bound.prepared, engine="reference").metrics()
    assert m["stops_selling_share"]["mean"] == pytest.approx(300 / 302, rel=1e-12)


def test_leverage_targeters_alone_sell_into_an_exogenous_fall(tmp_path):
    """Exact convention, one group at 5x: the first round sells (L - 1) N (p' - p) / p' at the bar's close."""
    flows = """
[[forced_flows]]
model = "leverage_targeting"
asset = "BTC"
holders = [{ exposure_usd = 5e8, target_leverage = 5 }]
"""
    s1 = P0 * 0.97
    _, ledger, closes, _ = _run(_write(tmp_path, flows, low=s1, close=s1))
    n = 5e8 / P0
    first = 4 * n * (s1 - P0) / s1
    assert closes[1] == pytest.approx(s1 * (1 + KAPPA * first * P0 / DEPTH), rel=1e-12)
    assert closes[-1] < closes[1] < s1 and float(ledger.leverage_targeting_bought_usd[0]) == 0


BAD = [
    ('model = "gamma"\nasset = "BTC"', "forced_flows[0].model", "must be one of dealers, leverage_targeting, stops"),
    ('model = "stops"\nasset = "ETH"\nclusters = [{ side = "sell", level_usd = 1, size_base = 1 }]',
     "forced_flows[0].asset", "unknown asset 'ETH'"),
    ('model = "stops"\nasset = "BTC"\nclusters = [{ side = "down", level_usd = 1, size_base = 1 }]',
     "forced_flows[0].clusters[0].side", "must be sell or buy"),
    ('model = "dealers"\nasset = "BTC"\noptions = [{ type = "put", strike_usd = -5, expiry_days = 1, '
     'implied_vol = 0.5, dealer_position_base = -1 }]', "forced_flows[0].options[0].strike_usd", "must be a number"),
    ('model = "leverage_targeting"\nasset = "BTC"\nholders = [{ exposure_usd = 1e9, target_leverage = 0.5 }]',
     "forced_flows[0].holders[0].target_leverage", "must be a number in [1, 1000]"),
    ('model = "stops"\nasset = "BTC"\nfile = "behaviour/stops_btc_example.json"\n'
     'clusters = [{ side = "sell", level_usd = 1, size_base = 1 }]', "forced_flows[0].file", "not both"),
    ('model = "stops"\nasset = "BTC"\nclusters = []\nspeed = 2', "forced_flows[0].speed", "unknown key"),
    ('model = "stops"\nasset = "BTC"\nmin_trade_usd = 0\nclusters = [{ side = "sell", level_usd = 1, '
     'size_base = 1 }]', "forced_flows[0].min_trade_usd", "must be a number in (0"),
]


@pytest.mark.parametrize("table,field,rule", BAD, ids=[b[1].split(".", 1)[1] for b in BAD])
def test_bad_forced_flow_tables_are_one_line_errors(tmp_path, table, field, rule):
    path = _write(tmp_path, f"\n[[forced_flows]]\n{table}\n")
    with pytest.raises(InputError) as e:
        load_scenario(path)
    assert field in str(e.value) and rule in str(e.value) and str(path) in str(e.value)


def test_a_bad_forced_flow_file_names_the_scenario_key_and_the_json_field_and_exits_2(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps({"options": [{"type": "put", "strike_usd": 1e5, "expiry_days": 0,
                                                              "implied_vol": 0.5, "dealer_position_base": -1}]}))
    path = _write(tmp_path, '\n[[forced_flows]]\nmodel = "dealers"\nasset = "BTC"\nfile = "d.json"\n')
    res = cascade_in_process("simulate", str(path), cwd=tmp_path)
    one_line_error(res, "s.toml", "forced_flows[0].file", "d.json", "options[0].expiry_days", "(0, 3650]")
    dealer_book({"options": [{"type": "put", "strike_usd": 1e5, "expiry_days": 1, "implied_vol": 0.5,
                              "dealer_position_base": -1}]})  # the same data with a valid expiry builds
