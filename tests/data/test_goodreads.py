"""Tests of the UCSD Goodreads reader on tiny files written per test and on the real sample."""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from bookrecs.data.dataset import BOOK_SCHEMA, INTERACTION_SCHEMA, DropReport
from bookrecs.data.goodreads import (
    AUTHORS_FILE,
    BOOKS_FILE,
    GENRES_FILE,
    INTERACTION_FIELDS,
    INTERACTIONS_FILE,
    SERIES_FILE,
    LineCount,
    iter_json_blocks,
    read_goodreads,
)
from bookrecs.data.validate import (
    REASON_BAD_DATE,
    REASON_BAD_IS_READ,
    REASON_BAD_JSON,
    REASON_BAD_RATING,
    REASON_DUPLICATE_ITEM,
    REASON_MISSING_ITEM,
    REASON_MISSING_USER,
)
from bookrecs.exceptions import DataError

DATE = "Wed Mar 29 00:12:52 -0700 2017"


def row(user: str | None = "u1", book: str | None = "b1", **fields: object) -> dict:
    values = {
        "user_id": user,
        "book_id": book,
        "review_id": "r",
        "is_read": True,
        "rating": 4,
        "date_added": DATE,
        "read_at": "",
    }
    values.update(fields)
    return values


def write_lines(path: Path, records: list[dict | str]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in records]
    with gzip.open(path, "wt", encoding="utf-8") as stream:
        stream.write("\n".join(lines) + "\n")
    return path


def write_interactions(folder: Path, records: list[dict | str]) -> Path:
    write_lines(folder / INTERACTIONS_FILE, records)
    return folder


def read_error(folder: Path) -> DataError:
    with pytest.raises(DataError) as caught:
        read_goodreads(folder, show_progress=False)
    assert caught.value.__suppress_context__ or caught.value.__cause__ is None
    return caught.value


def test_valid_rows_schema(tmp_path):
    write_interactions(
        tmp_path,
        [
            row("u1", "b1", rating=5, is_read=True),
            row("u1", 22, rating=0, is_read=False),
            row("u2", "b1", rating=3, date_added="Mon Jan 02 10:00:00 +0100 2012"),
        ],
    )

    dataset = read_goodreads(tmp_path, show_progress=False)

    frame = dataset.interactions
    assert dict(frame.schema) == INTERACTION_SCHEMA
    assert frame.get_column("user_id").to_list() == ["u1", "u1", "u2"]
    assert frame.get_column("item_id").to_list() == ["b1", "22", "b1"]
    assert frame.get_column("rating").to_list() == [5.0, 0.0, 3.0]
    assert frame.get_column("is_read").to_list() == [True, False, True]
    assert frame.item(0, "date_added") == datetime(2017, 3, 29, 7, 12, 52, tzinfo=UTC)
    assert frame.item(2, "date_added") == datetime(2012, 1, 2, 9, 0, 0, tzinfo=UTC)
    assert dataset.name == "goodreads"
    assert dataset.synthetic is False
    assert dataset.drops.total == 0


def test_bad_rows_counted(tmp_path, caplog):
    write_interactions(
        tmp_path,
        [
            row("u1", "b1"),
            row(None, "b2"),
            row("", "b2"),
            row("u1", None),
            row("u1", "b3", date_added="yesterday"),
            row("u1", "b4", date_added=""),
            row("u1", "b5", rating=7),
            row("u1", "b6", rating=-1),
            row("u1", "b7", rating="four"),
            row("u1", "b8", is_read="maybe"),
            row(None, "b9", rating=7),
            row("u2", "b1"),
        ],
    )

    with caplog.at_level(logging.WARNING, logger="bookrecs.data"):
        dataset = read_goodreads(tmp_path, show_progress=False)

    counts = dataset.drops.counts
    assert dataset.interactions.height == 2
    assert counts[(INTERACTIONS_FILE, REASON_MISSING_USER)] == 3
    assert counts[(INTERACTIONS_FILE, REASON_MISSING_ITEM)] == 1
    assert counts[(INTERACTIONS_FILE, REASON_BAD_DATE)] == 2
    assert counts[(INTERACTIONS_FILE, REASON_BAD_RATING)] == 3
    assert counts[(INTERACTIONS_FILE, REASON_BAD_IS_READ)] == 1
    assert dataset.drops.total == 10
    summaries = [r for r in caplog.records if "dropped as invalid" in r.getMessage()]
    assert len(summaries) == 1
    assert "rating not a number in 0..5" in summaries[0].getMessage()


