"""The contract every venue simulator passes (shipped, like optuna's ``optuna.testing`` storage suites).

Subclass :class:`VenueSimulatorContract` in a test module and give it a ``venue_case`` fixture that
returns a :class:`VenueCase` (a bound candidate whose scenario holds the venue, and whether the fast
kernel must reproduce it)::

    from optimizer.engine.testing import VenueSimulatorContract, bundled_cases

    @pytest.fixture(params=bundled_cases(), ids=lambda c: c.name)
    def venue_case(request, tmp_path_factory):
        return request.param.build(tmp_path_factory.mktemp(request.param.name))

    class TestMyVenues(VenueSimulatorContract):
        pass

Each case runs once through the cascade loop with every simulator observed (each ``round``,
``settle`` and ``end_step`` result, the book before and after); the tests then check:

* every ledger delta names a declared field (core or the venue's ``ledger_fields``);
* **flows conserve value**: each round's deltas satisfy ``collateral seized = debt repaid + liquidator
  bonus + protocol fee + returned to owner``; over a path a lending venue sends to its collateral
  pools at most the tokens that left the book and buys from its debt pools at most the debt tokens
  that left it (collateral flows >= 0, debt flows <= 0); the debt that left the book is at least
  what was repaid plus what was written off;
* only liquidatable positions are touched (health < 1 at the round's oracle prices);
* horizon deltas are non-negative and the run is deterministic;
* a kernel-capable venue (``kernel_spec`` gives a spec) equals the reference engine on every ledger
  field and on the events;
* a perp venue (one with a ``perp_book``): each round's outcome keeps the perp accounting identity
  ``margin released + realised PnL = fee + returned to owner + backstop takeover - deficit``; the loss
  waterfall conserves value over each path (``deficit = insurance fund paid + backstop paid + ADL
  volume + realised bad debt``); a round's flow into a pool is at most the long size it closed there
  (sells) and its purchases at most the short size it closed (buys); only positions liquidatable at
  the round's marks shrink in a round.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from protocols import Prices

from .ledger import CORE_FIELDS, LENDING_FIELDS
from .model import Bound, bind, prepare
from .reference import run_reference, venue_simulators
from .venues import RoundResult, VenueSimulator

RTOL, ATOL_USD = 1e-9, 1e-6


@dataclass
class VenueCase:
    """A bound candidate to run the contract on (``venue`` = the protocol index under test)."""

    name: str
    bound: Bound
    venue: int = 0
    kernel: bool = False  # the fast kernel must run it and equal the reference


@dataclass
class ScenarioCase:
    """A scenario (TOML text plus files next to it) that builds a :class:`VenueCase`."""

    name: str
    toml: str
    files: dict[str, str] = field(default_factory=dict)
    venue: int = 0
    kernel: bool = False

    def build(self, folder: Path) -> VenueCase:
        from ..scenario.config import load_scenario

        for rel, text in self.files.items():
            (folder / rel).write_text(text)
        path = folder / "scenario.toml"
        path.write_text(self.toml)
        return VenueCase(self.name, bind(prepare(load_scenario(path))), self.venue, self.kernel)


@dataclass
class Record:
    """One observed call of a simulator."""

    phase: str  # "round" | "settle" | "end_step"
    path: int
    t: int
    result: RoundResult
    before: Any  # the simulator's book before the call (None for venues without one)
    after: Any
    prices: Prices | None  # the venue's oracle prices of the round
    perp_before: Any = None  # a perp venue's PerpBook before / after the call
    perp_after: Any = None
    marks: Any = None  # a perp venue's per-position marks of the round


@dataclass
class Observed:
    ledger: Any
    records: list[list[Record]]  # per venue
    end: list[list[dict]]  # per venue, per path: end_path deltas
    events: list[tuple]
    sims: list[VenueSimulator]


def _observe(bound: Bound, events: bool = True) -> Observed:
    sims = venue_simulators(bound)
    records: list[list[Record]] = [[] for _ in sims]
    ends: list[list[dict]] = [[] for _ in sims]
    for j, sim in enumerate(sims):
        for phase in ("round", "settle", "end_step"):
            orig = getattr(sim, phase)

            def wrapped(view, orig=orig, phase=phase, j=j, sim=sim):
                before = getattr(sim, "book", None)
                perp_before = getattr(sim, "perp_book", None)
                prices = sim.oracle_prices(view) if hasattr(sim, "oracle_prices") else None
                r = orig(view)
                records[j].append(Record(phase, sim.path.path, view.t, r, before, getattr(sim, "book", None), prices,
                                         perp_before, getattr(sim, "perp_book", None),
                                         getattr(sim, "last_marks", None) if phase == "round" else None))
                return r

            setattr(sim, phase, wrapped)
        orig_end = sim.end_path

        def end(final, orig_end=orig_end, j=j):
            d = orig_end(final)
            ends[j].append(dict(d))
            return d

        sim.end_path = end
    ev: list[tuple] = []
    ledger = run_reference(bound, events=ev if events else None, sims=sims)
    return Observed(ledger, records, ends, ev, sims)


_CACHE: dict[int, Observed] = {}


def observed(case: VenueCase) -> Observed:
    """The case run once through the loop (cached per case object)."""
    key = id(case.bound)
    if key not in _CACHE:
        _CACHE[key] = _observe(case.bound)
    return _CACHE[key]


def assert_ledgers_match(a, b, rtol: float | None = None, atol: float = 0.0) -> None:
    """Ledger ``a`` equals ``b``: per-position fields exactly, the others exactly too or, with ``rtol``, to
    ``rtol`` relative and ``atol`` absolute (a sum in another order)."""
    for f in a.fields:
        if f.axis == "position":
            for x, y in zip(a[f.name], b[f.name], strict=True):
                np.testing.assert_array_equal(x, y, err_msg=f.name)
        elif rtol is None:
            np.testing.assert_array_equal(a[f.name], b[f.name], err_msg=f.name)
        else:
            np.testing.assert_allclose(a[f.name], b[f.name], rtol=rtol, atol=atol, err_msg=f.name)


def _close(a: float, b: float, scale: float) -> bool:
    return abs(a - b) <= RTOL * max(abs(scale), 1.0) + ATOL_USD


class VenueSimulatorContract:
    """Tests every venue simulator must pass; subclass it with a ``venue_case`` fixture."""

    def test_case_exercises_liquidations(self, venue_case: VenueCase) -> None:
        obs = observed(venue_case)
        assert obs.ledger.liquidations[:, venue_case.venue].sum() > 0, "the case must liquidate something"

    def test_ledger_deltas_name_declared_fields(self, venue_case: VenueCase) -> None:
        obs = observed(venue_case)
        j = venue_case.venue
        declared = {f.name for f in (*CORE_FIELDS, *obs.sims[j].ledger_fields)}
        for rec in obs.records[j]:
            assert set(rec.result.ledger) <= declared, sorted(set(rec.result.ledger) - declared)
        for d in obs.end[j]:
            assert set(d) <= declared, sorted(set(d) - declared)

    def test_round_deltas_conserve_value(self, venue_case: VenueCase) -> None:
        obs = observed(venue_case)
        j = venue_case.venue
        names = {f.name for f in LENDING_FIELDS}
        if not names <= {f.name for f in obs.sims[j].ledger_fields}:
            pytest.skip("not a lending venue: its family's contract checks its waterfall")
        for rec in obs.records[j]:
            d = rec.result.ledger
            if not d:
                continue
            seized = d.get("collateral_seized_usd", 0.0)
            parts = sum(d.get(k, 0.0) for k in ("debt_repaid_usd", "liquidator_bonus_usd", "protocol_fee_usd",
                                                 "returned_to_owner_usd"))
            assert _close(seized, parts, seized), (rec.phase, rec.path, rec.t, d)

    def test_flows_never_exceed_what_left_the_book(self, venue_case: VenueCase) -> None:
        """Tokens the venue sends to collateral pools / buys from debt pools, against the book."""
        obs = observed(venue_case)
        j = venue_case.venue
        sim = obs.sims[j]
        ctx = sim.ctx
        if not hasattr(sim, "book"):
            pytest.skip("venue without a lending book")
        coll_pools = set(ctx.coll_pool.tolist()) - set(ctx.debt_pool.tolist())
        debt_pools = set(ctx.debt_pool.tolist()) - set(ctx.coll_pool.tolist())
        by_path: dict[int, list[Record]] = {}
        for rec in obs.records[j]:
            by_path.setdefault(rec.path, []).append(rec)
        b0 = ctx.book.book
        for path, recs in by_path.items():
            n_pools = max((r.result.flows.shape[0] for r in recs if r.result.flows is not None), default=0)
            if n_pools == 0:
                continue
            flows = np.zeros(n_pools)
            for r in recs:
                if r.result.flows is not None:
                    assert np.all(r.result.flows[list(coll_pools)] >= -1e-12), "collateral flows are sales"
                    assert np.all(r.result.flows[list(debt_pools)] <= 1e-12), "debt flows are purchases"
                    flows += r.result.flows
            end_book = recs[-1].after
            removed_c = np.zeros(n_pools)
            np.add.at(removed_c, ctx.coll_pool, (b0.collateral_tokens - end_book.collateral_tokens).sum(0))
            removed_d = np.zeros(n_pools)
            np.add.at(removed_d, ctx.debt_pool, (b0.debt_tokens - end_book.debt_tokens).sum(0))
            for p in coll_pools:
                assert flows[p] <= removed_c[p] * (1 + RTOL) + 1e-9, (path, p, flows[p], removed_c[p])
            for p in debt_pools:
                assert -flows[p] <= removed_d[p] * (1 + RTOL) + 1e-9, (path, p, flows[p], removed_d[p])

    def test_debt_removed_covers_repaid_and_written_off(self, venue_case: VenueCase) -> None:
        obs = observed(venue_case)
        j = venue_case.venue
        r = obs.ledger
        if "debt_removed_usd" not in r or hasattr(obs.sims[j], "perp_book"):
            pytest.skip("venue without lending debt")
        # comparable in USD only where the debt assets keep one price (debt removed is valued at the end)
        close = venue_case.bound.prepared.paths.close[:, :, obs.sims[j].ctx.debt_market]
        fixed = np.all(close.max(axis=1) == close.min(axis=1), axis=-1)
        if not fixed.any():
            pytest.skip("the debt assets' prices move: debt removed (at the final price) is not comparable")
        lhs = r.debt_removed_usd[fixed, j]
        rhs = r.debt_repaid_usd[fixed, j] + r.realised_bad_debt_usd[fixed, j]
        assert np.all(lhs >= rhs - RTOL * np.maximum(np.abs(rhs), 1.0) - ATOL_USD), (lhs, rhs)

    def test_only_liquidatable_positions_are_touched(self, venue_case: VenueCase) -> None:
        obs = observed(venue_case)
        j = venue_case.venue
        ad = obs.sims[j].ctx.adapter
        for rec in obs.records[j]:
            if rec.phase != "round" or rec.before is None or rec.prices is None or rec.after is rec.before:
                continue
            changed = ((rec.after.collateral_tokens != rec.before.collateral_tokens).any(1)
                       | (rec.after.debt_tokens != rec.before.debt_tokens).any(1))
            hf = ad.health(rec.before, rec.prices)
            assert np.all(hf[changed] < 1.0), (rec.path, rec.t, np.flatnonzero(changed & (hf >= 1.0))[:5])

    def test_horizon_deltas_are_non_negative(self, venue_case: VenueCase) -> None:
        obs = observed(venue_case)
        for d in obs.end[venue_case.venue]:
            for k, v in d.items():
                if k.endswith("_usd") and k != "debt_removed_usd":
                    assert v >= -ATOL_USD, (k, v)

    def test_deterministic(self, venue_case: VenueCase) -> None:
        assert_ledgers_match(observed(venue_case).ledger, run_reference(venue_case.bound))

    def test_kernel_equals_reference_where_it_runs(self, venue_case: VenueCase) -> None:
        from .simulate import kernel_unsupported_reason, run_kernel

        reason = kernel_unsupported_reason(venue_case.bound)
        if not venue_case.kernel:
            pytest.skip(f"reference-only case ({reason or 'not marked kernel'})")
        assert reason is None, reason
        ref = observed(venue_case)
        kern, ev = run_kernel(venue_case.bound, events=True)
        assert_ledgers_match(kern, ref.ledger, RTOL, ATOL_USD)
        assert ev is not None
        key_k = sorted(tuple(int(x) for x in e.tolist()[:5]) for e in ev)
        key_r = sorted(tuple(int(x) for x in e[:5]) for e in ref.events)
        assert key_k == key_r


    # ------------------------------------------------------------------ perp venues
    @staticmethod
    def _perp(obs: Observed, j: int) -> None:
        if not hasattr(obs.sims[j], "perp_book"):
            pytest.skip("not a perp venue")

    def test_perp_rounds_keep_the_accounting_identity(self, venue_case: VenueCase) -> None:
        obs = observed(venue_case)
        j = venue_case.venue
        self._perp(obs, j)
        for rec in obs.records[j]:
            d = rec.result.ledger
            if rec.phase != "round" or "perp_margin_released_usd" not in d:
                continue
            lhs = d["perp_margin_released_usd"] + d["perp_realized_pnl_usd"]
            rhs = (d["perp_fee_usd"] + d["perp_returned_to_owner_usd"] + d["perp_backstop_takeover_usd"]
                   - d["perp_deficit_usd"])
            scale = abs(d["perp_margin_released_usd"]) + abs(d["perp_realized_pnl_usd"])
            assert _close(lhs, rhs, scale), (rec.path, rec.t, d)

    def test_perp_waterfall_conserves_value(self, venue_case: VenueCase) -> None:
        obs = observed(venue_case)
        j = venue_case.venue
        self._perp(obs, j)
        r = obs.ledger
        deficit = r.perp_deficit_usd[:, j]
        paid = (r.insurance_fund_paid_usd[:, j] + r.backstop_paid_usd[:, j] + r.adl_volume_usd[:, j]
                + r.realised_bad_debt_usd[:, j])
        np.testing.assert_allclose(paid, deficit, rtol=RTOL, atol=ATOL_USD)

    def test_perp_flows_are_the_closed_sizes(self, venue_case: VenueCase) -> None:
        obs = observed(venue_case)
        j = venue_case.venue
        self._perp(obs, j)
        sim = obs.sims[j]
        for rec in obs.records[j]:
            if rec.phase != "round" or rec.result.flows is None:
                continue
            b0, b1 = rec.perp_before, rec.perp_after
            closed = b0.size_base - b1.size_base
            assert np.all(closed >= -1e-12), "a liquidation round never opens a position"
            n = rec.result.flows.shape[0]
            longs, shorts = np.zeros(n), np.zeros(n)
            np.add.at(longs, sim.pool, np.where(b0.side > 0, closed, 0.0))
            np.add.at(shorts, sim.pool, np.where(b0.side < 0, closed, 0.0))
            f = rec.result.flows
            assert np.all(f <= longs * (1 + RTOL) + 1e-9), (rec.path, rec.t, f, longs)
            assert np.all(-f <= shorts * (1 + RTOL) + 1e-9), (rec.path, rec.t, f, shorts)

    def test_perp_only_liquidatable_positions_shrink(self, venue_case: VenueCase) -> None:
        obs = observed(venue_case)
        j = venue_case.venue
        self._perp(obs, j)
        ad = obs.sims[j].ctx.adapter
        for rec in obs.records[j]:
            if rec.phase != "round" or rec.perp_after is rec.perp_before or rec.marks is None:
                continue
            shrunk = rec.perp_after.size_base < rec.perp_before.size_base
            flagged = ad.liquidatable(rec.perp_before, rec.marks)
            assert np.all(flagged[shrunk]), (rec.path, rec.t, np.flatnonzero(shrunk & ~flagged)[:5])


# ------------------------------------------------------------------------------ bundled venue cases

_BASE = """
[scenario]
name = "venue-contract-{name}"
horizon_h = {horizon_h}
step_min = 10
paths = 2
seed = 7

