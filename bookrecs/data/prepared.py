"""Reader for prepared Parquet files that come with a fixed test set.

Files in `data_dir`:

train.pq (required)
    user_id, item_id, date_added (required); rating, is_read (optional, default 0 and True).
test.pq (required)
    user_id, item_id: the evaluation pairs, used exactly as given.
books.pq (optional)
    item_id (required); title, description, authors, series, tags, year, language (optional).
    Other columns, such as url and image_url, are not kept.

Ids may be stored as integers; they are cast to text.
"""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from bookrecs.columns import DATE, ITEM_ID, USER_ID
from bookrecs.data.dataset import Dataset, DropReport
from bookrecs.data.manifest import file_record
from bookrecs.data.validate import (
    clean_books,
    clean_interactions,
    log_drops,
    parse_timestamp,
    read_table,
    require_columns,
    require_file,
    with_interaction_defaults,
)
from bookrecs.exceptions import DataError

logger = logging.getLogger("bookrecs.data")

TRAIN_FILE = "train.pq"
TEST_FILE = "test.pq"
BOOKS_FILE = "books.pq"

FIX = "see docs/data.md for the columns of the prepared format"
CORRUPT_FIX = (
    "replace it with a valid Parquet file, written for example by polars "
    "DataFrame.write_parquet or pandas DataFrame.to_parquet; " + FIX
)


def read_prepared(data_dir: Path, show_progress: bool = True) -> Dataset:
    """Read prepared `train.pq`, `test.pq` and optional `books.pq` into a validated `Dataset`.

    Parameters
    ----------
    data_dir
        Folder holding the files (see the module docstring).
    show_progress
        Accepted for the same signature as the other readers; Parquet files are read in one call.

    Returns
    -------
    Dataset
        Validated train interactions, `test` as given (ids cast to text, nothing dropped), and
        books or None with a note that content features are off.

    Raises
    ------
    DataError
        A required file or column is missing, or a file is not readable Parquet.
    """
    data_dir = Path(data_dir)
    drops = DropReport()
    notes: list[str] = []

    train_path = data_dir / TRAIN_FILE
    require_file(train_path, f"put {TRAIN_FILE} into {data_dir}; {FIX}")
    raw_train = read_table(train_path, CORRUPT_FIX)
    require_columns(raw_train.columns, (USER_ID, ITEM_ID, DATE), train_path, FIX)
    interactions = clean_interactions(
        with_interaction_defaults(raw_train),
        train_path.name,
        drops,
        parse_timestamp(raw_train, DATE),
    )

    test_path = data_dir / TEST_FILE
    require_file(test_path, f"put {TEST_FILE} into {data_dir}; {FIX}")
    raw_test = read_table(test_path, CORRUPT_FIX)
    require_columns(raw_test.columns, (USER_ID, ITEM_ID), test_path, FIX)
    test = raw_test.select(pl.col(USER_ID).cast(pl.Utf8), pl.col(ITEM_ID).cast(pl.Utf8))
    null_ids = test.filter(pl.col(USER_ID).is_null() | pl.col(ITEM_ID).is_null()).height
    if null_ids:
        logger.warning(
            "%s has %s rows with a missing id; they are kept because the test set is used as given",
            test_path,
            f"{null_ids:,}",
        )

    manifest = [file_record(train_path, raw_train.height), file_record(test_path, raw_test.height)]
    books_path = data_dir / BOOKS_FILE
    if books_path.is_file():
        raw_books = read_table(books_path, CORRUPT_FIX)
        require_columns(raw_books.columns, (ITEM_ID,), books_path, FIX)
        books = clean_books(raw_books, books_path.name, drops)
        manifest.append(file_record(books_path, raw_books.height))
    else:
        books = None
        note = (
            f"no book metadata: {books_path} not found, so content features are off "
            "(titles, authors, series and tags are unknown)"
        )
        notes.append(note)
        logger.warning(note)

    log_drops(drops, "prepared", interactions.height)
    if interactions.height == 0:
        raise DataError(f"{train_path} has no valid interactions: {FIX}")
    return Dataset(
        name="prepared",
        interactions=interactions,
        books=books,
        test=test,
        drops=drops,
        manifest=manifest,
        notes=notes,
    )
