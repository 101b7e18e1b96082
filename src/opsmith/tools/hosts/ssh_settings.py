"""How the SSH adapter reaches hosts: plain values, validated; `FleetConfig` builds them from
opsmith.yaml's `fleet:` section. Kept apart from the adapter so reading the config does not import
asyncssh."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from opsmith.errors import ConfigError

__all__ = ["DEFAULT_HANDSHAKES", "SshSettings"]

DEFAULT_HANDSHAKES = 20


@dataclass(frozen=True)
class SshSettings:
    """The SSH adapter's limits, timeouts and host-key policy."""

    known_hosts: Path
    forks: int = 100  # host operations at once (connect + command)
    handshakes: int = DEFAULT_HANDSHAKES  # of those, at once in key exchange and login
    connect_timeout: float = 10.0  # seconds for TCP, key exchange and login
    command_timeout: float = 300.0  # seconds a command may run unless the call says otherwise
    trust_on_first_use: bool = False  # record the key of a host with none recorded, and connect
    keepalive_interval: float = 15.0  # seconds between keepalives on a kept connection; 0: none

    def __post_init__(self) -> None:
        if self.forks < 1 or self.handshakes < 1:
            raise ConfigError(
                f"fleet.forks and fleet.handshakes must be at least 1, got {self.forks} and {self.handshakes}"
            )
        if self.handshakes > self.forks:
            raise ConfigError(
                f"fleet.handshakes ({self.handshakes}) is more than fleet.forks ({self.forks})",
                hint="handshakes are part of the forks: set handshakes to at most forks",
            )
        for name in ("connect_timeout", "command_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigError(
                    f"fleet.{name} must be a positive number of seconds, got {getattr(self, name)!r}"
                )
        if self.keepalive_interval < 0:
            raise ConfigError(
                f"fleet.keepalive_interval must be 0 (none) or more, got {self.keepalive_interval!r}"
            )
