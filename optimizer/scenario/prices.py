"""Exogenous price paths for the Monte Carlo simulator: models, shocks, correlation, generation.

One ``[assets.X]`` table of a scenario becomes one frozen model (:func:`model_from_config`), the
optional ``[correlation]`` table a :class:`Correlation` (:func:`correlation_from_config`), and
:func:`generate_paths` turns them into :class:`PricePaths` (closes and bar lows per path and step).

Conventions
-----------
* Time: ``step_s`` seconds per step; annual figures use a 365-day year, intensities are per day.
* ``mu_annual`` is the arithmetic drift: for GBM ``E[S_t] = S_0 exp(mu t)``; the log-return
  drift per step is ``(mu - sigma^2 / 2) dt``. Student-t uses the same log drift (its price mean is
  infinite, so only the log drift can be matched).
* Merton jumps are *not compensated* by default: ``mu_annual`` is the drift of the diffusion and
  the jumps (Poisson per step, log sizes ``N(jump_mean, jump_std^2)``) come on top, so negative
  jumps pull the expected price down, which is what a stress scenario means. ``compensated = true``
  subtracts ``lambda * (E[e^J] - 1)`` from the drift so that ``E[S_t] = S_0 exp(mu t)`` again.
* Bar lows: replay uses the CSV's low of each bar; synthetic models only know the two endpoints,
  so the low of the bar ending at step t is ``min(close[t-1], close[t])``. That understates how
  far a continuous path dips inside the bar; a finer step gives deeper lows.
* Shocks ``{at_h, drop}`` multiply closes and lows by ``1 - drop`` from the first step at or after
  ``at_h`` on; the bar in which the shock falls is shocked whole (its low too).
* Randomness: :func:`generate_paths` takes exactly one draw from the caller's ``rng`` (a root seed)
  and derives one independent stream per asset, keyed by the asset's *name*, plus one stream for
  the shared drivers of the ``[correlation]`` group, keyed by its sorted asset names. Hence the
  same seed gives identical paths, the asset order does not matter, and adding or removing an
  unrelated (uncorrelated) asset leaves every other asset's path unchanged. No model takes a
  protocol parameter, so candidates are compared on common random numbers.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
from scipy import optimize, signal, special

from ..errors import InputError
from .history import PriceHistory, align_returns, log_return_series, read_price_csv
from .limits import MAX_MU_ANNUAL, MAX_PRICE_USD, MIN_PRICE_USD

YEAR_S = 365 * 86_400
DAY_S = 86_400
# keys of [assets.X] that belong to other parts of the scenario and are accepted (ignored) here
SHARED_ASSET_KEYS = frozenset({"model", "price_usd", "shocks", "liquidity"})
MIN_GARCH_RETURNS = 100      # fewer returns give a meaningless GARCH fit
MIN_CORR_RETURNS = 30        # fewer aligned returns give a correlation estimate with SE > ~0.15
MAX_SIGMA_ANNUAL = 10.0      # catches "80" typed for 80 % (fractions are expected)

# (path as written in the scenario, the key naming it) -> existing file; raises InputError otherwise.
# Same shape as ``Scenario.resolve`` in optimizer.scenario.config.
Resolver = Callable[[str, str], Path]


def default_resolver(scenario_file: str | Path) -> Resolver:
    """Resolve scenario paths relative to the scenario file first, then to the bundled ``data/``.

    The returned ``resolve(rel, key)`` raises :class:`InputError` (``scenario_file``, ``key``) when
    the file exists in neither place.
    """
    base = Path(scenario_file).resolve().parent

    def resolve(rel: str, key: str) -> Path:
        from ..snapshots import data_dir  # late: keeps this module importable without protocols/
        p = Path(rel).expanduser()
        for cand in ((p,) if p.is_absolute() else (base / p, data_dir() / p)):
            if cand.is_file():
                return cand
        raise InputError(f"file '{rel}' not found (looked next to the scenario and in bundled data/)",
                         file=str(scenario_file), field=key)

    return resolve


# ------------------------------------------------------------------------------ config helpers

_REQUIRED = object()


class _Cfg:
    """One ``[assets.X]`` table being validated: values by key, errors naming file and key."""

    def __init__(self, asset: str, cfg: Mapping[str, Any], file: str, model: str) -> None:
        if not isinstance(cfg, Mapping):
            raise InputError("must be a table", file=file, field=f"assets.{asset}")
        self.asset, self.cfg, self.file, self.model = asset, cfg, file, model

    def field(self, key: str) -> str:
        return f"assets.{self.asset}.{key}"

    def error(self, key: str, rule: str) -> InputError:
        return InputError(rule, file=self.file, field=self.field(key))

    def check_keys(self, allowed: frozenset[str]) -> None:
        unknown = sorted(set(self.cfg) - allowed - SHARED_ASSET_KEYS)
        if unknown:
            ok = ", ".join(sorted(allowed | {"model", "shocks"}))
            raise self.error(unknown[0], f"unknown key(s) {', '.join(unknown)} for model "
                                         f"'{self.model}' (allowed: {ok})")

    def number(self, key: str, default: Any = _REQUIRED, *, lo: float | None = None, hi: float | None = None,
               lo_open: bool = False, hi_open: bool = False) -> float:
        if key not in self.cfg:
            if default is _REQUIRED:
                raise self.error(key, f"missing (required by model '{self.model}')")
            return default
        return _check_number(self.cfg[key], lambda rule: self.error(key, rule),
                             lo=lo, hi=hi, lo_open=lo_open, hi_open=hi_open)

    def integer(self, key: str, *, lo: int) -> int:
        v = self.cfg.get(key, _REQUIRED)
        if v is _REQUIRED:
            raise self.error(key, f"missing (required by model '{self.model}')")
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise self.error(key, f"must be a whole number (got {v!r})")
        if v < lo:
            raise self.error(key, f"must be >= {lo} (got {v})")
        return int(v)

    def path(self, key: str, resolve_path: Resolver) -> Path:
        v = self.cfg.get(key, _REQUIRED)
        if v is _REQUIRED:
            raise self.error(key, f"missing (required by model '{self.model}')")
        if not isinstance(v, str) or not v.strip():
            raise self.error(key, f"must be a file path string (got {v!r})")
        p = Path(resolve_path(v, self.field(key)))
        if not p.is_file():
            raise self.error(key, f"file not found: '{v}' (looked for {p})")
        return p

    def history(self, key: str, resolve_path: Resolver) -> PriceHistory:
        p = self.path(key, resolve_path)
        try:
            return read_price_csv(p)
        except InputError as e:  # keep the CSV's file/line/column, add the scenario key
            raise self.error(key, str(e)) from None


def _check_number(v: Any, err: Callable[[str], InputError], *, lo=None, hi=None, lo_open=False,
                  hi_open=False) -> float:
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise err(f"must be a number (got {v!r})")
    x = float(v)
    if not math.isfinite(x):
        raise err(f"must be finite (got {v!r})")
    if lo is not None and (x <= lo if lo_open else x < lo):
        raise err(f"must be {'>' if lo_open else '>='} {lo:g} (got {x:g})")
    if hi is not None and (x >= hi if hi_open else x > hi):
        raise err(f"must be {'<' if hi_open else '<='} {hi:g} (got {x:g})")
    return x


def _returns_at_step(c: _Cfg, key: str, hist: PriceHistory, step_s: float | None):
    if step_s is None:
        raise ValueError(f"model '{c.model}' needs step_s to read its history")
    try:
        return log_return_series(hist, step_s)
    except InputError as e:
        raise c.error(key, str(e)) from None


# ------------------------------------------------------------------------------------- shocks

@dataclass(frozen=True)
class Shock:
    """Price × (1 − ``drop``) from ``at_h`` hours on (0 < drop < 1)."""

    at_h: float
    drop: float

    def step_index(self, step_s: float) -> int:
        """The first step index whose time is >= ``at_h`` (>= 1: the initial price is never shocked)."""
        return max(1, math.ceil(self.at_h * 3600.0 / step_s - 1e-9))


def _shocks_from_config(c: _Cfg, horizon_h: float | None) -> tuple[Shock, ...]:
    raw = c.cfg.get("shocks", [])
    if not isinstance(raw, (list, tuple)):
        raise c.error("shocks", "must be a list of tables like [{ at_h = 2.0, drop = 0.15 }]")
    out = []
    for i, s in enumerate(raw):
        key = f"shocks[{i}]"
        if not isinstance(s, Mapping):
            raise c.error(key, f"must be a table {{ at_h, drop }} (got {s!r})")
        extra = sorted(set(s) - {"at_h", "drop"})
        if extra:
            raise c.error(f"{key}.{extra[0]}", f"unknown key(s) {', '.join(extra)} (allowed: at_h, drop)")
        for k in ("at_h", "drop"):
            if k not in s:
                raise c.error(f"{key}.{k}", "missing")
        at_h = _check_number(s["at_h"], lambda r, k=f"{key}.at_h": c.error(k, r), lo=0.0, lo_open=True,
                             hi=horizon_h)
        drop = _check_number(s["drop"], lambda r, k=f"{key}.drop": c.error(k, r), lo=0.0, hi=1.0,
                             lo_open=True, hi_open=True)
        out.append(Shock(at_h, drop))
    return tuple(out)


# --------------------------------------------------------------------------------------- models

@dataclass(frozen=True, eq=False)
class _Model:
    shocks: tuple[Shock, ...] = field(default=(), kw_only=True)

    model: ClassVar[str] = ""
    KEYS: ClassVar[frozenset[str]] = frozenset()


@dataclass(frozen=True, eq=False)
class Constant(_Model):
    """Price fixed at its initial value (stablecoins); shocks still apply (depegs)."""

    model: ClassVar[str] = "constant"

    @classmethod
    def from_config(cls, asset: str, cfg: Mapping[str, Any], file: str, resolve_path: Resolver | None = None,
                    *, step_s: float | None = None, horizon_h: float | None = None) -> Constant:
        """Validate ``[assets.<asset>]`` with ``model = "constant"`` (keys: ``shocks``)."""
        c = _Cfg(asset, cfg, file, cls.model)
        c.check_keys(cls.KEYS)
        return cls(shocks=_shocks_from_config(c, horizon_h))

    def sample(self, n_paths: int, n_steps: int, step_s: float, rng: np.random.Generator,
               eps: np.ndarray | None = None) -> np.ndarray:
        """Log returns, all zero, shape ``(n_paths, n_steps)``."""
        return np.zeros((n_paths, n_steps))


@dataclass(frozen=True, eq=False)
class GBM(_Model):
    """Geometric Brownian motion: log return per step ``(mu - sigma^2/2) dt + sigma sqrt(dt) Z``."""

    mu_annual: float
    sigma_annual: float

    model: ClassVar[str] = "gbm"
    KEYS: ClassVar[frozenset[str]] = frozenset({"mu_annual", "sigma_annual"})

    @classmethod
    def from_config(cls, asset: str, cfg: Mapping[str, Any], file: str, resolve_path: Resolver | None = None,
                    *, step_s: float | None = None, horizon_h: float | None = None) -> GBM:
        """Validate ``[assets.<asset>]``: ``mu_annual`` (default 0), ``sigma_annual`` in [0, 10]."""
        c = _Cfg(asset, cfg, file, cls.model)
        c.check_keys(cls.KEYS)
        return cls(c.number("mu_annual", 0.0, lo=-MAX_MU_ANNUAL, hi=MAX_MU_ANNUAL), c.number("sigma_annual", lo=0.0, hi=MAX_SIGMA_ANNUAL),
                   shocks=_shocks_from_config(c, horizon_h))

    def sample(self, n_paths: int, n_steps: int, step_s: float, rng: np.random.Generator,
               eps: np.ndarray | None = None) -> np.ndarray:
        """Log returns ``(n_paths, n_steps)``; ``eps`` = standard normal drivers (else drawn from ``rng``)."""
        dt = step_s / YEAR_S
        if eps is None:
            eps = rng.standard_normal((n_paths, n_steps))
        out = eps * (self.sigma_annual * math.sqrt(dt))
        out += (self.mu_annual - 0.5 * self.sigma_annual ** 2) * dt
        return out


@dataclass(frozen=True, eq=False)
class Merton(_Model):
    """Merton jump diffusion: GBM plus Poisson(``jump_intensity_per_day`` dt) jumps per step with
    log sizes ``N(jump_mean, jump_std^2)``. Not compensated unless ``compensated`` (module docstring).
    """

    mu_annual: float
    sigma_annual: float
    jump_intensity_per_day: float
    jump_mean: float
    jump_std: float
    compensated: bool = False

    model: ClassVar[str] = "merton"
    KEYS: ClassVar[frozenset[str]] = frozenset({"mu_annual", "sigma_annual", "jump_intensity_per_day",
                                                "jump_mean", "jump_std", "compensated"})

    @classmethod
    def from_config(cls, asset: str, cfg: Mapping[str, Any], file: str, resolve_path: Resolver | None = None,
                    *, step_s: float | None = None, horizon_h: float | None = None) -> Merton:
        """Validate ``[assets.<asset>]``: GBM keys plus ``jump_intensity_per_day`` >= 0,
        ``jump_mean`` in [-5, 5] (log), ``jump_std`` >= 0, optional ``compensated`` (bool, false)."""
        c = _Cfg(asset, cfg, file, cls.model)
        c.check_keys(cls.KEYS)
        comp = cfg.get("compensated", False)
        if not isinstance(comp, bool):
            raise c.error("compensated", f"must be true or false (got {comp!r})")
        return cls(c.number("mu_annual", 0.0, lo=-MAX_MU_ANNUAL, hi=MAX_MU_ANNUAL), c.number("sigma_annual", lo=0.0, hi=MAX_SIGMA_ANNUAL),
                   c.number("jump_intensity_per_day", lo=0.0, hi=1e4), c.number("jump_mean", lo=-5.0, hi=5.0),
                   c.number("jump_std", lo=0.0, hi=5.0), comp, shocks=_shocks_from_config(c, horizon_h))

    @property
    def jump_compensator(self) -> float:
        """``E[e^J] - 1``, the mean relative price change of one jump."""
        return math.expm1(self.jump_mean + 0.5 * self.jump_std ** 2)

    def sample(self, n_paths: int, n_steps: int, step_s: float, rng: np.random.Generator,
               eps: np.ndarray | None = None) -> np.ndarray:
        """Log returns ``(n_paths, n_steps)``; ``eps`` drives the diffusion only, jumps use ``rng``."""
        dt = step_s / YEAR_S
        if eps is None:
            eps = rng.standard_normal((n_paths, n_steps))
        drift = self.mu_annual - 0.5 * self.sigma_annual ** 2
        if self.compensated:
            drift -= self.jump_intensity_per_day * 365.0 * self.jump_compensator
        out = eps * (self.sigma_annual * math.sqrt(dt))
        out += drift * dt
        n_jumps = rng.poisson(self.jump_intensity_per_day * step_s / DAY_S, (n_paths, n_steps))
        hit = np.flatnonzero(n_jumps)  # jumps are rare per step: draw sizes only where they happen
        if hit.size:
            where = np.unravel_index(hit, out.shape)
            k = n_jumps[where]
            out[where] += k * self.jump_mean + np.sqrt(k) * self.jump_std * rng.standard_normal(hit.size)
        return out


@dataclass(frozen=True, eq=False)
class StudentT(_Model):
    """GBM with Student-t innovations of ``dof`` > 2 degrees of freedom, scaled to unit variance
    (so ``sigma_annual`` is the volatility) — same log drift as GBM, fatter tails."""

    mu_annual: float
    sigma_annual: float
    dof: float

    model: ClassVar[str] = "student_t"
    KEYS: ClassVar[frozenset[str]] = frozenset({"mu_annual", "sigma_annual", "dof"})

    @classmethod
    def from_config(cls, asset: str, cfg: Mapping[str, Any], file: str, resolve_path: Resolver | None = None,
                    *, step_s: float | None = None, horizon_h: float | None = None) -> StudentT:
        """Validate ``[assets.<asset>]``: GBM keys plus ``dof`` > 2."""
        c = _Cfg(asset, cfg, file, cls.model)
        c.check_keys(cls.KEYS)
        return cls(c.number("mu_annual", 0.0, lo=-MAX_MU_ANNUAL, hi=MAX_MU_ANNUAL), c.number("sigma_annual", lo=0.0, hi=MAX_SIGMA_ANNUAL),
                   c.number("dof", lo=2.0, lo_open=True, hi=1e6), shocks=_shocks_from_config(c, horizon_h))

    @staticmethod
    def unit_t(z: np.ndarray, chi2: np.ndarray, dof: float) -> np.ndarray:
        """Unit-variance t innovations ``z sqrt((dof - 2) / chi2)`` from normals and chi-square(dof)."""
        return z * np.sqrt((dof - 2.0) / chi2)

    def sample(self, n_paths: int, n_steps: int, step_s: float, rng: np.random.Generator,
               eps: np.ndarray | None = None) -> np.ndarray:
        """Log returns ``(n_paths, n_steps)``; ``eps`` = unit-variance t drivers (else drawn from ``rng``)."""
        dt = step_s / YEAR_S
        if eps is None:
            shape = (n_paths, n_steps)
            eps = self.unit_t(rng.standard_normal(shape), rng.chisquare(self.dof, shape), self.dof)
        out = eps * (self.sigma_annual * math.sqrt(dt))
        out += (self.mu_annual - 0.5 * self.sigma_annual ** 2) * dt
        return out


@dataclass(frozen=True, eq=False)
class Garch(_Model):
    """GARCH(1,1) log returns per step: ``r_t = mu + e_t``, ``e_t = sqrt(h_t) z_t``,
    ``h_t = omega + alpha e_{t-1}^2 + beta h_{t-1}``; parameters are per ``step_s`` (the step
    they were fitted at). Paths start at ``h0`` (per-step variance): :func:`fit_garch` sets it to the
    sample variance of the fitted returns, because with the near-unit persistence crypto fits show
    (0.998 on ETH hourly) the model's unconditional variance ``omega / (1 - alpha - beta)`` is an
    extrapolation (164 % vs 80 % sample volatility); ``h0 = None`` starts at that unconditional value.
    """

    omega: float
    alpha: float
    beta: float
    mu: float = 0.0
    step_s: float | None = None
    h0: float | None = None

    model: ClassVar[str] = "garch"
    KEYS: ClassVar[frozenset[str]] = frozenset({"history", "omega", "alpha", "beta", "mu"})

    def __post_init__(self) -> None:
        if not (self.omega > 0 and self.alpha >= 0 and self.beta >= 0 and self.alpha + self.beta < 1):
            raise ValueError(f"GARCH needs omega > 0, alpha, beta >= 0, alpha + beta < 1 (got {self})")
        if self.h0 is not None and not self.h0 > 0:
            raise ValueError(f"GARCH h0 must be > 0 (got {self.h0})")

    @classmethod
    def from_config(cls, asset: str, cfg: Mapping[str, Any], file: str, resolve_path: Resolver | None = None,
                    *, step_s: float | None = None, horizon_h: float | None = None) -> Garch:
        """Validate ``[assets.<asset>]``: either ``history = "<csv>"`` (fitted by :func:`fit_garch` to
        the log returns at ``step_s``) or ``omega`` > 0, ``alpha``, ``beta`` >= 0 with
        ``alpha + beta < 1`` and optional ``mu`` — per-step units of the scenario step."""
        c = _Cfg(asset, cfg, file, cls.model)
        c.check_keys(cls.KEYS)
        shocks = _shocks_from_config(c, horizon_h)
        given = sorted(k for k in ("omega", "alpha", "beta", "mu") if k in cfg)
        if "history" in cfg:
            if given:
                raise c.error(given[0], "give either history (fit) or omega/alpha/beta/mu, not both")
            resolve_path = resolve_path or default_resolver(file)
            _, r = _returns_at_step(c, "history", c.history("history", resolve_path), step_s)
            if r.size < MIN_GARCH_RETURNS:
                raise c.error("history", f"needs at least {MIN_GARCH_RETURNS} returns at the "
                                         f"{step_s:g} s step to fit a GARCH (got {r.size})")
            g = fit_garch(r, step_s=step_s)
            return cls(g.omega, g.alpha, g.beta, g.mu, step_s, g.h0, shocks=shocks)
        if not given:
            raise c.error("history", "missing: give history (a CSV to fit) or omega, alpha, beta")
        omega = c.number("omega", lo=0.0, lo_open=True, hi=1.0)
        alpha = c.number("alpha", lo=0.0, hi=1.0)
        beta = c.number("beta", lo=0.0, hi=1.0)
        if alpha + beta >= 1.0:
            raise c.error("beta", f"alpha + beta must be < 1 for a stationary GARCH (got {alpha + beta:g})")
        return cls(omega, alpha, beta, c.number("mu", 0.0, lo=-1.0, hi=1.0), step_s, shocks=shocks)

    @property
    def persistence(self) -> float:
        return self.alpha + self.beta

    @property
    def unconditional_variance(self) -> float:
        """Long-run variance of one step's return, ``omega / (1 - alpha - beta)``."""
        return self.omega / (1.0 - self.alpha - self.beta)

    def sigma_annual(self) -> float:
        """Long-run volatility annualised with the fit step (needs ``step_s``)."""
        if self.step_s is None:
            raise ValueError("step_s unknown")
        return math.sqrt(self.unconditional_variance * YEAR_S / self.step_s)

    def sample(self, n_paths: int, n_steps: int, step_s: float, rng: np.random.Generator,
               eps: np.ndarray | None = None) -> np.ndarray:
        """Log returns ``(n_paths, n_steps)``; ``eps`` = standard normal drivers (else drawn from ``rng``)."""
        if self.step_s is not None and abs(step_s - self.step_s) > 1e-9:
            raise ValueError(f"GARCH parameters are per {self.step_s:g} s step, not {step_s:g} s")
        if eps is None:
            eps = rng.standard_normal((n_paths, n_steps))
        out = np.empty((n_paths, n_steps))
        h = np.full(n_paths, self.unconditional_variance if self.h0 is None else self.h0)
        for t in range(n_steps):  # the recursion is sequential in time, vectorised over paths
            e = np.sqrt(h) * eps[:, t]
            out[:, t] = e
            h = self.omega + self.alpha * e * e + self.beta * h
        out += self.mu
        return out


