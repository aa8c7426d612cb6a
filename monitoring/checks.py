"""Drift checks: interactions, metadata of new books, and the model's output.

Each check measures an effect size (and, where a test applies, a p-value) and returns a
`CheckResult` with status `measured`; `monitoring.drift.decide` then applies the thresholds.
A check that cannot run returns status `skipped` (no input) or `insufficient_data` (too few
observations for a meaningful test), and its message gives the reason.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Literal

import numpy as np
import polars as pl

from bookrecs.columns import ITEM_ID, YEAR
from monitoring import features, stats
from monitoring.config import CheckName, DriftConfig
from monitoring.impressions import MODEL_SOURCE, ImpressionLog

Status = Literal["measured", "ok", "drift", "warning", "insufficient_data", "skipped"]
Group = Literal["interactions", "new_books", "model_output"]


@dataclass
class CheckResult:
    """Outcome of one check.

    reference, current: the compared quantity on each side, in `unit`.
    effect: the effect size compared with `threshold` (see `measure`).
    p_value: p-value of the test named in `test`, or None for a fixed limit.
    n_reference, n_current: observations on each side (rows, books, slots or requests).
    """

    name: CheckName
    group: Group
    measure: str
    unit: str
    status: Status = "measured"
    reference: float | None = None
    current: float | None = None
    effect: float | None = None
    threshold: float | None = None
    test: str | None = None
    p_value: float | None = None
    n_reference: int = 0
    n_current: int = 0
    retrain: bool = True
    message: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def _result(
    name: CheckName, group: Group, measure: str, unit: str, config: DriftConfig
) -> CheckResult:
    setting = config.check(name)
    result = CheckResult(
        name=name,
        group=group,
        measure=measure,
        unit=unit,
        threshold=setting.threshold,
        retrain=setting.retrain,
    )
    if not setting.enabled:
        result.status = "skipped"
        result.message = f"disabled in the drift config (checks.{name}.enabled: false)"
    return result


def _too_small(
    result: CheckResult, n_reference: int, n_current: int, observations: str, minimum: int
) -> bool:
    result.n_reference, result.n_current = n_reference, n_current
    if min(n_reference, n_current) >= minimum:
        return False
    result.status = "insufficient_data"
    result.message = (
        f"too few {observations} to compare ({n_reference} reference, {n_current} current; "
        f"min_sample is {minimum}): widen the windows"
    )
    return True


def _too_few(result: CheckResult, n_current: int, observations: str, minimum: int) -> bool:
    result.n_current = n_current
    if n_current >= minimum:
        return False
    result.status = "insufficient_data"
    result.message = (
        f"too few {observations} in the current window ({n_current}; min_sample is {minimum}): "
        "widen the current window"
    )
    return True


def _numeric(result: CheckResult, reference: np.ndarray, current: np.ndarray) -> CheckResult:
    result.reference = float(np.mean(reference))
    result.current = float(np.mean(current))
    result.effect = stats.normed_wasserstein(reference, current)
    result.test = "Kolmogorov-Smirnov"
    result.p_value = stats.ks_p_value(reference, current)
    return result


def _categorical(
    result: CheckResult, reference: pl.Series, current: pl.Series, config: DriftConfig
) -> CheckResult:
    labels, reference_counts, current_counts = features.category_counts(
        reference, current, config.max_categories
    )
    result.effect = stats.psi(reference_counts, current_counts)
    result.test = "chi-square"
    result.p_value = stats.chi_square_p_value(reference_counts, current_counts)
    shift = current_counts / current_counts.sum() - reference_counts / reference_counts.sum()
    largest = int(np.argmax(np.abs(shift)))
    result.reference = float(reference_counts[largest] / reference_counts.sum())
    result.current = float(current_counts[largest] / current_counts.sum())
    result.message = f"largest change in the share of {labels[largest]!r}"
    return result


def _share(
    result: CheckResult, reference: tuple[int, int], current: tuple[int, int]
) -> CheckResult:
    (reference_hits, reference_total), (current_hits, current_total) = reference, current
    result.reference = reference_hits / reference_total
    result.current = current_hits / current_total
    result.effect = abs(result.current - result.reference)
    result.test = "two-proportion z"
    result.p_value = stats.two_proportion_p_value(
        reference_hits, reference_total, current_hits, current_total
    )
    return result


def interaction_checks(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    profile: features.ReferenceProfile,
    config: DriftConfig,
) -> list[CheckResult]:
    """Compare the interactions of the two windows (activity, ratings, is_read, popularity)."""
    minimum = config.min_sample
    results = []

    result = _result("user_activity", "interactions", "Wasserstein / std", "per user-week", config)
    reference_activity = features.user_week_activity(reference)
    current_activity = features.user_week_activity(current)
    if result.status == "measured" and not _too_small(
        result, reference_activity.size, current_activity.size, "active user-weeks", minimum
    ):
        _numeric(result, reference_activity, current_activity)
        result.message = "mean interactions per active user and week"
    results.append(result)

    result = _result("rating_distribution", "interactions", "PSI", "share", config)
    if result.status == "measured" and not _too_small(
        result, reference.height, current.height, "interactions", minimum
    ):
        _categorical(
            result, features.rating_levels(reference), features.rating_levels(current), config
        )
        result.message = result.message.replace("of '0'", "of '0' (unrated)")
    results.append(result)

    result = _result("is_read_share", "interactions", "absolute difference", "share", config)
    if result.status == "measured" and not _too_small(
        result, reference.height, current.height, "interactions", minimum
    ):
        _share(
            result,
            (features.is_read_hits(reference), reference.height),
            (features.is_read_hits(current), current.height),
        )
        result.message = "share of interactions marked read"
    results.append(result)

    results.append(_popularity_check(current, profile, config))
    results.append(_new_book_share_check(reference, current, profile, config))
    return results


def _popularity_check(
    current: pl.DataFrame, profile: features.ReferenceProfile, config: DriftConfig
) -> CheckResult:
    result = _result("item_popularity", "interactions", "absolute difference", "share", config)
    holdout = profile.holdout
    if result.status != "measured" or _too_small(
        result, holdout.height, current.height, "interactions", config.min_sample
    ):
        return result
    reference_hits = int(features.in_head(holdout[ITEM_ID], profile).sum())
    current_hits = int(features.in_head(current[ITEM_ID], profile).sum())
    _share(result, (reference_hits, holdout.height), (current_hits, current.height))
    result.message = (
        f"share of interactions on the reference head (books making up "
        f"{profile.head_share:.0%} of reference interactions)"
    )
    return result


def _new_book_share_check(
    reference: pl.DataFrame,
    current: pl.DataFrame,
    profile: features.ReferenceProfile,
    config: DriftConfig,
) -> CheckResult:
    result = _result("new_book_share", "interactions", "excess share", "share", config)
    if result.status != "measured" or _too_small(
        result, reference.height, current.height, "interactions", config.min_sample
    ):
        return result
    hits = int((~current[ITEM_ID].is_in(list(profile.items))).sum())
    result.reference = profile.missing_mass
    result.current = hits / current.height
    result.effect = result.current - result.reference
    result.test = "binomial (one-sided)"
    result.p_value = stats.binomial_greater_p_value(hits, current.height, profile.missing_mass)
    result.message = (
        "share of interactions on books absent from the reference window; the reference "
        "value is the Good-Turing estimate expected without drift"
    )
    return result


def book_checks(
    books: pl.DataFrame | None,
    reference: pl.DataFrame,
    current: pl.DataFrame,
    config: DriftConfig,
) -> list[CheckResult]:
    """Compare metadata (language, shelves, year) of new books with that of reference books."""
    specs: list[tuple[CheckName, str, str]] = [
        ("new_book_language", "PSI", "share"),
        ("new_book_shelves", "PSI", "share"),
        ("new_book_year", "Wasserstein / std", "year"),
    ]
    results = [_result(name, "new_books", measure, unit, config) for name, measure, unit in specs]
    if books is None or books.is_empty():
        for result in results:
            if result.status == "measured":
                result.status = "skipped"
                result.message = "the dataset has no book metadata"
        return results

    reference_books = features.book_metadata(books, reference[ITEM_ID].unique())
    current_books = features.book_metadata(books, features.new_books(reference, current))
    language, shelves, year = results
    if language.status == "measured" and not _too_small(
        language, reference_books.height, current_books.height, "books", config.min_sample
    ):
        _categorical(language, reference_books["language"], current_books["language"], config)
    if shelves.status == "measured":
        reference_shelves = features.shelves(reference_books)
        current_shelves = features.shelves(current_books)
        if not _too_small(
            shelves,
            reference_shelves.len(),
            current_shelves.len(),
            "shelf entries",
            config.min_sample,
        ):
            _categorical(shelves, reference_shelves, current_shelves, config)
    if year.status == "measured":
        reference_years = reference_books[YEAR].drop_nulls().to_numpy().astype(float)
        current_years = current_books[YEAR].drop_nulls().to_numpy().astype(float)
        if not _too_small(
            year, reference_years.size, current_years.size, "books with a year", config.min_sample
        ):
            _numeric(year, reference_years, current_years)
            year.message = "mean publication year"
    return results


def impression_checks(
    log: ImpressionLog | None,
    current: pl.DataFrame,
    profile: features.ReferenceProfile,
    config: DriftConfig,
) -> list[CheckResult]:
    """Check what the service showed in the current window against the reference reading.

    NOTE: impressions logged during the reference window are not compared, even when the
    log has them; the baseline is always what people read in the reference window.
    """
    results = [
        _result("shown_popularity", "model_output", "absolute difference", "share", config),
        _result("shown_coverage", "model_output", "1 - coverage ratio", "distinct books", config),
        _result("shown_cold_share", "model_output", "absolute difference", "share", config),
        _result("fallback_rate", "model_output", "share", "share", config),
        _result("latency_p95", "model_output", "95th percentile", "ms", config),
    ]
    if log is None or log.is_empty:
        reason = (
            "no impression log given (pass --impressions)"
            if log is None
            else "the impression log has no readable requests in the current window"
        )
        for result in results:
            if result.status == "measured":
                result.status = "skipped" if log is None else "insufficient_data"
                result.message = reason
        return results

    popularity, coverage, cold, fallback, latency = results
    minimum = config.min_sample
    slots, requests = log.slots, log.requests
    if popularity.status == "measured" and not _too_small(
        popularity, profile.holdout.height, slots.height, "shown books", minimum
    ):
        reference_hits = int(features.in_head(profile.holdout[ITEM_ID], profile).sum())
        shown_hits = int(features.in_head(slots[ITEM_ID], profile).sum())
        _share(popularity, (reference_hits, profile.holdout.height), (shown_hits, slots.height))
        popularity.message = "share of shown books in the reference head"
    if coverage.status == "measured":
        _coverage_check(coverage, slots, profile, minimum)
    if cold.status == "measured":
        _cold_share_check(cold, requests, current, profile, minimum)
    if fallback.status == "measured" and not _too_few(
        fallback, requests.height, "requests", minimum
    ):
        fallback.current = float((requests["source"] != MODEL_SOURCE).mean())
        fallback.effect = fallback.current
        fallback.message = (
            f"share of requests answered by a fallback (source other than {MODEL_SOURCE!r})"
        )
    if latency.status == "measured":
        latencies = requests["latency_ms"].drop_nulls().to_numpy()
        if not _too_few(latency, latencies.size, "requests with a latency", minimum):
            latency.current = float(np.percentile(latencies, 95))
            latency.effect = latency.current
            latency.message = "95th percentile of request latency"
    return results


def _coverage_check(
    result: CheckResult, slots: pl.DataFrame, profile: features.ReferenceProfile, minimum: int
) -> None:
    counts = profile.item_counts["count"].to_numpy().astype(float)
    if _too_small(result, int(counts.sum()), slots.height, "shown books", minimum):
        return
    expected = stats.expected_distinct(counts / counts.sum(), slots.height)
    distinct = slots[ITEM_ID].n_unique()
    result.reference = expected
    result.current = float(distinct)
    result.effect = max(0.0, 1.0 - distinct / expected)
    result.message = (
        f"distinct books in {slots.height} shown slots against the number expected when "
        "drawing as many from reference reading"
    )


def _cold_share_check(
    result: CheckResult,
    requests: pl.DataFrame,
    current: pl.DataFrame,
    profile: features.ReferenceProfile,
    minimum: int,
) -> None:
    shown = int(requests["shown"].sum())
    cold_shown = int(requests["cold_items"].sum())
    if current.is_empty():
        result.status = "skipped"
        result.message = "no current interactions to compare the shown cold share with"
        result.n_current = shown
        return
    if _too_small(result, current.height, shown, "observations", minimum):
        return
    new_reads = int((~current[ITEM_ID].is_in(list(profile.items))).sum())
    _share(result, (new_reads, current.height), (min(cold_shown, shown), shown))
    result.message = (
        "share of shown books that were cold at training time, against the share of current "
        "interactions on books new since the reference"
    )
