"""The `Dataset` container every reader returns, with its drop report and file manifest.

Table schemas (polars):

interactions
    user_id: Utf8, item_id: Utf8, rating: Float32 in 0..5 (0 means unrated),
    is_read: Boolean, date_added: Datetime(us, UTC).
books (optional)
    item_id: Utf8, title: Utf8, description: Utf8, authors: List(Utf8), series: List(Utf8),
    tags: List(Utf8), tag_counts: List(Int64) aligned with tags (may be null),
    year: Int32 (nullable), language: Utf8 (nullable).
test (only for inputs that ship a fixed test set)
    user_id: Utf8, item_id: Utf8.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import polars as pl

INTERACTION_SCHEMA: dict[str, pl.DataType] = {
    "user_id": pl.Utf8(),
    "item_id": pl.Utf8(),
    "rating": pl.Float32(),
    "is_read": pl.Boolean(),
    "date_added": pl.Datetime("us", "UTC"),
}

BOOK_SCHEMA: dict[str, pl.DataType] = {
    "item_id": pl.Utf8(),
    "title": pl.Utf8(),
    "description": pl.Utf8(),
    "authors": pl.List(pl.Utf8()),
    "series": pl.List(pl.Utf8()),
    "tags": pl.List(pl.Utf8()),
    "tag_counts": pl.List(pl.Int64()),
    "year": pl.Int32(),
    "language": pl.Utf8(),
}


@dataclass
class DropReport:
    """Rows dropped while reading, counted by file and reason."""

    counts: Counter = field(default_factory=Counter)

    def add(self, source: str, reason: str, rows: int) -> None:
        """Count `rows` dropped from `source` for `reason` (zero counts are ignored)."""
        if rows:
            self.counts[(source, reason)] += int(rows)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def to_records(self) -> list[dict[str, Any]]:
        return [
            {"source": source, "reason": reason, "rows": rows}
            for (source, reason), rows in sorted(self.counts.items())
        ]

    def __str__(self) -> str:
        if not self.counts:
            return "no rows dropped"
        lines = [
            f"{rows:>10,} rows dropped from {src}: {why}"
            for (src, why), rows in sorted(self.counts.items())
        ]
        return "\n".join(lines)


@dataclass(frozen=True)
class FileRecord:
    """One input file in a run's data manifest."""

    path: str
    size_bytes: int
    sha256: str
    rows: int | None = None


@dataclass
class Dataset:
    """Validated input tables plus what was dropped and which files they came from."""

    name: str
    interactions: pl.DataFrame
    books: pl.DataFrame | None = None
    test: pl.DataFrame | None = None
    synthetic: bool = False
    drops: DropReport = field(default_factory=DropReport)
    manifest: list[FileRecord] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def manifest_records(self) -> list[dict[str, Any]]:
        return [record.__dict__.copy() for record in self.manifest]
