"""Bearer tokens through the services, over in-memory fakes: who may make, list and revoke them,
what a presented token is checked against, and that the secret reaches nothing but the caller."""

from __future__ import annotations

import json
import secrets
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opsmith.domain.errors import AuthenticationError, UsageError
from opsmith.domain.identity import Action, Identity
from opsmith.domain.tokens import TokenInfo, hash_secret, parse_token, secret_matches, token_text
from opsmith.services.access import AccessRefused, require, set_role
from opsmith.services.identity import permission_of
from opsmith.services.tokens import (
    TOUCH_EVERY,
    authenticate,
    create_token,
    first_admin_token,
    list_tokens,
    revoke_token,
)
from tests.fakes import FakeTools, FakeWorld, fake_app

RBAC = """
rbac:
  users: {vic: viewer, bob: deployer, alice: approver, ada: admin, root: admin}
  roles:
    auditor: {actions: [], max_risk: LOW}
"""
ADA = Identity(user="ada", role="admin", source="config")
BOB = Identity(user="bob", role="deployer", source="config")
LOCAL = Identity(user="owner", role="admin", source="embedded-admin")


def world_of(config: str = RBAC) -> FakeWorld:
    return fake_app(config, FakeTools(specs=[]))


@pytest.fixture
def world() -> FakeWorld:
    return world_of()


def audit_json(world: FakeWorld) -> str:
    return json.dumps([e.model_dump(mode="json") for e in world.audit.chain])


# -- the token's text -------------------------------------------------------------------------------

_URLSAFE = string.ascii_letters + string.digits + "-_"
ids = st.text(alphabet="0123456789abcdef", min_size=12, max_size=12)
token_secrets = st.text(alphabet=_URLSAFE, min_size=43, max_size=43)


@settings(max_examples=500, deadline=None)
@given(st.text())
def test_any_text_is_a_token_or_an_authentication_error(text: str) -> None:
    try:
        token_id, secret = parse_token(text)
    except AuthenticationError as error:
        # One fixed message, whatever was presented: nothing of it is quoted.
        assert (error.reason, error.message) == ("malformed", "the bearer token is malformed")
    else:
        assert token_text(token_id, secret) == text


@settings(max_examples=300, deadline=None)
@given(ids, token_secrets, st.sampled_from(["", " ", "\n", "x"]), st.sampled_from(["", " ", "\n", "="]))
def test_a_valid_token_round_trips_and_anything_around_it_is_malformed(
    token_id: str, secret: str, before: str, after: str
) -> None:
    text = token_text(token_id, secret)
    assert parse_token(text) == (token_id, secret)
    if before or after:
        with pytest.raises(AuthenticationError, match="malformed"):
            parse_token(before + text + after)


def test_a_minted_secret_fits_the_format_and_its_hash_matches_only_it() -> None:
    secret = secrets.token_urlsafe(32)
    assert parse_token(token_text(secrets.token_hex(6), secret))[1] == secret
    assert secret_matches(secret, hash_secret(secret))
    assert not secret_matches(secret, hash_secret(secret + "x"))
    assert not secret_matches(secret, "é" * 64)  # a rewritten hash, not even ASCII


# -- create, list, revoke -------------------------------------------------------------------------


def test_an_admin_creates_a_token_that_authenticates_as_its_user_and_role(world: FakeWorld) -> None:
    info, text = create_token(world.app, ADA, "bob", "deployer", name="ci", via="test")
    assert text.startswith(f"osm_{info.id}_")
    assert (info.user, info.role, info.name, info.created_by) == ("bob", "deployer", "ci", "ada")
    assert info.created_at == world.clock.now() and info.active
    assert "secret" not in info.model_dump() and "hash" not in json.dumps(info.model_dump(mode="json"))

    assert authenticate(world.app, text) == Identity(user="bob", role="deployer", source="token")
    assert list_tokens(world.app, ADA) == [world.tokens.rows[info.id][0]]
    assert world.audit.actions() == [("ada", "token.created", info.id)]
    details = world.audit.chain[0].details
    assert details == {"id": info.id, "user": "bob", "role": "deployer", "name": "ci", "via": "test"}


def test_nobody_but_an_admin_creates_lists_or_revokes_and_nothing_is_written(world: FakeWorld) -> None:
    info, _ = create_token(world.app, ADA, "vic", "viewer", via="test")
    before = len(world.audit.chain)
    with pytest.raises(AccessRefused, match=r"bob \(deployer\) may not admin"):
        create_token(world.app, BOB, "bob", "deployer", via="test")
    with pytest.raises(AccessRefused):
        list_tokens(world.app, BOB)
    with pytest.raises(AccessRefused):
        revoke_token(world.app, BOB, info.id, via="test")
    assert list(world.tokens.rows) == [info.id] and world.tokens.rows[info.id][0].active
    assert len(world.audit.chain) == before


