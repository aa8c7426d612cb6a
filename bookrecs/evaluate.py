"""Offline evaluation of a fitted recommender on the test split, and the metrics table.

Protocol: every user with at least one relevant test item gets one top-k list, computed in
batches with the user's train items excluded. A test pair is relevant unless the user already
has the item in train: those pairs can never be recommended, so they are counted, logged and
left out. Cold and warm slices restrict relevance to the user's cold (resp. warm) test items
and average over users with at least one such item.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl
import scipy.sparse as sp

from bookrecs import metrics
from bookrecs.columns import ITEM_ID, USER_ID
from bookrecs.config import EvalConfig
from bookrecs.exceptions import DataError
from bookrecs.interactions import TrainData
from bookrecs.models.base import Recommender

logger = logging.getLogger("bookrecs.evaluate")

METRICS: tuple[str, ...] = (
    "ndcg",
    "recall",
    "coverage",
    "cold_ndcg",
    "cold_recall",
    "warm_ndcg",
    "warm_recall",
    "long_tail_share",
)
COUNTS: tuple[str, ...] = ("n_users", "n_cold_users")


def metric_names(k: int) -> list[str]:
    """Return the metric keys of `evaluate` for cut-off `k`, in table order."""
    return [f"{name}@{k}" for name in METRICS]


@dataclass
class Relevance:
    """Relevant test items of the evaluated users, in internal indices.

    users
        Internal indices of the evaluated users (ascending).
    relevant
        Binary CSR (len(users) x n_items); row i contains the relevant items of ``users[i]``.
    skipped_unknown
        Test pairs whose user or item is not in the index maps.
    skipped_seen
        Test pairs the user already has in train.
    """

    users: np.ndarray
    relevant: sp.csr_matrix
    skipped_unknown: int
    skipped_seen: int


@dataclass
class Evaluation:
    """Metrics of one model with the recommendations they were computed from.

    recs and scores are (len(users), k) arrays aligned with `users`; see `Recommender.recommend`.
    """

    metrics: dict[str, float]
    users: np.ndarray
    recs: np.ndarray
    scores: np.ndarray


def build_relevance(data: TrainData, test: pl.DataFrame) -> Relevance:
    """Index the test pairs and drop those that cannot count (unknown ids, already in train)."""
    missing = [column for column in (USER_ID, ITEM_ID) if column not in test.columns]
    if missing:
        raise DataError(
            f"test table lacks columns {missing} (has {test.columns}): pass the split's test table"
        )
    rows = data.users.index(test[USER_ID])
    cols = data.items.index(test[ITEM_ID])
    known = (rows >= 0) & (cols >= 0)
    skipped_unknown = int((~known).sum())

    pairs = sp.csr_matrix(
        (np.ones(int(known.sum()), dtype=np.float32), (rows[known], cols[known])),
        shape=(data.n_users, data.n_items),
    )
    pairs.sum_duplicates()
    pairs.data[:] = 1.0
    n_pairs = pairs.nnz

    seen = data.user_items.astype(bool).astype(np.float32)
    pairs = (pairs - pairs.multiply(seen)).tocsr()
    pairs.eliminate_zeros()
    pairs.sort_indices()
    skipped_seen = n_pairs - pairs.nnz

    if skipped_unknown or skipped_seen:
        logger.warning(
            "left out %d test pairs with ids unknown to the index and %d pairs already in train",
            skipped_unknown,
            skipped_seen,
        )
    users = np.flatnonzero(np.diff(pairs.indptr) > 0)
    return Relevance(users, pairs[users], skipped_unknown, skipped_seen)


def score_recommendations(
    recs: np.ndarray, relevant: sp.csr_matrix, data: TrainData, config: EvalConfig
) -> dict[str, float]:
    """Compute every metric of `evaluate` from given recommendations.

    Parameters
    ----------
    recs
        (n_users, >= config.k) item indices aligned with the rows of `relevant`.
    relevant
        Binary CSR (n_users x n_items) of relevant test items.
    data
        Training data: its cold mask defines the slices and its matrix the popularity.
    config
        Cut-off `k` and the long-tail head share.
    """
    k = config.k
    cold = np.asarray(data.cold, dtype=bool)
    cold_relevant = metrics.restrict_columns(relevant, cold)
    warm_relevant = metrics.restrict_columns(relevant, ~cold)
    interactions = np.diff(data.user_items.tocsc().indptr)

    values = {
        "ndcg": metrics.ndcg_at_k(recs, relevant, k),
        "recall": metrics.recall_at_k(recs, relevant, k),
        "coverage": metrics.coverage_at_k(recs, data.n_items, k),
        "cold_ndcg": metrics.ndcg_at_k(recs, cold_relevant, k),
        "cold_recall": metrics.recall_at_k(recs, cold_relevant, k),
        "warm_ndcg": metrics.ndcg_at_k(recs, warm_relevant, k),
        "warm_recall": metrics.recall_at_k(recs, warm_relevant, k),
        "long_tail_share": metrics.long_tail_share(
            recs, interactions, config.long_tail_head_share, k
        ),
    }
    result: dict[str, float] = {f"{name}@{k}": float(values[name]) for name in METRICS}
    result["n_users"] = int((metrics.relevant_counts(relevant) > 0).sum())
    result["n_cold_users"] = int((metrics.relevant_counts(cold_relevant) > 0).sum())
    return result


def evaluate_model(
    model: Recommender, data: TrainData, test: pl.DataFrame, config: EvalConfig
) -> Evaluation:
    """Recommend for every evaluated test user and score the lists; see `evaluate`."""
    relevance = build_relevance(data, test)
    if len(relevance.users) == 0:
        logger.warning("no test user has a relevant item: every metric of %s is NaN", model.name)

    recs, scores = model.recommend(
        relevance.users,
        config.k,
        user_items=data.user_items,
        filter_seen=True,
        batch_size=config.batch_size,
    )
    values = score_recommendations(recs, relevance.relevant, data, config)
    logger.info(
        "%s on %d users (%d with a cold test item): ndcg@%d=%.4f",
        model.name,
        values["n_users"],
        values["n_cold_users"],
        config.k,
        values[f"ndcg@{config.k}"],
    )
    return Evaluation(metrics=values, users=relevance.users, recs=recs, scores=scores)


def evaluate(
    model: Recommender, data: TrainData, test: pl.DataFrame, config: EvalConfig
) -> dict[str, float]:
    """Evaluate a fitted model on the test pairs.

    Returns
    -------
    dict
        ``ndcg@k``, ``recall@k``, ``coverage@k``, ``cold_ndcg@k``, ``cold_recall@k``,
        ``warm_ndcg@k``, ``warm_recall@k`` and ``long_tail_share@k`` as floats, with
        ``k = config.k``. A slice without users is NaN. Then the ints ``n_users`` (evaluated
        users) and ``n_cold_users`` (evaluated users with a relevant cold item). Use
        `evaluate_model` to also get the recommendations.
    """
    return evaluate_model(model, data, test, config).metrics


def metrics_table(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Build one table from per-model rows: `model`, the metrics in `METRICS` order, the user
    counts, then any other columns in first-seen order."""
    if not rows:
        raise ValueError("metrics_table needs at least one row: evaluate a model first")
    unnamed = [index for index, row in enumerate(rows) if "model" not in row]
    if unnamed:
        raise ValueError(f"rows {unnamed} lack a 'model' key: add the model name to each row")

    seen: list[str] = []
    for row in rows:
        seen.extend(column for column in row if column not in seen)
    ordered = ["model"]
    for name in METRICS:
        ordered.extend(column for column in seen if column.split("@")[0] == name)
    ordered.extend(column for column in COUNTS if column in seen)
    ordered.extend(column for column in seen if column not in ordered)
    return pd.DataFrame(list(rows), columns=ordered)
