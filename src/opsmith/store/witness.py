"""The audit head's witness: a small file outside the database that every committed append moves
forward (seq, hash and their signature), so a trail cut short is told from one that never grew."""

from __future__ import annotations

import fcntl
import json
import os
import threading
import weakref
from pathlib import Path

from opsmith.domain.audit import Head

# One fixed-size record written in place with a single pwrite: no moment exists at which the file
# is empty or half old, half new, as a truncate-then-write would leave after a crash.
_RECORD = 512


class FileWitness:
    """Keeps the file open between advances (a run advances it after every commit); the lock is
    still taken for each advance, so appenders in other processes take turns as before."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self.where = f"the witness file {path}"
        self._descriptor: int | None = None
        self._opened_by = 0  # the pid that opened it: a forked child shares the lock, so reopens
        # The record this object wrote last, and its seq: when the file still holds it (the usual
        # case, one process driving a run), the next advance need not parse it.
        self._written: tuple[bytes, int] | None = None
        self._closer: weakref.finalize[[int], FileWitness] | None = None
        # flock excludes other open files, not threads sharing this one: they take turns here.
        self._turn = threading.Lock()

    def read(self) -> Head | None:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return None
        return _parse(raw)

    def advance(self, head: Head) -> None:
        with self._turn:
            descriptor = self._open()
            # Appenders in several processes: the lock makes read-compare-write one step, so the
            # witness only ever moves forward, whichever commit reaches it first.
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            try:
                raw = os.pread(descriptor, _RECORD, 0)
                if self._written is not None and raw == self._written[0]:
                    seq: int | None = self._written[1]
                else:
                    current = _parse(raw)
                    seq = None if current is None else current.seq
                if seq is not None and seq >= head.seq:
                    return
                record = json.dumps(head.model_dump(), sort_keys=True).encode("ascii")
                record = record.ljust(_RECORD - 1) + b"\n"
                os.pwrite(descriptor, record, 0)
                self._written = (record, head.seq)
            finally:
                fcntl.flock(descriptor, fcntl.LOCK_UN)

    def close(self) -> None:
        if self._closer is not None:
            self._closer()
        self._descriptor = self._closer = None

    def _open(self) -> int:
        if self._descriptor is not None and self._still_ours(self._descriptor):
            return self._descriptor
        self.close()
        self._written = None
        self._path.parent.mkdir(parents=True, exist_ok=True)
        # CLOEXEC: a child that runs another program must not hold (and share) our lock.
        descriptor = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        self._descriptor, self._opened_by = descriptor, os.getpid()
        self._closer = weakref.finalize(self, os.close, descriptor)
        return descriptor

    def _still_ours(self, descriptor: int) -> bool:
        # A forked child shares the open file, and with it the lock: it opens its own. A file that
        # was removed or replaced meanwhile is the one others now read and lock: follow it.
        if os.getpid() != self._opened_by:
            return False
        try:
            on_disk = os.stat(self._path)
        except FileNotFoundError:
            return False
        held = os.fstat(descriptor)
        return (on_disk.st_ino, on_disk.st_dev) == (held.st_ino, held.st_dev)


def _parse(raw: bytes) -> Head | None:
    try:
        return Head.model_validate_json(raw.strip() or b"null")
    except ValueError:
        return None
