"""The credential vault: names and metadata listed, secrets stored, removed and re-encrypted (admin).

A value comes in a request body and never goes out: every answer is what `opsmith secrets ... --json`
prints, names, kinds, usernames, dates and key ids.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, SecretStr

from opsmith.api.deps import AppDep, Caller
from opsmith.domain.vault import MAX_SECRET_CHARS, MAX_USERNAME_CHARS
from opsmith.services import secrets

router = APIRouter(prefix="/api/v1/secrets", tags=["secrets"])


class SecretBody(BaseModel):
    """A secret to store under the path's name. SecretStr: a value kept out of every repr and log."""

    model_config = ConfigDict(extra="forbid")

    kind: str = Field(max_length=40, description="password, ssh_key, token or certificate")
    value: SecretStr = Field(max_length=MAX_SECRET_CHARS, description="the secret itself, exactly")
    username: str | None = Field(
        default=None, max_length=MAX_USERNAME_CHARS, description="the account it logs in as"
    )
    passphrase: SecretStr | None = Field(
        default=None, max_length=MAX_SECRET_CHARS, description="an encrypted ssh_key's passphrase"
    )


@router.get("", summary="Every stored secret's name, kind, username, dates and key id; never a value")
async def list_secrets(app: AppDep, who: Caller) -> list[dict[str, Any]]:
    return [info.model_dump(mode="json") for info in secrets.list_secrets(app, who)]


@router.put("/{name}", summary="Store a secret, or replace it, encrypted; answered without it (admin)")
async def set_secret(name: str, body: SecretBody, app: AppDep, who: Caller) -> dict[str, Any]:
    passphrase = body.passphrase.get_secret_value() if body.passphrase is not None else None
    info = secrets.set_secret(
        app, who, name, body.kind, body.value.get_secret_value(), body.username, passphrase, via="api"
    )
    return info.model_dump(mode="json")


@router.delete("/{name}", summary="Remove a secret; works without the key (admin)")
async def delete_secret(name: str, app: AppDep, who: Caller) -> dict[str, Any]:
    return secrets.delete_secret(app, who, name, via="api").model_dump(mode="json")


@router.post("/rotate", summary="Re-encrypt every secret under a new key, in one transaction (admin)")
async def rotate_key(app: AppDep, who: Caller) -> dict[str, Any]:
    return secrets.rotation_report(secrets.rotate_key(app, who, via="api"))
