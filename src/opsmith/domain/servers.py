"""The health of a configured MCP server, as the supervisor last saw it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class Health(StrEnum):
    UP = "up"
    DEGRADED = "degraded"
    DOWN = "down"
    STOPPED = "stopped"
    STARTING = "starting"


class ServerStatus(BaseModel):
    """What `opsmith servers status` reports for one server."""

    model_config = ConfigDict(frozen=True)

    name: str
    transport: str
    health: Health
    reason: str | None = None
    tool_count: int = 0
    last_error: str | None = None
    started_at: datetime | None = None
    uptime_seconds: float | None = None
    restarts: int = 0
    log_file: str | None = None
    protocol_version: str | None = None
    server_info: str | None = None
    title: str | None = None


class RecordedServer(BaseModel):
    """What the last discovery recorded of one server, for planning from the recorded catalog."""

    model_config = ConfigDict(frozen=True)

    name: str
    health: Health
    checked_at: datetime | None = None
    config_hash: str | None = None
