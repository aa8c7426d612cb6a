"""Catalogue of the pilot's metrics: how each is computed from per-user totals.

The randomisation unit is the user, so every metric except the latency quantile is computed
from per-user sums (one row per user, see `pilot.totals.USER_TOTALS`). A metric over sessions,
orders or requests is then a ratio of two per-user sums, and its variance comes from the delta
method, which accounts for the correlation between sessions of the same user.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

MetricKind = Literal["ratio", "proportion", "quantile"]


@dataclass(frozen=True)
class MetricSpec:
    """Definition of one metric.

    `numerator` and `denominator` name per-user total columns. For a proportion metric the
    numerator is a 0/1 column per user and the denominator is one per user. For the quantile
    metric `numerator` names the request-level column and `quantile` the level.
    """

    name: str
    kind: MetricKind
    numerator: str
    denominator: str
    higher_is_better: bool
    unit: str
    description: str
    quantile: float | None = None


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            "revenue_per_session",
            "ratio",
            "revenue",
            "sessions",
            True,
            "currency units per session",
            "Revenue of all purchases in pilot sessions divided by the number of sessions.",
        ),
        MetricSpec(
            "attributed_revenue_per_session",
            "ratio",
            "attributed_revenue",
            "sessions",
            True,
            "currency units per session",
            "Revenue of purchases attributed to a click on the block, per session.",
        ),
        MetricSpec(
            "purchase_session_share",
            "ratio",
            "purchase_sessions",
            "sessions",
            True,
            "share of sessions",
            "Share of sessions with at least one purchase.",
        ),
        MetricSpec(
            "block_ctr",
            "ratio",
            "clicks",
            "exposures",
            True,
            "clicks per exposure",
            "Clicks on the recommendation block divided by exposures of the block.",
        ),
        MetricSpec(
            "add_to_cart_per_session",
            "ratio",
            "add_to_carts",
            "sessions",
            True,
            "add-to-cart events per session",
            "Add-to-cart events divided by sessions.",
        ),
        MetricSpec(
            "conversion",
            "proportion",
            "converted",
            "users",
            True,
            "share of users",
            "Share of users with at least one purchase during the pilot.",
        ),
        MetricSpec(
            "return_rate",
            "ratio",
            "returned_orders",
            "orders",
            False,
            "share of orders",
            "Share of orders that were returned.",
        ),
        MetricSpec(
            "error_rate",
            "ratio",
            "errors",
            "requests",
            False,
            "share of requests",
            "Failed recommendation requests divided by all recommendation requests.",
        ),
        MetricSpec(
            "p95_latency_ms",
            "quantile",
            "latency_ms",
            "requests",
            False,
            "milliseconds",
            "95th percentile of the service latency of recommendation requests.",
            quantile=0.95,
        ),
    )
}
