"""Shared fixtures: paths to the real sample data, skipped cleanly when it is absent."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DATA = Path(os.environ.get("BOOKRECS_SAMPLE_DATA", REPO_ROOT.parent / "shared" / "data"))

os.environ.setdefault("METAFLOW_USER", "bookrecs-tests")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("BENTOML_DO_NOT_TRACK", "true")


def _sample(name: str) -> Path:
    path = SAMPLE_DATA / name
    if not path.exists():
        pytest.skip(
            f"sample data {path} is absent; set BOOKRECS_SAMPLE_DATA to a folder holding {name}"
        )
    return path


@pytest.fixture(scope="session")
def goodreads_head_dir() -> Path:
    """Folder with the first 5,000 rows of the official Goodreads YA interactions file."""
    return _sample("goodreads_ya_head5000")


@pytest.fixture(scope="session")
def movielens_dir() -> Path:
    """Folder with MovieLens latest-small (ratings, movies, tags)."""
    return _sample("ml-latest-small")
