"""Hyperparameter tuning helpers: a validation split carved from train, grids, selection.

The validation split is cut from the training interactions by time, at the same quantile the
test split uses, so tuning never reads the test period.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from bookrecs.columns import WEIGHT
from bookrecs.config import ProtocolConfig
from bookrecs.data.prepare import Prepared
from bookrecs.exceptions import DataError
from bookrecs.split import Split, make_split

logger = logging.getLogger("bookrecs.tuning")

# Small grids: a Metaflow foreach runs one branch per point.
GRIDS: dict[str, dict[str, list[Any]]] = {
    "lightfm": {
        "no_components": [32, 64],
        "popularity_weight": [0.0, 1.0],
        "feature_weights": [{}, {"tags": 1.0, "authors": 2.0, "series": 2.0, "text": 0.25}],
    },
    "content": {
        "feature_weights": [{}, {"tags": 1.0, "authors": 2.0, "series": 2.0, "text": 0.25}],
    },
    "als": {"factors": [32, 64], "regularization": [0.01, 0.1]},
    "itemknn": {"K": [50, 200]},
}


def validation_split(split: Split, protocol: ProtocolConfig) -> Split:
    """Carve a validation split out of `split.train` by time; `split.test` is not used.

    `bookrecs.split.make_split` cuts the training interactions at `protocol.test_quantile`
    of their dates, so validation follows the same rules as the test split (weights, cold
    threshold, users of the validation test all present in the validation train).
    """
    prepared = Prepared(
        interactions=split.train.drop(WEIGHT, strict=False),
        books=split.books,
        steps=[("train", split.train.height)],
        name="validation",
        synthetic=split.synthetic,
    )
    validation = make_split(prepared, protocol)
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
    reaches `cold_floor`. Ties go to the higher cold metric, then to the earlier row.

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
