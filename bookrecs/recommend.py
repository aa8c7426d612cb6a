"""Rules that turn model candidates into the list shown to a user.

Pure functions over internal item indices:

- `blocked_mask` marks what must never be shown (already read, unavailable, the book on screen);
- `fill_to_k` merges ranked candidate lists (model first, then popular, then new) into exactly
  k distinct unblocked items, remembering which list each item came from;
- `explain_items` gives each item its reason (same author, same series, similar shelves,
  readers with similar taste, popular now, new);
- `similar_by_metadata` ranks books that share series, authors and shelves with one book, so
  a cold book with no interactions still gets similar books;
- `run_chain` tries the fallback chain (current model, previous model, popular, new) in order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np

logger = logging.getLogger("bookrecs.recommend")

SAME_AUTHOR = "same author"
SAME_SERIES = "same series"
SIMILAR_SHELVES = "similar shelves"
SIMILAR_READERS = "readers with similar taste"
POPULAR_NOW = "popular now"
NEW = "new"
REASONS = (SAME_AUTHOR, SAME_SERIES, SIMILAR_SHELVES, SIMILAR_READERS, POPULAR_NOW, NEW)

# Origins of candidate lists; "model" and "previous_model" are also response sources.
MODEL = "model"
PREVIOUS_MODEL = "previous_model"
POPULAR = "popular"
SOURCES = (MODEL, PREVIOUS_MODEL, POPULAR, NEW)
# Origin of books matched by shared metadata; served under the model's source.
METADATA = "metadata"

# Shelves two books must share before "similar shelves" is given as the reason.
MIN_SHARED_SHELVES = 2
# Weights of shared series, shared authors and each shared shelf in `similar_by_metadata`.
SERIES_WEIGHT = 4.0
AUTHOR_WEIGHT = 2.0
SHELF_WEIGHT = 1.0


@dataclass(frozen=True)
class Candidates:
    """A ranked candidate list: item indices (-1 is skipped), optional scores and its origin."""

    origin: str
    items: np.ndarray
    scores: np.ndarray | None = None


@dataclass(frozen=True)
class FilledList:
    """The final list: item indices, their scores and the origin of each item."""

    items: np.ndarray
    scores: np.ndarray
    origins: tuple[str, ...]

    def __len__(self) -> int:
        return len(self.items)


@dataclass(frozen=True)
class ItemFacts:
    """Metadata used for reasons and metadata similarity, aligned with item indices.

    authors, series, shelves
        One frozenset of strings per item (shelves are the item's most used tags).
    """

    authors: Sequence[frozenset[str]]
    series: Sequence[frozenset[str]]
    shelves: Sequence[frozenset[str]]
    _index: dict[str, dict[str, list[int]]] = field(default_factory=dict, compare=False)

    def __len__(self) -> int:
        return len(self.authors)

    def inverted(self, kind: str) -> dict[str, list[int]]:
        """Return the value -> item indices index of `kind` (authors, series, shelves)."""
        if kind not in self._index:
            index: dict[str, list[int]] = {}
            for item, values in enumerate(getattr(self, kind)):
                for value in values:
                    index.setdefault(value, []).append(item)
            self._index[kind] = index
        return self._index[kind]


def blocked_mask(
    n_items: int,
    *,
    seen: np.ndarray | None = None,
    unavailable: np.ndarray | None = None,
    exclude: Sequence[int] = (),
) -> np.ndarray:
    """Return a boolean mask over items: True for items that must not be shown.

    Parameters
    ----------
    n_items
        Catalogue size.
    seen
        Indices of the user's books (already read or shelved).
    unavailable
        Boolean mask of unavailable books (length `n_items`), e.g. from `AvailabilityTable`.
    exclude
        Further indices, e.g. the book the page shows.
    """
    mask = np.zeros(n_items, dtype=bool) if unavailable is None else unavailable.copy()
    if seen is not None and len(seen):
        mask[seen] = True
    for item in exclude:
        if 0 <= item < n_items:
            mask[item] = True
    return mask


def fill_to_k(candidates: Sequence[Candidates], k: int, blocked: np.ndarray) -> FilledList:
    """Take the first `k` distinct unblocked items from `candidates`, list by list.

    Items keep their order within a list, and lists are used in the order given, so the
    model's ranking comes first and fallback lists only fill the remaining slots. The result
    is shorter than `k` only when all lists together hold fewer unblocked items.
    """
    if k < 1:
        raise ValueError(f"k={k} is invalid: k must be at least 1")
    taken = blocked.copy()
    items: list[np.ndarray] = []
    scores: list[np.ndarray] = []
    origins: list[str] = []
    need = k
    for candidate in candidates:
        if need == 0:
            break
        all_ids = np.asarray(candidate.items, dtype=np.int64)
        # Look at a short prefix first: long lists (popular, new) rarely need more.
        for window in (4 * need + 32, len(all_ids)):
            ids, values = _take(candidate, all_ids, window, taken, need)
            if len(ids) == need or window >= len(all_ids):
                break
        taken[ids] = True
        items.append(ids)
        scores.append(values)
        origins.extend([candidate.origin] * len(ids))
        need -= len(ids)
    if not items:
        return FilledList(np.empty(0, np.int64), np.empty(0, np.float32), ())
    return FilledList(np.concatenate(items), np.concatenate(scores), tuple(origins))


def _take(
    candidate: Candidates, all_ids: np.ndarray, window: int, taken: np.ndarray, need: int
) -> tuple[np.ndarray, np.ndarray]:
    ids = all_ids[:window]
    if candidate.scores is None:
        values = np.zeros(len(ids), dtype=np.float32)
    else:
        values = np.asarray(candidate.scores[:window], dtype=np.float32)
    valid = (ids >= 0) & (ids < len(taken))
    ids, values = ids[valid], values[valid]
    keep = ~taken[ids]
    ids, values = ids[keep], values[keep]
    _, first = np.unique(ids, return_index=True)
    first = np.sort(first)[:need]
    return ids[first], values[first]


def explain_items(
    items: np.ndarray, origins: Sequence[str], history: np.ndarray, facts: ItemFacts
) -> list[str]:
    """Return one reason per item.

    Items from a fallback list get its reason ("popular now", "new"). A model item gets the
    first that holds: it shares a series with the history ("same series"), an author ("same
    author"), at least `MIN_SHARED_SHELVES` shelves with one history book ("similar
    shelves"); otherwise "readers with similar taste". A METADATA item was matched by its
    series, authors or shelves, so it never gets "readers with similar taste".
    """
    history_authors: set[str] = set()
    history_series: set[str] = set()
    history_shelves = [facts.shelves[int(item)] for item in history]
    for item in history:
        history_authors |= facts.authors[int(item)]
        history_series |= facts.series[int(item)]

    reasons = []
    for item, origin in zip(items, origins, strict=True):
        item = int(item)
        if origin == POPULAR:
            reasons.append(POPULAR_NOW)
        elif origin == NEW:
            reasons.append(NEW)
        elif facts.series[item] & history_series:
            reasons.append(SAME_SERIES)
        elif facts.authors[item] & history_authors:
            reasons.append(SAME_AUTHOR)
        elif origin == METADATA or any(
            len(facts.shelves[item] & shelves) >= MIN_SHARED_SHELVES for shelves in history_shelves
        ):
            reasons.append(SIMILAR_SHELVES)
        else:
            reasons.append(SIMILAR_READERS)
    return reasons


def similar_by_metadata(item: int, facts: ItemFacts, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Rank books by shared metadata with `item` and return the top `k` (indices, scores).

    score(j) = SERIES_WEIGHT * [shares a series] + AUTHOR_WEIGHT * [shares an author]
    + SHELF_WEIGHT * (number of shared shelves); the item itself and books scoring 0 are left
    out, and ties go to the lower index.
    """
    scores: dict[int, float] = {}
    for kind, weight, per_value in (
        ("series", SERIES_WEIGHT, False),
        ("authors", AUTHOR_WEIGHT, False),
        ("shelves", SHELF_WEIGHT, True),
    ):
        index = facts.inverted(kind)
        matched: set[int] = set()
        for value in getattr(facts, kind)[item]:
            for other in index.get(value, ()):
                if per_value:
                    scores[other] = scores.get(other, 0.0) + weight
                elif other not in matched:
                    matched.add(other)
                    scores[other] = scores.get(other, 0.0) + weight
    scores.pop(item, None)
    if not scores:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    ids = np.fromiter(scores.keys(), dtype=np.int64, count=len(scores))
    values = np.fromiter(scores.values(), dtype=np.float32, count=len(scores))
    order = np.lexsort((ids, -values))[:k]
    return ids[order], values[order]


T = TypeVar("T")


@dataclass(frozen=True)
class ChainResult(Generic[T]):
    """Outcome of `run_chain`: the value, the step that produced it and the failed steps."""

    value: T
    source: str
    errors: tuple[tuple[str, str], ...]


def run_chain(
    steps: Sequence[tuple[str, Callable[[], T | None]]],
    propagate: tuple[type[BaseException], ...] = (),
) -> ChainResult[T]:
    """Call `steps` in order and return the first result that is not None.

    A step that raises or returns None passes to the next one; its error is kept in
    `errors` as (source, message). Exceptions of the `propagate` types are raised at once.
    The last step must not fail: it is the list of last resort (popular or new books).

    Raises
    ------
    RuntimeError
        When every step fails, naming each step's error.
    """
    errors: list[tuple[str, str]] = []
    for source, step in steps:
        try:
            value = step()
        except propagate:
            raise
        except Exception as error:  # noqa: BLE001 - any failure moves on to the next source
            errors.append((source, f"{type(error).__name__}: {error}"))
            continue
        if value is not None:
            return ChainResult(value=value, source=source, errors=tuple(errors))
        errors.append((source, "no result"))
    raise RuntimeError(f"every source of the fallback chain failed: {errors}")
