"""Global time split into train and test, with warm/cold items and a split report."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import polars as pl


@dataclass
class SplitReport:
    """Row counts after every preparation step and the shape of train and test."""

    steps: list[tuple[str, int]] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    cut_date: datetime | None = None
    cold_threshold: int = 1
    train_users: int = 0
    train_items: int = 0
    train_pairs: int = 0
    test_users: int = 0
    test_items: int = 0
    test_pairs: int = 0
    cold_items: int = 0
    cold_test_pair_share: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["cut_date"] = self.cut_date.isoformat() if self.cut_date else None
        return values


@dataclass
class Split:
    """Train and test interactions and the item catalogue.

    train: user_id, item_id, rating, is_read, date_added, weight.
    test: user_id, item_id (only users that appear in train).
    books: metadata of the catalogue (train, test and never-seen books) or None.
    cold_items: item_ids with fewer than `cold_threshold` train interactions.
    """

    train: pl.DataFrame
    test: pl.DataFrame
    books: pl.DataFrame | None
    cold_items: pl.Series
    report: SplitReport
    synthetic: bool = False
