"""Price-path models: moments against theory, correlation, GARCH fit, bootstrap, replay, shocks,
determinism, and every bad [assets.X] / [correlation] input naming file and key."""

import dataclasses
import math

import numpy as np
import pytest

from optimizer import InputError, data_dir
from optimizer.scenario.history import log_returns, read_price_csv
from optimizer.scenario.prices import (
    GBM,
    YEAR_S,
    Constant,
    Correlation,
    Garch,
    Merton,
    Shock,
    StudentT,
    correlation_from_config,
    fit_garch,
    generate_paths,
    horizon_steps,
    model_from_config,
)

FILE = "scenarios/test.toml"  # named in errors; CSV paths resolve to the bundled data/
STEP_S = 300.0
DT = STEP_S / YEAR_S


def rng(seed=7):
    return np.random.default_rng(seed)


def cfg_model(asset, cfg, step_s=STEP_S, horizon_h=24.0):
    return model_from_config(asset, cfg, str(data_dir() / FILE), step_s=step_s, horizon_h=horizon_h)


# ---------------------------------------------------------------------------------------- moments

def test_gbm_log_return_mean_and_variance():
    mu, sigma = 0.5, 0.8
    r = GBM(mu, sigma).sample(4000, 288, STEP_S, rng()).ravel()
    n = r.size
    mean_th, var_th = (mu - 0.5 * sigma**2) * DT, sigma**2 * DT
    assert abs(r.mean() - mean_th) < 4 * math.sqrt(var_th / n)
    assert abs(r.var() - var_th) < 4 * var_th * math.sqrt(2 / n)


def test_merton_jump_frequency_and_mean():
    lam_day, m, s = 24.0, -0.03, 0.02
    model = Merton(0.0, 0.0, lam_day, m, s)  # no diffusion: every nonzero deviation is a jump
    r = model.sample(2000, 288, STEP_S, rng()).ravel()
    jumps = r[np.abs(r) > 1e-12]
    p_th = 1 - math.exp(-lam_day * STEP_S / 86400)  # P(at least one jump in a step)
    n = r.size
    assert abs(jumps.size / n - p_th) < 4 * math.sqrt(p_th * (1 - p_th) / n)
    # total jump size per step: E = lambda dt m; mean size given >= 1 jump ~ m (two jumps rare)
    lam_dt = lam_day * STEP_S / 86400
    assert abs(r.mean() - lam_dt * m) < 4 * math.sqrt(lam_dt * (s**2 + m**2) / n)
    assert abs(jumps.mean() - m * lam_dt / p_th) < 0.001


def test_merton_compensation_restores_the_price_drift():
    # uncompensated: E[S_dt/S_0] = exp(mu dt) (1 + lambda dt k); compensated: exp(mu dt)
    base = {"mu_annual": 0.0, "sigma_annual": 0.5, "jump_intensity_per_day": 10.0, "jump_mean": -0.05,
            "jump_std": 0.03}
    k = math.expm1(-0.05 + 0.5 * 0.03**2)
    lam_dt = 10.0 * STEP_S / 86400
    g_unc = np.exp(Merton(**base).sample(2000, 288, STEP_S, rng())).mean() - 1
    g_cmp = np.exp(Merton(**base, compensated=True).sample(2000, 288, STEP_S, rng())).mean() - 1
    se = 4 * math.sqrt((0.5**2 * DT + lam_dt * 0.06**2) / (2000 * 288))
    assert abs(g_unc - lam_dt * k) < se
    assert abs(g_cmp) < se


def test_student_t_unit_variance_and_fat_tails():
    sigma, dof = 0.8, 6.0
    r = StudentT(0.0, sigma, dof).sample(4000, 288, STEP_S, rng()).ravel()
    eps = (r - r.mean()) / (sigma * math.sqrt(DT))
    assert abs(eps.var() - 1) < 0.02
    kurt = np.mean(eps**4) / eps.var() ** 2
    assert kurt > 4.5  # theory 3 + 6 / (dof - 4) = 6; Gaussian 3


