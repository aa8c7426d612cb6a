"""Impression log: every served recommendation list, one row per response, in SQLite.

Table `impressions` (the contract read by the pilot readout and the drift reports):

request_id TEXT PRIMARY KEY, ts TEXT (ISO-8601 UTC), user_hash TEXT, variant TEXT,
placement TEXT, endpoint TEXT, model_version TEXT, source TEXT (model | previous_model |
popular | new), k INTEGER, items TEXT (JSON list of {"item_id", "position" (1-based), "score",
"reason"}), latency_ms REAL, cold_items INTEGER (shown items that were cold at training time).

The database runs in WAL mode and every batch is written in one transaction, so a crash loses
at most the rows still queued in memory and never leaves a half-written batch behind.
`ImpressionWriter` buffers rows and writes them from a background thread; a failing disk is
counted and logged and never raised to the caller.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sqlite3
import threading
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl

logger = logging.getLogger("bookrecs.impressions")

DEFAULT_PATH = Path("data/impressions.sqlite")
SOURCES = ("model", "previous_model", "popular", "new")

COLUMNS = (
    "request_id",
    "ts",
    "user_hash",
    "variant",
    "placement",
    "endpoint",
    "model_version",
    "source",
    "k",
    "items",
    "latency_ms",
    "cold_items",
)

CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS impressions (
    request_id TEXT PRIMARY KEY,
    ts TEXT NOT NULL,
    user_hash TEXT NOT NULL,
    variant TEXT,
    placement TEXT,
    endpoint TEXT,
    model_version TEXT,
    source TEXT,
    k INTEGER,
    items TEXT,
    latency_ms REAL,
    cold_items INTEGER
)
"""
CREATE_INDEX = "CREATE INDEX IF NOT EXISTS impressions_ts ON impressions (ts)"
# Only a repeated request_id is skipped; any other constraint failure rolls the batch back.
INSERT = (
    f"INSERT INTO impressions ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' for _ in COLUMNS)}) ON CONFLICT (request_id) DO NOTHING"
)


@dataclass(frozen=True)
class ShownItem:
    """One item of a served list; `position` is 1-based."""

    item_id: str
    position: int
    score: float
    reason: str


@dataclass(frozen=True)
class Impression:
    """One served response, as stored in the `impressions` table."""

    request_id: str
    user_hash: str
    variant: str
    placement: str
    endpoint: str
    model_version: str
    source: str
    k: int
    items: Sequence[ShownItem]
    latency_ms: float
    cold_items: int
    ts: str = field(default_factory=lambda: utc_now())

    def to_row(self) -> tuple[Any, ...]:
        """Return the values in `COLUMNS` order, with `items` serialised as JSON."""
        # Plain attribute access: dataclasses.asdict deep-copies and was a hot spot in profiles.
        items = json.dumps(
            [
                {"item_id": i.item_id, "position": i.position, "score": i.score, "reason": i.reason}
                for i in self.items
            ],
            separators=(",", ":"),
        )
        return (
            self.request_id,
            self.ts,
            self.user_hash,
            self.variant,
            self.placement,
            self.endpoint,
            self.model_version,
            self.source,
            self.k,
            items,
            self.latency_ms,
            self.cold_items,
        )


def utc_now() -> str:
    """Return the current time as an ISO-8601 UTC string with milliseconds."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def hash_user(user_id: str, salt: str) -> str:
    """Return the hex SHA-256 of `salt:user_id`, so the log never stores raw user ids."""
    return hashlib.sha256(f"{salt}:{user_id}".encode()).hexdigest()


def connect(path: str | Path) -> sqlite3.Connection:
    """Open (and create if needed) the impression database at `path` in WAL mode."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, timeout=5.0, check_same_thread=False)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    with connection:
        connection.execute(CREATE_TABLE)
        connection.execute(CREATE_INDEX)
    return connection


def write_impressions(connection: sqlite3.Connection, impressions: Iterable[Impression]) -> int:
    """Insert `impressions` in one transaction; return the number of rows inserted.

    A row whose request_id is already stored is skipped, so a retried batch never duplicates.
    """
    rows = [impression.to_row() for impression in impressions]
    with connection:
        before = connection.total_changes
        connection.executemany(INSERT, rows)
        return connection.total_changes - before


def read_impressions(path: str | Path, since: str | None = None) -> pl.DataFrame:
    """Read the impression log into a DataFrame (columns as in `COLUMNS`, ordered by ts).

    Parameters
    ----------
    path
        SQLite file written by `ImpressionWriter`.
    since
        Keep rows with `ts >= since` (ISO-8601 UTC string) when given.
    """
    path = Path(path)
    schema = {
        "request_id": pl.Utf8,
        "ts": pl.Utf8,
        "user_hash": pl.Utf8,
        "variant": pl.Utf8,
        "placement": pl.Utf8,
        "endpoint": pl.Utf8,
        "model_version": pl.Utf8,
        "source": pl.Utf8,
        "k": pl.Int64,
        "items": pl.Utf8,
        "latency_ms": pl.Float64,
        "cold_items": pl.Int64,
    }
    if not path.exists():
        return pl.DataFrame(schema=schema)
    connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5.0)
    try:
        query = f"SELECT {', '.join(COLUMNS)} FROM impressions"
        params: tuple[str, ...] = ()
        if since is not None:
            query += " WHERE ts >= ?"
            params = (since,)
        rows = connection.execute(query + " ORDER BY ts, request_id", params).fetchall()
    finally:
        connection.close()
    return pl.DataFrame(rows, schema=schema, orient="row")


