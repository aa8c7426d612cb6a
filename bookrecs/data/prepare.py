"""Preparation of raw interactions by the competition's protocol, with row counts per step.

Steps, in order, for raw inputs (`goodreads`, `custom`, `demo`):

1. ``english_books``: keep books whose `language` is in `ProtocolConfig.english_codes` and the
   interactions on them. Interactions on items missing from the book table are kept, because
   their language is unknown, and counted in `Prepared.notes`.
2. ``merge_editions``: books with the same normalised title (lower case, only ``[a-z0-9 ]``,
   runs of spaces squeezed) share one item_id, the smallest of their ids (shorter id first,
   then text order, so numeric ids compare as numbers). The merged book unites shelves
   (summing their counts), authors and series and keeps the longest description.
3. ``collapse_pairs``: one row per user-book pair: max `is_read`, max `rating`, earliest
   `date_added`.
4. ``min_user_items``: keep users with at least `min_user_items` books.
5. ``recent_share``: keep the most recent `recent_share` of interactions by `date_added`.
   Every row dated on the boundary date is kept, so slightly more than the share may remain.

Steps 1 and 2 need book metadata and are skipped, with the reason, when there is none.
Inputs that ship a fixed test set (the `prepared` format) were prepared already, so every step
is skipped.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field

import numpy as np
import polars as pl
from tqdm.auto import tqdm

from bookrecs.columns import (
    AUTHORS,
    DATE,
    DESCRIPTION,
    IS_READ,
    ITEM_ID,
    LANGUAGE,
    RATING,
    SERIES,
    TAG_COUNTS,
    TAGS,
    TITLE,
    USER_ID,
    YEAR,
)
from bookrecs.config import ProtocolConfig
from bookrecs.data.dataset import Dataset
from bookrecs.exceptions import DataError

logger = logging.getLogger("bookrecs.data")

STEP_INPUT = "input"
STEP_VALID = "valid_rows"
STEP_ENGLISH = "english_books"
STEP_MERGE = "merge_editions"
STEP_COLLAPSE = "collapse_pairs"
STEP_MIN_USER_ITEMS = "min_user_items"
STEP_RECENT = "recent_share"


@dataclass
class Prepared:
    """Interactions and books after preparation, with what each step did.

    Attributes
    ----------
    interactions
        user_id, item_id, rating, is_read, date_added (see `bookrecs.data.dataset`).
    books
        Book metadata of the kept items, one row per item_id, or None.
    test
        The fixed test set of inputs that ship one (user_id, item_id), passed through unchanged.
    steps
        ``(step name, interaction rows after the step)`` in order, starting with ``input``.
    skipped
        ``"<step>: <reason>"`` for each step that did not run.
    notes
        Other facts a reader of the run record needs, for example merged book counts.
    name, synthetic
        Copied from the `Dataset`.
    """

    interactions: pl.DataFrame
    books: pl.DataFrame | None
    test: pl.DataFrame | None = None
    steps: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    name: str = ""
    synthetic: bool = False


def prepare(dataset: Dataset, protocol: ProtocolConfig, show_progress: bool = True) -> Prepared:
    """Apply the preparation steps of `protocol` to `dataset`.

    Parameters
    ----------
    dataset
        Validated input tables from one of the readers.
    protocol
        English codes, whether to merge editions, the minimum books per user and the share
        of recent interactions to keep.
    show_progress
        Show a tqdm bar over the steps.

    Returns
    -------
    Prepared
        The prepared tables with the row count after every step and the skipped steps.
    """
    _check_columns(dataset)
    result = Prepared(
        interactions=dataset.interactions,
        books=dataset.books,
        test=dataset.test,
        steps=[(STEP_INPUT, dataset.interactions.height)],
        name=dataset.name,
        synthetic=dataset.synthetic,
    )
    all_steps = (STEP_ENGLISH, STEP_MERGE, STEP_COLLAPSE, STEP_MIN_USER_ITEMS, STEP_RECENT)
    if dataset.test is not None:
        reason = "input ships a fixed test set, so it was prepared before it was written"
        result.skipped = [f"{step}: {reason}" for step in all_steps]
        logger.info("skipping preparation of %s: %s", dataset.name, reason)
        return result

    steps = tqdm(total=len(all_steps) + 1, desc="prepare", unit="step", disable=not show_progress)
    with steps:
        _drop_invalid(result)
        steps.update()
        _english_books(result, protocol)
        steps.update()
        _merge_editions(result, protocol)
        steps.update()
        result.interactions = collapse_pairs(result.interactions)
        _record(result, STEP_COLLAPSE)
        steps.update()
        result.interactions = keep_active_users(
            result.interactions, protocol.min_user_items, unique_pairs=True
        )
        _record(result, STEP_MIN_USER_ITEMS)
        steps.update()
        result.interactions = keep_recent(result.interactions, protocol.recent_share)
        _record(result, STEP_RECENT)
        steps.update()

    if result.books is not None:
        used_items = result.interactions.select(ITEM_ID).unique()
        result.notes.append(
            f"{result.books.height:,} books in the catalogue, "
            f"{used_items.height:,} of them with interactions"
        )
    logger.info("prepared %s: %s", dataset.name, ", ".join(f"{n}={r:,}" for n, r in result.steps))
    return result


def _check_columns(dataset: Dataset) -> None:
    required = (USER_ID, ITEM_ID, RATING, IS_READ, DATE)
    missing = [c for c in required if c not in dataset.interactions.columns]
    if missing:
        raise DataError(
            f"interactions of {dataset.name!r} lack column(s) {missing} "
            f"(found {dataset.interactions.columns}); read the input through bookrecs.data.load"
        )


def _record(result: Prepared, step: str) -> None:
    rows = result.interactions.height
    previous = result.steps[-1][1]
    result.steps.append((step, rows))
    logger.info("%s: %s -> %s interactions", step, f"{previous:,}", f"{rows:,}")
    if rows == 0:
        raise DataError(
            f"no interactions left after preparation step {step!r} "
            f"(steps so far: {result.steps}); check the input or relax the protocol settings"
        )


def _drop_invalid(result: Prepared) -> None:
    """Drop rows without user, item or date; readers drop them already, so this is a guard."""
    frame = result.interactions
    dropped = frame.select(
        (pl.col(USER_ID).is_null() | pl.col(ITEM_ID).is_null() | pl.col(DATE).is_null()).sum()
    ).item()
    if dropped:
        valid = frame.drop_nulls([USER_ID, ITEM_ID, DATE])
        result.interactions = valid
        result.steps.append((STEP_VALID, valid.height))
        result.notes.append(f"{dropped:,} interactions without user_id, item_id or date dropped")
        logger.warning("dropped %d interactions without user_id, item_id or date_added", dropped)


def _english_books(result: Prepared, protocol: ProtocolConfig) -> None:
    if not protocol.english_only:
        result.skipped.append(f"{STEP_ENGLISH}: protocol.english_only is false")
        return
    books = result.books
    if books is None:
        result.skipped.append(f"{STEP_ENGLISH}: no book metadata, so book languages are unknown")
        return
    if LANGUAGE not in books.columns or books[LANGUAGE].null_count() == books.height:
        result.skipped.append(f"{STEP_ENGLISH}: the book table has no language values")
        return

    result.interactions, result.books, missing = keep_english(
        result.interactions, books, protocol.english_codes
    )
    if missing:
        result.notes.append(
            f"{missing:,} interactions on items missing from the book table kept (language unknown)"
        )
    result.notes.append(f"{STEP_ENGLISH}: {books.height:,} -> {result.books.height:,} books")
    _record(result, STEP_ENGLISH)


def _merge_editions(result: Prepared, protocol: ProtocolConfig) -> None:
    if not protocol.merge_editions:
        result.skipped.append(f"{STEP_MERGE}: protocol.merge_editions is false")
        return
    if result.books is None:
        result.skipped.append(f"{STEP_MERGE}: no book metadata, so titles are unknown")
        return
    before = result.books.height
    result.interactions, result.books = merge_editions(result.interactions, result.books)
    result.notes.append(f"{STEP_MERGE}: {before:,} books -> {result.books.height:,} items")
    _record(result, STEP_MERGE)


def keep_english(
    interactions: pl.DataFrame, books: pl.DataFrame, english_codes: tuple[str, ...]
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Keep English books and the interactions on them.

    Books with a null language are not English. Interactions on items missing from `books`
    are kept.

    Returns
    -------
    tuple
        ``(interactions, books, interactions kept on items missing from books)``.
    """
    is_english = pl.col(LANGUAGE).is_in(list(english_codes)).fill_null(False)
    english = books.filter(is_english)
    dropped_ids = books.filter(~is_english)[ITEM_ID].implode()
    english_reads = interactions.filter(~pl.col(ITEM_ID).is_in(dropped_ids))
    missing = english_reads.select((~pl.col(ITEM_ID).is_in(books[ITEM_ID].implode())).sum()).item()
    return english_reads, english, missing


