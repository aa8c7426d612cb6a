"""Time windows that are compared: a reference (training period) and a current window."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import polars as pl

from bookrecs.columns import DATE
from bookrecs.exceptions import ConfigError


@dataclass(frozen=True)
class Window:
    """A half-open UTC time interval [start, end) with a name for messages."""

    name: str
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.end <= self.start:
            raise ConfigError(
                f"{self.name} window ends ({self.end.isoformat()}) at or before it starts "
                f"({self.start.isoformat()}): pass an end date after the start date"
            )

    @property
    def days(self) -> float:
        return (self.end - self.start).total_seconds() / 86_400

    def __str__(self) -> str:
        return f"{self.name} [{self.start:%Y-%m-%d %H:%M}, {self.end:%Y-%m-%d %H:%M}) UTC"

    def to_dict(self) -> dict[str, str]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}


def parse_time(value: str | date | datetime, option: str) -> datetime:
    """Parse an ISO-8601 date or date-time; a value without an offset is read as UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime(value.year, value.month, value.day)
    else:
        try:
            moment = datetime.fromisoformat(value.strip())
        except ValueError:
            raise ConfigError(
                f"{option}={value!r} is not an ISO-8601 date: use YYYY-MM-DD or YYYY-MM-DDTHH:MM:SS"
            ) from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def check_disjoint(reference: Window, current: Window) -> None:
    """Raise `ConfigError` when the two windows overlap.

    Interactions inside both windows would count on both sides of every comparison, which
    hides drift, so a drift verdict is only computed on disjoint windows.
    """
    if current.start < reference.end and reference.start < current.end:
        raise ConfigError(
            f"the windows overlap: {current} starts before {reference} ends, so both would "
            "contain the same interactions. Pass --current-start at or after the reference end, "
            "or an earlier --reference-end"
        )


def default_windows(dates: pl.Series, quantile: float) -> tuple[Window, Window]:
    """Cut the time range of `dates` at `quantile`: reference before, current from the cut.

    The current window ends one microsecond after the last date, so the last interaction is
    included in the half-open interval.
    """
    dates = dates.drop_nulls()
    if dates.is_empty():
        raise ConfigError("no dated interactions: default windows need at least one date_added")
    first = dates.min()
    last = dates.max()
    cut = dates.sort().quantile(quantile, interpolation="lower")
    if cut is None or cut <= first:
        cut = first + (last - first) * quantile
    end = last + timedelta(microseconds=1)
    if cut >= end or cut <= first:
        raise ConfigError(
            f"all interactions share one date ({first.isoformat()}): pass "
            "--reference-start/--reference-end and --current-start/--current-end"
        )
    return Window("reference", first, cut), Window("current", cut, end)


def resolve_windows(
    dates: pl.Series,
    quantile: float,
    reference_start: str | None = None,
    reference_end: str | None = None,
    current_start: str | None = None,
    current_end: str | None = None,
) -> tuple[Window, Window]:
    """Build both windows from the options given, filling the rest from `default_windows`.

    An omitted bound takes its value from the default cut at `quantile` of `dates`, except
    that an omitted current start follows a given reference end.
    """
    default_reference, default_current = default_windows(dates, quantile)
    reference = Window(
        "reference",
        parse_time(reference_start, "--reference-start")
        if reference_start
        else default_reference.start,
        parse_time(reference_end, "--reference-end") if reference_end else default_reference.end,
    )
    if current_start:
        start = parse_time(current_start, "--current-start")
    elif reference_end:
        start = reference.end
    else:
        start = default_current.start
    end = parse_time(current_end, "--current-end") if current_end else default_current.end
    if not current_end and end <= start:
        end = start + timedelta(days=1)
    current = Window("current", start, end)
    check_disjoint(reference, current)
    return reference, current


def select(frame: pl.DataFrame, window: Window, column: str = DATE) -> pl.DataFrame:
    """Return the rows of `frame` whose `column` falls inside `window`."""
    return frame.filter((pl.col(column) >= window.start) & (pl.col(column) < window.end))


def date_range(frame: pl.DataFrame, column: str = DATE) -> str:
    """Describe the first and last value of `column`, for error messages."""
    if frame.is_empty():
        return "no rows"
    first = frame[column].min()
    last = frame[column].max()
    return f"{first:%Y-%m-%d} to {last:%Y-%m-%d}"