def _garch_nll(theta: np.ndarray, x: np.ndarray) -> float:
    mu, omega, alpha, beta = _garch_unpack(theta)
    e = x - mu
    e2 = e * e
    drive = np.empty_like(x)
    drive[0] = e2.mean()  # backcast h_0 with the sample variance
    drive[1:] = omega + alpha * e2[:-1]
    h = signal.lfilter([1.0], [1.0, -beta], drive)  # h_t = drive_t + beta h_{t-1}
    return 0.5 * float(np.sum(np.log(h) + e2 / h))


def _garch_unpack(theta: np.ndarray) -> tuple[float, float, float, float]:
    # unconstrained -> (mu, omega > 0, alpha >= 0, beta >= 0, alpha + beta < 1): stationarity by construction
    mu, log_omega, logit_p, logit_share = theta
    p = special.expit(logit_p) * (1.0 - 1e-6)
    alpha = p * special.expit(logit_share)
    return float(mu), float(np.exp(log_omega)), float(alpha), float(p - alpha)


def fit_garch(log_returns: np.ndarray, *, step_s: float | None = None) -> Garch:
    """Fit a GARCH(1,1) with constant mean by Gaussian maximum likelihood.

    Parameters
    ----------
    log_returns : np.ndarray
        One return per step, at least ``MIN_GARCH_RETURNS``; float, finite.
    step_s : float, optional
        The step of the returns, stored on the result.

    Returns
    -------
    Garch
        ``alpha + beta < 1`` always (the optimiser works in a reparameterisation that cannot leave
        the stationary region). The likelihood's first variance is the sample variance (backcast),
        and so is the simulation's starting variance ``h0``.
    """
    r = np.asarray(log_returns, dtype=np.float64)
    if r.ndim != 1 or r.size < MIN_GARCH_RETURNS:
        raise ValueError(f"fit_garch needs a 1-D series of at least {MIN_GARCH_RETURNS} returns")
    if not np.all(np.isfinite(r)):
        raise ValueError("fit_garch: returns must be finite")
    scale = float(r.std())
    if scale == 0.0:
        raise ValueError("fit_garch: returns are constant")
    x = r / scale  # fit on unit-variance data: the optimiser is badly scaled at 1e-4 magnitudes
    best = None
    for p0, share0 in ((0.95, 0.1), (0.99, 0.05), (0.7, 0.3)):
        theta0 = np.array([x.mean(), math.log(1.0 - p0), special.logit(p0), special.logit(share0)])
        res = optimize.minimize(_garch_nll, theta0, args=(x,), method="L-BFGS-B")
        if best is None or res.fun < best.fun:
            best = res
    mu, omega, alpha, beta = _garch_unpack(best.x)
    return Garch(omega * scale ** 2, alpha, beta, mu * scale, step_s, float(np.var(r)))


