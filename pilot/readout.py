"""Pilot readout: data checks, SRM, effects, guardrails, rollback and the decision.

Multiple-testing policy, stated in every report:

* one primary metric decides at level alpha (two-sided), so it needs no correction;
* every guardrail must pass its one-sided non-inferiority test at alpha. Requiring all of them
  to pass is an intersection-union test, which keeps the error rate at alpha unadjusted;
* secondary metrics are reported with Holm-adjusted p-values and never drive the decision;
* rollback criteria are checked on cumulative data every day at the stricter `rollback.alpha`,
  because repeated daily looks inflate the false-alarm rate.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from pilot.checks import CheckReport, run_checks
from pilot.cuped import adjust_totals, read_pre_period
from pilot.events import merge_impressions, read_events, read_impressions
from pilot.metrics import METRICS, MetricSpec
from pilot.plan import PilotPlan
from pilot.sizing import summarise_plan
from pilot.stats import (
    Effect,
    degradation_beyond,
    holm,
    non_inferiority,
    proportion_effect,
    quantile_effect,
    ratio_effect,
    srm_test,
)
from pilot.totals import user_totals

logger = logging.getLogger("bookrecs.pilot")

SHIP = "ship"
KEEP_RUNNING = "keep running"
DO_NOT_SHIP = "do not ship"
ROLL_BACK = "roll back"


@dataclass
class Readout:
    """Result of a readout; `to_dict` is the JSON report."""

    plan_name: str
    alpha: float
    as_of: str
    status: str
    decision: str
    reasons: list[str]
    checks: CheckReport
    users: dict[str, int]
    planned_users: dict[str, int]
    planned_days: int
    days_observed: int
    srm: dict
    primary: dict | None
    secondary: list[dict] = field(default_factory=list)
    guardrails: list[dict] = field(default_factory=list)
    rollback: list[dict] = field(default_factory=list)
    attribution: str = ""
    cuped: str = "off"
    policy: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        """Return the fields as a plain dict for JSON."""
        values = asdict(self)
        values["checks"] = asdict(self.checks)
        return values


def load_events(
    events_paths: list[str | Path], impressions_path: str | Path | None
) -> tuple[pl.DataFrame, CheckReport]:
    """Read the event logs and, when given, replace their exposures with the impression log."""
    events = read_events(events_paths)
    report = CheckReport()
    if impressions_path is not None:
        events, report.exposure_rows_replaced = merge_impressions(
            events, read_impressions(impressions_path)
        )
    return events, report


def compute_effect(
    spec: MetricSpec,
    totals: pl.DataFrame,
    latencies: pl.DataFrame,
    plan: PilotPlan,
    as_ratio: bool = False,
) -> Effect:
    """Estimate the treatment effect of one metric from per-user totals.

    `as_ratio` tests a proportion metric as a ratio (a mean of per-user values), which
    CUPED-adjusted totals need because they are no longer 0 or 1.
    """
    control = totals.filter(pl.col("variant") == plan.control)
    treatment = totals.filter(pl.col("variant") == plan.treatment)
    if spec.kind == "ratio" or (as_ratio and spec.kind == "proportion"):
        return ratio_effect(
            control[spec.numerator].to_numpy(),
            control[spec.denominator].to_numpy(),
            treatment[spec.numerator].to_numpy(),
            treatment[spec.denominator].to_numpy(),
            plan.alpha,
        )
    if spec.kind == "proportion":
        return proportion_effect(
            int(control[spec.numerator].sum()),
            control.height,
            int(treatment[spec.numerator].sum()),
            treatment.height,
            plan.alpha,
        )
    return quantile_effect(
        latencies.filter(pl.col("variant") == plan.control)[spec.numerator].to_numpy(),
        latencies.filter(pl.col("variant") == plan.treatment)[spec.numerator].to_numpy(),
        spec.quantile,
        plan.alpha,
    )


def estimate(
    spec: MetricSpec,
    totals: pl.DataFrame,
    latencies: pl.DataFrame,
    plan: PilotPlan,
    pre_period: pl.DataFrame | None,
) -> tuple[Effect, dict | None]:
    """Estimate one metric's effect, CUPED-adjusted when the plan enables it and data allow.

    Returns the effect and, when adjusted, a dict with theta, the correlation with the
    pre-period covariate and the achieved variance reduction ``1 - (SE_cuped / SE_raw)^2``.
    """
    raw = compute_effect(spec, totals, latencies, plan)
    if not plan.cuped.enabled or pre_period is None or spec.kind == "quantile":
        return raw, None
    adjusted = adjust_totals(totals, pre_period, spec)
    if adjusted is None:
        return raw, None
    adjusted_totals, info = adjusted
    effect = compute_effect(spec, adjusted_totals, latencies, plan, as_ratio=True)
    if raw.absolute_se > 0:
        info["variance_reduction"] = 1 - (effect.absolute_se / raw.absolute_se) ** 2
        info["unadjusted_relative"] = raw.relative
    return effect, info


def insufficient_data(spec: MetricSpec, effect: Effect, scale: str, plan: PilotPlan) -> str | None:
    """Return why `effect` cannot be tested on the `scale` ("relative" or "absolute"), or None.

    A NaN or infinite estimate or standard error means an arm has no values of the metric,
    for example no latency values or no exposures, or the control value is 0 on the
    relative scale.
    """
    se = effect.relative_se if scale == "relative" else effect.absolute_se
    if np.isfinite(effect.absolute_se) and np.isfinite(se):
        return None
    if spec.kind == "quantile":
        return (
            f"insufficient data: {effect.n_control:,} {plan.control} and "
            f"{effect.n_treatment:,} {plan.treatment} values of {spec.numerator}"
        )
    if np.isfinite(effect.absolute_se):
        return "insufficient data: the control value is 0, so the relative change is undefined"
    return f"insufficient data: an arm has no {spec.denominator}"


def srm_section(totals: pl.DataFrame, plan: PilotPlan) -> dict:
    """Chi-square SRM test on users per variant, overall and per value of each dimension."""
    names = list(plan.variants)
    shares = list(plan.variants.values())

    def counts_of(frame: pl.DataFrame) -> list[int]:
        per_variant = dict(frame.group_by("variant").len().iter_rows())
        return [int(per_variant.get(name, 0)) for name in names]

    overall = counts_of(totals)
    statistic, p_value = srm_test(overall, shares)
    breakdown = []
    for dimension in dict.fromkeys((*plan.srm.dimensions, "first_day")):
        for value in sorted(totals[dimension].drop_nulls().unique().to_list()):
            segment = counts_of(totals.filter(pl.col(dimension) == value))
            if sum(segment) == 0:
                continue
            seg_statistic, seg_p = srm_test(segment, shares)
            breakdown.append(
                {
                    "dimension": dimension,
                    "value": str(value),
                    "counts": dict(zip(names, segment, strict=True)),
                    "chi_square": seg_statistic,
                    "p_value": seg_p,
                    "flagged": seg_p < plan.srm.alpha,
                }
            )
    return {
        "counts": dict(zip(names, overall, strict=True)),
        "expected_shares": dict(zip(names, shares, strict=True)),
        "chi_square": statistic,
        "p_value": p_value,
        "alpha": plan.srm.alpha,
        "mismatch": p_value < plan.srm.alpha,
        "breakdown": breakdown,
    }


def rollback_section(totals, latencies, plan: PilotPlan) -> list[dict]:
    """Evaluate the plan's rollback criteria on the data so far."""
    users = dict(totals.group_by("variant").len().iter_rows())
    enough = min(users.get(name, 0) for name in plan.variants) >= plan.rollback.min_users_per_arm
    results = []
    for criterion in plan.rollback.criteria:
        spec = METRICS[criterion.metric]
        entry = {
            "metric": criterion.metric,
            "threshold": criterion.threshold,
            "threshold_type": criterion.threshold_type,
            "alpha": plan.rollback.alpha,
        }
        if not enough:
            entry.update(
                checked=False,
                triggered=False,
                note=f"fewer than {plan.rollback.min_users_per_arm} users in an arm",
            )
            results.append(entry)
            continue
        effect = compute_effect(spec, totals, latencies, plan)
        note = insufficient_data(spec, effect, criterion.threshold_type, plan)
        if note is not None:
            entry.update(checked=False, triggered=False, note=note)
            results.append(entry)
            continue
        triggered, bound = degradation_beyond(
            effect,
            criterion.threshold,
            criterion.threshold_type,
            spec.higher_is_better,
            plan.rollback.alpha,
        )
        entry.update(
            checked=True,
            triggered=triggered,
            degradation_lower_bound=bound,
            relative=effect.relative,
            absolute=effect.absolute,
        )
        results.append(entry)
    return results