def test_correlated_drivers_match_the_matrix():
    c = Correlation(("A", "B", "C"), [[1.0, 0.7, -0.3], [0.7, 1.0, 0.0], [-0.3, 0.0, 1.0]])
    models = {"A": GBM(0.0, 0.8), "B": Garch(1e-6, 0.05, 0.9), "C": GBM(0.1, 0.3)}
    p = generate_paths(models, c, 2000, 288, STEP_S, rng(), {"A": 3000.0, "B": 60000.0, "C": 1.0})
    r = np.diff(np.log(p.close), axis=1).reshape(-1, 3)
    got = np.corrcoef(r.T)
    se = (1 - c.matrix**2) / math.sqrt(r.shape[0])
    assert np.all(np.abs(got - c.matrix) <= 4 * se + 0.01)  # garch: rho scaled by E[sqrt(h)]/sqrt(E h) ~ 1
    assert abs(got[0, 2] - (-0.3)) < 0.01


def test_multivariate_t_shares_the_chi_square():
    c = Correlation(("X", "Y"), [[1.0, 0.6], [0.6, 1.0]])
    models = {"X": StudentT(0.0, 0.8, 5.0), "Y": StudentT(0.0, 0.5, 5.0)}
    p = generate_paths(models, c, 2000, 288, STEP_S, rng(), {"X": 1.0, "Y": 1.0})
    r = np.diff(np.log(p.close), axis=1).reshape(-1, 2)
    assert abs(np.corrcoef(r.T)[0, 1] - 0.6) < 0.01
    # a shared chi-square makes large moves coincide: |X| and |Y| are dependent beyond rho
    ax, ay = np.abs(r[:, 0]) > 4 * r[:, 0].std(), np.abs(r[:, 1]) > 4 * r[:, 1].std()
    assert (ax & ay).mean() > 5 * ax.mean() * ay.mean()


# ---------------------------------------------------------------------------------------- GARCH

def test_garch_fit_recovers_known_parameters():
    true = Garch(omega=2e-6, alpha=0.08, beta=0.9, mu=1e-4)
    r = true.sample(1, 30_000, STEP_S, rng(11))[0]
    g = fit_garch(r, step_s=STEP_S)
    assert abs(g.alpha - 0.08) < 0.02 and abs(g.beta - 0.9) < 0.03
    assert abs(g.persistence - 0.98) < 0.01
    assert g.unconditional_variance == pytest.approx(true.unconditional_variance, rel=0.3)
    assert g.step_s == STEP_S and g.h0 == pytest.approx(r.var())


def test_garch_fit_on_eth_hourly_is_stationary_and_sane():
    m = cfg_model("WETH", {"model": "garch", "history": "prices/eth_usdt_1h_2021-04_2023-12.csv"}, 3600.0)
    assert isinstance(m, Garch) and m.alpha > 0 and m.beta > 0 and m.persistence < 1
    assert 0.5 < math.sqrt(m.h0 * YEAR_S / 3600) < 1.2  # sample volatility of ETH 2021-23 ~ 80 %
    p = generate_paths({"WETH": m}, None, 500, 24, 3600.0, rng(), {"WETH": 2000.0})
    assert np.all(np.isfinite(p.close)) and np.all(p.close > 0)


# ------------------------------------------------------------------------------ bootstrap, replay

