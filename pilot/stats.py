"""Statistical tests of the readout: SRM, ratio and proportion effects, non-inferiority.

Ratio metrics use the delta method on per-user sums, so the user stays the unit of analysis.
Functions on arrays work along the last axis, so a batch of simulated runs is tested in one call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Effect:
    """Difference between treatment and control of one metric.

    Absolute values are in the metric's unit, and relative values are shares of the control value
    (0.02 means +2 %). Confidence intervals are two-sided at level ``1 - alpha``.
    """

    control: float
    treatment: float
    absolute: float
    absolute_ci: tuple[float, float]
    absolute_se: float
    relative: float
    relative_ci: tuple[float, float]
    relative_se: float
    p_value: float
    n_control: int
    n_treatment: int

    def to_dict(self) -> dict:
        """Return the fields as a plain dict for JSON."""
        return asdict(self)


@dataclass(frozen=True)
class NonInferiority:
    """One-sided test that the treatment is not worse than control by more than a margin."""

    metric: str
    margin: float
    margin_type: str
    higher_is_better: bool
    estimate: float
    bound: float
    p_value: float
    passed: bool

    def to_dict(self) -> dict:
        """Return the fields as a plain dict for JSON."""
        return asdict(self)


def ratio_of_sums(numerator: np.ndarray, denominator: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Return the ratio ``R = sum(X) / sum(Y)`` and its delta-method variance.

    ``Var(R) ~= (s_X^2 - 2 R s_XY + R^2 s_Y^2) / (n * mean(Y)^2)`` with sample (ddof=1)
    variances and covariance of the per-user sums X and Y over the last axis of length n.
    """
    x = np.asarray(numerator, dtype=float)
    y = np.asarray(denominator, dtype=float)
    n = x.shape[-1]
    # A zero denominator sum gives a NaN ratio and variance, which callers report as
    # insufficient data.
    with np.errstate(divide="ignore", invalid="ignore"):
        mean_x = x.mean(axis=-1)
        mean_y = y.mean(axis=-1)
        ratio = mean_x / mean_y
        dx = x - mean_x[..., None]
        dy = y - mean_y[..., None]
        var_x = (dx * dx).sum(axis=-1) / (n - 1)
        var_y = (dy * dy).sum(axis=-1) / (n - 1)
        cov_xy = (dx * dy).sum(axis=-1) / (n - 1)
        variance = (var_x - 2 * ratio * cov_xy + ratio**2 * var_y) / (n * mean_y**2)
    return ratio, np.maximum(variance, 0.0)


def ratio_effect_arrays(
    numerator_control: np.ndarray,
    denominator_control: np.ndarray,
    numerator_treatment: np.ndarray,
    denominator_treatment: np.ndarray,
    alpha: float,
) -> dict[str, np.ndarray]:
    """Test a ratio metric with the delta method, vectorised, returning arrays keyed like `Effect`.

    Absolute difference ``D = R_t - R_c`` with ``Var(D) = Var(R_t) + Var(R_c)``, and relative
    difference ``L = R_t / R_c - 1`` with ``Var(L) ~= Var(R_t) / R_c^2 + R_t^2 Var(R_c) / R_c^4``.
    The p-value is the two-sided z-test of ``D = 0``.
    """
    control, var_control = ratio_of_sums(numerator_control, denominator_control)
    treatment, var_treatment = ratio_of_sums(numerator_treatment, denominator_treatment)
    return _difference(control, var_control, treatment, var_treatment, alpha)


def _difference(control, var_control, treatment, var_treatment, alpha) -> dict[str, np.ndarray]:
    z = stats.norm.isf(alpha / 2)
    # A control value of zero leaves the relative difference undefined (NaN), not an error.
    with np.errstate(divide="ignore", invalid="ignore"):
        absolute = treatment - control
        absolute_se = np.sqrt(var_control + var_treatment)
        relative = treatment / control - 1
        relative_se = np.sqrt(var_treatment / control**2 + treatment**2 * var_control / control**4)
        p_value = 2 * stats.norm.sf(np.abs(absolute) / absolute_se)
    return {
        "control": control,
        "treatment": treatment,
        "absolute": absolute,
        "absolute_se": absolute_se,
        "absolute_low": absolute - z * absolute_se,
        "absolute_high": absolute + z * absolute_se,
        "relative": relative,
        "relative_se": relative_se,
        "relative_low": relative - z * relative_se,
        "relative_high": relative + z * relative_se,
        "p_value": p_value,
    }


