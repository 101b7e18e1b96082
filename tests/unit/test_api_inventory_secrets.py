"""The API in process over the fakes: the inventory and secrets endpoints answer with the services'
own JSON and refusals, a secret's value never comes back, every unknown thing is a 404, and a 405
names in Allow every method its path takes."""

from __future__ import annotations

import importlib
import json
import pkgutil
import re
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.testclient import TestClient

import opsmith
from opsmith.api.app import create_api
from opsmith.api.problems import status_of
from opsmith.api.routes.inventory import InventoryImport
from opsmith.domain.errors import NotFoundError, OpsmithError, PlanError, UnknownNameError
from opsmith.domain.identity import Identity
from opsmith.domain.inventory_ansible import parse_inventory
from opsmith.services import inventory as inventory_service
from opsmith.services.hosting import Host
from opsmith.services.tokens import create_token
from tests.fakes import FakeServerHost, FakeTools, FakeWorld, fake_app
from tests.unit.test_inventory_service import HOSTS, INLINE
from tests.unit.test_services import CONFIG

PASSWORD = "api-canary-5c1e9b7d3a"
ADA = Identity(user="ada", role="admin", source="token")


@pytest.fixture
def world() -> FakeWorld:
    return fake_app(CONFIG, FakeTools(specs=[]))


def site_of(world: FakeWorld) -> TestClient:
    host = Host(app=world.app, servers=FakeServerHost(world.tools), owner=ADA)
    return TestClient(create_api(host, duties=False), follow_redirects=False)


@pytest.fixture
def site(world: FakeWorld) -> Iterator[TestClient]:
    with site_of(world) as client:
        yield client


def auth(world: FakeWorld, user: str, role: str) -> dict[str, str]:
    _, text = create_token(world.app, ADA, user, role, via="test")
    return {"Authorization": f"Bearer {text}"}


def problem_of(answer: Any, status: int) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = answer.json()
    assert body["status"] == status and body["detail"] and body["type"].startswith("urn:opsmith:problem:")
    return body


# -- every unknown thing is a 404 -----------------------------------------------------------------


def _all_error_classes() -> list[type[OpsmithError]]:
    for info in pkgutil.walk_packages(opsmith.__path__, "opsmith."):
        importlib.import_module(info.name)
    found, todo = [], [OpsmithError]
    while todo:
        for sub in todo.pop().__subclasses__():
            if sub.__module__.startswith("opsmith."):
                found.append(sub)
            todo.append(sub)
    return found


def test_every_unknown_kind_is_a_not_found_the_api_answers_404_and_the_cli_exit_2() -> None:
    unknown = [c for c in _all_error_classes() if c.__name__.startswith("Unknown")]
    assert len(unknown) >= 10
    for kind in unknown:
        if kind is UnknownNameError:
            # A request understood, naming an application the sources do not know: planning failed.
            assert issubclass(kind, PlanError) and not issubclass(kind, NotFoundError)
            assert status_of(kind("x")) == 422
            continue
        assert issubclass(kind, NotFoundError), f"{kind.__qualname__} is not a NotFoundError"
        assert status_of(kind("x")) == 404 and kind.exit_code == 2, kind


def test_unknown_tokens_users_secrets_groups_and_paths_answer_404(world: FakeWorld, site: TestClient) -> None:
    admin = auth(world, "ada", "admin")
    body = problem_of(site.delete("/api/v1/tokens/0123456789ab", headers=admin), 404)
    assert (
        body["detail"] == "no token '0123456789ab'"
        and body["type"] == "urn:opsmith:problem:unknown-token-error"
    )
    problem_of(site.put("/api/v1/users/zed/role", json={"role": "viewer"}, headers=admin), 404)
    body = problem_of(site.delete("/api/v1/secrets/nothing-here", headers=admin), 404)
    assert "nothing-here" in body["detail"]
    body = problem_of(site.get("/api/v1/inventory/groups/nowhere", headers=admin), 404)
    assert "nowhere" in body["detail"] and body["hint"]
    problem_of(site.get("/api/v1/inventory/hosts", params={"group": "nowhere"}, headers=admin), 404)
    problem_of(site.get("/api/v1/plans/plan_nope", headers=admin), 404)
    body = problem_of(site.get("/api/v1/no/such/thing", headers=admin), 404)
    assert body["instance"] == "/api/v1/no/such/thing" and "/docs" in body["hint"]


# -- 405 names every method of its path -----------------------------------------------------------

_PARAM = re.compile(r"\{[^}]+\}")