def stationary_bootstrap_index(n_returns: int, n_paths: int, n_steps: int, block_steps: float,
                               rng: np.random.Generator) -> np.ndarray:
    """Indices of a stationary bootstrap (Politis & Romano 1994), circular.

    Each step starts a new block with probability ``1 / block_steps`` (geometric block lengths of
    mean ``block_steps``) at a uniform random index, else continues the previous block by one index,
    wrapping at the end. Returns ``(n_paths, n_steps)`` int64 indices in ``[0, n_returns)``.
    """
    starts = rng.integers(0, n_returns, size=(n_paths, n_steps))
    if block_steps <= 1:
        return starts
    new_block = rng.random((n_paths, n_steps)) < 1.0 / block_steps
    new_block[:, 0] = True
    t = np.arange(n_steps)
    block_start = np.maximum.accumulate(np.where(new_block, t, 0), axis=1)
    idx = np.take_along_axis(starts, block_start, axis=1) + (t - block_start)
    idx %= n_returns
    return idx


@dataclass(frozen=True, eq=False)
class Bootstrap(_Model):
    """Stationary block bootstrap of historical log returns at the scenario step (mean block
    length ``block_steps``). ``end_times`` (``datetime64[s]``, optional) lets correlated bootstrap
    assets resample the same dates (see :class:`Correlation`)."""

    returns: np.ndarray
    block_steps: int
    end_times: np.ndarray | None = None
    source: str = ""

    model: ClassVar[str] = "bootstrap"
    KEYS: ClassVar[frozenset[str]] = frozenset({"history", "block_steps"})

    def __post_init__(self) -> None:
        r = np.array(self.returns, dtype=np.float64)
        if r.ndim != 1 or r.size < 2 or not np.all(np.isfinite(r)):
            raise ValueError("Bootstrap needs a 1-D array of at least 2 finite returns")
        if self.end_times is not None and len(self.end_times) != r.size:
            raise ValueError("Bootstrap end_times must match returns")
        r.setflags(write=False)
        object.__setattr__(self, "returns", r)

    @classmethod
    def from_config(cls, asset: str, cfg: Mapping[str, Any], file: str, resolve_path: Resolver | None = None,
                    *, step_s: float | None = None, horizon_h: float | None = None) -> Bootstrap:
        """Validate ``[assets.<asset>]``: ``history = "<csv>"`` (log returns at ``step_s``) and
        ``block_steps`` (whole number, 1 .. number of returns; 1 = i.i.d. resampling)."""
        c = _Cfg(asset, cfg, file, cls.model)
        c.check_keys(cls.KEYS)
        shocks = _shocks_from_config(c, horizon_h)
        resolve_path = resolve_path or default_resolver(file)
        hist = c.history("history", resolve_path)
        t, r = _returns_at_step(c, "history", hist, step_s)
        block = c.integer("block_steps", lo=1)
        if block > r.size:
            raise c.error("block_steps", f"must be <= the {r.size} returns of the history")
        return cls(r, block, t, hist.source, shocks=shocks)

    def sample(self, n_paths: int, n_steps: int, step_s: float, rng: np.random.Generator,
               index: np.ndarray | None = None) -> np.ndarray:
        """Resampled log returns ``(n_paths, n_steps)``; ``index`` = shared indices (else drawn)."""
        if index is None:
            index = stationary_bootstrap_index(self.returns.size, n_paths, n_steps, self.block_steps, rng)
        return self.returns[index]


