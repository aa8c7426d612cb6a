"""Top-k ranking metrics over many users at once.

Recommendations are an int array ``recs`` of shape (n_users, width): one row per evaluated
user, best item first, padded with -1. Relevance is a CSR matrix ``relevant`` (n_users x
n_items) aligned with ``recs``, and its stored non-zero entries mark the relevant items.
Relevance is binary. The work is done on flat arrays with `numpy.searchsorted`, with no Python
loop per user.

Per-user values are NaN for users without a relevant item, and the averages skip them, so an
average is NaN when no user has a relevant item. Formulas are in docs/metrics.md.
"""

from __future__ import annotations

import logging

import numpy as np
import scipy.sparse as sp

logger = logging.getLogger("bookrecs.metrics")


def hit_matrix(recs: np.ndarray, relevant: sp.spmatrix, k: int | None = None) -> np.ndarray:
    """Mark which of the first `k` recommendations of each user are relevant.

    Parameters
    ----------
    recs
        Item indices (n_users, width), best first, -1 for empty slots.
    relevant
        CSR-convertible (n_users x n_items); non-zero entries are relevant.
    k
        Number of leading columns of `recs` to check (default: all).

    Returns
    -------
    numpy.ndarray
        Boolean (n_users, min(k, width)). Padding is never a hit, and an item repeated in a
        row is a hit only at its first position.
    """
    recs, relevant, k = _check_inputs(recs, relevant, k)
    n_users, n_items = relevant.shape
    recs = recs[:, :k]

    relevant_rows = np.repeat(np.arange(n_users, dtype=np.int64), np.diff(relevant.indptr))
    relevant_keys = relevant_rows * n_items + relevant.indices.astype(np.int64)

    valid = recs >= 0
    rec_keys = np.arange(n_users, dtype=np.int64)[:, None] * n_items + recs
    positions = np.searchsorted(relevant_keys, rec_keys)
    found = positions < len(relevant_keys)
    found[found] = relevant_keys[positions[found]] == rec_keys[found]
    return found & valid & _first_occurrence(recs)


def relevant_counts(relevant: sp.spmatrix) -> np.ndarray:
    """Return the number of relevant items per row, as int64."""
    return np.diff(_canonical(relevant).indptr).astype(np.int64)


def ndcg_per_user(recs: np.ndarray, relevant: sp.spmatrix, k: int | None = None) -> np.ndarray:
    """Compute binary NDCG@k of each user.

    ``DCG@k = sum_{i=1..k} rel_i / log2(i + 1)`` with ``rel_i`` in {0, 1} at 1-based rank i,
    ``IDCG@k = sum_{i=1..min(|R|, k)} 1 / log2(i + 1)`` where ``R`` is the user's relevant
    set, and ``NDCG@k = DCG@k / IDCG@k`` in [0, 1]. NaN where ``|R| = 0``.
    `k` defaults to the width of `recs`.
    """
    recs = _as_recs(recs)
    k = _default_k(recs, k)
    hits = hit_matrix(recs, relevant, k)
    discounts = 1.0 / np.log2(np.arange(2, k + 2, dtype=np.float64))
    dcg = hits @ discounts[: hits.shape[1]]

    n_relevant = relevant_counts(relevant)
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])[np.minimum(n_relevant, k)]
    return _divide_or_nan(dcg, ideal, n_relevant)


def recall_per_user(recs: np.ndarray, relevant: sp.spmatrix, k: int | None = None) -> np.ndarray:
    """Compute Recall@k of each user: ``hits@k / |R|``, NaN where ``|R| = 0``.

    The denominator is not capped at k, so a user with more than k relevant items cannot
    reach 1.
    """
    hits = hit_matrix(recs, relevant, k)
    n_relevant = relevant_counts(relevant)
    return _divide_or_nan(hits.sum(axis=1).astype(np.float64), n_relevant, n_relevant)


def ndcg_at_k(recs: np.ndarray, relevant: sp.spmatrix, k: int | None = None) -> float:
    """Return the mean NDCG@k over users with at least one relevant item (NaN if none)."""
    return nan_mean(ndcg_per_user(recs, relevant, k))


def recall_at_k(recs: np.ndarray, relevant: sp.spmatrix, k: int | None = None) -> float:
    """Return the mean Recall@k over users with at least one relevant item (NaN if none)."""
    return nan_mean(recall_per_user(recs, relevant, k))


def coverage_at_k(recs: np.ndarray, n_items: int, k: int | None = None) -> float:
    """Return catalogue coverage: ``|distinct items in the first k columns| / n_items``.

    Padding (-1) is not an item. `n_items` is the catalogue size, cold items included.
    """
    recs = _as_recs(recs)
    k = _default_k(recs, k)
    if n_items < 1:
        raise ValueError(f"n_items={n_items} is invalid: the catalogue needs at least one item")
    recommended = recs[:, :k]
    recommended = recommended[recommended >= 0]
    if recommended.size and recommended.max() >= n_items:
        raise ValueError(
            f"recs contain item {recommended.max()} but n_items={n_items}: pass the catalogue size"
        )
    return float(len(np.unique(recommended)) / n_items)


