"""The command line `python -m monitoring report` on real and generated data."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

from monitoring.__main__ import main
from monitoring.config import DEFAULT_CONFIG_PATH
from tests.conftest import REPO_ROOT


def run_report(tmp_path, *args: str) -> int:
    return main(["report", "--out", str(tmp_path), "--run-name", "run", "--quiet", *args])


def test_goodreads_head(goodreads_head_dir, tmp_path, capsys):
    code = run_report(tmp_path, "--dataset", "goodreads", "--data-dir", str(goodreads_head_dir))
    record = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert code == record["exit_code"]
    assert code in (0, 3)
    assert record["rows"]["reference"] + record["rows"]["current"] == 5000
    assert (tmp_path / "run" / "drift_report.html").is_file()
    assert "verdict:" in capsys.readouterr().out


def test_goodreads_empty_window(goodreads_head_dir, tmp_path, capsys):
    code = run_report(
        tmp_path,
        "--dataset",
        "goodreads",
        "--data-dir",
        str(goodreads_head_dir),
        "--current-start",
        "2030-01-01",
        "--current-end",
        "2030-02-01",
        "--no-html",
    )
    assert code == 4
    output = capsys.readouterr().out
    assert "current window contains no interactions" in output
    assert "2006-08-29 to 2017-10-29" in output


def test_bad_config_exits_1(goodreads_head_dir, tmp_path, capsys):
    values = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text()) | {"alfa": 0.1}
    config = tmp_path / "drift.yaml"
    config.write_text(yaml.safe_dump(values))
    code = run_report(
        tmp_path,
        "--dataset",
        "goodreads",
        "--data-dir",
        str(goodreads_head_dir),
        "--config",
        str(config),
    )
    assert code == 1
    assert "alfa" in capsys.readouterr().err


def test_bad_evidently_method_exits_1(goodreads_head_dir, tmp_path, capsys):
    values = yaml.safe_load(DEFAULT_CONFIG_PATH.read_text())
    values["evidently"]["num_method"] = "bogus"
    config = tmp_path / "drift.yaml"
    config.write_text(yaml.safe_dump(values))
    code = run_report(
        tmp_path,
        "--dataset",
        "goodreads",
        "--data-dir",
        str(goodreads_head_dir),
        "--config",
        str(config),
        "--no-html",
    )
    assert code == 1
    assert "evidently.num_method" in capsys.readouterr().err
    assert not (tmp_path / "run" / "summary.json").exists()


def test_bad_date_exits_1(goodreads_head_dir, tmp_path, capsys):
    code = run_report(
        tmp_path,
        "--dataset",
        "goodreads",
        "--data-dir",
        str(goodreads_head_dir),
        "--reference-end",
        "31/12/2013",
    )
    assert code == 1
    assert "--reference-end='31/12/2013' is not an ISO-8601 date" in capsys.readouterr().err


def test_overlapping_windows_exit_1(goodreads_head_dir, tmp_path, capsys):
    code = run_report(
        tmp_path,
        "--dataset",
        "goodreads",
        "--data-dir",
        str(goodreads_head_dir),
        "--reference-end",
        "2017-10-01",
        "--current-start",
        "2006-01-01",
        "--no-html",
    )
    assert code == 1
    assert "the windows overlap" in capsys.readouterr().err
    assert not (tmp_path / "run" / "summary.json").exists()


def test_missing_data_dir_exits_1(tmp_path, capsys):
    code = run_report(tmp_path, "--dataset", "goodreads")
    assert code == 1
    assert "data_dir" in capsys.readouterr().err


@pytest.mark.slow
def test_demo_by_time(tmp_path):
    """Generate the demo data and compare its default time windows, as `make drift-report`."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT), OPENBLAS_NUM_THREADS="1")
    command = [sys.executable, "-m", "monitoring", "report", "--quiet", "--out", str(tmp_path)]
    result = subprocess.run(
        [*command, "--run-name", "demo"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode in (0, 3), result.stderr
    record = json.loads((tmp_path / "demo" / "summary.json").read_text())
    assert record["exit_code"] == result.returncode
    assert record["rows"]["current"] > 0
    assert record["html_remote_resources"] == []