@dataclass(frozen=True, eq=False)
class Replay(_Model):
    """Exact replay of a CSV window: every path is the CSV, one step per bar (no gaps allowed).

    Index 0 is the first bar's open, index t the close (and low) of bar t. If the scenario gives a
    different initial price, the whole window is scaled to start there (same returns)."""

    history: PriceHistory

    model: ClassVar[str] = "replay"
    KEYS: ClassVar[frozenset[str]] = frozenset({"csv"})

    @classmethod
    def from_config(cls, asset: str, cfg: Mapping[str, Any], file: str, resolve_path: Resolver | None = None,
                    *, step_s: float | None = None, horizon_h: float | None = None) -> Replay:
        """Validate ``[assets.<asset>]``: ``csv = "<csv>"`` whose bar interval equals ``step_s`` and
        whose bars are contiguous. ``horizon_h`` is ignored: the window is the horizon."""
        c = _Cfg(asset, cfg, file, cls.model)
        c.check_keys(cls.KEYS)
        resolve_path = resolve_path or default_resolver(file)
        hist = c.history("csv", resolve_path)
        bar = hist.bar_s
        if step_s is not None and abs(step_s - bar) > 1e-9:
            raise c.error("csv", f"{hist.source}: bars are {bar} s apart but the scenario step is "
                                 f"{step_s:g} s (a replay needs step_min = {bar / 60:g})")
        gaps = np.flatnonzero(np.diff(hist.timestamps.astype(np.int64)) != bar)
        if gaps.size:
            g = int(gaps[0])
            raise c.error("csv", f"{hist.source}: gap after {hist.timestamps[g]}Z (next bar "
                                 f"{hist.timestamps[g + 1]}Z); a replay window must be contiguous")
        return cls(hist, shocks=_shocks_from_config(c, len(hist) * bar / 3600.0))

    @property
    def n_steps(self) -> int:
        return len(self.history)

    @property
    def initial_price_usd(self) -> float:
        """The first bar's open (the default initial price of a replay)."""
        return float(self.history.open[0])

    @property
    def timestamps(self) -> np.ndarray:
        """``(n_steps + 1,)`` ``datetime64[s]``: window start, then each bar's close time."""
        h = self.history
        return np.concatenate([h.timestamps[:1], h.end_times])


