"""The Evidently HTML report: written, self-contained, consistent with the checks."""

from __future__ import annotations

import json

import numpy as np
import pytest

from monitoring import report
from monitoring.config import DriftConfig
from monitoring.drift import analyse
from monitoring.impressions import read_impressions
from monitoring.simulate import CUT, END, START, books_table, two_windows, write_impression_log
from monitoring.windows import Window

REFERENCE = Window("reference", START, CUT)
CURRENT = Window("current", CUT, END)


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """Render one report with every section (ratings shifted, popular-only impressions)."""
    out = tmp_path_factory.mktemp("report")
    config = DriftConfig.from_yaml()
    rng = np.random.default_rng(4)
    books = books_table(800, rng)
    # Current reading spreads over 800 books, so about half of the catalogue is new.
    interactions = two_windows(1, rating_shift=1, n_books=800)
    path = write_impression_log(out / "log.sqlite", 200, rng, popular_only=True)
    log = read_impressions(path, CURRENT)
    summary = analyse(interactions, books, REFERENCE, CURRENT, config, log)
    sections, notes = report.build_sections(interactions, books, summary, config, log)
    paths = report.write_outputs(summary, out / "2020-05-01", sections, config)
    return summary, sections, notes, paths


def test_outputs_written(written):
    _, _, _, paths = written
    assert sorted(paths) == ["html", "json", "text"]
    for path in paths.values():
        assert path.stat().st_size > 0


def test_html_needs_no_network(written):
    _, _, _, paths = written
    page = paths["html"].read_text(encoding="utf-8")
    assert report.external_resources(page) == []
    assert "<script" in page


def test_html_has_verdict_and_sections(written):
    summary, sections, _, paths = written
    page = paths["html"].read_text(encoding="utf-8")
    assert "verdict: retraining recommended" in page
    for section in sections:
        assert json.dumps(section.title)[1:-1] in page


def test_all_sections_rendered(written):
    _, sections, notes, _ = written
    assert len(sections) == 7, notes


def test_summary_json_matches(written):
    summary, _, _, paths = written
    record = json.loads(paths["json"].read_text())
    assert record["verdict"] == "retrain"
    assert record["exit_code"] == 3
    assert "rating_distribution" in record["drifted"]
    assert record["html_remote_resources"] == []


def test_evidently_agrees_with_checks(written):
    summary, _, _, paths = written
    columns = {item["column"]: item for item in json.loads(paths["json"].read_text())["evidently"]}
    checks = {check.name: check for check in summary.checks}
    assert columns["rating"]["score"] == pytest.approx(checks["rating_distribution"].effect)
    assert columns["interactions_per_user_week"]["score"] == pytest.approx(
        checks["user_activity"].effect
    )
    assert columns["rating"]["drifted"] is True


def test_text_lines_written(written):
    summary, _, _, paths = written
    assert paths["text"].read_text().splitlines() == summary.lines()


def test_remote_script_detected():
    page = '<html><head><script src="https://cdn.example.org/x.js"></script></head></html>'
    assert report.external_resources(page) == ["https://cdn.example.org/x.js"]


def test_remote_stylesheet_detected():
    page = '<link rel="stylesheet" href="//fonts.example.org/a.css"><a href="https://x.org">x</a>'
    assert report.external_resources(page) == ["//fonts.example.org/a.css"]


def test_empty_columns_left_out():
    config = DriftConfig.from_yaml()
    rng = np.random.default_rng(6)
    books = books_table(800, rng).with_columns(year=None)
    interactions = two_windows(2, n_books=800)
    summary = analyse(interactions, books, REFERENCE, CURRENT, config)
    sections, _ = report.build_sections(interactions, books, summary, config)
    new_books = [section for section in sections if section.title.startswith("New books: lang")]
    assert len(new_books) == 1
    assert new_books[0].numerical == []
    assert list(new_books[0].current.columns) == ["language"]


def test_no_sections_writes_summary(tmp_path):
    config = DriftConfig.from_yaml()
    empty = Window("current", END, END.replace(year=2021))
    interactions = two_windows(2)
    summary = analyse(interactions, None, REFERENCE, empty, config)
    sections, notes = report.build_sections(interactions, None, summary, config)
    paths = report.write_outputs(summary, tmp_path, sections, config)
    assert sections == []
    assert len(notes) == 3
    assert "html" not in paths
    assert json.loads(paths["json"].read_text())["verdict"] == "insufficient_data"


def test_remote_css_detected():
    page = "<style>@import 'https://fonts.example.org/a.css'; b {background: url(/x.png)}</style>"
    assert report.external_resources(page) == ["https://fonts.example.org/a.css"]
