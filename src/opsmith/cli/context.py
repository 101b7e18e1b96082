"""What every command gets: the wired App (built lazily, once) and the output consoles."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Coroutine
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar, cast

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from opsmith.bootstrap import App
    from opsmith.domain.identity import Identity


T = TypeVar("T")


class _LazyConsole:
    """A Rich console made on first use: Rich costs tens of milliseconds to import, and `--help`,
    a JSON answer or a parse error never print through it."""

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._console: Console | None = None

    def __getattr__(self, name: str) -> Any:
        if self._console is None:
            from rich.console import Console

            self._console = Console(**self._options)
        return getattr(self._console, name)


out = cast("Console", _LazyConsole(highlight=False, soft_wrap=False))
err = cast("Console", _LazyConsole(stderr=True, highlight=False, soft_wrap=True))


class State:
    def __init__(self, config_path: Path | None, as_user: str | None = None) -> None:
        self.config_path = config_path
        self.as_user = as_user
        self._app: App | None = None
        self._identity: Identity | None = None

    @property
    def app(self) -> App:
        if self._app is None:
            from opsmith.bootstrap import bootstrap  # heavy (SQLAlchemy); not needed for --help

            self._app = bootstrap(self.config_path, os.environ)
            _log_to_file(self._app.config.log_dir / "opsmith.log")
        return self._app

    @property
    def identity(self) -> Identity:
        """Who runs this command: resolved once from the configuration, stored roles and the OS user."""
        if self._identity is None:
            from opsmith.services.identity import identify

            self._identity = identify(self.app, _os_user(), self.as_user)
            if self._identity.source == "embedded-admin":
                err.print(
                    f"[dim]note: no rbac section configured; {self._identity.user} acts as the local admin"
                    " (a second approver for four-eyes needs users in opsmith.yaml)[/]"
                )
        return self._identity


def _os_user() -> str:
    """The account this process runs as, from the kernel's user id. Never $USER or $LOGNAME
    (getpass reads those first): anyone can set them, and identity decides who may approve."""
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:
        return f"uid-{os.geteuid()}"


def state(ctx: typer.Context) -> State:
    found = ctx.find_object(State)
    assert found is not None, "the root callback always sets State"
    return found


def run(coro: Coroutine[Any, Any, T]) -> T:
    import asyncio  # costs ~30 ms: commands that need no event loop do not pay for it

    return asyncio.run(coro)


def escape(text: str) -> str:
    """Text shown as itself in Rich markup (a name with [brackets] is not a style)."""
    from rich.markup import escape as rich_escape  # Rich is loaded only by what prints through it

    return rich_escape(text)


def emit_json(data: Any) -> None:
    # Plain print: JSON must not be wrapped or styled by Rich.
    print(json.dumps(data, indent=2, default=str, sort_keys=False))


def _log_to_file(path: Path) -> None:
    # opsmith's and the SDK's own log records go to a file, never into the command's output.
    root = logging.getLogger()
    if any(isinstance(h, RotatingFileHandler) for h in root.handlers):
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = RotatingFileHandler(path, maxBytes=2_000_000, backupCount=3, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.INFO)
