"""The composition root: builds configuration, store and adapters once, at the edge."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from opsmith.config import Config, load_config
from opsmith.store.database import Database
from opsmith.store.servers import ServerRepository


@dataclass(frozen=True)
class App:
    """Everything a command needs, wired once."""

    config: Config
    environ: Mapping[str, str]
    database: Database
    servers: ServerRepository


def bootstrap(config_path: Path | None, environ: Mapping[str, str]) -> App:
    config = load_config(config_path, environ)
    database = Database(config.database, sqlite_synchronous=config.sqlite_synchronous)
    return App(config=config, environ=dict(environ), database=database, servers=ServerRepository(database))
