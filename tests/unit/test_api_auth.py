"""The API's throttle on failed authentications and its reading of credentials, as plain values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from starlette.requests import Request

from opsmith.api.auth import FailureGate, _presented
from opsmith.api.problems import TooManyFailures
from opsmith.domain.errors import AuthenticationError


@given(
    limit=st.integers(min_value=1, max_value=6),
    window=st.floats(min_value=1, max_value=100),
    gaps=st.lists(st.floats(min_value=0, max_value=50), min_size=1, max_size=40),
)
def test_no_more_than_limit_failures_are_looked_at_within_any_window(
    limit: int, window: float, gaps: list[float]
) -> None:
    gate = FailureGate(limit=limit, window=window)
    now, looked_at = 0.0, []
    for gap in gaps:
        now += gap
        try:
            gate.check("10.0.0.1", now)
        except TooManyFailures as refused:
            assert 0 < refused.retry_after <= window + 1e-9  # a sum of floats may round up a little
            continue
        looked_at.append(now)
        gate.failed("10.0.0.1", now)
    for start in looked_at:
        assert sum(1 for t in looked_at if start <= t < start + window) <= limit
    gate.check("10.0.0.2", now)  # another client is not held back by this one


def test_a_client_is_let_in_again_once_its_window_has_passed() -> None:
    gate = FailureGate(limit=2, window=10)
    gate.failed("c", 0)
    gate.failed("c", 1)
    with pytest.raises(TooManyFailures):
        gate.check("c", 5)
    gate.check("c", 11.5)
    assert gate.failures.get("c") is None or len(gate.failures["c"]) == 0


def request_with(headers: list[tuple[bytes, bytes]]) -> Request:
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


@given(value=st.binary(max_size=80))
def test_any_authorization_header_is_a_bearer_token_or_one_clear_refusal(value: bytes) -> None:
    try:
        presented, by_cookie = _presented(request_with([(b"authorization", value)]))
    except AuthenticationError as refused:
        # One fixed message: what was sent (perhaps a password pasted by mistake) is never echoed.
        assert refused.message == "the Authorization header is not a bearer token"
        return
    assert presented and not by_cookie and presented == value.decode("latin-1").partition(" ")[2].strip()


def test_the_session_cookie_is_read_when_no_header_is_sent() -> None:
    assert _presented(request_with([(b"cookie", b"opsmith_session=osm_abc")])) == ("osm_abc", True)
    assert _presented(request_with([])) == (None, False)