def head_items(popularity: np.ndarray, head_share: float = 0.8) -> np.ndarray:
    """Mark the head: the fewest most popular items that make up `head_share` of interactions.

    Items are sorted by descending popularity (ties by lower index) and taken while the
    interactions of the items before them are below ``head_share * sum(popularity)``, so the
    head is the shortest prefix whose total reaches the share. Items with zero popularity
    are never in the head.

    Returns
    -------
    numpy.ndarray
        Boolean mask over items.
    """
    popularity = np.asarray(popularity, dtype=np.float64)
    if not 0.0 < head_share < 1.0:
        raise ValueError(f"head_share={head_share} is invalid: use a share between 0 and 1")
    if popularity.ndim != 1 or (popularity < 0).any():
        raise ValueError("popularity must be a 1-D array of non-negative counts per item")

    order = np.lexsort((np.arange(len(popularity)), -popularity))
    before = np.cumsum(popularity[order]) - popularity[order]
    in_head = (before < head_share * popularity.sum()) & (popularity[order] > 0)
    mask = np.zeros(len(popularity), dtype=bool)
    mask[order[in_head]] = True
    return mask


def long_tail_share(
    recs: np.ndarray,
    popularity: np.ndarray,
    head_share: float = 0.8,
    k: int | None = None,
) -> float:
    """Return the share of recommended slots whose item is outside the head (see `head_items`).

    ``long_tail_share@k = |{filled slots with an item outside the head}| / |{filled slots}|``
    over the first k columns, where a filled slot is one that is not -1 padding. An item
    recommended to many users counts once per user. NaN when every slot is padding.
    """
    recs = _as_recs(recs)
    k = _default_k(recs, k)
    head = head_items(popularity, head_share)
    recommended = recs[:, :k]
    recommended = recommended[recommended >= 0]
    if recommended.size == 0:
        return float("nan")
    if recommended.max() >= len(head):
        raise ValueError(
            f"recs contain item {recommended.max()} but popularity covers {len(head)} items: "
            "pass the popularity of every catalogue item"
        )
    return float(1.0 - head[recommended].mean())


def restrict_columns(relevant: sp.spmatrix, keep: np.ndarray) -> sp.csr_matrix:
    """Keep only the relevant entries in columns where the boolean mask `keep` is True.

    Used for the cold and warm slices: ``restrict_columns(relevant, cold)`` keeps each user's
    relevant cold items.
    """
    relevant = _canonical(relevant)
    keep = np.asarray(keep, dtype=bool)
    if keep.shape != (relevant.shape[1],):
        raise ValueError(
            f"column mask has shape {keep.shape}, expected ({relevant.shape[1]},): "
            "pass one flag per item"
        )
    restricted = relevant.multiply(keep[None, :].astype(relevant.dtype)).tocsr()
    restricted.eliminate_zeros()
    restricted.sort_indices()
    return restricted


def nan_mean(values: np.ndarray) -> float:
    """Return the mean of the non-NaN values, or NaN (without a warning) when there are none."""
    values = np.asarray(values, dtype=np.float64)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def _divide_or_nan(
    numerator: np.ndarray, denominator: np.ndarray, n_relevant: np.ndarray
) -> np.ndarray:
    out = np.full(len(numerator), np.nan, dtype=np.float64)
    has_relevant = n_relevant > 0
    out[has_relevant] = numerator[has_relevant] / denominator[has_relevant]
    return out


def _first_occurrence(recs: np.ndarray) -> np.ndarray:
    """Mark the first position of each item in its row."""
    order = np.argsort(recs, axis=1, kind="stable")
    sorted_recs = np.take_along_axis(recs, order, axis=1)
    repeated = np.zeros(recs.shape, dtype=bool)
    repeated[:, 1:] = sorted_recs[:, 1:] == sorted_recs[:, :-1]
    first = np.ones(recs.shape, dtype=bool)
    np.put_along_axis(first, order, ~repeated, axis=1)
    return first


def _canonical(relevant: sp.spmatrix) -> sp.csr_matrix:
    """Return a CSR copy without explicit zeros, duplicates merged and indices sorted."""
    matrix = sp.csr_matrix(relevant, copy=True)
    matrix.sum_duplicates()
    matrix.eliminate_zeros()
    matrix.sort_indices()
    return matrix


def _as_recs(recs: np.ndarray) -> np.ndarray:
    recs = np.asarray(recs)
    if recs.ndim != 2:
        raise ValueError(f"recs must be 2-D (users x positions), got shape {recs.shape}")
    if not np.issubdtype(recs.dtype, np.integer):
        raise ValueError(f"recs must hold integer item indices, got dtype {recs.dtype}")
    return recs.astype(np.int64, copy=False)


def _default_k(recs: np.ndarray, k: int | None) -> int:
    if k is None:
        return max(int(np.shape(recs)[1]), 1)
    if int(k) < 1:
        raise ValueError(f"k={k} is invalid: use k >= 1")
    return int(k)


def _check_inputs(
    recs: np.ndarray, relevant: sp.spmatrix, k: int | None
) -> tuple[np.ndarray, sp.csr_matrix, int]:
    recs = _as_recs(recs)
    k = _default_k(recs, k)
    relevant = _canonical(relevant)
    if relevant.shape[0] != recs.shape[0]:
        raise ValueError(
            f"recs has {recs.shape[0]} rows but relevant has {relevant.shape[0]}: "
            "pass one relevance row per recommended user, in the same order"
        )
    if recs.size and recs.max() >= relevant.shape[1]:
        raise ValueError(
            f"recs contain item {recs.max()} but relevant has {relevant.shape[1]} columns: "
            "build both with the same item index"
        )
    if recs.size and recs.min() < -1:
        raise ValueError(f"recs contain item {recs.min()}: use -1 only for empty slots")
    return recs, relevant, k
