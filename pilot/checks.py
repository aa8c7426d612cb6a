"""Data checks that run before any pilot number: every excluded row or user is counted.

The checks run in this order, each on the output of the previous one:

1. invalid rows (schema rules in `pilot.events.split_invalid`);
2. events outside the pilot's dates;
3. duplicate events (same `event_id`, then identical rows);
4. missing and incomplete days: a pilot day with no events is missing, a day with fewer
   events than `min_day_share` times the median day is incomplete and its events are excluded;
5. exposures and errors without a session (after impressions are mapped to sessions);
6. automated-looking users: more than `max_events_per_minute` events in one clock minute, or
   more than `max_sessions_per_day` sessions in one day. All their events are excluded.
7. users exposed to more than one variant, or whose logged variant differs from
   `bookrecs.assignment.assign_variant` with the plan's salt. All their events are excluded.
   The second part needs the ids the service assigned, so it is skipped when the exposures
   come from the impression log, which stores salted hashes of them.
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass, field

import polars as pl

from bookrecs.assignment import assign_variants
from pilot.events import IMPRESSION_ID_PREFIX, split_invalid
from pilot.plan import PilotPlan

logger = logging.getLogger("bookrecs.pilot")

REQUEST_TYPES = ("exposure", "error")


@dataclass
class CheckReport:
    """Counts of what each data check excluded."""

    rows_in: int = 0
    invalid_rows: dict[str, int] = field(default_factory=dict)
    exposure_rows_replaced: int = 0
    outside_dates: int = 0
    duplicates: int = 0
    missing_days: list[str] = field(default_factory=list)
    incomplete_days: list[str] = field(default_factory=list)
    incomplete_day_events: int = 0
    requests_without_session: int = 0
    automated_users: int = 0
    automated_users_by_variant: dict[str, int] = field(default_factory=dict)
    automated_events: int = 0
    mixed_variant_users: int = 0
    assignment_mismatch_users: int = 0
    assignment_check: str = "run"
    excluded_user_events: int = 0
    rows_out: int = 0
    first_day: str | None = None
    last_day: str | None = None

    def lines(self) -> list[str]:
        """Return one human-readable line per check."""
        invalid = sum(self.invalid_rows.values())
        detail = ", ".join(f"{name}: {count}" for name, count in self.invalid_rows.items())
        bots = ", ".join(f"{k}: {v}" for k, v in self.automated_users_by_variant.items())
        return [
            f"rows read: {self.rows_in:,}",
            f"invalid rows excluded: {invalid:,}" + (f" ({detail})" if detail else ""),
            f"exposure rows of the event log replaced by the impression log: "
            f"{self.exposure_rows_replaced:,}",
            f"events outside the pilot dates excluded: {self.outside_dates:,}",
            f"duplicate events excluded: {self.duplicates:,}",
            f"days with no events: {len(self.missing_days)}"
            + (f" ({', '.join(self.missing_days)})" if self.missing_days else ""),
            f"incomplete days excluded: {len(self.incomplete_days)}"
            + (f" ({', '.join(self.incomplete_days)})" if self.incomplete_days else "")
            + f", {self.incomplete_day_events:,} events",
            f"exposures and errors without a session excluded: {self.requests_without_session:,}",
            f"automated-looking users excluded: {self.automated_users:,}"
            + (f" ({bots})" if bots else "")
            + f", {self.automated_events:,} events",
            f"users exposed to more than one variant excluded: {self.mixed_variant_users:,}",
            f"users whose variant differs from the assignment excluded: "
            f"{self.assignment_mismatch_users:,} (check {self.assignment_check})",
            f"rows analysed: {self.rows_out:,}",
        ]


def day_bounds(plan: PilotPlan, end_date: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """Return the pilot's UTC window ``[start 00:00, end + 1 day 00:00)``."""
    start = dt.datetime.combine(plan.start_date, dt.time(), tzinfo=dt.UTC)
    stop = dt.datetime.combine(end_date + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return start, stop


def assign_sessions(events: pl.DataFrame, timeout_minutes: float) -> pl.DataFrame:
    """Fill the empty `session_id` of exposures and errors with the user's current session.

    The current session is the latest `session` row of the same user that started at or before
    the request and at most `timeout_minutes` earlier.
    """
    is_request = pl.col("event_type").is_in(REQUEST_TYPES)
    unmapped = events.filter(is_request & pl.col("session_id").is_null())
    if unmapped.is_empty():
        return events
    sessions = (
        events.filter(pl.col("event_type") == "session")
        .select("user_id", pl.col("ts").alias("session_ts"), pl.col("session_id").alias("mapped"))
        .sort("session_ts")
    )
    mapped = (
        unmapped.with_row_index("_row")
        .sort("ts")
        .join_asof(
            sessions,
            left_on="ts",
            right_on="session_ts",
            by="user_id",
            strategy="backward",
            tolerance=dt.timedelta(minutes=timeout_minutes),
            check_sortedness=False,
        )
        .sort("_row")
        .with_columns(pl.col("mapped").alias("session_id"))
        .select(events.columns)
    )
    return pl.concat([events.filter(~(is_request & pl.col("session_id").is_null())), mapped])


def run_checks(
    events: pl.DataFrame,
    plan: PilotPlan,
    end_date: dt.date,
    report: CheckReport | None = None,
) -> tuple[pl.DataFrame, CheckReport]:
    """Apply the data checks in order and return the clean events with the counts.

    Parameters
    ----------
    events : polars.DataFrame
        Events in `pilot.events.EVENT_SCHEMA`.
    plan : PilotPlan
        Supplies dates, variants, salt and thresholds.
    end_date : datetime.date
        Last day to analyse (the plan's end, or an earlier day for a peek or a daily check).
    report : CheckReport, optional
        Report to fill, for example one that already counts replaced exposure rows.
    """
    report = report or CheckReport()
    report.rows_in = events.height
    limits = plan.data_checks

    events, report.invalid_rows = split_invalid(events, plan.variants)

    start, stop = day_bounds(plan, end_date)
    inside = events.filter((pl.col("ts") >= start) & (pl.col("ts") < stop))
    report.outside_dates = events.height - inside.height
    events = inside

    events = _drop_duplicates(events, report)
    events = _drop_incomplete_days(events, plan.start_date, end_date, limits.min_day_share, report)

    events = assign_sessions(events, limits.session_timeout_minutes)
    session_ids = events.filter(pl.col("event_type") == "session").select("session_id")
    orphan = pl.col("event_type").is_in(REQUEST_TYPES) & ~pl.col("session_id").is_in(
        session_ids.to_series().implode()
    ).fill_null(False)
    report.requests_without_session = events.filter(orphan).height
    events = events.filter(~orphan)

    events = _drop_automated_users(events, limits, report)
    from_log = pl.col("event_id").str.starts_with(IMPRESSION_ID_PREFIX).fill_null(False)
    if events.filter(from_log).height:
        report.assignment_check = (
            "skipped: the impression log stores salted user hashes, not the assigned ids"
        )
    events = _drop_misassigned_users(events, plan, report)

    report.rows_out = events.height
    if events.height:
        report.first_day = str(events["ts"].min().date())
        report.last_day = str(events["ts"].max().date())
    for line in report.lines():
        logger.info("data check: %s", line)
    return events, report


def _drop_duplicates(events: pl.DataFrame, report: CheckReport) -> pl.DataFrame:
    with_id = events.filter(pl.col("event_id").is_not_null()).unique(
        subset="event_id", keep="first", maintain_order=True
    )
    without_id = events.filter(pl.col("event_id").is_null())
    deduplicated = pl.concat([with_id, without_id]).unique(
        subset=[name for name in events.columns if name != "event_id"],
        keep="first",
        maintain_order=True,
    )
    report.duplicates = events.height - deduplicated.height
    return deduplicated


def _drop_incomplete_days(
    events: pl.DataFrame,
    first: dt.date,
    last: dt.date,
    min_share: float,
    report: CheckReport,
) -> pl.DataFrame:
    if events.is_empty():
        return events
    observed_last = events["ts"].max().date()
    last = min(last, observed_last)
    daily = events.group_by(pl.col("ts").dt.date().alias("day")).len()
    counts = dict(zip(daily["day"].to_list(), daily["len"].to_list(), strict=True))
    days = [first + dt.timedelta(days=offset) for offset in range((last - first).days + 1)]
    present = sorted(counts[day] for day in days if day in counts)
    median = present[len(present) // 2] if present else 0
    report.missing_days = [str(day) for day in days if day not in counts]
    incomplete = [day for day in days if day in counts and counts[day] < min_share * median]
    report.incomplete_days = [str(day) for day in incomplete]
    if not incomplete:
        return events
    on_incomplete = pl.col("ts").dt.date().is_in(incomplete)
    report.incomplete_day_events = events.filter(on_incomplete).height
    return events.filter(~on_incomplete)


def _drop_automated_users(events: pl.DataFrame, limits, report: CheckReport) -> pl.DataFrame:
    per_minute = (
        events.group_by("user_id", pl.col("ts").dt.truncate("1m").alias("minute"))
        .len()
        .filter(pl.col("len") > limits.max_events_per_minute)
        .select("user_id")
    )
    per_day = (
        events.filter(pl.col("event_type") == "session")
        .group_by("user_id", pl.col("ts").dt.date().alias("day"))
        .len()
        .filter(pl.col("len") > limits.max_sessions_per_day)
        .select("user_id")
    )
    flagged = pl.concat([per_minute, per_day]).unique()
    if flagged.is_empty():
        return events
    flagged_ids = flagged.to_series().implode()
    variants = (
        events.filter(pl.col("user_id").is_in(flagged_ids) & pl.col("variant").is_not_null())
        .group_by("user_id")
        .agg(pl.col("variant").first())
        .group_by("variant")
        .len()
        .sort("variant")
    )
    report.automated_users = flagged.height
    report.automated_users_by_variant = dict(
        zip(variants["variant"].to_list(), variants["len"].to_list(), strict=True)
    )
    is_flagged = pl.col("user_id").is_in(flagged_ids)
    report.automated_events = events.filter(is_flagged).height
    return events.filter(~is_flagged)


def _drop_misassigned_users(
    events: pl.DataFrame, plan: PilotPlan, report: CheckReport
) -> pl.DataFrame:
    per_user = (
        events.filter(pl.col("event_type").is_in(REQUEST_TYPES))
        .group_by("user_id")
        .agg(pl.col("variant").n_unique().alias("n_variants"), pl.col("variant").first())
    )
    mixed = per_user.filter(pl.col("n_variants") > 1)["user_id"]
    single = per_user.filter(pl.col("n_variants") == 1)
    if report.assignment_check == "run":
        names = list(plan.variants)
        weights = list(plan.variants.values())
        expected = assign_variants(single["user_id"], plan.salt, names, weights)
        single = single.with_columns(pl.Series("expected", expected, dtype=pl.String))
        mismatch = single.filter(pl.col("expected") != pl.col("variant"))["user_id"]
    else:
        mismatch = single.clear()["user_id"]
    report.mixed_variant_users = mixed.len()
    report.assignment_mismatch_users = mismatch.len()
    excluded = pl.concat([mixed, mismatch]).implode()
    is_excluded = pl.col("user_id").is_in(excluded)
    report.excluded_user_events = events.filter(is_excluded).height
    return events.filter(~is_excluded)
