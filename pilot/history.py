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
