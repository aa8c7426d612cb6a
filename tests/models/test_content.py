"""Content baseline: cosine between reading profiles and book content vectors."""

from __future__ import annotations

import numpy as np
import pytest

from bookrecs.exceptions import ConfigError, DataError
from bookrecs.interactions import TrainData
from bookrecs.models import Recommender
from bookrecs.models.content import ContentRecommender
from tests.models.test_hybrid import GENRES, genre_items, genre_users, two_genre_data


@pytest.fixture(scope="module")
def data() -> TrainData:
    return two_genre_data()


@pytest.fixture(scope="module")
def model(data: TrainData) -> ContentRecommender:
    return ContentRecommender(seed=1, chunk_size=7).fit(data)


def test_scores_are_cosines(data, model):
    users = np.arange(data.n_users)
    scores = model.score(users)
    assert scores.shape == (data.n_users, data.n_items)
    assert scores.max() <= 1.0 + 1e-5
    assert scores.min() >= -1e-6


def test_score_matches_formula(data, model):
    user = 0
    content = model.item_vectors_.toarray()
    weights = data.user_items[user].toarray().ravel()
    profile = weights @ content
    profile /= np.linalg.norm(profile)
    assert np.allclose(model.score(np.array([user]))[0], content @ profile, atol=1e-5)


def test_own_genre_cold_books_first(data, model):
    for genre in GENRES:
        ids, _ = model.recommend(genre_users(data, genre), 2, user_items=data.user_items)
        prefix = genre[0]
        assert all(data.items.ids[item].startswith(prefix) for item in ids.ravel())
    for genre, other in (("fantasy", "romance"), ("romance", "fantasy")):
        scores = model.score(genre_users(data, genre))
        own = scores[:, genre_items(data, genre, cold=True)].min(axis=1)
        foreign = scores[:, genre_items(data, other, cold=True)].max(axis=1)
        assert (own > foreign).all()


def test_chunking_does_not_change_scores(data, model):
    whole = ContentRecommender(seed=1, chunk_size=1000).fit(data)
    users = np.arange(data.n_users)
    assert np.allclose(whole.score(users), model.score(users))


def test_similar_items_same_genre(data, model):
    cold = data.items.index(["f08"])[0]
    ids, _ = model.similar_items(np.array([cold]), 3)
    assert cold not in ids[0]
    assert all(item.startswith("f") for item in data.items.external(ids[0]))


def test_reload_recommends_same(data, model, tmp_path):
    users = np.arange(data.n_users)
    loaded = Recommender.load(model.save(tmp_path / "content"))
    before = model.recommend(users, 5)
    after = loaded.recommend(users, 5)
    assert isinstance(loaded, ContentRecommender)
    assert np.array_equal(before[0], after[0])
    assert np.allclose(before[1], after[1])


def test_no_books_raises():
    with pytest.raises(DataError, match="needs book metadata"):
        ContentRecommender().fit(two_genre_data(with_books=False))


def test_unknown_param_rejected():
    with pytest.raises(ConfigError, match="chunk"):
        ContentRecommender(chunk=3)
