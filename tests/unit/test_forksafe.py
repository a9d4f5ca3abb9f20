"""A lock held by another thread at a fork is free in the child: a prefork worker that
replaces a child while a thread makes a client (holding the lock that makes it once) must
not leave that child waiting for a holder that does not exist there."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator

import pytest

from celeriac._forksafe import ForkSafeLock


@pytest.fixture
def held_elsewhere() -> Iterator[tuple[ForkSafeLock, threading.Lock]]:
    """A ForkSafeLock and a plain lock, both held by another thread until the test ends."""
    ours, plain = ForkSafeLock(), threading.Lock()
    holding, done = threading.Event(), threading.Event()

    def hold() -> None:
        with ours, plain:
            holding.set()
            done.wait()

    thread = threading.Thread(target=hold)
    thread.start()
    holding.wait()
    yield ours, plain
    done.set()
    thread.join()


def in_a_child(check: str, ours: ForkSafeLock, plain: threading.Lock) -> int:
    """The exit code of a forked child that tries to take one of the locks (0: it did)."""
    pid = os.fork()
    if pid == 0:  # the child: report, and leave at once
        lock = ours if check == "ours" else plain
        os._exit(0 if lock.acquire(timeout=2) else 1)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status)


def test_a_lock_held_by_another_thread_at_a_fork_is_free_in_the_child(
    held_elsewhere: tuple[ForkSafeLock, threading.Lock],
) -> None:
    ours, plain = held_elsewhere
    assert in_a_child("ours", ours, plain) == 0
    assert in_a_child("plain", ours, plain) == 1  # what a plain lock does: held for good
    assert not ours.acquire(blocking=False)  # in the parent it is still held


def test_a_reentrant_one_is_taken_twice_by_one_thread() -> None:
    lock = ForkSafeLock(reentrant=True)
    with lock, lock:
        assert lock.acquire(blocking=False)
        lock.release()
