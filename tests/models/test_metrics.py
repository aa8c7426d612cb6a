"""Known-answer tests of the ranking metrics and of `evaluate`, on hand-computed examples."""

from __future__ import annotations

import math

import numpy as np
import polars as pl
import pytest
import scipy.sparse as sp

from bookrecs import metrics
from bookrecs.config import EvalConfig
from bookrecs.evaluate import (
    build_relevance,
    evaluate,
    evaluate_model,
    metric_names,
    metrics_table,
)
from bookrecs.exceptions import DataError
from bookrecs.interactions import TrainData
from bookrecs.models import build_model
from tests.models.test_contract import tiny_split

LOG2_3 = math.log2(3)

# Three users, five items, k = 3.
RECS = np.array([[0, 1, 2], [3, -1, -1], [2, 0, 1]])
RELEVANT_ROWS = [[1, 3], [3], [0, 1, 2, 3, 4]]


def csr(rows: list[list[int]], n_items: int = 5) -> sp.csr_matrix:
    dense = np.zeros((len(rows), n_items), dtype=np.float32)
    for user, items in enumerate(rows):
        dense[user, items] = 1.0
    return sp.csr_matrix(dense)


RELEVANT = csr(RELEVANT_ROWS)


def test_hit_matrix_known() -> None:
    expected = [[False, True, False], [True, False, False], [True, True, True]]
    np.testing.assert_array_equal(metrics.hit_matrix(RECS, RELEVANT), expected)


def test_hit_matrix_repeated_item_counts_once() -> None:
    hits = metrics.hit_matrix(np.array([[1, 1, 3]]), csr([[1, 3]]))
    np.testing.assert_array_equal(hits, [[True, False, True]])


def test_hit_matrix_padding_never_hits() -> None:
    # -1 in row 1 must not match item 4 of row 0, the key just before row 1.
    hits = metrics.hit_matrix(np.array([[0, 1], [-1, -1]]), csr([[4], [0]]))
    assert not hits.any()


def test_ndcg_per_user_known() -> None:
    first = (1 / LOG2_3) / (1 + 1 / LOG2_3)
    np.testing.assert_allclose(metrics.ndcg_per_user(RECS, RELEVANT), [first, 1.0, 1.0])


def test_ndcg_mean_known() -> None:
    first = (1 / LOG2_3) / (1 + 1 / LOG2_3)
    assert metrics.ndcg_at_k(RECS, RELEVANT) == pytest.approx((first + 2.0) / 3)


def test_ndcg_at_1() -> None:
    assert metrics.ndcg_at_k(RECS, RELEVANT, k=1) == pytest.approx(2 / 3)


def test_ndcg_ideal_uses_k_not_width() -> None:
    # One hit at rank 1 of a 1-wide list, two relevant items, k = 2:
    # IDCG@2 = 1 + 1/log2(3) although the list has one slot.
    value = metrics.ndcg_at_k(np.array([[0]]), csr([[0, 1]]), k=2)
    assert value == pytest.approx(1 / (1 + 1 / LOG2_3))


def test_recall_per_user_known() -> None:
    np.testing.assert_allclose(metrics.recall_per_user(RECS, RELEVANT), [0.5, 1.0, 0.6])


def test_recall_denominator_not_capped() -> None:
    assert metrics.recall_at_k(RECS, RELEVANT) == pytest.approx((0.5 + 1.0 + 0.6) / 3)
    assert metrics.recall_at_k(RECS, RELEVANT, k=1) == pytest.approx((0 + 1 + 0.2) / 3)


def test_users_without_relevant_are_nan() -> None:
    relevant = csr([[1, 3], [], []])
    per_user = metrics.ndcg_per_user(RECS, relevant)
    assert not np.isnan(per_user[0])
    assert np.isnan(per_user[1:]).all()
    assert metrics.recall_at_k(RECS, relevant) == pytest.approx(0.5)


def test_no_relevant_at_all_is_nan() -> None:
    empty = csr([[], [], []])
    assert math.isnan(metrics.ndcg_at_k(RECS, empty))
    assert math.isnan(metrics.recall_at_k(RECS, empty))


def test_explicit_zeros_are_not_relevant() -> None:
    relevant = sp.csr_matrix(
        (np.array([1.0, 0.0]), np.array([1, 0]), np.array([0, 2, 2, 2])), shape=(3, 5)
    )
    np.testing.assert_array_equal(metrics.relevant_counts(relevant), [1, 0, 0])


