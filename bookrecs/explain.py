"""One-line reasons for recommended books, from metadata shared with the reader's history.

For each recommended book the strongest shared feature wins, in this order:

1. "same series: <series>"       the book continues a series the reader has read;
2. "same author: <author>"       the reader has read another book by this author;
3. "similar shelves: <a>, <b>"   up to two shelves shared with the history, ranked by
                                 (history books on the shelf) x IDF of the shelf. Shelves on
                                 more than half of all books ("young-adult" in a YA
                                 catalogue) are never reasons.
4. "readers with similar taste"  no metadata overlap, so the reason is collaborative.

Shelf document frequencies are computed once per books table and cached while that table is
alive. After that, only the rows of the history and the recommended books are read.
"""

from __future__ import annotations

import logging
import math
import weakref
from collections import Counter
from collections.abc import Iterable

import numpy as np
import polars as pl

from bookrecs.columns import AUTHORS, SERIES, TAGS
from bookrecs.exceptions import DataError
from bookrecs.features import GENERIC_SHELVES

logger = logging.getLogger("bookrecs.explain")

SIMILAR_READERS = "readers with similar taste"
MAX_SHELVES = 2
COMMON_SHELF_SHARE = 0.5

# id(books) -> (weak reference to books, shelf -> IDF), so each table is counted once.
_RARITY_CACHE: dict[int, tuple[weakref.ref, dict[str, float]]] = {}


def explain(
    user_history: np.ndarray,
    items: np.ndarray,
    books: pl.DataFrame | None,
    max_history: int | None = 500,
) -> list[str]:
    """Return one reason per item in `items`.

    Parameters
    ----------
    user_history
        Item indices the user has read (any order); out-of-range and -1 entries are ignored.
    items
        Recommended item indices; -1 (an empty slot) gets an empty string.
    books
        Metadata aligned with the item index (row i describes item i), or None.
    max_history
        Use at most this many history items (the last ones given); None uses all.

    Returns
    -------
    list[str]
        Reasons such as "same series: Harry Potter", "same author: Rick Riordan",
        "similar shelves: fantasy, magic" or "readers with similar taste".
    """
    items = np.asarray(items, dtype=np.int64).ravel()
    if books is None:
        return [SIMILAR_READERS if item >= 0 else "" for item in items]
    n_books = books.height
    out_of_range = items[(items >= n_books)]
    if out_of_range.size:
        raise DataError(
            f"item indices {out_of_range[:5].tolist()} exceed the {n_books} rows of books: "
            "pass the books table aligned with the model's item index"
        )

    history = np.asarray(user_history, dtype=np.int64).ravel()
    history = history[(history >= 0) & (history < n_books)]
    if max_history is not None:
        history = history[-max_history:]
    history_facts = _facts(books, history)
    series_read = set().union(*history_facts[SERIES]) if history.size else set()
    authors_read = set().union(*history_facts[AUTHORS]) if history.size else set()
    rarity = shelf_rarity(books)
    shelf_counts = Counter(
        shelf for shelves in history_facts[TAGS] for shelf in set(shelves) if shelf in rarity
    )

    valid = items >= 0
    item_facts = _facts(books, items[valid])
    reasons = []
    position = 0
    for is_valid in valid:
        if not is_valid:
            reasons.append("")
            continue
        reasons.append(
            _reason(
                item_facts[SERIES][position],
                item_facts[AUTHORS][position],
                item_facts[TAGS][position],
                series_read,
                authors_read,
                shelf_counts,
                rarity,
            )
        )
        position += 1
    return reasons


def _reason(
    series: list[str],
    authors: list[str],
    shelves: list[str],
    series_read: set[str],
    authors_read: set[str],
    shelf_counts: Counter,
    rarity: dict[str, float],
) -> str:
    shared_series = [name for name in series if name in series_read]
    if shared_series:
        return f"same series: {shared_series[0]}"
    shared_authors = [name for name in authors if name in authors_read]
    if shared_authors:
        return f"same author: {shared_authors[0]}"
    shared_shelves = sorted(
        {shelf for shelf in shelves if shelf_counts[shelf] > 0},
        key=lambda shelf: (-shelf_counts[shelf] * rarity[shelf], shelf),
    )
    if shared_shelves:
        return "similar shelves: " + ", ".join(shared_shelves[:MAX_SHELVES])
    return SIMILAR_READERS


def shelf_rarity(books: pl.DataFrame) -> dict[str, float]:
    """Return IDF = log(n_books / books_on_shelf) of every shelf on at most half the books.

    Shelves are lower-cased and reading-status shelves are left out. The result is cached
    for as long as `books` is alive.
    """
    key = id(books)
    cached = _RARITY_CACHE.get(key)
    if cached is not None and cached[0]() is books:
        return cached[1]

    rarity: dict[str, float] = {}
    if TAGS in books.columns and books.height:
        frequency = (
            books.select(pl.int_range(pl.len()).alias("row"), pl.col(TAGS).alias("shelf"))
            .explode("shelf")
            .drop_nulls("shelf")
            .with_columns(pl.col("shelf").str.strip_chars().str.to_lowercase())
            .unique()
            .group_by("shelf")
            .len()
        )
        limit = COMMON_SHELF_SHARE * books.height
        for shelf, count in frequency.iter_rows():
            if shelf and shelf not in GENERIC_SHELVES and count <= limit:
                rarity[shelf] = math.log(books.height / count)

    _RARITY_CACHE[key] = (weakref.ref(books, lambda _: _RARITY_CACHE.pop(key, None)), rarity)
    logger.debug("counted %d shelves on %d books", len(rarity), books.height)
    return rarity


def _facts(books: pl.DataFrame, rows: np.ndarray) -> dict[str, list[list[str]]]:
    """Return series, authors and non-generic shelves (lower-cased) of `rows`, in order."""
    picked = books[rows.tolist()] if rows.size else books.head(0)
    facts: dict[str, list[list[str]]] = {}
    for column in (SERIES, AUTHORS, TAGS):
        if column not in picked.columns:
            facts[column] = [[] for _ in range(len(rows))]
            continue
        values = picked[column].to_list()
        facts[column] = [_clean(value, lower=column == TAGS) for value in values]
    return facts


def _clean(values: Iterable[str] | None, lower: bool) -> list[str]:
    if values is None:
        return []
    cleaned = []
    for value in values:
        if value is None:
            continue
        text = value.strip().lower() if lower else value.strip()
        if text and not (lower and text in GENERIC_SHELVES):
            cleaned.append(text)
    return cleaned
