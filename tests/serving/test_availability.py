"""Availability table: parsing, bad rows, refresh on change and masks."""

from __future__ import annotations

import os

import numpy as np
import pytest

from bookrecs.availability import AvailabilityTable, read_availability
from bookrecs.exceptions import DataError
from bookrecs.interactions import IdMap


def test_read_counts_bad_rows(tmp_path):
    path = tmp_path / "availability.csv"
    path.write_text("item_id,available\nb1,false\nb2,yes\n,false\nb3,maybe\nb4,0\nb2,no\n")
    unavailable, report = read_availability(path)
    assert unavailable == {"b1", "b2", "b4"}
    assert report.rows == 6
    assert report.skipped == {"empty item_id": 1, "available is not true/false": 1}


def test_read_missing_column(tmp_path):
    path = tmp_path / "availability.csv"
    path.write_text("item_id,stock\nb1,0\n")
    with pytest.raises(DataError, match="available"):
        read_availability(path)


def test_refresh_on_change(tmp_path):
    path = tmp_path / "availability.csv"
    path.write_text("item_id,available\nb1,false\n")
    table = AvailabilityTable(path)
    assert table.unavailable == {"b1"}
    assert not table.refresh()

    path.write_text("item_id,available\nb1,true\nb2,false\n")
    os.utime(path, (1, 1))
    assert table.refresh()
    assert table.unavailable == {"b2"}


def test_broken_file_keeps_last_table(tmp_path):
    path = tmp_path / "availability.csv"
    path.write_text("item_id,available\nb1,false\n")
    table = AvailabilityTable(path)
    path.write_text("wrong\n")
    os.utime(path, (2, 2))
    assert not table.refresh()
    assert table.unavailable == {"b1"}


def test_mask_follows_version():
    items = IdMap(np.array(["b1", "b2", "b3"], dtype=object))
    table = AvailabilityTable()
    assert table.mask(items).tolist() == [False, False, False]
    table.set_unavailable(["b3", "unknown"])
    assert table.mask(items).tolist() == [False, False, True]
