"""Plan validation, sizing and the `plan` command on the default plan."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import yaml
from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from bookrecs.exceptions import ConfigError
from pilot.cli import main
from pilot.plan import DEFAULT_PLAN, PilotPlan, load_plan
from pilot.power import ratio_sd
from pilot.sizing import summarise_plan


def _plan_values() -> dict:
    return yaml.safe_load(DEFAULT_PLAN.read_text())


def _write(tmp_path: Path, values: dict) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(yaml.safe_dump(values))
    return path


def test_default_plan_loads():
    plan = load_plan()
    assert plan.treatment == "treatment"
    assert plan.baselines is not None
    assert plan.primary == "revenue_per_session"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": "blue"}, "colour"),
        ({"design": {"mde_relative": 0.02, "duration_weeks": 2}}, "exactly one"),
        ({"design": {}}, "exactly one"),
        ({"variants": {"control": 0.5, "treatment": 0.6}}, "sum to 1"),
        ({"variants": {"control": 1.0}}, "exactly two"),
        ({"primary": "revenue"}, "unknown metric"),
        ({"primary": "p95_latency_ms"}, "guardrail"),
        ({"alpha": 0.7}, "alpha"),
        ({"guardrails": [{"metric": "error_rate", "margin": 0.1, "scale": "x"}]}, "scale"),
        ({"end_date": "2026-11-01"}, "before start_date"),
        ({"srm": {"dimensions": ["country"]}}, "srm.dimensions"),
    ],
)
def test_invalid_plan_rejected(tmp_path, change, message):
    values = _plan_values()
    values.update(change)
    with pytest.raises(ConfigError, match=message):
        load_plan(_write(tmp_path, values))


def test_missing_plan_file_named(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_plan(tmp_path / "absent.yaml")


def test_primary_size_matches_statsmodels():
    plan = load_plan()
    summary = summarise_plan(plan)
    revenue = plan.baselines.metrics["revenue_per_session"]
    sd = ratio_sd(
        revenue.numerator_mean,
        revenue.denominator_mean,
        revenue.numerator_var,
        revenue.denominator_var,
        revenue.covariance,
    )
    effect_size = plan.design.mde_relative * revenue.ratio / sd
    expected = NormalIndPower().solve_power(effect_size, alpha=plan.alpha, power=plan.power)
    assert summary.n_control == math.ceil(expected) or summary.n_control == math.ceil(
        expected - 1e-6
    )
    assert summary.weeks >= 1
    assert summary.weeks == math.ceil(math.ceil(summary.n_total / summary.users_per_day) / 7)


def test_proportion_guardrail_size_matches_statsmodels():
    plan = load_plan()
    summary = summarise_plan(plan)
    row = next(row for row in summary.guardrail_rows if row.metric == "conversion")
    rate = plan.baselines.metrics["conversion"].rate
    effect_size = abs(proportion_effectsize(rate * 0.95, rate))
    expected = NormalIndPower().solve_power(
        effect_size, alpha=plan.alpha, power=plan.power, alternative="larger"
    )
    assert row.n_control == pytest.approx(expected, abs=1.0)


def test_duration_design_gives_mde():
    values = _plan_values()
    values["design"] = {"duration_weeks": 2}
    summary = summarise_plan(PilotPlan.model_validate(values))
    assert summary.weeks == 2
    assert summary.n_control == math.floor(14 * 8_000 * 0.5)
    # At the MDE reachable in two weeks the planned arm size is exactly the required one.
    values["design"] = {"mde_relative": summary.mde_at_weeks}
    check = summarise_plan(PilotPlan.model_validate(values))
    assert check.n_control == pytest.approx(summary.n_control, abs=1)


def test_cuped_shrinks_sample():
    values = _plan_values()
    plain = summarise_plan(PilotPlan.model_validate(values))
    values["cuped"] = {"enabled": True, "correlation": 0.5}
    reduced = summarise_plan(PilotPlan.model_validate(values))
    assert reduced.n_control == pytest.approx(plain.n_control * 0.75, rel=1e-3)


def test_longer_window_gives_smaller_mde():
    values = _plan_values()
    mdes = []
    for weeks in (1, 2, 4):
        values["design"] = {"duration_weeks": weeks}
        mdes.append(summarise_plan(PilotPlan.model_validate(values)).mde_at_weeks)
    assert mdes[0] > mdes[1] > mdes[2]
    assert mdes[0] / mdes[2] == pytest.approx(2.0, rel=1e-3)


def test_plan_command_prints_tables(tmp_path, capsys):
    png = tmp_path / "curve.png"
    assert main(["plan", "--png", str(png)]) == 0
    output = capsys.readouterr().out
    assert "Sample size for MDE +5.0%" in output
    assert "whole week(s)" in output
    assert "MDE reachable in" in output
    for lift in ("+1.0%", "+2.0%", "+5.0%"):
        assert f"| revenue_per_session | delta-method z | {lift} |" in output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(png) in output


def test_plan_command_reports_invalid_plan(tmp_path, capsys):
    values = _plan_values()
    values["alpah"] = 0.05
    assert main(["plan", "--plan", str(_write(tmp_path, values))]) == 2
    assert "alpah" in capsys.readouterr().err


def test_variant_shares_error_short(tmp_path):
    values = _plan_values()
    values["variants"] = {"control": 0.5, "treatment": 0.6}
    with pytest.raises(ConfigError) as caught:
        load_plan(_write(tmp_path, values))
    message = str(caught.value)
    assert "variants: weights must sum to 1, got [0.5, 0.6] (sum 1.1)" in message
    assert "baselines" not in message
    assert len(message) < 300


def test_long_plan_value_shortened(tmp_path):
    values = _plan_values()
    values["name"] = ["x" * 1000]
    with pytest.raises(ConfigError) as caught:
        load_plan(_write(tmp_path, values))
    message = str(caught.value)
    assert "name: Input should be a valid string (got ['xxx" in message
    assert message.endswith("...)")
    assert len(message) < 400