MODELS: dict[str, type[_Model]] = {m.model: m for m in (Constant, GBM, Merton, StudentT, Garch, Bootstrap, Replay)}
PriceModel = Constant | GBM | Merton | StudentT | Garch | Bootstrap | Replay
_GAUSSIAN = (GBM, Merton, StudentT, Garch)  # models driven by (correlatable) normal innovations


def model_from_config(asset: str, cfg: Mapping[str, Any], file: str, resolve_path: Resolver | None = None,
                      *, step_s: float | None = None, horizon_h: float | None = None) -> PriceModel:
    """Build the price model of ``[assets.<asset>]`` from its parsed table.

    Parameters
    ----------
    asset : str
        The asset symbol (the ``X`` of ``[assets.X]``).
    cfg : mapping
        The parsed table. ``price_usd`` and ``liquidity`` belong to the caller and are ignored.
    file : str
        The scenario file, named in every error.
    resolve_path : callable, optional
        ``(rel, key) -> Path`` for CSV paths, raising InputError when missing (``Scenario.resolve``
        fits); default :func:`default_resolver` (next to ``file``, then the bundled ``data/``).
    step_s : float
        The scenario step in seconds (needed by garch ``history``, bootstrap and replay).
    horizon_h : float
        The horizon in hours; shocks must fall inside it (replay: inside the CSV window).

    Raises
    ------
    InputError
        ``file``, ``assets.<asset>.<key>`` and the rule, for any invalid, missing or unknown key.
    """
    if not isinstance(cfg, Mapping):
        raise InputError("must be a table", file=file, field=f"assets.{asset}")
    name = cfg.get("model", _REQUIRED)
    known = ", ".join(MODELS)
    if name is _REQUIRED:
        raise InputError(f"missing (one of {known})", file=file, field=f"assets.{asset}.model")
    if not isinstance(name, str) or name not in MODELS:
        raise InputError(f"unknown model {name!r} (known: {known})"[:300], file=file, field=f"assets.{asset}.model")
    return MODELS[name].from_config(asset, cfg, file, resolve_path, step_s=step_s, horizon_h=horizon_h)


# --------------------------------------------------------------------------------- correlation

def _factor(matrix: np.ndarray) -> np.ndarray:
    """``F`` with ``F F^T = matrix``: Cholesky, or an eigen factor when PSD but singular (rho = 1)."""
    try:
        return np.linalg.cholesky(matrix)
    except np.linalg.LinAlgError:
        w, v = np.linalg.eigh(matrix)
        return v * np.sqrt(np.clip(w, 0.0, None))


@dataclass(frozen=True, eq=False)
class Correlation:
    """Correlation of the Gaussian drivers of ``assets`` (the ``[correlation]`` table).

    gbm, merton (diffusion only: jumps stay independent), student_t (a multivariate t: one
    chi-square per step and path shared by the t assets, so t-t correlations are exact while a t
    asset's correlation with a Gaussian one is attenuated by ``E[sqrt((dof-2)/chi2)]``, 0.89 at
    dof = 4) and garch assets get innovations ``Z = G L^T`` with ``L`` the Cholesky factor.
    Bootstrap assets listed here are resampled on the *same dates* (their histories are cut to the
    common return times), which carries their empirical correlation; their matrix entries among
    themselves are therefore not used, their entries with non-bootstrap assets must be 0, and
    they share one block structure (the largest ``block_steps`` among them).
    constant and replay assets cannot be listed. Assets not listed are independent.
    """

    assets: tuple[str, ...]
    matrix: np.ndarray
    source: str = "matrix"

    def __post_init__(self) -> None:
        object.__setattr__(self, "assets", tuple(self.assets))
        m = _check_matrix(self.assets, self.matrix)
        m.setflags(write=False)
        object.__setattr__(self, "matrix", m)

    def factor(self, subset: tuple[str, ...] | None = None) -> np.ndarray:
        """The factor ``L`` (``L L^T = C``) of the matrix, or of the sub-matrix of ``subset``."""
        idx = [self.assets.index(a) for a in (subset or self.assets)]
        return _factor(self.matrix[np.ix_(idx, idx)])


