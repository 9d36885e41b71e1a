"""Option dealers' delta hedging: a pure, data-driven model of the hedge flow a dealer gamma profile forces.

Option dealers (market makers) keep their book delta-neutral: they hold ``-delta`` of their options in
the underlying. Their options position per strike and expiry is the *gamma profile*. When the price
moves, the options' delta changes by their gamma, so the dealers trade. Dealers who are **short gamma**
(net short options, typically having sold puts to holders who hedge a fall) must **sell into a fall**
and buy into a rise: their hedging amplifies the move, on the same market as liquidations.

**Model.** Dealers hold ``position_base[k]`` options of strike ``strike_usd[k]`` (base units: one
Deribit BTC option is on 1 BTC; < 0 = dealers short), expiring ``expiry_s[k]`` seconds after the start,
priced by Black-Scholes with implied volatility ``implied_vol[k]`` (annualised over 365 days) and zero
rates and carry (options on the perp or on futures). The dealers' option delta is
``D(S, t) = sum_k position_k * N(d1_k)`` (calls; puts ``N(d1) - 1``), with
``d1 = (ln(S/K) + vol^2 tau / 2) / (vol sqrt(tau))`` and ``tau`` the time left in years; their gamma is
``G(S, t) = sum_k position_k * phi(d1_k) / (S vol sqrt(tau))`` (base units per USD, the same for calls
and puts). Their hedge is ``H = -D``.

**Flow.** Moving from ``S0`` to ``S1`` at a fixed time, fully rebalanced dealers trade
``H(S1) - H(S0) = -(D(S1) - D(S0)) = -integral_{S0}^{S1} G(S) dS`` base units: computed exactly as the
difference of deltas (not the first-order ``-G * dS``), so large moves are right too. Puts and calls of
one strike force the same flow. With ``hedge_fraction < 1`` dealers close only that share of the gap to
their target hedge each call (hedging in steps); the model keeps the hedge they actually hold. As time
passes the target moves too (charm); at expiry an option's delta is ``1{S > K}`` (call). Expired strikes
no longer trade.

**Calling it.** :meth:`DealerBook.start` once per path set (dealers start hedged), then
:meth:`DealerBook.step` once per round or step with the price the dealers see (one per path) and the
time since the start; it returns the signed flow (``< 0`` sells) and the new :class:`DealerState`,
whose :class:`~optimizer.behaviour.FlowTally` counts what the dealers sold and bought. No I/O except
:func:`load_dealer_book`; vectorised over paths and strikes.

Data: ``data/behaviour/dealers_btc_example.json`` is an ILLUSTRATIVE profile (dealers short puts below
the 10 Oct 2025 price, long calls above); it is not a measured dealer position.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ._tally import FlowTally

YEAR_S = 365.0 * 86_400.0
_SQRT_2PI = np.sqrt(2.0 * np.pi)


def bs_delta(spot_usd: np.ndarray, strike_usd: np.ndarray, tau_years: np.ndarray, vol: np.ndarray,
             is_call: np.ndarray) -> np.ndarray:
    """Black-Scholes delta with zero rates (broadcast); at or after expiry ``1{S > K}`` (call), ``-1{S < K}`` (put)."""
    from scipy.special import ndtr  # late: scipy is heavy to import and only this needs it

    s, k, t, v = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (spot_usd, strike_usd, tau_years, vol)))
    live = t > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = v * np.sqrt(np.where(live, t, 1.0))
        d1 = (np.log(s / k) + 0.5 * sd * sd) / sd
    call = np.where(live, ndtr(d1), (s > k).astype(np.float64))
    put = np.where(live, call - 1.0, -(s < k).astype(np.float64))
    return np.where(is_call, call, put)


def bs_gamma(spot_usd: np.ndarray, strike_usd: np.ndarray, tau_years: np.ndarray, vol: np.ndarray) -> np.ndarray:
    """Black-Scholes gamma with zero rates (per USD of spot, broadcast); 0 at or after expiry."""
    s, k, t, v = np.broadcast_arrays(*(np.asarray(a, dtype=np.float64) for a in (spot_usd, strike_usd, tau_years, vol)))
    live = t > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        sd = v * np.sqrt(np.where(live, t, 1.0))
        d1 = (np.log(s / k) + 0.5 * sd * sd) / sd
        g = np.exp(-0.5 * d1 * d1) / _SQRT_2PI / (s * sd)
    return np.where(live, g, 0.0)


@dataclass(frozen=True)
class DealerState:
    """Per path: the hedge the dealers hold (base units) and their flow tally."""

    hedge_base: np.ndarray  # (n_paths,)
    tally: FlowTally


@dataclass(frozen=True)
class DealerBook:
    """A dealer gamma profile (arrays over options; see the module docstring). Build with :func:`dealer_book`."""

    strike_usd: np.ndarray
    expiry_s: np.ndarray
    implied_vol: np.ndarray
    position_base: np.ndarray
    is_call: np.ndarray
    hedge_fraction: float = 1.0
    sources: Mapping[str, str] = field(default_factory=dict)

    def _terms(self, spot_usd: np.ndarray, elapsed_s: float) -> tuple[np.ndarray, ...]:
        s = np.asarray(spot_usd, dtype=np.float64)[..., None]
        tau = (self.expiry_s - float(elapsed_s)) / YEAR_S
        return s, tau

    def option_delta_base(self, spot_usd: np.ndarray, elapsed_s: float = 0.0) -> np.ndarray:
        """Dealers' option delta ``D(S, t)`` in base units, per spot (any shape)."""
        s, tau = self._terms(spot_usd, elapsed_s)
        return (self.position_base * bs_delta(s, self.strike_usd, tau, self.implied_vol, self.is_call)).sum(-1)

    def gamma_base_per_usd(self, spot_usd: np.ndarray, elapsed_s: float = 0.0) -> np.ndarray:
        """Dealers' gamma ``G(S, t) = dD/dS`` (base units per USD); < 0 where they are short gamma."""
        s, tau = self._terms(spot_usd, elapsed_s)
        return (self.position_base * bs_gamma(s, self.strike_usd, tau, self.implied_vol)).sum(-1)

    def hedge_target_base(self, spot_usd: np.ndarray, elapsed_s: float = 0.0) -> np.ndarray:
        """The delta-neutral hedge ``H = -D`` (base units)."""
        return -self.option_delta_base(spot_usd, elapsed_s)

    def hedge_flow_base(self, spot_from_usd: np.ndarray, spot_to_usd: np.ndarray, elapsed_s: float = 0.0
                        ) -> np.ndarray:
        """Exact flow of fully rebalanced dealers for a move at a fixed time: ``-(D(S1) - D(S0))``."""
        return self.hedge_target_base(spot_to_usd, elapsed_s) - self.hedge_target_base(spot_from_usd, elapsed_s)

    def start(self, n_paths: int, spot_usd: float | np.ndarray) -> DealerState:
        """Dealers hedged at the start price (scalar or one per path)."""
        s = np.broadcast_to(np.asarray(spot_usd, dtype=np.float64), (n_paths,))
        return DealerState(self.hedge_target_base(s, 0.0), FlowTally.zeros(n_paths))

    def step(self, state: DealerState, spot_usd: np.ndarray, elapsed_s: float) -> tuple[np.ndarray, DealerState]:
        """Rebalance towards the hedge at this price and time (``elapsed_s`` since the start).

        Returns the signed flow per path (``< 0`` sells) and the new state.
        """
        s = np.broadcast_to(np.asarray(spot_usd, dtype=np.float64), state.hedge_base.shape)
        flow = self.hedge_fraction * (self.hedge_target_base(s, elapsed_s) - state.hedge_base)
        return flow, DealerState(state.hedge_base + flow, state.tally.add(flow))


