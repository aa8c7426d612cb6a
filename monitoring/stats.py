"""Effect sizes and tests used by the drift checks (NumPy and SciPy only).

Each function takes plain arrays or counts and returns floats, so the checks can be verified
against hand-computed values and against SciPy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats

PSI_EPSILON = 1e-4
"""Floor of a category's share in PSI, so an empty category gives a finite term."""

MIN_STD = 1e-3
"""Floor of the reference standard deviation that normalises the Wasserstein distance."""


def psi(reference_counts: Sequence[float], current_counts: Sequence[float]) -> float:
    """Compute the population stability index of two aligned category counts.

    PSI = sum_i (c_i - r_i) * ln(c_i / r_i), where r_i and c_i are the shares of category i
    in the reference and current counts, each floored at `PSI_EPSILON`. Unitless, >= 0;
    below 0.1 is usually read as stable and above 0.25 as a major shift.

    Raises
    ------
    ValueError
        If the two count vectors differ in length or either sums to zero.
    """
    reference = np.asarray(reference_counts, dtype=float)
    current = np.asarray(current_counts, dtype=float)
    if reference.shape != current.shape:
        raise ValueError(
            f"PSI needs aligned counts: got {reference.size} reference and {current.size} "
            "current categories"
        )
    if reference.sum() <= 0 or current.sum() <= 0:
        raise ValueError("PSI needs at least one observation on each side")

    reference_share = np.clip(reference / reference.sum(), PSI_EPSILON, None)
    current_share = np.clip(current / current.sum(), PSI_EPSILON, None)
    return float(
        np.sum((current_share - reference_share) * np.log(current_share / reference_share))
    )


def chi_square_p_value(reference_counts: Sequence[float], current_counts: Sequence[float]) -> float:
    """Return the p-value of Pearson's chi-square test of homogeneity on a 2 x k table.

    Categories empty on both sides are removed first; with fewer than two categories left
    the samples cannot differ and the p-value is 1.
    """
    table = np.vstack([np.asarray(reference_counts, float), np.asarray(current_counts, float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2:
        return 1.0
    return float(stats.chi2_contingency(table, correction=False).pvalue)


def normed_wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """Compute the Wasserstein-1 distance divided by the reference standard deviation.

    W1 = integral |F_ref(x) - F_cur(x)| dx, in the unit of the values; dividing by
    max(std(reference), `MIN_STD`) makes it unitless, so 0.1 means the distributions are a
    tenth of a reference standard deviation apart (the measure Evidently calls
    `wasserstein`).
    """
    distance = stats.wasserstein_distance(reference, current)
    return float(distance / max(float(np.std(reference)), MIN_STD))


def ks_p_value(reference: np.ndarray, current: np.ndarray) -> float:
    """Return the p-value of the two-sample Kolmogorov-Smirnov test (conservative on ties)."""
    return float(stats.ks_2samp(reference, current).pvalue)


def two_proportion_p_value(
    reference_hits: int, reference_total: int, current_hits: int, current_total: int
) -> float:
    """Return the two-sided p-value of the pooled two-proportion z-test.

    z = (p_c - p_r) / sqrt(p (1 - p) (1/n_r + 1/n_c)), with p the pooled share. When both
    shares are 0 or both are 1 the samples agree and the p-value is 1.
    """
    pooled = (reference_hits + current_hits) / (reference_total + current_total)
    variance = pooled * (1 - pooled) * (1 / reference_total + 1 / current_total)
    if variance <= 0:
        return 1.0
    z = (current_hits / current_total - reference_hits / reference_total) / np.sqrt(variance)
    return float(2 * stats.norm.sf(abs(z)))


def binomial_greater_p_value(hits: int, total: int, expected_share: float) -> float:
    """Return the exact one-sided binomial p-value of observing >= `hits` of `total`."""
    share = min(max(expected_share, 0.0), 1.0)
    return float(stats.binomtest(hits, total, share, alternative="greater").pvalue)


def good_turing_missing_mass(counts: np.ndarray) -> float:
    """Estimate the probability mass of items never seen in a sample (Good-Turing).

    P0 = N1 / N, with N1 the number of items seen exactly once and N the sample size. Under
    an unchanged distribution, this is the expected share of later interactions that fall
    on items absent from the sample.
    """
    counts = np.asarray(counts)
    total = counts.sum()
    if total == 0:
        return 0.0
    return float(np.count_nonzero(counts == 1) / total)


def expected_distinct(shares: np.ndarray, draws: int) -> float:
    """Return the expected number of distinct items in `draws` independent draws.

    E[distinct] = sum_i 1 - (1 - p_i)^n for item shares p_i and n draws.
    """
    shares = np.asarray(shares, dtype=float)
    return float(np.sum(-np.expm1(draws * np.log1p(-np.clip(shares, 0.0, 1.0 - 1e-15)))))
