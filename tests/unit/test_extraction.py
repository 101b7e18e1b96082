"""Reading checked fields out of real tools' outputs (domain/extraction.py) with the bundled bindings."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from opsmith.domain.binding import Binding
from opsmith.domain.extraction import Each, extract, parsed
from opsmith.planner.bindings import load_bindings

KUBERNETES = {s.name: s for s in load_bindings()}["mcp-server-kubernetes"]


def _binding(capability: str) -> Binding:
    return KUBERNETES.for_capability(capability)[0]


def _pod(name: str, phase: str, ready: bool, image: str, waiting: str | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"waiting": {"reason": waiting}} if waiting else {"running": {}}
    return {
        "metadata": {"name": name},
        "spec": {"containers": [{"name": "app", "image": image}]},
        "status": {
            "phase": phase,
            "containerStatuses": [{"name": "app", "ready": ready, "restartCount": 3, "state": state}],
        },
    }


# What `kubectl get pods -o yaml` prints (mcp-server-kubernetes passes it on as text).
POD_LIST_YAML = """apiVersion: v1
kind: List
items:
- metadata: {name: web-1}
  spec:
    containers: [{name: app, image: "myorg/web:2"}]
  status:
    phase: Running
    containerStatuses: [{name: app, ready: true, restartCount: 0, state: {running: {}}}]
- metadata: {name: web-2}
  spec:
    containers: [{name: app, image: "myorg/web:2"}]
  status:
    phase: Running
    containerStatuses:
    - {name: app, ready: false, restartCount: 7, state: {waiting: {reason: CrashLoopBackOff}}}
