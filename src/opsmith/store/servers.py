"""Repository of servers' desired state and last observed status, and the last known catalog."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Row, Select, delete, func, select

from opsmith.domain.catalog import ToolHints, ToolSpec
from opsmith.domain.servers import Health, RecordedServer, ServerStatus
from opsmith.store.database import Database
from opsmith.store.models import ServerRow, ToolRow


class ServerRepository:
    def __init__(self, database: Database) -> None:
        self._db = database
        # The last catalog read, by what identifies its version (per server: newest discovery and
        # row count). A long-lived process (`opsmith serve`) plans from it on every request;
        # rebuilding ToolSpecs from rows cost more than the planner itself.
        self._tools: tuple[tuple[tuple[Any, ...], ...], list[ToolSpec]] | None = None

    def disabled(self) -> set[str]:
        return {name for (name,) in self._read(_DISABLED)}

    def set_enabled(self, name: str, enabled: bool) -> None:
        with self._db.session() as session:
            row = session.get(ServerRow, name) or ServerRow(name=name)
            row.enabled = enabled
            session.add(row)

    def record(
        self, statuses: Iterable[ServerStatus], config_hashes: Mapping[str, str] | None = None
    ) -> None:
        """The servers' health as just seen, and the configuration each was started with."""
        now = datetime.now(UTC)
        hashes = config_hashes or {}
        with self._db.session() as session:
            for status in statuses:
                row = session.get(ServerRow, status.name) or ServerRow(name=status.name, enabled=True)
                if status.name in hashes:
                    row.config_hash = hashes[status.name]
                row.health = status.health.value
                row.reason = status.reason
                row.tool_count = status.tool_count
                row.last_error = status.last_error
                row.checked_at = now
                session.add(row)

    def replace_tools(self, server: str, tools: Iterable[ToolSpec]) -> None:
        now = datetime.now(UTC)
        with self._db.session() as session:
            session.execute(delete(ToolRow).where(ToolRow.server == server))
            for tool in tools:
                session.add(
                    ToolRow(
                        server=server,
                        name=tool.name,
                        title=tool.title,
                        description=tool.description,
                        input_schema=tool.input_schema,
                        output_schema=tool.output_schema,
                        hints=tool.hints.model_dump(),
                        discovered_at=now,
                    )
                )

    def recorded(self) -> list[RecordedServer]:
        """What the last discovery saw of each server: health, when, under which configuration."""
        return [
            RecordedServer(
                name=row.name,
                health=Health(row.health),
                checked_at=_aware(row.checked_at),
                config_hash=row.config_hash,
            )
            for row in self._read(_RECORDED)
        ]

    def known_tools(self, server: str | None = None) -> list[ToolSpec]:
        with self._db.transaction() as connection:
            version = tuple(tuple(found) for found in connection.execute(_TOOLS_VERSION))
            if self._tools is None or self._tools[0] != version:
                rows = connection.execute(_TOOLS).all()
                # Stamped with the version of the rows read, not the one read before them: a
                # discovery in between must not keep the older tools under the newer version.
                self._tools = _version(rows), [_tool(row) for row in rows]
            tools = self._tools[1]
        return list(tools) if server is None else [t for t in tools if t.server == server]

    def record_applications(self, server: str, names: Sequence[str]) -> None:
        with self._db.session() as session:
            row = session.get(ServerRow, server) or ServerRow(name=server, enabled=True)
            row.applications = sorted(set(names))
            session.add(row)

    def applications(self) -> dict[str, list[str]]:
        return {name: list(names or []) for name, names in self._read(_APPLICATIONS)}

    def _read(self, query: Select[Any]) -> list[Row[Any]]:
        # A Core connection, not a Session: a plan reads this table several times, and a Session's
        # unit of work costs several times the query itself.
        with self._db.transaction() as connection:
            return list(connection.execute(query))


_DISABLED = select(ServerRow.name).where(ServerRow.enabled.is_(False))
_RECORDED = select(ServerRow.name, ServerRow.health, ServerRow.checked_at, ServerRow.config_hash)
_APPLICATIONS = select(ServerRow.name, ServerRow.applications).where(ServerRow.applications.is_not(None))
# What identifies the version of the recorded tools: per server, the newest discovery and the count.
_TOOLS_VERSION = (
    select(ToolRow.server, func.max(ToolRow.discovered_at), func.count())
    .group_by(ToolRow.server)
    .order_by(ToolRow.server)
)
_TOOLS = select(
    ToolRow.server,
    ToolRow.name,
    ToolRow.title,
    ToolRow.description,
    ToolRow.input_schema,
    ToolRow.output_schema,
    ToolRow.hints,
    ToolRow.discovered_at,
).order_by(ToolRow.server, ToolRow.name)


def _version(rows: Sequence[Row[Any]]) -> tuple[tuple[Any, ...], ...]:
    """`_TOOLS_VERSION` of these rows of `_TOOLS`."""
    newest: dict[str, Any] = {}
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.server] = counts.get(row.server, 0) + 1
        if row.server not in newest or row.discovered_at > newest[row.server]:
            newest[row.server] = row.discovered_at
    return tuple((server, newest[server], counts[server]) for server in sorted(counts))


def _tool(row: Row[Any]) -> ToolSpec:
    return ToolSpec(
        server=row.server,
        name=row.name,
        title=row.title,
        description=row.description,
        input_schema=row.input_schema,
        output_schema=row.output_schema,
        hints=ToolHints.model_validate(row.hints),
    )


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
