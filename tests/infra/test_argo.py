"""Argo Workflows: schedules reference the templates that Metaflow deploys for the flows."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.infra.conftest import (
    INFRA,
    PYTHON,
    REPO_ROOT,
    flow_env,
    flow_parameters,
    load_profile,
    load_yaml_documents,
    s3_env,
)
from tests.infra.test_metaflow_profiles import TINY_FLOW

CRON_FILES = sorted((INFRA / "argo").glob("*.yaml"))
FLOW_FOR_TEMPLATE = {"trainflow": "flows/train.py", "driftflow": "flows/drift.py"}


def cron_workflows() -> list[dict[str, Any]]:
    return [doc for path in CRON_FILES for doc in load_yaml_documents(path)]


def cron_parameters(cron: dict[str, Any]) -> set[str]:
    """Return the names of the parameters a CronWorkflow passes to its template."""
    arguments = cron["spec"]["workflowSpec"].get("arguments", {})
    return {parameter["name"] for parameter in arguments.get("parameters", [])}


def test_cron_files_exist() -> None:
    assert [path.name for path in CRON_FILES] == ["drift-cron.yaml", "retrain-cron.yaml"]


@pytest.mark.parametrize("cron", cron_workflows(), ids=lambda cron: cron["metadata"]["name"])
def test_cron_structure(cron: dict[str, Any]) -> None:
    assert cron["apiVersion"] == "argoproj.io/v1alpha1"
    assert cron["kind"] == "CronWorkflow"
    assert (
        cron["metadata"]["namespace"] == load_profile("kubernetes")["METAFLOW_KUBERNETES_NAMESPACE"]
    )
    spec = cron["spec"]
    assert spec["schedules"], "no schedule"
    for schedule in spec["schedules"]:
        assert len(schedule.split()) == 5, f"not a 5-field cron expression: {schedule!r}"
    assert spec["concurrencyPolicy"] == "Forbid"
    template = spec["workflowSpec"]["workflowTemplateRef"]["name"]
    assert template in FLOW_FOR_TEMPLATE
    # `argo-workflows create` rewrites a CronWorkflow named like the template.
    assert cron["metadata"]["name"] != template
    for parameter in spec["workflowSpec"].get("arguments", {}).get("parameters", []):
        json.loads(parameter["value"])


def unknown_fields(data: Any, model: Any, path: str = "") -> list[str]:
    """Return the paths of keys in `data` that the Argo API model `model` does not define."""
    if not isinstance(data, dict) or not hasattr(model, "attribute_map"):
        return []
    python_names = {json_name: name for name, json_name in model.attribute_map.items()}
    unknown = []
    for key, value in data.items():
        if key not in python_names:
            unknown.append(f"{path}/{key}")
            continue
        for field_type in model.openapi_types[python_names[key]]:
            if isinstance(field_type, list) and isinstance(value, list):
                for index, item in enumerate(value):
                    unknown += unknown_fields(item, field_type[0], f"{path}/{key}/{index}")
            else:
                unknown += unknown_fields(value, field_type, f"{path}/{key}")
    return unknown


@pytest.fixture(scope="module")
def cron_model() -> Any:
    pytest.importorskip(
        "argo_workflows", reason="the Argo API models ship with argo-workflows==6.7.18"
    )
    from argo_workflows.model.io_argoproj_workflow_v1alpha1_cron_workflow import (
        IoArgoprojWorkflowV1alpha1CronWorkflow,
    )

    return IoArgoprojWorkflowV1alpha1CronWorkflow


def deserialize_cron(document: dict[str, Any], model: Any) -> Any:
    """Build the Argo API object from a manifest, checking every field's type."""
    from argo_workflows.api_client import ApiClient
    from argo_workflows.configuration import Configuration

    class Response:
        data = json.dumps(document)

    return ApiClient(Configuration()).deserialize(Response(), (model,), True)


@pytest.mark.parametrize("cron", cron_workflows(), ids=lambda cron: cron["metadata"]["name"])
def test_cron_matches_argo_api(cron: dict[str, Any], cron_model: Any) -> None:
    assert unknown_fields(cron, cron_model) == []

    parsed = deserialize_cron(cron, cron_model)

    assert parsed.spec.schedules == cron["spec"]["schedules"]


def test_argo_api_rejects_typo(cron_model: Any) -> None:
    from argo_workflows.exceptions import ApiTypeError

    broken = copy.deepcopy(cron_workflows()[0])
    broken["spec"]["workflowSpec"]["workflowTemplateRef"]["nmae"] = "trainflow"
    broken["spec"]["startingDeadlineSeconds"] = "soon"

    assert unknown_fields(broken, cron_model) == ["/spec/workflowSpec/workflowTemplateRef/nmae"]
    with pytest.raises(ApiTypeError):
        deserialize_cron(broken, cron_model)


