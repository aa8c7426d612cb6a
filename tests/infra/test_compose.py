"""Staging compose file: the Compose Specification schema and the stack's own rules."""

from __future__ import annotations

import copy
import json
import re
from importlib import resources
from typing import Any

import pytest

from tests.infra.conftest import INFRA, REPO_ROOT, flow_parameters, load_yaml_documents

COMPOSE_FILE = INFRA / "compose.yaml"
SERVICE_PORT = 3000


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    (document,) = load_yaml_documents(COMPOSE_FILE)
    return document


@pytest.fixture(scope="module")
def compose_schema() -> dict[str, Any]:
    pytest.importorskip(
        "check_jsonschema", reason="the Compose schema ships with check-jsonschema==0.39.0"
    )
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor") / "compose-spec.json"
    return json.loads(schema_file.read_text())


def schema_errors(document: dict[str, Any], schema: dict[str, Any]) -> list[str]:
    import jsonschema

    validator_class = jsonschema.validators.validator_for(schema)
    validator = validator_class(schema, format_checker=validator_class.FORMAT_CHECKER)
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(document)
    ]


def long_running(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Return the services that `up` starts and that keep running (no profile, restarted)."""
    return {
        name: service
        for name, service in compose["services"].items()
        if "profiles" not in service and service.get("restart") != "no"
    }


def one_shot(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: service
        for name, service in compose["services"].items()
        if "profiles" not in service and service.get("restart") == "no"
    }


def test_compose_matches_spec(compose: dict[str, Any], compose_schema: dict[str, Any]) -> None:
    assert schema_errors(compose, compose_schema) == []


def test_schema_rejects_typo(compose: dict[str, Any], compose_schema: dict[str, Any]) -> None:
    broken = copy.deepcopy(compose)
    broken["services"]["service"]["healthcheck"]["tset"] = ["CMD", "true"]
    assert schema_errors(broken, compose_schema)


def test_published_ports_loopback(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} on all hosts"


def test_images_pinned(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        image = service["image"]
        if "${" in image:
            continue  # locally built images, named by the reader
        repository, _, tag = image.rpartition(":")
        assert repository and tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest", f"{name}: image {image!r} is not pinned"


def test_long_running_have_healthchecks(compose: dict[str, Any]) -> None:
    for name, service in long_running(compose).items():
        assert "healthcheck" in service, f"{name} has no healthcheck"
        assert service["healthcheck"]["test"][0] in {"CMD", "CMD-SHELL"}


def test_one_shot_jobs_adopted(compose: dict[str, Any]) -> None:
    # `up --wait` fails on an exited container unless a running service waits for it.
    adopted = {
        dependency
        for service in long_running(compose).values()
        for dependency, rule in service.get("depends_on", {}).items()
        if rule["condition"] == "service_completed_successfully"
    }
    assert set(one_shot(compose)) <= adopted


def test_dependencies_exist(compose: dict[str, Any]) -> None:
    names = set(compose["services"])
    for name, service in compose["services"].items():
        assert set(service.get("depends_on", {})) <= names, name


def test_buckets_match_profile(compose: dict[str, Any]) -> None:
    profile = json.loads((INFRA / "metaflow" / "config_staging.json").read_text())
    bucket = profile["METAFLOW_DATASTORE_SYSROOT_S3"].removeprefix("s3://").split("/")[0]
    script = compose["services"]["minio-init"]["command"][0]
    assert f"staging/{bucket}" in script
    assert "staging/bookrecs-reports" in script


def test_staging_ports_match_profile(compose: dict[str, Any]) -> None:
    profile = json.loads((INFRA / "metaflow" / "config_staging.json").read_text())
    published = {
        int(port.split(":")[1])
        for service in compose["services"].values()
        for port in service.get("ports", [])
    }
    for key in ("METAFLOW_SERVICE_URL", "METAFLOW_S3_ENDPOINT_URL"):
        port = int(profile[key].rsplit(":", 1)[1])
        assert port in published, f"{key} points at port {port}, which compose does not publish"


def test_service_port(compose: dict[str, Any]) -> None:
    service = compose["services"]["service"]
    assert service["ports"] == [f"127.0.0.1:{SERVICE_PORT}:{SERVICE_PORT}"]
    assert f"127.0.0.1:{SERVICE_PORT}/livez" in service["healthcheck"]["test"][-1]


def test_train_job_uses_dockerfile(compose: dict[str, Any]) -> None:
    train = compose["services"]["train"]
    build = train["build"]
    dockerfile = (INFRA / build["context"] / build["dockerfile"]).resolve()
    assert dockerfile == (INFRA / "Dockerfile.train").resolve()
    assert train["profiles"] == ["jobs"]
    assert train["environment"]["METAFLOW_PROFILE"] == "staging"
    assert (INFRA / "metaflow" / "config_staging.json").exists()


def test_train_command_flags_exist(compose: dict[str, Any]) -> None:
    _, parameters = flow_parameters(REPO_ROOT / "flows" / "train.py")
    flags = [arg for arg in compose["services"]["train"]["command"] if arg.startswith("--")]
    for flag in flags:
        if flag != "--no-pylint":
            assert flag.removeprefix("--") in parameters, f"TrainFlow has no parameter {flag}"


def test_model_store_shared(compose: dict[str, Any]) -> None:
    services = compose["services"]
    train_home = services["train"]["environment"]["BENTOML_HOME"]
    pointer = services["service"]["environment"]["BOOKRECS_SERVING_POINTER"]
    assert pointer == f"{train_home}/bookrecs-serving.json"
    assert f"models:{train_home}" in services["train"]["volumes"]
    assert f"models:{train_home}:ro" in services["service"]["volumes"]


def test_impressions_shared(compose: dict[str, Any]) -> None:
    services = compose["services"]
    path = services["service"]["environment"]["BOOKRECS_IMPRESSIONS"]
    folder = path.rsplit("/", 1)[0]
    assert f"impressions:{folder}" in services["service"]["volumes"]
    assert f"impressions:{folder}" in services["drift"]["volumes"]
    assert path in services["drift"]["command"]


def test_service_settings_valid(compose: dict[str, Any]) -> None:
    settings = pytest.importorskip("bentos.settings")
    environment = compose["services"]["service"]["environment"]
    bookrecs_vars = {k: v for k, v in environment.items() if k.startswith("BOOKRECS_")}

    parsed = settings.ServiceSettings.from_env(bookrecs_vars)

    assert str(parsed.impressions) == environment["BOOKRECS_IMPRESSIONS"]


def test_volume_owners_match_users(compose: dict[str, Any]) -> None:
    from bentoml._internal.container.generate import BENTO_UID_GID

    dockerfile = (INFRA / "Dockerfile.train").read_text()
    script = compose["services"]["volumes-init"]["command"][0]
    train_uid = re.search(r"useradd --uid (\d+)", dockerfile).group(1)
    bento_uid = str(BENTO_UID_GID)
    assert f"chown -R {train_uid}:{train_uid} /app/bentoml_home /app/reports" in script
    assert f"chown -R {bento_uid}:{bento_uid} /impressions /drift-reports" in script
    assert compose["services"]["drift"]["user"] == f"{bento_uid}:{bento_uid}"


def test_drift_command_parses(compose: dict[str, Any]) -> None:
    cli = pytest.importorskip("monitoring.__main__")
    drift = compose["services"]["drift"]
    assert drift["entrypoint"] == ["python", "-m", "monitoring"]

    options = cli.build_parser().parse_args(drift["command"])

    assert options.command == "report"
    assert (
        options.impressions == compose["services"]["service"]["environment"]["BOOKRECS_IMPRESSIONS"]
    )
    assert f"drift-reports:{options.out}" in drift["volumes"]