"""


def test_pods_from_kubectl_yaml_show_the_crash_loop_and_the_images() -> None:
    binding = _binding("verify_pods")
    read = extract(binding.output, structured=None, text=POD_LIST_YAML, args={})
    assert read["pods"] == [
        {"name": "web-1", "status": "Running", "ready": True, "image": "myorg/web:2", "restarts": 0},
        {
            "name": "web-2",
            "status": "CrashLoopBackOff",
            "ready": False,
            "image": "myorg/web:2",
            "restarts": 7,
        },
    ]
    assert (read["total"], read["not_ready"], read["crash_looping"]) == (2, 1, 1)


def test_all_pods_ready_gives_zero_not_ready() -> None:
    binding = _binding("verify_pods")
    text = json.dumps({"items": [_pod("a", "Running", True, "x:1"), _pod("b", "Running", True, "x:1")]})
    read = extract(binding.output, structured=None, text=text, args={})
    assert (read["total"], read["not_ready"], read["crash_looping"]) == (2, 0, 0)


def test_deployment_status_reads_availability_revision_and_image() -> None:
    deployment = {
        "metadata": {"name": "web", "annotations": {"deployment.kubernetes.io/revision": "4"}},
        "spec": {"replicas": 3, "template": {"spec": {"containers": [{"image": "myorg/web:4"}]}}},
        "status": {
            "readyReplicas": 2,
            "conditions": [
                {"type": "Progressing", "status": "True"},
                {"type": "Available", "status": "False"},
            ],
        },
    }
    read = extract(
        _binding("deployment_status").output, structured=None, text=json.dumps(deployment), args={}
    )
    assert read["replicas"] == 3 and read["ready_replicas"] == 2 and read["image"] == "myorg/web:4"
    assert read["available"] is False
    assert read["revision"] == 4 and read["revision_history"] == [3, 4]


def test_first_revision_has_no_previous_one() -> None:
    deployment = {"metadata": {"annotations": {"deployment.kubernetes.io/revision": "1"}}, "status": {}}
    read = extract(
        _binding("deployment_status").output, structured=None, text=json.dumps(deployment), args={}
    )
    assert read["revision_history"] == [1] and read["available"] is False


def test_endpoints_count_ready_addresses() -> None:
    endpoints = {
        "subsets": [{"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}]}, {"notReadyAddresses": [{}]}]
    }
    read = extract(_binding("check_service").output, structured=None, text=json.dumps(endpoints), args={})
    assert read == {"ready_endpoints": 2, "healthy": True}
    none = extract(_binding("check_service").output, structured=None, text='{"subsets": []}', args={})
    assert none == {"ready_endpoints": 0, "healthy": False}


def test_log_lines_with_errors_make_the_logs_unhealthy() -> None:
    text = "starting\nERROR: config/production.json not found\nretrying\nTraceback (most recent call last):\n"
    read = extract(_binding("check_logs").output, structured=None, text=text, args={})
    assert read["errors"] == 2 and read["health"] == "unhealthy"
    assert read["error_lines"][0].startswith("ERROR: config/production.json")
    clean = extract(
        _binding("check_logs").output, structured=None, text="started\nlistening on 8080\n", args={}
    )
    assert clean["errors"] == 0 and clean["health"] == "healthy"


def test_the_deployed_image_is_read_from_the_manifest_the_call_sent() -> None:
    manifest = (
        "kind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - image: myorg/web:9\n"
    )
    read = extract(
        _binding("deploy").output,
        structured=None,
        text="deployment.apps/web configured\n",
        args={"manifest": manifest},
    )
    assert read == {"image": "myorg/web:9", "message": "deployment.apps/web configured"}


def test_an_output_of_another_shape_leaves_fields_unread_rather_than_guessed() -> None:
    read = extract(_binding("verify_pods").output, structured=None, text="error: connection refused", args={})
    assert "pods" not in read and "not_ready" not in read and "crash_looping" not in read


def test_structured_content_is_read_first_and_never_overwritten_by_name() -> None:
    spec: dict[str, str | Each] = {"count": "data['items'] | length"}
    assert extract(spec, structured={"items": [1, 2, 3]}, text="[]", args={}) == {"count": 3}


def test_a_binding_with_a_broken_expression_is_refused_when_loaded() -> None:
    with pytest.raises(ValidationError, match=r"output\.ready"):
        Binding(capability="verify_pods", tool="t", output={"ready": "data.items | | length"})
    with pytest.raises(ValidationError, match="both fixed and templated"):
        Binding(capability="scale", tool="t", fixed={"name": "a"}, args={"name": "{{ app }}"})


def test_expressions_cannot_reach_python_internals() -> None:
    spec: dict[str, str | Each] = {"leak": "data.__class__.__mro__[1].__subclasses__()"}
    assert extract(spec, structured={"a": 1}, text="", args={}) == {}


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)


@settings(deadline=None)  # the first example compiles every expression of the bindings
@given(JSONISH, st.text(max_size=200))
def test_any_output_gives_plain_json_fields_or_none_and_never_raises(data: Any, text: str) -> None:
    for capability in ("verify_pods", "deployment_status", "check_service", "check_logs", "backup"):
        binding = _binding(capability)
        structured = data if isinstance(data, dict) else None
        read = extract(
            binding.output, structured=structured, text=json.dumps(data) if text == "" else text, args={}
        )
        json.dumps(read)  # what is stored and compared is plain JSON
        assert set(read) <= set(binding.output)


@given(JSONISH)
def test_parsed_gives_back_any_json_mapping_or_list(data: Any) -> None:
    wrapped = {"value": data}
    assert parsed(json.dumps(wrapped)) == wrapped
    assert parsed(json.dumps([data])) == [data]


def test_a_step_checks_the_fields_its_binding_reads_and_fails_on_a_crash_loop() -> None:
    from opsmith.domain.evidence import Condition
    from opsmith.domain.plan import Step
    from opsmith.domain.results import ToolResult
    from opsmith.engine.conditions import unmet_expectations
    from opsmith.engine.outputs import step_output

    binding = _binding("verify_pods")
    step = Step(
        id="verify_pods",
        name="Verify pods",
        capability="verify_pods",
        server="k8s",
        tool="kubectl_get",
        risk="LOW",
        expect=[
            Condition.model_validate({"path": "pods.*.status", "op": "==", "value": "Running"}),
            Condition.model_validate({"path": "crash_looping", "op": "==", "value": 0}),
        ],
        extract=dict(binding.output),
    )
    result = ToolResult(server="k8s", tool="kubectl_get", text=POD_LIST_YAML)
    output = step_output(step, result, {})
    assert output["text"] == POD_LIST_YAML and output["crash_looping"] == 1
    unmet = unmet_expectations(step, output)
    assert unmet and any("CrashLoopBackOff" in u for u in unmet)
    healthy = POD_LIST_YAML.replace("ready: false", "ready: true").replace(
        "state: {waiting: {reason: CrashLoopBackOff}}", "state: {running: {}}"
    )
    fine = step_output(step, ToolResult(server="k8s", tool="kubectl_get", text=healthy), {})
    assert unmet_expectations(step, fine) == []


def test_a_backup_records_a_manifest_kubectl_apply_takes_back() -> None:
    live = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: production
  labels: {app: web}
  resourceVersion: "81234"
  uid: 0b7c
  annotations: {deployment.kubernetes.io/revision: "6"}
spec:
  replicas: 2
  template:
    spec:
      containers: [{name: web, image: "myorg/web:6"}]
status: {readyReplicas: 2}
"""
    read = extract(_binding("backup").output, structured=None, text=live, args={})
    assert read["backup_id"] == "production/web@81234" and read["revision"] == 6
    restored = json.loads(read["manifest"])
    assert restored == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "production", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "template": {"spec": {"containers": [{"name": "web", "image": "myorg/web:6"}]}},
        },
    }
    assert "manifest" not in extract(_binding("backup").output, structured=None, text="kind: x\n", args={})


def test_a_settling_check_is_asked_about_a_dozen_times_one_to_five_seconds_apart() -> None:
    from opsmith.engine.outputs import settle_pause

    assert settle_pause(None, 0) is None
    assert settle_pause(60, 0) == 5.0 and settle_pause(60, 55.0) == 5.0 and settle_pause(60, 55.1) is None
    assert settle_pause(6, 0) == 1.0 and settle_pause(6, 5.5) is None
    assert settle_pause(24, 10) == 2.0
