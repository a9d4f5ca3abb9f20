"""How the relay waits for new rows: PostgreSQL ``LISTEN`` where it can, else polling.

``Wakeup.wait`` returns when rows may be waiting: at once after a writer's ``NOTIFY``
(PostgreSQL through psycopg 3), else after the poll interval; always soon after ``stop``
is set. Imports SQLAlchemy (and psycopg when the database is PostgreSQL); nothing else.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import sqlalchemy as sa

logger = logging.getLogger("celeriac.outbox")

_SLICE = 0.5  # seconds: the longest a stop waits for a listening relay to notice


class Wakeup:
    """Polling: wait ``interval`` seconds (or until ``stop`` is set)."""

    def __init__(self, stop: threading.Event, interval: float) -> None:
        self.stop = stop
        self.interval = interval

    def wait(self) -> None:
        self.stop.wait(self.interval)

    def close(self) -> None:
        """Release what waiting holds (nothing, for polling)."""


class ListenWakeup(Wakeup):
    """PostgreSQL: ``LISTEN`` on ``channel`` on a connection of its own; a notification
    wakes the relay at once, and the interval still bounds each wait (polling as the
    fallback: a lost listening connection is opened again on the next wait)."""

    def __init__(self, stop: threading.Event, interval: float, url: sa.URL, channel: str) -> None:
        super().__init__(stop, interval)
        # The relay's URL without the SQLAlchemy driver name: a libpq connection string.
        self.conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
        self.channel = channel
        self.connection: Any = None
        self._listen()

    def _listen(self) -> None:
        import psycopg

        try:
            connection = psycopg.connect(self.conninfo, autocommit=True)
            connection.execute(
                psycopg.sql.SQL("LISTEN {}").format(psycopg.sql.Identifier(self.channel))
            )
        except psycopg.Error as exc:
            logger.warning("outbox relay: LISTEN failed (%s); polling until it works", exc)
            self.connection = None
            return
        self.connection = connection

    def wait(self) -> None:
        if self.connection is None:
            super().wait()
            if not self.stop.is_set():
                self._listen()
            return
        import psycopg

        deadline = time.monotonic() + self.interval
        try:  # in short slices, so that a set ``stop`` ends the wait soon
            while not self.stop.is_set() and (left := deadline - time.monotonic()) > 0:
                for _ in self.connection.notifies(timeout=min(left, _SLICE), stop_after=1):
                    return
        except psycopg.Error as exc:
            logger.warning("outbox relay: lost the LISTEN connection (%s)", exc)
            self.close()

    def close(self) -> None:
        if self.connection is not None:
            self.connection.close()
            self.connection = None


def wakeup_for(engine: sa.Engine, channel: str, stop: threading.Event, interval: float) -> Wakeup:
    """``ListenWakeup`` on PostgreSQL with psycopg 3 installed, else ``Wakeup`` (polling)."""
    if engine.dialect.name != "postgresql":
        return Wakeup(stop, interval)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        logger.info("outbox relay: psycopg 3 is not installed; polling every %ss", interval)
        return Wakeup(stop, interval)
    return ListenWakeup(stop, interval, engine.url, channel)
