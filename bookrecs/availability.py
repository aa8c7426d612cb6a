"""Availability table: which books may be shown right now.

Every book is available unless the table says otherwise. The table is a CSV or Parquet file
with columns `item_id` and `available` (true/false, 1/0, yes/no). `AvailabilityTable.refresh`
re-reads the file when its modification time changes, so a running service picks up edits
without a restart; a file that cannot be read keeps the previous table in force.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from bookrecs.columns import ITEM_ID
from bookrecs.exceptions import DataError
from bookrecs.interactions import IdMap

logger = logging.getLogger("bookrecs.availability")

AVAILABLE = "available"
TRUE_VALUES = {"true", "1", "yes", "y", "t"}
FALSE_VALUES = {"false", "0", "no", "n", "f"}


@dataclass
class AvailabilityReport:
    """Rows read from the availability file and rows skipped, by reason."""

    rows: int = 0
    unavailable: int = 0
    skipped: dict[str, int] = field(default_factory=dict)


def read_availability(path: str | Path) -> tuple[frozenset[str], AvailabilityReport]:
    """Read the ids of unavailable books from a CSV or Parquet availability file.

    Rows with an empty item_id or an `available` value that is not a boolean word are
    skipped and counted in the report; the last row wins for a repeated item_id.

    Raises
    ------
    DataError
        When the file is missing, unreadable or lacks the `item_id` or `available` column.
    """
    path = Path(path)
    try:
        if path.suffix in {".parquet", ".pq"}:
            table = pl.read_parquet(path)
        else:
            table = pl.read_csv(path, infer_schema=False)
    except (OSError, pl.exceptions.PolarsError) as error:
        raise DataError(f"cannot read availability file {path}: {error}") from None
    missing = {ITEM_ID, AVAILABLE} - set(table.columns)
    if missing:
        raise DataError(
            f"availability file {path} lacks column(s) {sorted(missing)}: "
            f"it needs `{ITEM_ID}` and `{AVAILABLE}`"
        )

    ids = table[ITEM_ID].cast(pl.Utf8).str.strip_chars()
    flags = table[AVAILABLE].cast(pl.Utf8).str.strip_chars().str.to_lowercase()
    report = AvailabilityReport(rows=table.height)
    state: dict[str, bool] = {}
    for item_id, flag in zip(ids.to_list(), flags.to_list(), strict=True):
        if not item_id:
            report.skipped["empty item_id"] = report.skipped.get("empty item_id", 0) + 1
        elif flag in TRUE_VALUES:
            state[item_id] = True
        elif flag in FALSE_VALUES:
            state[item_id] = False
        else:
            reason = "available is not true/false"
            report.skipped[reason] = report.skipped.get(reason, 0) + 1
    unavailable = frozenset(item for item, available in state.items() if not available)
    report.unavailable = len(unavailable)
    return unavailable, report


class AvailabilityTable:
    """Thread-safe set of unavailable book ids, optionally backed by a file.

    Parameters
    ----------
    path
        Availability file; None means every book is available until `set_unavailable`.
    """

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else None
        self.version = 0
        self._unavailable: frozenset[str] = frozenset()
        self._mtime: float | None = None
        self._lock = threading.Lock()
        self._masks: dict[int, tuple[int, IdMap, np.ndarray]] = {}
        if self.path is not None:
            self.refresh()

    @property
    def unavailable(self) -> frozenset[str]:
        return self._unavailable

    def set_unavailable(self, item_ids: Iterable[str]) -> None:
        """Replace the set of unavailable books (used without a file, and by tests)."""
        with self._lock:
            self._unavailable = frozenset(str(item) for item in item_ids)
            self.version += 1

    def refresh(self) -> bool:
        """Re-read the file when it changed; return True when the table changed.

        A missing or unreadable file is logged and the previous table stays in force.
        """
        if self.path is None:
            return False
        try:
            mtime = self.path.stat().st_mtime
        except OSError:
            if self._mtime is not None:
                logger.warning("availability file %s is gone; keeping the last table", self.path)
                self._mtime = None
            return False
        if mtime == self._mtime:
            return False
        try:
            unavailable, report = read_availability(self.path)
        except DataError as error:
            logger.error("%s; keeping the last availability table", error)
            self._mtime = mtime
            return False
        with self._lock:
            self._unavailable = unavailable
            self._mtime = mtime
            self.version += 1
        logger.info(
            "availability from %s: %d rows, %d unavailable, skipped %s",
            self.path,
            report.rows,
            report.unavailable,
            report.skipped or "none",
        )
        return True

    def mask(self, items: IdMap) -> np.ndarray:
        """Return a boolean mask over `items`: True where the book is unavailable.

        The mask is cached per id map and table version, so serving pays for it once per
        change of the table or the model.
        """
        key = id(items)
        cached = self._masks.get(key)
        if cached is not None and cached[0] == self.version and cached[1] is items:
            return cached[2]
        version, unavailable = self.version, self._unavailable
        mask = np.zeros(len(items), dtype=bool)
        if unavailable:
            indices = items.index(np.array(sorted(unavailable), dtype=object))
            mask[indices[indices >= 0]] = True
        if len(self._masks) > 8:
            self._masks.clear()
        self._masks[key] = (version, items, mask)
        return mask
