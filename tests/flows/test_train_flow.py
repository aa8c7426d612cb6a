"""End-to-end runs of the real TrainFlow (Metaflow local runtime, local datastore in tmp)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow

METRIC_COLUMNS = [
    "model",
    "ndcg@10",
    "recall@10",
    "coverage@10",
    "cold_ndcg@10",
    "cold_recall@10",
    "warm_ndcg@10",
    "warm_recall@10",
    "long_tail_share@10",
]

TINY_DEMO = """
dataset: demo
demo: {size: small, n_users: 400, n_books: 300}
model_params:
  als: {iterations: 5}
  lightfm: {epochs: 5}
"""


def flow_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        METAFLOW_USER="bookrecs-tests",
        METAFLOW_DATASTORE_SYSROOT_LOCAL=str(root / "metaflow"),
        BENTOML_HOME=str(root / "bentoml"),
        BENTOML_DO_NOT_TRACK="true",
        OPENBLAS_NUM_THREADS="1",
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


def run_flow(root: Path, *args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, str(REPO_ROOT / "flows" / "train.py"), "--no-pylint", "run"]
    command += ["--reports-dir", str(root / "reports"), *args]
    return subprocess.run(
        command, cwd=root, env=flow_env(root), capture_output=True, text=True, timeout=1200
    )


def latest_metrics(root: Path) -> pd.DataFrame:
    """Read the metrics artifact back through the Metaflow client, as a user would."""
    script = (
        "from metaflow import Flow, namespace; namespace(None); "
        "print(Flow('TrainFlow').latest_successful_run.data.metrics.to_json(orient='records'))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env=flow_env(root),
        capture_output=True,
        text=True,
        check=True,
    )
    return pd.DataFrame(json.loads(out.stdout.strip().splitlines()[-1]))


@pytest.fixture(scope="module")
def demo_runs(tmp_path_factory) -> tuple[Path, list[subprocess.CompletedProcess]]:
    root = tmp_path_factory.mktemp("trainflow")
    (root / "tiny.yaml").write_text(TINY_DEMO)
    runs = [run_flow(root, "--config", "tiny.yaml", "--tune", "False") for _ in range(2)]
    return root, runs


def test_demo_flow_succeeds(demo_runs):
    _, runs = demo_runs
    for run in runs:
        assert run.returncode == 0, run.stderr[-4000:]
    assert "ndcg@10" in runs[0].stdout
    assert "synthetic" in runs[0].stdout


def test_demo_metrics_artifact_columns(demo_runs):
    root, _ = demo_runs
    metrics = latest_metrics(root)
    assert list(metrics.columns[: len(METRIC_COLUMNS)]) == METRIC_COLUMNS
    assert set(metrics["model"]) == {"random", "popular", "itemknn", "als", "content", "lightfm"}


def test_demo_reports_written(demo_runs):
    root, _ = demo_runs
    run_dirs = sorted((root / "reports").iterdir())
    assert len(run_dirs) == 2
    for name in ("metrics.csv", "metrics.md", "metrics.png", "split_report.md", "config.yaml"):
        assert (run_dirs[-1] / name).is_file(), name
    split_report = (run_dirs[-1] / "split_report.md").read_text()
    assert "## Input: demo (synthetic)" in split_report
    assert "no rows dropped" in split_report
    manifest = json.loads((run_dirs[-1] / "manifest.json").read_text())
    assert manifest["files"], "manifest lists no input files"
    assert all(len(record["sha256"]) == 64 for record in manifest["files"])


def test_same_seed_same_metrics(demo_runs):
    root, _ = demo_runs
    first, second = (pd.read_csv(d / "metrics.csv") for d in sorted((root / "reports").iterdir()))
    columns = METRIC_COLUMNS[1:]
    pd.testing.assert_frame_equal(first[["model", *columns]], second[["model", *columns]])


def test_demo_baselines_beat_random(demo_runs):
    root, _ = demo_runs
    metrics = latest_metrics(root).set_index("model")
    random_ndcg = metrics.loc["random", "ndcg@10"]
    assert metrics.loc["popular", "ndcg@10"] > 3 * random_ndcg
    assert metrics.loc["als", "ndcg@10"] > 3 * random_ndcg


def test_goodreads_head_without_metadata(tmp_path, goodreads_head_dir):
    run = run_flow(
        tmp_path,
        "--dataset",
        "goodreads",
        "--data-dir",
        str(goodreads_head_dir),
        "--models",
        "random,popular,itemknn,als",
    )
    assert run.returncode == 0, run.stderr[-4000:]
    assert "no book metadata" in (run.stdout + run.stderr)
    metrics = pd.read_csv(next((tmp_path / "reports").iterdir()) / "metrics.csv")
    assert len(metrics) == 4


def test_movielens_custom_catalogue(tmp_path, movielens_dir):
    from tests.helpers.movielens import write_movielens_catalogue

    catalogue = write_movielens_catalogue(movielens_dir, tmp_path / "catalogue")
    run = run_flow(
        tmp_path,
        "--dataset",
        "custom",
        "--data-dir",
        str(catalogue),
        "--config",
        str(REPO_ROOT / "configs" / "movielens.yaml"),
        "--models",
        "random,popular,lightfm",
        "--tune",
        "False",
    )

    assert run.returncode == 0, run.stderr[-4000:]
    metrics = pd.read_csv(next((tmp_path / "reports").iterdir()) / "metrics.csv")
    metrics = metrics.set_index("model")
    assert metrics.loc["lightfm", "cold_ndcg@10"] > metrics.loc["random", "cold_ndcg@10"]
    assert metrics.loc["lightfm", "ndcg@10"] >= metrics.loc["popular", "ndcg@10"]


def test_missing_data_dir_clear_error(tmp_path):
    run = run_flow(tmp_path, "--dataset", "goodreads", "--data-dir", str(tmp_path / "absent"))
    output = run.stdout + run.stderr
    assert run.returncode != 0
    assert "error in step load" in output
    assert str(tmp_path / "absent") in output
    assert "Traceback" not in output
