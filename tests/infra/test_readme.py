"""infra/README.md names only files, services and commands that exist; every infra file parses."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest

from tests.infra.conftest import INFRA, REPO_ROOT, load_yaml_documents

README = INFRA / "README.md"
INFRA_FILES = sorted(
    path for path in INFRA.rglob("*") if path.is_file() and path.name != "README.md"
)


def readme_text() -> str:
    return README.read_text()


def named_paths() -> set[str]:
    """Return the repository paths the README names in backticks or commands."""
    pattern = r"(?<![\w/.-])((?:infra/|k8s/|argo/|metaflow/|flows/|bentos/|tests/infra/)[\w./*-]+)"
    return {match.rstrip(".") for match in re.findall(pattern, readme_text())}


def resolve(name: str) -> list[Path]:
    """Return the files a README path refers to (README paths may be relative to infra/)."""
    base = REPO_ROOT if name.split("/")[0] in {"infra", "flows", "bentos", "tests"} else INFRA
    return sorted(base.glob(name)) if "*" in name else [base / name]


@pytest.mark.parametrize("name", sorted(named_paths()))
def test_named_path_exists(name: str) -> None:
    paths = resolve(name)
    assert paths, f"{name} matches nothing"
    for path in paths:
        assert path.exists(), f"README names {name}, which does not exist"


@pytest.mark.parametrize("path", INFRA_FILES, ids=lambda path: path.relative_to(INFRA).as_posix())
def test_infra_file_documented(path: Path) -> None:
    relative = path.relative_to(INFRA).as_posix()
    text = readme_text()
    folder = relative.rsplit("/", 1)[0] + "/" if "/" in relative else None
    assert f"`{relative}`" in text or (folder and f"`{folder}`" in text), relative


@pytest.mark.parametrize("path", INFRA_FILES, ids=lambda path: path.relative_to(INFRA).as_posix())
def test_infra_file_parses(path: Path) -> None:
    if path.suffix in {".yaml", ".yml"}:
        assert load_yaml_documents(path)
    elif path.suffix == ".json":
        assert isinstance(json.loads(path.read_text()), dict)


def test_compose_services_named_exist() -> None:
    (compose,) = load_yaml_documents(INFRA / "compose.yaml")
    named = set(re.findall(r"compose\.yaml run --rm (?:--entrypoint \w+ )?([\w-]+)", readme_text()))
    assert named, "the README runs no compose job"
    assert named <= set(compose["services"])


def test_python_modules_named_exist() -> None:
    modules = set(re.findall(r"python -m ([\w.]+)", readme_text()))
    assert {"bentos.store"} <= modules
    for module in modules:
        assert importlib.util.find_spec(module) is not None, f"no module named {module}"


def test_store_commands_exist() -> None:
    store = REPO_ROOT / "bentos" / "store.py"
    if not store.exists():
        pytest.skip("bentos/store.py does not exist yet")
    source = store.read_text()
    for command in set(re.findall(r"bentos\.store (\w+)", readme_text())):
        assert f'"{command}"' in source, f"bentos.store has no {command} command"


def test_profile_table_matches_files() -> None:
    text = readme_text()
    for profile in ("local", "staging", "kubernetes"):
        values = json.loads((INFRA / "metaflow" / f"config_{profile}.json").read_text())
        for key, value in values.items():
            if key.startswith("METAFLOW_KUBERNETES_") and key.endswith(("CPU", "MEMORY", "DISK")):
                continue
            if key in {"METAFLOW_KUBERNETES_IMAGE_PULL_POLICY", "METAFLOW_KUBERNETES_LABELS"}:
                continue
            if key == "METAFLOW_KUBERNETES_PERSISTENT_VOLUME_CLAIMS":
                assert all(name in text for name in json.loads(value)), key
                continue
            assert f"`{key}`" in text, f"{key} is missing from the profile table"
            assert f"`{value}`" in text, f"{profile}: {key}={value} is not in the README"


def test_default_path_needs_no_infra() -> None:
    sources: list[Path] = []
    for package in ("bookrecs", "flows", "bentos", "monitoring"):
        sources += sorted((REPO_ROOT / package).rglob("*.py"))
    for source in sources:
        assert "infra/" not in source.read_text(), f"{source.relative_to(REPO_ROOT)} uses infra/"