def test_bootstrap_only_resamples_history_returns_in_blocks():
    m = cfg_model("WETH", {"model": "bootstrap", "history": "prices/eth_usdt_1h_2020-02_2020-04.csv",
                           "block_steps": 12}, 3600.0)
    hist = log_returns(read_price_csv(data_dir() / "prices" / "eth_usdt_1h_2020-02_2020-04.csv"), 3600)
    np.testing.assert_array_equal(m.returns, hist)
    r = m.sample(1000, 48, 3600.0, rng())
    assert np.all(np.isin(r, hist))
    # stationary bootstrap: a step continues the previous block with probability 1 - 1/12
    pos = {v: i for i, v in enumerate(hist)}  # returns are (almost) unique floats
    idx = np.vectorize(pos.get)(r)
    cont = np.mean((idx[:, 1:] - idx[:, :-1]) % hist.size == 1)
    assert abs(cont - 11 / 12) < 0.02


def test_correlated_bootstraps_resample_the_same_dates():
    hist = {"WETH": "prices/eth_usdt_1h_2021-04_2023-12.csv", "WBTC": "prices/btc_usdt_1h_2021-04_2023-12.csv"}
    models = {a: cfg_model(a, {"model": "bootstrap", "history": h, "block_steps": 6}, 3600.0)
              for a, h in hist.items()}
    c = correlation_from_config({"assets": ["WETH", "WBTC"], "matrix": [[1, 0], [0, 1]]}, FILE,
                                step_s=3600.0, models=models)
    p = generate_paths(models, c, 1000, 24, 3600.0, rng(), {"WETH": 2000.0, "WBTC": 30000.0})
    r = np.diff(np.log(p.close), axis=1).reshape(-1, 2)
    assert 0.8 < np.corrcoef(r.T)[0, 1] < 0.95  # the empirical ETH/BTC correlation, ~0.87


def test_replay_reproduces_the_csv_exactly():
    m = cfg_model("WETH", {"model": "replay", "csv": "prices/eth_usd_10m_2020-03-12.csv"}, 600.0)
    h = read_price_csv(data_dir() / "prices" / "eth_usd_10m_2020-03-12.csv")
    n = horizon_steps({"WETH": m}, 24.0, 600.0)
    assert n == 144 == m.n_steps
    p = generate_paths({"WETH": m, "USDC": Constant()}, None, 3, n, 600.0, rng(), {"WETH": None, "USDC": 1.0})
    assert p.close.shape == (3, 145, 2)
    for path in range(3):
        np.testing.assert_array_equal(p.close[path, 1:, 0], h.close)
        np.testing.assert_array_equal(p.low[path, 1:, 0], h.low)
    assert p.close[0, 0, 0] == h.open[0] == 195.21
    assert p.timestamps[0] == h.timestamps[0] and p.timestamps[-1] == np.datetime64("2020-03-13T00:00:00")
    np.testing.assert_allclose(p.exogenous_drawdown()[:, 0], 1 - h.low.min() / h.open[0])
    assert np.all(p.close[:, :, 1] == 1.0) and np.all(p.exogenous_drawdown()[:, 1] == 0)
    # a different initial price scales the window (same returns)
    q = generate_paths({"WETH": m}, None, 1, n, 600.0, rng(), {"WETH": 1952.1})
    np.testing.assert_allclose(q.close[0, 1:, 0], h.close * 10, rtol=1e-12)


# ----------------------------------------------------------------------------------------- shocks

@pytest.mark.parametrize("model", [GBM(0.0, 0.8), Merton(0.0, 0.5, 2.0, -0.03, 0.05), Constant()])
def test_shock_drops_price_by_exactly_one_minus_drop(model):
    shocked = dataclasses.replace(model, shocks=(Shock(at_h=2.0, drop=0.15),))
    base = generate_paths({"A": model}, None, 50, 288, STEP_S, rng(3), {"A": 100.0})
    hit = generate_paths({"A": shocked}, None, 50, 288, STEP_S, rng(3), {"A": 100.0})
    k = 24  # 2 h at 5-minute steps
    np.testing.assert_array_equal(hit.close[:, :k], base.close[:, :k])
    np.testing.assert_allclose(hit.close[:, k:] / base.close[:, k:], 0.85, rtol=1e-14)
    np.testing.assert_allclose(hit.low[:, k:] / base.low[:, k:], 0.85, rtol=1e-14)
    np.testing.assert_array_equal(hit.low[:, :k], base.low[:, :k])


