"""Power and sample size of two-sample z-tests (normal approximation).

All functions follow the conventions of `statsmodels.stats.power.NormalIndPower`: the effect
size is the standardised difference ``d = (mu_treatment - mu_control) / sigma``, `n_control`
is the size of the first sample and ``ratio = n_treatment / n_control``. With
``n_eff = 1 / (1 / n_control + 1 / n_treatment)`` the two-sided power is

    power = Phi(d * sqrt(n_eff) - z_{1 - alpha/2}) + Phi(-d * sqrt(n_eff) - z_{1 - alpha/2})

and the one-sided ("larger") power is ``Phi(d * sqrt(n_eff) - z_{1 - alpha})``.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, stats

from bookrecs.exceptions import ConfigError

Alternative = Literal["two-sided", "larger"]


def z_power(
    effect_size: ArrayLike,
    n_control: ArrayLike,
    alpha: float,
    ratio: float = 1.0,
    alternative: Alternative = "two-sided",
) -> np.ndarray:
    """Return the power of a two-sample z-test, vectorised over effect size and sample size.

    Parameters
    ----------
    effect_size : array_like
        Standardised difference d (unitless).
    n_control : array_like
        Users in the control arm.
    alpha : float
        Significance level.
    ratio : float
        ``n_treatment / n_control``.
    alternative : {"two-sided", "larger"}
        Two-sided test, or the one-sided test of ``d > 0``.
    """
    _check_alpha(alpha)
    d = np.asarray(effect_size, dtype=float)
    n_control = np.asarray(n_control, dtype=float)
    n_effective = 1.0 / (1.0 / n_control + 1.0 / (n_control * ratio))
    shift = d * np.sqrt(n_effective)
    if alternative == "two-sided":
        critical = stats.norm.isf(alpha / 2)
        return stats.norm.sf(critical - shift) + stats.norm.cdf(-critical - shift)
    if alternative == "larger":
        return stats.norm.sf(stats.norm.isf(alpha) - shift)
    raise ConfigError(f"alternative must be 'two-sided' or 'larger', got {alternative!r}")


def solve_n_control(
    effect_size: float,
    power: float,
    alpha: float,
    ratio: float = 1.0,
    alternative: Alternative = "two-sided",
) -> float:
    """Return the (fractional) control-arm size that reaches `power` for `effect_size`.

    Starts from the closed form ``n = (z_{1-a} + z_{power})^2 (1 + 1/ratio) / d^2`` and
    refines it with Brent's method so the opposite tail of a two-sided test is included.
    Round up to whole users before use.
    """
    _check_alpha(alpha)
    if not 0 < power < 1:
        raise ConfigError(f"power must be in (0, 1), got {power!r}")
    d = abs(float(effect_size))
    if d == 0 or not math.isfinite(d):
        raise ConfigError(f"effect size must be finite and non-zero, got {effect_size!r}")
    tail = alpha / 2 if alternative == "two-sided" else alpha
    closed_form = (stats.norm.isf(tail) + stats.norm.ppf(power)) ** 2 * (1 + 1 / ratio) / d**2

    def gap(n: float) -> float:
        return float(z_power(d, n, alpha, ratio, alternative)) - power

    low = max(closed_form / 4, 1e-9)
    high = closed_form * 4 + 1
    return float(optimize.brentq(gap, low, high, xtol=1e-10, rtol=1e-12))


def solve_effect_size(
    n_control: float,
    power: float,
    alpha: float,
    ratio: float = 1.0,
    alternative: Alternative = "two-sided",
) -> float:
    """Return the smallest standardised effect size detectable with `power`."""
    _check_alpha(alpha)
    if n_control <= 0:
        raise ConfigError(f"n_control must be positive, got {n_control!r}")
    tail = alpha / 2 if alternative == "two-sided" else alpha
    n_effective = 1.0 / (1.0 / n_control + 1.0 / (n_control * ratio))
    closed_form = (stats.norm.isf(tail) + stats.norm.ppf(power)) / math.sqrt(n_effective)

    def gap(d: float) -> float:
        return float(z_power(d, n_control, alpha, ratio, alternative)) - power

    return float(optimize.brentq(gap, closed_form / 4, closed_form * 4, xtol=1e-14))


def ratio_sd(
    numerator_mean: float,
    denominator_mean: float,
    numerator_var: float,
    denominator_var: float,
    covariance: float,
) -> float:
    """Return the per-user standard deviation of a ratio metric (delta method).

    For per-user sums X (numerator) and Y (denominator) with ``R = E[X] / E[Y]``, the ratio of
    sample means over n users has ``Var(R_hat) ~= s^2 / n`` where

        s^2 = (Var(X) - 2 R Cov(X, Y) + R^2 Var(Y)) / E[Y]^2.

    `s` is in the metric's unit (for example currency per session).
    """
    ratio = numerator_mean / denominator_mean
    variance = (numerator_var - 2 * ratio * covariance + ratio**2 * denominator_var) / (
        denominator_mean**2
    )
    if variance <= 0:
        raise ConfigError(
            f"ratio baseline gives a non-positive variance {variance:.4g}; check that "
            "numerator_var, denominator_var and covariance come from the same per-user sums"
        )
    return math.sqrt(variance)


def proportion_effect_size(rate_treatment: float, rate_control: float) -> float:
    """Return Cohen's h, ``2 asin(sqrt(p1)) - 2 asin(sqrt(p2))``, for a two-proportion test.

    This is `statsmodels.stats.proportion.proportion_effectsize`. With h the arcsine-transformed
    proportions have unit variance per observation, so h plugs into `z_power` unchanged.
    """
    for rate in (rate_treatment, rate_control):
        if not 0 <= rate <= 1:
            raise ConfigError(f"rates must be in [0, 1], got {rate!r}; lower the relative lift")
    return 2 * math.asin(math.sqrt(rate_treatment)) - 2 * math.asin(math.sqrt(rate_control))


def cuped_variance_factor(correlation: float) -> float:
    """Return the variance factor ``1 - rho^2`` of CUPED with a covariate of correlation rho."""
    if not 0 <= correlation < 1:
        raise ConfigError(f"CUPED correlation must be in [0, 1), got {correlation!r}")
    return 1.0 - correlation**2


def _check_alpha(alpha: float) -> None:
    if not 0 < alpha < 1:
        raise ConfigError(f"alpha must be in (0, 1), got {alpha!r}")
