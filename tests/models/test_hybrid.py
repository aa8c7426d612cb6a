"""LightFM hybrid on a tiny two-genre catalogue where the expected ranking is known.

Readers of fantasy read only fantasy books and readers of romance only romance books. Each
genre has warm books and two cold books (metadata only, no train interactions), so a hybrid
that uses content must rank a genre's cold books above the other genre's cold books.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import polars as pl
import pytest

from bookrecs.config import EvalConfig
from bookrecs.data.dataset import BOOK_SCHEMA
from bookrecs.evaluate import evaluate
from bookrecs.exceptions import ConfigError, DataError
from bookrecs.interactions import TrainData
from bookrecs.models import Recommender, build_model
from bookrecs.models.lightfm_hybrid import LightFMRecommender, reserve_slots
from bookrecs.split import Split, SplitReport
from bookrecs.tuning import select_best, validation_split

GENRES = {
    "fantasy": {"tags": ["fantasy", "magic", "dragons"], "authors": ["Ann Drake", "Bo Wyrm"]},
    "romance": {"tags": ["romance", "love", "school"], "authors": ["Rosa Heart", "Cy Kiss"]},
}
WARM_PER_GENRE = 8
COLD_PER_GENRE = 2
USERS_PER_GENRE = 15
FAST = {"no_components": 8, "epochs": 8, "learning_rate": 0.05}


def book_id(genre: str, number: int) -> str:
    return f"{genre[0]}{number:02d}"


def two_genre_books(with_blank: bool = True) -> pl.DataFrame:
    """Books of both genres; the last warm fantasy book has no metadata when `with_blank`."""
    rows = []
    for genre, facts in GENRES.items():
        for number in range(WARM_PER_GENRE + COLD_PER_GENRE):
            author = facts["authors"][number % 2]
            rows.append(
                {
                    "item_id": book_id(genre, number),
                    "title": f"{genre} tale {number}",
                    "description": f"a {genre} story",
                    "authors": [author],
                    "series": [f"{author} saga"] if number % 3 == 0 else [],
                    "tags": facts["tags"] + ["to-read"],
                    "tag_counts": [50, 20, 10, 900],
                    "year": 2000 + number,
                    "language": "eng",
                }
            )
    books = pl.DataFrame(rows, schema=BOOK_SCHEMA)
    if with_blank:
        blank = book_id("fantasy", WARM_PER_GENRE - 1)
        metadata = [column for column in BOOK_SCHEMA if column != "item_id"]
        books = books.with_columns(
            [
                pl.when(pl.col("item_id") == blank).then(None).otherwise(pl.col(name)).alias(name)
                for name in metadata
            ]
        )
    return books


def two_genre_split(books: pl.DataFrame | None = None, seed: int = 0) -> Split:
    """Train on warm books of each reader's genre; test on cold books of that genre."""
    rng = np.random.default_rng(seed)
    start = datetime(2016, 1, 1, tzinfo=UTC)
    train, test = [], []
    for genre in GENRES:
        for number in range(USERS_PER_GENRE):
            user = f"{genre}-reader-{number}"
            read = rng.choice(WARM_PER_GENRE, size=4, replace=False)
            train.extend((user, book_id(genre, int(item))) for item in read)
            cold = WARM_PER_GENRE + int(rng.integers(COLD_PER_GENRE))
            test.append((user, book_id(genre, cold)))
    frame = pl.DataFrame(
        {
            "user_id": [user for user, _ in train],
            "item_id": [item for _, item in train],
            "rating": [4.0] * len(train),
            "is_read": [True] * len(train),
            "date_added": [start + timedelta(hours=hour) for hour in range(len(train))],
            "weight": [2.5] * len(train),
        },
        schema_overrides={"rating": pl.Float32, "weight": pl.Float32},
    )
    test_frame = pl.DataFrame(
        {"user_id": [user for user, _ in test], "item_id": [item for _, item in test]},
        schema={"user_id": pl.Utf8, "item_id": pl.Utf8},
    )
    cold = [
        book_id(genre, number)
        for genre in GENRES
        for number in range(WARM_PER_GENRE, WARM_PER_GENRE + COLD_PER_GENRE)
    ]
    return Split(
        train=frame,
        test=test_frame,
        books=books,
        cold_items=pl.Series("item_id", cold, dtype=pl.Utf8),
        report=SplitReport(),
    )


