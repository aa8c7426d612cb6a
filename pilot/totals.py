"""Per-user totals of the pilot, the unit every metric is computed from.

A user enters the analysis at their first exposure or error (a recommendation request). From
then on, every session of the user that starts at or after the session of that first request
counts, with the clicks, add-to-carts, purchases and returns inside it.
"""

from __future__ import annotations

import datetime as dt

import polars as pl

from pilot.plan import Attribution

USER_TOTALS = (
    "sessions",
    "exposures",
    "clicks",
    "add_to_carts",
    "purchase_sessions",
    "orders",
    "revenue",
    "attributed_revenue",
    "returned_orders",
    "errors",
    "requests",
    "converted",
    "users",
)


def attribute_purchases(
    purchases: pl.DataFrame, clicks: pl.DataFrame, attribution: Attribution
) -> pl.DataFrame:
    """Add a boolean `attributed` column to purchase rows.

    A purchase is attributed to the block when the same user clicked the block before it
    (on the same item when `same_item`), and either in the same session (window "session") or
    at most `hours` before the purchase (window "hours"). The latest qualifying click is used.
    """
    keys = ["user_id"]
    if attribution.same_item:
        keys.append("item_id")
    if attribution.window == "session":
        keys.append("session_id")
    tolerance = dt.timedelta(hours=attribution.hours) if attribution.window == "hours" else None

    left = purchases.with_row_index("_row")
    eligible = left.drop_nulls(keys).sort("ts")
    right = clicks.drop_nulls(keys).select(*keys, pl.col("ts").alias("click_ts")).sort("click_ts")
    matched = eligible.join_asof(
        right,
        left_on="ts",
        right_on="click_ts",
        by=keys,
        strategy="backward",
        tolerance=tolerance,
        check_sortedness=False,
    ).select("_row", pl.col("click_ts").is_not_null().alias("attributed"))
    return (
        left.join(matched, on="_row", how="left")
        .with_columns(pl.col("attributed").fill_null(False))
        .sort("_row")
        .drop("_row")
    )


def user_totals(
    events: pl.DataFrame, attribution: Attribution
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Return one row of totals per analysed user, and the request latencies.

    Returns
    -------
    totals : polars.DataFrame
        Columns user_id, variant, placement, platform, first_day and every name in
        `USER_TOTALS` (``users`` is 1 and ``converted`` is 1 for a user with an order).
    latencies : polars.DataFrame
        Columns variant and latency_ms, one row per exposure with a latency.
    """
    requests = events.filter(pl.col("event_type").is_in(["exposure", "error"]))
    sessions = events.filter(pl.col("event_type") == "session").select(
        "user_id", "session_id", pl.col("ts").alias("session_ts"), "platform"
    )
    first = (
        requests.sort("ts")
        .group_by("user_id", maintain_order=True)
        .agg(
            pl.col("variant").first(),
            pl.col("placement").drop_nulls().first(),
            pl.col("session_id").first().alias("first_session"),
            pl.col("ts").first().dt.date().cast(pl.String).alias("first_day"),
        )
        .join(
            sessions.select(
                pl.col("session_id").alias("first_session"),
                pl.col("session_ts").alias("first_session_ts"),
                "platform",
            ),
            on="first_session",
            how="left",
        )
    )
    counted = sessions.join(
        first.select("user_id", "first_session_ts"), on="user_id", how="inner"
    ).filter(pl.col("session_ts") >= pl.col("first_session_ts"))
    in_counted = pl.col("session_id").is_in(counted["session_id"].implode())

    session_events = events.filter(in_counted)
    by_type = session_events.group_by("user_id").agg(
        (pl.col("event_type") == "exposure").sum().alias("exposures"),
        (pl.col("event_type") == "error").sum().alias("errors"),
        (pl.col("event_type") == "click").sum().alias("clicks"),
        (pl.col("event_type") == "add_to_cart").sum().alias("add_to_carts"),
    )
    purchases = attribute_purchases(
        session_events.filter(pl.col("event_type") == "purchase"),
        session_events.filter(pl.col("event_type") == "click"),
        attribution,
    )
    purchase_totals = purchases.group_by("user_id").agg(
        pl.col("session_id").n_unique().alias("purchase_sessions"),
        pl.col("order_id").n_unique().alias("orders"),
        pl.col("revenue").sum().alias("revenue"),
        pl.col("revenue").filter(pl.col("attributed")).sum().alias("attributed_revenue"),
    )
    returns = (
        events.filter(pl.col("event_type") == "return")
        .select("order_id")
        .unique()
        .join(purchases.select("user_id", "order_id").unique(), on="order_id", how="inner")
        .group_by("user_id")
        .agg(pl.col("order_id").n_unique().alias("returned_orders"))
    )
    session_counts = counted.group_by("user_id").agg(pl.len().alias("sessions"))

    totals = first.select("user_id", "variant", "placement", "platform", "first_day")
    for table in (session_counts, by_type, purchase_totals, returns):
        totals = totals.join(table, on="user_id", how="left")
    count_columns = [name for name in USER_TOTALS if name in totals.columns]
    totals = totals.with_columns(
        [pl.col(name).fill_null(0).cast(pl.Float64) for name in count_columns]
    ).with_columns(
        (pl.col("exposures") + pl.col("errors")).alias("requests"),
        (pl.col("orders") > 0).cast(pl.Float64).alias("converted"),
        pl.lit(1.0).alias("users"),
    )
    latencies = session_events.filter(
        (pl.col("event_type") == "exposure") & pl.col("latency_ms").is_not_null()
    ).select("variant", "latency_ms")
    return totals.sort("user_id"), latencies
