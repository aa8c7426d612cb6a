"""Tiny hand-made training data and serving bundles for the serving tests.

Catalogue of 12 books, b01..b12. Train popularity (distinct readers) falls with the number:
b01 has 5 readers, b02 4, ..., so the popular list starts b01, b02, b03, ... b08. Books b09 and
b10 have no train interactions and are cold (b10 is newer than b09); b11 and b12 are in the
catalogue only and also cold. Authors and series link b01-b02-b09 (author "A", series "S1") and
b03-b04 (author "B"), so reasons and metadata similarity have known answers.
"""

from __future__ import annotations

import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import polars as pl
import pytest

from bookrecs.interactions import TrainData
from bookrecs.models import build_model
from bookrecs.serving_bundle import export_bundle
from bookrecs.split import Split, SplitReport

REPO_ROOT = Path(__file__).resolve().parents[2]

# BentoML fixes its home (model store) at first use in a process, so every store test of this
# session shares one temporary home instead of the developer's or the Makefile's.
os.environ["BENTOML_HOME"] = tempfile.mkdtemp(prefix="bookrecs-bentoml-")
os.environ["BENTOML_DO_NOT_TRACK"] = "true"

# user -> books in train
TRAIN = {
    "u1": ["b01", "b02", "b03", "b04", "b05"],
    "u2": ["b01", "b02", "b03", "b04"],
    "u3": ["b01", "b02", "b03", "b06"],
    "u4": ["b01", "b02", "b07", "b08"],
    "u5": ["b01", "b05", "b06"],
    "u6": ["b03"],
}
BOOKS = {
    # item_id: (title, authors, series, tags, year)
    "b01": ("Alpha One", ["A"], ["S1"], ["to-read", "Fantasy", "magic", "ya"], 2010),
    "b02": ("Alpha Two", ["A"], ["S1"], ["fantasy", "magic", "ya"], 2011),
    "b03": ("Beta", ["B"], [], ["romance", "ya", "school"], 2012),
    "b04": ("Beta Again", ["B"], [], ["romance", "ya"], 2013),
    "b05": ("Gamma", ["C"], [], ["scifi", "space"], 2012),
    "b06": ("Delta", ["D"], [], ["scifi", "space", "ya"], 2014),
    "b07": ("Epsilon", ["E"], [], ["horror"], 2009),
    "b08": ("Zeta", ["F"], [], ["horror", "ghosts"], 2008),
    "b09": ("Alpha Three", ["A"], ["S1"], ["to-read", "fantasy", "magic"], 2015),
    "b10": ("Eta", ["G"], [], ["fantasy", "dragons"], 2016),
    "b11": ("Theta", ["H"], [], ["mystery"], None),
    "b12": ("Iota", ["I"], [], ["romance", "school", "ya"], 2014),
}
COLD = ["b09", "b10", "b11", "b12"]


def make_split() -> Split:
    rows = [(user, item) for user, items in TRAIN.items() for item in items]
    date = datetime(2017, 1, 1, tzinfo=UTC)
    train = pl.DataFrame(
        {
            "user_id": [user for user, _ in rows],
            "item_id": [item for _, item in rows],
            "rating": [4.0] * len(rows),
            "is_read": [True] * len(rows),
            "date_added": [date] * len(rows),
            "weight": [1.0] * len(rows),
        }
    )
    test = pl.DataFrame({"user_id": ["u1", "u2"], "item_id": ["b09", "b10"]})
    books = pl.DataFrame(
        {
            "item_id": list(BOOKS),
            "title": [v[0] for v in BOOKS.values()],
            "description": [""] * len(BOOKS),
            "authors": [v[1] for v in BOOKS.values()],
            "series": [v[2] for v in BOOKS.values()],
            "tags": [v[3] for v in BOOKS.values()],
            "tag_counts": [list(range(len(v[3]), 0, -1)) for v in BOOKS.values()],
            "year": [v[4] for v in BOOKS.values()],
            "language": ["eng"] * len(BOOKS),
        },
        schema_overrides={"year": pl.Int32},
    )
    return Split(
        train=train,
        test=test,
        books=books,
        cold_items=pl.Series("item_id", COLD),
        report=SplitReport(),
    )


@pytest.fixture(scope="session")
def train_data() -> TrainData:
    return TrainData.from_split(make_split())


def make_bundle(dest: Path, data: TrainData, model_name: str = "popular", run_id: str = "run1"):
    model = build_model(model_name, seed=7).fit(data)
    return export_bundle(dest, model, data, run_id=run_id, metrics={"ndcg@10": 0.1}, k_precompute=6)


@pytest.fixture(scope="session")
def bundles(tmp_path_factory, train_data) -> dict[str, Path]:
    """Bundles of two runs: `run1` (popular) and `run2` (item-kNN)."""
    root = tmp_path_factory.mktemp("bundles")
    return {
        "run1": make_bundle(root / "run1", train_data, "popular", "run1"),
        "run2": make_bundle(root / "run2", train_data, "itemknn", "run2"),
    }


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def item_ids(response: dict) -> list[str]:
    return [item["item_id"] for item in response["items"]]