def two_genre_data(with_books: bool = True) -> TrainData:
    return TrainData.from_split(two_genre_split(two_genre_books() if with_books else None))


def genre_users(data: TrainData, genre: str) -> np.ndarray:
    return np.flatnonzero([user.startswith(genre) for user in data.users.ids])


def genre_items(data: TrainData, genre: str, cold: bool) -> np.ndarray:
    prefix = genre[0]
    return np.flatnonzero(
        [item.startswith(prefix) for item in data.items.ids] & (data.cold == cold)
    )


@pytest.fixture(scope="module")
def data() -> TrainData:
    return two_genre_data()


@pytest.fixture(scope="module")
def model(data: TrainData) -> LightFMRecommender:
    return LightFMRecommender(seed=3, **FAST).fit(data)


def test_cold_books_follow_genre(data, model):
    for genre, other in (("fantasy", "romance"), ("romance", "fantasy")):
        scores = model.score(genre_users(data, genre))
        own = scores[:, genre_items(data, genre, cold=True)].mean(axis=1)
        foreign = scores[:, genre_items(data, other, cold=True)].mean(axis=1)
        assert (own > foreign).all(), genre


def test_cold_rows_have_no_identity(data, model):
    matrix = model._item_feature_matrix(model.featurizer.transform(data.books), data.cold)
    cold = np.flatnonzero(data.cold)
    assert matrix[cold, : data.n_items].nnz == 0
    assert np.allclose(matrix[cold].sum(axis=1), 0.5)


def test_blank_book_keeps_identity(data, model):
    blank = data.items.index([book_id("fantasy", WARM_PER_GENRE - 1)])[0]
    matrix = model._item_feature_matrix(model.featurizer.transform(data.books), data.cold)
    row = matrix[blank].toarray().ravel()
    assert row[blank] == pytest.approx(1.0)
    assert row.sum() == pytest.approx(1.0)


def test_cold_slots_reach_top_k(data):
    slotted = LightFMRecommender(seed=3, cold_slots=2, **FAST).fit(data)
    users = np.arange(data.n_users)
    ids, scores = slotted.recommend(users, 4)
    assert (data.cold[ids].sum(axis=1) >= 2).all()
    assert (np.diff(scores, axis=1) <= 0).all()


def test_no_cold_slots_without_metadata():
    bare = two_genre_data(with_books=False)
    slotted = LightFMRecommender(seed=3, cold_slots=2, **FAST).fit(bare)
    plain = LightFMRecommender(seed=3, cold_slots=0, **FAST).fit(bare)
    users = np.arange(bare.n_users)
    assert slotted.featurizer is None
    np.testing.assert_array_equal(slotted.recommend(users, 4)[0], plain.recommend(users, 4)[0])


def test_fit_is_repeatable(data, model):
    again = LightFMRecommender(seed=3, **FAST).fit(data)
    assert np.array_equal(again.user_embeddings_, model.user_embeddings_)
    assert np.array_equal(again.item_embeddings_, model.item_embeddings_)


def test_other_seed_differs(data, model):
    other = LightFMRecommender(seed=4, **FAST).fit(data)
    assert not np.array_equal(other.item_embeddings_, model.item_embeddings_)


def test_epoch_seconds_recorded(model):
    assert len(model.epoch_seconds_) == FAST["epochs"]
    assert all(seconds > 0 for seconds in model.epoch_seconds_)


def test_reload_recommends_same(data, model, tmp_path):
    users = np.arange(data.n_users)
    before = model.recommend(users, 5)
    loaded = Recommender.load(model.save(tmp_path / "lightfm"))
    after = loaded.recommend(users, 5)
    assert isinstance(loaded, LightFMRecommender)
    assert np.array_equal(before[0], after[0])
    assert np.array_equal(before[1], after[1])
    assert loaded.epoch_seconds_ == model.epoch_seconds_


