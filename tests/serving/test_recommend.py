"""Recommendation rules on hand-made arrays with known results."""

from __future__ import annotations

import numpy as np
import pytest

from bookrecs.recommend import (
    METADATA,
    MODEL,
    NEW,
    POPULAR,
    Candidates,
    ItemFacts,
    blocked_mask,
    explain_items,
    fill_to_k,
    run_chain,
    similar_by_metadata,
)


def facts() -> ItemFacts:
    # items: 0 and 1 share author and series, 2 shares two shelves with 0, 3 shares nothing.
    return ItemFacts(
        authors=[frozenset({"A"}), frozenset({"A"}), frozenset({"B"}), frozenset({"C"})],
        series=[frozenset({"S"}), frozenset({"S"}), frozenset(), frozenset()],
        shelves=[
            frozenset({"fantasy", "magic", "ya"}),
            frozenset({"fantasy"}),
            frozenset({"fantasy", "magic"}),
            frozenset({"horror"}),
        ],
    )


def test_blocked_mask_combines_sources():
    unavailable = np.array([False, False, True, False, False])
    mask = blocked_mask(5, seen=np.array([0]), unavailable=unavailable, exclude=[4])
    assert mask.tolist() == [True, False, True, False, True]
    assert not unavailable[0]


def test_fill_to_k_orders_and_filters():
    blocked = np.array([True, False, False, False, False, False])
    candidates = [
        Candidates(MODEL, np.array([2, 0, -1, 2]), np.array([0.9, 0.8, 0.0, 0.7])),
        Candidates(POPULAR, np.array([0, 1, 2, 3])),
        Candidates(NEW, np.array([5, 4])),
    ]
    filled = fill_to_k(candidates, 4, blocked)
    assert filled.items.tolist() == [2, 1, 3, 5]
    assert filled.origins == (MODEL, POPULAR, POPULAR, NEW)
    assert filled.scores[0] == pytest.approx(0.9)


def test_fill_to_k_short_catalogue():
    filled = fill_to_k([Candidates(POPULAR, np.array([0, 1]))], 5, np.zeros(2, dtype=bool))
    assert filled.items.tolist() == [0, 1]


def test_fill_to_k_rejects_zero_k():
    with pytest.raises(ValueError, match="k=0"):
        fill_to_k([], 0, np.zeros(1, dtype=bool))


def test_fill_to_k_ignores_out_of_range():
    filled = fill_to_k([Candidates(MODEL, np.array([7, 1]))], 2, np.zeros(3, dtype=bool))
    assert filled.items.tolist() == [1]


def test_explain_items_reasons():
    items = np.array([1, 2, 3, 3, 3, 3])
    origins = (MODEL, MODEL, MODEL, POPULAR, NEW, METADATA)
    reasons = explain_items(items, origins, np.array([0]), facts())
    assert reasons == [
        "same series",
        "similar shelves",
        "readers with similar taste",
        "popular now",
        "new",
        "similar shelves",
    ]


def test_explain_items_same_author():
    data = facts()
    data = ItemFacts(authors=data.authors, series=[frozenset()] * 4, shelves=data.shelves)
    assert explain_items(np.array([1]), (MODEL,), np.array([0]), data) == ["same author"]


def test_similar_by_metadata_scores():
    ids, scores = similar_by_metadata(0, facts(), k=10)
    # item 1: series 4 + author 2 + one shelf 1 = 7; item 2: two shelves = 2; item 3: none.
    assert ids.tolist() == [1, 2]
    assert scores.tolist() == [7.0, 2.0]


def test_similar_by_metadata_nothing_shared():
    ids, _ = similar_by_metadata(3, facts(), k=10)
    assert ids.tolist() == []


def test_run_chain_falls_through():
    def broken():
        raise ValueError("corrupt state")

    steps = [("model", broken), ("previous_model", lambda: None), ("popular", lambda: 3)]
    result = run_chain(steps)
    assert result.value == 3
    assert result.source == "popular"
    assert result.errors[0] == ("model", "ValueError: corrupt state")
    assert result.errors[1] == ("previous_model", "no result")


def test_run_chain_all_fail():
    with pytest.raises(RuntimeError, match="every source"):
        run_chain([("popular", lambda: None)])
