"""A host of the fleet as the executors see it, the credential they log in with, and what one
command on one host came to.

These are the values shared by the inventory (which hosts), the vault (which credential), the SSH
and WinRM adapters (how to reach them) and the engine's per-host fan-out (what happened on each).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

OsFamily = Literal["linux", "windows"]
Connection = Literal["ssh", "winrm", "psrp"]
CredentialKind = Literal["password", "ssh_key", "token", "certificate"]

HOSTS_SERVER = "hosts"  # the tool server of the fleet: its tools are the fleet operations

# How much of a host's stdout and stderr a result keeps: enough to see what went wrong, bounded so a
# chatty command on 500 hosts does not fill the journal.
TAIL_CHARS = 4096


class Host(BaseModel):
    """One host: where it is, how to reach it, which vault credential logs in, and its variables
    (its groups' variables merged down, its own last)."""

    model_config = ConfigDict(frozen=True)

    name: str = Field(min_length=1)
    address: str = Field(min_length=1)
    port: int | None = Field(default=None, ge=1, le=65535, description="default: 22, or 5986 for WinRM")
    os: OsFamily = "linux"
    connection: Connection = "ssh"
    user: str | None = None
    credential: str | None = Field(default=None, description="name of a secret in the vault")
    vars: dict[str, Any] = Field(default_factory=dict)

    @property
    def effective_port(self) -> int:
        if self.port is not None:
            return self.port
        return 22 if self.connection == "ssh" else 5986


class Credential(BaseModel):
    """A credential taken out of the vault for one connection. The secret parts are `SecretStr`,
    so printing, logging or serialising the model never shows them; only an adapter that logs in
    calls `get_secret_value()`."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: CredentialKind
    username: str | None = None
    secret: SecretStr
    passphrase: SecretStr | None = None

    def secret_values(self) -> list[str]:
        """The strings that must never appear anywhere (for redaction)."""
        values = [self.secret.get_secret_value()]
        if self.passphrase is not None:
            values.append(self.passphrase.get_secret_value())
        return [value for value in values if value]


class HostFailure(StrEnum):
    """Why a command did not run to an exit code on a host; each is its own clear reason."""

    UNREACHABLE = "unreachable"  # refused, no route, or the connect timed out
    HOST_KEY_UNKNOWN = "host_key_unknown"  # strict checking and no recorded key for it
    HOST_KEY_CHANGED = "host_key_changed"  # a recorded key that differs from the one offered
    AUTH_REJECTED = "auth_rejected"  # the server refused the credential
    TIMED_OUT = "timed_out"  # the command outlived its timeout (it may have done some work)
    CONNECTION_LOST = "connection_lost"  # the connection ended while the command ran
    PROTOCOL = "protocol"  # the remote end answered something the adapter cannot use
    REFUSED = "refused"  # opsmith refused to send it (e.g. Basic auth over plain HTTP)

    @property
    def may_have_run(self) -> bool:
        """Whether the command may have done some of its work (so a retry may repeat it)."""
        return self in (HostFailure.TIMED_OUT, HostFailure.CONNECTION_LOST, HostFailure.PROTOCOL)


class HostResult(BaseModel):
    """What one command came to on one host: an exit code with the tails of its output, or a
    failure before there was one."""

    model_config = ConfigDict(frozen=True)

    host: str
    exit_code: int | None = None
    stdout: str = ""
    stderr: str = ""
    duration_ms: float = 0.0
    failure: HostFailure | None = None
    reason: str | None = None  # one line a person reads: what happened and what to do

    @property
    def ok(self) -> bool:
        return self.failure is None and self.exit_code == 0


def tail(text: str, limit: int = TAIL_CHARS) -> str:
    """The last `limit` characters of `text`, marked when cut."""
    if len(text) <= limit:
        return text
    return "…" + text[-(limit - 1) :]
