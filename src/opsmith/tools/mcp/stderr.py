"""A child server's stderr, read continuously into a rotating log file.

The pipe is always drained (a server blocked on a full stderr pipe would hang), the lines
never reach opsmith's own output, and the pipe's end-of-file is how we learn at once that a
stdio server exited: the child holds the only write end once we close ours.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import deque
from collections.abc import Callable, Iterable
from logging.handlers import RotatingFileHandler
from pathlib import Path
from typing import IO

from opsmith.domain.redaction import Redactor

_MAX_BYTES = 1_000_000
_BACKUPS = 3


class StderrCapture:
    """Owns one pipe whose write end is given to the child as its stderr."""

    def __init__(
        self, server: str, log_file: Path, secrets: Iterable[str], on_eof: Callable[[], None]
    ) -> None:
        self.log_file = log_file
        self._redactor = Redactor(secrets)
        self._on_eof = on_eof
        self.tail: deque[str] = deque(maxlen=40)
        read_fd, write_fd = os.pipe()
        self._reader_file: IO[bytes] = os.fdopen(read_fd, "rb", buffering=0)
        self.child_end: IO[str] = os.fdopen(write_fd, "w")
        self._logger = _file_logger(server, log_file)
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 20)
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), self._reader_file)
        self._task = asyncio.create_task(self._pump(reader))

    def release_child_end(self) -> None:
        """Close our copy of the write end, so EOF arrives when the child exits."""
        if not self.child_end.closed:
            self.child_end.close()

    async def close(self) -> None:
        self.release_child_end()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), timeout=2.0)
            except (TimeoutError, asyncio.CancelledError):
                self._task.cancel()
        for handler in self._logger.handlers:
            handler.flush()

    def redact(self, text: str) -> str:
        return self._redactor.text(text)

    def last_lines(self, count: int = 5) -> list[str]:
        return [line for line in list(self.tail)[-count:] if line.strip()]

    async def _pump(self, reader: asyncio.StreamReader) -> None:
        try:
            while True:
                raw = await reader.readline()
                if not raw:
                    break
                line = self.redact(raw.decode("utf-8", "replace").rstrip("\r\n"))
                self.tail.append(line)
                self._logger.info(line)
        except (ValueError, OSError) as exc:  # an over-long line or a torn pipe: note it, stop reading
            self._logger.warning("stderr capture stopped: %s", exc)
        finally:
            self._on_eof()


def _file_logger(server: str, log_file: Path) -> logging.Logger:
    logger = logging.getLogger(f"opsmith.server_stderr.{server}")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    target = str(log_file.resolve())
    if not any(getattr(h, "baseFilename", None) == target for h in logger.handlers):
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handler = RotatingFileHandler(log_file, maxBytes=_MAX_BYTES, backupCount=_BACKUPS, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger.addHandler(handler)
    return logger
