"""Rebuild data/books/aave_v3_wsteth_accounts_2023-06-19.csv and its 2023 parameter snapshot from the
shared research copy of the Lido Aave v3 wstETH-collateral accounts (../shared/data/books).

Run by hand when the shared file changes: `python tools/import_books.py ../shared`. Not run by CI; its
output is committed. Source: data/README.md and shared/data/SOURCES.md (lidofinance/aave-liquidation-model
@ a44561e9, data/steth_aave_v3.csv, read from chain on 2023-06-19).

What the source gives per account (USD at the Aave oracle unless said): `collateral` / `debt`
(getUserAccountData totals), `threshold` / `ltv` (account-weighted, bps), `healthf`, `emode`, and token
amounts of four legs: wstETH supplied (`amount`), rETH and cbETH supplied, WETH borrowed (`ethdebt`), with
a second set of USD prices (`*_price`) a constant 0.019 % above the oracle (ETH 1,719.57 on-chain against
1,719.90 in the file, the same ratio for wstETH).

How it becomes a book in the project's CSV format (one row per leg):

* Oracle prices: wstETH = the most common `collateral / amount` of accounts with wstETH only
  (1,941.0546), WETH = the most common `debt / ethdebt` of accounts with WETH debt only (1,719.57); rETH
  and cbETH = their file price times the same oracle/file ratio.
* Named legs: wstETH, rETH, cbETH collateral and WETH debt, in tokens, as in the file.
* Unnamed legs, explicit pseudo-assets priced at $1 (1 token = 1 USD): what the named legs leave of
  `collateral` is OTHER_COLLATERAL_USD, what they leave of `debt` is OTHER_DEBT_USD (the source calls it
  mostly stablecoins). Unexplained amounts below $1 are the file's price rounding and are dropped.
* ``emode`` = the file's eMode id (1 = ETH-correlated, 130 accounts).

The snapshot (data/protocols/aave_v3_ethereum_core_2023-06-19_wsteth_book.json) holds the parameters the
file pins down, derived here from the account-weighted thresholds: wstETH LT/LTV (accounts holding only
wstETH), rETH and cbETH LT/LTV (the residual of accounts holding wstETH and one of them), eMode 1 LT/LTV,
and OTHER_COLLATERAL_USD's LT/LTV (the value-weighted residual of the accounts holding it). Bonuses,
protocol fees, WETH's own parameters and the close-factor constants are not in the file: they are today's
(the bundled Aave snapshot), as each entry's provenance says.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SRC = "data/books/aave_v3_wsteth_collateral_accounts_2023-06-19_lido.csv"
BOOK = ROOT / "data" / "books" / "aave_v3_wsteth_accounts_2023-06-19.csv"
REPORTED = ROOT / "data" / "books" / "aave_v3_wsteth_accounts_2023-06-19_reported.csv"
SNAPSHOT = ROOT / "data" / "protocols" / "aave_v3_ethereum_core_2023-06-19_wsteth_book.json"
BUNDLED = ROOT / "data" / "protocols" / "aave_v3_ethereum_core.json"
OTHER_C, OTHER_D = "OTHER_COLLATERAL_USD", "OTHER_DEBT_USD"
DUST_USD = 1.0


def _num(x: float) -> str:
    return repr(float(x))


def read(src: Path) -> dict[str, np.ndarray]:
    with src.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    cols = {k: [r[k] for r in rows] for k in rows[0]}
    out: dict[str, np.ndarray] = {"user": np.array(cols["user"])}
    for k in ("collateral", "debt", "threshold", "ltv", "healthf", "amount", "ethdebt", "emode", "cbeth_collateral",
              "reth_collateral", "reth_price", "cbeth_price", "eth_price", "steth_price"):
        out[k] = np.array([float(v) for v in cols[k]])
    return out


def _mode(x: np.ndarray) -> float:
    v, c = np.unique(x, return_counts=True)
    return float(v[np.argmax(c)])


def oracle_prices(d: dict[str, np.ndarray]) -> dict[str, float]:
    only_wst = (d["reth_collateral"] == 0) & (d["cbeth_collateral"] == 0) & (d["amount"] > 0)
    p_wst = _mode(d["collateral"][only_wst] / d["amount"][only_wst])
    weth = d["ethdebt"] > 0
    p_eth = _mode(d["debt"][weth] / d["ethdebt"][weth])
    k = p_wst / d["steth_price"][0]
    return {"wstETH": p_wst, "WETH": p_eth, "rETH": float(d["reth_price"][0] * k),
            "cbETH": float(d["cbeth_price"][0] * k), OTHER_C: 1.0, OTHER_D: 1.0, "file_ratio": float(k)}


def legs(d: dict[str, np.ndarray], px: dict[str, float]) -> dict[str, np.ndarray]:
    named = d["amount"] * px["wstETH"] + d["reth_collateral"] * px["rETH"] + d["cbeth_collateral"] * px["cbETH"]
    other_c = d["collateral"] - named
    other_d = d["debt"] - d["ethdebt"] * px["WETH"]
    return {"other_collateral_usd": np.where(other_c >= DUST_USD, other_c, 0.0),
            "other_debt_usd": np.where(other_d >= DUST_USD, other_d, 0.0)}


def derived_parameters(d: dict[str, np.ndarray], px: dict[str, float], lg: dict[str, np.ndarray]) -> dict:
    """LT/LTV (bps) the file's account-weighted thresholds pin down."""
    oc = lg["other_collateral_usd"]
    em = d["emode"] == 1
    wst = d["amount"] * px["wstETH"]
    reth = d["reth_collateral"] * px["rETH"]
    cbeth = d["cbeth_collateral"] * px["cbETH"]
    out: dict = {}
    only = (oc == 0) & (reth == 0) & (cbeth == 0) & (wst > 0)
    for key, col in (("liquidation_threshold_bps", "threshold"), ("ltv_bps", "ltv")):
        out.setdefault("wstETH", {})[key] = _mode(d[col][only & ~em])
        out.setdefault("emode1", {})[key] = _mode(d[col][only & em])
    # Pool v3.0 truncated the account's average to whole bps: the true average lies in [t, t + 1), so
    # residuals are taken at its middle, t + 0.5.
    for name, val, other in (("rETH", reth, cbeth), ("cbETH", cbeth, reth)):
        sel = (oc == 0) & (val > 0) & (other == 0) & ~em
        for key, col in (("liquidation_threshold_bps", "threshold"), ("ltv_bps", "ltv")):
            w = out["wstETH"][key] / 1e4
            resid = ((d[col][sel] + 0.5) / 1e4 * d["collateral"][sel] - w * wst[sel]) / val[sel]
            out.setdefault(name, {})[key] = float(np.round(np.median(resid) * 1e4))
    sel = oc > 0
    for key, col in (("liquidation_threshold_bps", "threshold"), ("ltv_bps", "ltv")):
        w = np.where(em, out["emode1"][key], out["wstETH"][key]) / 1e4
        wr = np.where(em, out["emode1"][key], out["rETH"][key]) / 1e4
        wc = np.where(em, out["emode1"][key], out["cbETH"][key]) / 1e4
        resid_usd = (d[col] + 0.5) / 1e4 * d["collateral"] - w * wst - wr * reth - wc * cbeth
        out.setdefault(OTHER_C, {})[key] = float(np.round(resid_usd[sel].sum() / oc[sel].sum() * 1e4))
    return out