def test_coverage_known() -> None:
    assert metrics.coverage_at_k(RECS, 5) == pytest.approx(0.8)
    assert metrics.coverage_at_k(RECS, 5, k=1) == pytest.approx(0.6)


def test_head_items_known() -> None:
    head = metrics.head_items(np.array([10, 5, 3, 1, 1]), 0.8)
    np.testing.assert_array_equal(head, [True, True, True, False, False])


def test_head_items_ties_by_index() -> None:
    head = metrics.head_items(np.array([5, 5, 0]), 0.5)
    np.testing.assert_array_equal(head, [True, False, False])


def test_head_items_zero_popularity_excluded() -> None:
    head = metrics.head_items(np.array([0, 0, 4]), 0.99)
    np.testing.assert_array_equal(head, [False, False, True])


def test_long_tail_share_known() -> None:
    share = metrics.long_tail_share(RECS, np.array([10, 5, 3, 1, 1]), 0.8)
    assert share == pytest.approx(1 / 7)


def test_long_tail_share_empty_is_nan() -> None:
    assert math.isnan(metrics.long_tail_share(np.full((2, 3), -1), np.ones(5)))


def test_restrict_columns_known() -> None:
    cold = np.array([False, False, False, True, True])
    restricted = metrics.restrict_columns(RELEVANT, cold)
    np.testing.assert_array_equal(restricted.toarray(), csr([[3], [3], [3, 4]]).toarray())


@pytest.mark.parametrize(
    ("recs", "relevant", "k", "message"),
    [
        (RECS, csr([[1], [2]]), None, "rows"),
        (np.array([[5, 0, 1]]), csr([[1]]), None, "columns"),
        (np.array([[-2, 0, 1]]), csr([[1]]), None, "-1 only"),
        (RECS, RELEVANT, 0, "k=0"),
        (RECS[0], RELEVANT, None, "2-D"),
        (RECS.astype(float), RELEVANT, None, "integer"),
    ],
)
def test_invalid_inputs_raise(recs, relevant, k, message) -> None:
    with pytest.raises(ValueError, match=message):
        metrics.ndcg_at_k(recs, relevant, k)


def test_vectorised_matches_loop() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items, k = 200, 40, 10
    relevant = sp.random(n_users, n_items, density=0.1, random_state=4, format="csr")
    recs = np.argsort(rng.random((n_users, n_items)), axis=1)[:, :k]
    recs[rng.random((n_users, k)) < 0.1] = -1

    expected_ndcg, expected_recall = [], []
    for user in range(n_users):
        truth = set(relevant[user].indices.tolist())
        if not truth:
            continue
        gains = [1.0 / math.log2(rank + 2) for rank, item in enumerate(recs[user]) if item in truth]
        ideal = sum(1.0 / math.log2(rank + 2) for rank in range(min(len(truth), k)))
        expected_ndcg.append(sum(gains) / ideal)
        expected_recall.append(len(gains) / len(truth))

    assert metrics.ndcg_at_k(recs, relevant, k) == pytest.approx(np.mean(expected_ndcg))
    assert metrics.recall_at_k(recs, relevant, k) == pytest.approx(np.mean(expected_recall))


# ---- evaluate ---------------------------------------------------------------------------------
# Items b0-b2 have train interactions 3, 2, 1; b3 and b4 are only in test and b5 only in the
# catalogue, so these three are cold. Popular recommends with k = 2:
#   u0 (has b0):         [b1, b2]   relevant {b2 warm, b3 cold}: hit at rank 2
#   u1 (has b0, b1):     [b2, b3]   relevant {b3 cold}: hit at rank 2; b1 is already in train
#   u2 (has b0, b1, b2): [b3, b4]   relevant {b4 cold}: hit at rank 2
def evaluation_data() -> tuple[TrainData, pl.DataFrame]:
    train = [("u0", "b0"), ("u1", "b0"), ("u1", "b1"), ("u2", "b0"), ("u2", "b1"), ("u2", "b2")]
    test = [("u0", "b2"), ("u0", "b3"), ("u1", "b3"), ("u1", "b1"), ("u2", "b4"), ("ux", "b0")]
    books = pl.DataFrame({"item_id": [f"b{index}" for index in range(6)]})
    split = tiny_split(train, test, books=books, cold_items=["b3", "b4", "b5"])
    data = TrainData.from_split(split)
    return data, split.test


