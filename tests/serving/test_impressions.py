"""Impression log: round trip, WAL mode, duplicates and a failing disk."""

from __future__ import annotations

import json
import logging
import shutil
import sqlite3

from bookrecs.impressions import (
    COLUMNS,
    Impression,
    ImpressionWriter,
    ShownItem,
    connect,
    hash_user,
    read_impressions,
    write_impressions,
)


def impression(request_id: str, ts: str = "2026-01-01T00:00:00.000+00:00") -> Impression:
    return Impression(
        request_id=request_id,
        user_hash=hash_user("u1", "salt"),
        variant="control",
        placement="home",
        endpoint="recommend",
        model_version="bookrecs:v1",
        source="model",
        k=2,
        items=[ShownItem("b1", 1, 0.5, "same author"), ShownItem("b2", 2, 0.25, "new")],
        latency_ms=1.5,
        cold_items=1,
        ts=ts,
    )


def test_writer_round_trip(tmp_path):
    path = tmp_path / "log" / "impressions.sqlite"
    writer = ImpressionWriter(path, flush_interval=0.01)
    assert writer.log(impression("r1"))
    assert writer.log(impression("r2", ts="2026-01-02T00:00:00.000+00:00"))
    writer.close()

    table = read_impressions(path)
    assert table.columns == list(COLUMNS)
    assert table["request_id"].to_list() == ["r1", "r2"]
    items = json.loads(table["items"][0])
    assert items[1] == {"item_id": "b2", "position": 2, "score": 0.25, "reason": "new"}
    assert writer.stats()["written"] == 2
    assert read_impressions(path, since="2026-01-02")["request_id"].to_list() == ["r2"]


def test_database_uses_wal(tmp_path):
    connection = connect(tmp_path / "i.sqlite")
    mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    connection.close()
    assert mode == "wal"


def test_duplicate_request_id_skipped(tmp_path):
    connection = connect(tmp_path / "i.sqlite")
    assert write_impressions(connection, [impression("r1")]) == 1
    assert write_impressions(connection, [impression("r1"), impression("r2")]) == 1
    connection.close()
    assert read_impressions(tmp_path / "i.sqlite").height == 2


def test_unwritable_path_counts_drops(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    writer = ImpressionWriter(blocker / "impressions.sqlite", flush_interval=0.01)
    assert writer.log(impression("r1"))
    writer.flush()
    writer.close()
    stats = writer.stats()
    assert stats["dropped"] == 1
    assert stats["errors"] == 1
    assert stats["written"] == 0


def test_log_after_close_is_dropped(tmp_path):
    writer = ImpressionWriter(tmp_path / "i.sqlite")
    writer.close()
    assert not writer.log(impression("r1"))
    assert writer.stats()["dropped"] == 1


def test_read_missing_file_is_empty(tmp_path):
    table = read_impressions(tmp_path / "absent.sqlite")
    assert table.height == 0
    assert table.columns == list(COLUMNS)


def test_failed_batch_leaves_no_rows(tmp_path):
    connection = connect(tmp_path / "i.sqlite")
    bad = impression("r2")
    object.__setattr__(bad, "user_hash", None)  # violates NOT NULL in the middle of a batch
    try:
        write_impressions(connection, [impression("r1"), bad])
    except sqlite3.IntegrityError:
        pass
    connection.close()
    assert read_impressions(tmp_path / "i.sqlite").height == 0


def test_hash_user_is_salted():
    assert hash_user("u1", "a") != hash_user("u1", "b")
    assert len(hash_user("u1", "a")) == 64


def test_removed_log_is_recreated(tmp_path, caplog):
    folder = tmp_path / "log"
    path = folder / "impressions.sqlite"
    writer = ImpressionWriter(path, flush_interval=60)
    writer.log(impression("r1"))
    writer.flush()
    assert read_impressions(path).height == 1

    shutil.rmtree(folder)
    with caplog.at_level(logging.WARNING, logger="bookrecs.impressions"):
        for number in range(2, 5):
            writer.log(impression(f"r{number}"))
        writer.flush()
    assert path.exists()
    assert read_impressions(path)["request_id"].to_list() == ["r2", "r3", "r4"]
    stats = writer.stats()
    assert stats["written"] == 4
    assert stats["dropped"] == 0
    assert stats["reopened"] == 1
    assert any("was removed or replaced" in r.getMessage() for r in caplog.records)
    writer.close()


def test_replaced_log_is_reopened(tmp_path):
    path = tmp_path / "impressions.sqlite"
    writer = ImpressionWriter(path, flush_interval=60)
    writer.log(impression("r1"))
    writer.flush()
    path.rename(tmp_path / "old.sqlite")
    writer.log(impression("r2"))
    writer.flush()
    assert read_impressions(path)["request_id"].to_list() == ["r2"]
    writer.close()
