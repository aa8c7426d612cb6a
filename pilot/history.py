"""Estimate metric baselines from a historical event log (no pilot running)."""

from __future__ import annotations

import logging
from pathlib import Path

import polars as pl

from bookrecs.exceptions import DataError
from pilot.events import read_events, split_invalid
from pilot.metrics import METRICS
from pilot.plan import Attribution, Baselines, ProportionBaseline, RatioBaseline
from pilot.totals import user_totals

logger = logging.getLogger("bookrecs.pilot")

HISTORY_VARIANT = "history"


def baselines_from_totals(totals: pl.DataFrame, source: str) -> Baselines:
    """Compute per-user moments (ddof=1) of each catalogue metric whose columns are present."""
    if totals.height < 2:
        raise DataError(
            f"history {source} yields {totals.height} user(s) with an exposure; baselines need "
            "at least 2, and a few thousand for stable variances"
        )
    metrics: dict[str, RatioBaseline | ProportionBaseline] = {}
    for name, spec in METRICS.items():
        if spec.kind == "quantile" or spec.numerator not in totals.columns:
            continue
        numerator = totals[spec.numerator]
        if spec.kind == "proportion":
            rate = float(numerator.mean())
            if 0 < rate < 1:
                metrics[name] = ProportionBaseline(rate=rate)
            continue
        denominator = totals[spec.denominator]
        if float(denominator.mean()) <= 0:
            logger.warning(
                "history %s: no %s, baseline of %s skipped", source, spec.denominator, name
            )
            continue
        covariance = totals.select(pl.cov(spec.numerator, spec.denominator, ddof=1)).item()
        metrics[name] = RatioBaseline(
            numerator_mean=float(numerator.mean()),
            numerator_var=float(numerator.var(ddof=1)),
            denominator_mean=float(denominator.mean()),
            denominator_var=float(denominator.var(ddof=1)),
            covariance=float(covariance),
        )
    return Baselines(
        sessions_per_user=float(totals["sessions"].mean()),
        metrics=metrics,
        source=f"{source} ({totals.height:,} users)",
    )


def estimate_baselines(path: str | Path, attribution: Attribution | None = None) -> Baselines:
    """Estimate baselines from a historical event log in the pilot's event schema.

    The history needs no variants: every exposure is taken as one variant. Exposures and errors
    without a session_id are not mapped to sessions and so do not count.
    """
    events = read_events(path).with_columns(
        pl.when(pl.col("event_type").is_in(["exposure", "error"]))
        .then(pl.lit(HISTORY_VARIANT))
        .otherwise(pl.col("variant"))
        .alias("variant")
    )
    events, invalid = split_invalid(events, [HISTORY_VARIANT])
    if invalid:
        logger.warning("history %s: invalid rows excluded: %s", path, invalid)
    totals, _ = user_totals(events.unique(), attribution or Attribution())
    return baselines_from_totals(totals, str(path))


def estimate_cuped_correlation(path: str | Path, metric: str = "revenue_per_session") -> float:
    """Estimate the CUPED correlation of a metric by splitting a history log in two halves.

    The first half in time is the pre-period and the second half the "pilot". The result is the
    correlation of the linearised metric of users active in the second half with their
    first-half covariate (0 without first-half activity), as `pilot.cuped` computes it.
    """
    from pilot.cuped import cuped_numerator, pre_period_totals

    spec = METRICS[metric]
    events = read_events(path).filter(pl.col("user_id").is_not_null() & pl.col("ts").is_not_null())
    if events.is_empty():
        raise DataError(f"history {path} has no valid events to estimate a correlation from")
    middle = events["ts"].min() + (events["ts"].max() - events["ts"].min()) / 2
    first = pre_period_totals(events.filter(pl.col("ts") < middle))
    second = pre_period_totals(events.filter(pl.col("ts") >= middle))
    columns = (spec.numerator, spec.denominator)
    if any(name not in second.columns for name in columns):
        raise DataError(f"metric {metric!r} cannot be computed from a history log")
    joined = second.join(
        first.select("user_id", *[pl.col(name).alias(f"pre_{name}") for name in columns]),
        on="user_id",
        how="left",
    ).fill_null(0.0)
    _, _, correlation = cuped_numerator(
        joined[spec.numerator].to_numpy(),
        joined[spec.denominator].to_numpy(),
        joined[f"pre_{spec.numerator}"].to_numpy(),
        joined[f"pre_{spec.denominator}"].to_numpy(),
    )
    return correlation
