"""The console's cookies over the fakes, in process: a login sets the session cookie HttpOnly and
SameSite=strict, and Secure when the request came over TLS or when `api.secure_cookies` says a TLS
proxy is in front (opsmith trusts no forwarded header: any local process could send one)."""

from __future__ import annotations

from http.cookies import SimpleCookie

import pytest
from starlette.testclient import TestClient

from opsmith.api.app import create_api
from opsmith.api.auth import CSRF_COOKIE, SESSION_COOKIE
from opsmith.domain.identity import Identity
from opsmith.services.hosting import Host
from opsmith.services.tokens import create_token
from tests.fakes import FakeServerHost, FakeTools, fake_app
from tests.unit.test_services import CONFIG

ADA = Identity(user="ada", role="admin", source="token")


def login_cookies(config: str, base_url: str, headers: dict[str, str] | None = None) -> SimpleCookie:
    world = fake_app(config, FakeTools(specs=[]))
    _, token = create_token(world.app, ADA, "ada", "admin", via="test")
    host = Host(app=world.app, servers=FakeServerHost(world.tools), owner=ADA)
    with TestClient(create_api(host, duties=False), base_url=base_url, follow_redirects=False) as site:
        answer = site.post("/login", data={"token": token, "next": "/"}, headers=headers or {})
    assert answer.status_code == 303, answer.text
    jar: SimpleCookie = SimpleCookie()
    for line in answer.headers.get_list("set-cookie"):
        jar.load(line)
    assert {SESSION_COOKIE, CSRF_COOKIE} <= set(jar)
    assert jar[SESSION_COOKIE]["httponly"] and jar[SESSION_COOKIE]["samesite"].lower() == "strict"
    return jar


@pytest.mark.parametrize(
    ("setting", "base_url", "secure"),
    [
        ("", "http://127.0.0.1:8000", False),
        ("", "https://127.0.0.1:8000", True),
        ("api: {secure_cookies: true}\n", "http://127.0.0.1:8000", True),
    ],
)
def test_cookies_are_secure_over_tls_or_when_a_tls_proxy_is_declared(
    setting: str, base_url: str, secure: bool
) -> None:
    jar = login_cookies(CONFIG + setting, base_url)
    assert bool(jar[SESSION_COOKIE]["secure"]) is secure
    assert bool(jar[CSRF_COOKIE]["secure"]) is secure


def test_a_forwarded_proto_header_does_not_make_cookies_secure_nor_is_it_trusted() -> None:
    jar = login_cookies(CONFIG, "http://127.0.0.1:8000", headers={"X-Forwarded-Proto": "https"})
    assert not jar[SESSION_COOKIE]["secure"]
