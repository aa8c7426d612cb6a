"""Event logs of the pilot: schema, reading (CSV, Parquet, impression log) and row validation.

One long table contains every event, one row per event:

=============  ========  ================================================================
column         type      meaning
=============  ========  ================================================================
event_id       str       Unique id of the event, optional, used to find duplicates.
ts             datetime  Event time in UTC. ISO-8601 text is parsed, naive means UTC.
user_id        str       User id, equal to the `user_hash` the service logs.
session_id     str       Session of the event, empty for impressions (they are mapped).
event_type     str       session, exposure, click, add_to_cart, purchase, return, error.
variant        str       Assigned variant, required on exposure and error rows.
placement      str       Page slot of the block (exposure and click rows).
platform       str       web, ios, android ... (session rows).
item_id        str       Book of a click, add-to-cart, purchase or return.
request_id     str       Recommendation request of an exposure (and of the click on it).
order_id       str       Order of a purchase, or the order a return refers to.
revenue        float     Purchase amount in currency units, required and > 0 on purchases.
latency_ms     float     Service latency of an exposure's request, in milliseconds.
=============  ========  ================================================================

A `session` row marks the start of a session. `click` rows are clicks on items of the
recommendation block, and `error` rows are recommendation requests that failed.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from pathlib import Path

import polars as pl

from bookrecs.exceptions import DataError

logger = logging.getLogger("bookrecs.pilot")

EVENT_TYPES = ("session", "exposure", "click", "add_to_cart", "purchase", "return", "error")

EVENT_SCHEMA: dict[str, pl.DataType] = {
    "event_id": pl.String,
    "ts": pl.Datetime("us", "UTC"),
    "user_id": pl.String,
    "session_id": pl.String,
    "event_type": pl.String,
    "variant": pl.String,
    "placement": pl.String,
    "platform": pl.String,
    "item_id": pl.String,
    "request_id": pl.String,
    "order_id": pl.String,
    "revenue": pl.Float64,
    "latency_ms": pl.Float64,
}
REQUIRED_COLUMNS = ("ts", "user_id", "event_type")
# Exposures read from the impression log carry this event_id prefix, marking their source.
IMPRESSION_ID_PREFIX = "impression:"


def parse_timestamps(column: pl.Expr) -> pl.Expr:
    """Parse ISO-8601 text to UTC datetimes. Naive values are taken as UTC and bad ones as null."""
    text = column.str.replace(r"Z$", "+00:00").str.replace("T", " ", literal=True)
    aware = text.str.to_datetime(
        format="%Y-%m-%d %H:%M:%S%.f%:z", strict=False, time_unit="us", time_zone="UTC"
    )
    naive = text.str.to_datetime(format="%Y-%m-%d %H:%M:%S%.f", strict=False, time_unit="us")
    return pl.coalesce(aware, naive.dt.replace_time_zone("UTC"))


def conform(frame: pl.DataFrame, source: str) -> pl.DataFrame:
    """Cast a raw table to `EVENT_SCHEMA`, adding absent optional columns as nulls.

    Raises
    ------
    DataError
        When a required column is missing.
    """
    missing = [name for name in REQUIRED_COLUMNS if name not in frame.columns]
    if missing:
        optional = sorted(set(EVENT_SCHEMA) - set(REQUIRED_COLUMNS))
        raise DataError(
            f"{source} lacks required column(s) {missing}; an event log needs "
            f"{list(REQUIRED_COLUMNS)} and may have {optional}"
        )
    expressions = []
    for name, dtype in EVENT_SCHEMA.items():
        if name not in frame.columns:
            expressions.append(pl.lit(None, dtype=dtype).alias(name))
        elif name == "ts":
            expressions.append(_timestamp_expression(frame.schema["ts"]).alias("ts"))
        else:
            expressions.append(pl.col(name).cast(dtype, strict=False).alias(name))
    return frame.select(expressions)


def _timestamp_expression(dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.String:
        return parse_timestamps(pl.col("ts"))
    if isinstance(dtype, pl.Datetime):
        column = pl.col("ts").cast(pl.Datetime("us", dtype.time_zone))
        if dtype.time_zone is None:
            return column.dt.replace_time_zone("UTC")
        return column.dt.convert_time_zone("UTC")
    raise DataError(f"column ts has type {dtype}; store ISO-8601 text or a datetime")


def read_events(paths: str | Path | Iterable[str | Path]) -> pl.DataFrame:
    """Read one or more event logs (.csv, .parquet) into one table in `EVENT_SCHEMA`."""
    if isinstance(paths, str | Path):
        paths = [paths]
    frames = []
    for path in map(Path, paths):
        if not path.is_file():
            raise DataError(f"event log {path} not found; pass --events with a .csv or .parquet")
        if path.suffix == ".parquet":
            raw = pl.read_parquet(path)
        elif path.suffix == ".csv":
            raw = pl.read_csv(path, infer_schema_length=0)
        else:
            raise DataError(f"event log {path} must end in .csv or .parquet")
        frames.append(conform(raw, str(path)))
        logger.info("read %d events from %s", frames[-1].height, path)
    if not frames:
        raise DataError("no event log given; pass --events with at least one file")
    return pl.concat(frames)


def read_impressions(path: str | Path) -> pl.DataFrame:
    """Read the service's SQLite impression log as exposure events in `EVENT_SCHEMA`.

    The log's `user_hash` becomes `user_id`, so the other event logs must use the same hash.
    Sessions are not logged by the service: `assign_sessions` maps each impression to the
    user's session afterwards.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"impression log {path} not found; pass --impressions with a SQLite file")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
        try:
            rows = connection.execute("PRAGMA table_info(impressions)").fetchall()
        except sqlite3.DatabaseError as error:
            raise DataError(f"impression log {path} is not a SQLite database: {error}") from None
        present = {row[1] for row in rows}
        if not present:
            raise DataError(f"impression log {path} has no table 'impressions'")
        needed = {"request_id", "ts", "user_hash", "variant", "placement", "latency_ms"}
        if needed - present:
            raise DataError(
                f"table impressions in {path} lacks column(s) {sorted(needed - present)}"
            )
        cursor = connection.execute(
            "SELECT request_id, ts, user_hash, variant, placement, latency_ms FROM impressions"
        )
        records = cursor.fetchall()
    raw = pl.DataFrame(
        records,
        schema={
            "request_id": pl.String,
            "ts": pl.String,
            "user_id": pl.String,
            "variant": pl.String,
            "placement": pl.String,
            "latency_ms": pl.Float64,
        },
        orient="row",
    )
    raw = raw.with_columns(
        pl.lit("exposure").alias("event_type"),
        (IMPRESSION_ID_PREFIX + pl.col("request_id")).alias("event_id"),
    )
    logger.info("read %d impressions from %s", raw.height, path)
    return conform(raw, str(path))


