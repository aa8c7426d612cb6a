"""Tests of `load_dataset`, the reader dispatch for a training config."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from bookrecs.config import DemoConfig, TrainConfig
from bookrecs.data.goodreads import INTERACTIONS_FILE
from bookrecs.data.load import demo_folder_name, load_dataset
from bookrecs.exceptions import DataError


def test_goodreads_branch(goodreads_head_dir):
    config = TrainConfig(dataset="goodreads", data_dir=str(goodreads_head_dir), show_progress=False)

    dataset = load_dataset(config)

    assert dataset.name == "goodreads"
    assert dataset.synthetic is False
    assert dataset.interactions.height == 5000


def test_goodreads_tiny(tmp_path):
    record = {
        "user_id": "u1",
        "book_id": "7",
        "is_read": True,
        "rating": 4,
        "date_added": "Wed Mar 29 00:12:52 -0700 2017",
    }
    with gzip.open(tmp_path / INTERACTIONS_FILE, "wt") as stream:
        stream.write(json.dumps(record) + "\n")
    config = TrainConfig(dataset="goodreads", data_dir=str(tmp_path), show_progress=False)

    dataset = load_dataset(config)

    assert dataset.interactions.rows() == [
        ("u1", "7", 4.0, True, dataset.interactions.item(0, "date_added"))
    ]


def test_prepared_branch(tmp_path):
    pl.DataFrame({"user_id": ["u"], "item_id": ["i"], "date_added": ["2017-01-01"]}).write_parquet(
        tmp_path / "train.pq"
    )
    pl.DataFrame({"user_id": ["u"], "item_id": ["j"]}).write_parquet(tmp_path / "test.pq")
    config = TrainConfig(dataset="prepared", data_dir=str(tmp_path), show_progress=False)

    dataset = load_dataset(config)

    assert dataset.name == "prepared"
    assert dataset.test is not None
    assert dataset.test.rows() == [("u", "j")]


def test_custom_branch(tmp_path):
    (tmp_path / "interactions.csv").write_text("user_id,item_id,timestamp\nu,i,1490746372\n")
    config = TrainConfig(dataset="custom", data_dir=str(tmp_path), show_progress=False)

    dataset = load_dataset(config)

    assert dataset.name == "custom"
    assert dataset.interactions.height == 1


def test_missing_data_dir(tmp_path):
    config = TrainConfig(dataset="custom", data_dir=str(tmp_path / "absent"))

    with pytest.raises(DataError, match="does not exist: pass --data-dir"):
        load_dataset(config)


def test_demo_folder_name():
    assert demo_folder_name(DemoConfig(), 42) == "small-seed42"
    assert demo_folder_name(DemoConfig(size="full"), 7) == "full-seed7"
    assert demo_folder_name(DemoConfig(n_users=50, n_books=40), 1) == "small-seed1-u50-b40"


def test_demo_branch(tmp_path):
    pytest.importorskip("bookrecs.data.demo", reason="the demo generator is not installed")
    config = TrainConfig(
        dataset="demo", seed=3, demo=DemoConfig(n_users=30, n_books=40), show_progress=False
    )

    dataset = load_dataset(config, cache_dir=tmp_path)

    folder = tmp_path / "small-seed3-u30-b40"
    assert (folder / INTERACTIONS_FILE).is_file()
    assert dataset.name == "demo (synthetic)"
    assert dataset.synthetic is True
    assert dataset.interactions.height > 0
    assert dataset.interactions.get_column("user_id").n_unique() <= 30
    assert dataset.books is not None
    assert dataset.drops.total == 0
    assert all(Path(record.path).parent == folder.resolve() for record in dataset.manifest)


def test_demo_reuses_files(tmp_path):
    pytest.importorskip("bookrecs.data.demo", reason="the demo generator is not installed")
    config = TrainConfig(
        dataset="demo", seed=3, demo=DemoConfig(n_users=30, n_books=40), show_progress=False
    )

    first = load_dataset(config, cache_dir=tmp_path)
    stamp = (tmp_path / "small-seed3-u30-b40" / INTERACTIONS_FILE).stat().st_mtime_ns
    second = load_dataset(config, cache_dir=tmp_path)

    assert (tmp_path / "small-seed3-u30-b40" / INTERACTIONS_FILE).stat().st_mtime_ns == stamp
    assert first.interactions.equals(second.interactions)
