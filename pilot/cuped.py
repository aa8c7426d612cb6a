"""CUPED: variance reduction with each user's pre-period value of the same metric.

For a ratio metric with per-user sums X and Y, the pilot's linearised metric is
``X - R Y`` with the pooled ratio R. The covariate is the same linearisation of the pre-period
sums, ``m = X_pre - R_pre Y_pre``, which is 0 for users without pre-period activity. With

    theta = Cov(X - R Y, m) / Var(m)

pooled over both arms, the adjusted numerator ``X' = X - theta (m - mean(m))`` goes through the
usual delta method. Because m was fixed before assignment, the adjustment leaves the expected
effect unchanged and removes the share ``rho^2`` of the variance explained by m.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import polars as pl

from pilot.events import read_events
from pilot.metrics import MetricSpec

logger = logging.getLogger("bookrecs.pilot")

PRE_PERIOD_TOTALS = (
    "sessions",
    "exposures",
    "clicks",
    "add_to_carts",
    "purchase_sessions",
    "orders",
    "revenue",
    "errors",
    "requests",
    "converted",
    "users",
)


def pre_period_totals(events: pl.DataFrame) -> pl.DataFrame:
    """Sum each user's pre-period events into the columns of `PRE_PERIOD_TOTALS`.

    Every session of the period counts, whether or not it showed the block, and invalid or
    duplicate rows are not removed. Attributed revenue and returns are not computed, so their
    metrics get no CUPED adjustment.
    """
    kind = pl.col("event_type")
    totals = events.group_by("user_id").agg(
        (kind == "session").sum().alias("sessions"),
        (kind == "exposure").sum().alias("exposures"),
        (kind == "error").sum().alias("errors"),
        (kind == "click").sum().alias("clicks"),
        (kind == "add_to_cart").sum().alias("add_to_carts"),
        pl.col("session_id").filter(kind == "purchase").n_unique().alias("purchase_sessions"),
        pl.col("order_id").filter(kind == "purchase").n_unique().alias("orders"),
        pl.col("revenue").filter(kind == "purchase").sum().alias("revenue"),
    )
    return totals.with_columns(
        pl.exclude("user_id").cast(pl.Float64),
    ).with_columns(
        (pl.col("exposures") + pl.col("errors")).alias("requests"),
        (pl.col("orders") > 0).cast(pl.Float64).alias("converted"),
        pl.lit(1.0).alias("users"),
    )


def read_pre_period(path: str | Path) -> pl.DataFrame:
    """Read a pre-period event log and return its per-user totals."""
    events = read_events(path).filter(pl.col("user_id").is_not_null())
    totals = pre_period_totals(events)
    logger.info("pre-period %s: %d users", path, totals.height)
    return totals


def cuped_numerator(
    numerator: np.ndarray,
    denominator: np.ndarray,
    pre_numerator: np.ndarray,
    pre_denominator: np.ndarray,
) -> tuple[np.ndarray, float, float]:
    """Return the CUPED-adjusted numerator, theta and the correlation of metric and covariate.

    All arrays contain one value per user of both arms, in the same order. Users without
    pre-period activity must have zeros in both pre-period arrays.
    """
    ratio = numerator.sum() / denominator.sum()
    linear = numerator - ratio * denominator
    pre_total = pre_denominator.sum()
    pre_ratio = pre_numerator.sum() / pre_total if pre_total > 0 else 0.0
    covariate = pre_numerator - pre_ratio * pre_denominator
    variance = covariate.var(ddof=1)
    if not variance > 0:
        return numerator.astype(float), 0.0, 0.0
    theta = float(np.cov(linear, covariate, ddof=1)[0, 1] / variance)
    correlation = float(np.corrcoef(linear, covariate)[0, 1])
    adjusted = numerator - theta * (covariate - covariate.mean())
    return adjusted, theta, correlation


def adjust_totals(
    totals: pl.DataFrame, pre: pl.DataFrame, spec: MetricSpec
) -> tuple[pl.DataFrame, dict] | None:
    """Return `totals` with the metric's numerator CUPED-adjusted, and a summary dict.

    Returns None when the pre-period lacks the metric's columns.
    """
    columns = (spec.numerator, spec.denominator)
    if any(name not in pre.columns for name in columns):
        return None
    joined = totals.join(
        pre.select("user_id", *[pl.col(name).alias(f"pre_{name}") for name in columns]),
        on="user_id",
        how="left",
    ).with_columns(pl.col(f"pre_{name}").fill_null(0.0) for name in columns)
    adjusted, theta, correlation = cuped_numerator(
        joined[spec.numerator].to_numpy(),
        joined[spec.denominator].to_numpy(),
        joined[f"pre_{spec.numerator}"].to_numpy(),
        joined[f"pre_{spec.denominator}"].to_numpy(),
    )
    covered = int((joined[f"pre_{spec.denominator}"] > 0).sum())
    summary = {
        "theta": theta,
        "correlation": correlation,
        "users_with_pre_period": covered,
        "users": joined.height,
    }
    result = joined.with_columns(pl.Series(spec.numerator, adjusted)).drop(
        [f"pre_{name}" for name in columns]
    )
    return result, summary
