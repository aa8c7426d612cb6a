"""Fixtures for the infrastructure checks: file loaders, a local S3 server and flow runners."""

from __future__ import annotations

import ast
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
INFRA = REPO_ROOT / "infra"
K8S = INFRA / "k8s"
PROFILES = INFRA / "metaflow"
PYTHON = sys.executable


def load_yaml_documents(path: Path) -> list[dict[str, Any]]:
    """Return every non-empty YAML document in `path`."""
    with path.open() as handle:
        return [doc for doc in yaml.safe_load_all(handle) if doc is not None]


def k8s_manifests() -> list[Path]:
    """Return every Kubernetes manifest under infra/k8s (kustomization files excluded)."""
    return sorted(p for p in K8S.rglob("*.yaml") if p.name != "kustomization.yaml")


def k8s_objects(kind: str | None = None) -> list[dict[str, Any]]:
    """Return the objects of all manifests, optionally only those of one `kind`."""
    objects = [doc for path in k8s_manifests() for doc in load_yaml_documents(path)]
    return [obj for obj in objects if kind is None or obj["kind"] == kind]


def k8s_object(kind: str, name: str) -> dict[str, Any]:
    """Return the one object with this kind and name."""
    matches = [obj for obj in k8s_objects(kind) if obj["metadata"]["name"] == name]
    if len(matches) != 1:
        raise LookupError(f"expected one {kind} named {name!r}, found {len(matches)}")
    return matches[0]


def load_profile(name: str) -> dict[str, Any]:
    """Return the Metaflow profile infra/metaflow/config_<name>.json."""
    return json.loads((PROFILES / f"config_{name}.json").read_text())


def flow_parameters(flow_file: Path) -> tuple[str, set[str]]:
    """Return the FlowSpec class name and the CLI names of its Parameters, read from source."""
    tree = ast.parse(flow_file.read_text())
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and any(
            isinstance(base, ast.Name) and base.id == "FlowSpec" for base in node.bases
        ):
            names = {
                call.args[0].value
                for call in ast.walk(node)
                if isinstance(call, ast.Call)
                and isinstance(call.func, ast.Name)
                and call.func.id == "Parameter"
                and call.args
                and isinstance(call.args[0], ast.Constant)
            }
            return node.name, names
    raise LookupError(f"{flow_file} defines no FlowSpec subclass")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def flow_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Return an environment for running a flow in a subprocess with a given profile."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("METAFLOW_", "AWS_", "BOOKRECS_"))
    }
    env.update(
        METAFLOW_USER="bookrecs-tests",
        METAFLOW_HOME=str(PROFILES),
        OPENBLAS_NUM_THREADS="1",
        BENTOML_DO_NOT_TRACK="true",
        BENTOML_HOME=str(tmp_path / "bentoml"),
        HOME=str(tmp_path),
        PYTHONPATH=str(REPO_ROOT),
    )
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Start a moto S3 server on 127.0.0.1 with the bucket bookrecs-metaflow; yield its URL."""
    pytest.importorskip(
        "moto", reason="the local S3 server needs moto[s3]==5.2.5, flask==3.1.3, flask-cors==6.0.5"
    )
    boto3 = pytest.importorskip("boto3")
    from botocore.exceptions import BotoCoreError, ClientError

    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with log.open("w") as handle:
        server = subprocess.Popen(
            [PYTHON, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=handle,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        client = boto3.client(
            "s3",
            endpoint_url=url,
            aws_access_key_id="test",
            aws_secret_access_key="test",
            region_name="us-east-1",
        )
        deadline = time.monotonic() + 30
        while True:
            try:
                client.create_bucket(Bucket="bookrecs-metaflow")
                break
            except (BotoCoreError, ClientError):
                if server.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"moto S3 server did not start on {url}: {log.read_text()}")
                time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def s3_env(url: str) -> dict[str, str]:
    """Return the AWS variables that point boto3 at the local S3 server."""
    return {
        "METAFLOW_S3_ENDPOINT_URL": url,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
