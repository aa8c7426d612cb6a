"""Reader for a user's own interaction table and optional item catalogue.

Files in `data_dir` (CSV or Parquet; give each table in one format only):

interactions.csv | interactions.parquet (required)
    user_id, item_id, timestamp (ISO-8601 text or Unix seconds) required; rating (0..5,
    missing means unrated: 0) and is_read (missing means True, because a logged interaction
    means the user engaged with the item) optional.
items.csv | items.parquet (optional)
    item_id required; title, description, authors, series, tags (lists, or text with values
    separated by `|`), year, language optional.
"""

from __future__ import annotations

import logging
from pathlib import Path

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
    with_interaction_defaults,
)
from bookrecs.exceptions import DataError

logger = logging.getLogger("bookrecs.data")

INTERACTIONS_STEM = "interactions"
ITEMS_STEM = "items"
TIMESTAMP = "timestamp"
SUFFIXES = (".csv", ".parquet")

FIX = "see docs/data.md for the columns of the custom format"


def read_custom(data_dir: Path, show_progress: bool = True) -> Dataset:
    """Read `interactions.{csv,parquet}` and optional `items.{csv,parquet}` into a `Dataset`.

    Parameters
    ----------
    data_dir
        Folder holding the tables (see the module docstring).
    show_progress
        Accepted for the same signature as the other readers; tables are read in one call.

    Returns
    -------
    Dataset
        Validated interactions (timestamp becomes date_added, in UTC; text without an offset
        is read as UTC) and items as books, or None with a note that content features are off.

    Raises
    ------
    DataError
        The interactions table or a required column is missing, a table exists in both
        formats, or a file cannot be parsed.
    """
    data_dir = Path(data_dir)
    drops = DropReport()
    notes: list[str] = []

    interactions_path = find_table(data_dir, INTERACTIONS_STEM)
    if interactions_path is None:
        raise DataError(
            f"{data_dir} has no interactions.csv or interactions.parquet: "
            f"put your interaction table there; {FIX}"
        )
    raw = read_table(interactions_path, FIX)
    require_columns(raw.columns, (USER_ID, ITEM_ID, TIMESTAMP), interactions_path, FIX)
    raw = with_interaction_defaults(raw.rename({TIMESTAMP: DATE}))
    interactions = clean_interactions(
        raw, interactions_path.name, drops, parse_timestamp(raw, DATE)
    )
    manifest = [file_record(interactions_path, raw.height)]

    items_path = find_table(data_dir, ITEMS_STEM)
    if items_path is not None:
        raw_items = read_table(items_path, FIX)
        require_columns(raw_items.columns, (ITEM_ID,), items_path, FIX)
        books = clean_books(raw_items, items_path.name, drops)
        manifest.append(file_record(items_path, raw_items.height))
    else:
        books = None
        note = (
            f"no book metadata: {data_dir} has no items.csv or items.parquet, so content "
            "features are off (titles, authors, series and tags are unknown)"
        )
        notes.append(note)
        logger.warning(note)

    log_drops(drops, "custom", interactions.height)
    if interactions.height == 0:
        raise DataError(f"{interactions_path} has no valid interactions: {FIX}")
    return Dataset(
        name="custom",
        interactions=interactions,
        books=books,
        drops=drops,
        manifest=manifest,
        notes=notes,
    )


def find_table(data_dir: Path, stem: str) -> Path | None:
    """Return `data_dir/<stem>.csv` or `.parquet`, None when neither exists.

    Raises
    ------
    DataError
        Both files exist, so it is unclear which one to read.
    """
    found = [data_dir / f"{stem}{suffix}" for suffix in SUFFIXES]
    found = [path for path in found if path.is_file()]
    if len(found) > 1:
        raise DataError(
            f"{data_dir} has both {found[0].name} and {found[1].name}: keep only one of them"
        )
    return found[0] if found else None
