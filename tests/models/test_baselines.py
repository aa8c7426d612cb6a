"""Known-answer tests of the random, popular, item-kNN and ALS recommenders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bookrecs.exceptions import ConfigError, DataError
from bookrecs.interactions import TrainData
from bookrecs.models import Recommender, build_model
from bookrecs.models.als import ALSRecommender
from bookrecs.models.itemknn import ItemKNNRecommender
from bookrecs.models.popular import PopularRecommender
from bookrecs.models.random import RandomRecommender
from tests.models.test_contract import tiny_split

# ---- data --------------------------------------------------------------------------------------


def popularity_data() -> TrainData:
    """Items i0-i4 read by 4, 3, 3, 1, 0 users; i4 is cold. i2 has the largest summed weight."""
    pairs = [
        ("u0", "i0"),
        ("u1", "i0"),
        ("u2", "i0"),
        ("u3", "i0"),
        ("u0", "i1"),
        ("u1", "i1"),
        ("u2", "i1"),
        ("u1", "i2"),
        ("u2", "i2"),
        ("u3", "i2"),
        ("u3", "i3"),
    ]
    weights = [1.0] * 7 + [3.0, 3.0, 3.0, 1.0]
    split = tiny_split(pairs, [("u0", "i4")], cold_items=["i4"], weights=weights)
    return TrainData.from_split(split)


def checkerboard_data(n_blocks: int = 2, users: int = 8, items: int = 6) -> TrainData:
    """Users of block b read only items of block b: each user reads all but two block items."""
    pairs = []
    for block in range(n_blocks):
        for user in range(users):
            for item in range(items):
                if item not in (user % items, (user + 1) % items):
                    pairs.append((f"u{block}{user}", f"i{block}{item}"))
    return TrainData.from_split(tiny_split(pairs, []))


def block_of(ids: np.ndarray, data: TrainData) -> np.ndarray:
    """Return the block number of item indices (taken from the 'i<block><item>' ids)."""
    externals = data.items.external(ids).ravel()
    return np.array([int(external[1]) for external in externals]).reshape(np.shape(ids))


def user_blocks(data: TrainData) -> np.ndarray:
    return np.array([int(external[1]) for external in data.users.ids])


# ---- random ------------------------------------------------------------------------------------


def test_random_scores_in_unit_interval() -> None:
    data = checkerboard_data()
    scores = RandomRecommender(seed=3).fit(data).score(np.arange(data.n_users))
    assert scores.dtype == np.float32
    assert scores.min() >= 0.0
    assert scores.max() < 1.0


def test_random_independent_of_batch() -> None:
    data = checkerboard_data()
    model = RandomRecommender(seed=3).fit(data)
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(model.score(users[::-1]), model.score(users)[::-1])


def test_random_depends_on_seed() -> None:
    data = checkerboard_data()
    users = np.arange(data.n_users)
    first = RandomRecommender(seed=3).fit(data).score(users)
    second = RandomRecommender(seed=4).fit(data).score(users)
    assert not np.array_equal(first, second)


def test_random_lists_differ_between_users() -> None:
    data = checkerboard_data(users=20, items=12)
    ids, _ = RandomRecommender(seed=3).fit(data).recommend(np.arange(data.n_users), 3)
    assert len({tuple(row) for row in ids.tolist()}) > data.n_users // 2


def test_random_top_item_roughly_uniform() -> None:
    data = checkerboard_data(n_blocks=1, users=6, items=10)
    model = RandomRecommender(seed=5).fit(data)
    top = model.score(np.arange(5000)).argmax(axis=1)
    counts = np.bincount(top, minlength=data.n_items)
    # Expected 500 per item; 5 standard deviations is about +-106.
    assert counts.min() > 390
    assert counts.max() < 610


def test_random_rejects_params() -> None:
    with pytest.raises(ConfigError, match="factors"):
        build_model("random", 1, {"factors": 3})


# ---- popular -----------------------------------------------------------------------------------


def test_popular_popularity_users() -> None:
    model = PopularRecommender(seed=1).fit(popularity_data())
    np.testing.assert_array_equal(model.popularity_, [4, 3, 3, 1, 0])


def test_popular_popularity_weight() -> None:
    model = PopularRecommender(seed=1, measure="weight").fit(popularity_data())
    np.testing.assert_array_equal(model.popularity_, [4, 3, 9, 1, 0])


def test_popular_most_popular_unseen() -> None:
    data = popularity_data()
    model = PopularRecommender(seed=1).fit(data)
    users = data.users.index(["u0", "u3"])
    ids, scores = model.recommend(users, 3)
    # u0 has i0, i1: i2 (3) then i3 (1) then cold i4 (0); u3 has i0, i2, i3: i1 then i4.
    assert data.items.external(ids[0]).tolist() == ["i2", "i3", "i4"]
    assert data.items.external(ids[1]).tolist() == ["i1", "i4", None]
    np.testing.assert_array_equal(scores[0], [3, 1, 0])


def test_popular_ties_by_lower_index() -> None:
    data = popularity_data()
    ids, _ = (
        PopularRecommender(seed=1)
        .fit(data)
        .recommend(data.users.index(["u3"]), 2, filter_seen=False)
    )
    # i1 and i2 both have 3 users: i1 (the lower index) comes first.
    assert data.items.external(ids[0]).tolist() == ["i0", "i1"]


def test_popular_weight_changes_order() -> None:
    data = popularity_data()
    model = PopularRecommender(seed=1, measure="weight").fit(data)
    ids, _ = model.recommend(data.users.index(["u0"]), 1, filter_seen=False)
    assert data.items.external(ids[0]).tolist() == ["i2"]


def test_popular_rejects_bad_measure() -> None:
    with pytest.raises(ConfigError, match="clicks"):
        PopularRecommender(seed=1, measure="clicks")


# ---- item-kNN ----------------------------------------------------------------------------------


@pytest.mark.parametrize("similarity", ["cosine", "bm25", "tfidf"])
def test_itemknn_stays_in_block(similarity: str) -> None:
    data = checkerboard_data()
    model = ItemKNNRecommender(seed=1, similarity=similarity, K=20).fit(data)
    users = np.arange(data.n_users)
    ids, scores = model.recommend(users, 2)
    assert (ids >= 0).all()
    assert (scores > 0).all()
    np.testing.assert_array_equal(
        block_of(ids, data), np.repeat(user_blocks(data), 2).reshape(-1, 2)
    )


def test_itemknn_similar_items_in_block() -> None:
    data = checkerboard_data()
    model = ItemKNNRecommender(seed=1, K=20).fit(data)
    items = np.arange(data.n_items)
    ids, _ = model.similar_items(items, 5)
    assert (ids >= 0).all()
    assert (ids != items[:, None]).all()
    np.testing.assert_array_equal(
        block_of(ids, data), block_of(items, data)[:, None].repeat(5, axis=1)
    )


def test_itemknn_k_limits_neighbours() -> None:
    data = checkerboard_data()
    model = ItemKNNRecommender(seed=1, K=3).fit(data)
    assert (np.diff(model.similarity_.indptr) <= 3).all()
    ids, _ = model.similar_items(np.arange(data.n_items), 5)
    # K=3 keeps the item itself and two neighbours, so slots 3-5 are padding.
    assert (ids[:, 2:] == -1).all()
    assert (ids[:, :2] >= 0).all()


def test_itemknn_cold_item_scores_zero() -> None:
    data = popularity_data()
    model = ItemKNNRecommender(seed=1).fit(data)
    cold = data.items.index(["i4"])[0]
    assert (model.score(np.arange(data.n_users))[:, cold] == 0).all()
    ids, _ = model.similar_items(np.array([cold]), 3)
    assert (ids == -1).all()


def test_itemknn_loaded_keeps_history(tmp_path: Path) -> None:
    data = checkerboard_data()
    model = ItemKNNRecommender(seed=1).fit(data)
    loaded = Recommender.load(model.save(tmp_path / "knn"))
    users = np.arange(data.n_users)
    np.testing.assert_array_equal(loaded.recommend(users, 3)[0], model.recommend(users, 3)[0])


@pytest.mark.parametrize(
    "params",
    [{"similarity": "jaccard"}, {"K": 0}, {"bm25_b": 2.0}, {"neighbours": 5}],
)
def test_itemknn_rejects_bad_params(params: dict) -> None:
    with pytest.raises(ConfigError):
        build_model("itemknn", 1, params)


# ---- ALS ---------------------------------------------------------------------------------------


def test_als_stays_in_block() -> None:
    # Two factors match the two blocks. With more factors than users per block, ALS can fit
    # each user's unread items as zeros, so other blocks' near-zero scores can rank higher.
    data = checkerboard_data()
    model = ALSRecommender(seed=1, factors=2, iterations=15).fit(data)
    ids, _ = model.recommend(np.arange(data.n_users), 2)
    np.testing.assert_array_equal(
        block_of(ids, data), np.repeat(user_blocks(data), 2).reshape(-1, 2)
    )


def test_als_similar_items_in_block() -> None:
    data = checkerboard_data()
    model = ALSRecommender(seed=1, factors=2, iterations=15).fit(data)
    items = np.arange(data.n_items)
    ids, scores = model.similar_items(items, 3)
    assert (ids != items[:, None]).all()
    assert (scores <= 1.0 + 1e-5).all()
    np.testing.assert_array_equal(
        block_of(ids, data), block_of(items, data)[:, None].repeat(3, axis=1)
    )


def test_als_factor_shapes() -> None:
    data = checkerboard_data()
    model = ALSRecommender(seed=1, factors=4, iterations=2).fit(data)
    assert model.user_factors_.shape == (data.n_users, 4)
    assert model.item_factors_.shape == (data.n_items, 4)
    assert model.item_factors_.dtype == np.float32
    assert len(model.epoch_seconds_) == 2


def test_als_cold_item_zero() -> None:
    data = popularity_data()
    model = ALSRecommender(seed=1, factors=4, iterations=3).fit(data)
    cold = data.items.index(["i4"])[0]
    assert not model.item_factors_[cold].any()
    assert (model.score(np.arange(data.n_users))[:, cold] == 0).all()
    ids, _ = model.similar_items(np.array([cold]), 2)
    assert (ids == -1).all()
    warm_ids, _ = model.similar_items(np.array([0]), 4)
    assert cold not in warm_ids


def test_als_seed_changes_factors() -> None:
    data = checkerboard_data()
    first = ALSRecommender(seed=1, factors=4, iterations=2).fit(data)
    second = ALSRecommender(seed=2, factors=4, iterations=2).fit(data)
    assert not np.array_equal(first.item_factors_, second.item_factors_)


def test_als_empty_matrix_raises() -> None:
    data = checkerboard_data()
    data.user_items.data[:] = 0
    data.user_items.eliminate_zeros()
    with pytest.raises(DataError, match="empty"):
        ALSRecommender(seed=1).fit(data)


@pytest.mark.parametrize(
    "params",
    [{"factors": 0}, {"alpha": 0.0}, {"iterations": 0}, {"regularization": -1.0}, {"lr": 0.1}],
)
def test_als_rejects_bad_params(params: dict) -> None:
    with pytest.raises(ConfigError):
        build_model("als", 1, params)


# ---- real sample data --------------------------------------------------------------------------


def test_baselines_on_goodreads_sample(goodreads_head_dir: Path, tmp_path: Path) -> None:
    from bookrecs.config import EvalConfig, ProtocolConfig
    from bookrecs.data.goodreads import read_goodreads
    from bookrecs.data.prepare import prepare
    from bookrecs.evaluate import evaluate_model, metric_names
    from bookrecs.split import make_split

    protocol = ProtocolConfig()
    dataset = read_goodreads(goodreads_head_dir, show_progress=False)
    split = make_split(prepare(dataset, protocol, show_progress=False), protocol)
    data = TrainData.from_split(split)
    config = EvalConfig()

    results = {}
    for name in ("random", "popular", "itemknn", "als"):
        model = build_model(name, 42).fit(data)
        evaluation = evaluate_model(model, data, split.test, config)
        results[name] = evaluation.metrics

        assert list(evaluation.metrics) == [*metric_names(10), "n_users", "n_cold_users"]
        assert evaluation.metrics["n_users"] == len(evaluation.users) > 0
        for key in metric_names(10):
            value = evaluation.metrics[key]
            assert np.isnan(value) or 0.0 <= value <= 1.0, f"{name} {key}={value}"

        loaded = Recommender.load(model.save(tmp_path / name))
        reloaded, _ = loaded.recommend(evaluation.users, 10, user_items=data.user_items)
        np.testing.assert_array_equal(reloaded, evaluation.recs)

    assert results["popular"]["ndcg@10"] > results["random"]["ndcg@10"]
