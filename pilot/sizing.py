"""Sample size, duration and reachable MDE of a pilot plan, as tables and a power curve."""

from __future__ import annotations

import datetime as dt
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from bookrecs.exceptions import ConfigError
from pilot.metrics import METRICS
from pilot.plan import PilotPlan, RatioBaseline
from pilot.power import (
    cuped_variance_factor,
    proportion_effect_size,
    ratio_sd,
    solve_effect_size,
    solve_n_control,
    z_power,
)

logger = logging.getLogger("bookrecs.pilot")


@dataclass(frozen=True)
class SizeRow:
    """Users needed per arm to detect (or rule out) one effect, and the whole weeks it takes."""

    metric: str
    test: str
    effect: str
    n_control: int
    n_treatment: int
    weeks: int


@dataclass
class PlanSummary:
    """Everything `pilot plan` prints."""

    plan: PilotPlan
    users_per_day: float
    baseline_value: float
    sd_per_user: float | None
    variance_factor: float
    n_control: int
    n_treatment: int
    days_needed: int
    weeks: int
    mde_at_weeks: float
    mde_rows: list[SizeRow] = field(default_factory=list)
    secondary_rows: list[SizeRow] = field(default_factory=list)
    guardrail_rows: list[SizeRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def n_total(self) -> int:
        """Users in both arms."""
        return self.n_control + self.n_treatment

    @property
    def end_date(self) -> dt.date:
        """Last planned day: the plan's end_date, or start plus the planned whole weeks."""
        if self.plan.end_date is not None:
            return self.plan.end_date
        return self.plan.start_date + dt.timedelta(days=7 * self.weeks - 1)


class _Sizer:
    """Turns relative lifts of one metric into standardised effect sizes and arm sizes."""

    def __init__(self, plan: PilotPlan, metric: str, variance_factor: float):
        if plan.baselines is None or metric not in plan.baselines.metrics:
            raise ConfigError(
                f"no baseline for metric {metric!r}: add baselines.metrics.{metric} to the plan "
                "or pass --history with a historical event log"
            )
        self.plan = plan
        self.metric = metric
        self.baseline = plan.baselines.metrics[metric]
        self.share_control = plan.variants[plan.control]
        self.ratio = plan.variants[plan.treatment] / self.share_control
        if isinstance(self.baseline, RatioBaseline):
            if METRICS[metric].kind != "ratio":
                raise ConfigError(f"baseline of {metric!r} must be a rate, got ratio moments")
            self.value = self.baseline.ratio
            self.sd = ratio_sd(
                self.baseline.numerator_mean,
                self.baseline.denominator_mean,
                self.baseline.numerator_var,
                self.baseline.denominator_var,
                self.baseline.covariance,
            ) * math.sqrt(variance_factor)
            self.test = "delta-method z"
        else:
            if METRICS[metric].kind != "proportion":
                raise ConfigError(f"baseline of {metric!r} must be ratio moments, got a rate")
            self.value = self.baseline.rate
            self.sd = None
            self.test = "two-proportion z"

    def effect_size(self, lift: float) -> float:
        """Standardised effect of a relative lift (negative for a degradation)."""
        if self.sd is not None:
            return lift * self.value / self.sd
        return proportion_effect_size(self.value * (1 + lift), self.value)

    def arm_sizes(self, lift: float, one_sided: bool = False) -> tuple[int, int]:
        alternative = "larger" if one_sided else "two-sided"
        n_control = solve_n_control(
            abs(self.effect_size(lift)), self.plan.power, self.plan.alpha, self.ratio, alternative
        )
        n_control = math.ceil(n_control)
        return n_control, math.ceil(n_control * self.ratio)

    def lift_for(self, n_control: float) -> float:
        """Relative lift detectable with the plan's power at `n_control` users in control."""
        d = solve_effect_size(n_control, self.plan.power, self.plan.alpha, self.ratio)
        if self.sd is not None:
            return d * self.sd / self.value
        # Invert Cohen's h: p1 = sin^2(asin(sqrt(p0)) + h / 2).
        rate = math.sin(math.asin(math.sqrt(self.value)) + d / 2) ** 2
        return rate / self.value - 1


def users_per_day(plan: PilotPlan) -> float:
    """Return the new pilot users per day (all arms) implied by the plan's traffic block."""
    # NOTE: a constant rate is an estimate. Returning users make distinct users grow more
    # slowly than sessions, so long pilots enrol fewer users than this predicts.
    traffic = plan.traffic
    if traffic.daily_users is not None:
        return traffic.daily_users * traffic.share
    if plan.baselines is None:
        raise ConfigError(
            "traffic.daily_sessions needs baselines.sessions_per_user: add baselines to the "
            "plan or pass --history"
        )
    return traffic.daily_sessions * traffic.share / plan.baselines.sessions_per_user


def weeks_for(n_total: float, per_day: float) -> tuple[int, int]:
    """Return (days, whole weeks) needed to enrol `n_total` users; at least one full week."""
    days = max(1, math.ceil(n_total / per_day))
    return days, max(1, math.ceil(days / 7))


def summarise_plan(plan: PilotPlan) -> PlanSummary:
    """Compute sample sizes, duration and MDEs of a plan.

    The duration is the number of whole weeks needed to enrol the users of both arms at the
    plan's traffic, so every weekday is covered equally often.
    """
    variance_factor = cuped_variance_factor(plan.cuped.correlation) if plan.cuped.enabled else 1.0
    primary = _Sizer(plan, plan.primary, variance_factor)
    per_day = users_per_day(plan)
    notes = []
    if plan.cuped.enabled:
        notes.append(
            "CUPED sizes assume the readout gets a pre-period log (`readout --pre-period`); "
            "without one the pilot has less power than planned"
        )

    if plan.design.mde_relative is not None:
        n_control, n_treatment = primary.arm_sizes(plan.design.mde_relative)
        days, weeks = weeks_for(n_control + n_treatment, per_day)
    else:
        weeks = plan.design.duration_weeks
        days = 7 * weeks
        n_total = 7 * weeks * per_day
        n_control = math.floor(n_total * primary.share_control)
        n_treatment = math.floor(n_control * primary.ratio)
    enrolled_control = 7 * weeks * per_day * primary.share_control
    mde_at_weeks = primary.lift_for(enrolled_control)

    mde_rows = []
    for lift in plan.design.mde_table:
        n_c, n_t = primary.arm_sizes(lift)
        mde_rows.append(
            SizeRow(
                plan.primary,
                primary.test,
                f"+{lift:.1%}",
                n_c,
                n_t,
                weeks_for(n_c + n_t, per_day)[1],
            )
        )

    secondary_rows = []
    lift = plan.design.mde_relative or mde_at_weeks
    for name in plan.secondary:
        if plan.baselines is None or name not in plan.baselines.metrics:
            notes.append(f"secondary {name}: no baseline, sample size not computed")
            continue
        sizer = _Sizer(plan, name, variance_factor)
        n_c, n_t = sizer.arm_sizes(lift)
        secondary_rows.append(
            SizeRow(name, sizer.test, f"+{lift:.1%}", n_c, n_t, weeks_for(n_c + n_t, per_day)[1])
        )

    guardrail_rows = []
    for guardrail in plan.guardrails:
        spec = METRICS[guardrail.metric]
        if (
            spec.kind == "quantile"
            or plan.baselines is None
            or guardrail.metric not in plan.baselines.metrics
        ):
            notes.append(
                f"guardrail {guardrail.metric}: not powered (quantile metric or no baseline); "
                "checked against its margin only"
            )
            continue
        sizer = _Sizer(plan, guardrail.metric, variance_factor)
        relative = (
            guardrail.margin
            if guardrail.margin_type == "relative"
            else guardrail.margin / sizer.value
        )
        # The margin is a degradation: a drop for higher-is-better metrics, a rise otherwise.
        # Only Cohen's h for proportions depends on the direction.
        worse = -relative if spec.higher_is_better else relative
        n_c, n_t = sizer.arm_sizes(worse, one_sided=True)
        guardrail_rows.append(
            SizeRow(
                guardrail.metric,
                f"non-inferiority, one-sided {sizer.test}",
                _margin_text(guardrail.margin, guardrail.margin_type, spec.higher_is_better),
                n_c,
                n_t,
                weeks_for(n_c + n_t, per_day)[1],
            )
        )
        if n_c > n_control:
            notes.append(
                f"guardrail {guardrail.metric} needs {n_c} users per arm for {plan.power:.0%} "
                f"power at its margin, more than the {n_control} planned"
            )

    summary = PlanSummary(
        plan=plan,
        users_per_day=per_day,
        baseline_value=primary.value,
        sd_per_user=primary.sd,
        variance_factor=variance_factor,
        n_control=n_control,
        n_treatment=n_treatment,
        days_needed=days,
        weeks=weeks,
        mde_at_weeks=mde_at_weeks,
        mde_rows=mde_rows,
        secondary_rows=secondary_rows,
        guardrail_rows=guardrail_rows,
        notes=notes,
    )
    logger.info("plan %s: %d + %d users, %d weeks", plan.name, n_control, n_treatment, weeks)
    return summary


def _margin_text(margin: float, margin_type: str, higher_is_better: bool) -> str:
    sign = "-" if higher_is_better else "+"
    if margin_type == "relative":
        return f"{sign}{margin:.1%} relative"
    return f"{sign}{margin:g} absolute"


def format_summary(summary: PlanSummary) -> str:
    """Render the summary as plain text with Markdown tables."""
    plan = summary.plan
    lines = _header_lines(summary)

    if plan.design.mde_relative is not None:
        lines.append(
            f"Sample size for MDE +{plan.design.mde_relative:.1%}: {summary.n_control:,} "
            f"({plan.control}) + {summary.n_treatment:,} ({plan.treatment}) = "
            f"{summary.n_total:,} users"
        )
        lines.append(
            f"Duration: {summary.days_needed} days of traffic -> {summary.weeks} whole week(s) "
            f"({plan.start_date} to {summary.end_date})"
        )
    else:
        lines.append(
            f"Duration (fixed): {summary.weeks} week(s) ({plan.start_date} to {summary.end_date}), "
            f"{summary.n_control:,} + {summary.n_treatment:,} users"
        )
    lines.append(
        f"MDE reachable in {summary.weeks} week(s): +{summary.mde_at_weeks:.2%} of {plan.primary}"
    )

    lines += ["", "Primary metric, users per arm by MDE:", ""]
    lines += _table(summary.mde_rows)
    if summary.secondary_rows:
        lines += ["", "Secondary metrics at the same relative lift:", ""]
        lines += _table(summary.secondary_rows)
    if summary.guardrail_rows:
        lines += ["", f"Guardrails, users per arm for {plan.power:.0%} power at the margin:", ""]
        lines += _table(summary.guardrail_rows)
    if summary.notes:
        lines += ["", "Notes:"] + [f"- {note}" for note in summary.notes]
    return "\n".join(lines)


def _header_lines(summary: PlanSummary) -> list[str]:
    plan = summary.plan
    primary = METRICS[plan.primary]
    baseline = f"baseline {summary.baseline_value:.4g}"
    if summary.sd_per_user is not None:
        baseline += f", per-user SD {summary.sd_per_user:.4g} (delta method)"
    cuped = "off"
    if plan.cuped.enabled:
        cuped = (
            f"on, correlation {plan.cuped.correlation:g}, variance x{summary.variance_factor:.3f}"
        )
    return [
        f"Pilot plan: {plan.name} (salt {plan.salt!r})",
        f"Variants: {plan.control} (control) {plan.variants[plan.control]:.0%}, "
        f"{plan.treatment} {plan.variants[plan.treatment]:.0%}; "
        f"alpha {plan.alpha:g} two-sided, power {plan.power:.0%}",
        f"Baselines from: {plan.baselines.source if plan.baselines else 'none'}",
        f"Primary metric: {plan.primary} ({primary.unit}), {baseline}",
        f"CUPED: {cuped}",
        f"Traffic: {summary.users_per_day:,.0f} new pilot users per day",
        "",
    ]


def _table(rows: list[SizeRow]) -> list[str]:
    lines = [
        "| metric | test | effect | users control | users treatment | weeks |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.metric} | {row.test} | {row.effect} | {row.n_control:,} | "
            f"{row.n_treatment:,} | {row.weeks} |"
        )
    return lines


def plot_power_curve(summary: PlanSummary, path: str | Path) -> Path:
    """Write a PNG of power against relative lift of the primary metric for several durations."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    plan = summary.plan
    variance_factor = summary.variance_factor
    primary = _Sizer(plan, plan.primary, variance_factor)
    top = max(max(plan.design.mde_table), 2 * summary.mde_at_weeks)
    lifts = np.linspace(0, top, 200)
    effect_sizes = np.array([primary.effect_size(lift) for lift in lifts])
    durations = sorted({1, summary.weeks, 2 * summary.weeks})

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for weeks in durations:
        n_control = 7 * weeks * summary.users_per_day * primary.share_control
        power = z_power(effect_sizes, n_control, plan.alpha, primary.ratio)
        axis.plot(
            lifts * 100, power, label=f"{weeks} week(s), {n_control:,.0f} users per control arm"
        )
    axis.axhline(plan.power, color="grey", linestyle="--", linewidth=1)
    if plan.design.mde_relative is not None:
        axis.axvline(plan.design.mde_relative * 100, color="grey", linestyle=":", linewidth=1)
    axis.set_xlabel(f"relative lift of {plan.primary} (%)")
    axis.set_ylabel("power")
    axis.set_ylim(0, 1.02)
    axis.set_title(f"{plan.name}: power at alpha {plan.alpha:g} (two-sided)")
    axis.legend(loc="lower right", fontsize=8)
    axis.grid(alpha=0.3)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
