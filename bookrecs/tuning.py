"""Hyperparameter tuning helpers: a validation split carved from train, grids, selection.

The validation split is cut from the training interactions by time, at the same quantile the
test split uses, so tuning never sees the test period.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd
import polars as pl

from bookrecs.columns import DATE, ITEM_ID, USER_ID
from bookrecs.config import ProtocolConfig
from bookrecs.exceptions import ConfigError, DataError
from bookrecs.split import Split, SplitReport

logger = logging.getLogger("bookrecs.tuning")

# Small grids: a Metaflow foreach runs one branch per point.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "lightfm": {
        "no_components": [32, 64],
        "learning_rate": [0.05],
        "epochs": [15, 30],
        "feature_weights": [{}, {"tags": 1.0, "authors": 2.0, "series": 2.0, "text": 0.25}],
    },
    "content": {
        "feature_weights": [{}, {"tags": 1.0, "authors": 2.0, "series": 2.0, "text": 0.25}],
    },
    "als": {"factors": [32, 64], "regularization": [0.01, 0.1]},
    "itemknn": {"K": [50, 200]},
}


def cut_by_time(
    interactions: pl.DataFrame,
    books: pl.DataFrame | None,
    quantile: float,
    cold_threshold: int = 1,
    synthetic: bool = False,
) -> Split:
    """Split `interactions` at the `quantile` of `date_added` into train and test.

    Test keeps pairs of users that also appear in train and drops pairs already in train.
    Cold items are the test and catalogue items with fewer than `cold_threshold` train
    interactions.
    """
    if not 0 < quantile < 1:
        raise ConfigError(f"quantile={quantile} is invalid: it must be between 0 and 1")
    if interactions.height == 0:
        raise DataError("cannot split an empty interaction table: check the data filters")

    cut = interactions[DATE].quantile(quantile, interpolation="nearest")
    train = interactions.filter(pl.col(DATE) < cut)
    later = interactions.filter(pl.col(DATE) >= cut)
    if train.height == 0 or later.height == 0:
        raise DataError(
            f"cutting at the {quantile} quantile ({cut}) leaves an empty side: "
            "the dates are too concentrated, choose another quantile"
        )

    known_users = train.select(USER_ID).unique()
    test = (
        later.join(known_users, on=USER_ID, how="semi")
        .join(train.select(USER_ID, ITEM_ID), on=[USER_ID, ITEM_ID], how="anti")
        .select(USER_ID, ITEM_ID)
        .unique(maintain_order=True)
    )
    counts = train.group_by(ITEM_ID).len(name="train_count")
    candidates = [test.select(ITEM_ID)]
    if books is not None:
        candidates.append(books.select(ITEM_ID))
    catalogue = pl.concat(candidates).unique()
    cold = (
        catalogue.join(counts, on=ITEM_ID, how="left")
        .filter(pl.col("train_count").fill_null(0) < cold_threshold)[ITEM_ID]
        .sort()
    )
    cold_pairs = test.filter(pl.col(ITEM_ID).is_in(cold.implode())).height

    report = SplitReport(
        steps=[("interactions", interactions.height), ("train", train.height)],
        cut_date=cut,
        cold_threshold=cold_threshold,
        train_users=train[USER_ID].n_unique(),
        train_items=train[ITEM_ID].n_unique(),
        train_pairs=train.height,
        test_users=test[USER_ID].n_unique(),
        test_items=test[ITEM_ID].n_unique(),
        test_pairs=test.height,
        cold_items=len(cold),
        cold_test_pair_share=cold_pairs / test.height if test.height else 0.0,
    )
    return Split(
        train=train, test=test, books=books, cold_items=cold, report=report, synthetic=synthetic
    )


def validation_split(split: Split, protocol: ProtocolConfig) -> Split:
    """Carve a validation split out of `split.train` by time; `split.test` is not used.

    The cut sits at `protocol.test_quantile` of the training dates, and items are cold with
    the same `protocol.cold_threshold` as in the test split.
    """
    validation = cut_by_time(
        split.train,
        split.books,
        protocol.test_quantile,
        protocol.cold_threshold,
        synthetic=split.synthetic,
    )
    report = validation.report
    logger.info(
        "validation split: %d train pairs, %d validation pairs, %d cold items (%.1f%% of pairs)",
        report.train_pairs,
        report.test_pairs,
        report.cold_items,
        100 * report.cold_test_pair_share,
    )
    return validation


def param_grid(name: str) -> list[dict[str, Any]]:
    """Return the small hyperparameter grid of model `name` as a list of JSON-able dicts.

    Models without a grid get `[{}]`, one point with the defaults.
    """
    grid = GRIDS.get(name)
    if not grid:
        return [{}]
    keys = list(grid)
    return [dict(zip(keys, values, strict=True)) for values in itertools.product(*grid.values())]


def select_best(
    rows: Sequence[Mapping[str, Any]],
    metric: str = "ndcg@10",
    cold_metric: str | None = "cold_ndcg@10",
    cold_floor: float = 0.0,
) -> tuple[dict[str, Any], pd.DataFrame]:
    """Pick the grid point with the highest `metric` among those whose `cold_metric`
    reaches `cold_floor`; ties go to the higher cold metric, then to the earlier row.

    Parameters
    ----------
    rows
        One mapping per grid point: {"params": {...}, metric: value, ...}.

    Returns
    -------
    (params, table)
        The chosen parameters and a table of every point, best first, with an `eligible`
        column.
    """
    if not rows:
        raise DataError("no validation results to select from: the tuning grid produced none")
    missing = [index for index, row in enumerate(rows) if metric not in row]
    if missing:
        raise DataError(
            f"validation rows {missing} lack the metric {metric!r}: "
            f"choose one of {sorted(k for k in rows[0] if k != 'params')}"
        )

    table = pd.DataFrame([{k: v for k, v in row.items() if k != "params"} for row in rows])
    table.insert(0, "params", [_describe(row.get("params", {})) for row in rows])
    table["row"] = range(len(rows))
    if cold_metric and cold_metric in table:
        cold_values = table[cold_metric].astype(float)
        table["eligible"] = cold_values.fillna(-math.inf) >= cold_floor
        if not table["eligible"].any():
            logger.warning(
                "no grid point reaches %s >= %s; selecting on %s alone",
                cold_metric,
                cold_floor,
                metric,
            )
            table["eligible"] = True
        sort_by = ["eligible", metric, cold_metric, "row"]
    else:
        table["eligible"] = True
        sort_by = ["eligible", metric, "row"]

    ascending = [False] * (len(sort_by) - 1) + [True]
    table = table.sort_values(sort_by, ascending=ascending, kind="stable")
    best = dict(rows[int(table["row"].iloc[0])].get("params", {}))
    logger.info("best %s=%.4f with %s", metric, table[metric].iloc[0], best)
    return best, table.drop(columns="row").reset_index(drop=True)


def _describe(params: Mapping[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for key, value in params.items()) or "defaults"
