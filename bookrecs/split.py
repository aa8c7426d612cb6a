"""Global time split into train and test, with warm/cold items and a split report.

`make_split` cuts every user's history at one date, the `test_quantile` quantile of
`date_added` over all prepared interactions. Rows dated before the cut are train and rows dated
on or after it are test. Test keeps only users that appear in train. Items of the catalogue
(train, test and book table) with fewer than `cold_threshold` train interactions are cold.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import polars as pl

from bookrecs.columns import DATE, IS_READ, ITEM_ID, RATING, USER_ID, WEIGHT
from bookrecs.config import ProtocolConfig
from bookrecs.data.prepare import Prepared, repeated_pairs
from bookrecs.exceptions import DataError

logger = logging.getLogger("bookrecs.split")

CUT_QUANTILE = "quantile"
CUT_FIXED_TEST = "fixed_test"


@dataclass
class SplitReport:
    """Row counts after every preparation step and the shape of train and test.

    `cut_rule` is ``"quantile"`` when `cut_date` is the `test_quantile` quantile of
    date_added. It is ``"fixed_test"`` when the input shipped its test set, and `cut_date` is
    then the latest train date, for information only.
    """

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
    cut_rule: str = CUT_QUANTILE
    test_quantile: float | None = None
    catalogue_items: int = 0
    test_pairs_unknown_user: int = 0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        values["cut_date"] = self.cut_date.isoformat() if self.cut_date else None
        return values

    def to_markdown(self) -> str:
        """Render the report as Markdown: preparation steps, cut, train/test shape, cold items."""
        lines = ["## Data preparation", "", "| step | interactions |", "|---|---:|"]
        lines += [f"| {name} | {rows:,} |" for name, rows in self.steps]
        if self.skipped:
            lines += ["", "Skipped steps:", ""] + [f"- {reason}" for reason in self.skipped]
        if self.notes:
            lines += ["", "Notes:", ""] + [f"- {note}" for note in self.notes]

        lines += ["", "## Time split", ""]
        cut = self.cut_date.isoformat() if self.cut_date else "none"
        if self.cut_rule == CUT_FIXED_TEST:
            lines.append(
                f"The input ships a fixed test set, used exactly as given. Latest train date: "
                f"{cut}."
            )
        else:
            quantile = (
                f", the {self.test_quantile} quantile of date_added" if self.test_quantile else ""
            )
            lines.append(
                f"Cut date: {cut}{quantile}. Train is everything dated before it. Test is "
                "everything on or after it, for users that appear in train."
            )
            if self.test_pairs_unknown_user:
                lines.append(
                    f"{self.test_pairs_unknown_user:,} test pairs of users without train "
                    "interactions were left out."
                )
        lines += [
            "",
            "| | users | items | pairs |",
            "|---|---:|---:|---:|",
            f"| train | {self.train_users:,} | {self.train_items:,} | {self.train_pairs:,} |",
            f"| test | {self.test_users:,} | {self.test_items:,} | {self.test_pairs:,} |",
            "",
            f"Cold items: {self.cold_items:,} of {self.catalogue_items:,} catalogue items "
            f"(train, test and book table) have fewer than {self.cold_threshold} train "
            f'interaction(s); the default threshold 1 means "no train interactions", as in '
            "the competition. "
            f"{100 * self.cold_test_pair_share:.1f}% of test pairs are on cold items.",
        ]
        return "\n".join(lines) + "\n"


@dataclass
class Split:
    """Train and test interactions and the item catalogue.

    train: user_id, item_id, rating, is_read, date_added, weight.
    test: user_id, item_id (only users that appear in train), plus rating, is_read and
        date_added when the test came from a time cut. A fixed test set is kept as given.
    books: metadata of the catalogue (train, test and never-seen books) or None.
    cold_items: item_ids with fewer than `cold_threshold` train interactions.
    """

    train: pl.DataFrame
    test: pl.DataFrame
    books: pl.DataFrame | None
    cold_items: pl.Series
    report: SplitReport
    synthetic: bool = False


def make_split(prepared: Prepared, protocol: ProtocolConfig) -> Split:
    """Split prepared interactions into train and test by time.

    Parameters
    ----------
    prepared
        Output of `bookrecs.data.prepare.prepare`. When it carries a fixed test set, train is
        every prepared interaction and test is that set exactly as given.
    protocol
        `test_quantile`, `cold_threshold` and the weight coefficients.

    Returns
    -------
    Split
        Train with a `weight` column
        ``weight = weight_base + weight_rating * rating + weight_is_read * is_read``,
        test, books, cold items and the report.

    Raises
    ------
    DataError
        When either side of the cut is empty.
    """
    interactions = prepared.interactions
    if interactions.height == 0:
        raise DataError(f"dataset {prepared.name!r} has no interactions left to split")

    report = SplitReport(
        steps=list(prepared.steps),
        skipped=list(prepared.skipped),
        cold_threshold=protocol.cold_threshold,
        notes=list(prepared.notes),
    )
    if prepared.test is not None:
        train, test = interactions, prepared.test
        report.cut_rule = CUT_FIXED_TEST
        report.cut_date = train[DATE].max()
    else:
        cut = cut_date(interactions, protocol.test_quantile)
        train, test, unknown = split_at(interactions, cut)
        report.cut_rule = CUT_QUANTILE
        report.cut_date = cut
        report.test_quantile = protocol.test_quantile
        report.test_pairs_unknown_user = unknown
    _check_sides(train, test, prepared.name, report)

    train = train.with_columns(add_weight(protocol).alias(WEIGHT))
    cold = cold_items(train, test, prepared.books, protocol.cold_threshold)
    _fill_counts(report, train, test, prepared.books, cold)
    logger.info(
        "split %s at %s: train %d pairs, test %d pairs, %d cold items (%.1f%% of test pairs)",
        prepared.name,
        report.cut_date,
        report.train_pairs,
        report.test_pairs,
        report.cold_items,
        100 * report.cold_test_pair_share,
    )
    return Split(
        train=train,
        test=test,
        books=prepared.books,
        cold_items=cold,
        report=report,
        synthetic=prepared.synthetic,
    )


def cut_date(interactions: pl.DataFrame, quantile: float) -> datetime:
    """Return the `quantile` quantile of date_added (a date present in the data)."""
    if not 0 < quantile < 1:
        raise DataError(f"test_quantile must be in (0, 1), got {quantile}")
    cut = interactions[DATE].quantile(quantile, interpolation="lower")
    if cut is None:
        raise DataError("date_added has no values; the split needs a date on every interaction")
    return cut


def split_at(interactions: pl.DataFrame, cut: datetime) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """Split at `cut`: train is dated before it, test on or after it and of train users.

    Returns
    -------
    tuple
        ``(train, test, test rows left out because their user has no train rows)``.
    """
    train = interactions.filter(pl.col(DATE) < cut)
    later = interactions.filter(pl.col(DATE) >= cut)
    test = later.join(train.select(USER_ID).unique(), on=USER_ID, how="semi")
    return train, test, later.height - test.height


def add_weight(protocol: ProtocolConfig) -> pl.Expr:
    """Training weight ``weight_base + weight_rating * rating + weight_is_read * is_read``."""
    return (
        protocol.weight_base
        + protocol.weight_rating * pl.col(RATING).cast(pl.Float32)
        + protocol.weight_is_read * pl.col(IS_READ).cast(pl.Float32)
    ).cast(pl.Float32)


def cold_items(
    train: pl.DataFrame,
    test: pl.DataFrame,
    books: pl.DataFrame | None,
    threshold: int,
) -> pl.Series:
    """Return the sorted catalogue item_ids with fewer than `threshold` train interactions."""
    catalogue = _catalogue(train, test, books)
    counts = train.group_by(ITEM_ID).len(name="_train_count")
    return (
        catalogue.join(counts, on=ITEM_ID, how="left")
        .filter(pl.col("_train_count").fill_null(0) < threshold)[ITEM_ID]
        .sort()
    )


def _catalogue(train: pl.DataFrame, test: pl.DataFrame, books: pl.DataFrame | None) -> pl.DataFrame:
    parts = [train.select(ITEM_ID), test.select(ITEM_ID)]
    if books is not None:
        parts.append(books.select(ITEM_ID))
    return pl.concat([part.cast({ITEM_ID: pl.Utf8}) for part in parts]).unique()


def _check_sides(train: pl.DataFrame, test: pl.DataFrame, name: str, report: SplitReport) -> None:
    if train.height == 0:
        raise DataError(
            f"the split of {name!r} has no train interactions (cut {report.cut_date}); "
            "raise protocol.test_quantile or check date_added"
        )
    if test.height == 0:
        raise DataError(
            f"the split of {name!r} has no test interactions of train users "
            f"(cut {report.cut_date}); lower protocol.test_quantile or keep more history"
        )


def _fill_counts(
    report: SplitReport,
    train: pl.DataFrame,
    test: pl.DataFrame,
    books: pl.DataFrame | None,
    cold: pl.Series,
) -> None:
    report.train_users = train[USER_ID].n_unique()
    report.train_items = train[ITEM_ID].n_unique()
    report.train_pairs = count_pairs(train)
    report.test_users = test[USER_ID].n_unique()
    report.test_items = test[ITEM_ID].n_unique()
    report.test_pairs = count_pairs(test)
    report.catalogue_items = _catalogue(train, test, books).height
    report.cold_items = len(cold)
    cold_pairs = count_pairs(test.filter(pl.col(ITEM_ID).is_in(cold.implode())))
    report.cold_test_pair_share = cold_pairs / report.test_pairs if report.test_pairs else 0.0


def count_pairs(frame: pl.DataFrame) -> int:
    """Count distinct (user_id, item_id) pairs.

    Only rows whose 64-bit pair hash repeats are compared as strings, so the count is exact
    and cheap when pairs are already unique.
    """
    if frame.height == 0:
        return 0
    repeated = repeated_pairs(frame)
    unrepeated = frame.height - int(repeated.sum())
    if unrepeated == frame.height:
        return unrepeated
    return unrepeated + frame.filter(repeated).select(USER_ID, ITEM_ID).n_unique()
