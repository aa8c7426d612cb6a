"""Kubernetes manifests: API schemas, and agreement with the service, compose and each other."""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import (
    INFRA,
    K8S,
    REPO_ROOT,
    k8s_manifests,
    k8s_object,
    k8s_objects,
    load_yaml_documents,
)

# An older and the newest release that kubernetes-validate 1.37.0 has schemas for, so clusters
# a few releases behind also accept the manifests.
KUBERNETES_VERSIONS = ("1.33.0", "1.37.0")
SERVICE_PORT = 3000
BENTOML_PROBES = ("/livez", "/readyz")


@pytest.fixture(scope="module")
def validate():
    module = pytest.importorskip(
        "kubernetes_validate", reason="schemas ship with kubernetes-validate==1.37.0"
    )

    def run(document: dict[str, Any]) -> None:
        for version in KUBERNETES_VERSIONS:
            module.validate(document, version, strict=True)

    return run


def containers(workload: dict[str, Any]) -> list[dict[str, Any]]:
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def workloads() -> list[dict[str, Any]]:
    return [obj for obj in k8s_objects() if obj["kind"] in {"Deployment", "StatefulSet", "Job"}]


@pytest.fixture(scope="module")
def deployment() -> dict[str, Any]:
    return k8s_object("Deployment", "bookrecs-service")


@pytest.fixture(scope="module")
def service_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return container


@pytest.mark.parametrize("path", k8s_manifests(), ids=lambda path: path.relative_to(K8S).as_posix())
def test_manifest_matches_schema(path: Path, validate) -> None:
    documents = load_yaml_documents(path)
    assert documents, f"{path} is empty"
    for document in documents:
        validate(document)