def test_reload_keeps_cold_slots(data, tmp_path):
    slotted = LightFMRecommender(seed=3, cold_slots=1, **FAST).fit(data)
    users = np.arange(data.n_users)
    loaded = Recommender.load(slotted.save(tmp_path / "slotted"))
    assert np.array_equal(slotted.recommend(users, 3)[0], loaded.recommend(users, 3)[0])


def test_new_books_scored_from_metadata(data, model, tmp_path):
    new = two_genre_books(with_blank=False).filter(pl.col("item_id").is_in(["f09", "r09"]))
    new = new.with_columns(pl.Series("item_id", ["new-f", "new-r"]))
    loaded = Recommender.load(model.save(tmp_path / "lightfm"))
    fantasy = loaded.score_new_items(genre_users(data, "fantasy"), new)
    romance = loaded.score_new_items(genre_users(data, "romance"), new)
    assert fantasy.shape == (USERS_PER_GENRE, 2)
    assert (fantasy[:, 0] > fantasy[:, 1]).all()
    assert (romance[:, 1] > romance[:, 0]).all()


def test_new_book_matches_cold_item(data, model):
    cold_id = book_id("fantasy", WARM_PER_GENRE)
    books = data.books.filter(pl.col("item_id") == cold_id)
    users = np.arange(data.n_users)
    index = data.items.index([cold_id])[0]
    expected = model.score(users)[:, index]
    assert np.allclose(model.score_new_items(users, books)[:, 0], expected, atol=1e-5)


def test_new_book_gets_cold_prior(data):
    prior = LightFMRecommender(seed=3, popularity_weight=1.0, **FAST).fit(data)
    cold_id = book_id("romance", WARM_PER_GENRE + 1)
    books = data.books.filter(pl.col("item_id") == cold_id)
    users = np.arange(data.n_users)
    expected = prior.score(users)[:, data.items.index([cold_id])[0]]
    assert prior.item_prior_[data.cold].tolist() == [0.0] * int(data.cold.sum())
    assert np.allclose(prior.score_new_items(users, books)[:, 0], expected, atol=1e-5)


def test_popularity_prior_ranks_by_readers(data):
    prior = LightFMRecommender(seed=3, popularity_weight=100.0, cold_slots=0, **FAST).fit(data)
    readers = data.user_items.getnnz(axis=0)
    ids, _ = prior.recommend(np.arange(data.n_users), 1)
    for user, top in zip(range(data.n_users), ids[:, 0], strict=True):
        unseen = np.setdiff1d(np.flatnonzero(~data.cold), data.user_items[user].indices)
        assert readers[top] == readers[unseen].max()


def test_reload_keeps_prior(data, tmp_path):
    prior = LightFMRecommender(seed=3, popularity_weight=0.5, **FAST).fit(data)
    loaded = Recommender.load(prior.save(tmp_path / "prior"))
    users = np.arange(data.n_users)
    assert np.array_equal(prior.score(users), loaded.score(users))
    assert np.array_equal(loaded.item_prior_, prior.item_prior_)


def test_similar_items_include_cold(data, model):
    cold = data.items.index([book_id("fantasy", WARM_PER_GENRE)])[0]
    ids, _ = model.similar_items(np.array([cold]), 3)
    neighbours = data.items.external(ids[0])
    assert cold not in ids[0]
    assert all(item.startswith("f") for item in neighbours)


def test_without_books_uses_identity():
    bare = two_genre_data(with_books=False)
    model = LightFMRecommender(seed=3, **FAST).fit(bare)
    assert model.featurizer is None
    assert model.content_embeddings_.shape == (0, FAST["no_components"])
    ids, _ = model.recommend(np.arange(bare.n_users), 3)
    assert (ids >= 0).all()
    with pytest.raises(DataError, match="without book metadata"):
        model.score_new_items(np.array([0]), two_genre_books())


def test_unknown_param_rejected():
    with pytest.raises(ConfigError, match="no_compnents"):
        LightFMRecommender(no_compnents=8)


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"identity_share": 1.5}, "identity_share"),
        ({"popularity_weight": -1.0}, "popularity_weight"),
        ({"cold_slots": -1}, "cold_slots"),
        ({"loss": "hinge"}, "loss"),
    ],
)
def test_invalid_params_rejected(params, name):
    with pytest.raises(ConfigError, match=name):
        LightFMRecommender(**params)


