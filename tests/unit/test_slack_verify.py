"""Slack's callbacks as plain values: the signature (property tests: any tampering with the body,
the timestamp or the signature is refused, a correct one accepted), the block_actions payload of a
click, the origins a response_url may have, and the messages sent back."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.domain.notify_messages import APPROVE_ACTION, REJECT_ACTION
from opsmith.domain.slack import (
    MAX_SKEW_SECONDS,
    STATUS_BLOCK,
    InteractionRefused,
    SignatureRefused,
    Verdict,
    decided_message,
    ephemeral_message,
    parse_interaction,
    response_url_allowed,
    sign,
    state_line,
    verify,
)

SECRET = b"8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_531_420_618
BODY = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&payload=%7B%7D"


def test_slacks_documented_example_is_accepted() -> None:
    # The worked example of Slack's "Verifying requests from Slack" page.
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert sign(SECRET, "1531420618", body) == expected
    assert verify([SECRET], "1531420618", expected, body, now=1531420618 + 10) == 0


@settings(max_examples=200, deadline=None)
@given(
    body=st.binary(max_size=300),
    secret=st.binary(min_size=1, max_size=64),
    skew=st.integers(-MAX_SKEW_SECONDS, MAX_SKEW_SECONDS),
)
def test_a_correct_signature_within_five_minutes_is_accepted(body: bytes, secret: bytes, skew: int) -> None:
    timestamp = str(NOW)
    others = [b"another app's secret", secret]
    assert verify(others, timestamp, sign(secret, timestamp, body), body, now=NOW + skew) == 1


@settings(max_examples=200, deadline=None)
@given(body=st.binary(max_size=300), tampered=st.binary(min_size=1, max_size=300), at=st.integers(0, 299))
def test_any_change_to_the_body_is_refused(body: bytes, tampered: bytes, at: int) -> None:
    signature = sign(SECRET, str(NOW), body)
    changed = body[:at] + tampered + body[at + 1 :]
    if changed == body:
        changed = body + b"x"
    with pytest.raises(SignatureRefused, match="does not match"):
        verify([SECRET], str(NOW), signature, changed, now=NOW)


@settings(max_examples=200, deadline=None)
@given(other=st.integers(NOW - MAX_SKEW_SECONDS, NOW + MAX_SKEW_SECONDS).filter(lambda t: t != NOW))
def test_a_signature_for_another_timestamp_is_refused(other: int) -> None:
    signature = sign(SECRET, str(NOW), BODY)
    with pytest.raises(SignatureRefused, match="does not match"):
        verify([SECRET], str(other), signature, BODY, now=NOW)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_change_to_the_signature_is_refused(data: st.DataObject) -> None:
    signature = sign(SECRET, str(NOW), BODY)
    at = data.draw(st.integers(0, len(signature) - 1))
    replacement = data.draw(st.characters(codec="utf-8").filter(lambda c: c != signature[at]))
    changed = signature[:at] + replacement + signature[at + 1 :]
    with pytest.raises(SignatureRefused) as refused:
        verify([SECRET], str(NOW), changed, BODY, now=NOW)
    assert SECRET.decode() not in str(refused.value)


@given(skew=st.integers(MAX_SKEW_SECONDS + 1, 10**9), sign_of=st.sampled_from([-1, 1]))
def test_a_timestamp_more_than_five_minutes_away_is_refused_even_correctly_signed(
    skew: int, sign_of: int
) -> None:
    timestamp = str(NOW)
    with pytest.raises(SignatureRefused, match="more than 300 s is refused"):
        verify([SECRET], timestamp, sign(SECRET, timestamp, BODY), BODY, now=NOW + sign_of * skew)


@given(timestamp=st.text(max_size=20).filter(lambda t: not (t.isascii() and t.isdigit() and len(t) <= 12)))
def test_a_timestamp_that_is_not_a_plain_number_is_refused(timestamp: str) -> None:
    with pytest.raises(SignatureRefused):
        verify([SECRET], timestamp, "v0=" + "0" * 64, BODY, now=NOW)


@pytest.mark.parametrize(
    ("timestamp", "signature", "said"),
    [
        (None, "v0=" + "0" * 64, "no X-Slack-Request-Timestamp header"),
        (str(NOW), None, "no X-Slack-Signature header"),
        ("", "", "no X-Slack-Request-Timestamp"),
        (str(NOW), "sha256=abc", "not of the form v0=<64 hex digits>"),
        ("+1531420618", "v0=" + "0" * 64, "not a number"),
    ],
)
def test_missing_and_malformed_headers_say_what_is_wrong(
    timestamp: str | None, signature: str | None, said: str
) -> None:
    with pytest.raises(SignatureRefused, match=said.replace("+", r"\+")) as refused:
        verify([SECRET], timestamp, signature, BODY, now=NOW)
    assert refused.value.hint


# --- the payload of a click ---------------------------------------------------------------------


def click(**changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = {
        "type": "block_actions",
        "user": {"id": "U0ALICE", "username": "alice"},
        "team": {"id": "T0TEAM", "domain": "acme"},
        "response_url": "https://hooks.slack.com/actions/T0TEAM/1/abc",
        "message": {"blocks": [{"type": "section"}, {"type": "actions", "block_id": "b"}]},
        "actions": [
            {
                "action_id": APPROVE_ACTION,
                "value": json.dumps({"plan_id": "plan_1", "plan_hash": "sha256:feed"}),
                "action_ts": "1700000000.1",
            }
        ],
    }
    payload.update(changes)
    return payload


def form(payload: Any) -> bytes:
    return urlencode({"payload": json.dumps(payload)}).encode()


def test_a_click_is_read_from_the_form_encoded_payload() -> None:
    found = parse_interaction(form(click()))
    assert (found.user_id, found.team_id, found.user_name) == ("U0ALICE", "T0TEAM", "alice")
    assert (found.verdict, found.plan_id, found.plan_hash) == (Verdict.APPROVE, "plan_1", "sha256:feed")
    assert found.response_url == "https://hooks.slack.com/actions/T0TEAM/1/abc"
    assert found.key == "T0TEAM:U0ALICE:plan_1:sha256:feed" and len(found.blocks) == 2
    reject = click(actions=[{**click()["actions"][0], "action_id": REJECT_ACTION}])
    assert parse_interaction(form(reject)).verdict is Verdict.REJECT


@pytest.mark.parametrize(
    ("body", "said"),
    [
        (b"", "exactly one payload"),
        (b"payload=not-json", "not JSON"),
        (b"payload=%5B1%5D", "not a JSON object"),
        (b"\xff\xfe", "not form-encoded UTF-8"),
        (form(click(type="view_submission")), "is not block_actions"),
        (form(click(user={})), "user.id"),
        (form(click(team=None)), "team.id"),
        (form(click(actions=[])), "no actions"),
        (form(click(actions=[{"action_id": APPROVE_ACTION, "value": "x"}])), "button's value"),
        (form(click(response_url=7)), "response_url"),
        (b"payload=" + quote(json.dumps(click())).encode() + b"&payload=%7B%7D", "exactly one payload"),
    ],
)
def test_a_malformed_payload_is_refused_saying_what_is_wrong(body: bytes, said: str) -> None:
    with pytest.raises(InteractionRefused, match="malformed Slack interaction") as refused:
        parse_interaction(body)
    assert said in refused.value.message and refused.value.hint


def test_a_button_opsmith_did_not_make_is_an_unknown_action() -> None:
    with pytest.raises(InteractionRefused, match="unknown action 'other_button'"):
        parse_interaction(form(click(actions=[{"action_id": "other_button", "value": "{}"}])))


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=400))
def test_any_body_is_a_click_or_a_clear_refusal(body: bytes) -> None:
    try:
        parse_interaction(body)
    except InteractionRefused as refused:
        assert refused.message and refused.hint


@settings(max_examples=300, deadline=None)
@given(
    payload=st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
        max_leaves=20,
    )
)
def test_any_json_payload_is_a_click_or_a_clear_refusal(payload: Any) -> None:
    try:
        parse_interaction(form(payload))
    except InteractionRefused as refused:
        assert refused.message


# --- where a reply may go -----------------------------------------------------------------------

SLACK = ["https://hooks.slack.com/"]


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.slack.com/actions/T0/1/abc", True),
        ("https://HOOKS.slack.com/actions/T0/1/abc", True),
        ("https://hooks.slack.com:443/actions/T0/1/abc", True),
        ("http://hooks.slack.com/actions/T0/1/abc", False),
        ("https://hooks.slack.com.evil.test/actions", False),
        ("https://hooks.slack.com@evil.test/actions", False),
        ("https://evil.test/https://hooks.slack.com/", False),
        ("https://hooks.slack.com\\@evil.test/", False),
        ("https://hooks.slack.com:8443/actions", False),
        ("https://hooks.slack.com/a b", False),
        ("https://hooks.slack.com:99999/", False),
        ("file:///etc/passwd", False),
        ("https://169.254.169.254/latest/meta-data/", False),
        ("", False),
    ],
)
def test_a_reply_goes_only_to_an_allowed_origin(url: str, allowed: bool) -> None:
    assert response_url_allowed(url, SLACK) is allowed


def test_a_local_receiver_is_allowed_only_under_its_own_prefix() -> None:
    local = ["http://127.0.0.1:8123/slack/"]
    assert response_url_allowed("http://127.0.0.1:8123/slack/actions/1", local)
    assert not response_url_allowed("http://127.0.0.1:8123/admin", local)
    assert not response_url_allowed("http://127.0.0.1:8124/slack/actions/1", local)
    assert not response_url_allowed("http://localhost:8123/slack/actions/1", local)


@settings(max_examples=300, deadline=None)
@given(url=st.text(max_size=80))
def test_no_text_reaches_another_host_than_the_allowed_one(url: str) -> None:
    from urllib.parse import urlsplit

    if response_url_allowed(url, SLACK):
        parts = urlsplit(url)
        assert parts.scheme == "https" and parts.hostname == "hooks.slack.com" and "@" not in parts.netloc


# --- the messages ---------------------------------------------------------------------------------


def test_the_state_line_tells_the_tally_and_who_decided() -> None:
    assert state_line("pending_approval", ["alice"], 2) == "approved by alice, 1 of 2"
    assert state_line("approved", ["alice", "carol"], 2) == "approved by alice, carol, 2 of 2"
    assert state_line("rejected", ["alice"], 2, rejected_by="bob") == "rejected by bob"
    assert state_line("pending_approval", [], 2) == "waiting for approval, 0 of 2"


def test_a_decided_message_keeps_the_buttons_only_while_approvals_are_missing() -> None:
    blocks = [{"type": "section"}, {"type": "actions"}, {"type": "context", "block_id": STATUS_BLOCK}]
    still_open = decided_message(blocks, "approved by alice, 1 of 2", open_=True)
    assert still_open["replace_original"] is True and still_open["text"] == "approved by alice, 1 of 2"
    assert [b["type"] for b in still_open["blocks"]] == ["section", "actions", "context"]
    closed = decided_message(blocks, "rejected by bob", open_=False)
    assert [b["type"] for b in closed["blocks"]] == ["section", "context"]
    assert closed["blocks"][-1]["elements"][0]["text"] == "rejected by bob"
    assert ephemeral_message("no") == {"response_type": "ephemeral", "replace_original": False, "text": "no"}
