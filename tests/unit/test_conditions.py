"""Step conditions: `*` checks every item of a list, values may refer to earlier steps' outputs."""

from __future__ import annotations

from typing import Any

import pytest

from opsmith.domain.evidence import Condition, StepCondition
from opsmith.domain.plan import Step
from opsmith.domain.playbook import PlaybookStep
from opsmith.engine.conditions import unmet_expectations, unmet_when
from opsmith.planner.expand import expand
from opsmith.planner.playbooks import load_playbooks
from tests.unit.test_engine_helpers import step

RUNNING = Condition(path="pods.*.status", op="==", value="Running")
READY = Condition(path="pods.*.ready", op="==", value=True)


def expecting(*conditions: Condition) -> Step:
    return step("verify").model_copy(update={"expect": list(conditions)})


def pod(name: str, status: str = "Running", **more: Any) -> dict[str, Any]:
    return {"name": name, "status": status, "ready": status == "Running", **more}


def test_every_item_must_hold() -> None:
    verify = expecting(RUNNING, READY)
    assert unmet_expectations(verify, {"pods": [pod("a"), pod("b")]}) == []
    crashing = pod("web-2", "CrashLoopBackOff", message="Back-off restarting: Error: Cannot find module")
    assert unmet_expectations(verify, {"pods": [pod("a"), crashing]}) == [
        "pods.*.status == 'Running' (found pods.1.status='CrashLoopBackOff' "
        "(web-2: Back-off restarting: Error: Cannot find module))",
        "pods.*.ready == True (found pods.1.ready=False "
        "(web-2: Back-off restarting: Error: Cannot find module))",
    ]
    # A pod's own message names it already.
    named = pod("web-2", "CrashLoopBackOff", message="Back-off restarting failed container in pod web-2")
    assert unmet_expectations(expecting(RUNNING), {"pods": [named]}) == [
        "pods.*.status == 'Running' (found pods.0.status='CrashLoopBackOff' "
        "(Back-off restarting failed container in pod web-2))"
    ]


def test_no_items_prove_nothing() -> None:
    verify = expecting(READY)
    assert unmet_expectations(verify, {"pods": []}) == ["pods.*.ready == True (found pods=no items)"]
    assert unmet_expectations(verify, {}) == ["pods.*.ready == True (found pods=absent)"]
    assert unmet_expectations(verify, {"pods": "none"}) == ["pods.*.ready == True (found pods='none')"]


def test_many_failures_are_counted_after_the_first_few() -> None:
    unmet = unmet_expectations(expecting(READY), {"pods": [{"ready": False}] * 5})
    assert unmet == [
        "pods.*.ready == True (found pods.0.ready=False; pods.1.ready=False; pods.2.ready=False; and 2 more)"
    ]


def test_stars_nest_and_reach_mapping_values_and_whole_items() -> None:
    nested = Condition(path="pods.*.error_lines.*", op="==", value="")
    output = {"pods": [{"error_lines": [""]}, {"pod": "p2", "error_lines": ["", "Error: boom"]}]}
    assert unmet_expectations(expecting(nested), output) == [
        "pods.*.error_lines.* == '' (found pods.1.error_lines.1='Error: boom' (p2))"
    ]
    split = Condition(path="traffic_split.*", op=">", value=0)
    assert unmet_expectations(expecting(split), {"traffic_split": {"rs-a": 90, "rs-b": 10}}) == []
    assert unmet_expectations(expecting(split), {"traffic_split": {"rs-a": 100, "rs-b": 0}}) == [
        "traffic_split.* > 0 (found traffic_split.rs-b=0)"
    ]
    present = Condition(path="endpoints.*.ip", op="exists")
    assert unmet_expectations(expecting(present), {"endpoints": [{"ip": "10.0.0.1"}, {"ip": None}]}) == [
        "endpoints.*.ip exists (found endpoints.1.ip=None)"
    ]


def test_a_plain_path_reads_as_before() -> None:
    assert unmet_expectations(expecting(Condition(path="total", op="==", value=0)), {"total": 2}) == [
        "total == 0 (found 2)"
    ]


IMAGE = Condition(path="pods.*.image", op="==", value="${steps.deploy.image}")
OUTPUTS = {"deploy": {"image": "myorg/app:1.1", "replicas": 2}, "backup": None}


