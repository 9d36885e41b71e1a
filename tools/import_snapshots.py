"""Rebuild data/protocols/*.json from the shared snapshots (../shared/data/protocols).

Run by hand when the shared snapshots change: `python tools/import_snapshots.py ../shared`.
The project format: one JSON per venue, parameters in the units governance uses, and for every
value where it was last set (`set_by`) and when (`as_of`). Not run by CI; its output is committed.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

AAVE_FIELDS = {
    "ltv": ("ltv_bps", "ltv"),
    "liquidation_threshold": ("liquidation_threshold_bps", "liquidation_threshold"),
    "liquidation_bonus": ("liquidation_bonus_raw", "liquidation_bonus"),
    "liquidation_protocol_fee": ("liquidation_protocol_fee_bps", "liquidation_protocol_fee"),
    "reserve_factor": ("reserve_factor_bps", "reserve_factor"),
    "supply_cap": ("supply_cap_tokens", "supply_cap"),
    "borrow_cap": ("borrow_cap_tokens", "borrow_cap"),
    "debt_ceiling": ("debt_ceiling_usd", "debt_ceiling"),
}


def _date(set_by: str) -> str:
    m = re.search(r"(20\d{2})-?(\d{2})-?(\d{2})", set_by)
    return f"{m.group(1)}-{m.group(2)}-{m.group(3)}" if m else ""


def aave(src: dict) -> dict:
    assets = {}
    for r in src["reserves"]:
        entry = {"decimals": r["decimals"]}
        prov = {}
        for key, (field, prov_key) in AAVE_FIELDS.items():
            out_name = {"liquidation_bonus": "liquidation_bonus_bps"}.get(key, field)
            entry[out_name] = r[field]
            set_by = r["last_set_by"].get(prov_key, "")
            prov[out_name] = {"set_by": set_by, "as_of": _date(set_by)}
        entry.update(
            borrowing_enabled=r["borrowing_enabled"],
            usage_as_collateral_enabled=r["usage_as_collateral_enabled"],
            frozen=r["is_frozen"],
            paused=r["is_paused"],
            active=r["is_active"],
            borrowable_in_isolation=r["borrowable_in_isolation"],
            siloed_borrowing=r["siloed_borrowing"],
            provenance=prov,
        )
        assets[r["symbol"]] = entry
    emodes = {}
    for e in src["emode_categories"]:
        emodes[str(e["id"])] = {
            "label": e["label"],
            "ltv_bps": e["ltv_bps"],
            "liquidation_threshold_bps": e["liquidation_threshold_bps"],
            "liquidation_bonus_bps": e["liquidation_bonus_raw"],
            "collateral_assets": e["collateral_assets"] or [],
            "borrowable_assets": e["borrowable_assets"] or [],
            "provenance": {"set_by": e["last_set_by"], "as_of": _date(e["last_set_by"])},
            **({"note": e["note"]} if e.get("note") else {}),
        }
    c = src["protocol_constants_v3_3_to_v3_6"]
    return {
        "protocol": "aave_v3",
        "market": "Aave v3 Ethereum Core (Pool 0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2)",
        "as_of": "2026-02-20",
        "source": (
            "Reconstructed from bgd-labs/aave-proposals-v3 @ ff6a99cd (2026-02-20): 2023-10-31 full reserve "
            "snapshot plus 217 governance diff reports applied in date order (via shared/data/protocols/"
            "aave_v3_ethereum_reserves.json)."
        ),
        "units": {
            "*_bps": "basis points (7800 = 78 %); liquidation_bonus_bps is stored as on-chain: 10000 + bonus",
            "liquidation_protocol_fee_bps": "share of the BONUS part of seized collateral sent to the treasury",
            "*_cap_tokens": "whole tokens; 0 = no cap",
            "debt_ceiling_usd": "isolation-mode ceiling in USD; 0 = not isolated",
        },
        "caveats": [
            "Supply/borrow caps are the last values set by a governance payload; Risk Stewards change them "
            "outside payloads, so they are stale. Read getReserveCaps on-chain before relying on them.",
            "Steward-made LTV/LT/LB moves not touched by a later payload cannot be seen in this reconstruction.",
            "eModes 38/39 have values but no asset lists in the diffs.",
        ],
        "constants": {
            "health_factor_liquidation_threshold": c["HEALTH_FACTOR_LIQUIDATION_THRESHOLD"],
            "close_factor": c["DEFAULT_LIQUIDATION_CLOSE_FACTOR"],
            "close_factor_hf_threshold": c["CLOSE_FACTOR_HF_THRESHOLD"],
            "min_base_max_close_factor_threshold_usd": c["MIN_BASE_MAX_CLOSE_FACTOR_THRESHOLD_usd"],
            "min_leftover_base_usd": c["MIN_LEFTOVER_BASE_usd"],
            "max_grace_period_s": c["MAX_GRACE_PERIOD_seconds"],
            "source": c["source"],
        },
        "assets": assets,
        "emodes": emodes,
    }


def compound(src: dict) -> dict:
    mp = src["market_params"]
    assets = {}
    for a in src["assets"]:
        entry = {
            "decimals": a["decimals"],
            "borrow_collateral_factor": a["borrow_collateral_factor"],
            "liquidate_collateral_factor": a["liquidate_collateral_factor"],
            "liquidation_factor": a["liquidation_factor"],
            "supply_cap_tokens": a["supply_cap_tokens"],
            "as_of": a["values_as_of"],
            "status": a["value_status"],
            "source": a["source"],
        }
        if a["liquidate_collateral_factor"] is None:
            # COMP: the current liquidateCF / liquidationFactor were not found; fall back to the last
            # value seen (2022 configuration.json) and say so.
            h = a["history"][-1]
            entry["liquidate_collateral_factor"] = h["liquidateCF"]
            entry["liquidation_factor"] = h["liquidationFactor"]
            entry["status"] += " | liquidate_collateral_factor and liquidation_factor fall back to the 2022 values"
        assets[a["symbol"]] = entry
    return {
        "protocol": "compound_v3",
        "market": "Compound III cUSDCv3 Ethereum mainnet (Comet 0xc3d688B66703497DAA19211EEdff47f25384cdc3)",
        "as_of": "2026-05-29",
        "source": (
            "compound-finance/comet @ d5a30b0a (2026-05-29) deployments/mainnet/usdc (configuration.json and "
            "migrations) plus Gauntlet recommendations on the Compound forum, cited per asset "
            "(via shared/data/protocols/compound_v3_usdc_mainnet.json)."
        ),
        "base_asset": {"symbol": src["base_token"]["symbol"], "decimals": src["base_token"]["decimals"]},
        "market_params": {
            "store_front_price_factor": mp["store_front_price_factor"],
            "target_reserves_usd": mp["target_reserves_usdc"],
            "base_borrow_min_usd": mp["base_borrow_min_usdc"],
            "max_collateral_assets": mp["max_collateral_assets"],
            "provenance": {
                "store_front_price_factor": {"as_of": "2022-08", "status": mp["store_front_price_factor_status"]},
                "target_reserves_usd": {"as_of": "2024-02", "status": mp["target_reserves_status"]},
                "base_borrow_min_usd": {"as_of": "2022-08", "status": "configuration.json"},
            },
        },
        "caveats": src["caveats"],
        "assets": assets,
    }


def maker(src: dict) -> dict:
    g = src["global"]
    ilks = {}
    for name, i in src["ilks"].items():
        c, k = i["clip"], i["calc"]
        ilks[name] = {
            "mat": i["mat_liquidation_ratio"],
            "chop": i["chop_onchain_multiplier"],
            "hole_dai": i["hole_dai"],
            "dust_dai": i["dust_dai"],
            "buf": c["buf_starting_price_multiplier"],
            "tail_s": c["tail_seconds"],
            "cusp": c["cusp_fraction_of_top"],
            "chip": c["chip_keeper_reward_fraction_of_tab"],
            "tip_dai": c["tip_keeper_flat_reward_dai"],
            "liquidations_enabled": c["liquidations_enabled"],
            "clipper_mom_tolerance": c["clipper_mom_price_tolerance"] if c["clipper_mom_breaker_enabled"] else None,
            "calc": {"type": k["type"], "step_s": k["step_seconds"], "cut": k["cut_per_step"], "tau_s": k["tau"]},
            **({"note": i["note"]} if i.get("note") else {}),
        }
    return {
        "protocol": "maker",
        "market": "Maker/Sky Liquidations 2.0 (Dog + Clipper + Abacus), Ethereum mainnet",
        "as_of": "2026-05-07",
        "source": (
            "sky-ecosystem/spells-mainnet @ cdd6ae7e (2026-05-07) src/test/config.sol, expected post-spell state "
            "of the executive deployed at block 25043934 (via shared/data/protocols/maker_ilks.json)."
        ),
        "units": {
            "mat": "liquidation ratio (collateral value / debt), 1.45 = 145 %",
            "chop": "on-chain multiplier: tab = debt * chop (1.13 = 13 % penalty)",
            "buf": "auction start price = OSM price * buf",
            "cusp": "reset when price / top < cusp",
            "chip": "keeper reward as a fraction of tab",
        },
        "global": {"Hole_dai": g["dog_Hole_dai"], "osm_hop_s": g["osm_hop_seconds"]},
        "caveats": src["caveats"],
        "ilks": ilks,
    }


def main(shared: Path, out: Path) -> None:
    p = shared / "data" / "protocols"
    for fn, conv, name in (
        ("aave_v3_ethereum_reserves.json", aave, "aave_v3_ethereum_core.json"),
        ("compound_v3_usdc_mainnet.json", compound, "compound_v3_usdc_mainnet.json"),
        ("maker_ilks.json", maker, "maker_ilks.json"),
    ):
        data = conv(json.loads((p / fn).read_text()))
        (out / name).write_text(json.dumps(data, indent=1, sort_keys=False) + "\n")
        print("wrote", out / name)


if __name__ == "__main__":
    shared = Path(sys.argv[1] if len(sys.argv) > 1 else "../shared")
    main(shared, Path(__file__).resolve().parents[1] / "data" / "protocols")