def write_book(d: dict[str, np.ndarray], lg: dict[str, np.ndarray]) -> int:
    BOOK.parent.mkdir(parents=True, exist_ok=True)
    n = 0
    with BOOK.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["account", "protocol", "collateral_asset", "collateral_amount", "debt_asset", "debt_amount",
                    "emode"])
        for i, user in enumerate(d["user"]):
            e = int(d["emode"][i])
            coll = [(a, q) for a, q in (("wstETH", d["amount"][i]), ("rETH", d["reth_collateral"][i]),
                                        ("cbETH", d["cbeth_collateral"][i]),
                                        (OTHER_C, lg["other_collateral_usd"][i])) if q > 0]
            debt = [(a, q) for a, q in (("WETH", d["ethdebt"][i]), (OTHER_D, lg["other_debt_usd"][i])) if q > 0]
            for k in range(max(len(coll), len(debt))):
                ca, cq = coll[k] if k < len(coll) else ("", None)
                da, dq = debt[k] if k < len(debt) else ("", None)
                w.writerow([user, "aave_v3", ca, "" if cq is None else _num(cq), da, "" if dq is None else _num(dq), e])
                n += 1
    return n


def write_reported(d: dict[str, np.ndarray]) -> None:
    """The source's on-chain getUserAccountData per account, to check the simulator against."""
    with REPORTED.open("w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["account", "collateral_usd", "debt_usd", "liquidation_threshold_bps", "ltv_bps", "health_factor",
                    "emode"])
        for i, user in enumerate(d["user"]):
            w.writerow([user, _num(d["collateral"][i]), _num(d["debt"][i]), int(d["threshold"][i]), int(d["ltv"][i]),
                        _num(d["healthf"][i]), int(d["emode"][i])])


