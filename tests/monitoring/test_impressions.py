"""Reading the service's impression log."""

from __future__ import annotations

import json
import sqlite3
from datetime import timedelta

import numpy as np
import pytest

from bookrecs.exceptions import DataError
from monitoring.impressions import REASON_BAD_ITEMS, REASON_BAD_TS, read_impressions
from monitoring.simulate import CUT, write_impression_log
from monitoring.windows import Window


@pytest.fixture
def log_path(tmp_path):
    return write_impression_log(tmp_path / "log.sqlite", 20, np.random.default_rng(0), k=5)


def add_row(path, request_id: str, ts: str, items: str) -> None:
    with sqlite3.connect(path) as connection:
        connection.execute(
            "INSERT INTO impressions VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (request_id, ts, "h", "A", "home", "/recommend", "v1", "model", 5, items, 10.0, 0),
        )


def test_reads_requests_and_slots(log_path):
    log = read_impressions(log_path)
    assert log.requests.height == 20
    assert log.slots.height == 100
    assert log.slots["position"].min() == 1


def test_window_keeps_inside_rows(log_path):
    log = read_impressions(log_path, Window("current", CUT, CUT + timedelta(minutes=5)))
    assert log.requests.height == 5
    assert log.slots.height == 25


def test_bad_rows_counted(log_path):
    add_row(log_path, "bad-ts", "yesterday", json.dumps([{"item_id": "b1", "position": 1}]))
    add_row(log_path, "bad-json", "2020-04-01T00:00:00Z", "[{")
    add_row(log_path, "no-id", "2020-04-01T00:00:00Z", json.dumps([{"position": 1}]))
    log = read_impressions(log_path)
    assert log.requests.height == 20
    assert log.dropped[REASON_BAD_TS] == 1
    assert log.dropped[REASON_BAD_ITEMS] == 2


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_impressions(tmp_path / "absent.sqlite")


def test_missing_table(tmp_path):
    path = tmp_path / "other.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE other (x TEXT)")
    with pytest.raises(DataError, match="no table 'impressions'"):
        read_impressions(path)


def test_missing_column(tmp_path):
    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE impressions (request_id TEXT, ts TEXT, items TEXT)")
    with pytest.raises(DataError, match="lacks columns"):
        read_impressions(path)


def test_not_sqlite(tmp_path):
    path = tmp_path / "text.sqlite"
    path.write_text("not a database " * 100)
    with pytest.raises(DataError, match="not a readable SQLite file"):
        read_impressions(path)


def test_reads_service_writer(tmp_path):
    from bookrecs.impressions import Impression, ShownItem, connect, write_impressions

    path = tmp_path / "service.sqlite"
    connection = connect(path)
    shown = [ShownItem(item_id=f"b{i}", position=i, score=1.0, reason="popular") for i in (1, 2)]
    impressions = [
        Impression("r1", "h1", "A", "home", "/recommend", "v1", "model", 2, shown, 12.5, 1),
        Impression("r2", "h2", "B", "home", "/recommend", "v1", "popular", 2, shown, 30.0, 0),
    ]
    write_impressions(connection, impressions)
    log = read_impressions(path)
    connection.close()
    assert log.requests["source"].to_list() == ["model", "popular"]
    assert log.requests["cold_items"].sum() == 1
    assert log.slots.height == 4
    assert not log.dropped
