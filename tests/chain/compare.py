"""Which fields of a fetched snapshot must equal the bundled one, value for value.

Compared: every parameter the chain holds (all reserve / asset / ilk fields, eModes with their asset
lists as sets, market parameters, Maker's global values) and the texts copied from the bundled file
(units, constants, Comet max_collateral_assets). Not compared: what the chain does not hold or holds
differently by nature: market (names the contract address), as_of (the block date), source, caveats,
provenance, status, note.
Where the bundled value is unknown (null Comet supply caps) the fetched value must equal what was
put on chain instead.
"""

from __future__ import annotations

from typing import Any

NOT_COMPARED = {"market", "as_of", "source", "caveats", "provenance", "status", "note"}


def strip(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k not in NOT_COMPARED}


def assert_aave_equal(fetched: dict, bundled: dict, extra_assets: dict) -> None:
    assert fetched["protocol"] == bundled["protocol"]
    assert fetched["units"] == bundled["units"] and fetched["constants"] == bundled["constants"]
    for sym, b in bundled["assets"].items():
        assert strip(fetched["assets"][sym]) == strip(b), sym
    extra = set(fetched["assets"]) - set(bundled["assets"])
    assert extra == set(extra_assets)
    for sym in extra:
        want = {k: v for k, v in extra_assets[sym].items() if k != "stand_in"}
        assert strip(fetched["assets"][sym]) == want, sym
    assert set(fetched["emodes"]) == set(bundled["emodes"])
    for eid, b in bundled["emodes"].items():
        f = fetched["emodes"][eid]
        for key in ("label", "ltv_bps", "liquidation_threshold_bps", "liquidation_bonus_bps"):
            assert f[key] == b[key], (eid, key)
        for key in ("collateral_assets", "borrowable_assets"):
            assert sorted(f[key]) == sorted(b[key]), (eid, key)
    keys = set(bundled["assets"]["WETH"])
    assert all(set(a) == keys for a in fetched["assets"].values())  # the same fields on every reserve
    assert set(fetched) - set(bundled) == {"prices_usd", "price_feeds", "chain"}


def assert_comet_equal(fetched: dict, bundled: dict, caps_on_chain: dict, reserves_usd: float) -> None:
    assert fetched["protocol"] == bundled["protocol"] and fetched["base_asset"] == bundled["base_asset"]
    assert set(fetched) - set(bundled) == {"prices_usd", "price_feeds", "chain"}
    mp_f, mp_b = fetched["market_params"], bundled["market_params"]
    for key in ("store_front_price_factor", "target_reserves_usd", "base_borrow_min_usd", "max_collateral_assets"):
        assert mp_f[key] == mp_b[key], key
    assert mp_f["reserves_usd"] == reserves_usd
    assert list(fetched["assets"]) == list(bundled["assets"])
    for sym, b in bundled["assets"].items():
        f = fetched["assets"][sym]
        assert set(f) == set(b), sym
        for key in ("decimals", "borrow_collateral_factor", "liquidate_collateral_factor", "liquidation_factor"):
            assert f[key] == b[key], (sym, key)
        cap = b["supply_cap_tokens"]
        assert f["supply_cap_tokens"] == (cap if cap is not None else caps_on_chain[sym]), sym


def assert_maker_equal(fetched: dict, bundled: dict) -> None:
    assert fetched["protocol"] == bundled["protocol"]
    assert fetched["units"] == bundled["units"]
    assert fetched["global"] == bundled["global"]
    assert set(fetched) - set(bundled) == {"prices_usd", "price_feeds", "chain"}
    assert list(fetched["ilks"]) == list(bundled["ilks"])
    for ilk, b in bundled["ilks"].items():
        assert strip(fetched["ilks"][ilk]) == strip(b), ilk
