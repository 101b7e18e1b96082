"""Request bodies are capped before anything reads them whole, on a real `opsmith serve`: the
unauthenticated push webhook must not let one caller make the server hold an unbounded body."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from opsmith.domain.push import signature_of
from tests.integration.test_webhook_deliveries import CONFIG, SECRET, push_body
from tests.served import Served, serving

pytestmark = pytest.mark.integration

LIMIT = 64 * 1024


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    project = tmp_path_factory.mktemp("limited")
    config = f"{CONFIG}state_dir: {project / 'state'}\napi: {{max_body_bytes: {LIMIT}}}\n"
    (project / "opsmith.yaml").write_text(config)
    with pytest.MonkeyPatch.context() as env:
        env.setenv("GITHUB_WEBHOOK_SECRET", SECRET)
        with serving(project) as served:
            yield served


def headers(body: bytes, delivery: str) -> dict[str, str]:
    return {
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": signature_of(SECRET, body),
        "Content-Type": "application/json",
    }


def oversized() -> bytes:
    event = json.loads(push_body())
    event["padding"] = "x" * (LIMIT + 1)
    return json.dumps(event).encode()


def test_a_declared_body_over_the_cap_is_refused_unread(server: Served) -> None:
    body = oversized()
    with server.client() as client:
        answer = client.post("/api/v1/webhooks/github", content=body, headers=headers(body, "big-1"))
    assert answer.status_code == 413, answer.text
    problem = answer.json()
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert f"{LIMIT:,} bytes" in problem["detail"] and "max_body_bytes" in problem["hint"]
    assert_not_recorded(server, "big-1")


def test_a_chunked_body_is_counted_as_it_arrives(server: Served) -> None:
    body = oversized()

    def chunks() -> Iterator[bytes]:  # no Content-Length: sent chunked
        for start in range(0, len(body), 8192):
            yield body[start : start + 8192]

    with server.client() as client:
        answer = client.post("/api/v1/webhooks/github", content=chunks(), headers=headers(body, "big-2"))
    assert answer.status_code == 413, answer.text
    assert f"{LIMIT:,} bytes" in answer.json()["detail"]
    assert_not_recorded(server, "big-2")


def test_a_body_within_the_cap_is_taken(server: Served) -> None:
    body = push_body()
    with server.client() as client:
        answer = client.post("/api/v1/webhooks/github", content=body, headers=headers(body, "small-1"))
        assert answer.status_code == 202, answer.text
        # And the authenticated faces are capped alike: a bug report over it is refused.
        report = {"title": "t", "description": "d" * (LIMIT + 1), "severity": "high"}
        refused = client.post(
            "/api/v1/tasks", json=report, headers={"Authorization": f"Bearer {server.token}"}
        )
    assert refused.status_code == 413, refused.text


def assert_not_recorded(server: Served, delivery: str) -> None:
    with server.client(server.token) as client:
        found = client.get(f"/api/v1/webhooks/deliveries/{delivery}")
    assert found.status_code == 404, found.text


def test_the_cap_is_configuration_checked_at_load(tmp_path: Path) -> None:
    from opsmith.config import parse_config
    from opsmith.errors import ConfigError

    with pytest.raises(ConfigError, match="max_body_bytes"):
        parse_config("api: {max_body_bytes: 10}\n", source="test")
    assert parse_config("api: {max_body_bytes: 2048}\n", source="test").api.max_body_bytes == 2048
