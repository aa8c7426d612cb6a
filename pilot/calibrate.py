"""Operating characteristics of the primary test, measured on many simulated pilots."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import polars as pl
from tqdm import tqdm

from pilot.history import baselines_from_totals
from pilot.plan import PilotPlan
from pilot.simulate import simulate_assignment_counts, simulate_totals
from pilot.sizing import summarise_plan
from pilot.stats import ratio_effect_arrays, srm_test_arrays

CHUNK = 50


@dataclass(frozen=True)
class Calibration:
    """Measured rates with their binomial standard errors ``sqrt(r (1 - r) / runs)``."""

    runs: int
    aa_users_per_arm: int
    false_positive_rate: float
    power_lift: float
    power_users_per_arm: int
    planned_power: float
    measured_power: float
    srm_loss: float
    srm_detection_rate: float

    def lines(self, alpha: float) -> list[str]:
        """Return the rates as printable lines."""

        def se(rate: float) -> float:
            return math.sqrt(rate * (1 - rate) / self.runs)

        return [
            f"A/A: {self.runs} runs x {self.aa_users_per_arm:,} users per arm, false-positive "
            f"rate {self.false_positive_rate:.3f} (alpha {alpha:g}, binomial SE {se(alpha):.3f})",
            f"Power: {self.runs} runs x {self.power_users_per_arm:,} users per arm (planned for "
            f"+{self.power_lift:.0%}), measured {self.measured_power:.3f} against planned "
            f"{self.planned_power:.2f} (binomial SE {se(self.planned_power):.3f})",
            f"SRM: {self.srm_loss:.0%} of treatment users lost, detected in "
            f"{self.srm_detection_rate:.1%} of {self.runs} runs",
        ]


def _p_values(n_users: int, runs: int, effect: float, alpha: float, seed: int, progress: bool):
    values = []
    for start in tqdm(range(0, runs, CHUNK), disable=not progress, desc="simulated runs"):
        size = min(CHUNK, runs - start)
        control = simulate_totals(n_users, size, seed=seed + 2 * start)
        treatment = simulate_totals(n_users, size, effect=effect, seed=seed + 2 * start + 1)
        result = ratio_effect_arrays(
            control["revenue"],
            control["sessions"],
            treatment["revenue"],
            treatment["sessions"],
            alpha,
        )
        values.append(result["p_value"])
    return np.concatenate(values)


def calibrate(
    plan: PilotPlan,
    runs: int = 400,
    aa_users: int = 2_000,
    lift: float = 0.2,
    srm_loss: float = 0.05,
    seed: int = 0,
    show_progress: bool = True,
) -> Calibration:
    """Measure the A/A false-positive rate, the power at the planned size and SRM detection.

    Baselines come from one simulated history of 1,000,000 users, the sample size from the plan's
    alpha and power for a `lift` of revenue per session, and each rate from `runs` pilots.
    """
    history = simulate_totals(1_000_000, 1, seed=seed)
    totals = pl.DataFrame({name: values[0] for name, values in history.items()})
    values = plan.model_dump(mode="json")
    values["baselines"] = baselines_from_totals(totals, "simulated").model_dump(mode="json")
    values["design"] = {"mde_relative": lift}
    sized = summarise_plan(PilotPlan.model_validate(values))

    aa = _p_values(aa_users, runs, 0.0, plan.alpha, seed + 1_000, show_progress)
    ab = _p_values(sized.n_control, runs, lift, plan.alpha, seed + 5_000, show_progress)
    shares = tuple(plan.variants[name] for name in (plan.control, plan.treatment))
    counts = simulate_assignment_counts(2 * sized.n_control, runs, shares, srm_loss, seed + 9)
    return Calibration(
        runs=runs,
        aa_users_per_arm=aa_users,
        false_positive_rate=float((aa < plan.alpha).mean()),
        power_lift=lift,
        power_users_per_arm=sized.n_control,
        planned_power=plan.power,
        measured_power=float((ab < plan.alpha).mean()),
        srm_loss=srm_loss,
        srm_detection_rate=float((srm_test_arrays(counts, shares) < plan.srm.alpha).mean()),
    )