def _file_id(path: Path) -> tuple[int, int] | None:
    """Return (st_dev, st_ino) of `path`, or None when it does not exist."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


class ImpressionWriter:
    """Append impressions to SQLite from a background thread, never failing the caller.

    `log` only appends the row to an in-memory buffer; it never wakes the writer thread,
    because a thread switch per request cost more than the request itself under load. The
    thread writes the buffer every `flush_interval` seconds, `batch_size` rows per
    transaction. Rows that cannot be buffered (buffer full, writer closed) or written (disk
    error) are counted in `dropped` and logged; `written` counts stored rows.

    Parameters
    ----------
    path
        SQLite file; parent folders are created.
    flush_interval
        Maximum seconds a row waits in memory before it is written.
    batch_size
        Rows written per transaction at most.
    max_queue
        Rows held in memory at most; beyond it new rows are dropped and counted.
    """

    def __init__(
        self,
        path: str | Path = DEFAULT_PATH,
        *,
        flush_interval: float = 0.2,
        batch_size: int = 500,
        max_queue: int = 100_000,
    ) -> None:
        self.path = Path(path)
        self.flush_interval = flush_interval
        self.batch_size = batch_size
        self.max_queue = max_queue
        self.written = 0
        self.dropped = 0
        self.errors = 0
        self.reopened = 0
        # deque.append and popleft are atomic in CPython, so `log` needs no lock.
        self._buffer: deque[Impression] = deque()
        self._drop_lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._stop = threading.Event()
        self._closed = False
        self._connection: sqlite3.Connection | None = None
        # (st_dev, st_ino) of the file the connection writes to, to notice a removed file.
        self._file_id: tuple[int, int] | None = None
        self._thread = threading.Thread(target=self._run, name="impression-writer", daemon=True)
        self._thread.start()

    def log(self, impression: Impression) -> bool:
        """Buffer `impression`; return False (and count it as dropped) when it cannot be."""
        if self._closed:
            self._count_drop(1, "writer is closed")
            return False
        if len(self._buffer) >= self.max_queue:
            self._count_drop(1, f"{self.max_queue} rows are waiting; the disk is too slow")
            return False
        self._buffer.append(impression)
        return True

    def flush(self) -> None:
        """Write every buffered row now, in the caller's thread."""
        with self._write_lock:
            while self._buffer:
                batch = []
                while self._buffer and len(batch) < self.batch_size:
                    batch.append(self._buffer.popleft())
                self._write(batch)

    def close(self, timeout: float = 5.0) -> None:
        """Write what is buffered, stop the thread and close the database."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            logger.error("impression writer still busy after %.1f s; closing anyway", timeout)

    def stats(self) -> dict[str, int]:
        """Return counters: written, dropped, errors and buffered rows."""
        return {
            "written": self.written,
            "dropped": self.dropped,
            "errors": self.errors,
            "reopened": self.reopened,
            "queued": len(self._buffer),
        }

    def _run(self) -> None:
        while not self._stop.wait(self.flush_interval):
            self.flush()
        self.flush()
        with self._write_lock:
            self._close_connection()

    def _write(self, batch: list[Impression]) -> None:
        try:
            if self._connection is not None and self._file_id != _file_id(self.path):
                # SQLite keeps writing to a deleted file through the open descriptor, so the
                # rows would be lost without an error: start a new file instead.
                self.reopened += 1
                logger.warning(
                    "impression log %s was removed or replaced while open; creating it again "
                    "(reopen #%d, %d rows written before)",
                    self.path,
                    self.reopened,
                    self.written,
                )
                self._close_connection()
            if self._connection is None:
                self._connection = connect(self.path)
                self._file_id = _file_id(self.path)
            write_impressions(self._connection, batch)
        except (sqlite3.Error, OSError) as error:
            self.errors += 1
            self._count_drop(len(batch), f"write to {self.path} failed: {error}")
            self._close_connection()
            return
        self.written += len(batch)

    def _close_connection(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
            self._file_id = None

    def _count_drop(self, rows: int, reason: str) -> None:
        with self._drop_lock:
            self.dropped += rows
            dropped = self.dropped
        # One line per failure burst: the first drop and then every 1,000th.
        if dropped == rows or dropped // 1000 != (dropped - rows) // 1000:
            logger.error("dropped %d impression rows (%d in total): %s", rows, dropped, reason)
