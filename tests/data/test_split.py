"""Tests of the global time split: known results, the no-leak property and real sample data."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from bookrecs.config import DemoConfig, ProtocolConfig
from bookrecs.data.dataset import BOOK_SCHEMA, INTERACTION_SCHEMA
from bookrecs.data.demo import write_demo
from bookrecs.data.goodreads import read_goodreads
from bookrecs.data.prepare import STEP_ENGLISH, STEP_MERGE, Prepared, prepare
from bookrecs.exceptions import DataError
from bookrecs.split import CUT_FIXED_TEST, CUT_QUANTILE, count_pairs, make_split


def day(n: int) -> datetime:
    return datetime(2017, 1, n, tzinfo=UTC)


def prepared(rows: list[tuple], books: list[str] | None = None, test=None) -> Prepared:
    """Rows of (user_id, item_id, rating, is_read, day number)."""
    frame = pl.DataFrame(
        [(u, i, float(r), bool(read), day(d)) for u, i, r, read, d in rows],
        schema=INTERACTION_SCHEMA,
        orient="row",
    )
    table = None
    if books is not None:
        table = (
            pl.DataFrame([{"item_id": item, "title": item, "language": "eng"} for item in books])
            .with_columns(
                [
                    pl.lit(None, dtype=dtype).alias(name)
                    for name, dtype in BOOK_SCHEMA.items()
                    if name not in ("item_id", "title", "language")
                ]
            )
            .select(list(BOOK_SCHEMA))
        )
    return Prepared(
        interactions=frame,
        books=table,
        test=test,
        steps=[("input", frame.height)],
        name="tiny",
    )


ROWS = [
    ("a", "1", 5, 1, 1),
    ("a", "2", 0, 0, 2),
    ("b", "1", 0, 1, 3),
    ("b", "3", 2, 0, 4),
    ("c", "2", 0, 0, 5),
    ("a", "3", 0, 0, 6),
    ("b", "4", 0, 0, 7),
    ("d", "1", 0, 0, 8),
]


def test_split_known_answer():
    split = make_split(prepared(ROWS, books=["1", "2", "3", "4", "5"]), ProtocolConfig())
    # 0.75 quantile (lower) of days 1..8 is day 6.
    assert split.report.cut_date == day(6)
    assert split.train.height == 5
    assert sorted(zip(split.test["user_id"], split.test["item_id"], strict=True)) == [
        ("a", "3"),
        ("b", "4"),
    ]
    assert split.report.test_pairs_unknown_user == 1
    assert split.cold_items.to_list() == ["4", "5"]
    assert split.report.cold_items == 2
    assert split.report.catalogue_items == 5
    assert split.report.cold_test_pair_share == pytest.approx(0.5)
    assert split.report.cut_rule == CUT_QUANTILE


def test_split_weights_formula():
    protocol = ProtocolConfig(weight_base=1.0, weight_rating=0.25, weight_is_read=0.5)
    split = make_split(prepared(ROWS), protocol)
    weights = dict(
        zip(
            zip(split.train["user_id"], split.train["item_id"], strict=True),
            split.train["weight"],
            strict=True,
        )
    )
    assert weights[("a", "1")] == pytest.approx(1.0 + 0.25 * 5 + 0.5)
    assert weights[("a", "2")] == pytest.approx(1.0)
    assert weights[("b", "1")] == pytest.approx(1.5)
    assert weights[("b", "3")] == pytest.approx(1.5)
    assert split.train["weight"].dtype == pl.Float32


def test_split_cold_threshold_two():
    split = make_split(prepared(ROWS), ProtocolConfig(cold_threshold=2))
    # Train counts: item 1 -> 2, item 2 -> 2, item 3 -> 1; item 4 only in test.
    assert split.cold_items.to_list() == ["3", "4"]


def test_split_fixed_test_as_given():
    test = pl.DataFrame({"user_id": ["a", "zz"], "item_id": ["9", "1"]})
    split = make_split(prepared(ROWS, test=test), ProtocolConfig())
    assert split.train.height == len(ROWS)
    assert split.test.equals(test)
    assert split.report.cut_rule == CUT_FIXED_TEST
    assert split.report.cut_date == day(8)
    assert split.cold_items.to_list() == ["9"]
    assert "fixed test set" in split.report.to_markdown()


def test_split_rejects_empty_test():
    rows = [("a", "1", 0, 0, 1), ("b", "2", 0, 0, 2)]
    with pytest.raises(DataError, match="test_quantile"):
        make_split(prepared(rows), ProtocolConfig(test_quantile=0.5))


def test_report_markdown_contents():
    split = make_split(prepared(ROWS), ProtocolConfig())
    text = split.report.to_markdown()
    assert "2017-01-06" in text
    assert "no train interactions" in text
    assert "fewer than 1 train" in text
    assert "| train | 3 | 3 | 5 |" in text
    assert split.report.to_dict()["cut_date"].startswith("2017-01-06")


@pytest.fixture(scope="module")
def demo_split(tmp_path_factory):
    """Prepare and split a small generated dataset read back from its JSON files."""
    dest = write_demo(
        tmp_path_factory.mktemp("demo"),
        DemoConfig(n_users=400, n_books=300),
        seed=3,
        show_progress=False,
    )
    dataset = read_goodreads(dest, show_progress=False)
    prep = prepare(dataset, ProtocolConfig(), show_progress=False)
    return prep, make_split(prep, ProtocolConfig())


def test_demo_split_never_leaks_future(demo_split):
    prep, split = demo_split
    cut = split.report.cut_date
    assert split.train["date_added"].max() < cut
    assert split.test["date_added"].min() >= cut
    assert set(split.test["user_id"]) <= set(split.train["user_id"])
    dated = prep.interactions.filter(pl.col("date_added") >= cut)
    leaked = split.train.join(dated, on=["user_id", "item_id"], how="semi")
    assert leaked.height == 0
    assert split.train.height + split.test.height + split.report.test_pairs_unknown_user == (
        prep.interactions.height
    )


@pytest.mark.parametrize("quantile", [0.3, 0.5, 0.9])
def test_demo_split_cut_at_quantile(demo_split, quantile):
    prep, _ = demo_split
    split = make_split(prep, ProtocolConfig(test_quantile=quantile))
    cut = split.report.cut_date
    assert split.train["date_added"].max() < cut
    assert split.test["date_added"].min() >= cut
    dates = prep.interactions["date_added"]
    share_before = (dates < cut).mean()
    assert share_before <= quantile
    assert share_before > quantile - 0.01


def test_demo_split_has_cold_test_items(demo_split):
    _, split = demo_split
    assert split.report.cold_items > 0
    assert 0 < split.report.cold_test_pair_share < 0.5
    cold_in_test = split.test.filter(pl.col("item_id").is_in(split.cold_items.implode()))
    assert cold_in_test.height > 0
    assert cold_in_test.join(split.train, on="item_id", how="semi").height == 0


def test_real_head_prepare_and_split(goodreads_head_dir):
    dataset = read_goodreads(goodreads_head_dir, show_progress=False)
    prep = prepare(dataset, ProtocolConfig(), show_progress=False)
    assert prep.steps[0] == ("input", 5_000)
    assert [reason.split(":")[0] for reason in prep.skipped] == [STEP_ENGLISH, STEP_MERGE]
    split = make_split(prep, ProtocolConfig())
    assert split.report.skipped == prep.skipped
    assert split.train["date_added"].max() < split.report.cut_date
    assert split.report.test_pairs > 0
    assert "no book metadata" in split.report.to_markdown()


def test_count_pairs_with_repeats():
    frame = pl.DataFrame(
        {"user_id": ["a", "a", "b", "b", "c"], "item_id": ["1", "1", "1", "2", "1"]}
    )
    assert count_pairs(frame) == 4
    assert count_pairs(frame.unique()) == 4
    assert count_pairs(frame.head(0)) == 0