[assets.WETH]
price_usd = 3000
model = "merton"
sigma_annual = 1.0
jump_intensity_per_day = 6.0
jump_mean = -0.05
jump_std = 0.05
shocks = [{{ at_h = 1.0, drop = 0.18 }}]
[assets.WETH.liquidity]
model = "sqrt"
daily_volume_usd = 3e8
daily_sigma = 0.045
recovery_half_life_min = 30

[assets.WBTC]
price_usd = 60000
model = "gbm"
sigma_annual = 0.8
shocks = [{{ at_h = 1.0, drop = 0.12 }}]
[assets.WBTC.liquidity]
model = "sqrt"
daily_volume_usd = 3e8
daily_sigma = 0.04
recovery_half_life_min = 30

[assets.USDC]
price_usd = 1.0
model = "constant"

[liquidators]
gas_per_call = 400000
gas_gwei = 20.0
gas_token = "WETH"
max_calls_per_step = {max_calls}
"""

_AAVE = """
[[protocols]]
adapter = "aave_v3"
[protocols.book]
kind = "synthetic"
positions = 300
collateral = { WETH = 0.7, WBTC = 0.3 }
debt = { USDC = 1.0 }
collateral_usd = { dist = "lognormal", median = 20000, sigma = 1.4, min = 500 }
ltv_utilisation = { dist = "beta", a = 6.0, b = 2.0 }
"""

_COMET = """
[[protocols]]
adapter = "compound_v3"
reserves_usd = 1e6
[protocols.book]
kind = "synthetic"
positions = 300
collateral = { WETH = 0.6, WBTC = 0.4 }
debt = { USDC = 1.0 }
collateral_usd = { dist = "lognormal", median = 30000, sigma = 1.4, min = 500 }
ltv_utilisation = { dist = "beta", a = 7.0, b = 2.0 }
"""

_AAVE_CSV = """
[[protocols]]
adapter = "aave_v3"
[protocols.book]
kind = "csv"
path = "book.csv"
"""

_MAKER = """
[scenario]
name = "venue-contract-maker"
horizon_h = 4
step_min = 10
paths = 1
seed = 3