def test_shocks_from_config_and_on_replay():
    m = cfg_model("WETH", {"model": "replay", "csv": "prices/eth_usd_10m_2021-05-19.csv",
                           "shocks": [{"at_h": 1.0, "drop": 0.5}, {"at_h": 1.0, "drop": 0.5}]}, 600.0)
    p = generate_paths({"WETH": m}, None, 1, m.n_steps, 600.0, rng(), {})
    h = m.history
    np.testing.assert_allclose(p.close[0, 6:, 0], h.close[5:] * 0.25, rtol=1e-14)
    np.testing.assert_array_equal(p.close[0, 1:6, 0], h.close[:5])


# ----------------------------------------------------------------------------------- determinism

def test_same_seed_same_paths_and_unrelated_assets_do_not_disturb():
    models = {"WETH": Merton(0.0, 0.8, 2.0, -0.03, 0.05), "WBTC": StudentT(0.0, 0.6, 4.0),
              "G": Garch(1e-6, 0.05, 0.9)}
    p0 = {"WETH": 3000.0, "WBTC": 60000.0, "G": 1.0, "NEW": 5.0}
    c = Correlation(("WETH", "WBTC"), [[1, 0.8], [0.8, 1]])
    a = generate_paths(models, c, 200, 288, STEP_S, rng(42), p0)
    b = generate_paths(models, c, 200, 288, STEP_S, rng(42), p0)
    np.testing.assert_array_equal(a.close, b.close)
    np.testing.assert_array_equal(a.low, b.low)
    d = generate_paths(models, c, 200, 288, STEP_S, rng(43), p0)
    assert not np.any(np.all(d.close[:, 1:] == a.close[:, 1:], axis=(0, 1)))
    # adding an uncorrelated asset and reordering leave every other asset's draws unchanged
    more = {"NEW": GBM(0.0, 1.0), **dict(reversed(list(models.items())))}
    e = generate_paths(more, c, 200, 288, STEP_S, rng(42), p0)
    for asset in models:
        np.testing.assert_array_equal(e.close[:, :, e.index(asset)], a.close[:, :, a.index(asset)])
    assert e.assets == ("NEW", "G", "WBTC", "WETH")


def test_rng_is_the_only_source_and_advances_once():
    g = rng(5)
    generate_paths({"A": GBM(0.0, 0.8)}, None, 10, 10, STEP_S, g, {"A": 1.0})
    h = rng(5)
    h.integers(0, 2**63)
    assert g.random() == h.random()


def test_low_is_min_of_endpoints_for_synthetic_models():
    p = generate_paths({"A": GBM(0.0, 0.8)}, None, 20, 50, STEP_S, rng(), {"A": 10.0})
    c, lo = p.close[:, :, 0], p.low[:, :, 0]
    np.testing.assert_array_equal(lo[:, 1:], np.minimum(c[:, :-1], c[:, 1:]))
    assert np.all(lo[:, 0] == 10.0) and p.exogenous_drawdown().shape == (20, 1)


# ------------------------------------------------------------------------------------ bad inputs

def err(fn):
    with pytest.raises(InputError) as ei:
        fn()
    return ei.value


