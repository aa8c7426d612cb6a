"""Reasons for recommendations, from metadata shared with the reader's history."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest

from bookrecs.data.dataset import BOOK_SCHEMA
from bookrecs.exceptions import DataError
from bookrecs.explain import SIMILAR_READERS, explain, shelf_rarity


@pytest.fixture()
def books() -> pl.DataFrame:
    rows = [
        ("Percy 1", ["Rick Riordan"], ["Percy Jackson"], ["fantasy", "mythology", "to-read", "ya"]),
        ("Percy 2", ["Rick Riordan"], ["Percy Jackson"], ["fantasy", "mythology", "ya"]),
        ("Kane 1", ["Rick Riordan"], ["Kane Chronicles"], ["fantasy", "egypt", "ya"]),
        ("Eragon", ["Christopher Paolini"], [], ["Fantasy", "Dragons", "mythology", "ya"]),
        ("Notebook", ["Nicholas Sparks"], [], ["romance", "ya"]),
        ("Blank", None, None, None),
        ("Read only", ["Nobody"], [], ["to-read", "currently-reading"]),
        ("Gods of Egypt", ["Ann Nile"], [], ["egypt", "mythology", "ya"]),
        ("Dune", ["Frank Herbert"], [], ["sci-fi"]),
    ]
    return pl.DataFrame(
        {
            "item_id": [f"b{index}" for index in range(len(rows))],
            "title": [row[0] for row in rows],
            "authors": [row[1] for row in rows],
            "series": [row[2] for row in rows],
            "tags": [row[3] for row in rows],
        },
        schema={
            name: BOOK_SCHEMA[name] for name in ("item_id", "title", "authors", "series", "tags")
        },
    )


def test_series_beats_author(books):
    assert explain(np.array([0]), np.array([1]), books) == ["same series: Percy Jackson"]


def test_same_author(books):
    assert explain(np.array([0]), np.array([2]), books) == ["same author: Rick Riordan"]


def test_shelves_tie_sorted_by_name(books):
    reasons = explain(np.array([0, 1]), np.array([3]), books)
    assert reasons == ["similar shelves: fantasy, mythology"]


def test_rarer_shelf_ranks_first(books):
    # mythology is on 4 of 9 books and egypt on 2, each on one history book.
    reasons = explain(np.array([0, 2]), np.array([7]), books)
    assert reasons == ["similar shelves: egypt, mythology"]


def test_more_history_books_rank_first(books):
    reasons = explain(np.array([0, 1, 2]), np.array([7]), books)
    assert reasons == ["similar shelves: mythology, egypt"]


def test_common_shelf_not_reason(books):
    # ya is on 6 of 9 books, more than half of the catalogue.
    assert explain(np.array([4]), np.array([7]), books) == [SIMILAR_READERS]


def test_rarity_is_idf(books):
    rarity = shelf_rarity(books)
    assert rarity["egypt"] == pytest.approx(math.log(9 / 2))
    assert rarity["fantasy"] == pytest.approx(math.log(9 / 4))
    assert "ya" not in rarity
    assert "to-read" not in rarity


def test_no_overlap_is_collaborative(books):
    assert explain(np.array([0]), np.array([4]), books) == [SIMILAR_READERS]


def test_generic_shelves_not_reasons(books):
    assert explain(np.array([6]), np.array([0]), books) == [SIMILAR_READERS]


def test_blank_book_is_collaborative(books):
    assert explain(np.array([0]), np.array([5]), books) == [SIMILAR_READERS]


def test_empty_slot_gets_empty_reason(books):
    reasons = explain(np.array([0]), np.array([1, -1, 4]), books)
    assert reasons == ["same series: Percy Jackson", "", SIMILAR_READERS]


def test_empty_history(books):
    reasons = explain(np.array([], dtype=np.int64), np.array([0, 1]), books)
    assert reasons == [SIMILAR_READERS, SIMILAR_READERS]


def test_no_books_table():
    assert explain(np.array([0]), np.array([1, 2]), None) == [SIMILAR_READERS] * 2


def test_max_history_keeps_last(books):
    reasons = explain(np.array([0, 4]), np.array([1]), books, max_history=1)
    assert reasons == [SIMILAR_READERS]


def test_out_of_range_item_raises(books):
    with pytest.raises(DataError, match="exceed the 9 rows"):
        explain(np.array([0]), np.array([99]), books)


def test_out_of_range_history_ignored(books):
    assert explain(np.array([99, 0]), np.array([1]), books) == ["same series: Percy Jackson"]
