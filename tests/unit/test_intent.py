"""Reading plain-language requests into intents: plain values, no I/O."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from opsmith.domain.errors import IntentError, UsageError
from opsmith.domain.intent import (
    ACTIONS,
    MAX_REQUEST_LENGTH,
    READ_ONLY_ACTIONS,
    Intent,
    Targets,
    UnknownName,
    Vocabulary,
    parse_intent,
    require_environment,
)
from opsmith.domain.intent_words import ENVIRONMENTS, VERBS

APPS = ["my-application", "microservice-one", "microservice-two", "payments-api"]
GROUPS = ["Production Web", "CIS servers", "Data Processing"]
VOCAB = Vocabulary(applications=APPS, groups=GROUPS, default_application="my-application")
BARE = Vocabulary()  # nothing known, no defaults
DEFAULT = ["my-application"]


def read(text: str, vocabulary: Vocabulary = VOCAB) -> Intent:
    return parse_intent(text, vocabulary)


def check(intent: Intent, expected: dict[str, Any]) -> None:
    """Compare the fields named in expected; params are compared key by key."""
    for key, value in expected.items():
        if key == "params":
            for name, param in value.items():
                assert intent.params.get(name) == param, (name, intent.params)
        elif key in ("group", "hosts", "count"):
            assert getattr(intent.targets, key) == value, (key, intent.targets)
        elif key == "unknown":
            assert [(u.name, u.kind) for u in intent.unknown] == value, intent.unknown
        else:
            assert getattr(intent, key) == value, (key, getattr(intent, key))
    assert intent.action == intent.actions[0]


# -- the seed documents' requests --------------------------------------------------------------

SEEDS: list[tuple[str, dict[str, Any]]] = [
    # 000: OPS Bot intelligent task planning
    (
        "Deploy the code to prod",
        {
            "action": "deploy",
            "actions": ["deploy"],
            "subjects": DEFAULT,
            "environment": "production",
            "environment_source": "request",
            "platform": None,
            "urgency": "normal",
        },
    ),
    (
        "Deploy microservice-one to production",
        {
            "action": "deploy",
            "subjects": ["microservice-one"],
            "environment": "production",
            "urgency": "normal",
        },
    ),
    (
        "URGENT: Deploy hotfix to production NOW",
        {
            "action": "hotfix",
            "actions": ["hotfix"],
            "subjects": DEFAULT,
            "environment": "production",
            "urgency": "urgent",
        },
    ),
    (
        "URGENT: Deploy hotfix NOW",
        {"action": "hotfix", "subjects": DEFAULT, "environment": None, "urgency": "urgent"},
    ),
    (
        "Rollback production deployment",
        {"action": "rollback", "actions": ["rollback"], "subjects": DEFAULT, "environment": "production"},
    ),
    (
        "Scale staging to 5 replicas",
        {"action": "scale", "subjects": DEFAULT, "environment": "staging", "params": {"replicas": 5}},
    ),
    (
        "Deploy microservice-one and microservice-two",
        {"action": "deploy", "actions": ["deploy"], "subjects": ["microservice-one", "microservice-two"]},
    ),
    (
        "URGENT: Deploy critical security patch NOW",
        {"action": "deploy", "actions": ["deploy"], "urgency": "urgent"},
    ),
    # 001: Kubernetes task graph
    (
        "Deploy the code to Kubernetes production",
        {
            "action": "deploy",
            "subjects": DEFAULT,
            "environment": "production",
            "platform": "kubernetes",
            "urgency": "normal",
        },
    ),
    # 002: OpsConductor fleet requests
    (
        "Connect to 25 Windows systems in group 'CIS servers', check if stationcontroller.exe is running, "
        "stop the service, copy new file, restart service, verify startup, and log results",
        {
            "action": "check",
            "actions": ["check", "stop", "copy", "restart", "check"],
            "platform": "windows",
            "group": "CIS servers",
            "count": 25,
            "subjects": [],
            "environment": None,
            "params": {
                "processes": ["stationcontroller.exe"],
                "notes": ["Connect to 25 Windows systems in group 'CIS servers'", "log results"],
            },
        },
    ),
    (
        "Connect to 25 Windows systems in group 'CIS servers', check if stationcontroller.exe is running, "
        "stop service, copy new file, restart service, verify startup, log results",
        {
            "actions": ["check", "stop", "copy", "restart", "check"],
            "group": "CIS servers",
            "count": 25,
            "params": {"processes": ["stationcontroller.exe"]},
        },
    ),
    (
        "Update nginx to latest version on all web servers in 'Production Web' group and restart service",
        {
            "action": "update",
            "actions": ["update", "restart"],
            "group": "Production Web",
            "environment": None,
            "params": {"packages": ["nginx"], "version": "latest"},
        },
    ),
    (
        "Stop 'dataprocessor' service on all servers in 'Data Processing' group",
        {
            "action": "stop",
            "actions": ["stop"],
            "group": "Data Processing",
            "params": {"services": ["dataprocessor"]},
        },
    ),
    (
        "restart nginx on every host in 'Production Web'",
        {"action": "restart", "group": "Production Web", "params": {"services": ["nginx"]}, "subjects": []},
    ),
]


@pytest.mark.parametrize(("request_text", "expected"), SEEDS, ids=[s[0][:50] for s in SEEDS])
def test_the_seed_requests(request_text: str, expected: dict[str, Any]) -> None:
    check(read(request_text), expected)


# -- requests of our own phrasing: every action, synonym, environment, platform, urgency, param --

OWN: list[tuple[str, dict[str, Any]]] = [
    # deploy and its synonyms
    (
        "Release version 2.3.0 of payments-api to stg",
        {
            "action": "deploy",
            "subjects": ["payments-api"],
            "environment": "staging",
            "params": {"version": "2.3.0"},
        },
    ),
    ("Ship it to live", {"action": "deploy", "subjects": DEFAULT, "environment": "production"}),
    ("Roll out microservice-two to pre-prod", {"action": "deploy", "environment": "staging"}),
    (
        "Push payments-api to production ASAP",
        {"action": "deploy", "subjects": ["payments-api"], "urgency": "urgent"},
    ),
    ("Deploy payments-api to prd", {"environment": "production"}),
    ("deploy microservice-one to preprod", {"environment": "staging"}),
    ("Deploy microservice-one to UAT", {"environment": "staging"}),
    ("Deploy microservice-one to stage", {"environment": "staging"}),
    ("Deploy microservice-one to the dev environment", {"environment": "development"}),
    ("Deploy microservice-one to test environment", {"environment": "development"}),
    ("Deploy to development", {"subjects": DEFAULT, "environment": "development"}),
    (
        "promote payments-api from staging to production",
        {
            "action": "deploy",
            "environment": "production",
            "params": {"environments": ["staging", "production"]},
        },
    ),
    # rollback
    (
        "Please roll back payments-api in prod, it's broken",
        {
            "action": "rollback",
            "actions": ["rollback"],
            "subjects": ["payments-api"],
            "environment": "production",
        },
    ),
    (
        "Revert microservice-one on staging to v1.4.2",
        {"action": "rollback", "environment": "staging", "params": {"version": "v1.4.2"}},
    ),
    (
        "Undo the last release of payments-api in production",
        {"action": "rollback", "subjects": ["payments-api"]},
    ),
    # scale
    (
        "Scale payments-api to 10 replicas in production",
        {"action": "scale", "subjects": ["payments-api"], "params": {"replicas": 10}},
    ),
    (
        "scale down payments-api to three pods in dev quickly",
        {
            "action": "scale",
            "environment": "development",
            "urgency": "fast",
            "params": {"replicas": 3, "direction": "down"},
        },
    ),
    (
        "Scale up microservice-one to 4 instances on kube staging",
        {"platform": "kubernetes", "params": {"replicas": 4, "direction": "up"}},
    ),
    ("scale payments-api to 3 in staging", {"params": {"replicas": 3}}),
    # restart / start / stop
    (
        "Bounce nginx on db-01.example.com",
        {"action": "restart", "hosts": ["db-01.example.com"], "params": {"services": ["nginx"]}},
    ),
    (
        "Reboot all 3 servers in 'Production Web'",
        {"action": "restart", "count": 3, "group": "Production Web"},
    ),
    (
        "restart nginx on web-01 and web-02",
        {"hosts": ["web-01", "web-02"], "params": {"services": ["nginx"]}},
    ),
    (
        "Start the dataprocessor service on web-03",
        {"action": "start", "hosts": ["web-03"], "params": {"services": ["dataprocessor"]}},
    ),
    ("Halt payments-api in dev", {"action": "stop", "subjects": ["payments-api"]}),
    (
        "Shut down postgresql on 10.0.0.7 and 10.0.0.8",
        {"action": "stop", "hosts": ["10.0.0.7", "10.0.0.8"], "params": {"services": ["postgresql"]}},
    ),
    ("Stop payments-api in staging, emergency", {"action": "stop", "urgency": "urgent"}),
    # update / install
    (
        "Upgrade postgresql to 15.4 on all linux servers",
        {"action": "update", "platform": "linux", "params": {"packages": ["postgresql"], "version": "15.4"}},
    ),
    (
        "Patch all Windows servers in group 'CIS servers'",
        {"action": "update", "platform": "windows", "group": "CIS servers"},
    ),
    (
        "Install nginx on all servers in 'Production Web'",
        {"action": "install", "group": "Production Web", "params": {"packages": ["nginx"]}},
    ),
    (
        "Install docker on ubuntu hosts",
        {"action": "install", "platform": "linux", "params": {"packages": ["docker"]}},
    ),
    (
        "Install nginx version 1.25.3 on web-01",
        {"hosts": ["web-01"], "params": {"packages": ["nginx"], "version": "1.25.3"}},
    ),
    # check and its synonyms (read-only)
    (
        "Show status of payments-api in production",
        {"action": "check", "subjects": ["payments-api"], "environment": "production"},
    ),
    (
        "What is the status of microservice-one in production?",
        {"action": "check", "subjects": ["microservice-one"]},
    ),
    (
        "Is nginx running on web-01?",
        {"action": "check", "hosts": ["web-01"], "params": {"services": ["nginx"]}},
    ),
    ("List pods in staging", {"action": "check", "environment": "staging"}),
    ("Verify payments-api health in prod", {"action": "check", "subjects": ["payments-api"]}),
    ("Get logs for payments-api from production", {"action": "check", "environment": "production"}),
    ("check the app", {"action": "check", "subjects": DEFAULT}),
    # copy
    (
        "Transfer /opt/app/config.yaml to web-01",
        {"action": "copy", "hosts": ["web-01"], "params": {"paths": ["/opt/app/config.yaml"]}},
    ),
    (
        'Upload C:\\Deploy\\app.zip to all servers in "CIS servers"',
        {"action": "copy", "group": "CIS servers", "params": {"paths": ["C:\\Deploy\\app.zip"]}},
    ),
    (
        "copy /etc/nginx/nginx.conf to 10.0.0.5",
        {"hosts": ["10.0.0.5"], "params": {"paths": ["/etc/nginx/nginx.conf"]}},
    ),
    # delete
    (
        "Delete microservice-two from staging",
        {"action": "delete", "subjects": ["microservice-two"], "environment": "staging"},
    ),
    ("Remove microservice-two from dev", {"action": "delete", "environment": "development"}),
    ("Tear down payments-api in staging", {"action": "delete", "subjects": ["payments-api"]}),
    ("Destroy the staging deployment of microservice-one", {"action": "delete", "environment": "staging"}),
    # hotfix
    (
        "Hotfix payments-api in production immediately",
        {"action": "hotfix", "subjects": ["payments-api"], "urgency": "urgent"},
    ),
    ("deploy a hot fix to prod", {"action": "hotfix", "subjects": DEFAULT}),
    # platforms
    ("deploy payments-api to k8s prod quickly", {"platform": "kubernetes", "urgency": "fast"}),
    ("deploy payments-api to the cluster in staging", {"platform": "kubernetes"}),
    ("deploy payments-api to docker in development", {"platform": "docker"}),
    ("deploy payments-api as a container to staging", {"platform": "docker"}),
    ("restart nginx on rhel hosts", {"platform": "linux"}),
    ("restart iis on win servers", {"platform": "windows"}),
    # urgency
    ("deploy payments-api to staging soon", {"urgency": "fast"}),
    ("Deploy payments-api to production", {"urgency": "normal"}),
    # params
    (
        "Deploy payments-api v2.0.1 to staging with a 10% canary",
        {"params": {"version": "v2.0.1", "canary_percent": 10, "strategy": "canary"}},
    ),
    (
        "Deploy payments-api with tag v1.0.0-prod to uat using blue-green",
        {
            "environment": "staging",
            "params": {"version": "v1.0.0-prod", "tag": "v1.0.0-prod", "strategy": "blue-green"},
        },
    ),
    (
        "Deploy payments-api to production, blue green",
        {"actions": ["deploy"], "params": {"strategy": "blue-green"}},
    ),
    ("deploy payments-api to staging replicas=4 --dry-run", {"params": {"replicas": 4, "dry_run": True}}),
    ("deploy myorg/payments-api:v1.2 to staging", {"params": {"images": ["myorg/payments-api:v1.2"]}}),
    ("restart payments-api in namespace payments-ns in staging", {"params": {"namespace": "payments-ns"}}),
    # compounds keep their order
    (
        "Deploy payments-api to prod, then restart nginx on web-01",
        {"actions": ["deploy", "restart"], "hosts": ["web-01"], "params": {"services": ["nginx"]}},
    ),
    (
        "stop nginx, copy /srv/site.tar to web-02 and start nginx",
        {"actions": ["stop", "copy", "start"], "params": {"services": ["nginx"], "paths": ["/srv/site.tar"]}},
    ),
    (
        "Deploy microservice-one, microservice-two and payments-api to staging",
        {"subjects": ["microservice-one", "microservice-two", "payments-api"]},
    ),
    (
        "Check if nginx is running on all web servers in Production Web group",
        {"action": "check", "group": "Production Web", "params": {"services": ["nginx"]}},
    ),
]


MORE: list[tuple[str, dict[str, Any]]] = [
    ("Deploy payments-api:v1.2.3 to prod", {"subjects": ["payments-api"], "params": {"version": "v1.2.3"}}),
    ("Deploy the app to production on Friday", {"subjects": DEFAULT, "hosts": []}),
    (
        "Deploy payments-api and then run smoke tests",
        {"actions": ["deploy"], "params": {"notes": ["run smoke tests"]}},
    ),
    (
        "install nginx and postgresql on db-01",
        {"action": "install", "hosts": ["db-01"], "params": {"packages": ["nginx", "postgresql"]}},
    ),
    ("restart nginx on web-01, web-02 and web-03", {"hosts": ["web-01", "web-02", "web-03"]}),
    ("restart it", {"action": "restart", "subjects": DEFAULT}),
    ("Restart nginx and verify it is healthy", {"actions": ["restart", "check"], "subjects": []}),
    (
        "stop stationcontroller.exe process on all 25 windows servers",
        {
            "action": "stop",
            "count": 25,
            "platform": "windows",
            "params": {"processes": ["stationcontroller.exe"]},
        },
    ),
    ("kill process java on web-01", {"action": "stop", "params": {"processes": ["java"]}}),
    ("Run a health check on payments-api in production", {"action": "check", "subjects": ["payments-api"]}),
    # several environments: the most sensitive one is the intent's, all are listed
    (
        "Deploy payments-api to dev, staging and prod",
        {"environment": "production", "params": {"environments": ["development", "staging", "production"]}},
    ),
    (
        "Copy app.config to C:\\Apps\\ on 'CIS servers'",
        {
            "action": "copy",
            "group": "CIS servers",
            "params": {"files": ["app.config"], "paths": ["C:\\Apps\\"]},
        },
    ),
]


@pytest.mark.parametrize(("request_text", "expected"), MORE, ids=[s[0][:50] for s in MORE])
def test_more_phrasings(request_text: str, expected: dict[str, Any]) -> None:
    check(read(request_text), expected)


@pytest.mark.parametrize(("request_text", "expected"), OWN, ids=[s[0][:50] for s in OWN])
def test_our_own_phrasings(request_text: str, expected: dict[str, Any]) -> None:
    check(read(request_text), expected)


def test_every_action_and_every_synonym_is_read() -> None:
    for phrase, action in VERBS.items():
        verb = " ".join(phrase)
        intent = read(f"{verb} payments-api in staging")
        assert intent.action == action, (verb, intent.action)
        assert intent.subjects == ["payments-api"], verb
    assert {VERBS[p] for p in VERBS} == set(ACTIONS)


def test_every_environment_synonym_is_read() -> None:
    for word, canonical in ENVIRONMENTS.items():
        assert read(f"deploy payments-api to {word}").environment == canonical, word


def test_words_inside_names_are_not_keywords() -> None:
    intent = read("deploy payments-api with tag v1.0.0-prod to staging")
    assert intent.environment == "staging"  # "-prod" inside the tag is not production
    intent = read("restart nginx on every host in 'Production Web'")
    assert intent.environment is None  # "Production" inside the group name is not an environment


def test_mutating_is_false_only_for_read_only_actions() -> None:
    assert not read("Show status of payments-api in production").mutating
    assert read("Deploy payments-api to production").mutating
    assert read("check payments-api in staging and restart it").mutating
    assert frozenset({"check"}) == READ_ONLY_ACTIONS


def test_an_intent_round_trips_through_json() -> None:
    intent = read(
        "Update nginx to latest version on all web servers in 'Production Web' group and restart service"
    )
    assert Intent.model_validate_json(intent.model_dump_json()) == intent


def test_every_part_that_asks_for_something_is_a_clause_in_the_json() -> None:
    intent = read("Build, test and deploy payments-api to staging, then verify it is healthy, thanks")
    assert [(c.text, c.action, c.verb) for c in intent.clauses] == [
        ("Build", None, "build"),
        ("test", None, "test"),
        ("deploy payments-api to staging", "deploy", "deploy"),
        ("verify it is healthy, thanks", "check", "verify"),
    ]
    assert intent.clauses[3].subjects == ["payments-api"], '"it" is the application named before'
    dumped = intent.model_dump(mode="json")
    assert dumped["action"] == "deploy" and dumped["actions"] == ["deploy", "check"]
    assert dumped["clauses"][2] == {
        "text": "deploy payments-api to staging",
        "action": "deploy",
        "verb": "deploy",
        "conditional": False,
        "subjects": ["payments-api"],
    }
    assert read("roll back payments-api in staging if it fails").clauses[0].conditional


def test_an_intent_stored_before_clauses_existed_still_loads() -> None:
    stored = read("Deploy payments-api to staging").model_dump(mode="json")
    del stored["clauses"]
    assert Intent.model_validate(stored).clauses == []


def test_a_condition_is_not_read_for_names() -> None:
    intent = read("deploy payments-api to staging if it passes")
    assert intent.unknown == [] and intent.subjects == ["payments-api"]
    # After "check", "if" still asks about what follows.
    assert read("check if nginx is running on web-01").params["services"] == ["nginx"]


def test_text_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(IntentError):
        parse_intent(123, VOCAB)  # type: ignore[arg-type]


def test_the_request_is_kept_stripped() -> None:
    assert read("  Deploy payments-api to staging \n").request == "Deploy payments-api to staging"


# -- defaults ----------------------------------------------------------------------------------


def test_environment_defaults_only_from_the_vocabulary() -> None:
    intent = read("Deploy payments-api")
    assert (intent.environment, intent.environment_source) == (None, None)
    staged = Vocabulary(applications=APPS, default_environment="staging")
    intent = read("Deploy payments-api", staged)
    assert (intent.environment, intent.environment_source) == ("staging", "default")
    assert read("Deploy payments-api to prod", staged).environment_source == "request"


def test_no_default_application_leaves_subjects_empty() -> None:
    assert read("Deploy the code to prod", BARE).subjects == []
    assert read("Rollback production", BARE).subjects == []


def test_the_default_application_is_not_added_beside_named_things() -> None:
    assert read("restart nginx on web-01").subjects == []  # a host service, not the app
    assert read("Deploy payments-api to staging").subjects == ["payments-api"]
    assert read("check if stationcontroller.exe is running and restart it").subjects == []


# -- unknown names -----------------------------------------------------------------------------


def test_an_unknown_application_is_flagged_with_its_nearest_names() -> None:
    intent = read("Deploy paymnts-api to prod")
    assert intent.subjects == []
    assert intent.unknown == [UnknownName(name="paymnts-api", kind="application", nearest=["payments-api"])]
    assert intent.environment == "production"


def test_unknown_and_known_applications_together() -> None:
    intent = read("Deploy paymnts-api and microservice-one to prod")
    assert intent.subjects == ["microservice-one"]
    assert [u.name for u in intent.unknown] == ["paymnts-api"]


def test_nearest_names_are_at_most_three() -> None:
    vocabulary = Vocabulary(applications=["svc-a1", "svc-a2", "svc-a3", "svc-a4"])
    (unknown,) = read("deploy svc-a5 to staging", vocabulary).unknown
    assert 1 <= len(unknown.nearest) <= 3 and all(n.startswith("svc-a") for n in unknown.nearest)


def test_an_unknown_quoted_group_is_flagged() -> None:
    intent = read("restart nginx in 'Productoin Web'")
    assert intent.targets.group is None
    assert intent.unknown == [UnknownName(name="Productoin Web", kind="group", nearest=["Production Web"])]


def test_groups_are_normalised_to_the_vocabulary_spelling() -> None:
    assert read("restart nginx in group 'production web'").targets.group == "Production Web"
    assert read("restart nginx on the cis servers group").targets.group == "CIS servers"


def test_any_group_is_kept_when_the_vocabulary_has_none() -> None:
    intent = read("restart nginx in group 'Edge Boxes'", BARE)
    assert intent.targets.group == "Edge Boxes" and intent.unknown == []


def test_host_services_are_params_not_unknown_applications() -> None:
    intent = read("restart postgresql on db-01")
    assert intent.unknown == [] and intent.params["services"] == ["postgresql"]


# -- refusals ----------------------------------------------------------------------------------


def refused(text: str, vocabulary: Vocabulary = VOCAB) -> IntentError:
    with pytest.raises(IntentError) as caught:
        parse_intent(text, vocabulary)
    assert isinstance(caught.value, UsageError)
    return caught.value


@pytest.mark.parametrize("text", ["", "   ", "\n\t  \n"])
def test_empty_requests_are_refused(text: str) -> None:
    error = refused(text)
    assert "empty" in error.message and error.hint


def test_a_request_over_the_limit_is_refused_with_limit_and_length() -> None:
    error = refused("deploy payments-api to staging " + "x" * MAX_REQUEST_LENGTH)
    assert str(MAX_REQUEST_LENGTH) in error.message and str(MAX_REQUEST_LENGTH + 31) in error.message
    read("deploy payments-api to staging".ljust(MAX_REQUEST_LENGTH, "!"))  # at the limit is fine


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\x7f", "\u200b", "\u202e", "\x0b", "\x1c", "\x85"])
def test_control_characters_are_refused(char: str) -> None:
    error = refused(f"deploy payments-api{char} to staging")
    assert "control character" in error.message and f"U+{ord(char):04X}" in error.message
    assert "control character" in refused(f"{char}deploy payments-api to staging").message  # even at the edge


def test_tabs_and_newlines_are_ordinary_whitespace() -> None:
    assert read("deploy\tpayments-api\r\nto staging").environment == "staging"


@pytest.mark.parametrize(
    ("text", "offending"),
    [
        ("restart nginx; rm -rf /", "nginx;"),
        ("Deploy $(reboot) to prod", "$(reboot)"),
        ("Restart `whoami` on web-01", "`whoami`"),
        ("Install curl|sh on web-01", "curl|sh"),
        ("Restart nginx > /tmp/out on web-01", ">"),
        ("Restart nginx on web-01 && reboot", "&&"),
        ("stop nginx on web-01;reboot", "web-01;reboot"),
        ("Stop 'data;processor' service on all servers", "data;processor"),
        ("restart nginx in group 'Web $(id)'", "$(id)"),
        ("copy /etc/app.conf to web-01 < /dev/null", "<"),
    ],
)
def test_shell_metacharacters_are_refused_naming_the_text(text: str, offending: str) -> None:
    error = refused(text)
    assert offending in error.message and "shell metacharacter" in error.message


@pytest.mark.parametrize(
    ("text", "offending", "what"),
    [
        ("Deploy pay*ments to prod", "pay*ments", "application"),  # subject position
        ("Stop 'data*processor' service on all servers", "data*processor", "service"),  # service
        ("check if station(1).exe is running on web-01", "station(1).exe", "process"),  # process
        ("Install ngin#x on web-01", "ngin#x", "package"),  # package
        ("restart nginx in group 'Web (new)'", "Web (new)", "group"),  # quoted group
        ("restart nginx on web~01", "web~01", "host"),  # host
        ("Stop 'Print Spooler' service on web-01", "Print Spooler", "service"),  # spaces only in groups
        ("Copy /etc/passwd* to web-01", "/etc/passwd*", "path"),  # path
        ("deploy payments-api to staging --force=yes", "force=yes", "option"),
        ("copy http://files.example/a\\b to web-01", "http://files.example/a\\b", "URL"),
    ],
)
def test_names_outside_the_safe_characters_are_refused(text: str, offending: str, what: str) -> None:
    error = refused(text)
    assert offending in error.message and what in error.message, error.message


@pytest.mark.parametrize(
    ("text", "understood"),
    [
        ("do something with the app", "understood application my-application"),
        (
            "something with the app in prod",
            "understood application my-application and environment production",
        ),
        ("asdf qwerty zxcv", "understood no action"),
        ("log results", 'understood note "log results"'),
        ("payments-api on kubernetes", "application payments-api and platform kubernetes"),
    ],
)
def test_no_action_says_what_was_understood_and_gives_an_example(text: str, understood: str) -> None:
    error = refused(text)
    assert understood in error.message and "no action" in error.message
    assert "deploy" in error.message  # the missing part: what to do
    assert error.hint is not None and "Deploy" in error.hint


def test_the_no_action_example_uses_a_known_application() -> None:
    hint = refused("blah", Vocabulary(applications=["billing"])).hint
    assert hint is not None and "Deploy billing to staging" in hint
    hint = refused("blah blah", BARE).hint
    assert hint is not None and "Deploy microservice-one to staging" in hint


# -- require_environment -----------------------------------------------------------------------


def test_require_environment_refuses_a_mutating_intent_without_one() -> None:
    intent = read("Deploy payments-api")
    with pytest.raises(IntentError) as caught:
        require_environment(intent)
    message = caught.value.message
    assert all(env in message for env in ("production", "staging", "development"))
    assert caught.value.hint is not None and "Deploy payments-api to staging" in caught.value.hint


def test_require_environment_accepts_read_only_or_placed_intents() -> None:
    require_environment(read("Show status of payments-api"))
    require_environment(read("Deploy payments-api to staging"))
    require_environment(
        read("Deploy payments-api", Vocabulary(applications=APPS, default_environment="staging"))
    )


def test_intent_built_by_hand_gets_its_action_list() -> None:
    intent = Intent(request="deploy", action="deploy", environment="staging")
    assert intent.actions == ["deploy"] and intent.mutating and intent.targets == Targets()


# -- properties --------------------------------------------------------------------------------

PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@PROPERTY_SETTINGS
@given(st.text(max_size=300) | st.text(alphabet=st.characters(max_codepoint=0x7F), max_size=300))
def test_arbitrary_text_raises_nothing_but_intent_error(text: str) -> None:
    try:
        intent = parse_intent(text, VOCAB)
    except IntentError as error:
        assert "internal error" not in error.message, error.message  # the safety net never fires
        return
    assert intent.actions and intent.action == intent.actions[0]
    assert set(intent.actions) <= set(ACTIONS)


WORDS = st.sampled_from(
    [
        "deploy",
        "restart",
        "nginx",
        "to",
        "on",
        "in",
        "'",
        '"',
        "prod",
        "staging",
        "and",
        ",",
        "web-01",
        "10.0.0.1",
        "group",
        "'CIS servers'",
        "5",
        "replicas",
        "v1.2.3",
        "service",
        "x.exe",
        "/etc/x",
        "C:\\x",
        "canary",
        "10%",
        "the",
        "app",
        "is",
        "running",
        "?",
        ".",
        ":",
        "check",
        "hotfix",
        "NOW",
        "payments-api",
        "scale",
        "roll",
        "back",
        "--dry-run",
        "=",
        "replicas=3",
        "\n",
        "\t",
        "(",
        ")",
        "*",
        "~",
        "’",
        "‘",
    ]
)


@PROPERTY_SETTINGS
@given(st.lists(WORDS | st.text(max_size=8), max_size=40).map(" ".join))
def test_request_like_text_raises_nothing_but_intent_error(text: str) -> None:
    try:
        intent = parse_intent(text, VOCAB)
    except IntentError as error:
        assert "internal error" not in error.message, error.message
        return
    assert intent.actions and intent.action == intent.actions[0]


@settings(max_examples=5, deadline=None)
@given(st.sampled_from(["a", " ", "deploy ", "'", "x.", "\x00", "é", "$"]), st.integers(1000, 200_000))
def test_huge_text_is_refused_quickly(piece: str, repeat: int) -> None:
    text = piece * repeat
    if len(text) > MAX_REQUEST_LENGTH:
        assert "limit" in refused(text).message
    else:
        with pytest.raises(IntentError):
            parse_intent(text, VOCAB)


SYNONYMS = sorted(" ".join(phrase) for phrase in VERBS)
NAMES = st.sampled_from(APPS) | st.from_regex(r"[a-z][a-z0-9]{1,7}-[a-z0-9]{1,7}", fullmatch=True)


@PROPERTY_SETTINGS
@given(st.sampled_from(SYNONYMS), NAMES, st.sampled_from(sorted(ENVIRONMENTS)), st.booleans())
def test_well_formed_requests_are_read_exactly(verb: str, app: str, env_word: str, shout: bool) -> None:
    keywords = {w for phrase in VERBS for w in phrase} | set(ENVIRONMENTS)
    assume(app not in keywords and not app.startswith("v"))
    vocabulary = Vocabulary(applications=[*APPS, app])
    text = f"{verb} {app} to {env_word}"
    intent = parse_intent(text.upper() if shout else text, vocabulary)
    assert intent.actions == [VERBS[tuple(verb.split())]]
    assert intent.subjects == [app]
    assert intent.environment == ENVIRONMENTS[env_word] and intent.environment_source == "request"
    assert intent.unknown == []


@PROPERTY_SETTINGS
@given(st.lists(WORDS, min_size=1, max_size=25).map(" ".join))
def test_reading_is_deterministic(text: str) -> None:
    def outcome() -> Intent | str:
        try:
            return parse_intent(text, VOCAB)
        except IntentError as error:
            return str(error)

    assert outcome() == outcome()
