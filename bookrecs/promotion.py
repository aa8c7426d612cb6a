"""Promotion rule: which trained model becomes the serving candidate.

Rule: among models whose cold metric (default cold_ndcg@10) reaches the floor, pick the one
with the best main metric (default ndcg@10). Ties go to the higher cold metric, then to the
model name in alphabetical order. Models listed in `never_promote` (the random sanity
baseline by default) are never candidates. When no model clears the floor, nothing is
promoted and the reason states why, so a run can never silently ship a model that leaves new
books out.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

from bookrecs.config import PromotionConfig
from bookrecs.exceptions import DataError

logger = logging.getLogger("bookrecs.promotion")

NEVER_PROMOTE = ("random",)


@dataclass(frozen=True)
class Candidate:
    """Outcome of the promotion rule.

    Attributes
    ----------
    model
        Name of the chosen model, or None when no model qualifies.
    reason
        One paragraph: the rule, the choice and every excluded model with its value.
    table
        The metrics rows with `eligible` and `excluded_because` columns, best first.
    """

    model: str | None
    reason: str
    table: pd.DataFrame


def choose_candidate(
    metrics: pd.DataFrame,
    config: PromotionConfig,
    never_promote: Sequence[str] = NEVER_PROMOTE,
) -> Candidate:
    """Apply the promotion rule to a metrics table with one row per model.

    Parameters
    ----------
    metrics
        Table with a `model` column (or model names as the index) and the columns named by
        `config.metric` and `config.cold_metric`.
    config
        Metric, cold metric and cold floor.
    never_promote
        Model names that are reported but never chosen.

    Raises
    ------
    DataError
        When the table is empty or lacks a metric column.
    """
    table = _with_model_column(metrics)
    for column in (config.metric, config.cold_metric):
        if column not in table.columns:
            known = ", ".join(str(c) for c in table.columns if c != "model")
            raise DataError(
                f"metrics table has no column {column!r}: set promotion.metric or "
                f"promotion.cold_metric to one of {known}"
            )

    main = table[config.metric].astype(float)
    cold = table[config.cold_metric].astype(float)
    reasons = []
    for name, value, cold_value in zip(table["model"], main, cold, strict=True):
        if name in never_promote:
            reasons.append("baseline, never promoted")
        elif math.isnan(value):
            reasons.append(f"{config.metric} is missing")
        elif math.isnan(cold_value):
            reasons.append(f"{config.cold_metric} is missing (no cold test items?)")
        elif cold_value < config.cold_floor:
            reasons.append(f"{config.cold_metric}={cold_value:.4f} < floor {config.cold_floor}")
        else:
            reasons.append("")
    table["excluded_because"] = reasons
    table["eligible"] = table["excluded_because"] == ""
    table = table.sort_values(
        ["eligible", config.metric, config.cold_metric, "model"],
        ascending=[False, False, False, True],
        kind="stable",
        na_position="last",
    ).reset_index(drop=True)

    excluded = table[~table["eligible"]]
    excluded_text = "; ".join(
        f"{row.model} ({row.excluded_because})" for row in excluded.itertuples(index=False)
    )
    rule = f"best {config.metric} among models with {config.cold_metric} >= {config.cold_floor}"
    if not table["eligible"].any():
        reason = (
            f"no serving candidate: no model meets the rule ({rule}). Excluded: {excluded_text}."
        )
        logger.warning(reason)
        return Candidate(model=None, reason=reason, table=table)

    best = table.iloc[0]
    reason = (
        f"{best['model']} is the serving candidate: {rule}; it has "
        f"{config.metric}={best[config.metric]:.4f} "
        f"and {config.cold_metric}={best[config.cold_metric]:.4f}."
    )
    if excluded_text:
        reason += f" Excluded: {excluded_text}."
    logger.info(reason)
    return Candidate(model=str(best["model"]), reason=reason, table=table)


def _with_model_column(metrics: pd.DataFrame) -> pd.DataFrame:
    if metrics.empty:
        raise DataError("metrics table is empty: train and evaluate at least one model first")
    table = metrics.copy()
    if "model" not in table.columns:
        table = table.rename_axis("model").reset_index()
    table["model"] = table["model"].astype(str)
    duplicated = table["model"][table["model"].duplicated()].unique().tolist()
    if duplicated:
        raise DataError(f"models {duplicated} appear twice in the metrics table: keep one row each")
    return table
