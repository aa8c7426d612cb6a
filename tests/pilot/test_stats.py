"""Readout statistics on tiny inputs with known results and against scipy and statsmodels."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.proportion import proportions_ztest

from pilot.stats import (
    Effect,
    degradation_beyond,
    holm,
    non_inferiority,
    proportion_effect,
    quantile_effect,
    ratio_effect,
    ratio_effect_arrays,
    ratio_of_sums,
    srm_test,
    srm_test_arrays,
)


def test_ratio_of_sums_known_value():
    revenue = np.array([0.0, 10.0, 5.0, 0.0])
    sessions = np.array([1.0, 2.0, 1.0, 4.0])
    ratio, variance = ratio_of_sums(revenue, sessions)
    assert ratio == pytest.approx(15 / 8)
    # s_x^2 = 68.75 / 3, s_y^2 = 2, s_xy = -5 / 3, mean_y = 2, R = 1.875, n = 4.
    expected = (68.75 / 3 - 2 * 1.875 * (-5 / 3) + 1.875**2 * 2.0) / (4 * 2.0**2)
    assert variance == pytest.approx(expected, rel=1e-5)


def test_ratio_effect_vectorised_matches_single():
    rng = np.random.default_rng(3)
    x_c, y_c = rng.gamma(1, 2, (3, 50)), 1 + rng.poisson(1, (3, 50))
    x_t, y_t = rng.gamma(1, 2, (3, 60)), 1 + rng.poisson(1, (3, 60))

    batch = ratio_effect_arrays(x_c, y_c, x_t, y_t, 0.05)
    for run in range(3):
        single = ratio_effect(x_c[run], y_c[run], x_t[run], y_t[run], 0.05)
        assert batch["p_value"][run] == pytest.approx(single.p_value)
        assert batch["relative"][run] == pytest.approx(single.relative)


def test_ratio_effect_equal_sessions_is_welch():
    # With one session per user the ratio is a mean and the delta method is the z-test.
    rng = np.random.default_rng(5)
    control, treatment = rng.normal(10, 3, 4_000), rng.normal(10.2, 3, 4_000)
    ones = np.ones(4_000)
    effect = ratio_effect(control, ones, treatment, ones, 0.05)
    welch = stats.ttest_ind(treatment, control, equal_var=False)
    assert effect.p_value == pytest.approx(welch.pvalue, rel=1e-2)
    assert effect.absolute == pytest.approx(treatment.mean() - control.mean())


def test_proportion_effect_matches_statsmodels():
    effect = proportion_effect(480, 5_000, 540, 5_100, 0.05)
    _, expected = proportions_ztest([540, 480], [5_100, 5_000])
    assert effect.p_value == pytest.approx(expected, rel=1e-9)
    assert effect.absolute == pytest.approx(540 / 5_100 - 480 / 5_000)


def test_srm_matches_scipy():
    statistic, p_value = srm_test([5_000, 5_200], [0.5, 0.5])
    expected = stats.chisquare([5_000, 5_200])
    assert statistic == pytest.approx(expected.statistic)
    assert p_value == pytest.approx(expected.pvalue)
    batch = srm_test_arrays(np.array([[5_000, 5_200], [5_100, 5_100]]), [0.5, 0.5])
    assert batch[0] == pytest.approx(expected.pvalue)
    assert batch[1] == pytest.approx(1.0)


def _effect(relative: float, relative_se: float) -> Effect:
    return Effect(
        1.0,
        1 + relative,
        relative,
        (0, 0),
        relative_se,
        relative,
        (0, 0),
        relative_se,
        0.5,
        100,
        100,
    )


@pytest.mark.parametrize(
    ("relative", "se", "higher_is_better", "passed"),
    [
        (0.0, 0.01, True, True),  # bound -1.6 % above -5 %
        (-0.04, 0.01, True, False),  # bound -5.6 % below -5 %
        (0.0, 0.01, False, True),  # bound +1.6 % below +5 %
        (0.04, 0.01, False, False),
    ],
)
def test_non_inferiority_cases(relative, se, higher_is_better, passed):
    result = non_inferiority(
        "metric", _effect(relative, se), 0.05, "relative", higher_is_better, 0.05
    )
    assert result.passed is passed
    assert (result.p_value < 0.05) is passed


def test_degradation_beyond_threshold():
    triggered, bound = degradation_beyond(_effect(0.40, 0.05), 0.25, "relative", False, 0.01)
    assert triggered
    assert bound == pytest.approx(0.40 - stats.norm.isf(0.01) * 0.05)
    calm, _ = degradation_beyond(_effect(0.30, 0.05), 0.25, "relative", False, 0.01)
    assert not calm


def test_quantile_effect_detects_shift():
    rng = np.random.default_rng(11)
    control = rng.lognormal(np.log(45), 0.35, 20_000)
    slower = control * 1.3
    effect = quantile_effect(control, slower, 0.95, 0.05)
    assert effect.relative == pytest.approx(0.3, abs=1e-9)
    same = quantile_effect(control, rng.lognormal(np.log(45), 0.35, 20_000), 0.95, 0.05)
    assert same.relative_ci[0] < 0 < same.relative_ci[1]


def test_holm_known_values():
    adjusted = holm([0.01, 0.04, 0.03], 0.05)
    assert [round(p, 6) for p, _ in adjusted] == [0.03, 0.06, 0.06]
    assert [rejected for _, rejected in adjusted] == [True, False, False]


def test_quantile_effect_empty_arm():
    effect = quantile_effect(np.array([]), np.array([40.0, 50.0, 60.0]), 0.95, 0.05)
    assert np.isnan(effect.control)
    assert np.isnan(effect.absolute_se)
    assert effect.n_control == 0
    assert effect.n_treatment == 3
