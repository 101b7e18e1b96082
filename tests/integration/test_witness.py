"""The audit head's witness file on a real file system: it stays open between advances, yet follows
its file when that is replaced and still takes the lock for every write."""

from __future__ import annotations

import fcntl
import os
import threading
import time
from pathlib import Path

import pytest

from opsmith.domain.audit import GENESIS, Head
from opsmith.store.witness import FileWitness

pytestmark = pytest.mark.integration


def head(seq: int) -> Head:
    return Head(seq=seq, hash=GENESIS.replace("0", str(seq % 10)), mac="")


def test_the_witness_only_moves_forward(tmp_path: Path) -> None:
    witness = FileWitness(tmp_path / "state" / "audit.head")
    assert witness.read() is None
    witness.advance(head(2))
    witness.advance(head(1))
    assert witness.read() == head(2)
    witness.advance(head(3))
    assert witness.read() == head(3)
    assert (tmp_path / "state" / "audit.head").stat().st_size == 512


def test_a_removed_or_replaced_file_is_followed_not_written_behind_its_back(tmp_path: Path) -> None:
    path = tmp_path / "audit.head"
    witness = FileWitness(path)
    witness.advance(head(1))
    path.unlink()
    witness.advance(head(2))
    assert FileWitness(path).read() == head(2)

    # Someone restores a copy that is further ahead: the next advance reads that one, so it
    # neither goes back nor writes into the file that is no longer there.
    spare = tmp_path / "spare.head"
    FileWitness(spare).advance(head(7))
    os.replace(spare, path)
    witness.advance(head(3))
    assert FileWitness(path).read() == head(7)
    witness.advance(head(8))
    assert FileWitness(path).read() == head(8)


def test_every_advance_waits_for_the_lock_whoever_holds_it(tmp_path: Path) -> None:
    path = tmp_path / "audit.head"
    witness = FileWitness(path)
    witness.advance(head(1))  # the file is open now, and stays open
    # Another open file of the same path stands for another process: flock sets them against
    # each other as it does processes.
    other = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX)
        writer = threading.Thread(target=witness.advance, args=(head(2),))
        writer.start()
        time.sleep(0.3)
        assert writer.is_alive() and FileWitness(path).read() == head(1)
        fcntl.flock(other, fcntl.LOCK_UN)
        writer.join(timeout=10)
        assert not writer.is_alive()
    finally:
        os.close(other)
    assert FileWitness(path).read() == head(2)


def test_threads_sharing_one_witness_never_move_it_back(tmp_path: Path) -> None:
    witness = FileWitness(tmp_path / "audit.head")
    threads = [
        threading.Thread(target=lambda n=n: [witness.advance(head(n * 50 + i)) for i in range(50)])
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert witness.read() == head(199)