def test_every_path_refuses_every_other_method_with_405_and_allow_naming_all_it_takes(
    site: TestClient,
) -> None:
    paths: dict[str, Any] = site.get("/openapi.json").json()["paths"]
    templates = {path: re.compile("^" + _PARAM.sub("[^/]+", path) + "$") for path in paths}
    checked = 0
    for path in paths:
        concrete = _PARAM.sub("x1", path)
        # Every template the concrete path matches takes part (/secrets/rotate is also /secrets/{name}).
        takes = {m.upper() for p, rx in templates.items() if rx.match(concrete) for m in paths[p]}
        for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            if method in takes:
                continue
            answer = site.request(method, concrete)
            body = problem_of(answer, 405)
            allow = [m.strip() for m in answer.headers["allow"].split(",")]
            assert set(allow) == takes, (method, concrete, allow)
            assert body["detail"] == f"{method} is not a method this path takes"
            checked += 1
    assert checked > 50


def test_a_405_lists_its_methods_in_a_stable_order_and_a_static_file_keeps_its_own(site: TestClient) -> None:
    answer = site.patch("/api/v1/secrets/rotate")
    assert answer.headers["allow"] == "POST, PUT, DELETE"
    assert problem_of(answer, 405)["hint"] == "it takes POST, PUT, DELETE"
    answer = site.delete("/api/v1/plans")
    assert answer.headers["allow"] == "GET, POST"
    answer = site.post("/static/console.css")
    assert problem_of(answer, 405)["instance"] == "/static/console.css"
    assert answer.headers["allow"] == "GET, HEAD"


# -- inventory ------------------------------------------------------------------------------------


def test_the_inventory_reads_are_the_services_json_a_page_at_a_time(
    world: FakeWorld, site: TestClient
) -> None:
    inventory_service.import_inventory(world.app, ADA, HOSTS, "/srv/hosts.ini")
    viewer = auth(world, "vic", "viewer")
    groups = site.get("/api/v1/inventory/groups", headers=viewer).json()
    expected = [g.model_dump(mode="json") for g in inventory_service.groups(world.app, ADA)]
    assert groups == {"items": expected, "limit": 100, "offset": 0, "next_offset": None}
    hosts = site.get("/api/v1/inventory/hosts", params={"limit": 3}, headers=viewer).json()
    every = [h.model_dump(mode="json") for h in inventory_service.hosts(world.app, ADA)]
    assert hosts["items"] == every[:3] and hosts["next_offset"] == 3
    rest = site.get("/api/v1/inventory/hosts", params={"limit": 3, "offset": 3}, headers=viewer).json()
    assert rest["items"] == every[3:] and rest["next_offset"] is None
    web = site.get("/api/v1/inventory/hosts", params={"group": "Production Web"}, headers=viewer).json()
    assert [h["name"] for h in web["items"]] == ["web1", "web2", "web3"]
    shown = site.get("/api/v1/inventory/groups/Production Web", headers=viewer).json()
    assert shown == inventory_service.show(world.app, ADA, "production_web").model_dump(mode="json")
    assert shown["hosts"][0]["vars"]["ansible_user"] == "deploy"


def test_an_admin_imports_through_the_api_and_others_are_refused_by_the_service(
    world: FakeWorld, site: TestClient
) -> None:
    body = {"text": HOSTS, "format": "ini", "name": "hosts"}
    refused = problem_of(
        site.post("/api/v1/inventory/import", json=body, headers=auth(world, "bob", "deployer")), 403
    )
    assert "admin" in refused["hint"]
    assert world.inventory.stored is None
    answer = site.post("/api/v1/inventory/import", json=body, headers=auth(world, "ada", "admin"))
    assert answer.status_code == 200, answer.text
    summary = answer.json()
    assert (summary["source"], summary["hosts"], summary["groups"], summary["changed"]) == (
        "hosts.ini",
        4,
        5,
        True,
    )
    assert [e.details["via"] for e in world.audit.chain if e.action == "inventory.import"] == ["api"]


def test_an_import_names_the_line_of_its_first_problem_and_stores_nothing(
    world: FakeWorld, site: TestClient
) -> None:
    bad = {"text": "[web]\nweb1 ansible_port=notaport\n", "name": "fleet.ini"}
    body = problem_of(
        site.post("/api/v1/inventory/import", json=bad, headers=auth(world, "ada", "admin")), 422
    )
    assert body["detail"].startswith("fleet.ini:2:")
    assert world.inventory.stored is None


def test_an_import_is_refused_where_opsmith_yaml_declares_the_inventory() -> None:
    world = fake_app(CONFIG + INLINE, FakeTools(specs=[]))
    with site_of(world) as site:
        answer = site.post(
            "/api/v1/inventory/import", json={"text": HOSTS}, headers=auth(world, "ada", "admin")
        )
    assert "declares the inventory" in problem_of(answer, 422)["detail"]