def attribution_text(plan: PilotPlan) -> str:
    """Return the sentence that states the attribution window."""
    rule = plan.attribution
    item = "the same item after a click on it" if rule.same_item else "any item after a click"
    if rule.window == "session":
        return f"a purchase of {item} in the block counts when it happens in the same session"
    return f"a purchase of {item} in the block counts within {rule.hours:g} hours of the click"


def run_readout(
    plan: PilotPlan,
    events: pl.DataFrame,
    report: CheckReport | None = None,
    as_of: dt.date | None = None,
    pre_period: pl.DataFrame | None = None,
) -> Readout:
    """Run the complete readout on loaded events.

    Parameters
    ----------
    plan : PilotPlan
        The validated plan, with baselines (needed for the planned sample size).
    events : polars.DataFrame
        Events in `pilot.events.EVENT_SCHEMA`.
    report : CheckReport, optional
        Pre-filled check counts from `load_events`.
    as_of : datetime.date, optional
        Last day to include. Defaults to the planned end date.
    pre_period : polars.DataFrame, optional
        Per-user pre-period totals (`pilot.cuped.read_pre_period`) for CUPED.
    """
    summary = summarise_plan(plan)
    end = summary.end_date if as_of is None else min(as_of, summary.end_date)
    clean, checks = run_checks(events, plan, end, report)
    totals, latencies = user_totals(clean, plan.attribution)

    users = {name: int(totals.filter(pl.col("variant") == name).height) for name in plan.variants}
    planned = {plan.control: summary.n_control, plan.treatment: summary.n_treatment}
    planned_days = 7 * summary.weeks
    last_day = dt.date.fromisoformat(checks.last_day) if checks.last_day else plan.start_date
    days_observed = (min(last_day, end) - plan.start_date).days + 1
    horizon_reached = days_observed >= planned_days and all(
        users[name] >= planned[name] for name in plan.variants
    )

    srm = srm_section(totals, plan)
    rollback = rollback_section(totals, latencies, plan)
    if plan.cuped.enabled and pre_period is None:
        correlation = plan.cuped.correlation
        cuped = (
            f"planned (correlation {correlation:g}) but no pre-period log given: estimates are "
            "unadjusted and the pilot has less power than planned"
        )
    elif plan.cuped.enabled:
        cuped = f"applied with a pre-period log of {pre_period.height:,} users"
    else:
        cuped = "off"
    primary, secondary, guardrails = _effects(plan, totals, latencies, users, pre_period)

    progress = f"day {days_observed} of {planned_days}, " + ", ".join(
        f"{name} {users[name]:,}/{planned[name]:,} users" for name in planned
    )
    decision, reasons = decide(plan, horizon_reached, srm, primary, guardrails, rollback, progress)
    readout = Readout(
        plan_name=plan.name,
        alpha=plan.alpha,
        as_of=str(min(last_day, end)),
        status="final" if horizon_reached else "peek",
        decision=decision,
        reasons=reasons,
        checks=checks,
        users=users,
        planned_users=planned,
        planned_days=planned_days,
        days_observed=days_observed,
        srm=srm,
        primary=primary,
        secondary=secondary,
        guardrails=guardrails,
        rollback=rollback,
        attribution=attribution_text(plan),
        cuped=cuped,
        policy=policy_lines(plan),
    )
    logger.info("readout %s: %s, decision %s", plan.name, readout.status, decision)
    return readout