def test_a_token_names_a_known_role(world: FakeWorld) -> None:
    with pytest.raises(UsageError, match="unknown role 'root'") as caught:
        create_token(world.app, ADA, "vic", "root", via="test")
    assert caught.value.hint is not None and "auditor" in caught.value.hint
    assert world.tokens.rows == {} and world.audit.chain == []


def test_with_users_configured_a_token_is_for_a_configured_user_in_their_current_role(
    world: FakeWorld,
) -> None:
    with pytest.raises(UsageError, match="'mallory' is not a configured user"):
        create_token(world.app, ADA, "mallory", "viewer", via="test")
    with pytest.raises(UsageError, match="vic is viewer, not admin") as caught:
        create_token(world.app, ADA, "vic", "admin", via="test")
    assert caught.value.hint is not None and "--role viewer" in caught.value.hint
    set_role(world.app, ADA, "vic", "auditor", via="test")  # a stored change wins over the file
    with pytest.raises(UsageError, match="vic is auditor, not viewer"):
        create_token(world.app, ADA, "vic", "viewer", via="test")
    info, _ = create_token(world.app, ADA, "vic", "auditor", via="test")
    assert info.role == "auditor" and len(world.tokens.rows) == 1


def test_without_users_configured_any_user_and_default_role_will_do() -> None:
    world = world_of("")
    info, text = create_token(world.app, LOCAL, "robot", "viewer", via="test")
    identity = authenticate(world.app, text)
    assert identity == Identity(user="robot", role="viewer", source="token")
    # The token's role holds on a server without rbac: a viewer token gets a viewer's rights.
    assert permission_of(world.app.config, identity).actions == []
    with pytest.raises(AccessRefused, match=r"robot \(viewer\) may not plan"):
        require(world.app, identity, Action.PLAN, hint="")
    assert permission_of(world.app.config, LOCAL).actions == list(Action)
    with pytest.raises(UsageError, match="unknown role 'auditor'"):
        create_token(world.app, LOCAL, "robot", "auditor", via="test")
    with pytest.raises(UsageError, match="user name"):
        create_token(world.app, LOCAL, " ", "viewer", via="test")
    assert list(world.tokens.rows) == [info.id]


def test_a_revoked_token_is_refused_and_revoking_again_changes_nothing(world: FakeWorld) -> None:
    info, text = create_token(world.app, ADA, "bob", "deployer", via="test")
    world.clock.advance(60)
    revoked = revoke_token(world.app, ADA, info.id, via="test")
    assert revoked.revoked_at == world.clock.now() and not revoked.active
    world.clock.advance(60)
    assert revoke_token(world.app, ADA, info.id, via="test") == revoked
    assert [a for _, a, _ in world.audit.actions()] == ["token.created", "token.revoked"]
    assert world.audit.chain[-1].details == {
        "id": info.id,
        "user": "bob",
        "role": "deployer",
        "name": "",
        "via": "test",
    }
    with pytest.raises(AuthenticationError, match="revoked") as caught:
        authenticate(world.app, text)
    assert caught.value.reason == "revoked"
    assert list_tokens(world.app, ADA) == [revoked]


def test_revoking_an_unknown_id_names_it_and_a_pasted_token_is_not_echoed(world: FakeWorld) -> None:
    with pytest.raises(UsageError, match="no token 'aaaaaaaaaaaa'"):
        revoke_token(world.app, ADA, "aaaaaaaaaaaa", via="test")
    _, text = create_token(world.app, ADA, "bob", "deployer", via="test")
    with pytest.raises(UsageError, match="not a token id") as caught:
        revoke_token(world.app, ADA, text, via="test")
    assert parse_token(text)[1] not in str(caught.value)


# -- authenticate -----------------------------------------------------------------------------------


def test_a_role_changed_after_creation_refuses_the_token(world: FakeWorld) -> None:
    _, text = create_token(world.app, ADA, "bob", "deployer", via="test")
    set_role(world.app, ADA, "bob", "viewer", via="test")
    with pytest.raises(
        AuthenticationError, match="made for bob as deployer, and bob is now viewer"
    ) as caught:
        authenticate(world.app, text)
    assert caught.value.reason == "role_changed"
    assert caught.value.hint is not None and "new token" in caught.value.hint
    set_role(world.app, ADA, "bob", "deployer", via="test")
    assert authenticate(world.app, text).role == "deployer"


def test_a_user_removed_from_the_configuration_is_refused(world: FakeWorld) -> None:
    _, text = create_token(world.app, ADA, "bob", "deployer", via="test")
    fewer = world_of("rbac:\n  users: {ada: admin}\n")
    fewer.tokens.rows = world.tokens.rows
    with pytest.raises(AuthenticationError, match="bob is no longer a configured user"):
        authenticate(fewer.app, text)


