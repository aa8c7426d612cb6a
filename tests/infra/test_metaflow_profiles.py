"""Metaflow profiles: known keys, the values Metaflow reads, and flows run on each profile."""

from __future__ import annotations

import json
import re
import subprocess
import textwrap
from pathlib import Path
from urllib.parse import urlparse

import metaflow
import pytest

from tests.infra.conftest import (
    PROFILES,
    PYTHON,
    REPO_ROOT,
    flow_env,
    k8s_object,
    k8s_objects,
    load_profile,
    s3_env,
)

PROFILE_NAMES = ("local", "staging", "kubernetes")


def metaflow_config_names() -> set[str]:
    """Return every METAFLOW_* name that metaflow_config.py reads with from_conf."""
    source = (Path(metaflow.__file__).parent / "metaflow_config.py").read_text()
    return {f"METAFLOW_{name}" for name in re.findall(r'from_conf\(\s*"([A-Z0-9_]+)"', source)}


def read_config(profile: str, tmp_path: Path, *names: str) -> dict[str, object]:
    """Return metaflow_config values as Metaflow resolves them with this profile selected."""
    code = (
        "import json\nfrom metaflow import metaflow_config as c\n"
        f"print(json.dumps({{n: getattr(c, n) for n in {list(names)!r}}}))"
    )
    result = subprocess.run(
        [PYTHON, "-c", code],
        env=flow_env(tmp_path, METAFLOW_PROFILE=profile),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_profile_keys_known(profile: str) -> None:
    unknown = set(load_profile(profile)) - metaflow_config_names()
    assert not unknown, f"{profile}: keys Metaflow {metaflow.__version__} does not read"


@pytest.mark.parametrize("profile", PROFILE_NAMES)
def test_profile_values_are_strings(profile: str) -> None:
    # Metaflow casts a non-string value with str(), which turns a JSON object into a Python
    # repr that its own json.loads then rejects.
    for key, value in load_profile(profile).items():
        assert isinstance(value, str), f"{profile}: {key} must be a string"


def test_local_profile_needs_no_services(tmp_path: Path) -> None:
    values = read_config("local", tmp_path, "DEFAULT_METADATA", "DEFAULT_DATASTORE")
    assert values == {"DEFAULT_METADATA": "local", "DEFAULT_DATASTORE": "local"}
    assert not any("URL" in key or "S3" in key for key in load_profile("local"))


def test_staging_profile_resolves(tmp_path: Path) -> None:
    values = read_config(
        "staging",
        tmp_path,
        "DEFAULT_METADATA",
        "DEFAULT_DATASTORE",
        "SERVICE_URL",
        "DATASTORE_SYSROOT_S3",
        "S3_ENDPOINT_URL",
    )
    assert values["DEFAULT_METADATA"] == "service"
    assert values["DEFAULT_DATASTORE"] == "s3"
    assert values["SERVICE_URL"] == "http://localhost:8080"
    assert values["DATASTORE_SYSROOT_S3"] == "s3://bookrecs-metaflow/metaflow"
    assert values["S3_ENDPOINT_URL"] == "http://localhost:9000"


def test_kubernetes_profile_resolves(tmp_path: Path) -> None:
    values = read_config(
        "kubernetes",
        tmp_path,
        "KUBERNETES_NAMESPACE",
        "KUBERNETES_SERVICE_ACCOUNT",
        "KUBERNETES_SECRETS",
        "KUBERNETES_PERSISTENT_VOLUME_CLAIMS",
        "SERVICE_INTERNAL_URL",
    )
    assert values["KUBERNETES_NAMESPACE"] == "bookrecs"
    assert values["KUBERNETES_SERVICE_ACCOUNT"] == "bookrecs-flows"
    assert values["KUBERNETES_SECRETS"] == "bookrecs-s3"
    claims = json.loads(values["KUBERNETES_PERSISTENT_VOLUME_CLAIMS"])
    assert claims == {"bookrecs-models": "/app/bentoml_home", "bookrecs-data": "/app/data"}


def test_unknown_profile_rejected(tmp_path: Path) -> None:
    result = subprocess.run(
        [PYTHON, "-c", "from metaflow import metaflow_config"],
        env=flow_env(tmp_path, METAFLOW_PROFILE="no-such-profile"),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode != 0
    assert "no-such-profile" in result.stderr


def test_kubernetes_profile_matches_manifests() -> None:
    profile = load_profile("kubernetes")
    namespace = profile["METAFLOW_KUBERNETES_NAMESPACE"]

    for url_key, service_name in [
        ("METAFLOW_SERVICE_INTERNAL_URL", "metaflow-metadata"),
        ("METAFLOW_S3_ENDPOINT_URL", "minio"),
    ]:
        url = urlparse(profile[url_key])
        assert url.hostname == f"{service_name}.{namespace}.svc.cluster.local", url_key
        service = k8s_object("Service", service_name)
        assert service["metadata"]["namespace"] == namespace
        assert url.port in [port["port"] for port in service["spec"]["ports"]], url_key

    account = k8s_object("ServiceAccount", profile["METAFLOW_KUBERNETES_SERVICE_ACCOUNT"])
    assert account["metadata"]["namespace"] == namespace
    claims = json.loads(profile["METAFLOW_KUBERNETES_PERSISTENT_VOLUME_CLAIMS"])
    claim_names = {obj["metadata"]["name"] for obj in k8s_objects("PersistentVolumeClaim")}
    assert set(claims) <= claim_names


def test_kubernetes_profile_mounts_match_image() -> None:
    dockerfile = (REPO_ROOT / "infra" / "Dockerfile.train").read_text()
    claims = json.loads(load_profile("kubernetes")["METAFLOW_KUBERNETES_PERSISTENT_VOLUME_CLAIMS"])
    for mount in claims.values():
        assert mount in dockerfile, f"{mount} is not created in the training image"


def test_profiles_directory_in_image() -> None:
    dockerfile = (REPO_ROOT / "infra" / "Dockerfile.train").read_text()
    assert "METAFLOW_HOME=/app/infra/metaflow" in dockerfile
    assert "COPY --chown=bookrecs:bookrecs infra/metaflow ./infra/metaflow" in dockerfile
    assert PROFILES.relative_to(REPO_ROOT).as_posix() == "infra/metaflow"


TINY_FLOW = textwrap.dedent(
    """
    from metaflow import FlowSpec, Parameter, step


    class TinyFlow(FlowSpec):
        data_dir = Parameter("data-dir", default="")

        @step
        def start(self):
            self.total = sum(range(10))
            self.next(self.end)

        @step
        def end(self):
            print("total", self.total)


    if __name__ == "__main__":
        TinyFlow()
    """
)


def run_flow(flow: Path, args: list[str], env: dict[str, str], cwd: Path) -> str:
    """Run a flow file and return stdout; fail with its stderr on a non-zero exit."""
    result = subprocess.run(
        [PYTHON, str(flow), "--no-pylint", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{flow.name} {' '.join(args)} failed:\n{result.stderr}"
    return result.stdout


@pytest.mark.slow
def test_staging_profile_runs_on_s3(tmp_path: Path, s3_server: str) -> None:
    boto3 = pytest.importorskip("boto3")
    flow = tmp_path / "tiny_flow.py"
    flow.write_text(TINY_FLOW)
    # The metadata service is the only staging part not started here: keep metadata local.
    env = flow_env(
        tmp_path, METAFLOW_PROFILE="staging", METAFLOW_DEFAULT_METADATA="local", **s3_env(s3_server)
    )

    run_flow(flow, ["run"], env, tmp_path)

    client = boto3.client(
        "s3",
        endpoint_url=s3_server,
        region_name="us-east-1",
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )
    listing = client.list_objects_v2(Bucket="bookrecs-metaflow", Prefix="metaflow/TinyFlow/")
    keys = [item["Key"] for item in listing.get("Contents", [])]
    end_task = re.compile(r"^metaflow/TinyFlow/\d+/end/\d+/0\.data\.json$")
    assert any(end_task.match(key) for key in keys), keys
