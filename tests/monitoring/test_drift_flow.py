"""One real run of flows/drift.py (Metaflow local runtime, local datastore in tmp)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime

import numpy as np
import pytest

from monitoring.simulate import write_impression_log
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.slow


def flow_env(root) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        METAFLOW_USER="bookrecs-tests",
        METAFLOW_DATASTORE_SYSROOT_LOCAL=str(root / "metaflow"),
        OPENBLAS_NUM_THREADS="1",
        PYTHONPATH=str(REPO_ROOT),
    )
    return env


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory, goodreads_head_dir):
    root = tmp_path_factory.mktemp("driftflow")
    log = write_impression_log(
        root / "impressions.sqlite",
        60,
        np.random.default_rng(0),
        popular_only=True,
        start=datetime(2015, 1, 1, tzinfo=UTC),
    )
    command = [sys.executable, str(REPO_ROOT / "flows" / "drift.py"), "--no-pylint", "run"]
    command += ["--dataset", "goodreads", "--data-dir", str(goodreads_head_dir)]
    command += ["--impressions", str(log), "--out", str(root / "reports"), "--run-name", "r1"]
    run = subprocess.run(
        command, cwd=root, env=flow_env(root), capture_output=True, text=True, timeout=900
    )
    return root, run


def read_artifact(root, expression: str) -> str:
    script = (
        "import json; from metaflow import Flow, namespace; namespace(None); "
        f"run = Flow('DriftFlow').latest_run; print(json.dumps({expression}))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        cwd=root,
        env=flow_env(root),
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_flow_succeeds(flow_run):
    _, run = flow_run
    assert run.returncode == 0, run.stderr[-4000:]
    assert "verdict:" in run.stdout


def test_flow_writes_outputs(flow_run):
    root, _ = flow_run
    for name in ("drift_report.html", "summary.json", "summary.txt"):
        assert (root / "reports" / "r1" / name).is_file(), name


def test_flow_verdict_artifact(flow_run):
    root, _ = flow_run
    verdict = read_artifact(root, "run.data.verdict")
    summary = read_artifact(root, "run.data.summary")
    assert verdict == summary["verdict"]
    checks = {check["name"]: check["status"] for check in summary["checks"]}
    # Every shown book is unknown to the Goodreads reference, so coverage collapses.
    assert checks["shown_coverage"] == "drift"
    assert verdict == "retrain"
