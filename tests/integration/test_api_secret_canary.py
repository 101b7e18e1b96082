"""Canary secrets put through the REST API of a real `opsmith serve` come back from no GET endpoint
(every one the OpenAPI schema lists, and every console page), and are in no byte under the state
directory nor in the server's log, in no form: not as text, hex nor base64."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from opsmith.api.console import routes as console
from tests.canary import everything_stored, leaks
from tests.conftest import sandbox_servers
from tests.integration.test_approval_cli import CONFIG
from tests.served import Served, serving, wait_for

pytestmark = pytest.mark.integration

PASSWORD = "api-canary-pw-4b9e2d71c6"
TOKEN = "api-canary-tok-e83a05f7d2"
HOSTS = """\
[web]
web1 ansible_host=10.0.0.11 opsmith_credential=web-login
web2 ansible_host=10.0.0.12 opsmith_credential=web-login
[web:vars]
ansible_user=deploy
"""
_PARAM = re.compile(r"\{([^}]+)\}")


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory, seeded_template: Path) -> Path:
    root = tmp_path_factory.mktemp("api-canary")
    state = root / "state"
    shutil.copytree(seeded_template, state)
    servers = sandbox_servers(state, ("kubernetes",))
    (root / "opsmith.yaml").write_text(f"{CONFIG}\nmcpServers:\n{servers}\n")
    return root


@pytest.fixture(scope="module")
def served(project: Path) -> Iterator[Served]:
    with serving(project) as server:
        assert server.token is not None, "the first start prints an admin token"
        yield server


def ok(answer: httpx.Response, status: int = 200) -> Any:
    assert answer.status_code == status, (answer.request.method, answer.request.url, answer.text)
    return answer.json()


def planted(admin: httpx.Client) -> dict[str, str]:
    """The secrets put, an inventory naming one, and a run finished: the ids the GET paths take."""
    for name, kind, value in (("web-login", "password", PASSWORD), ("api-token", "token", TOKEN)):
        info = ok(
            admin.put(f"/api/v1/secrets/{name}", json={"kind": kind, "value": value, "username": "deploy"})
        )
        assert info["name"] == name and set(info) >= {
            "kind",
            "username",
            "created_at",
            "updated_at",
            "key_id",
        }
    ok(admin.post("/api/v1/inventory/import", json={"text": HOSTS, "format": "ini", "name": "hosts"}))
    plan = ok(
        admin.post(
            "/api/v1/plans", json={"request": "Scale my-application in staging", "set": {"replicas": 2}}
        ),
        201,
    )
    assert plan["status"] == "approved", plan
    run_id = ok(admin.post(f"/api/v1/plans/{plan['id']}/runs"), 202)["run_id"]

    def ended() -> dict[str, Any] | None:
        state: dict[str, Any] = ok(admin.get(f"/api/v1/runs/{run_id}"))
        return state if state["status"] in {"succeeded", "failed", "rolled_back"} else None

    run = wait_for(ended, timeout=60)
    assert isinstance(run, dict) and run["status"] == "succeeded", run
    task = ok(
        admin.post(
            "/api/v1/tasks",
            json={"title": "web login slow", "description": "the login page takes 9 s", "severity": "high"},
        ),
        201,
    )
    return {
        "plan_id": plan["id"],
        "run_id": run_id,
        "step_id": run["steps"][0]["step_id"],
        "name": "web",
        "application": "my-application",
        "task_id": str(task["id"]),
        "issue_id": "1",  # a succeeded staging run opens no issue: its 404 problem is searched too
        "delivery_id": "none-delivered",  # no push came: the delivery's 404 problem is searched too
    }


def test_a_secret_put_through_the_api_comes_back_from_no_get_and_is_stored_encrypted_only(
    served: Served, project: Path
) -> None:
    bodies: list[str] = []
    with served.client(served.token) as admin:
        ids = planted(admin)
        paths = ok(admin.get("/openapi.json"))["paths"]
        gets = [path for path, operations in paths.items() if "get" in operations]
        assert {"/api/v1/secrets", "/api/v1/inventory/hosts", "/api/v1/inventory/groups/{name}"} <= set(gets)
        for path in gets:
            unknown = set(_PARAM.findall(path)) - ids.keys()
            assert not unknown, f"GET {path} takes {unknown}: give this test a value for it"
            answer = admin.get(_PARAM.sub(lambda m: ids[m[1]], path))
            # The planted run succeeded: its explanation is a 409 problem, which is searched too.
            missing = "{issue_id}" in path or "{delivery_id}" in path
            expected = 409 if path.endswith("/explanation") else 404 if missing else 200
            assert answer.status_code == expected, (path, answer.text)
            bodies.append(answer.text)
        for extra in (
            "/api/v1/audit?limit=1000",
            "/api/v1/audit?subject=web-login",
            "/openapi.json",
            "/docs",
        ):
            bodies.append(ok_text(admin.get(extra)))
        listed = ok(admin.get("/api/v1/secrets"))
        assert [s["name"] for s in listed] == ["api-token", "web-login"]
        # The console, logged in with the same token: every page it serves to a GET.
        login = admin.post("/login", data={"token": served.token, "next": "/"}, follow_redirects=False)
        assert login.status_code == 303, login.text
    pages = [
        r.path for r in console.router.routes if "GET" in getattr(r, "methods", ()) and r.path != "/login"
    ]
    assert len(pages) >= 5
    with httpx.Client(base_url=served.url, cookies=login.cookies, timeout=30) as browser:
        for page in pages:
            answer = browser.get(_PARAM.sub(lambda m: ids[m[1]], page))
            expected = 204 if page.endswith("/analysis") else 200  # a run that succeeded: no analysis
            assert answer.status_code == expected, (page, answer.text[:500])
            bodies.append(answer.text)
    assert not leaks([PASSWORD, TOKEN], bodies)
    with served.client(served.token) as admin:
        ok(admin.delete("/api/v1/secrets/api-token"))
    stored = everything_stored(project)
    assert b"web-login" in stored, "the vault's rows are in the bytes looked at"
    assert not leaks([PASSWORD, TOKEN], [stored, "\n".join(served.lines)])


def ok_text(answer: httpx.Response) -> str:
    assert answer.status_code == 200, (answer.request.url, answer.text[:500])
    return answer.text