@given(
    name=st.text(
        st.characters(blacklist_characters="/\\", blacklist_categories=("Cc", "Cs")), min_size=1, max_size=40
    ),
    form=st.sampled_from(["ini", "yaml"]),
)
def test_the_format_given_is_the_format_the_parser_reads(name: str, form: str) -> None:
    chosen = InventoryImport(text="", format=form, name=name).source()  # type: ignore[arg-type]
    assert chosen.startswith(name)
    # The parser's choice by suffix: what it reads the text as is the format that was given.
    yaml_text, ini_text = "all:\n  hosts:\n    h1: {}\n", "h1\n"
    text = yaml_text if form == "yaml" else ini_text
    assert [h.name for h in parse_inventory(text, chosen).hosts()] == ["h1"]
    other = ini_text if form == "yaml" else yaml_text
    with pytest.raises(OpsmithError):
        parse_inventory(other, chosen).hosts()
    assert InventoryImport(text="", name=name).source() == name


def test_a_name_with_a_slash_or_a_control_character_is_refused(world: FakeWorld, site: TestClient) -> None:
    admin = auth(world, "ada", "admin")
    for name in ("../etc/hosts", "a\nb", ""):
        problem_of(
            site.post("/api/v1/inventory/import", json={"text": HOSTS, "name": name}, headers=admin), 422
        )


# -- secrets --------------------------------------------------------------------------------------


def test_a_secret_put_by_an_admin_is_stored_and_no_answer_carries_its_value(
    world: FakeWorld, site: TestClient
) -> None:
    admin = auth(world, "ada", "admin")
    answer = site.put(
        "/api/v1/secrets/web-login",
        json={"kind": "password", "value": PASSWORD, "username": "deploy"},
        headers=admin,
    )
    assert answer.status_code == 200, answer.text
    info = answer.json()
    assert (info["name"], info["kind"], info["username"], info["updated_by"]) == (
        "web-login",
        "password",
        "deploy",
        "ada",
    )
    assert world.vault.rows["web-login"][1].secret.get_secret_value() == PASSWORD
    listed = site.get("/api/v1/secrets", headers=auth(world, "vic", "viewer"))
    assert [s["name"] for s in listed.json()] == ["web-login"]
    (entry,) = [e for e in world.audit.chain if e.action == "secret.set"]
    assert entry.details["via"] == "api"
    rotated = site.post("/api/v1/secrets/rotate", headers=admin).json()
    assert (rotated["count"], rotated["names"], rotated["next"]) == (1, ["web-login"], None)
    removed = site.delete("/api/v1/secrets/web-login", headers=admin)
    assert removed.json()["name"] == "web-login" and world.vault.rows == {}
    texts = [answer.text, listed.text, json.dumps(rotated), removed.text]
    assert all(PASSWORD not in text for text in texts)


def test_storing_removing_and_rotating_are_refused_to_a_non_admin_by_the_service(
    world: FakeWorld, site: TestClient
) -> None:
    deployer = auth(world, "bob", "deployer")
    body = {"kind": "password", "value": PASSWORD}
    for answer in (
        site.put("/api/v1/secrets/web-login", json=body, headers=deployer),
        site.delete("/api/v1/secrets/web-login", headers=deployer),
        site.post("/api/v1/secrets/rotate", headers=deployer),
    ):
        refused = problem_of(answer, 403)
        assert refused["hint"] == "storing, rotating and removing secrets are admin actions"
        assert PASSWORD not in answer.text
    assert world.vault.rows == {}


def test_a_refused_value_is_never_quoted_back(world: FakeWorld, site: TestClient) -> None:
    admin = auth(world, "ada", "admin")
    answers = [
        site.put("/api/v1/secrets/key", json={"kind": "ssh_key", "value": PASSWORD}, headers=admin),
        site.put("/api/v1/secrets/cert", json={"kind": "certificate", "value": PASSWORD}, headers=admin),
        site.put(
            "/api/v1/secrets/pw",
            json={"kind": "password", "value": PASSWORD, "passphrase": PASSWORD},
            headers=admin,
        ),
        site.put("/api/v1/secrets/pw", json={"kind": "bogus", "value": PASSWORD}, headers=admin),
        site.put(
            "/api/v1/secrets/pw",
            json={"kind": "password", "value": PASSWORD, "extra": PASSWORD},
            headers=admin,
        ),
        site.put("/api/v1/secrets/pw", json={"kind": "password", "value": PASSWORD * 4000}, headers=admin),
    ]
    for answer in answers:
        problem_of(answer, 422)
        assert PASSWORD not in answer.text, answer.text
    assert world.vault.rows == {}


def test_the_openapi_schema_marks_a_value_write_only(site: TestClient) -> None:
    schema = site.get("/openapi.json").json()
    body = schema["components"]["schemas"]["SecretBody"]["properties"]
    assert body["value"]["writeOnly"] is True and body["value"]["format"] == "password"
