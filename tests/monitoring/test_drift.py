"""Drift injected on purpose is flagged; windows from one distribution are not."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import polars as pl
import pytest

from bookrecs.exceptions import ConfigError
from monitoring.config import DriftConfig
from monitoring.drift import analyse
from monitoring.impressions import read_impressions
from monitoring.simulate import (
    CUT,
    END,
    START,
    books_table,
    run_scenario,
    run_shuffled,
    two_windows,
    write_impression_log,
)
from monitoring.windows import Window

REFERENCE = Window("reference", START, CUT)
CURRENT = Window("current", CUT, END)
DRAWS = 20


@pytest.fixture(scope="module")
def config() -> DriftConfig:
    return DriftConfig.from_yaml()


@pytest.fixture(scope="module")
def books():
    return books_table(400, np.random.default_rng(5))


def statuses(summary) -> dict[str, str]:
    return {check.name: check.status for check in summary.checks}


def test_same_distribution_not_flagged(config, books):
    summary = analyse(two_windows(1), books, REFERENCE, CURRENT, config)
    assert summary.verdict == "no_drift"
    assert summary.exit_code == 0
    assert summary.drifted == []


def test_rating_shift_flagged(config, books):
    summary = analyse(two_windows(1, rating_shift=1), books, REFERENCE, CURRENT, config)
    assert statuses(summary)["rating_distribution"] == "drift"
    assert summary.verdict == "retrain"
    assert summary.exit_code == 3


def test_new_book_burst_flagged(config, books):
    summary = analyse(two_windows(1, new_book_share=0.3), books, REFERENCE, CURRENT, config)
    assert statuses(summary)["new_book_share"] == "drift"
    assert summary.verdict == "retrain"


def test_popular_only_model_flagged(config, books, tmp_path):
    rng = np.random.default_rng(2)
    path = write_impression_log(tmp_path / "log.sqlite", 300, rng, popular_only=True)
    log = read_impressions(path, CURRENT)
    summary = analyse(two_windows(1), books, REFERENCE, CURRENT, config, log)
    assert statuses(summary)["shown_popularity"] == "drift"
    assert statuses(summary)["shown_coverage"] == "drift"
    assert summary.verdict == "retrain"


def test_normal_model_not_flagged(config, books, tmp_path):
    path = write_impression_log(tmp_path / "log.sqlite", 300, np.random.default_rng(2))
    summary = analyse(two_windows(1), books, REFERENCE, CURRENT, config, read_impressions(path))
    assert summary.verdict == "no_drift"
    assert statuses(summary)["fallback_rate"] == "ok"


def test_fallback_rate_flagged(config, books, tmp_path):
    rng = np.random.default_rng(3)
    path = write_impression_log(tmp_path / "log.sqlite", 300, rng, fallback_share=0.5)
    summary = analyse(two_windows(1), books, REFERENCE, CURRENT, config, read_impressions(path))
    assert statuses(summary)["fallback_rate"] == "drift"


def test_repeated_draws_false_alarms(config, tmp_path):
    flagged, drifted = run_scenario({}, DRAWS, config, tmp_path)
    # The simulated false alarm rate is 0 of 200 draws (docs/monitoring.md); allow one here.
    assert flagged <= 1, drifted


@pytest.mark.parametrize(
    "shift",
    [{"rating_shift": 1}, {"new_book_share": 0.3}, {"popular_only": True}],
    ids=["ratings", "new-books", "popular-only"],
)
def test_repeated_draws_detect(config, tmp_path, shift):
    flagged, _ = run_scenario(shift, DRAWS // 2, config, tmp_path)
    assert flagged == DRAWS // 2


def test_goodreads_shuffled_dates_not_flagged(config, goodreads_head_dir):
    from bookrecs.data.goodreads import read_goodreads

    interactions = read_goodreads(goodreads_head_dir, show_progress=False).interactions
    flagged, drifted = run_shuffled(interactions, DRAWS, config)
    assert flagged <= 1, drifted


def test_empty_current_window(config, books):
    later = Window("current", END + timedelta(days=30), END + timedelta(days=60))
    summary = analyse(two_windows(1), books, REFERENCE, later, config)
    assert summary.verdict == "insufficient_data"
    assert summary.exit_code == 4
    assert any(
        "contains no interactions" in note and "2020-01-01" in note for note in summary.notes
    )


def test_small_current_window(config, books):
    short = Window("current", CUT, CUT + timedelta(hours=12))
    summary = analyse(two_windows(1), books, REFERENCE, short, config)
    assert summary.verdict == "insufficient_data"
    assert any("fewer than min_window_interactions" in note for note in summary.notes)
    assert statuses(summary)["rating_distribution"] == "insufficient_data"


def test_small_reference_window(config, books):
    short = Window("reference", START, START + timedelta(hours=6))
    summary = analyse(two_windows(1), books, short, CURRENT, config)
    assert summary.verdict == "insufficient_data"


def test_books_missing_skips_metadata(config):
    summary = analyse(two_windows(1), None, REFERENCE, CURRENT, config)
    assert statuses(summary)["new_book_language"] == "skipped"
    assert summary.verdict == "no_drift"


def test_warning_only_does_not_retrain(config, books):
    values = config.model_dump()
    for name in values["checks"]:
        values["checks"][name]["retrain"] = False
    warn_only = DriftConfig.model_validate(values)
    summary = analyse(two_windows(1, rating_shift=1), books, REFERENCE, CURRENT, warn_only)
    assert statuses(summary)["rating_distribution"] == "warning"
    assert summary.verdict == "insufficient_data"
    assert "warnings: rating_distribution" in summary.lines()[2]


def test_summary_lines_name_drift(config, books):
    summary = analyse(two_windows(1, rating_shift=1), books, REFERENCE, CURRENT, config)
    text = "\n".join(summary.lines())
    assert "verdict: retraining recommended" in text
    assert "- rating_distribution: DRIFT, PSI" in text


def test_empty_reference_window(config, books):
    earlier = Window("reference", START - timedelta(days=60), START - timedelta(days=30))
    summary = analyse(two_windows(1), books, earlier, CURRENT, config)
    assert summary.verdict == "insufficient_data"
    assert any("reference window contains no interactions" in note for note in summary.notes)


def test_new_book_language_flagged(config):
    books = books_table(800, np.random.default_rng(7))
    is_new = pl.col("item_id").str.slice(1).cast(pl.Int32) >= 400
    books = books.with_columns(
        language=pl.when(is_new).then(pl.lit("ger")).otherwise(pl.col("language"))
    )
    # Reference reading covers books b0..b399; current reading spreads over b0..b799.
    interactions = pl.concat(
        [
            two_windows(8).filter(pl.col("date_added") < CUT),
            two_windows(8, n_books=800).filter(pl.col("date_added") >= CUT),
        ]
    )
    summary = analyse(interactions, books, REFERENCE, CURRENT, config)
    assert statuses(summary)["new_book_language"] == "drift"
    assert statuses(summary)["new_book_shelves"] == "ok"


def test_overlapping_windows_rejected(config, books):
    overlapping = Window("current", CUT - timedelta(days=1), END)
    with pytest.raises(ConfigError, match="the windows overlap"):
        analyse(two_windows(1, rating_shift=1), books, REFERENCE, overlapping, config)
