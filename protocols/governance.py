"""Governance vocabulary: how proposals name venues, targets, parameters and units.

A proposal says ``liquidation_bonus 10500 bps`` on "WETH", ``liquidation_penalty 0.07`` on a Comet
collateral or ``chop (liquidation penalty) 0.13 fraction`` on "WBTC-A, WBTC-B"; the adapters speak
``WETH.liquidation_bonus_bps``, ``WETH.liquidation_factor = 0.93`` and ``WBTC-A.chop = 1.13``. This
module is the translation, one :class:`Vocabulary` per adapter, attached to the adapter class as
``governance`` (so the adapter registry is the only table of venues), and the proposal loader, the
documentation (``docs/proposal_format.md``) and the tests read the same rules. Pure data: no I/O.

Each :class:`Term` maps one governance parameter name (with aliases) to an adapter field, the
scope of its target (a reserve/collateral/ilk, an eMode category, or the market), the units it
accepts with the conversion into the adapter's unit, and whether the simulator exercises it.
Parameters the simulator does not exercise (reserve factor, interest-rate curve, stability fee,
debt ceilings, caps) are still known, so they are shown and marked "not modelled" rather than
rejected.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field

NOT_MODELLED = "not modelled: no effect on liquidation risk in this model"

# unit spellings -> canonical unit
UNIT_ALIASES: dict[str, str] = {
    "bps": "bps", "bp": "bps", "basis points": "bps", "basis_points": "bps",
    "%": "%", "percent": "%", "pct": "%",
    "fraction": "fraction", "share": "fraction", "decimal": "fraction",
    "ratio": "ratio", "multiplier": "multiplier", "x": "multiplier", "wad": "multiplier",
    "usd": "USD", "$": "USD", "usdc": "USDC", "dai": "DAI",
    "tokens": "tokens", "token": "tokens", "units": "tokens",
    "s": "s", "sec": "s", "second": "s", "seconds": "s",
    "min": "min", "minute": "min", "minutes": "min",
    "h": "h", "hour": "h", "hours": "h",
    "bool": "bool", "boolean": "bool",
}


def canonical_unit(unit: str) -> str:
    """``"Basis Points"`` -> ``bps``; unknown spellings come back as written (then refused by the term)."""
    u = str(unit).strip()
    return UNIT_ALIASES.get(u.lower(), u)


Conv = Callable[[float], float]


def _ident(x: float) -> float:
    return x


@dataclass(frozen=True)
class Term:
    """One governance parameter of one adapter.

    Parameters
    ----------
    names
        The governance name first (how it is displayed), then accepted aliases (lowercase,
        underscores; the loader normalises spaces, hyphens and a trailing parenthetical).
    field
        The adapter schema field (``ltv_bps``), or None for parameters the adapter does not hold.
    scope
        ``"asset"`` (a reserve / collateral / ilk), ``"emode"`` or ``"market"``.
    units
        Accepted canonical units -> conversion of a governance value into the adapter unit. The
        key ``"token"`` accepts ``tokens`` or the target's own symbol.
    unit
        The adapter field's unit (for messages).
    modelled
        Whether the simulator exercises it.
    check
        Extra rule on the governance value: returns an error message or None.
    snapshot_key
        For terms without an adapter field: where the snapshot holds its current value
        (``"assets.{target}.reserve_factor_bps"``) and the unit of that value.
    """

    names: tuple[str, ...]
    field: str | None
    scope: str
    units: dict[str, Conv]
    unit: str
    modelled: bool = True
    check: Callable[[float, str], str | None] | None = None
    snapshot_key: tuple[str, str] | None = None
    note: str = ""

    @property
    def name(self) -> str:
        return self.names[0]


def _bps_pct() -> dict[str, Conv]:
    return {"bps": _ident, "%": lambda x: x * 100.0}


def _fraction_pct() -> dict[str, Conv]:
    return {"fraction": _ident, "%": lambda x: x / 100.0}


def _bonus_check(x: float, unit: str) -> str | None:
    if unit == "bps" and 0 < x < 10_000:
        return (f"liquidation_bonus in bps is the raw 10000 + bonus value (10500 = a 5 % bonus), got {x:g}; "
                "give 10000 + bonus or use unit '%' for the bonus alone")
    return None


_AAVE_TERMS: tuple[Term, ...] = (
    Term(("ltv", "loan_to_value", "ltv_bps", "max_ltv"), "ltv_bps", "asset", _bps_pct(), "bps"),
    Term(("liquidation_threshold", "lt", "liquidation_threshold_bps", "liq_threshold"),
         "liquidation_threshold_bps", "asset", _bps_pct(), "bps"),
    Term(("liquidation_bonus", "lb", "liquidation_bonus_bps", "liq_bonus"), "liquidation_bonus_bps", "asset",
         {"bps": _ident, "%": lambda x: 10_000.0 + x * 100.0}, "bps", check=_bonus_check,
         note="bps are the raw 10000 + bonus (10500 = 5 %); % is the bonus alone"),
    Term(("liquidation_protocol_fee", "liquidation_protocol_fee_bps", "protocol_fee"),
         "liquidation_protocol_fee_bps", "asset", _bps_pct(), "bps"),
    Term(("emode_ltv", "emode_ltv_bps"), "ltv_bps", "emode", _bps_pct(), "bps"),
    Term(("emode_liquidation_threshold", "emode_lt", "emode_liquidation_threshold_bps"),
         "liquidation_threshold_bps", "emode", _bps_pct(), "bps"),
    Term(("emode_liquidation_bonus", "emode_lb", "emode_liquidation_bonus_bps"), "liquidation_bonus_bps", "emode",
         {"bps": _ident, "%": lambda x: 10_000.0 + x * 100.0}, "bps", check=_bonus_check),
    Term(("supply_cap", "supply_cap_tokens"), "supply_cap_tokens", "asset", {"token": _ident}, "tokens",
         modelled=False),
    Term(("borrow_cap", "borrow_cap_tokens"), "borrow_cap_tokens", "asset", {"token": _ident}, "tokens",
         modelled=False),
    Term(("close_factor",), "close_factor", "market", _fraction_pct(), "fraction"),
    Term(("reserve_factor", "reserve_factor_bps", "rf"), None, "asset", _bps_pct(), "bps", modelled=False,
         snapshot_key=("assets.{target}.reserve_factor_bps", "bps")),
    Term(("debt_ceiling", "debt_ceiling_usd"), None, "asset", {"USD": _ident}, "USD", modelled=False,
         snapshot_key=("assets.{target}.debt_ceiling_usd", "USD")),
    *(Term((n,), None, "asset", _bps_pct(), "bps", modelled=False)
      for n in ("optimal_usage_ratio", "uoptimal", "base_variable_borrow_rate", "variable_rate_slope1",
                "variable_rate_slope2", "optimal_stable_to_total_debt_ratio")),
    *(Term((n,), None, "asset", {"bool": _ident}, "bool", modelled=False)
      for n in ("borrowing_enabled", "borrowable_in_isolation", "flashloanable", "siloed_borrowing")),
)

_COMET_TERMS: tuple[Term, ...] = (
    Term(("borrow_collateral_factor", "borrow_cf", "collateral_factor", "cf"), "borrow_collateral_factor",
         "asset", _fraction_pct(), "fraction"),
    Term(("liquidate_collateral_factor", "liquidation_collateral_factor", "liquidate_cf", "lcf"),
         "liquidate_collateral_factor", "asset", _fraction_pct(), "fraction"),
    Term(("liquidation_factor", "lf"), "liquidation_factor", "asset", _fraction_pct(), "fraction"),
    Term(("liquidation_penalty", "penalty"), "liquidation_factor", "asset",
         {"fraction": lambda x: 1.0 - x, "%": lambda x: 1.0 - x / 100.0}, "fraction",
         note="liquidation_penalty = 1 - liquidationFactor"),
    Term(("supply_cap", "supply_cap_tokens"), "supply_cap_tokens", "asset", {"token": _ident}, "tokens",
         modelled=False),
    Term(("target_reserves", "target_reserves_usd"), "target_reserves_usd", "market",
         {"USD": _ident, "USDC": _ident, "base": _ident}, "USD", note="base-asset units taken at $1"),
    Term(("store_front_price_factor", "storefront_price_factor"), "store_front_price_factor", "market",
         _fraction_pct(), "fraction"),
    Term(("base_borrow_min", "base_borrow_min_usd"), "base_borrow_min_usd", "market",
         {"USD": _ident, "USDC": _ident, "base": _ident}, "USD", modelled=False),
    *(Term((n,), None, "market", {**_fraction_pct(), "bps": lambda x: x / 1e4}, "fraction", modelled=False)
      for n in ("supply_kink", "borrow_kink", "supply_per_year_interest_rate_base",
                "supply_per_year_interest_rate_slope_low", "supply_per_year_interest_rate_slope_high",
                "borrow_per_year_interest_rate_base", "borrow_per_year_interest_rate_slope_low",
                "borrow_per_year_interest_rate_slope_high", "reserve_factor")),
    *(Term((n,), None, "market", {"USD": _ident, "tokens": _ident}, "USD", modelled=False)
      for n in ("base_tracking_supply_speed", "base_tracking_borrow_speed", "base_min_for_rewards")),
)

_SECONDS = {"s": _ident, "min": lambda x: x * 60.0, "h": lambda x: x * 3600.0}

_MAKER_TERMS: tuple[Term, ...] = (
    Term(("mat", "liquidation_ratio"), "mat", "asset", {"ratio": _ident, "%": lambda x: x / 100.0}, "ratio"),
    Term(("chop", "liquidation_penalty"), "chop", "asset",
         {"multiplier": _ident, "fraction": lambda x: 1.0 + x, "%": lambda x: 1.0 + x / 100.0}, "multiplier",
         note="a penalty as a fraction (0.13) or % is the multiplier minus 1"),
    Term(("hole",), "hole_dai", "asset", {"DAI": _ident, "USD": _ident}, "DAI"),
    Term(("dust",), "dust_dai", "asset", {"DAI": _ident, "USD": _ident}, "DAI"),
    Term(("buf",), "buf", "asset", {"multiplier": _ident, "ratio": _ident, "%": lambda x: x / 100.0}, "multiplier"),
    Term(("tail",), "tail_s", "asset", _SECONDS, "s"),
    Term(("cusp",), "cusp", "asset", {"ratio": _ident, "fraction": _ident, "%": lambda x: x / 100.0}, "ratio"),
    Term(("chip",), "chip", "asset", _fraction_pct(), "fraction"),
    Term(("tip",), "tip_dai", "asset", {"DAI": _ident, "USD": _ident}, "DAI"),
    Term(("step",), "step_s", "asset", _SECONDS, "s"),
    Term(("cut",), "cut", "asset", {"multiplier": _ident, "ratio": _ident, "%": lambda x: x / 100.0}, "multiplier"),
    Term(("Hole", "global_hole"), "Hole_dai", "market", {"DAI": _ident, "USD": _ident}, "DAI"),
    Term(("hop", "osm_hop"), "osm_hop_s", "market", _SECONDS, "s"),
    Term(("duty", "stability_fee"), None, "asset", {**_fraction_pct(), "bps": lambda x: x / 1e4}, "fraction",
         modelled=False),
    Term(("line", "debt_ceiling"), None, "asset", {"DAI": _ident, "USD": _ident}, "DAI", modelled=False),
    *(Term((n,), None, "asset", {"DAI": _ident, "USD": _ident, "s": _ident, "h": _ident}, "DAI", modelled=False)
      for n in ("autoline_line", "autoline_gap", "autoline_ttl", "gap", "ttl")),
)


@dataclass(frozen=True)
class Vocabulary:
    """How proposals name one adapter's venue and targets."""

    adapter: str
    names: tuple[str, ...]  # lowercase spellings of the protocol field
    terms: tuple[Term, ...]
    targets: str  # what an asset field names: "reserves", "collaterals", "ilks"
    has_emodes: bool = False
    diff_section: str = "assets"  # the section of the raw JSON diff the targets go in (Aave's diff reports: reserves)
    case_sensitive: frozenset[str] = field(default_factory=frozenset)  # names told apart by case (Maker Hole/hole)


