"""Window parsing, defaults and selection."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import polars as pl
import pytest

from bookrecs.exceptions import ConfigError
from monitoring.windows import Window, default_windows, parse_time, resolve_windows, select

DAY = datetime(2021, 1, 1, tzinfo=UTC)


def frame(days: int) -> pl.DataFrame:
    dates = [DAY + timedelta(days=offset) for offset in range(days)]
    return pl.DataFrame({"date_added": dates}, schema={"date_added": pl.Datetime("us", "UTC")})


def test_parse_date_as_utc():
    assert parse_time("2021-03-04", "--x") == datetime(2021, 3, 4, tzinfo=UTC)


def test_parse_offset_converted():
    assert parse_time("2021-03-04T02:00:00+02:00", "--x") == datetime(2021, 3, 4, tzinfo=UTC)


def test_parse_invalid_names_option():
    with pytest.raises(ConfigError, match="--current-end='last week'"):
        parse_time("last week", "--current-end")


def test_end_before_start_rejected():
    with pytest.raises(ConfigError, match="reference window ends"):
        Window("reference", DAY, DAY)


def test_default_windows_cover_all_rows():
    data = frame(100)
    reference, current = default_windows(data["date_added"], 0.75)
    assert select(data, reference).height + select(data, current).height == 100
    assert select(data, reference).height == 74


def test_default_windows_one_date():
    with pytest.raises(ConfigError, match="share one date"):
        default_windows(frame(1)["date_added"], 0.75)


def test_current_follows_reference_end():
    reference, current = resolve_windows(frame(100)["date_added"], 0.75, reference_end="2021-02-01")
    assert current.start == reference.end == datetime(2021, 2, 1, tzinfo=UTC)


def test_select_is_half_open():
    window = Window("current", DAY, DAY + timedelta(days=2))
    assert select(frame(5), window).height == 2


def test_overlapping_windows_rejected():
    with pytest.raises(ConfigError, match="the windows overlap") as caught:
        resolve_windows(
            frame(100)["date_added"], 0.75, reference_end="2021-03-01", current_start="2021-01-15"
        )
    assert "2021-01-15 00:00" in str(caught.value)
    assert "--current-start" in str(caught.value)


def test_default_current_start_after_reference():
    with pytest.raises(ConfigError, match="the windows overlap"):
        resolve_windows(frame(100)["date_added"], 0.75, current_start="2021-02-01")


def test_adjacent_windows_accepted():
    reference, current = resolve_windows(
        frame(100)["date_added"], 0.75, reference_end="2021-02-01", current_start="2021-02-01"
    )
    assert current.start == reference.end