def test_a_tampered_hash_or_a_wrong_secret_is_unknown(world: FakeWorld) -> None:
    info, text = create_token(world.app, ADA, "bob", "deployer", via="test")
    token_id, secret = parse_token(text)
    guessed = token_text(token_id, secrets.token_urlsafe(32))
    with pytest.raises(AuthenticationError, match="unknown") as caught:
        authenticate(world.app, guessed)
    assert caught.value.reason == "unknown"
    world.tokens.rows[token_id] = (info, hash_secret(secret + "x"))
    with pytest.raises(AuthenticationError, match="unknown"):
        authenticate(world.app, text)
    with pytest.raises(AuthenticationError, match="unknown"):
        authenticate(world.app, token_text("0" * 12, secret))


def test_no_refusal_quotes_the_presented_token(world: FakeWorld) -> None:
    info, text = create_token(world.app, ADA, "bob", "deployer", via="test")
    secret = parse_token(text)[1]
    world.tokens.rows["f" * 12] = (info.model_copy(update={"id": "f" * 12}), hash_secret(secret))
    revoke_token(world.app, ADA, "f" * 12, via="test")
    presented = {
        "malformed": text[:-1],
        "unknown": token_text("0" * 12, secret),
        "revoked": token_text("f" * 12, secret),
        "role_changed": text,
    }
    set_role(world.app, ADA, "bob", "viewer", via="test")
    for reason, attempt in presented.items():
        with pytest.raises(AuthenticationError) as caught:
            authenticate(world.app, attempt)
        assert caught.value.reason == reason
        shown = f"{caught.value} {caught.value.hint}"
        assert secret[:8] not in shown and secret[-8:] not in shown and attempt[4:16] not in shown


def test_a_use_is_recorded_at_most_once_a_minute(world: FakeWorld) -> None:
    info, text = create_token(world.app, ADA, "bob", "deployer", via="test")
    first_use = world.clock.now()
    authenticate(world.app, text)
    world.clock.advance(10)
    authenticate(world.app, text)
    world.clock.advance(TOUCH_EVERY.total_seconds())
    authenticate(world.app, text)
    assert world.tokens.touched == [(info.id, first_use), (info.id, world.clock.now())]
    assert world.tokens.rows[info.id][0].last_used_at == world.clock.now()


# -- the secret reaches nothing but the caller ----------------------------------------------------


def test_audit_entries_never_hold_the_token_its_secret_or_its_hash(world: FakeWorld) -> None:
    info, text = create_token(world.app, ADA, "bob", "deployer", name="deploy bot", via="test")
    revoke_token(world.app, ADA, info.id, via="test")
    first = first_admin_token(world.app, "root")
    assert first is not None
    trail = audit_json(world)
    for token in (text, first):
        _, secret = parse_token(token)
        for forbidden in (token, secret, hash_secret(secret)):
            assert forbidden not in trail
    assert len(world.audit.chain) == 3 and world.audit.verify().ok


# -- the first admin token --------------------------------------------------------------------------


def test_a_first_token_another_server_made_meanwhile_wins_and_nothing_is_audited() -> None:
    world = world_of("")
    # Between this server's count and its insert another one stored the first token: the insert
    # decides (inside its own transaction), so this server makes none and says nothing.
    now = world.clock.now()
    rival = TokenInfo(
        id="0123456789ab", user="other", role="admin", name="", created_at=now, created_by="other"
    )
    world.tokens.count_active = lambda: 0  # type: ignore[method-assign]
    world.tokens.add(rival, hash_secret("x"))
    assert first_admin_token(world.app, "owner") is None
    assert list(world.tokens.rows) == [rival.id]
    assert world.audit.chain == []


def test_the_first_admin_token_is_made_once_when_no_token_is_active() -> None:
    world = world_of("")
    text = first_admin_token(world.app, "owner")
    assert text is not None
    assert authenticate(world.app, text) == Identity(user="owner", role="admin", source="token")
    assert first_admin_token(world.app, "owner") is None
    assert world.audit.actions() == [("owner", "token.created", parse_token(text)[0])]
    assert world.audit.chain[0].details["first"] is True
    assert world.audit.chain[0].details["via"] == "serve"
    # Once every token is revoked, the next start makes a new first one.
    revoke_token(world.app, LOCAL, parse_token(text)[0], via="test")
    again = first_admin_token(world.app, "owner", via="test")
    assert again is not None and again != text
    assert world.tokens.count_active() == 1


def test_with_users_configured_the_first_token_is_for_a_configured_admin(world: FakeWorld) -> None:
    with pytest.raises(UsageError, match="bob is not a configured admin"):
        first_admin_token(world.app, "bob")
    assert world.tokens.rows == {} and world.audit.chain == []
    text = first_admin_token(world.app, "root")
    assert text is not None and authenticate(world.app, text).user == "root"