# ---- reserve_slots -------------------------------------------------------------------------
def test_reserve_slots_known_answer():
    scores = np.array([[9.0, 8.0, 7.0, 1.0, 0.5, 0.2]], dtype=np.float32)
    cold = np.array([False, False, False, True, True, False])
    ids, values = reserve_slots(scores, 3, cold, 1)
    assert ids.tolist() == [[0, 1, 3]]
    assert values.tolist() == [[9.0, 8.0, 1.0]]


def test_reserve_slots_counts_cold_in_head():
    scores = np.array([[1.0, 5.0, 4.0, 3.0]], dtype=np.float32)
    cold = np.array([False, True, False, True])
    ids, _ = reserve_slots(scores, 2, cold, 1)
    assert ids.tolist() == [[1, 3]]


def test_reserve_slots_fills_without_cold():
    scores = np.array([[3.0, 2.0, 1.0, -np.inf]], dtype=np.float32)
    cold = np.array([False, False, False, True])
    ids, values = reserve_slots(scores, 3, cold, 2)
    assert ids.tolist() == [[0, 1, 2]]
    assert np.isfinite(values).all()


def test_reserve_slots_pads_masked():
    scores = np.array([[2.0, -np.inf, -np.inf]], dtype=np.float32)
    ids, values = reserve_slots(scores, 3, np.array([False, True, True]), 1)
    assert ids.tolist() == [[0, -1, -1]]
    assert values[0, 0] == 2.0


# ---- comparisons on real-shaped data (slow) ------------------------------------------------
def compare(data: TrainData, test: pl.DataFrame, models: dict[str, Recommender]) -> dict:
    return {name: evaluate(m.fit(data), data, test, EvalConfig()) for name, m in models.items()}


@pytest.mark.slow
def test_movielens_hybrid_beats_baselines(movielens_dir, tmp_path):
    from tests.helpers.movielens import MOVIELENS_PROTOCOL, movielens_split

    split = movielens_split(movielens_dir, tmp_path, MOVIELENS_PROTOCOL)
    validation = validation_split(split, MOVIELENS_PROTOCOL)
    validation_data = TrainData.from_split(validation)
    rows = []
    for params in ({"popularity_weight": 0.0}, {"popularity_weight": 1.0}):
        fitted = build_model("lightfm", 42, params).fit(validation_data)
        metrics = evaluate(fitted, validation_data, validation.test, EvalConfig())
        rows.append({"params": params, **metrics})
    best, _ = select_best(rows)

    data = TrainData.from_split(split)
    results = compare(
        data,
        split.test,
        {
            "random": build_model("random", 42),
            "popular": build_model("popular", 42),
            "lightfm": build_model("lightfm", 42, best),
        },
    )
    hybrid, random, popular = results["lightfm"], results["random"], results["popular"]
    assert hybrid["cold_ndcg@10"] > 3 * random["cold_ndcg@10"]
    assert hybrid["cold_recall@10"] > 3 * random["cold_recall@10"]
    assert hybrid["ndcg@10"] >= popular["ndcg@10"]


@pytest.mark.slow
def test_demo_hybrid_beats_baselines(tmp_path):
    from bookrecs.config import TrainConfig
    from bookrecs.data.load import load_dataset
    from bookrecs.data.prepare import prepare
    from bookrecs.split import make_split

    config = TrainConfig(show_progress=False)
    dataset = load_dataset(config, cache_dir=tmp_path)
    split = make_split(prepare(dataset, config.protocol, show_progress=False), config.protocol)
    data = TrainData.from_split(split)
    results = compare(
        data,
        split.test,
        {name: build_model(name, config.seed) for name in ("random", "popular", "lightfm")},
    )
    hybrid, random, popular = results["lightfm"], results["random"], results["popular"]
    assert hybrid["cold_ndcg@10"] > 3 * random["cold_ndcg@10"]
    assert hybrid["cold_recall@10"] > 3 * random["cold_recall@10"]
    assert hybrid["ndcg@10"] >= popular["ndcg@10"]