def merge_impressions(events: pl.DataFrame, impressions: pl.DataFrame) -> tuple[pl.DataFrame, int]:
    """Replace the exposure rows of `events` with the impression log's rows.

    Returns the merged table and the number of exposure rows dropped from `events`.
    """
    is_exposure = pl.col("event_type") == "exposure"
    dropped = events.filter(is_exposure).height
    if dropped:
        logger.warning(
            "dropped %d exposure rows of the event log: the impression log replaces them", dropped
        )
    return pl.concat([events.filter(~is_exposure), impressions]), dropped


def split_invalid(events: pl.DataFrame, variants: Iterable[str]) -> tuple[pl.DataFrame, dict]:
    """Separate rows that break the schema's rules, returning valid rows and counts by reason."""
    variants = list(variants)
    kind = pl.col("event_type")
    reasons = {
        "missing user_id": pl.col("user_id").is_null() | (pl.col("user_id") == ""),
        "missing or unparsable ts": pl.col("ts").is_null(),
        "unknown event_type": ~kind.is_in(EVENT_TYPES) | kind.is_null(),
        "exposure or error without a known variant": kind.is_in(["exposure", "error"])
        & (pl.col("variant").is_null() | ~pl.col("variant").is_in(variants)),
        "purchase without order_id or positive revenue": (kind == "purchase")
        & (
            pl.col("order_id").is_null()
            | pl.col("revenue").is_null()
            | pl.col("revenue").is_nan()
            | (pl.col("revenue") <= 0)
        ),
        "return without order_id": (kind == "return") & pl.col("order_id").is_null(),
        "session without session_id": (kind == "session") & pl.col("session_id").is_null(),
    }
    flags = events.select(
        [expression.fill_null(False).alias(name) for name, expression in reasons.items()]
    )
    counts = {name: int(flags[name].sum()) for name in reasons}
    bad = flags.select(pl.any_horizontal(pl.all())).to_series()
    valid = events.filter(~bad)
    return valid, {name: count for name, count in counts.items() if count}