def _effects(plan, totals, latencies, users, pre_period):
    if min(users.values()) < 2:
        return None, [], []
    primary_spec = METRICS[plan.primary]
    effect, cuped = estimate(primary_spec, totals, latencies, plan, pre_period)
    primary = {
        "metric": plan.primary,
        "unit": primary_spec.unit,
        **effect.to_dict(),
        "cuped": cuped,
        "note": insufficient_data(primary_spec, effect, "absolute", plan),
    }

    secondary = []
    for name in plan.secondary:
        spec = METRICS[name]
        effect, cuped = estimate(spec, totals, latencies, plan, pre_period)
        secondary.append(
            {
                "metric": name,
                "unit": spec.unit,
                **effect.to_dict(),
                "cuped": cuped,
                "note": insufficient_data(spec, effect, "absolute", plan),
                "p_holm": float("nan"),
                "significant_holm": False,
            }
        )
    # Holm adjusts over the metrics that could be tested, so a metric without data does not
    # count as a hypothesis.
    tested = [row for row in secondary if row["note"] is None]
    adjusted = holm([row["p_value"] for row in tested], plan.alpha)
    for row, (p_holm, rejected) in zip(tested, adjusted, strict=True):
        row["p_holm"] = p_holm
        row["significant_holm"] = rejected

    guardrails = []
    for guardrail in plan.guardrails:
        spec = METRICS[guardrail.metric]
        effect, cuped = estimate(spec, totals, latencies, plan, pre_period)
        note = insufficient_data(spec, effect, guardrail.margin_type, plan)
        if note is not None:
            # Non-inferiority is not shown without data, so the guardrail does not pass.
            guardrails.append({"metric": guardrail.metric, "passed": False, "note": note})
            continue
        test = non_inferiority(
            guardrail.metric,
            effect,
            guardrail.margin,
            guardrail.margin_type,
            spec.higher_is_better,
            plan.alpha,
        )
        guardrails.append(
            {
                **test.to_dict(),
                "unit": spec.unit,
                "control": effect.control,
                "treatment": effect.treatment,
                "cuped": cuped,
            }
        )
    return primary, secondary, guardrails