def ratio_effect(
    numerator_control: np.ndarray,
    denominator_control: np.ndarray,
    numerator_treatment: np.ndarray,
    denominator_treatment: np.ndarray,
    alpha: float,
) -> Effect:
    """Estimate the delta-method effect of a ratio metric for one pilot (1-D per-user arrays)."""
    values = ratio_effect_arrays(
        numerator_control, denominator_control, numerator_treatment, denominator_treatment, alpha
    )
    return _to_effect(values, len(numerator_control), len(numerator_treatment))


def proportion_effect(
    successes_control: int,
    n_control: int,
    successes_treatment: int,
    n_treatment: int,
    alpha: float,
) -> Effect:
    """Test user-level shares with a two-proportion z-test.

    The p-value uses the pooled variance, as `statsmodels.stats.proportion.proportions_ztest`
    does. The confidence intervals use the unpooled variances ``p (1 - p) / n`` per arm.
    """
    p_control = successes_control / n_control
    p_treatment = successes_treatment / n_treatment
    values = _difference(
        np.float64(p_control),
        np.float64(p_control * (1 - p_control) / n_control),
        np.float64(p_treatment),
        np.float64(p_treatment * (1 - p_treatment) / n_treatment),
        alpha,
    )
    pooled = (successes_control + successes_treatment) / (n_control + n_treatment)
    pooled_se = np.sqrt(pooled * (1 - pooled) * (1 / n_control + 1 / n_treatment))
    if pooled_se > 0:
        values["p_value"] = 2 * stats.norm.sf(abs(p_treatment - p_control) / pooled_se)
    else:
        values["p_value"] = np.float64(1.0)
    return _to_effect(values, n_control, n_treatment)


def quantile_effect(
    control: np.ndarray, treatment: np.ndarray, quantile: float, alpha: float
) -> Effect:
    """Estimate the effect on a quantile (e.g. p95 latency) with distribution-free standard errors.

    Each arm's standard error is half the width of the order-statistic confidence interval,
    at ranks ``n q -/+ z sqrt(n q (1 - q))``, divided by z. The relative difference of the two
    quantiles then follows the same delta method as a ratio. An arm without values gives NaN
    estimates and standard errors, which the readout reports as insufficient data.
    """
    # NOTE: requests are treated as independent, but one user sends many, so with heavy users
    # this standard error is too small. A user-level bootstrap would account for that.
    values = []
    for sample in (np.sort(np.asarray(control, float)), np.sort(np.asarray(treatment, float))):
        n = sample.size
        if n == 0:
            values.append((np.nan, np.nan))
            continue
        z = stats.norm.isf(alpha / 2)
        half = z * np.sqrt(n * quantile * (1 - quantile))
        low = sample[max(int(np.floor(n * quantile - half)), 0)]
        high = sample[min(int(np.ceil(n * quantile + half)), n - 1)]
        estimate = np.quantile(sample, quantile)
        values.append((estimate, ((high - low) / (2 * z)) ** 2))
    (q_control, var_control), (q_treatment, var_treatment) = values
    result = _difference(
        np.float64(q_control),
        np.float64(var_control),
        np.float64(q_treatment),
        np.float64(var_treatment),
        alpha,
    )
    return _to_effect(result, len(control), len(treatment))


def _to_effect(values: Mapping[str, np.ndarray], n_control: int, n_treatment: int) -> Effect:
    return Effect(
        control=float(values["control"]),
        treatment=float(values["treatment"]),
        absolute=float(values["absolute"]),
        absolute_ci=(float(values["absolute_low"]), float(values["absolute_high"])),
        absolute_se=float(values["absolute_se"]),
        relative=float(values["relative"]),
        relative_ci=(float(values["relative_low"]), float(values["relative_high"])),
        relative_se=float(values["relative_se"]),
        p_value=float(values["p_value"]),
        n_control=int(n_control),
        n_treatment=int(n_treatment),
    )


