"""Tables. Only templates and observations are stored: resolved secrets never are."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, DateTime, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class ServerRow(Base):
    """An MCP server's operator-set desired state and its last observed status."""

    __tablename__ = "servers"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    health: Mapped[str] = mapped_column(String(16), default="stopped")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    tool_count: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    checked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    config_hash: Mapped[str | None] = mapped_column(String(80), nullable=True)
    applications: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)


class ToolRow(Base):
    """A discovered tool, so plans can be made and explained from the last known catalog."""

    __tablename__ = "tools"

    server: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    title: Mapped[str | None] = mapped_column(String(256), nullable=True)
    description: Mapped[str] = mapped_column(Text, default="")
    input_schema: Mapped[dict[str, Any]] = mapped_column(JSON)
    output_schema: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    hints: Mapped[dict[str, Any]] = mapped_column(JSON)
    discovered_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class PlanRow(Base):
    """A plan as shown to and approved by people; `data` is the full plan JSON."""

    __tablename__ = "plans"

    id: Mapped[str] = mapped_column(String(160), primary_key=True)
    status: Mapped[str] = mapped_column(String(24), index=True)
    hash: Mapped[str] = mapped_column(String(80))
    request: Mapped[str] = mapped_column(Text)
    playbook: Mapped[str] = mapped_column(String(64))
    risk: Mapped[str] = mapped_column(String(16))
    environment: Mapped[str | None] = mapped_column(String(32), nullable=True)
    application: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AuditRow(Base):
    """One entry of the hash-chained audit trail (opsmith.domain.audit); rows are never updated."""

    __tablename__ = "audit"

    # Assigned by the appender (last + 1), never by the database: the primary key is what makes two
    # concurrent appends of the same seq collide instead of forking the chain.
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(200), index=True)
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(80))
    hash: Mapped[str] = mapped_column(String(80))
    mac: Mapped[str] = mapped_column(String(80), default="")
