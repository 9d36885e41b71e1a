"""Input limits: the ranges every value is checked against where it is read, and the memory estimates.

A value outside these ranges is refused at load time with a one-line error naming the file, the
key and the rule, so the engine never sees an overflow, a NaN or an infinity, and no run starts
that cannot fit in memory. The limits are far outside anything real (documented in
``docs/scenario_format.md``, "Input limits"):

* prices ``[1e-12, 1e12]`` USD (scenario ``price_usd``, price CSVs, simulated paths);
* one position's collateral at most ``1e12`` USD; a CSV amount at most ``1e15`` tokens;
* other USD amounts (reserves, liquidator profit) within ``±1e15``; gas at most ``1e9`` per call and
  ``1e12`` gwei;
* the horizon at most ten years and ``2,000,000`` steps, and at least one step;
* price arrays (paths x steps x assets) and position books at most 4 GiB each (estimated before
  anything is allocated).
"""

from __future__ import annotations

from ..errors import InputError

MIN_PRICE_USD = 1e-12
MAX_PRICE_USD = 1e12
MAX_POSITION_USD = 1e12
MAX_TOKENS = 1e15
MAX_USD = 1e15
MAX_GAS_PER_CALL = 1e9
MAX_GAS_GWEI = 1e12
MAX_HORIZON_H = 24.0 * 366 * 10
MAX_STEPS = 2_000_000
MAX_PATH_BYTES = 4 * 2**30
MAX_BOOK_BYTES = 4 * 2**30
MAX_MU_ANNUAL = 10.0  # |drift| per year (1000 %)


def price_array_bytes(paths: int, steps: int, assets: int) -> int:
    """Bytes of the close, low and working arrays of a run (float64)."""
    return paths * (steps + 1) * assets * 8 * 3


def check_price_arrays(paths: int, steps: int, assets: int, *, file: str | None, field: str) -> None:
    need = price_array_bytes(paths, steps, assets)
    if need > MAX_PATH_BYTES:
        raise InputError(f"{paths} paths x {steps} steps x {assets} assets need {need / 2**30:.1f} GiB of price "
                         f"arrays (limit {MAX_PATH_BYTES / 2**30:.0f} GiB); use fewer paths", file=file, field=field)


def book_bytes(positions: int, collateral_assets: int, debt_assets: int) -> int:
    """Bytes a synthetic book of ``positions`` needs at its peak (draws, token matrices, account ids,
    the kernel's per-position arrays)."""
    per = 8 * (8 + 3 * (collateral_assets + debt_assets)) + 24 * 8 + 96
    return positions * per


def check_book(positions: int, collateral_assets: int, debt_assets: int, *, file: str | None, field: str) -> None:
    need = book_bytes(positions, collateral_assets, debt_assets)
    if need > MAX_BOOK_BYTES:
        raise InputError(f"{positions} positions need ~{need / 2**30:.1f} GiB (limit {MAX_BOOK_BYTES / 2**30:.0f} GiB);"
                         " use fewer positions", file=file, field=field)