EVAL_CONFIG = EvalConfig(k=2, long_tail_head_share=0.8, batch_size=2)


def test_item_order_of_evaluation_data() -> None:
    data, _ = evaluation_data()
    assert data.items.ids.tolist() == ["b0", "b1", "b2", "b3", "b4", "b5"]
    assert data.cold.tolist() == [False, False, False, True, True, True]


def test_build_relevance_counts_skipped() -> None:
    data, test = evaluation_data()
    relevance = build_relevance(data, test)
    assert relevance.skipped_unknown == 1
    assert relevance.skipped_seen == 1
    np.testing.assert_array_equal(relevance.users, [0, 1, 2])
    expected = [[0, 0, 1, 1, 0, 0], [0, 0, 0, 1, 0, 0], [0, 0, 0, 0, 1, 0]]
    np.testing.assert_array_equal(relevance.relevant.toarray(), expected)


def test_build_relevance_missing_column() -> None:
    data, test = evaluation_data()
    with pytest.raises(DataError, match="item_id"):
        build_relevance(data, test.drop("item_id"))


def test_evaluate_popular_known() -> None:
    data, test = evaluation_data()
    model = build_model("popular", seed=1).fit(data)
    result = evaluate(model, data, test, EVAL_CONFIG)

    rank2 = 1 / LOG2_3
    assert list(result) == [*metric_names(2), "n_users", "n_cold_users"]
    assert result["ndcg@2"] == pytest.approx((rank2 / (1 + rank2) + rank2 + rank2) / 3)
    assert result["recall@2"] == pytest.approx((0.5 + 1.0 + 1.0) / 3)
    assert result["coverage@2"] == pytest.approx(4 / 6)
    assert result["cold_ndcg@2"] == pytest.approx((0.0 + rank2 + rank2) / 3)
    assert result["cold_recall@2"] == pytest.approx(2 / 3)
    assert result["warm_ndcg@2"] == pytest.approx(rank2)
    assert result["warm_recall@2"] == pytest.approx(1.0)
    assert result["long_tail_share@2"] == pytest.approx(5 / 6)
    assert result["n_users"] == 3
    assert result["n_cold_users"] == 3


def test_evaluate_model_returns_recs() -> None:
    data, test = evaluation_data()
    model = build_model("popular", seed=1).fit(data)
    evaluation = evaluate_model(model, data, test, EVAL_CONFIG)
    np.testing.assert_array_equal(evaluation.users, [0, 1, 2])
    np.testing.assert_array_equal(evaluation.recs, [[1, 2], [2, 3], [3, 4]])
    assert evaluation.scores.shape == (3, 2)


def test_evaluate_without_warm_users_is_nan() -> None:
    data, _ = evaluation_data()
    test = pl.DataFrame({"user_id": ["u0"], "item_id": ["b3"]})
    model = build_model("popular", seed=1).fit(data)
    result = evaluate(model, data, test, EVAL_CONFIG)
    assert math.isnan(result["warm_ndcg@2"])
    assert math.isnan(result["warm_recall@2"])
    assert result["n_users"] == 1


def test_evaluate_without_test_users() -> None:
    data, _ = evaluation_data()
    test = pl.DataFrame({"user_id": ["u1"], "item_id": ["b1"]})
    model = build_model("popular", seed=1).fit(data)
    result = evaluate(model, data, test, EVAL_CONFIG)
    assert result["n_users"] == 0
    assert math.isnan(result["ndcg@2"])
    assert math.isnan(result["long_tail_share@2"])


def test_metrics_table_column_order() -> None:
    names = metric_names(10)
    row = {name: 0.1 for name in reversed(names)}
    rows = [
        {"fit_seconds": 1.0, **row, "n_cold_users": 2, "n_users": 5, "model": "popular"},
        {"model": "als", **row, "n_users": 5, "n_cold_users": 2, "fit_seconds": 3.0},
    ]
    table = metrics_table(rows)
    assert list(table.columns) == ["model", *names, "n_users", "n_cold_users", "fit_seconds"]
    assert table["model"].tolist() == ["popular", "als"]


def test_metrics_table_requires_model() -> None:
    with pytest.raises(ValueError, match="model"):
        metrics_table([{"ndcg@10": 0.1}])
