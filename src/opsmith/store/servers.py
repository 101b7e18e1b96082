"""Repository of servers' desired state and last observed status, and the last known catalog."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

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
        self._tools: tuple[tuple[tuple[str, datetime | None, int], ...], list[ToolSpec]] | None = None

    def disabled(self) -> set[str]:
        with self._db.session() as session:
            return set(session.scalars(select(ServerRow.name).where(ServerRow.enabled.is_(False))))

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
        with self._db.session() as session:
            return [
                RecordedServer(
                    name=row.name,
                    health=Health(row.health),
                    checked_at=_aware(row.checked_at),
                    config_hash=row.config_hash,
                )
                for row in session.scalars(select(ServerRow))
            ]

    def known_tools(self, server: str | None = None) -> list[ToolSpec]:
        with self._db.session() as session:
            version = tuple(
                (name, newest, count)
                for name, newest, count in session.execute(
                    select(ToolRow.server, func.max(ToolRow.discovered_at), func.count())
                    .group_by(ToolRow.server)
                    .order_by(ToolRow.server)
                )
            )
            if self._tools is None or self._tools[0] != version:
                self._tools = version, self._read_tools(session)
            tools = self._tools[1]
        return list(tools) if server is None else [t for t in tools if t.server == server]

    @staticmethod
    def _read_tools(session: Session) -> list[ToolSpec]:
        query = select(ToolRow).order_by(ToolRow.server, ToolRow.name)
        return [
            ToolSpec(
                server=row.server,
                name=row.name,
                title=row.title,
                description=row.description,
                input_schema=row.input_schema,
                output_schema=row.output_schema,
                hints=ToolHints.model_validate(row.hints),
            )
            for row in session.scalars(query)
        ]

    def record_applications(self, server: str, names: Sequence[str]) -> None:
        with self._db.session() as session:
            row = session.get(ServerRow, server) or ServerRow(name=server, enabled=True)
            row.applications = sorted(set(names))
            session.add(row)

    def applications(self) -> dict[str, list[str]]:
        with self._db.session() as session:
            rows = session.scalars(select(ServerRow).where(ServerRow.applications.is_not(None)))
            return {row.name: list(row.applications or []) for row in rows}


def _aware(moment: datetime | None) -> datetime | None:
    # SQLite hands back naive datetimes for timezone-aware columns; they were written in UTC.
    if moment is None or moment.tzinfo is not None:
        return moment
    return moment.replace(tzinfo=UTC)
