"""CUPED with a pre-period covariate: unbiased, keeps the false-positive rate, cuts variance."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import polars as pl
import pytest
import yaml

from pilot.cuped import cuped_numerator, pre_period_totals
from pilot.plan import DEFAULT_PLAN, PilotPlan
from pilot.readout import run_readout
from pilot.simulate import simulate_events, simulate_totals
from pilot.stats import ratio_effect

ALPHA = 0.05
START = dt.date(2026, 12, 7)


def _cuped_runs(effect: float, runs: int, users: int, seed: int):
    control = simulate_totals(users, runs, seed=seed, pre_period=True)
    treatment = simulate_totals(users, runs, effect=effect, seed=seed + 1, pre_period=True)
    results = []
    for run in range(runs):
        x = np.concatenate([control["revenue"][run], treatment["revenue"][run]])
        y = np.concatenate([control["sessions"][run], treatment["sessions"][run]])
        pre_x = np.concatenate([control["pre_revenue"][run], treatment["pre_revenue"][run]])
        pre_y = np.concatenate([control["pre_sessions"][run], treatment["pre_sessions"][run]])
        adjusted, _, correlation = cuped_numerator(x, y, pre_x, pre_y)
        plain = ratio_effect(x[:users], y[:users], x[users:], y[users:], ALPHA)
        cuped = ratio_effect(adjusted[:users], y[:users], adjusted[users:], y[users:], ALPHA)
        results.append((plain, cuped, correlation))
    return results


def test_cuped_keeps_false_positive_rate():
    runs = 300
    results = _cuped_runs(0.0, runs, 2_000, seed=40)
    rate = float(np.mean([cuped.p_value < ALPHA for _, cuped, _ in results]))
    assert abs(rate - ALPHA) <= 3 * math.sqrt(ALPHA * (1 - ALPHA) / runs), rate


def test_cuped_unbiased_and_tighter():
    results = _cuped_runs(0.2, 100, 4_000, seed=60)
    plain = np.array([p.relative for p, _, _ in results])
    adjusted = np.array([c.relative for _, c, _ in results])
    correlation = np.mean([r for _, _, r in results])
    # Mean of 100 estimates: SE about 0.11 / 10, so 0.04 is a loose bound around +20 %.
    assert adjusted.mean() == pytest.approx(0.2, abs=0.04)
    assert plain.mean() == pytest.approx(0.2, abs=0.04)
    # Simulated revenue is mostly purchase noise, so its correlation with the pre-period is
    # low (about 0.2) and CUPED removes only rho^2 = 4 % of the variance.
    assert correlation > 0.1
    variance_ratios = [(c.absolute_se / p.absolute_se) ** 2 for p, c, _ in results]
    assert np.mean(variance_ratios) < 1
    assert np.mean(variance_ratios) == pytest.approx(1 - correlation**2, abs=0.02)


def test_cuped_without_covariate_variance():
    x = np.array([1.0, 2.0, 3.0])
    y = np.ones(3)
    adjusted, theta, correlation = cuped_numerator(x, y, np.zeros(3), np.zeros(3))
    assert adjusted.tolist() == x.tolist()
    assert theta == 0.0
    assert correlation == 0.0


def _plan(**changes) -> PilotPlan:
    values = yaml.safe_load(DEFAULT_PLAN.read_text())
    values.update(
        {
            "start_date": str(START),
            "design": {"duration_weeks": 1},
            "traffic": {"daily_users": 400},
            "cuped": {"enabled": True, "correlation": 0.5},
        }
    )
    values.update(changes)
    return PilotPlan.model_validate(values)


def _logs(plan: PilotPlan):
    common = {"n_users": 6_000, "salt": plan.salt, "variants": plan.variants, "seed": 8}
    pilot = simulate_events(start_date=START, days=7, effect=0.3, **common)
    earlier = simulate_events(start_date=START - dt.timedelta(days=14), days=14, period=1, **common)
    return pilot, earlier


def test_pre_period_totals_counts():
    events = pl.DataFrame(
        {
            "user_id": ["a", "a", "a", "b"],
            "session_id": ["s1", "s1", "s2", "s3"],
            "event_type": ["session", "purchase", "session", "session"],
            "order_id": [None, "o1", None, None],
            "revenue": [None, 12.5, None, None],
        }
    )
    totals = {row["user_id"]: row for row in pre_period_totals(events).iter_rows(named=True)}
    assert totals["a"]["sessions"] == 2
    assert totals["a"]["revenue"] == 12.5
    assert totals["a"]["converted"] == 1.0
    assert totals["b"]["revenue"] == 0.0
    assert totals["b"]["orders"] == 0.0


def test_readout_applies_cuped():
    plan = _plan()
    pilot, earlier = _logs(plan)
    plain = run_readout(plan, pilot)
    adjusted = run_readout(plan, pilot, pre_period=pre_period_totals(earlier))

    assert "no pre-period" in plain.cuped
    assert plain.primary["cuped"] is None
    info = adjusted.primary["cuped"]
    assert info["correlation"] > 0.2
    assert info["variance_reduction"] > 0.05
    assert adjusted.primary["absolute_se"] < plain.primary["absolute_se"]
    assert adjusted.cuped.startswith("applied")
    conversion = next(row for row in adjusted.guardrails if row["metric"] == "conversion")
    assert conversion["cuped"] is not None
    latency = next(row for row in adjusted.guardrails if row["metric"] == "p95_latency_ms")
    assert latency["cuped"] is None


def test_baselines_command_estimates_correlation(tmp_path, capsys):
    from pilot.cli import main
    from pilot.history import estimate_cuped_correlation

    plan = _plan()
    history = simulate_events(
        n_users=3_000, start_date=START, days=14, salt=plan.salt, variants=plan.variants, seed=9
    )
    path = tmp_path / "history.parquet"
    history.write_parquet(path)
    correlation = estimate_cuped_correlation(path)
    assert 0 < correlation < 1

    assert main(["baselines", "--history", str(path)]) == 0
    output = capsys.readouterr().out
    assert f"{correlation:.3f}" in output
    values = yaml.safe_load(output)
    assert values["baselines"]["metrics"]["revenue_per_session"]["denominator_mean"] > 1
