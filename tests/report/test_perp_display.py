"""How perp results read: capital efficiency as a leverage multiple, a probability budget as a probability."""

from __future__ import annotations

from optimizer.engine.metrics import capital_efficiency_text, metric
from optimizer.report.markdown import budget_line, risk_table

CE = {"borrow_capacity_usd": 3.03e9, "collateral_usd": 1.5e8, "debt_usd": 1.5e9, "ratio": 20.17, "utilisation": 0.5}
PERP = {"capital_efficiency": CE, "p_adl": {"mean": 0.1, "stderr": 0.03, "ci95": [0.05, 0.19]}}
LENDING = {"capital_efficiency": dict(CE, ratio=0.8)}


def test_perp_capital_efficiency_is_a_leverage_multiple_and_lending_a_share():
    assert capital_efficiency_text(PERP) == "20.17×"
    assert capital_efficiency_text(LENDING) == "80.00 %"
    fmt, unit = metric("capital_efficiency").display(PERP)
    assert fmt == "leverage" and unit.startswith("x")
    table = risk_table([("current", PERP), ("candidate", dict(PERP, capital_efficiency=dict(CE, ratio=25.0)))],
                       {}, "Δ")
    row = next(r for r in table.splitlines() if r.startswith("| capital efficiency"))
    assert "20.17×" in row and "25.00×" in row and "+4.83×" in row and "%" not in row


def test_a_probability_budget_reads_as_a_probability():
    b = {"metric": "probability of p_insurance_depletion", "value": 0.02, "ci95": [0.005, 0.07], "budget": 0.1,
         "feasible": True}
    line = budget_line([("current", b)])
    assert "bad debt" not in line and "probability p_insurance_depletion per path" in line
    assert "at most 0.100" in line and "upper 95 % CI end 0.070" in line
    share = {"metric": "var_99 of bad_debt_share", "value": 0.001, "ci95": [0.0, 0.002], "budget": 0.01,
             "feasible": True}
    assert "var_99 of bad debt / debt" in budget_line([("current", share)])
