"""One declaration per metric: results, summaries, comparisons and report tables all iterate METRICS."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from report_helpers import write_small

from optimizer.engine import metrics as mx

METRIC_KEYS = ["bad_debt_usd", "bad_debt_share", "liquidated_usd", "liquidations", "amplification",
               "time_to_stabilise_h", "debt_repaid_usd", "liquidator_bonus_usd", "protocol_fee_usd",
               "realised_bad_debt_usd", "unrealised_bad_debt_usd", "horizon_exposure_usd", "inventory_usd",
               "borrower_penalty_usd",
               "borrower_penalty_share", "borrower_penalty_share_of_collateral", "capital_efficiency"]


@pytest.fixture(scope="module")
def comparison(tmp_path_factory):
    from optimizer.compare import compare

    sc = write_small(tmp_path_factory.mktemp("m"), paths=12, positions=300)
    return compare(str(sc), {"aave_v3": {"WETH.liquidation_threshold_bps": 8100}}, analyses=False)


def test_metrics_json_keys_are_unchanged(comparison):
    m = comparison.current.metrics()
    assert list(m) == METRIC_KEYS
    assert set(m["bad_debt_usd"]) == {"mean", "stderr", "var_95", "var_95_ci95", "var_99", "var_99_ci95", "es_99",
                                      "es_99_stderr", "p_positive", "p_positive_stderr"}
    assert set(m["liquidations"]) == {"mean", "stderr", "p99", "p99_ci95"}
    assert list(comparison.current.per_path()) == METRIC_KEYS[:-1]


def test_a_new_metric_is_one_declaration(comparison, monkeypatch):
    """Appending one MetricSpec adds it to per_path, metrics, summary, the paired deltas and the report table."""
    from optimizer.engine import results
    from optimizer.report import markdown

    new = mx.MetricSpec("penalty_paid_usd", "USD", "Liquidation penalty paid by borrowers (bonus + protocol fee)",
                        compute=mx.ledger("liquidator_bonus_usd", "protocol_fee_usd"), fmt="usd", risk=+1,
                        label="penalty paid", table_stats=("mean",))
    specs = (*mx.METRICS, new)
    for mod in (mx, results, markdown):
        monkeypatch.setattr(mod, "METRICS", specs)
    import optimizer.compare as cmp_mod

    monkeypatch.setattr(cmp_mod, "METRICS", specs)
    cur, cand = comparison.current, comparison.candidate
    pp = cur.per_path()
    np.testing.assert_allclose(pp["penalty_paid_usd"], pp["liquidator_bonus_usd"] + pp["protocol_fee_usd"])
    m = cur.metrics()
    assert m["penalty_paid_usd"]["mean"] == pytest.approx(m["liquidator_bonus_usd"]["mean"] + m["protocol_fee_usd"]["mean"])
    assert "penalty_paid_usd" in cur.summary().index
    d = cmp_mod.paired_deltas(cur, cand)["penalty_paid_usd"]["mean"]
    assert d["delta"] == pytest.approx(cand.metrics()["penalty_paid_usd"]["mean"] - m["penalty_paid_usd"]["mean"])
    table = markdown.risk_table([("current", m), ("candidate", cand.metrics())],
                                cmp_mod.paired_deltas(cur, cand), "candidate - current")
    assert "| penalty paid (USD) |" in table


def test_summary_has_ci_columns(comparison):
    s = comparison.current.summary()
    for col in ("mean", "stderr", "mean_ci95_low", "mean_ci95_high", "var_99", "var_99_ci95_low", "var_99_ci95_high",
                "es_99", "es_99_stderr", "p_positive", "p_positive_stderr", "p99_ci95_low"):
        assert col in s.columns, col
    row = s.loc["bad_debt_usd"]
    assert row["mean_ci95_low"] <= row["mean"] <= row["mean_ci95_high"]
    assert row["var_99_ci95_low"] <= row["var_99"] <= row["var_99_ci95_high"]
    cs = comparison.summary()
    assert {"current", "candidate", "delta", "delta_stderr", "delta_ci95_low", "delta_ci95_high"} <= set(cs.columns)


@given(st.lists(st.floats(0, 1e6), min_size=5, max_size=60), st.floats(0, 1e4))
def test_paired_difference_of_a_shift_is_exact(xs, c):
    a = np.array(xs)
    d = mx.paired_difference(a, a + c, "mean")
    assert d["delta"] == pytest.approx(c, abs=1e-6 * (1 + c))
    assert d["stderr"] == pytest.approx(0.0, abs=1e-6 * (1 + c))
    same = mx.paired_difference(a, a, "es_99")
    assert same["delta"] == 0 and same["stderr"] == 0 and not same["significant"]


def test_paired_errors_are_tighter_than_independent_ones():
    rng = np.random.default_rng(1)
    a = rng.lognormal(10, 1.5, 400)
    b = a * 1.02 + rng.normal(0, 10, 400)
    paired = mx.paired_difference(a, b, "mean")["stderr"]
    independent = np.hypot(a.std(ddof=1), b.std(ddof=1)) / np.sqrt(400)
    assert paired < independent / 10
    assert mx.paired_difference(a, b, "mean")["significant"]


def test_formats_show_units():
    assert mx.format_value(1_234_567, "usd") == "$1.23M"
    assert mx.format_value(0.00123, "share") == "0.123 %"
    assert mx.format_delta(-2500, "usd") == "-$2.5k"
    assert mx.format_value(None, "usd") == "-"