def test_malformed_line_counted(tmp_path):
    write_interactions(tmp_path, [row("u1", "b1"), "{not json", row("u2", "b2"), "[1, 2]"])

    dataset = read_goodreads(tmp_path, show_progress=False)

    assert dataset.interactions.get_column("user_id").to_list() == ["u1", "u2"]
    assert dataset.drops.counts[(INTERACTIONS_FILE, REASON_BAD_JSON)] == 2
    assert dataset.manifest[0].rows == 4


def test_truncated_gzip(tmp_path):
    write_interactions(
        tmp_path, [row(f"u{i}", f"b{i}", review_id=f"r{i}" * 20) for i in range(300)]
    )
    path = tmp_path / INTERACTIONS_FILE
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])

    error = read_error(tmp_path)

    assert str(path) in str(error)
    assert "truncated" in str(error)
    assert "make data" in str(error)


def test_not_gzip(tmp_path):
    (tmp_path / INTERACTIONS_FILE).write_text(json.dumps(row()) + "\n")

    error = read_error(tmp_path)

    assert "not a gzip file" in str(error)


def test_not_json_lines(tmp_path):
    write_interactions(tmp_path, ["user_id,book_id,rating", "u1,b1,4", "u2,b2,5"])

    error = read_error(tmp_path)

    assert str(tmp_path / INTERACTIONS_FILE) in str(error)
    assert "not JSON lines" in str(error)


def test_missing_field(tmp_path):
    records = [row(f"u{i}", "b1") for i in range(3)]
    for record in records:
        del record["rating"]
    write_interactions(tmp_path, records)

    error = read_error(tmp_path)

    assert "no field 'rating'" in str(error)


def test_missing_file(tmp_path):
    error = read_error(tmp_path)

    assert str(tmp_path / INTERACTIONS_FILE) in str(error)
    assert "not found" in str(error)
    assert "make data" in str(error)


def test_too_many_bad_lines(tmp_path, monkeypatch):
    monkeypatch.setattr("bookrecs.data.goodreads.MAX_BAD_LINES", 3)
    write_interactions(tmp_path, [row()] + ["oops"] * 5)

    error = read_error(tmp_path)

    assert "more than 3 lines" in str(error)


def test_block_boundaries(tmp_path):
    records = [row(f"u{i}", f"b{i % 7}", rating=i % 6) for i in range(200)]
    path = write_lines(tmp_path / "part.json.gz", records)
    count = LineCount()

    frames = list(
        iter_json_blocks(path, INTERACTION_FIELDS, DropReport(), count, False, block_bytes=300)
    )

    merged = pl.concat(frames)
    assert len(frames) > 10
    assert merged.get_column("user_id").to_list() == [f"u{i}" for i in range(200)]
    assert count.rows == 200
    assert count.bad == 0


def test_no_books_note(tmp_path, caplog):
    write_interactions(tmp_path, [row()])

    with caplog.at_level(logging.WARNING, logger="bookrecs.data"):
        dataset = read_goodreads(tmp_path, show_progress=False)

    assert dataset.books is None
    assert len(dataset.notes) == 1
    assert dataset.notes[0].startswith("no book metadata:")
    assert "content features are off" in dataset.notes[0]
    notes_logged = [r for r in caplog.records if "no book metadata" in r.getMessage()]
    assert len(notes_logged) == 1


def book(book_id: str | None, **fields: object) -> dict:
    values = {
        "book_id": book_id,
        "title": f"Title {book_id}",
        "title_without_series": f"Title {book_id}",
        "description": "A story.",
        "authors": [{"author_id": "a1", "role": ""}],
        "series": [],
        "popular_shelves": [
            {"count": "10", "name": "to-read"},
            {"count": "4", "name": "fantasy"},
        ],
        "language_code": "eng",
        "publication_year": "2005",
        "url": "https://example.org",
        "work_id": "w1",
    }
    values.update(fields)
    return values