def normalise_title(title: pl.Expr) -> pl.Expr:
    """Return an expression that lower-cases, keeps only ``[a-z0-9 ]``, squeezes spaces, strips."""
    return (
        title.str.to_lowercase()
        .str.replace_all(r"[^a-z0-9 ]", "")
        .str.replace_all(r" +", " ")
        .str.strip_chars()
    )


def merge_editions(
    interactions: pl.DataFrame, books: pl.DataFrame
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Merge books with the same normalised title into one item_id.

    The item_id is the smallest book id of the group, comparing by length and then as text, so
    numeric ids compare as numbers. The merged book keeps that book's title and language, the
    longest description, the earliest year, every author and series (first seen first) and the
    union of shelves with their counts summed (null counts count as 1). Books with an empty or
    null normalised title are never merged.

    Returns
    -------
    tuple
        ``(interactions with merged item_ids, one book row per item_id)``.
    """
    keyed = books.with_columns(
        _key=normalise_title(pl.col(TITLE).fill_null("")),
        _len=pl.col(ITEM_ID).str.len_chars(),
    ).with_columns(
        _key=pl.when(pl.col("_key") == "")
        .then(pl.lit("\x00id:") + pl.col(ITEM_ID))
        .otherwise(pl.col("_key"))
    )
    # Rows sorted so that the representative (smallest id) comes first in each group.
    keyed = keyed.sort("_key", "_len", ITEM_ID)
    keyed = keyed.with_columns(_rep=pl.col(ITEM_ID).first().over("_key"))
    mapping = keyed.select(ITEM_ID, "_rep").filter(pl.col(ITEM_ID) != pl.col("_rep"))

    merged_interactions = interactions
    if mapping.height:
        merged_interactions = interactions.with_columns(
            pl.col(ITEM_ID).replace(mapping[ITEM_ID], mapping["_rep"])
        )
    merged_books = _merge_book_rows(keyed, books.columns)
    return merged_interactions, merged_books


def _merge_book_rows(keyed: pl.DataFrame, columns: list[str]) -> pl.DataFrame:
    aggregations: list[pl.Expr] = []
    for column in columns:
        if column == ITEM_ID:
            continue
        if column == DESCRIPTION:
            length = pl.col(DESCRIPTION).fill_null("").str.len_chars()
            aggregations.append(
                pl.col(DESCRIPTION).sort_by(length, descending=True, maintain_order=True).first()
            )
        elif column in (AUTHORS, SERIES):
            aggregations.append(
                pl.col(column)
                .list.explode(keep_nulls=False, empty_as_null=False)
                .drop_nulls()
                .unique(maintain_order=True)
            )
        elif column == YEAR:
            aggregations.append(pl.col(YEAR).min())
        elif column in (TAGS, TAG_COUNTS):
            continue
        else:
            aggregations.append(pl.col(column).first())
    merged = keyed.group_by("_rep", maintain_order=True).agg(aggregations)
    merged = merged.rename({"_rep": ITEM_ID})

    if TAGS in columns:
        merged = merged.join(_merge_tags(keyed, TAG_COUNTS in columns), on=ITEM_ID, how="left")
    return merged.select(columns)


def _merge_tags(keyed: pl.DataFrame, has_counts: bool) -> pl.DataFrame:
    """Union the shelves of each group, summing counts; most counted shelves first."""
    counts = pl.col(TAG_COUNTS) if has_counts else pl.lit(None, dtype=pl.List(pl.Int64))
    exploded = (
        keyed.select(
            "_rep",
            pl.col(TAGS),
            pl.when(counts.is_null())
            .then(pl.col(TAGS).list.eval(pl.lit(1, dtype=pl.Int64)))
            .otherwise(counts)
            .alias(TAG_COUNTS),
        )
        .explode(TAGS, TAG_COUNTS)
        .filter(pl.col(TAGS).is_not_null())
        .group_by("_rep", TAGS)
        .agg(pl.col(TAG_COUNTS).fill_null(1).sum())
        .sort("_rep", TAG_COUNTS, TAGS, descending=[False, True, False])
        .group_by("_rep", maintain_order=True)
        .agg(TAGS, TAG_COUNTS)
        .rename({"_rep": ITEM_ID})
    )
    reps = keyed.select(pl.col("_rep").unique().alias(ITEM_ID))
    return reps.join(exploded, on=ITEM_ID, how="left").with_columns(
        pl.col(TAGS).fill_null([]), pl.col(TAG_COUNTS).fill_null([])
    )


def collapse_pairs(interactions: pl.DataFrame) -> pl.DataFrame:
    """Collapse each user-item pair into one row: max is_read, max rating, earliest date.

    Only rows whose 64-bit pair hash occurs more than once go through the group-by on the id
    strings, so memory stays low when few pairs repeat. Hash collisions only add rows to that
    group-by, so the result is exact. Rows of unrepeated pairs keep their order and come first,
    followed by the collapsed pairs in order of first occurrence.
    """
    repeated = repeated_pairs(interactions)
    if not repeated.any():
        return interactions
    collapsed = (
        interactions.filter(repeated)
        .group_by(USER_ID, ITEM_ID, maintain_order=True)
        .agg(
            pl.col(RATING).max(),
            pl.col(IS_READ).max(),
            pl.col(DATE).min(),
        )
        .select(interactions.columns)
    )
    return pl.concat([interactions.filter(~repeated), collapsed])


def repeated_pairs(frame: pl.DataFrame) -> pl.Series:
    """Mark rows whose (user_id, item_id) 64-bit hash occurs more than once.

    Every row of a repeated pair is marked. A hash collision also marks rows of distinct
    pairs, so callers compare the marked rows by their id strings. Sorting the hashes needs
    about half the memory of `is_duplicated` (measured on 25M rows with polars 2.1).
    """
    hashes = frame.select(pl.struct(USER_ID, ITEM_ID).hash(seed=0)).to_series()
    ordered = hashes.sort()
    # Compared with shift, not diff: diff on UInt64 goes through Int64 and is null above 2**63.
    repeated_hashes = ordered.filter(ordered == ordered.shift(1)).unique()
    if repeated_hashes.len() == 0:
        return pl.Series(np.zeros(frame.height, dtype=bool))
    return hashes.is_in(repeated_hashes.implode())


def keep_active_users(
    interactions: pl.DataFrame, min_items: int, unique_pairs: bool = False
) -> pl.DataFrame:
    """Keep users with at least `min_items` distinct items.

    Pass ``unique_pairs=True`` when every user-item pair has one row (after `collapse_pairs`)
    to skip the check for repeated pairs.
    """
    users = interactions[USER_ID]
    if not unique_pairs:
        repeated = repeated_pairs(interactions)
        if repeated.any():
            distinct = interactions.filter(repeated).select(USER_ID, ITEM_ID).unique()
            users = pl.concat([interactions.filter(~repeated)[USER_ID], distinct[USER_ID]])
    counts = users.value_counts(name="_items")
    active = counts.filter(pl.col("_items") >= min_items)[USER_ID]
    if active.len() == counts.height:
        return interactions
    return interactions.filter(pl.col(USER_ID).is_in(active.implode()))


def keep_recent(interactions: pl.DataFrame, share: float) -> pl.DataFrame:
    """Keep the most recent `share` of rows by date_added, ties on the boundary date included.

    The boundary is the date of the ``ceil(share * rows)``-th most recent row.
    """
    if not 0 < share <= 1:
        raise DataError(f"recent_share must be in (0, 1], got {share}; fix protocol.recent_share")
    # The small epsilon keeps float error from rounding an exact product up, e.g. 0.6 * 10.
    n_keep = max(1, math.ceil(share * interactions.height - 1e-9))
    if interactions.height == 0 or n_keep >= interactions.height:
        return interactions
    boundary = interactions[DATE].top_k(n_keep).min()
    return interactions.filter(pl.col(DATE) >= boundary)