@pytest.mark.parametrize("cfg, field, rule", [
    ({"model": "brownian"}, "assets.WETH.model", "unknown model 'brownian' (known: constant, gbm"),
    ({}, "assets.WETH.model", "missing"),
    ({"model": "gbm", "sigma_annual": 0.8, "sigma": 1, "vol": 2}, "assets.WETH.sigma",
     "unknown key(s) sigma, vol for model 'gbm'"),
    ({"model": "gbm"}, "assets.WETH.sigma_annual", "missing"),
    ({"model": "gbm", "sigma_annual": "0.8"}, "assets.WETH.sigma_annual", "must be a number"),
    ({"model": "gbm", "sigma_annual": 80}, "assets.WETH.sigma_annual", "must be <= 10"),
    ({"model": "gbm", "sigma_annual": float("nan")}, "assets.WETH.sigma_annual", "must be finite"),
    ({"model": "student_t", "sigma_annual": 0.8, "dof": 2}, "assets.WETH.dof", "must be > 2"),
    ({"model": "merton", "sigma_annual": 0.8, "jump_intensity_per_day": -1, "jump_mean": 0, "jump_std": 0},
     "assets.WETH.jump_intensity_per_day", "must be >= 0"),
    ({"model": "merton", "sigma_annual": 0.8, "jump_intensity_per_day": 1, "jump_mean": 0, "jump_std": 0,
      "compensated": "yes"}, "assets.WETH.compensated", "true or false"),
    ({"model": "gbm", "sigma_annual": 0.8, "shocks": [{"at_h": 30, "drop": 0.1}]},
     "assets.WETH.shocks[0].at_h", "must be <= 24"),
    ({"model": "gbm", "sigma_annual": 0.8, "shocks": [{"at_h": 3, "drop": 1.0}]},
     "assets.WETH.shocks[0].drop", "must be < 1"),
    ({"model": "gbm", "sigma_annual": 0.8, "shocks": [{"at_h": 3, "drop": 0.1, "when": 2}]},
     "assets.WETH.shocks[0].when", "unknown key(s) when"),
    ({"model": "garch", "omega": 1e-6, "alpha": 0.5, "beta": 0.6}, "assets.WETH.beta", "alpha + beta must be < 1"),
    ({"model": "garch"}, "assets.WETH.history", "missing"),
    ({"model": "garch", "history": "prices/eth_usdt_1h_2021-04_2023-12.csv"}, "assets.WETH.history",
     "coarser than the 300 s step"),
    ({"model": "bootstrap", "history": "prices/nope.csv", "block_steps": 3}, "assets.WETH.history", "not found"),
    ({"model": "replay", "csv": "prices/eth_usd_10m_2020-03-12.csv"}, "assets.WETH.csv",
     "bars are 600 s apart but the scenario step is 300 s"),
    ({"model": "replay", "csv": "prices/eth_usdt_1h_2021-04_2023-12.csv"}, "assets.WETH.csv", None),
    ({"model": "replay", "history": "prices/eth_usd_10m_2020-03-12.csv"}, "assets.WETH.history",
     "unknown key(s) history for model 'replay' (allowed: csv"),
])
def test_bad_asset_config_names_file_and_key(cfg, field, rule):
    e = err(lambda: cfg_model("WETH", cfg))
    assert e.file.endswith(FILE) and e.field == field, str(e)
    assert FILE in str(e) and field in str(e)
    if rule:
        assert rule in e.rule, str(e)


@pytest.mark.parametrize("block, rule", [(0, "must be >= 1"), (2.5, "whole number"), (500, "must be <= the 143")])
def test_bootstrap_block_steps_bounds(block, rule):
    e = err(lambda: cfg_model("WETH", {"model": "bootstrap", "history": "prices/eth_usd_10m_2020-03-12.csv",
                                       "block_steps": block}, 600.0))
    assert e.field == "assets.WETH.block_steps" and rule in e.rule, str(e)


def test_replay_with_gaps_is_rejected_naming_the_gap():
    e = err(lambda: cfg_model("WETH", {"model": "replay", "csv": "prices/eth_usdt_1h_2021-04_2023-12.csv"},
                              3600.0))
    assert e.field == "assets.WETH.csv" and "gap after 2021-04-20" in e.rule