@pytest.fixture()
def full_dir(tmp_path: Path) -> Path:
    write_interactions(tmp_path, [row("u1", "b1"), row("u1", "b2")])
    write_lines(
        tmp_path / BOOKS_FILE,
        [
            book("b1", series=["s1"]),
            book(
                "b2",
                authors=[{"author_id": "a2", "role": ""}, {"author_id": "a9", "role": "Editor"}],
                publication_year="",
                language_code="",
                title="",
                title_without_series="Fallback",
            ),
            book("b3", popular_shelves=[], description=""),
            book(None),
            book("b1", title="Duplicate"),
        ],
    )
    write_lines(
        tmp_path / AUTHORS_FILE,
        [
            {"author_id": "a1", "name": "Ann Author", "average_rating": "4.1"},
            {"author_id": "a2", "name": "Bo Writer", "average_rating": "3.9"},
            {"author_id": "a3", "name": "Unused", "average_rating": "3.0"},
        ],
    )
    write_lines(tmp_path / SERIES_FILE, [{"series_id": "s1", "title": "The Saga", "note": ""}])
    write_lines(
        tmp_path / GENRES_FILE,
        [
            {"book_id": "b1", "genres": {"fantasy": 3, "young-adult": 9}},
            {"book_id": "b3", "genres": {"romance": 2}},
            {"book_id": "b99", "genres": {"poetry": 1}},
            {"book_id": "b2", "genres": {}},
        ],
    )
    return tmp_path


def test_books_enriched(full_dir):
    dataset = read_goodreads(full_dir, show_progress=False)

    books = dataset.books
    assert books is not None
    assert dict(books.schema) == BOOK_SCHEMA
    assert books.get_column("item_id").to_list() == ["b1", "b2", "b3"]
    first, second, third = books.to_dicts()
    assert first["title"] == "Title b1"
    assert first["authors"] == ["Ann Author"]
    assert first["series"] == ["The Saga"]
    assert first["tags"] == ["to-read", "fantasy", "young-adult"]
    assert first["tag_counts"] == [10, 4, 9]
    assert first["year"] == 2005
    assert first["language"] == "eng"
    assert second["title"] == "Fallback"
    assert second["authors"] == ["Bo Writer", "a9"]
    assert second["year"] is None
    assert second["language"] is None
    assert second["tags"] == ["to-read", "fantasy"]
    assert third["tags"] == ["romance"]
    assert third["tag_counts"] == [2]
    assert third["description"] is None
    assert dataset.notes == []


def test_books_drops_and_manifest(full_dir):
    dataset = read_goodreads(full_dir, show_progress=False)

    assert dataset.drops.counts[(BOOKS_FILE, REASON_MISSING_ITEM)] == 1
    assert dataset.drops.counts[(BOOKS_FILE, REASON_DUPLICATE_ITEM)] == 1
    names = [Path(record.path).name for record in dataset.manifest]
    assert names == [INTERACTIONS_FILE, BOOKS_FILE, AUTHORS_FILE, SERIES_FILE, GENRES_FILE]
    rows = {Path(record.path).name: record.rows for record in dataset.manifest}
    assert rows[BOOKS_FILE] == 5
    assert rows[GENRES_FILE] == 4


def test_books_without_lookups(full_dir):
    for name in (AUTHORS_FILE, SERIES_FILE, GENRES_FILE):
        (full_dir / name).unlink()

    books = read_goodreads(full_dir, show_progress=False).books

    assert books is not None
    first = books.row(0, named=True)
    assert first["authors"] == ["a1"]
    assert first["series"] == ["s1"]
    assert first["tags"] == ["to-read", "fantasy"]


def test_truncated_books_file(full_dir):
    path = full_dir / BOOKS_FILE
    write_lines(path, [book(f"b{i}", description="x" * 500 + str(i)) for i in range(200)])
    path.write_bytes(path.read_bytes()[:-200])

    error = read_error(full_dir)

    assert str(path) in str(error)
    assert "truncated" in str(error)


def test_real_sample(goodreads_head_dir):
    dataset = read_goodreads(goodreads_head_dir, show_progress=False)

    frame = dataset.interactions
    assert frame.height == 5000
    assert frame.get_column("user_id").n_unique() == 64
    assert frame.get_column("item_id").n_unique() == 3555
    assert (frame.get_column("rating") == 0).sum() == 3544
    assert frame.get_column("date_added").min().year == 2006
    assert frame.get_column("date_added").max().year == 2017
    assert dataset.drops.total == 0
    assert dataset.books is None
    assert len(dataset.notes) == 1


def test_real_sample_manifest(goodreads_head_dir):
    dataset = read_goodreads(goodreads_head_dir, show_progress=False)

    path = goodreads_head_dir / INTERACTIONS_FILE
    (record,) = dataset.manifest
    assert record.rows == 5000
    assert record.size_bytes == path.stat().st_size
    assert record.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_all_rows_invalid(tmp_path):
    write_interactions(tmp_path, [row("u1", "b1", rating=7), row("u2", "b2", rating=7)])

    error = read_error(tmp_path)

    message = str(error)
    assert f"{INTERACTIONS_FILE} has no valid interactions" in message
    assert "all 2 lines were dropped (2 rating not a number in 0..5)" in message
    assert "protocol" not in message