def _check_matrix(assets: tuple[str, ...], matrix: Any) -> np.ndarray:
    def err(rule: str, field: str = "correlation.matrix") -> InputError:
        return InputError(rule, field=field)

    if len(assets) < 2:
        raise err(f"needs at least 2 assets (got {list(assets)})", "correlation.assets")
    if len(set(assets)) != len(assets):
        dup = sorted({a for a in assets if assets.count(a) > 1})
        raise err(f"asset(s) listed twice: {', '.join(dup)}", "correlation.assets")
    n = len(assets)
    rows = matrix.tolist() if isinstance(matrix, np.ndarray) else matrix
    if not isinstance(rows, (list, tuple)) or len(rows) != n or any(
            not isinstance(r, (list, tuple)) or len(r) != n for r in rows):
        raise err(f"must be a {n}x{n} list of rows matching assets {list(assets)}")
    for i, r in enumerate(rows):
        for j, v in enumerate(r):
            if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v):
                raise err(f"entry [{i}][{j}] ({assets[i]}, {assets[j]}) must be a finite number (got {v!r})")
    m = np.array(rows, dtype=np.float64)
    for i in range(n):
        if abs(m[i, i] - 1.0) > 1e-9:
            raise err(f"diagonal entry [{i}][{i}] ({assets[i]}) must be 1 (got {m[i, i]:g})")
    for i in range(n):
        for j in range(n):
            if abs(m[i, j]) > 1.0 + 1e-12:
                raise err(f"entry [{i}][{j}] ({assets[i]}, {assets[j]}) must be in [-1, 1] (got {m[i, j]:g})")
            if abs(m[i, j] - m[j, i]) > 1e-9:
                raise err(f"not symmetric: [{i}][{j}] = {m[i, j]:g} but [{j}][{i}] = {m[j, i]:g} "
                          f"({assets[i]}, {assets[j]})")
    w_min = float(np.linalg.eigvalsh(m)[0])
    if w_min < -1e-9:
        raise err(f"not positive semi-definite (smallest eigenvalue {w_min:.3g}): the pairwise "
                  "correlations are mutually inconsistent")
    return m


def _check_models(corr: Correlation, models: Mapping[str, PriceModel]) -> None:
    boot = [a for a in corr.assets if isinstance(models.get(a), Bootstrap)]
    for i, a in enumerate(corr.assets):
        m = models.get(a)
        if m is None:
            raise InputError(f"{a!r} is not an asset of the scenario (assets: {', '.join(models)})",
                             field="correlation.assets")
        if not isinstance(m, (*_GAUSSIAN, Bootstrap)):
            raise InputError(f"{a} has model '{m.model}', which cannot be correlated "
                             "(only gbm, merton, student_t, garch, bootstrap)", field="correlation.assets")
        for j, b in enumerate(corr.assets):
            if (a in boot) != (b in boot) and corr.matrix[i, j] != 0.0:
                raise InputError(f"{a} and {b}: a bootstrap asset can only be correlated with other "
                                 f"bootstrap assets (by resampling the same dates); entry [{i}][{j}] "
                                 "must be 0", field="correlation.matrix")
    if len(boot) > 1:
        _aligned_bootstrap({a: models[a] for a in boot})


def _aligned_bootstrap(boot: Mapping[str, Bootstrap]) -> dict[str, np.ndarray]:
    """Returns of the bootstrap assets restricted to their common dates (same index = same date)."""
    names = list(boot)
    if any(boot[a].end_times is None for a in names):
        n = {boot[a].returns.size for a in names}
        if len(n) != 1:
            raise InputError("bootstrap histories without dates must have equal lengths to be "
                             f"resampled together ({', '.join(names)})", field="correlation.assets")
        return {a: boot[a].returns for a in names}
    common, r = align_returns({a: (boot[a].end_times, boot[a].returns) for a in names})
    need = max(MIN_CORR_RETURNS, max(boot[a].block_steps for a in names))
    if common.size < need:
        raise InputError(f"the bootstrap histories of {', '.join(names)} share only {common.size} "
                         f"return dates (need {need})", field="correlation.assets")
    return {a: r[:, k] for k, a in enumerate(names)}


def correlation_from_config(cfg: Mapping[str, Any], file: str, resolve_path: Resolver | None = None, *,
                            step_s: float, models: Mapping[str, PriceModel]) -> Correlation:
    """Build and validate the ``[correlation]`` table.

    Either ``assets = [...]`` with ``matrix = [[...]]`` (symmetric, unit diagonal, entries in
    [-1, 1], positive semi-definite), or ``estimate_from = {ASSET = "<csv>", ...}``: the correlation
    of the log returns of all CSVs on their common dates at ``step_s`` (at least
    ``MIN_CORR_RETURNS``). If a CSV is coarser than the step, the estimate is taken at the
    smallest common multiple of the bar intervals instead (correlation of diffusive returns does
    not depend on the interval) and ``Correlation.source`` says so.

    Raises
    ------
    InputError
        ``file``, ``correlation.<key>`` and the problem (non-symmetric entry, non-unit diagonal,
        not PSD, unknown or uncorrelatable asset, too short an overlap, ...).
    """
    try:
        return _correlation_from_config(cfg, file, resolve_path or default_resolver(file), step_s, models)
    except InputError as e:
        if e.file is None:  # matrix/model checks know the key, not the file
            raise InputError(e.rule, file=file, field=e.field) from None
        raise


def _correlation_from_config(cfg, file, resolve_path, step_s, models) -> Correlation:
    if not isinstance(cfg, Mapping):
        raise InputError("must be a table", file=file, field="correlation")
    unknown = sorted(set(cfg) - {"assets", "matrix", "estimate_from"})
    if unknown:
        raise InputError(f"unknown key(s) {', '.join(unknown)} (allowed: assets, matrix, estimate_from)",
                         file=file, field=f"correlation.{unknown[0]}")
    assets = cfg.get("assets")
    if assets is not None and (not isinstance(assets, (list, tuple))
                               or not all(isinstance(a, str) for a in assets)):
        raise InputError(f"must be a list of asset names (got {assets!r})", file=file, field="correlation.assets")
    if ("matrix" in cfg) == ("estimate_from" in cfg):
        raise InputError("give exactly one of matrix or estimate_from", file=file, field="correlation")
    if "matrix" in cfg:
        if assets is None:
            raise InputError("missing (the order of the matrix rows)", file=file, field="correlation.assets")
        corr = Correlation(tuple(assets), cfg["matrix"])
    else:
        corr = _estimate(cfg["estimate_from"], assets, file, resolve_path, step_s)
    _check_models(corr, models)
    return corr


