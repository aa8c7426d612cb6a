"""Run every drift check on two windows, decide whether to retrain, and summarise the result.

Decision rule: a measured check is drifted when its effect size reaches its threshold and,
if it has a test, its p-value is below alpha / m, where m is the number of measured checks
with a p-value (Bonferroni). Retraining is recommended when a drifted check has
`retrain: true`; drifted checks with `retrain: false` only warn.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import polars as pl

from bookrecs.columns import DATE
from monitoring import features
from monitoring.checks import CheckResult, book_checks, impression_checks, interaction_checks
from monitoring.config import DriftConfig
from monitoring.impressions import ImpressionLog, select_window
from monitoring.windows import Window, check_disjoint, date_range, select

logger = logging.getLogger("bookrecs.monitoring")

Verdict = Literal["no_drift", "retrain", "insufficient_data"]

EXIT_CODES: dict[Verdict, int] = {"no_drift": 0, "retrain": 3, "insufficient_data": 4}
"""Exit status of the command line per verdict; 1 means the report itself failed."""


@dataclass
class DriftSummary:
    """Content of one drift report: windows, sizes, check results and the verdict."""

    reference: Window
    current: Window
    reference_rows: int
    current_rows: int
    checks: list[CheckResult]
    verdict: Verdict = "insufficient_data"
    alpha_per_check: float = 0.0
    impression_requests: int | None = None
    notes: list[str] = field(default_factory=list)
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def exit_code(self) -> int:
        return EXIT_CODES[self.verdict]

    @property
    def drifted(self) -> list[CheckResult]:
        return [check for check in self.checks if check.status == "drift"]

    @property
    def warnings(self) -> list[CheckResult]:
        return [check for check in self.checks if check.status == "warning"]

    def to_dict(self) -> dict[str, Any]:
        """Return a JSON-ready dict (NaN and infinity become None)."""
        return _finite(
            {
                "created_at": self.created_at.isoformat(),
                "verdict": self.verdict,
                "exit_code": self.exit_code,
                "retrain_recommended": self.verdict == "retrain",
                "windows": {
                    "reference": self.reference.to_dict(),
                    "current": self.current.to_dict(),
                },
                "rows": {"reference": self.reference_rows, "current": self.current_rows},
                "impression_requests": self.impression_requests,
                "alpha_per_check": self.alpha_per_check,
                "drifted": [check.name for check in self.drifted],
                "warnings": [check.name for check in self.warnings],
                "checks": [check.to_dict() for check in self.checks],
                "notes": self.notes,
            }
        )

    def lines(self) -> list[str]:
        """Render the summary as plain lines: windows, verdict, then one line per check."""
        requests = (
            "no impression log"
            if self.impression_requests is None
            else f"{self.impression_requests:,} logged requests"
        )
        lines = [
            f"{self.reference}: {self.reference_rows:,} interactions",
            f"{self.current}: {self.current_rows:,} interactions, {requests}",
            _verdict_line(self),
        ]
        lines += [f"note: {note}" for note in self.notes]
        lines += [_check_line(check, self.alpha_per_check) for check in self.checks]
        return lines


def analyse(
    interactions: pl.DataFrame,
    books: pl.DataFrame | None,
    reference_window: Window,
    current_window: Window,
    config: DriftConfig,
    impressions: ImpressionLog | None = None,
) -> DriftSummary:
    """Run every check on the two windows of `interactions` and decide.

    Parameters
    ----------
    interactions
        Table with the `INTERACTION_SCHEMA` columns of `bookrecs.data.dataset`.
    books
        Book metadata (`BOOK_SCHEMA`) or None; the new-book checks are skipped without it.
    reference_window, current_window
        Half-open time windows; the reference is the training period of the served model.
    config
        Thresholds, usually `DriftConfig.from_yaml()`.
    impressions
        Impression log or None; only its requests inside `current_window` are checked.

    Raises
    ------
    ConfigError
        When the windows overlap (`monitoring.windows.check_disjoint`).
    """
    check_disjoint(reference_window, current_window)
    reference = select(interactions, reference_window)
    current = select(interactions, current_window)
    if impressions is not None:
        impressions = select_window(impressions, current_window)
    summary = DriftSummary(
        reference=reference_window,
        current=current_window,
        reference_rows=reference.height,
        current_rows=current.height,
        checks=[],
        impression_requests=None if impressions is None else impressions.requests.height,
    )
    logger.info("comparing %s with %s", reference_window, current_window)
    _note_small_windows(summary, interactions, config)
    if impressions is not None and impressions.dropped:
        dropped = ", ".join(f"{n} ({reason})" for reason, n in impressions.dropped.items())
        summary.notes.append(f"impression rows dropped: {dropped}")

    profile = features.build_profile(reference, config.head_share, config.seed)
    current_for_checks = (
        current if current.height >= config.min_window_interactions else current.clear()
    )
    reference_ok = reference.height >= config.min_window_interactions
    summary.checks = interaction_checks(reference, current_for_checks, profile, config)
    summary.checks += book_checks(books, reference, current_for_checks, config)
    summary.checks += impression_checks(impressions, current_for_checks, profile, config)
    if not reference_ok:
        for check in summary.checks:
            if check.status == "measured":
                check.status = "insufficient_data"
                check.message = "the reference window is too small for a reference profile"

    decide(summary, config)
    logger.info("verdict %s; drifted: %s", summary.verdict, [c.name for c in summary.drifted])
    return summary


def decide(summary: DriftSummary, config: DriftConfig) -> DriftSummary:
    """Set each measured check to ok, drift or warning, then set the summary's verdict."""
    measured = [check for check in summary.checks if check.status == "measured"]
    tested = [check for check in measured if check.p_value is not None]
    summary.alpha_per_check = config.alpha / max(len(tested), 1)
    for check in measured:
        large = check.effect is not None and check.effect >= check.threshold
        significant = check.p_value is None or check.p_value < summary.alpha_per_check
        if large and significant:
            check.status = "drift" if check.retrain else "warning"
        else:
            check.status = "ok"

    if summary.drifted:
        summary.verdict = "retrain"
    elif any(check.retrain for check in measured):
        summary.verdict = "no_drift"
    else:
        summary.verdict = "insufficient_data"
    return summary


