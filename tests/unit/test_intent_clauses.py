"""Every part of a request is accounted for: planned, or the whole request refused naming it.

The planner runs at a pure level here: a catalog value of tools like the sandbox servers', the
bundled playbooks and a fixed clock; no server is started.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opsmith.config import parse_config
from opsmith.domain.catalog import Catalog, ToolHints, ToolSpec
from opsmith.domain.errors import IntentError, PlanError, UsageError
from opsmith.domain.intent import ACTIONS, RequestClause, Vocabulary, parse_intent
from opsmith.domain.plan import Plan
from opsmith.planner.planner import Planner, Situation
from opsmith.planner.playbooks import load_playbooks

CONFIG = parse_config(
    """
applications:
  my-application: {}
  microservice-one: {strategy: canary}
  microservice-two: {strategy: canary}
  payments-api: {}
planning:
  default_application: my-application
  image_repository: "myorg/{app}"
""",
    source="test",
)
READ = ToolHints(read_only=True)
WRITE = ToolHints(read_only=False, destructive=False)
DESTROY = ToolHints(read_only=False, destructive=True)
# The tools of the sandbox servers, by name and behaviour: enough for the mapping to choose each.
TOOLS = [
    ("jenkins", "trigger_build", "Trigger a build of a branch", WRITE),
    ("jenkins", "run_tests", "Run the test suite of a build", WRITE),
    ("sonarqube", "analyze_project", "Analyze code quality and check the quality gate", WRITE),
    ("sonarqube", "get_vulnerabilities", "List security vulnerabilities", READ),
    ("registry", "push_image", "Build and push an image", WRITE),
    ("registry", "verify_image", "Verify an image's signature and scan", READ),
    ("kubernetes", "backup_deployment", "Back up a deployment", WRITE),
    ("kubernetes", "apply_deployment", "Apply a deployment with a new image", WRITE),
    ("kubernetes", "canary_deployment", "Start a canary with a traffic weight", WRITE),
    ("kubernetes", "promote_canary", "Promote the canary to all replicas", WRITE),
    ("kubernetes", "switch_traffic", "Switch traffic to the other colour", WRITE),
    ("kubernetes", "get_pods", "List the pods of a deployment", READ),
    ("kubernetes", "get_pod_logs", "Read pod logs", READ),
    ("kubernetes", "get_service", "Read a service and its endpoints", READ),
    ("kubernetes", "get_deployment_status", "Status of a deployment rollout", READ),
    ("kubernetes", "scale_deployment", "Scale a deployment", WRITE),
    ("kubernetes", "rollback_deployment", "Roll back a deployment", WRITE),
    ("kubernetes", "delete_deployment", "Delete a deployment", DESTROY),
]
CATALOG = Catalog(
    [ToolSpec(server=server, name=name, description=text, hints=hints) for server, name, text, hints in TOOLS]
)
NOW = datetime(2026, 11, 24, 10, 0, tzinfo=UTC)  # a Tuesday morning: no context rules
PLANNER = Planner(CONFIG, load_playbooks())
APPS = ["my-application", "microservice-one", "microservice-two", "payments-api"]


def plan(request: str) -> Plan:
    return PLANNER.plan(request, Situation(catalog=CATALOG, now=NOW))


def refused(request: str) -> UsageError:
    with pytest.raises((IntentError, PlanError)) as caught:
        plan(request)
    error = caught.value
    assert isinstance(error, UsageError) and error.hint
    return error


# -- the example of the issue ------------------------------------------------------------------


def test_the_second_part_of_the_issue_example_is_refused_by_name() -> None:
    request = "deploy microservice-two to staging and then wipe the staging cache"
    error = refused(request)
    assert isinstance(error, IntentError)
    assert '"wipe the staging cache"' in error.message and '"wipe"' in error.message
    assert "every part" in error.message
    assert error.hint is not None and '"deploy microservice-two to staging"' in error.hint
    assert all(action in error.hint for action in ACTIONS)
    with pytest.raises(IntentError):  # `opsmith intent` says the same: nothing is shown as planned
        PLANNER.intent(request)


def test_the_first_part_alone_still_plans() -> None:
    result = plan("deploy microservice-two to staging")
    assert result.playbook == "environment_deployment" and result.intent.actions == ["deploy"]
    assert result.intent.clauses == [
        RequestClause(
            text="deploy microservice-two to staging",
            action="deploy",
            verb="deploy",
            subjects=["microservice-two"],
        )
    ]


# -- what keeps planning as before ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_text", "playbook", "actions"),
    [
        ("Deploy microservice-one and microservice-two to prod", "multi_service", ["deploy"]),
        ("build, test and deploy payments-api to staging", "environment_deployment", ["deploy"]),
        ("Deploy the code to Kubernetes production", "production_deployment", ["deploy"]),
        ("Deploy microservice-one to production", "production_canary", ["deploy"]),
        ("URGENT: Deploy hotfix to production NOW", "urgent_hotfix", ["hotfix"]),
        ("Rollback production deployment", "rollback", ["rollback"]),
        ("Scale staging to 5 replicas", "scale", ["scale"]),
        ("Delete microservice-two from staging", "delete", ["delete"]),
        ("Show status of payments-api in production", "status", ["check"]),
        (
            "deploy payments-api to staging and verify it is healthy",
            "environment_deployment",
            ["deploy", "check"],
        ),
        (
            "deploy payments-api to staging, then check its status",
            "environment_deployment",
            ["deploy", "check"],
        ),
        ("Deploy payments-api to staging and then run smoke tests", "environment_deployment", ["deploy"]),
        (
            "deploy payments-api to staging, roll back if it fails",
            "environment_deployment",
            ["deploy", "rollback"],
        ),
        (
            "deploy payments-api to staging and deploy my-application to staging",
            "multi_service",
            ["deploy", "deploy"],
        ),
        ("Deploy payments-api to staging and log results", "environment_deployment", ["deploy"]),
        ("please deploy payments-api to staging, thanks", "environment_deployment", ["deploy"]),
        ("deploy payments-api to staging asap", "environment_deployment", ["deploy"]),
        (
            "deploy payments-api to staging and then to production if it passes",
            "production_deployment",
            ["deploy"],
        ),
        ("Please roll back payments-api in prod, it's broken", "rollback", ["rollback"]),
        ("Deploy payments-api to production, blue green", "production_blue_green", ["deploy"]),
        ("can you deploy payments-api to staging please? cheers", "environment_deployment", ["deploy"]),
    ],
)
def test_servable_requests_plan_with_every_part_in_actions(
    request_text: str, playbook: str, actions: list[str]
) -> None:
    result = plan(request_text)
    assert result.playbook == playbook
    assert result.intent.actions == actions
    assert [c.action for c in result.intent.clauses if c.action] == actions


def test_fillers_are_not_clauses_and_notes_are() -> None:
    intent = PLANNER.intent("Please build, test and deploy payments-api to staging if it passes, thanks")
    assert [(c.action, c.verb) for c in intent.clauses] == [
        (None, "build"),
        (None, "test"),
        ("deploy", "deploy"),
    ]
    assert intent.unknown == [], "'passes' in a condition is not an application"
    assert intent.params["notes"] == ["Please build", "test"]


# -- refusals in the reader: a part with no known action -------------------------------------------


@pytest.mark.parametrize(
    ("request_text", "part", "word"),
    [
        (
            "deploy payments-api to staging and defragment the database",
            "defragment the database",
            "defragment",
        ),
        ("deploy payments-api to staging. Also format the disk", "format the disk", "format"),
        ("wipe the cache and deploy payments-api to staging", "wipe the cache", "wipe"),
        (
            "deploy payments-api to staging, then we need to flush the queues",
            "we need to flush the queues",
            "flush",
        ),
        ("Deploy payments-api to staging and then wipe", "wipe", "wipe"),
        (
            "deploy payments-api to staging and reindex search in production",
            "reindex search in production",
            "reindex",
        ),
    ],
)
def test_a_part_without_a_known_action_is_refused_naming_it(request_text: str, part: str, word: str) -> None:
    error = refused(request_text)
    assert isinstance(error, IntentError)
    assert f'"{part}"' in error.message and f'"{word}"' in error.message, error.message
    assert error.hint is not None and "leave that part out" in error.hint and "deploy, rollback" in error.hint


def test_an_unknown_word_read_as_a_name_is_refused_as_that_name() -> None:
    # "migrate" continues the slot "in staging" opened: as far as words tell, a group's name.
    error = refused("rollback payments-api in staging, please then migrate to the new database")
    assert "migrate" in error.message


def test_several_unknown_parts_are_all_named() -> None:
    error = refused("deploy payments-api to staging, wipe the cache and defragment the disks")
    assert '"wipe the cache"' in error.message and '"defragment the disks"' in error.message


def test_names_that_continue_a_clause_are_not_refused() -> None:
    intent = parse_intent("install nginx and postgresql on db-01", Vocabulary())
    assert intent.params["packages"] == ["nginx", "postgresql"]
    intent = parse_intent("restart nginx and apache too, asap", Vocabulary())
    assert intent.params["services"] == ["nginx", "apache"] and intent.urgency == "urgent"


# -- refusals in the planner: a part no playbook serves with the rest -------------------------------


def test_an_action_no_playbook_serves_is_refused_naming_it() -> None:
    error = refused("deploy payments-api to staging and restart payments-api")
    assert isinstance(error, PlanError)
    assert '"restart payments-api"' in error.message and "restart" in error.message
    assert "no playbook" in error.message
    assert error.hint is not None and '"deploy payments-api to staging"' in error.hint
    assert "deploy" in error.hint and "rollback" in error.hint and "scale" in error.hint


def test_an_action_another_playbook_serves_asks_to_split() -> None:
    error = refused("Deploy payments-api to staging and scale it to 3 replicas")
    assert isinstance(error, PlanError)
    assert '"scale it to 3 replicas"' in error.message and "scale" in error.message
    assert error.hint is not None and "split" in error.hint
    error = refused("check the status of payments-api in staging and then deploy it to staging")
    assert '"deploy it to staging"' in error.message and "status" in error.message
    error = refused("Deploy payments-api to staging and then rollback production")
    assert '"rollback production"' in error.message, "an unconditional rollback is its own plan"


def test_a_part_about_another_application_does_not_widen_the_plan() -> None:
    # Before, the subjects of every part were merged: checking b made the plan deploy b as well.
    error = refused("deploy payments-api to staging and check the status of microservice-one")
    assert isinstance(error, PlanError)
    assert '"check the status of microservice-one"' in error.message and "deploy as well" in error.message
    assert error.hint is not None and "split" in error.hint
    error = refused("build microservice-one and deploy payments-api to staging")
    assert '"build microservice-one"' in error.message
    result = plan("deploy payments-api to staging and check it")
    assert [c.subjects for c in result.intent.clauses] == [["payments-api"], ["payments-api"]]
    assert result.intent.subjects == ["payments-api"]


def test_a_part_that_names_nothing_to_act_on_is_refused() -> None:
    error = refused("Delete my-application from staging and purge the team")
    assert '"purge the team"' in error.message and "names nothing" in error.message


def test_a_note_no_step_does_is_refused_naming_it() -> None:
    error = refused("deploy payments-api to staging and email the team")
    assert isinstance(error, PlanError)
    assert '"email the team"' in error.message and '"email"' in error.message
    assert error.hint is not None and "leave it out" in error.hint


def test_a_note_whose_optional_step_is_left_out_is_refused() -> None:
    # production_canary notifies in an optional step; the catalog has no notification server.
    error = refused("Deploy microservice-one to production and notify the team")
    assert '"notify the team"' in error.message and "left out" in error.message
    assert plan("Deploy microservice-one to production").playbook == "production_canary"


def test_a_known_verb_with_an_unknown_object_names_the_part() -> None:
    error = refused("deploy payments-api to staging. Also purge the cache")
    assert '"purge the cache"' in error.message and "delete" in error.message


def test_a_semicolon_is_still_refused_as_a_shell_metacharacter_with_a_way_out() -> None:
    error = refused("deploy payments-api to staging; then wipe the cache")
    assert "shell metacharacter" in error.message
    assert error.hint is not None and '", then"' in error.hint


# -- properties ----------------------------------------------------------------------------------

PROPERTIES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
ENVIRONMENTS = ["staging", "stage", "dev", "development", "production", "prod"]
# Request shapes every part of which the bundled playbooks serve, for any app and environment.
SHAPES = [
    "Deploy {app} to {env}",
    "deploy {app} to {env}",
    "build, test and deploy {app} to {env}",
    "Deploy {app} and {other} to {env}",
    "Rollback {app} in {env}",
    "Scale {app} to {n} replicas in {env}",
    "Show status of {app} in {env}",
    "Delete {app} from {env}",
    "deploy {app} to {env} and verify it is healthy",
    "deploy {app} to {env}, roll back if it fails",
    "please deploy {app} to {env}, thanks",
    "deploy {app} to {env} asap",
    "Deploy {app} to {env} and then run the tests",
    "deploy {app} to {env} and deploy {other} to {env}",
    "Deploy {app} to {env}, check its status",
]
CONNECTORS = [", and then ", " and ", " and then ", ", then ", ". Also ", ". Then ", ", also ", "; then "]
VERBS = ["wipe", "purge", "format", "email", "defragment", "flush", "reindex", "vacuum", "shred", "rotate"]
OBJECTS = ["cache", "disk", "database", "team", "queues", "indexes", "tables", "secrets", "certificates"]
DETERMINERS = ["the ", "all ", "", "the staging ", "our "]


@st.composite
def servable(draw: st.DrawFn) -> str:
    app, other = draw(st.lists(st.sampled_from(APPS), min_size=2, max_size=2, unique=True))
    shape = draw(st.sampled_from(SHAPES))
    return shape.format(
        app=app, other=other, env=draw(st.sampled_from(ENVIRONMENTS)), n=draw(st.integers(1, 9))
    )


@st.composite
def unservable(draw: st.DrawFn) -> str:
    verb = draw(st.sampled_from(VERBS))
    return f"{verb} {draw(st.sampled_from(DETERMINERS))}{draw(st.sampled_from(OBJECTS))}"


@PROPERTIES
@given(servable())
def test_servable_requests_are_planned_with_every_part(request_text: str) -> None:
    result = plan(request_text)
    parts = result.intent.clauses
    assert parts and [c.action for c in parts if c.action] == result.intent.actions
    assert result.intent.action == result.intent.actions[0]


@PROPERTIES
@given(servable(), st.sampled_from(CONNECTORS), unservable())
def test_an_unservable_part_is_never_planned_away(first: str, connector: str, last: str) -> None:
    request = first + connector + last
    try:
        result = plan(request)
    except (IntentError, PlanError) as error:
        if ";" in connector:
            assert "shell metacharacter" in error.message  # refused before any part is read
        else:
            assert f'"{last}' in error.message, error.message  # the part, quoted from its start
        return
    pytest.fail(f"planned {result.playbook} for {request!r} with parts {result.intent.clauses}")


@PROPERTIES
@given(
    st.sampled_from(VERBS), st.sampled_from(OBJECTS), st.sampled_from(CONNECTORS[:-1]), st.sampled_from(APPS)
)
def test_an_unservable_part_first_is_refused_too(verb: str, noun: str, connector: str, app: str) -> None:
    part = f"{verb} the {noun}"
    error = refused(f"{part}{connector}deploy {app} to staging")
    assert re.search(rf'"{part}', error.message, flags=re.IGNORECASE), error.message