def test_bad_csv_behind_a_model_names_scenario_key_and_csv_line(tmp_path):
    p = tmp_path / "bad.csv"
    p.write_text("timestamp,open,high,low,close\n2020-01-01T00:00:00Z,1,1,1,1\n2020-01-01T00:05:00Z,1,1,-1,1\n")
    e = err(lambda: cfg_model("WETH", {"model": "bootstrap", "history": str(p), "block_steps": 1}))
    assert e.field == "assets.WETH.history"
    assert str(p) in e.rule and "line 3, column low" in e.rule


CORR_MODELS = {"WETH": GBM(0.0, 0.8), "WBTC": GBM(0.0, 0.6), "stETH": GBM(0.0, 0.8), "USDC": Constant()}


@pytest.mark.parametrize("cfg, field, rule", [
    ({"assets": ["WETH", "WBTC", "stETH"], "matrix": [[1, 0.9, 0.9], [0.9, 1, -0.9], [0.9, -0.9, 1]]},
     "correlation.matrix", "not positive semi-definite"),
    ({"assets": ["WETH", "WBTC"], "matrix": [[1, 0.5], [0.4, 1]]}, "correlation.matrix", "not symmetric"),
    ({"assets": ["WETH", "WBTC"], "matrix": [[1, 0.5], [0.5, 0.9]]}, "correlation.matrix",
     "diagonal entry [1][1] (WBTC) must be 1"),
    ({"assets": ["WETH", "WBTC"], "matrix": [[1, 1.5], [1.5, 1]]}, "correlation.matrix", "must be in [-1, 1]"),
    ({"assets": ["WETH", "WBTC"], "matrix": [[1, 0.5]]}, "correlation.matrix", "must be a 2x2"),
    ({"assets": ["WETH", "DOGE"], "matrix": [[1, 0.5], [0.5, 1]]}, "correlation.assets", "'DOGE' is not an asset"),
    ({"assets": ["WETH", "USDC"], "matrix": [[1, 0.5], [0.5, 1]]}, "correlation.assets",
     "USDC has model 'constant', which cannot be correlated"),
    ({"assets": ["WETH", "WBTC"]}, "correlation", "exactly one of matrix or estimate_from"),
    ({"assets": ["WETH", "WBTC"], "matrix": [[1, 0], [0, 1]], "method": "x"}, "correlation.method", "unknown key"),
    ({"estimate_from": {"WETH": "prices/eth_usd_10m_2020-03-12.csv", "WBTC": "prices/eth_usd_10m_2021-05-19.csv"}},
     "correlation.estimate_from", "share only 0 returns"),
])
def test_bad_correlation_names_file_and_problem(cfg, field, rule):
    e = err(lambda: correlation_from_config(cfg, FILE, step_s=STEP_S, models=CORR_MODELS))
    assert e.file == FILE and e.field == field, str(e)
    assert rule in e.rule, str(e)


def test_correlation_estimated_from_csvs():
    src = {"WETH": "prices/eth_usdt_1h_2021-04_2023-12.csv", "WBTC": "prices/btc_usdt_1h_2021-04_2023-12.csv"}
    c = correlation_from_config({"estimate_from": src}, FILE, step_s=3600.0, models=CORR_MODELS)
    assert c.assets == ("WETH", "WBTC") and 0.8 < c.matrix[0, 1] < 0.95
    assert "3600 s" in c.source
    # a 5-minute step falls back to the hourly bars and says so
    c5 = correlation_from_config({"estimate_from": src}, FILE, step_s=STEP_S, models=CORR_MODELS)
    assert c5.matrix[0, 1] == c.matrix[0, 1] and "coarser" in c5.source


def test_singular_but_psd_matrix_is_accepted():
    c = Correlation(("A", "B"), [[1.0, 1.0], [1.0, 1.0]])
    p = generate_paths({"A": GBM(0.0, 0.8), "B": GBM(0.0, 0.8)}, c, 10, 20, STEP_S, rng(), {"A": 1.0, "B": 1.0})
    np.testing.assert_allclose(p.close[:, :, 0], p.close[:, :, 1], rtol=1e-12)
