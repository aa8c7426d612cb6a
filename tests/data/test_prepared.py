"""Tests of the prepared Parquet reader."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from bookrecs.data.dataset import BOOK_SCHEMA, INTERACTION_SCHEMA
from bookrecs.data.prepared import BOOKS_FILE, TEST_FILE, TRAIN_FILE, read_prepared
from bookrecs.data.validate import REASON_BAD_DATE, REASON_BAD_RATING, REASON_MISSING_USER
from bookrecs.exceptions import DataError


def write_files(folder: Path, *, books: bool = True) -> Path:
    pl.DataFrame(
        {
            "user_id": [1, 1, 2, None, 3],
            "item_id": [10, 11, 10, 12, 13],
            "is_read": [True, False, True, True, True],
            "rating": [5, 0, 3, 4, 9],
            "date_added": [
                datetime(2017, 1, 1, 12),
                datetime(2017, 2, 1),
                datetime(2017, 3, 1),
                datetime(2017, 4, 1),
                datetime(2017, 5, 1),
            ],
        }
    ).write_parquet(folder / TRAIN_FILE)
    pl.DataFrame({"user_id": [2, 1, 1, 9], "item_id": [11, 13, 13, 99]}).write_parquet(
        folder / TEST_FILE
    )
    if books:
        pl.DataFrame(
            {
                "item_id": [10, 11, 13],
                "title": ["Ten", "Eleven", ""],
                "description": ["d10", None, "d13"],
                "url": ["u10", "u11", "u13"],
                "image_url": ["i10", "i11", "i13"],
                "series": [["s1"], [], None],
                "tags": [["fantasy", "ya"], ["romance"], []],
                "authors": ["Ann|Bo", "Cy", None],
            }
        ).write_parquet(folder / BOOKS_FILE)
    return folder


def test_train_schema_and_drops(tmp_path):
    dataset = read_prepared(write_files(tmp_path), show_progress=False)

    train = dataset.interactions
    assert dict(train.schema) == INTERACTION_SCHEMA
    assert train.get_column("user_id").to_list() == ["1", "1", "2"]
    assert train.get_column("item_id").to_list() == ["10", "11", "10"]
    assert train.item(0, "date_added") == datetime(2017, 1, 1, 12, tzinfo=UTC)
    assert dataset.drops.counts[(TRAIN_FILE, REASON_MISSING_USER)] == 1
    assert dataset.drops.counts[(TRAIN_FILE, REASON_BAD_RATING)] == 1
    assert dataset.name == "prepared"


def test_test_set_as_given(tmp_path):
    dataset = read_prepared(write_files(tmp_path), show_progress=False)

    test = dataset.test
    assert test is not None
    assert dict(test.schema) == {"user_id": pl.Utf8, "item_id": pl.Utf8}
    assert test.rows() == [("2", "11"), ("1", "13"), ("1", "13"), ("9", "99")]


def test_books_schema(tmp_path):
    dataset = read_prepared(write_files(tmp_path), show_progress=False)

    books = dataset.books
    assert books is not None
    assert dict(books.schema) == BOOK_SCHEMA
    first, second, third = books.to_dicts()
    assert first["item_id"] == "10"
    assert first["authors"] == ["Ann", "Bo"]
    assert first["tags"] == ["fantasy", "ya"]
    assert first["series"] == ["s1"]
    assert first["tag_counts"] is None
    assert second["description"] is None
    assert third["title"] is None
    assert third["authors"] is None
    assert [Path(r.path).name for r in dataset.manifest] == [TRAIN_FILE, TEST_FILE, BOOKS_FILE]


def test_string_dates_and_defaults(tmp_path):
    write_files(tmp_path)
    pl.DataFrame(
        {
            "user_id": ["a", "b", "c"],
            "item_id": ["x", "y", "z"],
            "date_added": ["2017-01-01T10:00:00+02:00", "1483228800", "not a date"],
        }
    ).write_parquet(tmp_path / TRAIN_FILE)

    dataset = read_prepared(tmp_path, show_progress=False)

    train = dataset.interactions
    assert train.get_column("date_added").to_list() == [
        datetime(2017, 1, 1, 8, tzinfo=UTC),
        datetime(2017, 1, 1, tzinfo=UTC),
    ]
    assert train.get_column("rating").to_list() == [0.0, 0.0]
    assert train.get_column("is_read").to_list() == [True, True]
    assert dataset.drops.counts[(TRAIN_FILE, REASON_BAD_DATE)] == 1


def test_no_books_note(tmp_path):
    dataset = read_prepared(write_files(tmp_path, books=False), show_progress=False)

    assert dataset.books is None
    assert len(dataset.notes) == 1
    assert "content features are off" in dataset.notes[0]


@pytest.mark.parametrize("name", [TRAIN_FILE, TEST_FILE])
def test_missing_file(tmp_path, name):
    write_files(tmp_path)
    (tmp_path / name).unlink()

    with pytest.raises(DataError, match=f"{name} not found"):
        read_prepared(tmp_path, show_progress=False)


def test_missing_column(tmp_path):
    write_files(tmp_path)
    pl.DataFrame({"user_id": [1], "date_added": [datetime(2017, 1, 1)]}).write_parquet(
        tmp_path / TRAIN_FILE
    )

    with pytest.raises(DataError, match="has no column 'item_id'") as caught:
        read_prepared(tmp_path, show_progress=False)

    assert "docs/data.md" in str(caught.value)


def test_not_parquet(tmp_path):
    write_files(tmp_path)
    (tmp_path / TEST_FILE).write_text("user_id,item_id\n1,2\n")

    with pytest.raises(DataError, match="is not a readable Parquet file") as caught:
        read_prepared(tmp_path, show_progress=False)

    assert caught.value.__cause__ is None


@pytest.mark.parametrize("name", [TRAIN_FILE, TEST_FILE, BOOKS_FILE])
def test_truncated_parquet_fix(tmp_path, name):
    write_files(tmp_path)
    path = tmp_path / name
    path.write_bytes(path.read_bytes()[:100])

    with pytest.raises(DataError, match=f"{name} is not a readable Parquet file") as caught:
        read_prepared(tmp_path, show_progress=False)

    message = str(caught.value)
    assert "replace it with a valid Parquet file" in message
    assert "into" not in message


def test_unsupported_column_type(tmp_path):
    write_files(tmp_path)
    pl.DataFrame({"item_id": ["10"], "authors": [[{"id": 1, "role": "x"}]]}).write_parquet(
        tmp_path / BOOKS_FILE
    )

    with pytest.raises(DataError, match="books.pq column 'authors' has type List") as caught:
        read_prepared(tmp_path, show_progress=False)

    assert "separated by `|`" in str(caught.value)


def test_tag_counts_kept_when_aligned(tmp_path):
    write_files(tmp_path)
    pl.DataFrame(
        {
            "item_id": ["10", "11"],
            "tags": [["a", "b"], ["c"]],
            "tag_counts": [[3, 1], [1, 2]],
        }
    ).write_parquet(tmp_path / BOOKS_FILE)

    books = read_prepared(tmp_path, show_progress=False).books

    assert books is not None
    assert books.get_column("tag_counts").to_list() == [[3, 1], None]
