"""Effect sizes and tests against hand-computed values, SciPy and statsmodels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportions_ztest

from monitoring import stats


def test_psi_known_value():
    # Shares 0.5/0.5 against 0.25/0.75.
    expected = (0.25 - 0.5) * math.log(0.25 / 0.5) + (0.75 - 0.5) * math.log(0.75 / 0.5)
    assert stats.psi([50, 50], [25, 75]) == pytest.approx(expected)


def test_psi_identical_is_zero():
    assert stats.psi([10, 20, 30], [1, 2, 3]) == pytest.approx(0.0)


def test_psi_empty_category_is_finite():
    assert math.isfinite(stats.psi([10, 0], [5, 5]))


def test_psi_rejects_misaligned_counts():
    with pytest.raises(ValueError, match="aligned"):
        stats.psi([1, 2], [1, 2, 3])


def test_chi_square_matches_scipy():
    reference, current = [30, 50, 20], [10, 30, 40]
    expected = scipy_stats.chi2_contingency([reference, current], correction=False).pvalue
    assert stats.chi_square_p_value(reference, current) == pytest.approx(expected)


def test_chi_square_single_category():
    assert stats.chi_square_p_value([10, 0], [5, 0]) == 1.0


def test_normed_wasserstein_shift():
    reference = np.array([0.0, 2.0])
    # A shift by 1 moves every quantile by 1; the reference std is 1.
    assert stats.normed_wasserstein(reference, reference + 1) == pytest.approx(1.0)


def test_two_proportion_matches_statsmodels():
    _, expected = proportions_ztest([40, 70], [100, 120])
    assert stats.two_proportion_p_value(40, 100, 70, 120) == pytest.approx(expected)


def test_two_proportion_constant_shares():
    assert stats.two_proportion_p_value(0, 10, 0, 20) == 1.0


def test_binomial_matches_scipy():
    expected = scipy_stats.binomtest(12, 50, 0.1, alternative="greater").pvalue
    assert stats.binomial_greater_p_value(12, 50, 0.1) == pytest.approx(expected)


def test_good_turing_missing_mass():
    # Two singletons among 6 observations.
    assert stats.good_turing_missing_mass(np.array([1, 1, 4])) == pytest.approx(2 / 6)


def test_expected_distinct_two_items():
    shares = np.array([0.5, 0.5])
    assert stats.expected_distinct(shares, 1) == pytest.approx(1.0)
    assert stats.expected_distinct(shares, 2) == pytest.approx(1.5)
