"""Per-row features that both the drift checks and the Evidently report compare.

Everything here is plain polars and NumPy, so the checks stay testable without Evidently.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from bookrecs.columns import DATE, IS_READ, ITEM_ID, LANGUAGE, RATING, TAGS, USER_ID, YEAR
from monitoring.stats import good_turing_missing_mass

OTHER = "other"
UNKNOWN = "unknown"
RATING_LEVELS = ("0", "1", "2", "3", "4", "5")
POSITION = "reference_popularity_position"


@dataclass(frozen=True)
class ReferenceProfile:
    """Item popularity learnt from the reference window.

    The reference rows are split at random into halves A and B. Popularity is ranked on A
    and measured on B, so the reference head share is estimated out of sample like the
    current one and the two are comparable.

    position_by_item: share of half-A interactions on books more popular than the book
        (0 for the most popular). Books absent from half A have no entry and position 1.
    holdout: half B of the reference interactions.
    item_counts: interactions per book over the whole reference window.
    missing_mass: Good-Turing estimate of the share of later interactions on books absent
        from the reference window, if nothing changed.
    """

    position_by_item: dict[str, float]
    holdout: pl.DataFrame
    item_counts: pl.DataFrame
    missing_mass: float
    head_share: float

    @property
    def items(self) -> set[str]:
        return set(self.item_counts[ITEM_ID].to_list())


def build_profile(reference: pl.DataFrame, head_share: float, seed: int) -> ReferenceProfile:
    """Learn item popularity from the reference interactions (see `ReferenceProfile`)."""
    rng = np.random.default_rng(seed)
    in_half_a = rng.random(reference.height) < 0.5
    half_a = reference.filter(pl.Series(in_half_a))
    holdout = reference.filter(pl.Series(~in_half_a))

    ranked = (
        half_a.group_by(ITEM_ID)
        .len("count")
        .sort(["count", ITEM_ID], descending=[True, False])
        .with_columns((pl.col("count").cum_sum() - pl.col("count")) / max(half_a.height, 1))
    )
    positions = dict(zip(ranked[ITEM_ID].to_list(), ranked["count"].to_list(), strict=True))
    item_counts = reference.group_by(ITEM_ID).len("count")
    return ReferenceProfile(
        position_by_item=positions,
        holdout=holdout,
        item_counts=item_counts,
        missing_mass=good_turing_missing_mass(item_counts["count"].to_numpy()),
        head_share=head_share,
    )


def popularity_position(item_ids: pl.Series, profile: ReferenceProfile) -> pl.Series:
    """Map books to their reference popularity position (1.0 for books absent from half A)."""
    return item_ids.replace_strict(
        profile.position_by_item, default=1.0, return_dtype=pl.Float64
    ).alias(POSITION)


def in_head(item_ids: pl.Series, profile: ReferenceProfile) -> np.ndarray:
    """Return a boolean mask of the books in the reference head."""
    return popularity_position(item_ids, profile).to_numpy() < profile.head_share


def user_week_activity(interactions: pl.DataFrame) -> np.ndarray:
    """Count interactions per active user and ISO week (independent of the window length)."""
    if interactions.is_empty():
        return np.zeros(0)
    counts = interactions.group_by(USER_ID, pl.col(DATE).dt.truncate("1w").alias("week")).len()
    return counts["len"].to_numpy().astype(float)


def rating_levels(interactions: pl.DataFrame) -> pl.Series:
    """Round ratings to the levels 0 (unrated) to 5, as text categories."""
    return interactions[RATING].round(0).cast(pl.Int32).clip(0, 5).cast(pl.Utf8).alias(RATING)


def category_counts(
    reference: pl.Series, current: pl.Series, max_categories: int
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Count aligned categories, keeping the most frequent reference ones and pooling the rest.

    Nulls become `UNKNOWN`; values outside the `max_categories - 1` most frequent reference
    categories become `OTHER`. Returns the labels and the two count vectors.
    """
    reference = reference.cast(pl.Utf8).fill_null(UNKNOWN)
    current = current.cast(pl.Utf8).fill_null(UNKNOWN)
    frequent = (
        reference.value_counts(sort=True, name="count")
        .sort(["count", reference.name], descending=[True, False])
        .head(max_categories - 1)[reference.name]
        .to_list()
    )
    labels = [*frequent, OTHER]

    def count(values: pl.Series) -> np.ndarray:
        pooled = values.replace_strict(
            {label: label for label in frequent}, default=OTHER, return_dtype=pl.Utf8
        )
        table = dict(pooled.value_counts(name="count").iter_rows())
        return np.array([table.get(label, 0) for label in labels], dtype=float)

    return labels, count(reference), count(current)


def new_books(reference: pl.DataFrame, current: pl.DataFrame) -> pl.Series:
    """Return the books with interactions in the current window but none in the reference."""
    known = reference.select(ITEM_ID).unique()
    return current.select(ITEM_ID).unique().join(known, on=ITEM_ID, how="anti")[ITEM_ID].sort()


def book_metadata(books: pl.DataFrame, item_ids: pl.Series) -> pl.DataFrame:
    """Return item_id, language, year and tags of `item_ids` that have a row in `books`."""
    selected = pl.DataFrame({ITEM_ID: item_ids.cast(pl.Utf8)})
    return selected.join(books.select(ITEM_ID, LANGUAGE, YEAR, TAGS), on=ITEM_ID, how="inner")


def shelves(metadata: pl.DataFrame) -> pl.Series:
    """Return one shelf name per (book, shelf) pair; books without shelves give no rows."""
    return metadata.select(pl.col(TAGS).explode().alias("shelf")).drop_nulls()["shelf"]


def is_read_hits(interactions: pl.DataFrame) -> int:
    return int(interactions[IS_READ].sum())
