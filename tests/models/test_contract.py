"""The Recommender contract, checked against every registered model on a tiny two-block dataset.

Users 0-5 read fantasy books, users 6-11 read romance books. Each block has five train items and
one item that appears only in test and in the catalogue (cold), so every model gets warm items,
cold items and metadata.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from importlib import import_module
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from bookrecs.data.dataset import BOOK_SCHEMA
from bookrecs.exceptions import ModelLoadError, NotFittedError
from bookrecs.interactions import TrainData
from bookrecs.models import MODEL_PATHS, Recommender, build_model
from bookrecs.models.base import META_FILE, STATE_FILE
from bookrecs.split import Split, SplitReport

SEED = 7
BLOCKS = {
    "fantasy": {
        "tags": ["fantasy", "dragons", "magic"],
        "author": "Ann Drake",
        "words": "dragon magic quest kingdom sword wizard",
    },
    "romance": {
        "tags": ["romance", "contemporary", "school"],
        "author": "Rosa Heart",
        "words": "love school summer kiss friends heart",
    },
}
ITEMS_PER_BLOCK = 6  # the last item of each block is cold
USERS_PER_BLOCK = 6


def item_id(block: int, position: int) -> str:
    return f"b{block}{position}"


def tiny_split(
    train_pairs: list[tuple[str, str]],
    test_pairs: list[tuple[str, str]],
    books: pl.DataFrame | None = None,
    cold_items: list[str] | None = None,
    weights: list[float] | None = None,
) -> Split:
    """Build a Split from (user_id, item_id) pairs; weights default to 1."""
    start = datetime(2017, 1, 1, tzinfo=UTC)
    train = pl.DataFrame(
        {
            "user_id": [user for user, _ in train_pairs],
            "item_id": [item for _, item in train_pairs],
            "rating": [4.0] * len(train_pairs),
            "is_read": [True] * len(train_pairs),
            "date_added": [start + timedelta(days=day) for day in range(len(train_pairs))],
            "weight": weights if weights is not None else [1.0] * len(train_pairs),
        },
        schema_overrides={"rating": pl.Float32, "weight": pl.Float32},
    )
    test = pl.DataFrame(
        {"user_id": [user for user, _ in test_pairs], "item_id": [item for _, item in test_pairs]},
        schema={"user_id": pl.Utf8, "item_id": pl.Utf8},
    )
    return Split(
        train=train,
        test=test,
        books=books,
        cold_items=pl.Series("item_id", cold_items or [], dtype=pl.Utf8),
        report=SplitReport(),
    )


def block_books() -> pl.DataFrame:
    rows = []
    for block, (genre, info) in enumerate(BLOCKS.items()):
        words = info["words"].split()
        for position in range(ITEMS_PER_BLOCK):
            rows.append(
                {
                    "item_id": item_id(block, position),
                    "title": f"{words[position].title()} {genre.title()} {position}",
                    "description": f"A {genre} story about {' '.join(words)}.",
                    "authors": [info["author"]],
                    "series": [],
                    "tags": info["tags"],
                    "tag_counts": [30, 20, 10],
                    "year": 2010 + position,
                    "language": "eng",
                }
            )
    return pl.DataFrame(rows, schema=BOOK_SCHEMA)


def block_split() -> Split:
    """Each user has three of the five warm items of their block in train, one in test."""
    train, test = [], []
    for block in range(len(BLOCKS)):
        for offset in range(USERS_PER_BLOCK):
            user = f"u{block * USERS_PER_BLOCK + offset:02d}"
            read = [(offset + step) % 5 for step in range(4)]
            train += [(user, item_id(block, position)) for position in read[:3]]
            test.append((user, item_id(block, read[3])))
        test.append((f"u{block * USERS_PER_BLOCK:02d}", item_id(block, 5)))
    cold = [item_id(block, 5) for block in range(len(BLOCKS))]
    return tiny_split(train, test, books=block_books(), cold_items=cold)


@pytest.fixture(scope="module")
def block_data() -> TrainData:
    return TrainData.from_split(block_split())


def model_class_or_skip(name: str) -> type[Recommender]:
    """Return the registered class, skipping when its own module does not exist yet."""
    module_name = MODEL_PATHS[name].split(":")[0]
    try:
        import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name != module_name:
            raise
        pytest.skip(f"{name}: module {module_name} does not exist yet")
    from bookrecs.models import get_model_class

    return get_model_class(name)


@pytest.fixture(scope="module", params=sorted(MODEL_PATHS))
def model_name(request: pytest.FixtureRequest) -> str:
    model_class_or_skip(request.param)
    return request.param


@pytest.fixture(scope="module")
def fitted(model_name: str, block_data: TrainData) -> Recommender:
    return build_model(model_name, SEED).fit(block_data)


def all_users(data: TrainData) -> np.ndarray:
    return np.arange(data.n_users)


def test_unfitted_raises(model_name: str) -> None:
    model = build_model(model_name, SEED)
    with pytest.raises(NotFittedError):
        model.recommend(np.array([0]), 3)
    with pytest.raises(NotFittedError):
        model.save(Path("unused"))


def test_recommend_excludes_seen(fitted: Recommender, block_data: TrainData) -> None:
    ids, _ = fitted.recommend(all_users(block_data), 5)
    seen = block_data.user_items
    for user, row in enumerate(ids):
        recommended = set(row[row >= 0].tolist())
        assert not recommended & set(seen[user].indices.tolist()), f"user {user} got a seen item"


def test_recommend_shape_and_range(fitted: Recommender, block_data: TrainData) -> None:
    ids, scores = fitted.recommend(all_users(block_data), 5)
    assert ids.shape == (block_data.n_users, 5)
    assert scores.shape == (block_data.n_users, 5)
    assert ids.min() >= -1
    assert ids.max() < block_data.n_items
    for row in ids:
        recommended = row[row >= 0]
        assert len(set(recommended.tolist())) == len(recommended), "an item repeats in a list"


def test_recommend_scores_sorted(fitted: Recommender, block_data: TrainData) -> None:
    _, scores = fitted.recommend(all_users(block_data), 8)
    assert (scores[:, :-1] >= scores[:, 1:]).all()


def test_recommend_pads_short_lists(fitted: Recommender, block_data: TrainData) -> None:
    ids, scores = fitted.recommend(all_users(block_data), block_data.n_items + 5)
    n_seen = np.diff(block_data.user_items.indptr)
    assert ids.shape[1] == block_data.n_items
    for user, row in enumerate(ids):
        padding = row == -1
        assert padding.sum() == n_seen[user]
        assert padding[len(row) - n_seen[user] :].all(), "padding is not at the end"
        assert np.isneginf(scores[user][padding]).all()


def test_save_load_roundtrip(fitted: Recommender, block_data: TrainData, tmp_path: Path) -> None:
    users = all_users(block_data)
    before_ids, before_scores = fitted.recommend(users, 5, user_items=block_data.user_items)
    loaded = Recommender.load(fitted.save(tmp_path / fitted.name))
    after_ids, after_scores = loaded.recommend(users, 5, user_items=block_data.user_items)
    assert type(loaded) is type(fitted)
    assert loaded.params == fitted.params
    np.testing.assert_array_equal(after_ids, before_ids)
    np.testing.assert_array_equal(after_scores, before_scores)


def test_same_seed_same_output(model_name: str, block_data: TrainData) -> None:
    users = all_users(block_data)
    first = build_model(model_name, SEED).fit(block_data).recommend(users, 5)
    second = build_model(model_name, SEED).fit(block_data).recommend(users, 5)
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])


def test_batches_do_not_change_output(fitted: Recommender, block_data: TrainData) -> None:
    users = all_users(block_data)
    whole = fitted.recommend(users, 5, batch_size=len(users))
    batched = fitted.recommend(users, 5, batch_size=5)
    np.testing.assert_array_equal(batched[0], whole[0])
    np.testing.assert_allclose(batched[1], whole[1], rtol=1e-6)


def test_similar_items_exclude_self(fitted: Recommender, block_data: TrainData) -> None:
    items = np.arange(block_data.n_items)
    try:
        ids, scores = fitted.similar_items(items, 3)
    except NotImplementedError:
        pytest.skip(f"{fitted.name} does not support similar_items")
    assert ids.shape == (len(items), 3)
    assert (ids != items[:, None]).all()
    assert ids.max() < block_data.n_items
    assert (scores[:, :-1] >= scores[:, 1:]).all()


def test_load_missing_dir_raises(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError):
        Recommender.load(tmp_path / "absent")


def test_load_corrupt_state_raises(fitted: Recommender, tmp_path: Path) -> None:
    saved = fitted.save(tmp_path / "model")
    (saved / STATE_FILE).write_bytes(b"not an npz archive")
    with pytest.raises(ModelLoadError):
        Recommender.load(saved)


def test_load_truncated_state_raises(fitted: Recommender, tmp_path: Path) -> None:
    saved = fitted.save(tmp_path / "model")
    state = (saved / STATE_FILE).read_bytes()
    (saved / STATE_FILE).write_bytes(state[: len(state) // 2])
    with pytest.raises(ModelLoadError):
        Recommender.load(saved)


def test_load_corrupt_meta_raises(fitted: Recommender, tmp_path: Path) -> None:
    saved = fitted.save(tmp_path / "model")
    (saved / META_FILE).write_text("{ not json")
    with pytest.raises(ModelLoadError):
        Recommender.load(saved)


def test_load_missing_arrays_raises(fitted: Recommender, tmp_path: Path) -> None:
    saved = fitted.save(tmp_path / "model")
    with np.load(saved / STATE_FILE) as state:
        if not state.files:
            pytest.skip(f"{fitted.name} saves no arrays")
    np.savez(saved / STATE_FILE)
    with pytest.raises(ModelLoadError):
        Recommender.load(saved)


def test_load_other_format_raises(fitted: Recommender, tmp_path: Path) -> None:
    saved = fitted.save(tmp_path / "model")
    meta = json.loads((saved / META_FILE).read_text())
    meta["format"] = 999
    (saved / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelLoadError):
        Recommender.load(saved)
