"""The audit head's witness: a small file outside the database that every committed append moves
forward (seq, hash and their signature), so a trail cut short is told from one that never grew."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

from opsmith.domain.audit import Head

# One fixed-size record written in place with a single pwrite: no moment exists at which the file
# is empty or half old, half new, as a truncate-then-write would leave after a crash.
_RECORD = 512


class FileWitness:
    def __init__(self, path: Path) -> None:
        self._path = path
        self.where = f"the witness file {path}"

    def read(self) -> Head | None:
        try:
            raw = self._path.read_bytes()
        except FileNotFoundError:
            return None
        return _parse(raw)

    def advance(self, head: Head) -> None:
        self._path.parent.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # Appenders in several processes: the lock makes read-compare-write one step, so the
            # witness only ever moves forward, whichever commit reaches it first.
            fcntl.flock(descriptor, fcntl.LOCK_EX)
            current = _parse(os.pread(descriptor, _RECORD, 0))
            if current is not None and current.seq >= head.seq:
                return
            record = json.dumps(head.model_dump(), sort_keys=True).encode("ascii")
            os.pwrite(descriptor, record.ljust(_RECORD - 1) + b"\n", 0)
        finally:
            os.close(descriptor)  # also releases the lock


def _parse(raw: bytes) -> Head | None:
    try:
        return Head.model_validate_json(raw.strip() or b"null")
    except ValueError:
        return None