def decide(
    plan: PilotPlan,
    horizon_reached: bool,
    srm: dict,
    primary: dict | None,
    guardrails: list[dict],
    rollback: list[dict],
    progress: str,
) -> tuple[str, list[str]]:
    """Apply the decision rules in order: rollback, SRM, horizon, primary harm, guardrails, lift.

    `progress` describes how far the pilot is (days and users against the plan) for a peek.
    """
    triggered = [entry["metric"] for entry in rollback if entry.get("triggered")]
    if triggered:
        return ROLL_BACK, [
            f"rollback criterion breached beyond its threshold: {', '.join(triggered)}"
        ]

    if srm["mismatch"]:
        return DO_NOT_SHIP, [
            f"sample ratio mismatch (p = {srm['p_value']:.2g} < {srm['alpha']:g}): the effects are "
            "not trustworthy. Find the cause in the SRM breakdown, fix it and restart the pilot"
        ]

    if not horizon_reached:
        return KEEP_RUNNING, [
            f"peek: {progress}. Numbers are shown, but no ship decision is made before the "
            "planned sample size and duration"
        ]
    if primary is None:
        return KEEP_RUNNING, ["not enough users to estimate the primary metric"]
    if primary["note"] is not None:
        return KEEP_RUNNING, [f"{plan.primary}: {primary['note']}"]

    significant = primary["p_value"] < plan.alpha
    change = f"{primary['relative']:+.2%} (p = {primary['p_value']:.2g})"
    if significant and primary["absolute"] < 0:
        return DO_NOT_SHIP, [f"{plan.primary} is significantly worse: {change}"]

    failed = [
        entry["metric"] + (" (insufficient data)" if "note" in entry else "")
        for entry in guardrails
        if not entry["passed"]
    ]
    if failed:
        return DO_NOT_SHIP, [f"non-inferiority not shown for guardrail(s): {', '.join(failed)}"]

    if significant:
        return SHIP, [f"{plan.primary} improved {change} and every guardrail passed"]
    return DO_NOT_SHIP, [f"{plan.primary} changed {change}, not significant at the planned horizon"]


def policy_lines(plan: PilotPlan) -> list[str]:
    """Return the multiple-testing policy of the module docstring with the plan's levels."""
    return [
        f"Primary metric {plan.primary}: one two-sided test at alpha {plan.alpha:g}, "
        "no correction.",
        f"Guardrails: one-sided non-inferiority tests at alpha {plan.alpha:g}; all must pass "
        "(intersection-union test, no correction needed).",
        "Secondary metrics: Holm-adjusted p-values, reported only, never decisive.",
        f"Rollback: checked daily on cumulative data at one-sided alpha {plan.rollback.alpha:g}.",
        "Fixed horizon: before the planned users and weeks are reached the readout is a peek.",
    ]


def write_readout(readout: Readout, out_dir: str | Path) -> tuple[Path, Path]:
    """Write `readout.json` and `readout.md` to `out_dir`; return both paths."""
    from pilot.report import render_markdown

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path = out_dir / "readout.json"
    markdown_path = out_dir / "readout.md"
    json_path.write_text(json.dumps(_finite(readout.to_dict()), indent=2, default=str))
    markdown_path.write_text(render_markdown(readout))
    return json_path, markdown_path


def _finite(value):
    """Replace NaN and infinities by None, because JSON has no such numbers."""
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def readout_from_files(
    plan: PilotPlan,
    events_paths: list[str | Path],
    impressions_path: str | Path | None = None,
    as_of: dt.date | None = None,
    pre_period_path: str | Path | None = None,
) -> Readout:
    """Load the logs and run the readout."""
    events, report = load_events(events_paths, impressions_path)
    pre_period = read_pre_period(pre_period_path) if pre_period_path else None
    return run_readout(plan, events, report, as_of, pre_period)
