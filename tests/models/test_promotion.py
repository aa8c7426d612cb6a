"""Promotion rule on hand-written metric tables."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from bookrecs.config import PromotionConfig
from bookrecs.exceptions import DataError
from bookrecs.promotion import choose_candidate


def table(rows: dict[str, tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {"model": name, "ndcg@10": main, "cold_ndcg@10": cold}
            for name, (main, cold) in rows.items()
        ]
    )


METRICS = table(
    {
        "random": (0.01, 0.002),
        "popular": (0.12, 0.0),
        "als": (0.15, 0.0),
        "content": (0.04, 0.03),
        "lightfm": (0.13, 0.04),
    }
)


def test_floor_excludes_cold_blind_models():
    candidate = choose_candidate(METRICS, PromotionConfig(cold_floor=0.01))
    assert candidate.model == "lightfm"
    assert "als (cold_ndcg@10=0.0000 < floor 0.01)" in candidate.reason
    assert "popular (cold_ndcg@10=0.0000 < floor 0.01)" in candidate.reason


def test_zero_floor_picks_best_main_metric():
    candidate = choose_candidate(METRICS, PromotionConfig(cold_floor=0.0))
    assert candidate.model == "als"


def test_random_never_promoted():
    metrics = table({"random": (0.5, 0.5), "popular": (0.1, 0.0)})
    candidate = choose_candidate(metrics, PromotionConfig(cold_floor=0.0))
    assert candidate.model == "popular"
    assert "random (baseline, never promoted)" in candidate.reason


def test_nothing_clears_floor():
    candidate = choose_candidate(METRICS, PromotionConfig(cold_floor=0.5))
    assert candidate.model is None
    assert candidate.reason.startswith("no serving candidate")
    assert not candidate.table["eligible"].any()


def test_tie_goes_to_cold_metric():
    metrics = table({"a": (0.2, 0.01), "b": (0.2, 0.03)})
    assert choose_candidate(metrics, PromotionConfig()).model == "b"


def test_tie_then_name():
    metrics = table({"zeta": (0.2, 0.01), "alpha": (0.2, 0.01)})
    assert choose_candidate(metrics, PromotionConfig()).model == "alpha"


def test_missing_cold_metric_excluded():
    metrics = table({"a": (0.3, math.nan), "b": (0.2, 0.01)})
    candidate = choose_candidate(metrics, PromotionConfig())
    assert candidate.model == "b"
    assert "a (cold_ndcg@10 is missing" in candidate.reason


def test_table_sorted_best_first():
    candidate = choose_candidate(METRICS, PromotionConfig(cold_floor=0.01))
    assert candidate.table["model"].tolist()[:2] == ["lightfm", "content"]
    assert candidate.table["eligible"].tolist()[:2] == [True, True]


def test_model_names_from_index():
    metrics = METRICS.set_index("model")
    assert choose_candidate(metrics, PromotionConfig(cold_floor=0.01)).model == "lightfm"


def test_other_metric_names():
    metrics = METRICS.rename(columns={"ndcg@10": "ndcg@5", "cold_ndcg@10": "cold_recall@5"})
    config = PromotionConfig(metric="ndcg@5", cold_metric="cold_recall@5", cold_floor=0.01)
    assert choose_candidate(metrics, config).model == "lightfm"


def test_missing_column_raises():
    with pytest.raises(DataError, match="no column 'recall@10'"):
        choose_candidate(METRICS, PromotionConfig(metric="recall@10"))


def test_empty_table_raises():
    with pytest.raises(DataError, match="empty"):
        choose_candidate(pd.DataFrame(), PromotionConfig())


def test_duplicate_models_raise():
    metrics = pd.concat([METRICS, METRICS.head(1)])
    with pytest.raises(DataError, match="appear twice"):
        choose_candidate(metrics, PromotionConfig())