def _value(node: Mapping[str, Any], key: str, where: str, file: str | None, lo: float, hi: float,
           default: float | None = None, *, lo_open: bool = False) -> float:
    v = node.get(key, default)
    if isinstance(v, Mapping) and "value" in v:
        v = v["value"]
    if v is None:
        raise InputError("missing", file=file, field=f"{where}{key}")
    if (isinstance(v, bool) or not isinstance(v, (int, float)) or not np.isfinite(v) or not lo <= v <= hi
            or (lo_open and v == lo)):
        interval = f"({lo:g}, {hi:g}]" if lo_open else f"[{lo:g}, {hi:g}]"
        raise InputError(f"must be a number in {interval}, got {v!r}", file=file, field=f"{where}{key}")
    return float(v)


def dealer_book(spec: Mapping[str, Any], *, file: str | None = None) -> DealerBook:
    """Build and validate a dealer profile from a dict (the JSON format of ``data/behaviour/``).

    ``spec["options"]`` is a non-empty list of ``{"strike_usd", "expiry_days", "implied_vol",
    "dealer_position_base", "type"}`` (``type`` ``call`` or ``put``; position < 0 = dealers short);
    ``hedge_fraction`` (default 1) is the share of the gap to the target hedge closed per call. A value may
    be given as ``{"value": x, "source": "..."}``. Errors are one-line :class:`InputError` naming the field.
    """
    opts = spec.get("options")
    if not isinstance(opts, list) or not opts:
        raise InputError("must be a non-empty list of options", file=file, field="options")
    rows = []
    for i, o in enumerate(opts):
        where = f"options[{i}]."
        if not isinstance(o, Mapping):
            raise InputError("must be an object", file=file, field=where[:-1])
        kind = o.get("type")
        if kind not in ("call", "put"):
            raise InputError(f"must be call or put, got {kind!r}", file=file, field=f"{where}type")
        rows.append((_value(o, "strike_usd", where, file, 0, 1e12, lo_open=True),
                     _value(o, "expiry_days", where, file, 0, 3650, lo_open=True) * 86_400.0,
                     _value(o, "implied_vol", where, file, 0, 20, lo_open=True),
                     _value(o, "dealer_position_base", where, file, -1e12, 1e12), kind == "call"))
    k, e, v, q, c = (np.array(col) for col in zip(*rows, strict=True))
    sources = {key: str(val["source"]) for key, val in spec.items() if isinstance(val, Mapping) and "source" in val}
    return DealerBook(k, e, v, q, c.astype(bool), _value(spec, "hedge_fraction", "", file, 0, 1, 1.0, lo_open=True),
                      sources)


def load_dealer_book(path: str | Path) -> DealerBook:
    """Read a dealer profile JSON file (the I/O edge of this module)."""
    from ..snapshots import read_json

    data = read_json(path)
    if not isinstance(data, dict):
        raise InputError("must be a JSON object", file=str(path))
    return dealer_book(data, file=str(path))