def non_inferiority(
    metric: str,
    effect: Effect,
    margin: float,
    margin_type: str,
    higher_is_better: bool,
    alpha: float,
) -> NonInferiority:
    """Test with a one-sided z-test that the treatment is at most `margin` worse than control.

    With the difference ``D`` (relative or absolute, per `margin_type`) and its standard error,
    for a metric where higher is better the null hypothesis is ``D <= -margin`` and the test
    passes when the lower ``1 - alpha`` bound ``D - z_{1-alpha} SE`` is above ``-margin``. Where
    lower is better, the null is ``D >= margin`` and the upper bound must be below ``margin``.
    """
    if margin_type == "relative":
        estimate, se = effect.relative, effect.relative_se
    else:
        estimate, se = effect.absolute, effect.absolute_se
    z = stats.norm.isf(alpha)
    if higher_is_better:
        bound = estimate - z * se
        statistic = (estimate + margin) / se if se > 0 else np.inf
    else:
        bound = estimate + z * se
        statistic = (margin - estimate) / se if se > 0 else np.inf
    p_value = float(stats.norm.sf(statistic))
    return NonInferiority(
        metric=metric,
        margin=margin,
        margin_type=margin_type,
        higher_is_better=higher_is_better,
        estimate=float(estimate),
        bound=float(bound),
        p_value=p_value,
        passed=p_value < alpha,
    )


def degradation_beyond(
    effect: Effect,
    threshold: float,
    threshold_type: str,
    higher_is_better: bool,
    alpha: float,
) -> tuple[bool, float]:
    """Return whether the treatment is worse than `threshold` with one-sided confidence.

    The degradation is ``-D`` for a higher-is-better metric and ``D`` otherwise. It is beyond
    the threshold when its lower ``1 - alpha`` bound exceeds the threshold. Also returns the
    bound, in the threshold's scale.
    """
    if threshold_type == "relative":
        estimate, se = effect.relative, effect.relative_se
    else:
        estimate, se = effect.absolute, effect.absolute_se
    degradation = -estimate if higher_is_better else estimate
    bound = degradation - stats.norm.isf(alpha) * se
    return bool(bound > threshold), float(bound)


def srm_test(counts: Sequence[float], shares: Sequence[float]) -> tuple[float, float]:
    """Test assignment counts against planned shares with a chi-square goodness-of-fit test.

    Returns the statistic ``sum((O - E)^2 / E)`` with ``E = share * total`` and its p-value
    (``len(counts) - 1`` degrees of freedom).
    """
    observed = np.asarray(counts, dtype=float)
    expected = np.asarray(shares, dtype=float) * observed.sum()
    if observed.sum() == 0:
        return 0.0, 1.0
    result = stats.chisquare(observed, expected)
    return float(result.statistic), float(result.pvalue)


def srm_test_arrays(counts: np.ndarray, shares: Sequence[float]) -> np.ndarray:
    """Return SRM p-values of many runs at once, with the arms on the last axis of `counts`."""
    observed = np.asarray(counts, dtype=float)
    expected = np.asarray(shares, dtype=float) * observed.sum(axis=-1, keepdims=True)
    statistic = ((observed - expected) ** 2 / expected).sum(axis=-1)
    return stats.chi2.sf(statistic, observed.shape[-1] - 1)


def holm(p_values: Sequence[float], alpha: float) -> list[tuple[float, bool]]:
    """Adjust p-values with the Holm-Bonferroni step-down method: (adjusted p, rejected) each."""
    from statsmodels.stats.multitest import multipletests

    if len(p_values) == 0:
        return []
    rejected, adjusted, _, _ = multipletests(list(p_values), alpha=alpha, method="holm")
    return [(float(p), bool(r)) for p, r in zip(adjusted, rejected, strict=True)]