def test_a_value_refers_to_what_an_earlier_step_returned() -> None:
    verify = expecting(IMAGE)
    new = {"pods": [pod("a", image="myorg/app:1.1"), pod("b", image="myorg/app:1.1")]}
    assert unmet_expectations(verify, new, OUTPUTS) == []
    mixed = {"pods": [pod("a", image="myorg/app:1.0"), pod("b", image="myorg/app:1.1")]}
    assert unmet_expectations(verify, mixed, OUTPUTS) == [
        "pods.*.image == 'myorg/app:1.1' (found pods.0.image='myorg/app:1.0' (a))"
    ]
    # A whole reference keeps its type; one inside text is written as text.
    count = expecting(Condition(path="total", op="==", value="${steps.deploy.replicas}"))
    assert unmet_expectations(count, {"total": 2}, OUTPUTS) == []
    tag = expecting(Condition(path="image", op="==", value="${steps.deploy.image}-debug"))
    assert unmet_expectations(tag, {"image": "myorg/app:1.1-debug"}, OUTPUTS) == []


@pytest.mark.parametrize(
    ("value", "outputs", "why"),
    [
        ("${steps.deploy.image}", None, "${steps.deploy.image} needs the outputs of earlier steps"),
        ("${steps.push.image}", OUTPUTS, "${steps.push.image}: step push has no output"),
        ("${steps.backup.id}", OUTPUTS, "${steps.backup.id}: step backup has no output"),
        ("${steps.deploy.digest}", OUTPUTS, "${steps.deploy.digest}: the output of deploy has no digest"),
    ],
)
def test_a_reference_that_cannot_be_resolved_leaves_the_condition_unmet(
    value: str, outputs: dict[str, Any] | None, why: str
) -> None:
    # Never compared with the literal text, which the output here even holds.
    unmet = unmet_expectations(
        expecting(Condition(path="image", op="==", value=value)), {"image": value}, outputs
    )
    assert len(unmet) == 1 and unmet[0].startswith(f"image == {value!r}: cannot be checked: {why}")


def test_when_conditions_use_stars_and_references_too() -> None:
    guarded = step("promote").model_copy(
        update={
            "when": [
                StepCondition(step="monitor", path="pods.*.image", op="==", value="${steps.deploy.image}")
            ]
        }
    )
    outputs: dict[str, Any] = {**OUTPUTS, "monitor": {"pods": [{"image": "myorg/app:1.1"}]}}
    assert unmet_when(guarded, outputs) == []
    outputs["monitor"] = {"pods": [{"image": "myorg/app:1.0"}]}
    assert unmet_when(guarded, outputs) == [
        "monitor.pods.*.image == 'myorg/app:1.1' (found pods.0.image='myorg/app:1.0')"
    ]


def test_per_subject_copies_refer_to_their_own_copies_in_expectations() -> None:
    steps = [
        PlaybookStep(id="deploy", capability="deploy", name="Deploy", for_each="subject"),
        PlaybookStep(
            id="validate",
            capability="verify_pods",
            name="Validate",
            for_each="subject",
            depends_on=["deploy"],
            expect=[IMAGE],
        ),
    ]
    drafts = {d.id: d for d in expand(steps, ["svc-a", "svc-b"])}
    assert drafts["validate_svc_a"].source.expect[0].value == "${steps.deploy_svc_a.image}"
    assert drafts["validate_svc_b"].source.expect[0].value == "${steps.deploy_svc_b.image}"
    single = {d.id: d for d in expand(steps, ["svc-a"])}
    assert single["validate"].source.expect == [IMAGE]


CHECKS = {"verify_pods", "check_logs", "check_service"}


def _names_a_check(name: str) -> bool:
    # "Check the revision history" and "Deployment status of X" check; "Read the current
    # deployment" (before a scale) only reads what the undo needs.
    return "check" in name.lower() or "status" in name.lower()


def test_every_bundled_verify_and_check_step_can_fail() -> None:
    checks = [
        (playbook.name, s)
        for playbook in load_playbooks()
        for s in playbook.steps
        if s.capability in CHECKS or (s.capability == "deployment_status" and _names_a_check(s.name))
    ]
    assert len(checks) >= 25
    assert [(name, s.id) for name, s in checks if not s.expect] == []
    for name, s in checks:
        after_a_change = s.capability in {"verify_pods", "check_logs"} and bool(s.depends_on)
        if after_a_change and name not in ("delete", "scale"):
            # Pods a rollout just started may still be starting: the read waits for them.
            assert s.args.get("wait_seconds", 0) > 0, (name, s.id)
