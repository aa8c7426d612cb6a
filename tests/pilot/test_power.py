"""Power and sample-size formulas checked against statsmodels and against simulation."""

from __future__ import annotations

import numpy as np
import pytest
from statsmodels.stats.power import NormalIndPower, zt_ind_solve_power
from statsmodels.stats.proportion import proportion_effectsize

from bookrecs.exceptions import ConfigError
from pilot.power import (
    cuped_variance_factor,
    proportion_effect_size,
    ratio_sd,
    solve_effect_size,
    solve_n_control,
    z_power,
)
from pilot.stats import ratio_of_sums


@pytest.mark.parametrize("ratio", [1.0, 2.0, 0.25])
@pytest.mark.parametrize("effect_size", [0.02, 0.1, 0.35])
def test_power_matches_statsmodels(effect_size, ratio):
    for n_control in (100, 2_500, 40_000):
        expected = NormalIndPower().power(effect_size, n_control, 0.05, ratio=ratio)
        assert z_power(effect_size, n_control, 0.05, ratio) == pytest.approx(expected, rel=1e-9)


def test_one_sided_power_matches_statsmodels():
    expected = NormalIndPower().power(0.05, 3_000, 0.05, ratio=1.0, alternative="larger")
    assert z_power(0.05, 3_000, 0.05, 1.0, "larger") == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("ratio", [1.0, 3.0])
@pytest.mark.parametrize("effect_size", [0.01, 0.05, 0.2])
def test_sample_size_matches_statsmodels(effect_size, ratio):
    expected = zt_ind_solve_power(effect_size=effect_size, alpha=0.05, power=0.8, ratio=ratio)
    assert solve_n_control(effect_size, 0.8, 0.05, ratio) == pytest.approx(expected, rel=1e-6)


def test_effect_size_matches_statsmodels():
    solved = solve_effect_size(12_000, 0.9, 0.05)
    expected = zt_ind_solve_power(nobs1=12_000, alpha=0.05, power=0.9, ratio=1.0)
    # statsmodels stops its root search earlier (power 0.900026 at its result).
    assert solved == pytest.approx(expected, rel=1e-4)
    assert NormalIndPower().power(solved, 12_000, 0.05) == pytest.approx(0.9, abs=1e-9)


def test_proportion_sample_size_matches_statsmodels():
    h = proportion_effect_size(0.105, 0.10)
    assert h == pytest.approx(proportion_effectsize(0.105, 0.10), rel=1e-12)
    expected = NormalIndPower().solve_power(h, alpha=0.05, power=0.8, ratio=1.0)
    assert solve_n_control(h, 0.8, 0.05) == pytest.approx(expected, rel=1e-6)


def test_ratio_sd_matches_simulation():
    rng = np.random.default_rng(7)
    runs, users = 2_000, 400
    sessions = 1 + rng.poisson(1.5, size=(runs, users))
    revenue = rng.gamma(0.3, 10.0, size=(runs, users)) * sessions
    estimates, _ = ratio_of_sums(revenue, sessions)

    pooled_x = revenue.ravel()
    pooled_y = sessions.ravel()
    sd = ratio_sd(
        pooled_x.mean(),
        pooled_y.mean(),
        pooled_x.var(ddof=1),
        pooled_y.var(ddof=1),
        np.cov(pooled_x, pooled_y)[0, 1],
    )
    # The SD of the ratio over runs estimates sd / sqrt(users); its own relative SE is about
    # 1 / sqrt(2 * runs) = 1.6 %, so 6 % is a loose bound.
    assert estimates.std(ddof=1) == pytest.approx(sd / np.sqrt(users), rel=0.06)


def test_cuped_factor():
    assert cuped_variance_factor(0.0) == 1.0
    assert cuped_variance_factor(0.6) == pytest.approx(0.64)
    with pytest.raises(ConfigError, match="correlation"):
        cuped_variance_factor(1.0)


def test_invalid_power_rejected():
    with pytest.raises(ConfigError, match="power"):
        solve_n_control(0.1, 1.2, 0.05)
    with pytest.raises(ConfigError, match="effect size"):
        solve_n_control(0.0, 0.8, 0.05)
    with pytest.raises(ConfigError, match="alpha"):
        z_power(0.1, 100, 0.0)
