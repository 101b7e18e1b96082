"""One list of the secrets to redact: every `${VAR}` the configuration names, whatever section it is
in, and nothing that is not a reference."""

from __future__ import annotations

import dataclasses

from opsmith.domain.redaction import Redactor
from opsmith.services.known_secrets import secret_values
from tests.fakes import FakeTools, fake_app

CONFIG = """
mcpServers:
  jenkins: {command: jenkins-mcp, env: {JENKINS_TOKEN: "${JENKINS_TOKEN}"}}
notifications:
  channels:
    hook: {type: webhook, url: "https://hooks.example/x", secret: "${HOOK_SECRET}"}
  rules: [{events: [run_failed], channels: [hook]}]
issues:
  environments: [production]
  github: {repo: org/app, token: "${GITHUB_TOKEN}"}
webhooks:
  github: {secret: "${PUSH_SECRET}", repositories: {}}
"""

ENVIRON = {
    "JENKINS_TOKEN": "jenkins-value-1",
    "HOOK_SECRET": "hook-value-2",
    "GITHUB_TOKEN": "github-value-3",
    "PUSH_SECRET": "push-value-4",
    "UNRELATED": "not-a-secret-5",
}


def test_every_section_s_references_are_hidden_and_nothing_else() -> None:
    world = fake_app(CONFIG, FakeTools(specs=[]))
    app = dataclasses.replace(world.app, environ=ENVIRON)
    found = secret_values(app)
    assert sorted(found) == sorted(v for k, v in ENVIRON.items() if k != "UNRELATED")
    text = Redactor(found).text(" ".join(ENVIRON.values()))
    assert "not-a-secret-5" in text
    assert not any(v in text for k, v in ENVIRON.items() if k != "UNRELATED")


def test_references_not_set_are_left_out() -> None:
    world = fake_app(CONFIG, FakeTools(specs=[]))
    app = dataclasses.replace(world.app, environ={"PUSH_SECRET": "push-value-4"})
    assert secret_values(app) == ["push-value-4"]
