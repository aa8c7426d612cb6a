"""Run records: what a training run keeps besides its metrics, and the per-model training task.

These functions hold the logic of the training flow's steps, so the flow itself only wires them
together and keeps their results as artifacts.
"""

from __future__ import annotations

import io
import json
import logging
import os
import platform
import subprocess
import tarfile
import tempfile
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from bookrecs.config import TrainConfig
from bookrecs.exceptions import BookRecsError, ConfigError
from bookrecs.interactions import TrainData
from bookrecs.models import Recommender, build_model

logger = logging.getLogger("bookrecs.runs")

TRACKED_PACKAGES = (
    "bookrecs",
    "numpy",
    "scipy",
    "pandas",
    "polars",
    "pyarrow",
    "implicit",
    "rectools-lightfm",
    "scikit-learn",
    "pydantic",
    "metaflow",
    "bentoml",
    "evidently",
)


class ReproducibilityError(BookRecsError):
    """A reloaded model recommends something other than the model that was saved."""


def package_versions(names: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str]:
    """Return installed versions of `names` ("not installed" for missing ones) and Python's."""
    versions = {"python": platform.python_version()}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return versions


def git_commit(repo: Path | None = None) -> str:
    """Return the checked-out commit (with `+dirty` for uncommitted changes).

    Falls back to $BOOKRECS_COMMIT (set when a container image is built without `.git`), then
    to "unknown".
    """
    cwd = repo or Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=cwd,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return os.environ.get("BOOKRECS_COMMIT", "unknown")
    return f"{commit}+dirty" if dirty else commit


def check_config(config: TrainConfig) -> None:
    """Check what the config schema alone cannot, before any data is read.

    Model names must be registered and unique, every model must accept its `model_params`,
    and the promotion rule must name metrics that evaluation produces.

    Raises
    ------
    ConfigError
        Naming the bad value and the accepted ones.
    """
    from bookrecs.evaluate import metric_names

    repeated = sorted({name for name in config.models if config.models.count(name) > 1})
    if repeated:
        raise ConfigError(f"models {repeated} are listed twice: list each model once")
    if not config.models:
        raise ConfigError("models is empty: list at least one model, e.g. popular,lightfm")
    for name in config.models:
        build_model(name, config.seed, config.model_params.get(name, {}))
    unused = sorted(set(config.model_params) - set(config.models))
    if unused:
        logger.warning("model_params given for models that are not trained: %s", unused)

    known = metric_names(config.evaluation.k)
    for option in ("metric", "cold_metric"):
        value = getattr(config.promotion, option)
        if value not in known:
            raise ConfigError(
                f"promotion.{option}={value!r} is not a metric of this run: choose one of "
                f"{', '.join(known)}"
            )


