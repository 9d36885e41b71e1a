"""Calibrate the static liquidation map of a perp market from its forced-liquidation flows.

    python tools/calibrate_perp_flows.py            # rewrites the two outputs below from data/flows/

Reads ``data/flows/eth_usdt_perp_1m_liquidations_2021-01.csv`` (Binance ETHUSDT perpetual, January
2021) and fits, per side, cumulative liquidations since the trailing 240-minute extreme against the
deepest move since it, ``C = slope * max(x - d0, 0)``, with a day bootstrap (model:
``optimizer.scenario.perp_calibration``). Writes

- ``data/flows/eth_usdt_perp_liquidation_map_2021-01.json``: the fit per side (slope in ETH per unit
  of move and as a share of open interest, dead band, bootstrap SE and 95 % intervals) and the
  sensitivity to the window; the file ``kind = "perp_synthetic"`` books read with ``calibration =``;
- ``reports/perp_liquidation_map_2021-01.png``: the data, the fits with their bootstrap bands, and
  the slope against the window.

Same inputs, same outputs (one seed). Takes about 20 s. Not run by CI; a test re-fits the 240-minute
window and checks the committed file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from optimizer.io import atomic_write_text
from optimizer.scenario.perp_calibration import (
    calibration_record,
    depth_since_extreme,
    fit_liquidation_map,
    read_liquidation_flows_csv,
)

FLOWS = ROOT / "data" / "flows" / "eth_usdt_perp_1m_liquidations_2021-01.csv"
OUT = ROOT / "data" / "flows" / "eth_usdt_perp_liquidation_map_2021-01.json"
FIGURE = ROOT / "reports" / "perp_liquidation_map_2021-01.png"
WINDOW_MIN = 240
SENSITIVITY_MIN = (60, 120, 240, 480, 1440)
N_BOOT = 2000
SEED = 20210111

# Open interest of the market, to turn ETH per unit of move into a share of open interest.
OI_USD = 1.13e9  # Binance ETH futures open interest on 2021-01-19 (ByBt), as reported the same day
OI_PRICE_USD = 1369.45  # mean mid of 2021-01-19 in the flows file
OPEN_INTEREST = {
    "value_base": round(OI_USD / OI_PRICE_USD),
    "usd": OI_USD,
    "price_usd": OI_PRICE_USD,
    "as_of": "2021-01-19",
    "source": "'Open Interest in Ether Futures Soars as Price Reached New ATH', cryptonews.com.au, 2021-01-19 "
              "(https://content.cryptonews.com.au/tag/ether-futures), quoting ByBt: Binance ETH futures open "
              "interest US$1.13 billion; converted at the day's mean mid of the flows file (1,369.45 USD).",
    "status": "one press figure for all Binance ETH futures (USD-M and COIN-M, perpetual and dated), not the "
              "ETHUSDT perpetual alone, on one day of a month in which ETH went from 730 to 1,470 USD; its "
              "uncertainty is not quantified and is NOT in the intervals of the share-of-open-interest slope.",
}


def main() -> None:
    flows = read_liquidation_flows_csv(FLOWS)
    oi = OPEN_INTEREST["value_base"]
    fits = {s: fit_liquidation_map(flows, s, WINDOW_MIN, n_boot=N_BOOT, seed=SEED) for s in ("long", "short")}
    sens = {s: {str(w): (fits[s] if w == WINDOW_MIN else fit_liquidation_map(flows, s, w, n_boot=N_BOOT, seed=SEED))
                for w in SENSITIVITY_MIN} for s in ("long", "short")}
    doc = {
        "what": "Static liquidation map of the Binance ETHUSDT perpetual, January 2021: per side, base units "
                "liquidated per unit of relative price move beyond a dead band, fitted to the forced-liquidation "
                "flows (optimizer.scenario.perp_calibration; re-run: python tools/calibrate_perp_flows.py).",
        "flows": "flows/eth_usdt_perp_1m_liquidations_2021-01.csv",
        "source": "Risk-DAO/simulation-env @ 17e75fae, data_unified_0_ethusdt.csv (BSD-3-Clause), via shared/data/flows",
        "model": "liquidated_since_extreme = slope * max(move_since_extreme - dead_band, 0); extreme = the highest "
                 "(longs) or lowest (shorts) mid of the trailing window_min minutes; move = the deepest fall "
                 "(longs) or highest rise (shorts) since it; least squares over all minutes, dead band on a "
                 "0.05 % grid; uncertainty: bootstrap over UTC days.",
        "units": {"dead_band": "relative move (0.036 = 3.6 %)", "slope_base_per_unit_move": "ETH per unit of "
                  "relative move (divide by 100 for ETH per 1 % move)", "slope_share_of_open_interest_per_unit_move":
                  "share of the side's open interest per unit of relative move"},
        "bootstrap": {"replicates": N_BOOT, "seed": SEED, "blocks": "UTC days"},
        "reference_open_interest": OPEN_INTEREST,
        "long": calibration_record(fits["long"], oi),
        "short": calibration_record(fits["short"], oi),
        "sensitivity_to_window": {s: {w: {k: calibration_record(f, oi)[k] for k in
                                          ("dead_band", "slope_base_per_unit_move", "slope_base_per_unit_move_ci95",
                                           "r2_uncentered")}
                                      for w, f in sens[s].items()} for s in sens},
        "caveats": [
            "The window is the time the book is taken to stand still; longer windows also count positions opened "
            "during the fall and give steeper slopes (sensitivity_to_window).",
            "Rows are one-minute means of the best bid and ask; intra-minute extremes are averaged away, so moves "
            "are slightly understated.",
            "The fit covers moves up to max_move_observed; synthetic books extrapolate the slope beyond it.",
            "The short side is weakly identified (few large rallies after short build-ups): see its intervals.",
        ],
    }
    atomic_write_text(OUT, json.dumps(doc, indent=1) + "\n")
    print(f"wrote {OUT.relative_to(ROOT)}")
    figure(flows, fits, sens)
    print(f"wrote {FIGURE.relative_to(ROOT)}")
    for s, f in fits.items():
        lo, hi = f.slope_ci95_base
        print(f"{s}: slope {f.slope_base / 100:.0f} ETH per 1 % [{lo / 100:.0f}, {hi / 100:.0f}] (se "
              f"{f.slope_se_base / 100:.0f}); dead band {100 * f.dead_band:.2f} % "
              f"[{100 * f.dead_band_ci95[0]:.2f}, {100 * f.dead_band_ci95[1]:.2f}]; share of OI per 1 %: "
              f"{f.slope_base / oi:.3f} %; R2 {f.r2_uncentered:.3f}; max move {100 * f.max_depth:.1f} %")


def figure(flows, fits, sens) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    day = (flows.timestamps.astype("datetime64[D]") - flows.timestamps[0].astype("datetime64[D]")).astype(int) + 1
    for ax, side in zip(axes[:2], ("long", "short"), strict=True):
        f = fits[side]
        depth, cum, _ = depth_since_extreme(flows.mid_usd, flows.liquidated_base(side), f.window_min, side)
        sc = ax.scatter(100 * depth, cum / 1e3, c=day, s=2, alpha=0.35, cmap="viridis", rasterized=True)
        x = np.linspace(0, depth.max(), 200)
        band = f.boot_slope_base[:, None] * np.maximum(x[None, :] - f.boot_dead_band[:, None], 0.0)
        lo, hi = np.percentile(band, [2.5, 97.5], axis=0)
        ax.fill_between(100 * x, lo / 1e3, hi / 1e3, color="tab:red", alpha=0.2, label="95 % day-bootstrap band")
        a, b = f.slope_ci95_base
        ax.plot(100 * x, f.predict(x) / 1e3, color="tab:red", lw=2,
                label=f"fit: {f.slope_base / 100:,.0f} ETH per 1 % [{a / 100:,.0f}, {b / 100:,.0f}]\n"
                      f"beyond a dead band of {100 * f.dead_band:.1f} %")
        move = "fall below the trailing 4 h high" if side == "long" else "rise above the trailing 4 h low"
        ax.set_xlabel(f"deepest {move} (%)")
        ax.set_ylabel(f"{side}s liquidated since (thousand ETH)")
        ax.set_title(f"Binance ETHUSDT perp, Jan 2021: {side}s")
        ax.legend(loc="upper left", fontsize=8)
        ax.grid(alpha=0.3)
    fig.colorbar(sc, ax=axes[1], label="day of January 2021")
    ax = axes[2]
    for side, color in (("long", "tab:blue"), ("short", "tab:orange")):
        w = np.array([int(k) for k in sens[side]])
        s = np.array([f.slope_base for f in sens[side].values()]) / 100
        ci = np.array([f.slope_ci95_base for f in sens[side].values()]) / 100
        ax.errorbar(w, s, yerr=[s - ci[:, 0], ci[:, 1] - s], marker="o", capsize=3, color=color, label=side)
    ax.axvline(WINDOW_MIN, color="grey", ls="--", lw=1)
    ax.set_xscale("log")
    ax.set_xticks(list(SENSITIVITY_MIN), [str(x) for x in SENSITIVITY_MIN])
    ax.set_xlabel("trailing window of the reference extreme (minutes)")
    ax.set_ylabel("slope (ETH per 1 % move), 95 % CI")
    ax.set_title("Sensitivity to the window (fit: 240 min)")
    ax.legend()
    ax.grid(alpha=0.3)
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    tmp = FIGURE.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=110)
    tmp.replace(FIGURE)
    plt.close(fig)


if __name__ == "__main__":
    main()