def _estimate(src: Any, assets: list[str] | None, file: str, resolve_path: Resolver,
              step_s: float) -> Correlation:
    key = "correlation.estimate_from"
    if not isinstance(src, Mapping) or not src:
        raise InputError("must be a table { ASSET = \"<csv>\", ... }", file=file, field=key)
    names = tuple(src)
    if assets is not None and sorted(assets) != sorted(names):
        raise InputError(f"assets {list(assets)} differ from estimate_from {list(names)}", file=file,
                         field="correlation.assets")
    order = tuple(assets) if assets is not None else names
    hists = {}
    for a in order:
        v = src[a]
        if not isinstance(v, str) or not v.strip():
            raise InputError(f"must be a file path string (got {v!r})", file=file, field=f"{key}.{a}")
        p = Path(resolve_path(v, f"{key}.{a}"))
        if not p.is_file():
            raise InputError(f"file not found: '{v}' (looked for {p})", file=file, field=f"{key}.{a}")
        try:
            hists[a] = read_price_csv(p)
        except InputError as e:
            raise InputError(str(e), file=file, field=f"{key}.{a}") from None
    bars = [h.bar_s for h in hists.values()]
    est_step = round(step_s)
    note = ""
    if any(est_step % b for b in bars):
        est_step = math.lcm(*bars)
        note = f" (CSVs coarser than the {step_s:g} s step)"
        if est_step > DAY_S:
            raise InputError(f"bar intervals {sorted(set(bars))} s have no common multiple up to a day",
                             file=file, field=key)
    series = {}
    for a, h in hists.items():
        try:
            series[a] = log_return_series(h, est_step)
        except InputError as e:
            raise InputError(str(e), file=file, field=f"{key}.{a}") from None
    common, r = align_returns(series)
    if common.size < MIN_CORR_RETURNS:
        raise InputError(f"the CSVs share only {common.size} returns at the {est_step} s step "
                         f"(need {MIN_CORR_RETURNS})", file=file, field=key)
    sd = r.std(axis=0)
    if np.any(sd == 0):
        a = order[int(np.flatnonzero(sd == 0)[0])]
        raise InputError(f"returns of {a} are constant on the common dates", file=file, field=f"{key}.{a}")
    m = np.corrcoef(r, rowvar=False)
    m = 0.5 * (m + m.T)
    np.fill_diagonal(m, 1.0)
    return Correlation(order, m, f"estimated from {common.size} aligned {est_step} s returns{note}")


# --------------------------------------------------------------------------------- generation

@dataclass(frozen=True, eq=False)
class PricePaths:
    """Exogenous price paths (USD, float64).

    Attributes
    ----------
    assets : tuple of str
        Asset order of the last axis.
    step_s : float
        Seconds per step.
    close : np.ndarray
        ``(n_paths, n_steps + 1, n_assets)``; index 0 is the initial price.
    low : np.ndarray
        Same shape: the lowest price in the bar ending at step t (index 0 = the initial price).
        Replay: the CSV bar's low; synthetic models: ``min(close[t-1], close[t])``.
    timestamps : np.ndarray or None
        ``(n_steps + 1,)`` ``datetime64[s]`` for replays, else None.
    high : np.ndarray or None
        Same shape: the highest price in the bar (replay: the CSV bar's high; synthetic:
        ``max(close[t-1], close[t])``). None when built without highs: the closes stand in.
    """

    assets: tuple[str, ...]
    step_s: float
    close: np.ndarray
    low: np.ndarray
    timestamps: np.ndarray | None = None
    high: np.ndarray | None = None

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            a = getattr(self, name)
            if a is not None and a.shape != self.close.shape:
                raise ValueError(f"PricePaths.{name} has shape {a.shape}, close has {self.close.shape}")

    @property
    def bar_high(self) -> np.ndarray:
        """The bar highs (the closes when the paths carry none)."""
        return self.close if self.high is None else self.high

    def select(self, lo: int, hi: int) -> PricePaths:
        """Paths ``lo..hi-1`` (views, no copy)."""
        return PricePaths(self.assets, self.step_s, self.close[lo:hi], self.low[lo:hi], self.timestamps,
                          None if self.high is None else self.high[lo:hi])

    @property
    def n_paths(self) -> int:
        return self.close.shape[0]

    @property
    def n_steps(self) -> int:
        return self.close.shape[1] - 1

    def index(self, asset: str) -> int:
        """Position of ``asset`` on the last axis."""
        return self.assets.index(asset)

    def exogenous_drawdown(self) -> np.ndarray:
        """Deepest fall below the initial price per path and asset, ``1 - min_t low / close[0]``.

        Returns
        -------
        np.ndarray
            ``(n_paths, n_assets)`` in [0, 1).
        """
        return 1.0 - self.low.min(axis=1) / self.close[:, 0, :]


def _stream(root: int, *keys: str) -> np.random.Generator:
    # stable across runs and platforms (unlike hash()): blake2b of the key strings
    words = tuple(int.from_bytes(hashlib.blake2b(k.encode(), digest_size=8).digest(), "little") for k in keys)
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(root, spawn_key=words)))


def horizon_steps(models: Mapping[str, PriceModel], horizon_h: float | None, step_s: float,
                  file: str | None = None) -> int:
    """Number of steps: the replay window if any asset replays (all replays must share it), else
    ``round(horizon_h * 3600 / step_s)`` (at least 1)."""
    replays = {a: m for a, m in models.items() if isinstance(m, Replay)}
    if not replays:
        if horizon_h is None:
            raise InputError("missing (required unless an asset replays a CSV)", file=file,
                             field="scenario.horizon_h")
        return max(1, round(horizon_h * 3600.0 / step_s))
    _replay_timestamps(replays)
    return next(iter(replays.values())).n_steps


def _replay_timestamps(replays: Mapping[str, Replay]) -> np.ndarray:
    names = list(replays)
    ts = replays[names[0]].timestamps
    for a in names[1:]:
        other = replays[a].timestamps
        if other.shape != ts.shape or np.any(other != ts):
            raise InputError(f"replay window {other[0]}Z..{other[-1]}Z ({len(other) - 1} bars) differs "
                             f"from {names[0]}'s {ts[0]}Z..{ts[-1]}Z ({len(ts) - 1} bars)",
                             file=replays[a].history.source, field=f"assets.{a}.csv")
    return ts