@pytest.mark.parametrize("cron", cron_workflows(), ids=lambda cron: cron["metadata"]["name"])
def test_cron_matches_flow(cron: dict[str, Any]) -> None:
    template = cron["spec"]["workflowSpec"]["workflowTemplateRef"]["name"]
    flow_file = REPO_ROOT / FLOW_FOR_TEMPLATE[template]
    if not flow_file.exists():
        pytest.skip(f"{flow_file.relative_to(REPO_ROOT)} does not exist yet")

    class_name, parameters = flow_parameters(flow_file)

    assert class_name.lower() == template
    passed = cron_parameters(cron)
    assert passed <= parameters, f"unknown parameters {sorted(passed - parameters)}"


def compile_to_argo(flow: Path, tmp_path: Path, s3_url: str) -> dict[str, Any]:
    """Return the WorkflowTemplate that `argo-workflows create --only-json` prints for `flow`."""
    pytest.importorskip("kubernetes", reason="Metaflow's Argo support needs kubernetes==36.0.3")
    env = flow_env(tmp_path, METAFLOW_PROFILE="kubernetes", **s3_env(s3_url))
    result = subprocess.run(
        [PYTHON, str(flow), "--no-pylint", "argo-workflows", "create", "--only-json"],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"argo-workflows create failed:\n{result.stderr}"
    return json.loads(result.stdout)


def step_templates(workflow: dict[str, Any]) -> list[dict[str, Any]]:
    """Return the templates that run flow steps (Metaflow annotates them with the step name)."""
    return [
        t
        for t in workflow["spec"]["templates"]
        if "metaflow/step_name" in ((t.get("metadata") or {}).get("annotations") or {})
    ]


@pytest.mark.slow
def test_kubernetes_profile_compiles(tmp_path: Path, s3_server: str) -> None:
    flow = tmp_path / "tiny_flow.py"
    flow.write_text(TINY_FLOW)
    profile = load_profile("kubernetes")

    workflow = compile_to_argo(flow, tmp_path, s3_server)

    assert workflow["kind"] == "WorkflowTemplate"
    assert workflow["metadata"]["name"] == "tinyflow"
    assert workflow["metadata"]["namespace"] == profile["METAFLOW_KUBERNETES_NAMESPACE"]
    steps = step_templates(workflow)
    assert {t["name"] for t in steps} >= {"start", "end"}
    for template in steps:
        container = template["container"]
        assert container["image"] == profile["METAFLOW_KUBERNETES_CONTAINER_IMAGE"]
        assert template["serviceAccountName"] == profile["METAFLOW_KUBERNETES_SERVICE_ACCOUNT"]
        secrets = [ref["secretRef"]["name"] for ref in container["envFrom"]]
        assert secrets == [profile["METAFLOW_KUBERNETES_SECRETS"]]
        mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
        claims = json.loads(profile["METAFLOW_KUBERNETES_PERSISTENT_VOLUME_CLAIMS"])
        for claim, path in claims.items():
            assert mounts[claim] == path
        env = {item["name"]: item.get("value") for item in container["env"]}
        assert env["METAFLOW_SERVICE_URL"] == profile["METAFLOW_SERVICE_INTERNAL_URL"]
        assert env["METAFLOW_DEFAULT_DATASTORE"] == "s3"
    parameters = {p["name"] for p in workflow["spec"]["arguments"]["parameters"]}
    assert "data-dir" in parameters


@pytest.mark.slow
@pytest.mark.parametrize("template", sorted(FLOW_FOR_TEMPLATE))
def test_flow_compiles_for_argo(template: str, tmp_path: Path, s3_server: str) -> None:
    flow = REPO_ROOT / FLOW_FOR_TEMPLATE[template]
    if not flow.exists():
        pytest.skip(f"{flow.relative_to(REPO_ROOT)} does not exist yet")

    workflow = compile_to_argo(flow, tmp_path, s3_server)

    assert workflow["metadata"]["name"] == template
    parameters = {p["name"] for p in workflow["spec"]["arguments"]["parameters"]}
    for cron in cron_workflows():
        if cron["spec"]["workflowSpec"]["workflowTemplateRef"]["name"] == template:
            passed = cron_parameters(cron)
            assert passed <= parameters, f"{cron['metadata']['name']}: {sorted(passed)}"
