"""Read the service's impression log (SQLite table `impressions`) into polars tables.

The table layout is the one the service writes: request_id, ts (ISO-8601 UTC), user_hash,
variant, placement, endpoint, model_version, source, k, items (JSON list of objects with
item_id, position, score, reason), latency_ms, cold_items.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import polars as pl

from bookrecs.exceptions import DataError
from monitoring.windows import Window

logger = logging.getLogger("bookrecs.monitoring")

TABLE = "impressions"
REQUIRED_COLUMNS = ("request_id", "ts", "source", "items", "latency_ms", "cold_items")
MODEL_SOURCE = "model"

REASON_BAD_TS = "ts is not an ISO-8601 time"
REASON_BAD_ITEMS = "items is not a JSON list of objects with item_id"


@dataclass
class ImpressionLog:
    """Requests and shown items of one time window, with the rows that could not be read.

    requests: request_id, ts, source, latency_ms, cold_items, shown (items in the response).
    slots: request_id, item_id, position (1-based), one row per shown item.
    """

    requests: pl.DataFrame
    slots: pl.DataFrame
    dropped: Counter = field(default_factory=Counter)

    @property
    def is_empty(self) -> bool:
        return self.requests.is_empty()


def read_impressions(path: str | Path, window: Window | None = None) -> ImpressionLog:
    """Read the impression log at `path`, keeping requests inside `window` when given.

    Rows with an unreadable `ts` or `items` value are dropped and counted by reason in
    `ImpressionLog.dropped` (and logged), never silently.

    Raises
    ------
    DataError
        If the file is missing, is not SQLite, or lacks the table or a required column.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(
            f"impression log {path} not found: pass --impressions with the service's file"
        )
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as connection:
            columns = [row[1] for row in connection.execute(f"PRAGMA table_info({TABLE})")]
            _check_columns(path, columns)
            rows = connection.execute(
                f"SELECT {', '.join(REQUIRED_COLUMNS)} FROM {TABLE}"  # noqa: S608
            ).fetchall()
    except sqlite3.DatabaseError as error:
        raise DataError(f"impression log {path} is not a readable SQLite file: {error}") from None

    log = _parse_rows(rows)
    if log.dropped:
        for reason, count in sorted(log.dropped.items()):
            logger.warning("dropped %d impression rows from %s: %s", count, path, reason)
    if window is not None:
        log = select_window(log, window)
    logger.info(
        "read %d requests and %d shown items from %s", log.requests.height, log.slots.height, path
    )
    return log


def _check_columns(path: Path, columns: list[str]) -> None:
    if not columns:
        raise DataError(
            f"impression log {path} has no table {TABLE!r}: point --impressions at the file "
            "the service writes"
        )
    missing = [name for name in REQUIRED_COLUMNS if name not in columns]
    if missing:
        raise DataError(
            f"table {TABLE!r} in {path} lacks columns {missing}: the log was written by an "
            "incompatible service version"
        )


def _parse_rows(rows: list[tuple]) -> ImpressionLog:
    dropped: Counter = Counter()
    requests: list[dict] = []
    slots: list[dict] = []
    for request_id, ts, source, items, latency_ms, cold_items in rows:
        moment = _parse_ts(ts)
        if moment is None:
            dropped[REASON_BAD_TS] += 1
            continue
        shown = _parse_items(items)
        if shown is None:
            dropped[REASON_BAD_ITEMS] += 1
            continue
        requests.append(
            {
                "request_id": str(request_id),
                "ts": moment,
                "source": str(source),
                "latency_ms": None if latency_ms is None else float(latency_ms),
                "cold_items": int(cold_items or 0),
                "shown": len(shown),
            }
        )
        slots.extend(
            {"request_id": str(request_id), "item_id": item_id, "position": position}
            for position, item_id in shown
        )
    return ImpressionLog(
        requests=pl.DataFrame(
            requests,
            schema={
                "request_id": pl.Utf8,
                "ts": pl.Datetime("us", "UTC"),
                "source": pl.Utf8,
                "latency_ms": pl.Float64,
                "cold_items": pl.Int64,
                "shown": pl.Int64,
            },
        ),
        slots=pl.DataFrame(
            slots, schema={"request_id": pl.Utf8, "item_id": pl.Utf8, "position": pl.Int64}
        ),
        dropped=dropped,
    )


def _parse_ts(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def _parse_items(value: object) -> list[tuple[int, str]] | None:
    try:
        items = json.loads(value) if isinstance(value, str) else None
    except json.JSONDecodeError:
        return None
    if not isinstance(items, list):
        return None
    shown = []
    for index, item in enumerate(items, start=1):
        if not isinstance(item, dict) or item.get("item_id") in (None, ""):
            return None
        position = item.get("position", index)
        shown.append((int(position) if isinstance(position, int) else index, str(item["item_id"])))
    return shown


def select_window(log: ImpressionLog, window: Window) -> ImpressionLog:
    """Keep the requests of `log` inside `window` and the items they showed."""
    requests = log.requests.filter((pl.col("ts") >= window.start) & (pl.col("ts") < window.end))
    slots = log.slots.join(requests.select("request_id"), on="request_id", how="semi")
    return ImpressionLog(requests=requests, slots=slots, dropped=log.dropped)