def write_snapshot(params: dict) -> None:
    bundled = json.loads(BUNDLED.read_text())
    today = {"set_by": "not in the 2023 file: today's value (bundled aave_v3_ethereum_core.json, "
                       f"{bundled['as_of']})", "as_of": bundled["as_of"]}
    derived = {"set_by": "derived from the account-weighted thresholds of shared/" + SRC + " (tools/import_books.py)",
               "as_of": "2023-06-19"}
    assets = {}
    for sym in ("WETH", "wstETH", "rETH", "cbETH"):
        a = {k: v for k, v in bundled["assets"][sym].items() if k != "provenance"}
        prov = {k: today for k in ("ltv_bps", "liquidation_threshold_bps", "liquidation_bonus_bps",
                                   "liquidation_protocol_fee_bps", "supply_cap_tokens", "borrow_cap_tokens")}
        for k, v in params.get(sym, {}).items():
            a[k] = int(v)
            prov[k] = derived
        a["supply_cap_tokens"] = a["borrow_cap_tokens"] = 0  # caps do not bind a fixed book
        a["provenance"] = prov
        assets[sym] = a
    base = {"decimals": 18, "reserve_factor_bps": 0, "supply_cap_tokens": 0, "borrow_cap_tokens": 0,
            "debt_ceiling_usd": 0.0, "frozen": False, "paused": False, "active": True,
            "borrowable_in_isolation": False, "siloed_borrowing": False}
    pseudo = {"set_by": "pseudo-asset for the collateral the 2023 file does not name (1 token = 1 USD); LT/LTV "
                        "derived from the account-weighted thresholds (tools/import_books.py)", "as_of": "2023-06-19"}
    assets[OTHER_C] = {**base, "ltv_bps": int(params[OTHER_C]["ltv_bps"]),
                       "liquidation_threshold_bps": int(params[OTHER_C]["liquidation_threshold_bps"]),
                       "liquidation_bonus_bps": 10500, "liquidation_protocol_fee_bps": 1000,
                       "borrowing_enabled": False, "usage_as_collateral_enabled": True,
                       "provenance": {k: pseudo for k in ("ltv_bps", "liquidation_threshold_bps")}
                       | {"liquidation_bonus_bps": {"set_by": "assumption: WETH's bonus", "as_of": "2023-06-19"}}}
    assets[OTHER_D] = {**base, "ltv_bps": 0, "liquidation_threshold_bps": 0, "liquidation_bonus_bps": 0,
                       "liquidation_protocol_fee_bps": 1000, "borrowing_enabled": True,
                       "usage_as_collateral_enabled": False,
                       "provenance": {"ltv_bps": {"set_by": "pseudo-asset for the debt the 2023 file does not name "
                                                           "(mostly stablecoins per the source; 1 token = 1 USD)",
                                                  "as_of": "2023-06-19"}}}
    e1 = {k: v for k, v in bundled["emodes"]["1"].items() if k != "provenance"}
    e1.update({k: int(v) for k, v in params["emode1"].items()})
    e1["collateral_assets"] = ["WETH", "wstETH", "cbETH", "rETH"]
    e1["borrowable_assets"] = ["WETH"]
    e1["provenance"] = {"set_by": "LT/LTV derived from the file (accounts in eMode 1); bonus: today's value",
                        "as_of": "2023-06-19"}
    snap = {
        "protocol": "aave_v3",
        "market": "Aave v3 Ethereum (Pool 0x87870Bca3F3fD6335C3F4ce8392D69350B4fA4E2): the reserves of the 2023-06-19 "
                  "wstETH-collateral book",
        "as_of": "2023-06-19",
        "source": "LT/LTV of wstETH, rETH, cbETH and eMode 1 derived from lidofinance/aave-liquidation-model @ "
                  "a44561e9 data/steth_aave_v3.csv (via shared/" + SRC + "); everything else from the bundled "
                  f"snapshot as of {bundled['as_of']} (see provenance); two pseudo-assets for the unnamed legs.",
        "units": bundled["units"],
        "caveats": ["Only the reserves of this book. Bonuses and protocol fees are today's, not 2023's.",
                    f"{OTHER_C} / {OTHER_D} are pseudo-assets (1 token = 1 USD): the collateral and debt the "
                    "source does not name, held at constant value in scenarios."],
        "constants": bundled["constants"],
        "assets": assets,
        "emodes": {"1": e1},
    }
    SNAPSHOT.write_text(json.dumps(snap, indent=1) + "\n")


def main(argv: list[str]) -> int:
    shared = Path(argv[1]) if len(argv) > 1 else ROOT.parent.parent / "shared"
    d = read(shared / SRC)
    px = oracle_prices(d)
    lg = legs(d, px)
    params = derived_parameters(d, px, lg)
    rows = write_book(d, lg)
    write_reported(d)
    write_snapshot(params)
    print(f"wrote {BOOK.relative_to(ROOT)}: {len(d['user'])} accounts, {rows} rows")
    print(f"wrote {REPORTED.relative_to(ROOT)} and {SNAPSHOT.relative_to(ROOT)}")
    print("oracle prices (USD):", {k: round(v, 6) for k, v in px.items()})
    print("derived parameters (bps):", params)
    print(f"unnamed collateral ${lg['other_collateral_usd'].sum():,.0f} in {(lg['other_collateral_usd'] > 0).sum()} "
          f"accounts; unnamed debt ${lg['other_debt_usd'].sum():,.0f} in {(lg['other_debt_usd'] > 0).sum()} accounts")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