def test_schema_rejects_typo(deployment: dict[str, Any], validate) -> None:
    import kubernetes_validate

    broken = copy.deepcopy(deployment)
    broken["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        validate(broken)


@pytest.mark.parametrize("folder", [K8S, K8S / "metaflow"], ids=["service", "metaflow"])
def test_kustomization_lists_manifests(folder: Path) -> None:
    (kustomization,) = load_yaml_documents(folder / "kustomization.yaml")
    listed = set(kustomization["resources"])
    present = {path.name for path in folder.glob("*.yaml") if path.name != "kustomization.yaml"}
    assert listed == present


def test_one_namespace() -> None:
    namespaces = {
        obj["metadata"].get("namespace") for obj in k8s_objects() if obj["kind"] != "Namespace"
    }
    assert namespaces == {k8s_object("Namespace", "bookrecs")["metadata"]["name"]}


def test_rollout_keeps_capacity(deployment: dict[str, Any]) -> None:
    strategy = deployment["spec"]["strategy"]
    assert strategy["type"] == "RollingUpdate"
    assert strategy["rollingUpdate"]["maxUnavailable"] == 0
    assert strategy["rollingUpdate"]["maxSurge"] >= 1
    assert deployment["spec"]["revisionHistoryLimit"] >= 2, "rollout undo needs old revisions"


def test_probes_use_service_paths(service_container: dict[str, Any]) -> None:
    paths = {
        service_container[probe]["httpGet"]["path"]
        for probe in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert service_container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert service_container["livenessProbe"]["httpGet"]["path"] == "/livez"
    known = set(BENTOML_PROBES)
    service_file = REPO_ROOT / "bentos" / "service.py"
    if service_file.exists():
        known |= set(re.findall(r"[\"'](/[a-z_/]+)[\"']", service_file.read_text()))
    assert paths <= known


def test_bentoml_serves_probe_paths() -> None:
    import bentoml

    source = (Path(bentoml.__file__).parent / "_internal" / "server" / "base_app.py").read_text()
    for path in BENTOML_PROBES:
        assert f'"{path}"' in source, f"BentoML {bentoml.__version__} no longer serves {path}"


def test_probes_use_named_port(service_container: dict[str, Any]) -> None:
    (port,) = service_container["ports"]
    assert port == {"name": "http", "containerPort": SERVICE_PORT, "protocol": "TCP"}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        assert service_container[probe]["httpGet"]["port"] == "http"


def test_port_matches_compose_and_bento(service_container: dict[str, Any]) -> None:
    (compose,) = load_yaml_documents(INFRA / "compose.yaml")
    assert compose["services"]["service"]["ports"] == [f"127.0.0.1:{SERVICE_PORT}:{SERVICE_PORT}"]
    bentofile = REPO_ROOT / "bentos" / "bentofile.yaml"
    if not bentofile.exists():
        pytest.skip("bentos/bentofile.yaml does not exist yet")
    (bento,) = load_yaml_documents(bentofile)
    env = {key: str(value) for key, value in bento["docker"].get("env", {}).items()}
    # `bentoml serve` in the container listens on 3000 unless BENTOML_PORT sets another port.
    assert env.get("BENTOML_PORT", str(SERVICE_PORT)) == str(SERVICE_PORT)


def test_bento_image_matches_training_image() -> None:
    bentofile = REPO_ROOT / "bentos" / "bentofile.yaml"
    if not bentofile.exists():
        pytest.skip("bentos/bentofile.yaml does not exist yet")
    (bento,) = load_yaml_documents(bentofile)
    dockerfile = (INFRA / "Dockerfile.train").read_text()
    python_version = str(bento["docker"]["python_version"])
    assert f"ARG PYTHON_IMAGE=python:{python_version}." in dockerfile
    assert bento["docker"]["distro"] == "debian"
    assert "libgomp1" in bento["docker"]["system_packages"]
    assert bento["docker"]["env"]["OPENBLAS_NUM_THREADS"] == "1"


@pytest.mark.parametrize(
    "workload", workloads(), ids=lambda obj: f"{obj['kind']}/{obj['metadata']['name']}"
)
def test_resources_set(workload: dict[str, Any]) -> None:
    for container in containers(workload):
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
        assert {"cpu", "memory"} <= set(resources["limits"]), container["name"]


@pytest.mark.parametrize(
    "workload", workloads(), ids=lambda obj: f"{obj['kind']}/{obj['metadata']['name']}"
)
def test_images_pinned(workload: dict[str, Any]) -> None:
    for container in containers(workload):
        image = container["image"]
        assert ":" in image, f"{image} has no tag"
        assert not image.endswith(":latest"), f"{image} is not pinned"


def test_service_selects_deployment(deployment: dict[str, Any]) -> None:
    service = k8s_object("Service", "bookrecs-service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    (port,) = service["spec"]["ports"]
    assert port["targetPort"] == "http"


def test_hpa_targets_deployment(deployment: dict[str, Any]) -> None:
    hpa = k8s_object("HorizontalPodAutoscaler", "bookrecs-service")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    assert "replicas" not in deployment["spec"], "replicas would fight the autoscaler"
    assert hpa["spec"]["minReplicas"] >= 2
    budget = k8s_object("PodDisruptionBudget", "bookrecs-service")
    assert budget["spec"]["minAvailable"] < hpa["spec"]["minReplicas"]


def test_claims_exist() -> None:
    claim_names = {obj["metadata"]["name"] for obj in k8s_objects("PersistentVolumeClaim")}
    for workload in workloads():
        for volume in workload["spec"]["template"]["spec"].get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claim_names


def test_configmaps_exist() -> None:
    names = {obj["metadata"]["name"] for obj in k8s_objects("ConfigMap")}
    for workload in workloads():
        for container in containers(workload):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in names


def test_service_settings_valid(service_container: dict[str, Any]) -> None:
    settings = pytest.importorskip("bentos.settings")
    config_map = k8s_object("ConfigMap", "bookrecs-service-settings")
    environ = {k: v for k, v in config_map["data"].items() if k.startswith("BOOKRECS_")}
    for item in service_container["env"]:
        if item["name"].startswith("BOOKRECS_"):
            environ[item["name"]] = item["value"].replace("$(POD_NAME)", "bookrecs-service-0")

    parsed = settings.ServiceSettings.from_env(environ)

    assert str(parsed.impressions) == "/impressions/bookrecs-service-0.sqlite"
    assert parsed.variants == ("control", "treatment")


def test_pointer_on_model_volume(service_container: dict[str, Any]) -> None:
    config_map = k8s_object("ConfigMap", "bookrecs-service-settings")
    pointer = config_map["data"]["BOOKRECS_SERVING_POINTER"]
    mounts = {m["name"]: m for m in service_container["volumeMounts"]}
    assert pointer.startswith(mounts["models"]["mountPath"] + "/")
    assert mounts["models"]["readOnly"] is True
    store = REPO_ROOT / "bentos" / "store.py"
    if store.exists():
        assert 'POINTER_FILE = "bookrecs-serving.json"' in store.read_text()
    assert pointer.endswith("/bookrecs-serving.json")
    # Bundle paths in the pointer are absolute, so the training image must write the store
    # at the same path.
    dockerfile = (INFRA / "Dockerfile.train").read_text()
    assert f"BENTOML_HOME={mounts['models']['mountPath']} " in dockerfile


def test_impressions_per_pod(service_container: dict[str, Any]) -> None:
    env = {item["name"]: item for item in service_container["env"]}
    assert env["POD_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    assert env["BOOKRECS_IMPRESSIONS"]["value"] == "/impressions/$(POD_NAME).sqlite"
    # Kubernetes expands $(VAR) only for variables defined earlier in the list.
    names = [item["name"] for item in service_container["env"]]
    assert names.index("POD_NAME") < names.index("BOOKRECS_IMPRESSIONS")


def test_runs_as_bento_user(deployment: dict[str, Any]) -> None:
    from bentoml._internal.container.generate import BENTO_UID_GID

    security = deployment["spec"]["template"]["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == BENTO_UID_GID
    assert security["fsGroup"] == BENTO_UID_GID


def test_jobs_use_training_image() -> None:
    profile_image = (INFRA / "metaflow" / "config_kubernetes.json").read_text()
    for path in sorted((K8S / "jobs").glob("*.yaml")):
        (job,) = load_yaml_documents(path)
        (container,) = job["spec"]["template"]["spec"]["containers"]
        assert f'"{container["image"]}"' in profile_image, path.name


def test_store_job_runs_store_cli() -> None:
    (job,) = load_yaml_documents(K8S / "jobs" / "model-store.yaml")
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["command"] == ["python", "-m", "bentos.store"]
    assert container["args"] == ["rollback"]
    store = REPO_ROOT / "bentos" / "store.py"
    if store.exists():
        assert "rollback" in store.read_text()
