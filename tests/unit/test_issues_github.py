"""The GitHub adapter's translation of answers into errors that carry their retry semantics: what
may succeed later (no connection, a timeout, 5xx, 429, a rate limit) and what fails until the
configuration is fixed (401, 403, 404, 410, 422), each saying what to do, none quoting the token."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest

from opsmith.domain.issues import IssueState, TrackerRefused, TrackerUnavailable
from opsmith.tools.issues.github import GithubIssues

TOKEN = "ghp_unitToken_0f9e8d7c6b"


def adapter(handler: Callable[[httpx.Request], httpx.Response], token: str | None = TOKEN) -> GithubIssues:
    return GithubIssues(
        "acme/shop", token, base_url="https://ghe.example.com/api/v3/", timeout=2,
        token_name="GITHUB_TOKEN", transport=httpx.MockTransport(handler),
    )  # fmt: skip


def answer(status: int, headers: dict[str, str] | None = None, message: str = "nope") -> GithubIssues:
    return adapter(lambda _: httpx.Response(status, json={"message": message}, headers=headers))


@pytest.mark.parametrize(
    ("status", "headers", "kind", "wait"),
    [
        (401, {}, TrackerRefused, None),
        (403, {}, TrackerRefused, None),
        (403, {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": "9999999999"}, TrackerUnavailable, "long"),
        (404, {}, TrackerRefused, None),
        (410, {}, TrackerRefused, None),
        (422, {}, TrackerRefused, None),
        (429, {"Retry-After": "42"}, TrackerUnavailable, 42.0),
        (500, {}, TrackerUnavailable, None),
        (503, {"Retry-After": "7"}, TrackerUnavailable, 7.0),
    ],
)
def test_each_answer_becomes_an_error_of_the_right_kind(
    status: int, headers: dict[str, str], kind: type[Exception], wait: object
) -> None:
    with pytest.raises(kind) as raised:
        asyncio.run(answer(status, headers, "Bad credentials").comment(3, "x"))
    error = raised.value
    assert isinstance(error, TrackerRefused | TrackerUnavailable)
    assert error.retryable is (kind is TrackerUnavailable) and error.status == status
    assert f"answered {status} (Bad credentials)" in error.message and error.hint
    assert TOKEN not in str(error)
    if wait == "long":
        assert error.retry_after is not None and error.retry_after > 1000
    else:
        assert error.retry_after == wait


def test_timeouts_and_refused_connections_may_succeed_later() -> None:
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    def refused(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("Connection refused", request=request)

    with pytest.raises(TrackerUnavailable, match="did not answer within 2 s"):
        asyncio.run(adapter(slow).state(1))
    with pytest.raises(TrackerUnavailable, match="could not be reached"):
        asyncio.run(adapter(refused).reopen(1))


def test_a_missing_token_is_refused_before_anything_is_sent() -> None:
    sent: list[httpx.Request] = []
    with pytest.raises(TrackerRefused, match="GITHUB_TOKEN is not set") as raised:
        asyncio.run(adapter(lambda r: sent.append(r) or httpx.Response(201), token=None).open("t", "b", []))
    assert not raised.value.retryable and sent == []


def test_the_requests_under_an_enterprise_base_url() -> None:
    seen: list[httpx.Request] = []

    def github(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.method == "POST" and request.url.path.endswith("/issues"):
            return httpx.Response(
                201, json={"number": 12, "html_url": "https://ghe.example.com/acme/shop/issues/12"}
            )
        return httpx.Response(200, json={"state": "closed"})

    tracker = adapter(github)
    ref = asyncio.run(tracker.open("title", "body", ["opsmith"]))
    assert (ref.number, ref.url) == (12, "https://ghe.example.com/acme/shop/issues/12")
    assert asyncio.run(tracker.state(12)) is IssueState.CLOSED
    assert [(r.method, str(r.url)) for r in seen] == [
        ("POST", "https://ghe.example.com/api/v3/repos/acme/shop/issues"),
        ("GET", "https://ghe.example.com/api/v3/repos/acme/shop/issues/12"),
    ]
    assert seen[0].headers["Authorization"] == f"Bearer {TOKEN}" and seen[1].content == b""


def test_an_answer_without_a_number_is_not_taken_for_an_issue() -> None:
    with pytest.raises(TrackerUnavailable, match="without its number"):
        asyncio.run(adapter(lambda _: httpx.Response(201, json={"ok": True})).open("t", "b", []))
