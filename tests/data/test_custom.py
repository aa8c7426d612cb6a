"""Tests of the custom table reader."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from bookrecs.data.custom import read_custom
from bookrecs.data.dataset import BOOK_SCHEMA, INTERACTION_SCHEMA
from bookrecs.data.validate import (
    REASON_BAD_DATE,
    REASON_BAD_IS_READ,
    REASON_BAD_RATING,
    REASON_DUPLICATE_ITEM,
    REASON_MISSING_ITEM,
)
from bookrecs.exceptions import DataError

INTERACTIONS_CSV = """user_id,item_id,timestamp,rating,is_read
u1,i1,2017-03-29T00:12:52Z,5,true
u1,i2,1490746372,,
u2,i1,2017-03-29,3.5,FALSE
u2,,2017-03-29,3,true
u3,i3,tomorrow,3,true
u3,i4,2017-03-29,7,true
u3,i5,2017-03-29,2,maybe
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text)
    return path


def test_csv_rows_and_defaults(tmp_path):
    write(tmp_path, "interactions.csv", INTERACTIONS_CSV)

    dataset = read_custom(tmp_path, show_progress=False)

    frame = dataset.interactions
    assert dict(frame.schema) == INTERACTION_SCHEMA
    assert frame.get_column("item_id").to_list() == ["i1", "i2", "i1"]
    assert frame.get_column("rating").to_list() == [5.0, 0.0, 3.5]
    assert frame.get_column("is_read").to_list() == [True, True, False]
    assert frame.get_column("date_added").to_list() == [
        datetime(2017, 3, 29, 0, 12, 52, tzinfo=UTC),
        datetime(2017, 3, 29, 0, 12, 52, tzinfo=UTC),
        datetime(2017, 3, 29, tzinfo=UTC),
    ]
    source = "interactions.csv"
    assert dataset.drops.counts[(source, REASON_MISSING_ITEM)] == 1
    assert dataset.drops.counts[(source, REASON_BAD_DATE)] == 1
    assert dataset.drops.counts[(source, REASON_BAD_RATING)] == 1
    assert dataset.drops.counts[(source, REASON_BAD_IS_READ)] == 1
    assert dataset.books is None
    assert "content features are off" in dataset.notes[0]
    assert dataset.manifest[0].rows == 7


def test_millisecond_timestamps_dropped(tmp_path):
    rows = "user_id,item_id,timestamp\nu1,i1,1490746372\nu1,i2,1490746372000\nu1,i3,20170329\n"
    write(tmp_path, "interactions.csv", rows)

    dataset = read_custom(tmp_path, show_progress=False)

    assert dataset.interactions.get_column("item_id").to_list() == ["i1"]
    assert dataset.drops.counts[("interactions.csv", REASON_BAD_DATE)] == 2


def test_parquet_without_optional_columns(tmp_path):
    pl.DataFrame(
        {"user_id": [1, 2], "item_id": [7, 8], "timestamp": [1490746372.0, 1490746373.5]}
    ).write_parquet(tmp_path / "interactions.parquet")

    dataset = read_custom(tmp_path, show_progress=False)

    frame = dataset.interactions
    assert frame.get_column("user_id").to_list() == ["1", "2"]
    assert frame.get_column("rating").to_list() == [0.0, 0.0]
    assert frame.get_column("is_read").to_list() == [True, True]
    assert frame.item(1, "date_added") == datetime(2017, 3, 29, 0, 12, 53, 500000, tzinfo=UTC)


def test_items_table(tmp_path):
    write(tmp_path, "interactions.csv", INTERACTIONS_CSV)
    write(
        tmp_path,
        "items.csv",
        "item_id,title,authors,tags,year,language,extra\n"
        "i1,One,Ann|Bo,fantasy| ya ,2001,eng,x\n"
        "i2,Two,,,unknown,,x\n"
        ",Nameless,,,,,x\n"
        "i1,Again,,,,,x\n",
    )

    dataset = read_custom(tmp_path, show_progress=False)

    books = dataset.books
    assert books is not None
    assert dict(books.schema) == BOOK_SCHEMA
    first, second = books.to_dicts()
    assert first["authors"] == ["Ann", "Bo"]
    assert first["tags"] == ["fantasy", "ya"]
    assert first["year"] == 2001
    assert first["series"] is None
    assert second["year"] is None
    assert second["language"] is None
    assert dataset.drops.counts[("items.csv", REASON_MISSING_ITEM)] == 1
    assert dataset.drops.counts[("items.csv", REASON_DUPLICATE_ITEM)] == 1
    assert dataset.notes == []


def test_items_blank_text_entries_removed(tmp_path):
    write(tmp_path, "interactions.csv", INTERACTIONS_CSV)
    write(tmp_path, "items.csv", 'item_id,authors,tags\ni1, A | | B ,|  |\ni2," ",ya\n')

    books = read_custom(tmp_path, show_progress=False).books

    assert books is not None
    first, second = books.to_dicts()
    assert first["authors"] == ["A", "B"]
    assert first["tags"] == []
    assert second["authors"] == []
    assert second["tags"] == ["ya"]


def test_items_blank_list_entries_removed(tmp_path):
    write(tmp_path, "interactions.csv", INTERACTIONS_CSV)
    pl.DataFrame(
        {"item_id": ["i1", "i2"], "authors": [[" A", " ", "B"], [""]], "tags": [["ya "], []]}
    ).write_parquet(tmp_path / "items.parquet")

    books = read_custom(tmp_path, show_progress=False).books

    assert books is not None
    first, second = books.to_dicts()
    assert first["authors"] == ["A", "B"]
    assert first["tags"] == ["ya"]
    assert second["authors"] == []
    assert second["tags"] == []


def test_missing_interactions(tmp_path):
    with pytest.raises(DataError, match="has no interactions.csv or interactions.parquet"):
        read_custom(tmp_path, show_progress=False)


def test_missing_timestamp_column(tmp_path):
    write(tmp_path, "interactions.csv", "user_id,item_id,rating\nu1,i1,3\n")

    with pytest.raises(DataError, match="has no column 'timestamp'"):
        read_custom(tmp_path, show_progress=False)


def test_both_formats(tmp_path):
    write(tmp_path, "interactions.csv", INTERACTIONS_CSV)
    pl.DataFrame({"user_id": ["a"], "item_id": ["b"], "timestamp": [1]}).write_parquet(
        tmp_path / "interactions.parquet"
    )

    with pytest.raises(DataError, match="keep only one"):
        read_custom(tmp_path, show_progress=False)


def test_ragged_csv(tmp_path):
    write(tmp_path, "interactions.csv", "user_id,item_id,timestamp\nu1,i1,1,extra,cells\n")

    with pytest.raises(DataError, match="is not a readable CSV file") as caught:
        read_custom(tmp_path, show_progress=False)

    assert caught.value.__cause__ is None


def test_all_rows_invalid(tmp_path):
    write(tmp_path, "interactions.csv", "user_id,item_id,timestamp\nu1,i1,never\n")

    with pytest.raises(DataError, match="has no valid interactions"):
        read_custom(tmp_path, show_progress=False)


def test_list_user_id_rejected(tmp_path):
    pl.DataFrame({"user_id": [["a", "b"]], "item_id": ["i"], "timestamp": [1.0]}).write_parquet(
        tmp_path / "interactions.parquet"
    )

    with pytest.raises(DataError, match="has a column of an unsupported type") as caught:
        read_custom(tmp_path, show_progress=False)

    assert "user_id: List(String)" in str(caught.value)