[assets.ETH]
price_usd = 3000
model = "gbm"
sigma_annual = 2.0
shocks = [{ at_h = 0.5, drop = 0.3 }]
[assets.ETH.liquidity]
model = "sqrt"
daily_volume_usd = 1e8
daily_sigma = 0.05
recovery_half_life_min = 30

[assets.DAI]
price_usd = 1.0
model = "constant"

[liquidators]
gas_per_call = 400000
gas_gwei = 20.0
gas_token = "ETH"
max_calls_per_step = 20

[[protocols]]
adapter = "maker"
[protocols.book]
kind = "synthetic"
positions = 120
collateral = { "ETH-A" = 1.0 }
debt = { DAI = 1.0 }
collateral_usd = { dist = "lognormal", median = 50000, sigma = 1.2, min = 15000 }
health = { dist = "lognormal", median = 1.3, sigma = 0.2, min = 1.02 }
"""


# Two ilks with their own abacus step, caps small enough that barks are partial and wait for room (hole,
# Hole), a reaction delay and a shallow market: the auction rule's limits, redo and partial takes.
_MAKER_LIMITED = (_MAKER.replace("venue-contract-maker", "venue-contract-maker-limited")
                  .replace("daily_volume_usd = 1e8", "daily_volume_usd = 2e7")
                  .replace("max_calls_per_step = 20", "max_calls_per_step = 6\nreaction_delay_steps = 1")
                  .replace('adapter = "maker"', 'adapter = "maker"\nparams = { "ETH-A.hole_dai" = 400000, '
                           '"ETH-B.hole_dai" = 250000, Hole_dai = 550000 }')
                  .replace('collateral = { "ETH-A" = 1.0 }', 'collateral = { "ETH-A" = 0.6, "ETH-B" = 0.4 }'))


def _multi_collateral_book(protocol: str = "aave_v3") -> str:
    """Aave accounts with two collaterals and two debts (a real book's shape)."""
    rng = np.random.default_rng(11)
    lines = ["account,protocol,collateral_asset,collateral_amount,debt_asset,debt_amount"]
    for i in range(120):
        weth, wbtc = rng.lognormal(math.log(5), 1.0), rng.lognormal(math.log(0.2), 1.0)
        value = weth * 3000 + wbtc * 60000
        debt = value * rng.uniform(0.55, 0.78)
        share = rng.uniform(0.3, 0.9)
        lines.append(f"a{i},{protocol},WETH,{weth:.8f},USDC,{debt * share:.6f}")
        lines.append(f"a{i},{protocol},WBTC,{wbtc:.8f},WETH,{debt * (1 - share) / 3000:.8f}")
    return "\n".join(lines) + "\n"


_AAVE_V2 = _AAVE.replace('adapter = "aave_v3"', 'adapter = "aave_v2"')
_MAKER_LIQ12 = _MAKER.replace('adapter = "maker"', 'adapter = "maker_liq12"').replace(
    "venue-contract-maker", "venue-contract-maker-liq12")


_PERP_BASE = """
[scenario]
name = "venue-contract-{name}"
horizon_h = 3
step_min = 5
paths = 2
seed = 5

[assets.{asset}]
price_usd = {price}
model = "merton"
sigma_annual = 0.9
jump_intensity_per_day = 16.0
jump_mean = {rise}
jump_std = 0.02
shocks = [{{ at_h = 0.5, drop = {drop} }}]
[assets.{asset}.liquidity]
model = "sqrt"
daily_volume_usd = {volume}
daily_sigma = 0.04
recovery_half_life_min = 20
"""

_PERP = """
[[protocols]]
adapter = "{adapter}"
{extra}
[protocols.book]
kind = "perp_synthetic"
positions = 400
open_interest_usd = {{ {market} = {oi} }}
long_share = 0.7
size_usd = {{ dist = "lognormal", median = 20000, sigma = 1.3, max = 3e6 }}
leverage = {{ dist = "lognormal", median = 10, sigma = 0.6, min = 1, max = {max_lev} }}
entry_offset = {{ dist = "uniform", low = -0.005, high = 0.005 }}
cross_share = {cross}
"""


def _perp_case(name: str, adapter: str, market: str, *, asset: str = "BTC", price: float = 60000, drop: float = 0.12,
               rise: float = 0.05, oi: float = 3e8, volume: float = 2e9, max_lev: float = 20, cross: float = 0.0,
               extra: str = "", kernel: bool = False) -> ScenarioCase:
    return ScenarioCase(name, _PERP_BASE.format(name=name, asset=asset, price=price, drop=drop, rise=rise,
                                                volume=volume)
                        + _PERP.format(adapter=adapter, market=market, oi=oi, max_lev=max_lev, cross=cross, extra=extra),
                        kernel=kernel)


_MIXED = _BASE.format(name="aave-hyperliquid", horizon_h=6, max_calls=40) + _AAVE + _PERP.format(adapter="hyperliquid", market="ETH", oi=4e8, max_lev=20, cross=0.0,
                           extra='market_assets = { ETH = "WETH" }')


def perp_cases() -> list[ScenarioCase]:
    """One small case per perp venue: BTC shocked down then up (longs, then shorts, liquidated), a small
    insurance fund where the venue has one (the fund runs dry and ADL follows), and one mixed lending +
    perp case on one ETH market."""
    return [
        _perp_case("perp_hyperliquid", "hyperliquid", "BTC", cross=0.3, kernel=True),
        _perp_case("perp_binance_usdm_pro_rata", "binance_usdm", "BTCUSDT", max_lev=50,
                   extra='adl_policy = "pro_rata"\nparams = { insurance_fund_usd = 20000 }', kernel=True),
        _perp_case("perp_dydx_v4", "dydx_v4", "BTC-USD", cross=0.3, extra="params = { insurance_fund_usd = 5000 }"),
        _perp_case("perp_gmx_v2", "gmx_v2", "ETH-USD", asset="ETH", price=3000, max_lev=50),
        ScenarioCase("aave_v3_and_hyperliquid_one_eth_market", _MIXED, venue=1, kernel=True),
    ]


def bundled_cases() -> list[ScenarioCase]:
    """One small case per bundled venue simulator (and book shape): Aave v2 runs on
    :class:`~optimizer.engine.venues.aave_v2.AaveV2Venue` (on the kernel too) and Maker Liquidations 1.x on
    :class:`~optimizer.engine.venues.maker_flip.MakerFlipVenue` (Cat bites and Flipper auctions)."""
    return [
        ScenarioCase("aave_v3", _BASE.format(name="aave", horizon_h=6, max_calls=40) + _AAVE, kernel=True),
        ScenarioCase("aave_v2", _BASE.format(name="aave-v2", horizon_h=6, max_calls=40) + _AAVE_V2, kernel=True),
        ScenarioCase("aave_v2_multi_collateral", _BASE.format(name="aave-v2-multi", horizon_h=6, max_calls=40)
                     + _AAVE_CSV.replace('adapter = "aave_v3"', 'adapter = "aave_v2"'),
                     {"book.csv": _multi_collateral_book("aave_v2")}, kernel=True),
        ScenarioCase("maker_liq12_flipper", _MAKER_LIQ12),
        ScenarioCase("aave_v3_multi_collateral", _BASE.format(name="aave-multi", horizon_h=6, max_calls=40)
                     + _AAVE_CSV, {"book.csv": _multi_collateral_book()}, kernel=True),
        ScenarioCase("compound_v3", _BASE.format(name="comet", horizon_h=6, max_calls=40) + _COMET, kernel=True),
        ScenarioCase("maker", _MAKER, kernel=True),
        ScenarioCase("maker_two_ilks_hole_limited", _MAKER_LIMITED, kernel=True),
        *perp_cases(),
    ]
