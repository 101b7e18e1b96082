"""Bearer tokens for `opsmith serve`: made, listed and revoked by admins, checked at every request.

A token names one user with one role. Its text exists once, in what `create_token` returns; the
store keeps a hash of the secret, and neither the text nor the hash reaches the audit trail.
"""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any

from opsmith.bootstrap import App
from opsmith.domain.errors import AuthenticationError, UnknownTokenError, UnknownUserError, UsageError
from opsmith.domain.identity import DEFAULT_ROLES, Action, Identity
from opsmith.domain.tokens import ID_PATTERN, TokenInfo, hash_secret, parse_token, secret_matches, token_text
from opsmith.services.access import require
from opsmith.services.identity import current_role

# A request records its token's use at most this often: the list says when a token was last used
# to the minute, and a busy client does not write to the database at every request.
TOUCH_EVERY = timedelta(minutes=1)
_MAX_TEXT = 128  # the store's column width for users and names
_ADMIN_HINT = "tokens are an admin action"


def create_token(
    app: App, identity: Identity, user: str, role: str, *, name: str = "", via: str
) -> tuple[TokenInfo, str]:
    """A new token for `user` as `role`, and its text: the only time the text exists. Admin only;
    with users configured, `role` must be the role `user` has now."""
    require(app, identity, Action.ADMIN, hint=_ADMIN_HINT)
    _check_holder(app, user, role)
    if len(name) > _MAX_TEXT:
        raise UsageError(f"a token's name has at most {_MAX_TEXT} characters", hint="use a shorter --name")
    return _mint(app, actor=identity.user, user=user, role=role, name=name, details={"via": via})


def list_tokens(app: App, identity: Identity) -> list[TokenInfo]:
    """Every token, revoked ones too, oldest first; never a secret nor its hash. Admin only."""
    require(app, identity, Action.ADMIN, hint=_ADMIN_HINT)
    return app.tokens.list()


def revoke_token(app: App, identity: Identity, token_id: str, *, via: str) -> TokenInfo:
    """Revoke a token from now on. Admin only. Revoking it again changes nothing: the first
    revocation's time stands, and only it is audited."""
    require(app, identity, Action.ADMIN, hint=_ADMIN_HINT)
    see = "`opsmith token list` shows the ids"
    if not ID_PATTERN.fullmatch(token_id):
        # Not echoed: someone may have pasted the whole token, secret and all.
        raise UsageError("that is not a token id (12 hex characters)", hint=see)
    found = app.tokens.get(token_id)
    if found is None:
        raise UnknownTokenError(f"no token {token_id!r}", hint=see)
    if not found[0].active:
        return found[0]
    revoked = app.tokens.revoke(token_id, app.clock.now())
    if revoked is None:  # gone between the two reads
        raise UnknownTokenError(f"no token {token_id!r}", hint=see)
    app.audit.append(
        identity.user,
        "token.revoked",
        token_id,
        {"id": token_id, "user": revoked.user, "role": revoked.role, "name": revoked.name, "via": via},
    )
    return revoked


def authenticate(app: App, presented: str) -> Identity:
    """Who a bearer token names, with the role it was made with. AuthenticationError when it is
    malformed, unknown (or its secret does not match), revoked, or made for a role its user no
    longer has; the message says which and never quotes the token."""
    token_id, secret = parse_token(presented)
    found = app.tokens.get(token_id)
    # The secret is checked before anything else is said about the token: without it, nobody
    # learns whether an id exists or was revoked.
    if found is None or not secret_matches(secret, found[1]):
        raise AuthenticationError(
            "the bearer token is unknown", reason="unknown", hint="ask an admin for a token"
        )
    info = found[0]
    if info.revoked_at is not None:
        raise AuthenticationError(
            f"the bearer token was revoked at {info.revoked_at:%Y-%m-%d %H:%M} UTC",
            reason="revoked",
            hint="ask an admin for a new token",
        )
    if app.config.rbac is not None:
        now = current_role(app, info.user)
        if now != info.role:
            became = f"is now {now}" if now else "is no longer a configured user"
            raise AuthenticationError(
                f"the bearer token was made for {info.user} as {info.role}, and {info.user} {became}",
                reason="role_changed",
                hint="an admin can create a new token (`opsmith token create`)",
            )
    moment = app.clock.now()
    if info.last_used_at is None or moment - info.last_used_at >= TOUCH_EVERY:
        app.tokens.touch(info.id, moment)
    return Identity(user=info.user, role=info.role, source="token")


def first_admin_token(app: App, os_user: str, *, via: str = "serve") -> str | None:
    """With no active token at all, a new admin token for `os_user`, its text returned; else None.

    No identity check: this is the owner of the machine starting the server, who could run any
    `opsmith` command as the local admin anyway. With users configured, `os_user` must be an admin
    there, or the token would be refused at its first use."""
    if app.tokens.count_active() > 0:
        return None
    if app.config.rbac is not None and current_role(app, os_user) != "admin":
        raise UsageError(
            f"no bearer token exists yet, and {os_user} is not a configured admin to make the first",
            hint=f"make {os_user} an admin under rbac.users, or have an admin run `opsmith token create`",
        )
    info, secret = _new(app, actor=os_user, user=os_user, role="admin", name="first admin token")
    # Counted again inside the insert's transaction: of two servers starting at once, one makes it.
    if not app.tokens.add_first(info, hash_secret(secret)):
        return None
    return _created(app, info, secret, {"via": via, "first": True})


def _check_holder(app: App, user: str, role: str) -> None:
    rbac = app.config.rbac
    known = set(DEFAULT_ROLES) | set(rbac.roles if rbac else {})
    if role not in known:
        raise UsageError(f"unknown role {role!r}", hint=f"known: {', '.join(sorted(known))}")
    if not user.strip() or len(user) > _MAX_TEXT:
        raise UsageError(f"a token needs a user name of 1 to {_MAX_TEXT} characters", hint="set --user")
    if rbac is None:
        return
    if user not in rbac.users:
        raise UnknownUserError(f"{user!r} is not a configured user", hint="add them under rbac.users first")
    now = current_role(app, user)
    if role != now:
        raise UsageError(
            f"{user} is {now}, not {role}: a token carries its user's current role",
            hint=f"create it with --role {now}, or change their role first (`opsmith role set`)",
        )


def _mint(
    app: App, *, actor: str, user: str, role: str, name: str, details: dict[str, Any]
) -> tuple[TokenInfo, str]:
    info, secret = _new(app, actor=actor, user=user, role=role, name=name)
    app.tokens.add(info, hash_secret(secret))
    return info, _created(app, info, secret, details)


def _new(app: App, *, actor: str, user: str, role: str, name: str) -> tuple[TokenInfo, str]:
    token_id, secret = secrets.token_hex(6), secrets.token_urlsafe(32)
    info = TokenInfo(
        id=token_id, user=user, role=role, name=name, created_at=app.clock.now(), created_by=actor
    )
    return info, secret


def _created(app: App, info: TokenInfo, secret: str, details: dict[str, Any]) -> str:
    """Audit a stored token; returns its text, the only time it is shown."""
    text = token_text(info.id, secret)
    # Neither the text nor the hash is in the details; the redaction is a second guard.
    app.audit.append(
        info.created_by,
        "token.created",
        info.id,
        {"id": info.id, "user": info.user, "role": info.role, "name": info.name, **details},
        secrets=[text, secret],
    )
    return text