def _note_small_windows(
    summary: DriftSummary, interactions: pl.DataFrame, config: DriftConfig
) -> None:
    minimum = config.min_window_interactions
    for window, rows in (
        (summary.reference, summary.reference_rows),
        (summary.current, summary.current_rows),
    ):
        if rows == 0:
            summary.notes.append(
                f"the {window.name} window contains no interactions; the data cover "
                f"{date_range(interactions, DATE)}: choose dates inside that range"
            )
        elif rows < minimum:
            summary.notes.append(
                f"the {window.name} window has {rows} interactions, fewer than "
                f"min_window_interactions={minimum}: its checks are not run; widen the window"
            )


def _verdict_line(summary: DriftSummary) -> str:
    if summary.verdict == "retrain":
        names = ", ".join(check.name for check in summary.drifted)
        text = f"verdict: retraining recommended ({len(summary.drifted)} drifted: {names})"
    elif summary.verdict == "no_drift":
        text = "verdict: no drift that calls for retraining"
    else:
        text = (
            "verdict: no decision, no check that can recommend retraining had enough data "
            "(see the notes and checks below)"
        )
    if summary.warnings:
        text += "; warnings: " + ", ".join(check.name for check in summary.warnings)
    return text


def _check_line(check: CheckResult, alpha: float) -> str:
    if check.status in ("skipped", "insufficient_data"):
        return f"- {check.name}: {check.status.replace('_', ' ')}: {check.message}"
    comparison = ">=" if check.status in ("drift", "warning") else "vs"
    text = (
        f"- {check.name}: {check.status.upper() if check.status != 'ok' else 'ok'}, "
        f"{check.measure} {_number(check.effect)} {comparison} threshold {_number(check.threshold)}"
    )
    if check.p_value is not None:
        text += f" ({check.test} p={check.p_value:.2g}, alpha/m={alpha:.2g})"
    values = f"{_number(check.current)} {check.unit}"
    if check.reference is not None:
        values = f"{_number(check.reference)} -> " + values
    return f"{text}; {values}; {check.message}"


def _number(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3g}" if abs(value) < 1000 else f"{value:.1f}"


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _finite(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_finite(item) for item in value]
    return value