AAVE_V3 = Vocabulary("aave_v3", ("aave_v3", "aave v3", "aave-v3", "aave", "aavev3", "aave v3.3", "aave v3.6"),
                     _AAVE_TERMS, "reserves", has_emodes=True, diff_section="reserves")
COMPOUND_V3 = Vocabulary("compound_v3", ("compound_v3", "compound v3", "compound iii", "compound-v3", "comet",
                                         "compound"), _COMET_TERMS, "collaterals")
MAKER = Vocabulary("maker", ("maker", "makerdao", "makerdao/sky", "sky", "maker/sky", "sky/maker", "mcd"),
                   _MAKER_TERMS, "ilks", diff_section="ilks", case_sensitive=frozenset({"Hole"}))


_PAREN = re.compile(r"\s*\([^)]*\)\s*$")


def normalise_parameter(name: str) -> str:
    """``"chop (liquidation penalty)"`` -> ``chop``; ``"Liquidation Threshold"`` -> ``liquidation_threshold``."""
    s = _PAREN.sub("", str(name)).strip()
    return re.sub(r"[\s\-]+", "_", s)


def find_term(venue: Vocabulary, parameter: str, scope_hint: str | None) -> Term | None:
    """The term a (normalised) parameter name means; an eMode target turns ``ltv`` into ``emode_ltv``."""
    raw = normalise_parameter(parameter)
    if raw in venue.case_sensitive:
        for t in venue.terms:
            if raw in t.names:
                return t
    low = raw.lower()
    if scope_hint == "emode" and not low.startswith("emode_"):
        for t in venue.terms:
            if t.scope == "emode" and f"emode_{low}" in t.names:
                return t
    for t in venue.terms:
        if low in {n.lower() for n in t.names if n not in venue.case_sensitive}:
            return t
    return None


def known_parameters(venue: Vocabulary) -> list[str]:
    return [t.name for t in venue.terms]
