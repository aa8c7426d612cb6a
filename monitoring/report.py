"""Render the drift report with Evidently 0.7 and write it with the JSON summary and text lines.

This is the only module that imports Evidently (about 3 s to import). Each section compares
one table (interactions, user-weeks, books, shown items) with `DataDriftPreset`. The sections
are joined into one HTML file whose scripts are inlined, so it opens offline.
"""

from __future__ import annotations

import html
import json
import logging
import re
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pandas as pd
import polars as pl

from bookrecs.columns import IS_READ, ITEM_ID, LANGUAGE, YEAR
from monitoring import features
from monitoring.config import DriftConfig
from monitoring.drift import DriftSummary
from monitoring.impressions import ImpressionLog
from monitoring.windows import select

logger = logging.getLogger("bookrecs.monitoring")

HTML_NAME = "drift_report.html"
JSON_NAME = "summary.json"
TEXT_NAME = "summary.txt"


@dataclass
class Section:
    """One pair of tables compared in the HTML report (reference None: current only)."""

    title: str
    reference: pd.DataFrame | None
    current: pd.DataFrame
    numerical: list[str]
    categorical: list[str]


def build_sections(
    interactions: pl.DataFrame,
    books: pl.DataFrame | None,
    summary: DriftSummary,
    config: DriftConfig,
    impressions: ImpressionLog | None = None,
) -> tuple[list[Section], list[str]]:
    """Build the tables of every section, and a note for each section left out as too small."""
    reference = select(interactions, summary.reference)
    current = select(interactions, summary.current)
    profile = features.build_profile(reference, config.head_share, config.seed)
    candidates = [
        Section(
            "Interactions: ratings (0 = unrated) and is_read",
            _interaction_table(reference),
            _interaction_table(current),
            numerical=[],
            categorical=["rating", IS_READ],
        ),
        Section(
            "User activity: interactions per active user and week",
            pd.DataFrame({"interactions_per_user_week": features.user_week_activity(reference)}),
            pd.DataFrame({"interactions_per_user_week": features.user_week_activity(current)}),
            numerical=["interactions_per_user_week"],
            categorical=[],
        ),
        Section(
            "Item popularity: reference popularity position of each interaction's book "
            "(0 = most popular, 1 = absent from the reference)",
            _position_table(profile.holdout[ITEM_ID], profile),
            _position_table(current[ITEM_ID], profile),
            numerical=[features.POSITION],
            categorical=[],
        ),
    ]
    candidates += _book_sections(books, reference, current)
    candidates += _impression_sections(impressions, profile)

    sections, notes = [], []
    for section in candidates:
        kept = _keep_filled_columns(section, config.min_sample)
        if kept is None:
            notes.append(
                f"section '{section.title}' left out: fewer than {config.min_sample} "
                "non-missing values on one side"
            )
        else:
            sections.append(kept)
    return sections, notes


def _keep_filled_columns(section: Section, minimum: int) -> Section | None:
    """Drop columns with fewer than `minimum` non-missing values on a side; None if none remain."""
    tables = [section.current] + ([] if section.reference is None else [section.reference])
    filled = [
        column
        for column in section.numerical + section.categorical
        if all(table[column].notna().sum() >= minimum for table in tables)
    ]
    if not filled:
        return None
    return Section(
        section.title,
        None if section.reference is None else section.reference[filled],
        section.current[filled],
        numerical=[column for column in section.numerical if column in filled],
        categorical=[column for column in section.categorical if column in filled],
    )


def _interaction_table(frame: pl.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "rating": features.rating_levels(frame).to_list(),
            IS_READ: frame[IS_READ].cast(pl.Utf8).to_list(),
        }
    )


def _position_table(item_ids: pl.Series, profile: features.ReferenceProfile) -> pd.DataFrame:
    return pd.DataFrame({features.POSITION: features.popularity_position(item_ids, profile)})


def _book_sections(
    books: pl.DataFrame | None, reference: pl.DataFrame, current: pl.DataFrame
) -> list[Section]:
    if books is None or books.is_empty():
        return []
    reference_books = features.book_metadata(books, reference[ITEM_ID].unique())
    new_books = features.book_metadata(books, features.new_books(reference, current))

    def table(metadata: pl.DataFrame) -> pd.DataFrame:
        return pd.DataFrame(
            {
                LANGUAGE: metadata[LANGUAGE].fill_null(features.UNKNOWN).to_list(),
                YEAR: metadata[YEAR].cast(pl.Float64).to_list(),
            }
        )

    return [
        Section(
            "New books: language and year (books in the reference against new books)",
            table(reference_books),
            table(new_books),
            numerical=[YEAR],
            categorical=[LANGUAGE],
        ),
        Section(
            "New books: shelves (one row per book and shelf)",
            pd.DataFrame({"shelf": features.shelves(reference_books).to_list()}),
            pd.DataFrame({"shelf": features.shelves(new_books).to_list()}),
            numerical=[],
            categorical=["shelf"],
        ),
    ]


def _impression_sections(
    impressions: ImpressionLog | None, profile: features.ReferenceProfile
) -> list[Section]:
    if impressions is None or impressions.is_empty:
        return []
    requests = impressions.requests
    return [
        Section(
            "Model output: reference popularity position of shown books against reference reading",
            _position_table(profile.holdout[ITEM_ID], profile),
            _position_table(impressions.slots[ITEM_ID], profile),
            numerical=[features.POSITION],
            categorical=[],
        ),
        Section(
            "Serving: latency and source of each logged request (current window only)",
            None,
            pd.DataFrame(
                {
                    "latency_ms": requests["latency_ms"].to_list(),
                    "source": requests["source"].to_list(),
                    "cold_items": requests["cold_items"].to_list(),
                }
            ),
            numerical=["latency_ms", "cold_items"],
            categorical=["source"],
        ),
    ]


