"""Load the inputs of a drift report, run the checks and write the outputs.

The command line (`python -m monitoring report`) and the Metaflow `DriftFlow` both call
these functions, so they produce the same report from the same options.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from bookrecs.columns import DATE
from bookrecs.config import TrainConfig
from bookrecs.data.dataset import Dataset
from monitoring.config import DriftConfig
from monitoring.drift import DriftSummary, analyse
from monitoring.impressions import ImpressionLog, read_impressions
from monitoring.windows import Window, resolve_windows

logger = logging.getLogger("bookrecs.monitoring")

DEFAULT_OUT = Path("monitoring/reports")


@dataclass(frozen=True)
class ReportOptions:
    """Options of one drift report, named as on the command line."""

    dataset: str = "demo"
    data_dir: str | None = None
    seed: int = 42
    demo_size: str = "small"
    reference_start: str | None = None
    reference_end: str | None = None
    current_start: str | None = None
    current_end: str | None = None
    impressions: str | None = None
    config: str | None = None
    out: str = str(DEFAULT_OUT)
    run_name: str | None = None
    html: bool = True
    show_progress: bool = True


def load_input(options: ReportOptions) -> Dataset:
    """Read the dataset that `options.dataset` names, through the core's readers."""
    from bookrecs.data.load import load_dataset

    train_config = TrainConfig.from_dict(
        {
            "dataset": options.dataset,
            "data_dir": str(Path(options.data_dir).resolve()) if options.data_dir else None,
            "seed": options.seed,
            "demo": {"size": options.demo_size},
            "show_progress": options.show_progress,
        }
    )
    dataset = load_dataset(train_config)
    for note in dataset.notes:
        logger.info("%s", note)
    if dataset.drops.total:
        logger.warning("%d input rows dropped:\n%s", dataset.drops.total, dataset.drops)
    return dataset


def windows_for(
    dataset: Dataset, options: ReportOptions, config: DriftConfig
) -> tuple[Window, Window]:
    """Resolve the two windows from the options, defaulting to a cut at `reference_quantile`."""
    return resolve_windows(
        dataset.interactions[DATE],
        config.reference_quantile,
        options.reference_start,
        options.reference_end,
        options.current_start,
        options.current_end,
    )


def output_dir(options: ReportOptions, now: datetime | None = None) -> Path:
    """Return `<out>/<run name>`; the default run name is the UTC date, such as 2024-05-31."""
    name = options.run_name or (now or datetime.now(UTC)).strftime("%Y-%m-%d")
    return Path(options.out) / name


def run_report(options: ReportOptions) -> tuple[DriftSummary, dict[str, Path]]:
    """Load the data, compare the windows, and write HTML, JSON and text under `output_dir`."""
    config = DriftConfig.from_yaml(options.config) if options.config else DriftConfig.from_yaml()
    dataset = load_input(options)
    reference, current = windows_for(dataset, options, config)
    log = read_impressions(options.impressions, current) if options.impressions else None

    summary = analyse(dataset.interactions, dataset.books, reference, current, config, log)
    summary.notes += dataset.notes
    return summary, write_report(summary, dataset, config, options, log)


def write_report(
    summary: DriftSummary,
    dataset: Dataset,
    config: DriftConfig,
    options: ReportOptions,
    log: ImpressionLog | None = None,
) -> dict[str, Path]:
    """Write the outputs of `summary`; the HTML is left out when `options.html` is false."""
    from monitoring import report

    sections = None
    if options.html:
        sections, notes = report.build_sections(
            dataset.interactions, dataset.books, summary, config, log
        )
        summary.notes += notes
    return report.write_outputs(summary, output_dir(options), sections, config)
