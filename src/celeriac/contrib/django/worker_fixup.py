"""``DjangoWorkerFixup``: the database care a worker of a Django project needs.

Edge layer, connected to the worker's signals (never a branch in the worker):

- at start (``worker_init``), before the pool forks: close every connection the parent
  opened while starting (``django.setup()``, the user's modules), so no child inherits one;
- in each prefork child (``worker_process_init``): forget the connections inherited
  anyway without talking to the server (closing them politely would end the parent's
  session too: it is the same socket);
- around each task (``task_prerun``, ``task_postrun``): close the connections that are
  unusable or past ``CONN_MAX_AGE`` and close the caches, as Django does around a
  request, so a connection the server dropped between tasks is reopened.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

from django.core.cache import close_caches
from django.db import DatabaseError, InterfaceError, close_old_connections, connections

from celeriac import signals

logger = logging.getLogger("celeriac.contrib.django")

#: Django's switch for its check against blocking calls made on an event loop.
ALLOW_ASYNC_UNSAFE = "DJANGO_ALLOW_ASYNC_UNSAFE"


class DjangoWorkerFixup:
    """Installed once per worker process, when the worker of the fix-up's app starts."""

    def __init__(self) -> None:
        self.worker_pid = os.getpid()  # the process that starts the pool

    def install(self) -> DjangoWorkerFixup:
        uid = ("django", id(self))
        signals.task_prerun.connect(self.on_task_prerun, dispatch_uid=uid)
        signals.task_postrun.connect(self.on_task_postrun, dispatch_uid=uid)
        signals.worker_process_init.connect(self.on_worker_process_init, dispatch_uid=uid)
        with _on_the_worker_loop():
            close_all()
            close_caches()
        return self

    def on_worker_process_init(self, **_: Any) -> None:
        if os.getpid() != self.worker_pid:  # a forked child, not the solo pool's own process
            forget_inherited()
        close_all()
        close_caches()

    def on_task_prerun(self, sender: Any = None, **_: Any) -> None:
        if _runs_here(sender):
            _close_old()

    def on_task_postrun(self, sender: Any = None, **_: Any) -> None:
        if _runs_here(sender):
            _close_old()
            close_caches()


@contextlib.contextmanager
def _on_the_worker_loop() -> Iterator[None]:
    """Let Django close connections from the worker's start-up, which runs on its event
    loop: Django refuses blocking calls there to protect other coroutines, but none runs
    yet (the broker and the pool come next)."""
    if os.environ.get(ALLOW_ASYNC_UNSAFE):
        yield
        return
    os.environ[ALLOW_ASYNC_UNSAFE] = "true"
    try:
        yield
    finally:
        del os.environ[ALLOW_ASYNC_UNSAFE]


def _runs_here(task: Any) -> bool:
    """A task run by the worker in a thread of its own: not an eager call (the caller's
    connections and transaction are not ours to close), not an ``async def`` body on the
    event loop (Django's async ORM keeps its connections in its own thread)."""
    request = getattr(task, "request", None)
    if request is None or getattr(request, "is_eager", False):
        return False
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return True
    return False


def _close_old() -> None:
    with contextlib.suppress(InterfaceError):
        close_old_connections()


def close_all() -> None:
    """Close this thread's connections; one the server already dropped is just let go."""
    for connection in connections.all(initialized_only=True):
        try:
            connection.close()
        except InterfaceError:
            pass
        except DatabaseError as exc:  # "connection already closed" and the like
            logger.debug("closing database connection %r: %s", connection.alias, exc)


def forget_inherited() -> None:
    """In a forked child: close the socket of each inherited connection at the file
    descriptor level first, so closing the connection sends nothing on the parent's
    session (a driver's close says goodbye to the server)."""
    for connection in connections.all(initialized_only=True):
        driver = connection.connection
        if driver is None:
            continue
        with contextlib.suppress(AttributeError, OSError, TypeError, ValueError):
            os.close(driver.fileno())  # sqlite3 has no socket: AttributeError


__all__ = ["DjangoWorkerFixup", "close_all", "forget_inherited"]