def render_html(
    sections: list[Section], summary: DriftSummary, config: DriftConfig, path: Path
) -> list[dict[str, Any]]:
    """Run Evidently on every section, write one HTML file, and return column drift results.

    Each returned record has section, column, method, threshold, score and drifted (by
    Evidently's own test of that column, without the significance gate of the summary).
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.core.report import Snapshot
    from evidently.core.serialization import ReportModel, SnapshotModel
    from evidently.legacy.renderers.html_widgets import group_widget
    from evidently.presets import DataDriftPreset, DataSummaryPreset

    widgets, metric_results, top_level, columns = [], {}, [], []
    for section in sections:
        definition = DataDefinition(
            numerical_columns=section.numerical, categorical_columns=section.categorical
        )
        current = Dataset.from_pandas(section.current, data_definition=definition)
        if section.reference is None:
            snapshot = Report([DataSummaryPreset()]).run(current, None)
        else:
            preset = DataDriftPreset(
                num_method=config.evidently.num_method,
                num_threshold=config.evidently.num_threshold,
                cat_method=config.evidently.cat_method,
                cat_threshold=config.evidently.cat_threshold,
            )
            reference = Dataset.from_pandas(section.reference, data_definition=definition)
            snapshot = Report([preset], include_tests=True).run(current, reference)
            columns += _column_drift(section.title, snapshot.dict())
        model = snapshot.to_snapshot_model()
        widgets.append(
            group_widget(title=section.title, widgets=model.widgets + model.tests_widgets)
        )
        metric_results.update(model.metric_results)
        top_level += model.top_level_metrics
        logger.debug("rendered section %r", section.title)

    combined = SnapshotModel(
        report=ReportModel(items=[]),
        name="BookRecs drift report",
        timestamp=summary.created_at.replace(tzinfo=None),
        metadata={},
        tags=[],
        metric_results=metric_results,
        top_level_metrics=top_level,
        widgets=widgets,
        tests_widgets=[],
    )
    page = Snapshot.load_model(combined).get_html_str(as_iframe=False)
    path.write_text(_with_header(page, summary), encoding="utf-8")
    return columns


def _column_drift(title: str, result: dict[str, Any]) -> list[dict[str, Any]]:
    status = {
        test["metric_config"]["metric_id"]: test["status"]
        for test in result["tests"]
        if test.get("metric_config")
    }
    records = []
    for metric in result["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        records.append(
            {
                "section": title,
                "column": config["column"],
                "method": config.get("method"),
                "threshold": config.get("threshold"),
                "score": metric["value"],
                "drifted": status.get(metric["id"]) == "FAIL",
            }
        )
    return records


def _with_header(page: str, summary: DriftSummary) -> str:
    """Insert the verdict and check lines at the top of the Evidently page body."""
    lines = "\n".join(html.escape(line) for line in summary.lines())
    header = (
        '<div style="font-family: monospace; white-space: pre-wrap; padding: 16px; '
        'border-bottom: 1px solid #ccc">'
        f"<h2>BookRecs drift report</h2>{lines}</div>"
    )
    marker = "<body>"
    if marker not in page:
        return header + page
    return page.replace(marker, marker + header, 1)


class _ResourceFinder(HTMLParser):
    """Collect URLs that a browser would fetch while loading the page."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self._in_style = False

    def handle_endtag(self, tag: str) -> None:
        if tag == "style":
            self._in_style = False

    def handle_data(self, data: str) -> None:
        if self._in_style:
            self.urls += [url for url in _CSS_URL.findall(data) if _is_remote(url)]

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        self._in_style = tag == "style"
        fetched = {"script": "src", "img": "src", "iframe": "src", "source": "src", "embed": "src"}
        if tag in fetched and _is_remote(values.get(fetched[tag])):
            self.urls.append(values[fetched[tag]] or "")
        if tag == "link" and _is_remote(values.get("href")):
            self.urls.append(values.get("href") or "")


_CSS_URL = re.compile(r"""(?:url\(\s*|@import\s+)["']?([^"')\s;]+)""")


def _is_remote(url: str | None) -> bool:
    return bool(url) and url.strip().lower().startswith(("http://", "https://", "//"))


def external_resources(page: str) -> list[str]:
    """Return the remote URLs that `page` loads: script, link, img and iframe sources, and
    `url()` or `@import` in style elements.

    Links a reader may click (`<a href>`) are not loads and are not returned. Scripts that
    Evidently 0.7 inlines are not scanned for run-time fetches.
    """
    finder = _ResourceFinder()
    finder.feed(page)
    return finder.urls


def write_outputs(
    summary: DriftSummary,
    out_dir: Path,
    sections: list[Section] | None = None,
    config: DriftConfig | None = None,
) -> dict[str, Path]:
    """Write summary.json, summary.txt and (given sections) drift_report.html into `out_dir`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / JSON_NAME, "text": out_dir / TEXT_NAME}
    record = summary.to_dict()
    # The decision is written before Evidently runs, so a rendering failure cannot lose it.
    paths["json"].write_text(json.dumps(record, indent=2, default=str) + "\n")
    paths["text"].write_text("\n".join(summary.lines()) + "\n")
    if sections and config is not None:
        paths["html"] = out_dir / HTML_NAME
        record["evidently"] = render_html(sections, summary, config, paths["html"])
        remote = external_resources(paths["html"].read_text(encoding="utf-8"))
        if remote:
            logger.warning("the HTML report loads remote resources: %s", remote)
        record["html_remote_resources"] = remote
        paths["json"].write_text(json.dumps(record, indent=2, default=str) + "\n")
    logger.info("wrote the drift report to %s", out_dir)
    return paths