def _group_drivers(models: Mapping[str, PriceModel], corr: Correlation, n_paths: int, n_steps: int,
                   rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Shared drivers of the correlated group: ``eps`` per Gaussian asset, ``index`` per bootstrap."""
    out: dict[str, np.ndarray] = {}
    gauss = tuple(a for a in corr.assets if isinstance(models[a], _GAUSSIAN))
    boot = tuple(a for a in corr.assets if isinstance(models[a], Bootstrap))
    if gauss:
        g = rng.standard_normal((n_paths, n_steps, len(gauss)))
        z = (g.reshape(-1, len(gauss)) @ corr.factor(gauss).T).reshape(g.shape) if len(gauss) > 1 else g
        t_assets = [a for a in gauss if isinstance(models[a], StudentT)]
        dofs = {models[a].dof for a in t_assets}
        chi2: dict[float, np.ndarray] = {}
        if len(dofs) == 1:  # the textbook multivariate t: one chi-square per step and path
            d = dofs.pop()
            chi2[d] = rng.chisquare(d, (n_paths, n_steps))
        elif dofs:  # different dof: one shared uniform mapped through each chi-square quantile
            u = rng.random((n_paths, n_steps))
            chi2 = {d: 2.0 * special.gammaincinv(d / 2.0, u) for d in dofs}
        for k, a in enumerate(gauss):
            col = z[:, :, k]
            out[a] = StudentT.unit_t(col, chi2[models[a].dof], models[a].dof) if a in t_assets else col
    if boot:
        rets = _aligned_bootstrap({a: models[a] for a in boot}) if len(boot) > 1 else {
            boot[0]: models[boot[0]].returns}
        n_ret = next(iter(rets.values())).size
        block = max(models[a].block_steps for a in boot)  # one block structure for the shared dates
        idx = stationary_bootstrap_index(n_ret, n_paths, n_steps, block, rng)
        for a in boot:
            out[a] = rets[a][idx]
    return out


def generate_paths(models: Mapping[str, PriceModel], corr: Correlation | None, n_paths: int, n_steps: int,
                   step_s: float, rng: np.random.Generator, initial_prices: Mapping[str, float | None],
                   file: str | None = None) -> PricePaths:
    """Simulate exogenous closes and bar lows for every asset.

    Parameters
    ----------
    models : mapping
        Asset -> model; the output's asset order is this mapping's order.
    corr : Correlation or None
        The ``[correlation]`` group (None: all independent).
    n_paths, n_steps : int
        Paths and steps (with a replay, ``n_steps`` must be its bar count: :func:`horizon_steps`).
    step_s : float
        Seconds per step.
    rng : np.random.Generator
        The only source of randomness; exactly one value is drawn from it (the root of the
        per-asset streams, see the module docstring).
    initial_prices : mapping
        Asset -> initial USD price (> 0). A replay may omit it or give None (its first open).

    Returns
    -------
    PricePaths
    """
    assets = tuple(models)
    if n_paths < 1 or n_steps < 1 or not step_s > 0:
        raise ValueError(f"need n_paths >= 1, n_steps >= 1, step_s > 0 (got {n_paths}, {n_steps}, {step_s})")
    replays = {a: m for a, m in models.items() if isinstance(m, Replay)}
    timestamps = _replay_timestamps(replays) if replays else None
    for a, m in replays.items():
        if m.n_steps != n_steps:
            raise InputError(f"the replay window has {m.n_steps} bars but the scenario has {n_steps} steps",
                             file=m.history.source, field=f"assets.{a}.csv")
        if abs(m.history.bar_s - step_s) > 1e-9:
            raise InputError(f"bars are {m.history.bar_s} s apart but the step is {step_s:g} s",
                             file=m.history.source, field=f"assets.{a}.csv")
    p0 = {}
    for a, m in models.items():
        v = initial_prices.get(a)
        if v is None and isinstance(m, Replay):
            v = m.initial_price_usd
        if v is None or not (isinstance(v, numbers.Real) and math.isfinite(v) and v > 0):
            raise InputError(f"initial price must be a number > 0 (got {v!r})", field=f"assets.{a}.price_usd")
        p0[a] = float(v)
    if corr is not None:
        _check_models(corr, models)

    root = int(rng.integers(0, 2**63))
    shared = _group_drivers(models, corr, n_paths, n_steps, _stream(root, "correlation", *sorted(corr.assets))
                            ) if corr is not None else {}

    close = np.empty((n_paths, n_steps + 1, len(assets)))
    low = np.empty_like(close)
    high = np.empty_like(close)
    for j, a in enumerate(assets):
        m = models[a]
        # work on contiguous per-asset arrays; one strided copy into the output at the end
        c = np.empty((n_paths, n_steps + 1))
        lo = np.empty_like(c)
        hi = np.empty_like(c)
        c[:, 0] = lo[:, 0] = hi[:, 0] = p0[a]
        if isinstance(m, Replay):
            scale = p0[a] / m.initial_price_usd
            c[:, 1:] = m.history.close * scale
            lo[:, 1:] = m.history.low * scale
            hi[:, 1:] = m.history.high * scale
        elif isinstance(m, Constant):
            c[:, 1:] = lo[:, 1:] = hi[:, 1:] = p0[a]
        else:
            own = _stream(root, "asset", a)
            if isinstance(m, Bootstrap):
                r = shared[a] if a in shared else m.sample(n_paths, n_steps, step_s, own)
            else:
                r = m.sample(n_paths, n_steps, step_s, own, eps=shared.get(a))
            np.cumsum(r, axis=1, out=c[:, 1:])
            np.exp(c[:, 1:], out=c[:, 1:])
            c[:, 1:] *= p0[a]
            np.minimum(c[:, :-1], c[:, 1:], out=lo[:, 1:])
            np.maximum(c[:, :-1], c[:, 1:], out=hi[:, 1:])
        for s in m.shocks:
            k = s.step_index(step_s)
            if k > n_steps:
                raise InputError(f"shock at {s.at_h:g} h is after the last step ({n_steps * step_s / 3600:g} h)",
                                 field=f"assets.{a}.shocks")
            c[:, k:] *= 1.0 - s.drop
            lo[:, k:] *= 1.0 - s.drop
            hi[:, k:] *= 1.0 - s.drop
            if k >= 1 and not isinstance(m, Replay):  # the bar the shock lands in opened at the old price
                np.maximum(hi[:, k], c[:, k - 1], out=hi[:, k])
        _check_range(a, c, lo, hi, file)
        close[:, :, j] = c
        low[:, :, j] = lo
        high[:, :, j] = hi
    return PricePaths(assets, float(step_s), close, low, timestamps, high)


def _check_range(asset: str, close: np.ndarray, low: np.ndarray, high: np.ndarray, file: str | None) -> None:
    """Simulated prices must stay finite and within [MIN_PRICE_USD, MAX_PRICE_USD] (the engine never sees overflow)."""
    lo_min, hi_max = float(np.min(low)), float(np.max(high))
    if not (np.isfinite(lo_min) and np.isfinite(hi_max)) or lo_min < MIN_PRICE_USD or hi_max > MAX_PRICE_USD:
        raise InputError(f"simulated prices leave [{MIN_PRICE_USD:g}, {MAX_PRICE_USD:g}] USD (from {lo_min:.3g} to "
                         f"{hi_max:.3g}); lower the drift, volatility, jumps or shocks, or shorten the horizon",
                         file=file, field=f"assets.{asset}")
