"""Tests that run alone while the suite runs in several processes (pytest-xdist).

A test marked ``alone`` asserts a bound on time (a beat takeover within its lease, a
countdown's lateness) that the load of other tests could break on a small machine: while
it runs, no other test does. Two file locks shared by the run's processes make a
readers-writer lock that prefers the writer: every test holds ``gate`` for a moment and
``running`` shared; an ``alone`` test holds ``gate`` (no new test starts) and waits for
``running`` exclusively (the tests already running finish). The wait sits outside the
test's timeout: this wrapper is outside pytest-timeout's. The main process makes the
locks' directory before it starts the others, which inherit it from the environment.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

_LOCKS = "CELERIAC_TEST_LOCKS"
_locks_key = pytest.StashKey[str]()


def pytest_configure(config: pytest.Config) -> None:
    parallel = getattr(config.option, "numprocesses", None)
    if parallel and not _is_worker(config):  # (a run inside a test gets locks of its own)
        config.stash[_locks_key] = os.environ[_LOCKS] = tempfile.mkdtemp(prefix="celeriac-")


def pytest_unconfigure(config: pytest.Config) -> None:
    locks = config.stash.get(_locks_key, None)
    if locks is not None:
        shutil.rmtree(locks, ignore_errors=True)
        os.environ.pop(_LOCKS, None)


def _is_worker(config: pytest.Config) -> bool:
    """Whether this process is one of pytest-xdist's workers (not its main process)."""
    return hasattr(config, "workerinput")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    locks = os.environ.get(_LOCKS)
    if locks is None or not _is_worker(item.config):
        yield  # one process: nothing runs beside the test anyway
        return
    alone = item.get_closest_marker("alone") is not None
    with (
        open(os.path.join(locks, "gate"), "a") as gate,
        open(os.path.join(locks, "running"), "a") as running,
    ):
        fcntl.flock(gate, fcntl.LOCK_EX)
        try:
            fcntl.flock(running, fcntl.LOCK_EX if alone else fcntl.LOCK_SH)
        finally:
            if not alone:
                fcntl.flock(gate, fcntl.LOCK_UN)
        yield  # (closing the files releases the locks)
