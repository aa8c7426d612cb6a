"""Known-answer tests of every preparation step on tiny hand-made tables."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import polars as pl
import pytest

from bookrecs.config import ProtocolConfig
from bookrecs.data.dataset import BOOK_SCHEMA, INTERACTION_SCHEMA, Dataset
from bookrecs.data.prepare import (
    STEP_COLLAPSE,
    STEP_ENGLISH,
    STEP_INPUT,
    STEP_MERGE,
    STEP_MIN_USER_ITEMS,
    STEP_RECENT,
    collapse_pairs,
    keep_active_users,
    keep_english,
    keep_recent,
    merge_editions,
    normalise_title,
    prepare,
    repeated_pairs,
)
from bookrecs.exceptions import DataError


def day(n: int) -> datetime:
    return datetime(2017, 1, n, tzinfo=UTC)


def interactions(rows: list[tuple]) -> pl.DataFrame:
    """Rows of (user_id, item_id, rating, is_read, day number)."""
    return pl.DataFrame(
        [(u, i, float(r), bool(read), day(d)) for u, i, r, read, d in rows],
        schema=INTERACTION_SCHEMA,
        orient="row",
    )


def book(item_id: str, title: str, language: str | None = "eng", **values) -> dict:
    row = {
        "item_id": item_id,
        "title": title,
        "description": "",
        "authors": [],
        "series": [],
        "tags": [],
        "tag_counts": [],
        "year": 2010,
        "language": language,
    }
    row.update(values)
    return row


def books(*rows: dict) -> pl.DataFrame:
    return pl.DataFrame(list(rows), schema=BOOK_SCHEMA)


def test_normalise_title_rules():
    titles = pl.DataFrame({"t": ["The  Hunger Games!", "the hunger-games", " Éclair 2 ", "???"]})
    out = titles.select(normalise_title(pl.col("t")))["t"].to_list()
    assert out[0] == "the hunger games"
    assert out[1] == "the hungergames"
    assert out[2] == "clair 2"
    assert out[3] == ""


def test_keep_english_drops_books_and_reads():
    table = books(
        book("1", "A", "eng"),
        book("2", "B", "spa"),
        book("3", "C", "en-US"),
        book("4", "D", None),
    )
    reads = interactions(
        [
            ("u", "1", 0, 0, 1),
            ("u", "2", 0, 0, 2),
            ("u", "3", 0, 0, 3),
            ("u", "4", 0, 0, 4),
            ("u", "9", 0, 0, 5),
        ]
    )
    kept, english, missing = keep_english(reads, table, ("eng", "en-US"))
    assert sorted(english["item_id"].to_list()) == ["1", "3"]
    assert sorted(kept["item_id"].to_list()) == ["1", "3", "9"]
    assert missing == 1


def test_merge_editions_known_answer():
    table = books(
        book(
            "200",
            "The Hunger Games",
            description="short",
            authors=["a1"],
            series=["s1"],
            tags=["ya", "dystopia"],
            tag_counts=[5, 3],
            year=2009,
        ),
        book(
            "31",
            "the hunger games!",
            description="a much longer description",
            authors=["a1", "a2"],
            series=[],
            tags=["dystopia", "war"],
            tag_counts=[4, 1],
            year=2008,
        ),
        book(
            "1000",
            "THE  HUNGER  GAMES",
            description=None,
            authors=[],
            series=["s1"],
            tags=None,
            tag_counts=None,
            year=None,
        ),
        book("7", "Catching Fire", tags=["ya"], tag_counts=[2]),
        book("8", "???", tags=["x"], tag_counts=[1]),
        book("9", "!!!", tags=["y"], tag_counts=[1]),
    )
    reads = interactions([("u", "200", 0, 0, 1), ("v", "1000", 0, 0, 2), ("v", "7", 0, 0, 3)])
    merged_reads, merged = merge_editions(reads, table)

    assert merged_reads["item_id"].to_list() == ["31", "31", "7"]
    assert merged.height == 4
    assert merged.columns == list(BOOK_SCHEMA)
    games = merged.filter(pl.col("item_id") == "31").row(0, named=True)
    assert games["title"] == "the hunger games!"
    assert games["description"] == "a much longer description"
    assert games["authors"] == ["a1", "a2"]
    assert games["series"] == ["s1"]
    assert games["tags"] == ["dystopia", "ya", "war"]
    assert games["tag_counts"] == [7, 5, 1]
    assert games["year"] == 2008
    # Titles that normalise to nothing are never merged with each other.
    assert set(merged["item_id"].to_list()) == {"31", "7", "8", "9"}


def test_merge_editions_representative_numeric_order():
    table = books(book("10", "Same"), book("9", "same"), book("100", "SAME"))
    reads = interactions([("u", "100", 0, 0, 1)])
    merged_reads, merged = merge_editions(reads, table)
    assert merged["item_id"].to_list() == ["9"]
    assert merged_reads["item_id"].to_list() == ["9"]


def test_collapse_pairs_known_answer():
    reads = interactions(
        [("u", "1", 0, 1, 5), ("u", "1", 4, 0, 3), ("u", "1", 2, 0, 9), ("u", "2", 3, 0, 1)]
    )
    out = collapse_pairs(reads)
    assert out.height == 2
    first = out.filter(pl.col("item_id") == "1").row(0, named=True)
    assert first["rating"] == 4.0
    assert first["is_read"] is True
    assert first["date_added"] == day(3)
    assert out.schema == reads.schema


def test_keep_active_users_threshold():
    reads = interactions(
        [
            ("a", "1", 0, 0, 1),
            ("a", "2", 0, 0, 1),
            ("a", "3", 0, 0, 1),
            ("b", "1", 0, 0, 1),
            ("b", "2", 0, 0, 1),
        ]
    )
    assert keep_active_users(reads, 3)["user_id"].unique().to_list() == ["a"]
    assert keep_active_users(reads, 2).height == 5


def test_keep_recent_share_and_ties():
    reads = interactions([("u", str(i), 0, 0, i) for i in range(1, 11)])
    kept = keep_recent(reads, 0.6)
    assert sorted(kept["date_added"].dt.day().to_list()) == [5, 6, 7, 8, 9, 10]
    tied = interactions([("u", str(i), 0, 0, 1 if i < 5 else 2) for i in range(1, 11)])
    assert keep_recent(tied, 0.5).height == 6
    assert keep_recent(reads, 1.0).height == 10


def test_keep_recent_rejects_bad_share():
    reads = interactions([("u", "1", 0, 0, 1)])
    with pytest.raises(DataError, match="recent_share"):
        keep_recent(reads, 0.0)


def _raw_dataset() -> Dataset:
    reads = interactions(
        [
            ("a", "1", 0, 0, 1),
            ("a", "1b", 5, 1, 2),
            ("a", "2", 0, 0, 3),
            ("a", "3", 0, 0, 4),
            ("a", "es", 0, 0, 5),
            ("b", "1", 0, 0, 6),
            ("b", "2", 0, 0, 7),
            ("b", "3", 0, 0, 8),
            ("b", "4", 0, 0, 9),
            ("c", "1", 0, 0, 10),
            ("c", "2", 0, 0, 11),
        ]
    )
    table = books(
        book("1", "One"),
        book("1b", "ONE!"),
        book("2", "Two"),
        book("3", "Three"),
        book("4", "Four"),
        book("es", "Uno", "spa"),
    )
    return Dataset(name="tiny", interactions=reads, books=table)


def test_prepare_steps_known_counts():
    protocol = ProtocolConfig(min_user_items=3, recent_share=0.5)
    prepared = prepare(_raw_dataset(), protocol, show_progress=False)
    assert prepared.steps == [
        (STEP_INPUT, 11),
        (STEP_ENGLISH, 10),
        (STEP_MERGE, 10),
        (STEP_COLLAPSE, 9),
        (STEP_MIN_USER_ITEMS, 7),
        (STEP_RECENT, 4),
    ]
    assert prepared.skipped == []
    assert sorted(prepared.books["item_id"].to_list()) == ["1", "2", "3", "4"]
    merged_pair = prepared.interactions.filter(
        (pl.col("user_id") == "a") & (pl.col("item_id") == "1")
    )
    assert merged_pair.height == 0  # dated day 1, before the recent half


def test_prepare_without_books_skips_metadata_steps():
    dataset = _raw_dataset()
    dataset.books = None
    prepared = prepare(dataset, ProtocolConfig(min_user_items=1), show_progress=False)
    names = [name for name, _ in prepared.steps]
    assert names == [STEP_INPUT, STEP_COLLAPSE, STEP_MIN_USER_ITEMS, STEP_RECENT]
    assert len(prepared.skipped) == 2
    assert prepared.skipped[0].startswith(STEP_ENGLISH)
    assert prepared.skipped[1].startswith(STEP_MERGE)
    assert "no book metadata" in prepared.skipped[0]


def test_prepare_fixed_test_skips_everything():
    dataset = _raw_dataset()
    dataset.test = pl.DataFrame({"user_id": ["a"], "item_id": ["4"]})
    prepared = prepare(dataset, ProtocolConfig(), show_progress=False)
    assert prepared.steps == [(STEP_INPUT, 11)]
    assert len(prepared.skipped) == 5
    assert all("fixed test set" in reason for reason in prepared.skipped)
    assert prepared.interactions.equals(dataset.interactions)
    assert prepared.test.equals(dataset.test)


def test_prepare_counts_rows_without_date():
    dataset = _raw_dataset()
    dataset.interactions = pl.concat(
        [
            dataset.interactions,
            pl.DataFrame([("d", "1", 0.0, False, None)], schema=INTERACTION_SCHEMA, orient="row"),
        ]
    )
    prepared = prepare(dataset, ProtocolConfig(min_user_items=1), show_progress=False)
    assert prepared.steps[1] == ("valid_rows", 11)
    assert any("1 interactions without" in note for note in prepared.notes)


def test_prepare_rejects_empty_result():
    dataset = _raw_dataset()
    with pytest.raises(DataError, match="min_user_items"):
        prepare(dataset, ProtocolConfig(min_user_items=50), show_progress=False)


def test_prepare_language_free_books_skip_english():
    dataset = _raw_dataset()
    dataset.books = dataset.books.with_columns(pl.lit(None, dtype=pl.Utf8).alias("language"))
    prepared = prepare(dataset, ProtocolConfig(min_user_items=1), show_progress=False)
    assert prepared.skipped[0].startswith(STEP_ENGLISH)
    assert "no language values" in prepared.skipped[0]


def test_keep_active_users_counts_distinct_items():
    reads = interactions(
        [
            ("a", "1", 0, 0, 1),
            ("a", "1", 0, 0, 2),
            ("a", "2", 0, 0, 3),
            ("b", "1", 0, 0, 1),
            ("b", "2", 0, 0, 1),
            ("b", "3", 0, 0, 1),
        ]
    )
    assert keep_active_users(reads, 3)["user_id"].unique().to_list() == ["b"]
    assert keep_active_users(reads, 2).height == 6


def test_repeated_pairs_marks_every_row():
    reads = interactions([("a", "1", 0, 0, 1), ("b", "1", 0, 0, 2), ("a", "1", 0, 0, 3)])
    assert repeated_pairs(reads).to_list() == [True, False, True]
    assert not repeated_pairs(reads.head(2)).any()


def test_repeated_pairs_matches_is_duplicated():
    rng = np.random.default_rng(0)
    frame = pl.DataFrame(
        {
            "user_id": rng.integers(0, 50, 3_000).astype(str),
            "item_id": rng.integers(0, 80, 3_000).astype(str),
        }
    )
    expected = frame.select(pl.struct("user_id", "item_id").is_duplicated()).to_series()
    assert repeated_pairs(frame).to_list() == expected.to_list()