def pack_directory(path: Path) -> bytes:
    """Return the files under `path` as an uncompressed tar archive (a run artifact)."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for file in sorted(p for p in path.rglob("*") if p.is_file()):
            archive.add(file, arcname=str(file.relative_to(path)))
    return buffer.getvalue()


def unpack_directory(archive: bytes, dest: Path) -> Path:
    """Extract an archive made by `pack_directory` into `dest` and return `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r") as tar:
        tar.extractall(dest, filter="data")
    return dest


@dataclass
class ModelResult:
    """Outcome of training and evaluating one model."""

    name: str
    params: dict[str, Any]
    metrics: dict[str, float]
    fit_seconds: float
    evaluate_seconds: float
    weights: bytes
    extra: dict[str, Any] = field(default_factory=dict)

    def row(self) -> dict[str, Any]:
        return {"model": self.name, **self.metrics, "fit_seconds": round(self.fit_seconds, 2)}


def train_and_evaluate(
    name: str,
    data: TrainData,
    test: Any,
    config: TrainConfig,
    params: dict[str, Any] | None = None,
) -> ModelResult:
    """Fit model `name`, evaluate it on `test`, save it, reload it and check it agrees.

    Raises
    ------
    ReproducibilityError
        If the reloaded model recommends different items than the fitted one.
    """
    from bookrecs.evaluate import evaluate

    params = {**config.model_params.get(name, {}), **(params or {})}
    model = build_model(name, config.seed, params, show_progress=config.show_progress)

    started = time.perf_counter()
    model.fit(data)
    fit_seconds = time.perf_counter() - started

    started = time.perf_counter()
    metrics = evaluate(model, data, test, config.evaluation)
    evaluate_seconds = time.perf_counter() - started

    with tempfile.TemporaryDirectory(prefix=f"bookrecs-{name}-") as tmp:
        saved = model.save(Path(tmp) / name)
        check_reload(model, saved, data, test)
        weights = pack_directory(saved)

    logger.info("%s: fit %.1fs, evaluate %.1fs", name, fit_seconds, evaluate_seconds)
    return ModelResult(
        name=name,
        params=model.params,
        metrics=metrics,
        fit_seconds=fit_seconds,
        evaluate_seconds=evaluate_seconds,
        weights=weights,
        extra={key: value for key, value in vars(model).items() if key == "epoch_seconds_"},
    )


def tune_point(name: str, params: dict[str, Any], split: Any, config: TrainConfig) -> dict:
    """Fit `name` with `params` on a validation split carved from `split.train` by time and
    return {"params": params, **validation metrics}. The test set is never touched."""
    from bookrecs.evaluate import evaluate
    from bookrecs.tuning import validation_split

    validation = validation_split(split, config.protocol)
    data = TrainData.from_split(validation)
    model = build_model(name, config.seed, {**config.model_params.get(name, {}), **params})
    model.fit(data)
    metrics = evaluate(model, data, validation.test, config.evaluation)
    logger.info("validation %s %s: %s", name, params, metrics)
    return {"params": params, **metrics}


def check_reload(model: Recommender, saved: Path, data: TrainData, test: Any, k: int = 10) -> None:
    """Reload the model saved at `saved` and check it recommends exactly what `model` does."""
    users = np.unique(data.users.index(test["user_id"]))
    users = users[users >= 0]
    before, _ = model.recommend(users, k, user_items=data.user_items)
    reloaded = Recommender.load(saved)
    after, _ = reloaded.recommend(users, k, user_items=data.user_items)
    if not np.array_equal(before, after):
        differing = int((before != after).any(axis=1).sum())
        raise ReproducibilityError(
            f"{model.name}: reloaded model differs for {differing} of {len(users)} users; "
            "its save/load does not keep every fitted array"
        )


def write_run_reports(
    dest: Path,
    metrics: pd.DataFrame,
    *,
    config: TrainConfig,
    manifest: list[dict[str, Any]],
    split_report: str,
    extra: dict[str, Any] | None = None,
    synthetic: bool = False,
) -> Path:
    """Write metrics.csv, metrics.md, metrics.png, split_report.md, config.yaml and
    manifest.json into `dest` and return it."""
    dest.mkdir(parents=True, exist_ok=True)
    metrics.to_csv(dest / "metrics.csv", index=False)
    (dest / "metrics.md").write_text(metrics_markdown(metrics, synthetic=synthetic))
    metrics_bar_chart(metrics, synthetic=synthetic).savefig(dest / "metrics.png", dpi=110)
    (dest / "split_report.md").write_text(split_report)
    config.to_yaml(dest / "config.yaml")
    (dest / "manifest.json").write_text(
        json.dumps({"files": manifest, **(extra or {})}, indent=2, default=str)
    )
    return dest


def input_summary(name: str, notes: list[str], drops: list[dict[str, Any]]) -> str:
    """Render the input's name, reader notes and dropped-row counts as Markdown."""
    lines = [f"## Input: {name}", ""]
    lines += [f"- note: {note}" for note in notes]
    if drops:
        lines += [
            f"- {row['rows']:,} rows dropped from {row['source']}: {row['reason']}" for row in drops
        ]
    else:
        lines.append("- no rows dropped")
    return "\n".join(lines) + "\n"


def metrics_markdown(metrics: pd.DataFrame, *, synthetic: bool = False) -> str:
    """Render the metrics table as Markdown, labelled when the data is synthetic."""
    title = "Metrics (synthetic demo data)" if synthetic else "Metrics"
    return f"# {title}\n\n{markdown_table(metrics)}\n"


def markdown_table(frame: pd.DataFrame) -> str:
    """Render `frame` as a Markdown table with floats to four decimals."""

    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "nan" if np.isnan(value) else f"{value:.4f}"
        return str(value)

    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(False)]
    return "\n".join([header, rule, *rows])


def metrics_bar_chart(metrics: pd.DataFrame, *, synthetic: bool = False):
    """Return a matplotlib figure with one group of bars per metric and one bar per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = [c for c in metrics.columns if "@" in c]
    fig, ax = plt.subplots(figsize=(10, 4.5))
    width = 0.8 / max(len(metrics), 1)
    positions = np.arange(len(columns))
    for offset, row in enumerate(metrics.to_dict("records")):
        values = [row[column] for column in columns]
        ax.bar(positions + offset * width, np.nan_to_num(values), width, label=row["model"])
    ax.set_xticks(positions + width * (len(metrics) - 1) / 2, columns, rotation=20)
    ax.set_ylabel("value")
    ax.set_title("Offline metrics" + (" (synthetic demo data)" if synthetic else ""))
    ax.legend(ncol=3, fontsize="small")
    fig.tight_layout()
    return fig
