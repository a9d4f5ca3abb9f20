"""``Relay``: publishes committed outbox rows to the broker and marks them sent.

Each batch is claimed with ``SELECT ... FOR UPDATE SKIP LOCKED`` (PostgreSQL, MariaDB
10.6+, MySQL 8), published, and marked in the same database transaction, so several
relays share the table and a relay that dies mid-batch leaves its rows to the next one
(the worker runs one copy of a row published twice). SQLite has no row locks: run one
relay there. Programs against the broker seam through a ``BrokerSender``; never an engine.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from celeriac.app.sending import BrokerSender, RetryPolicy
from celeriac.brokers.base import Broker, OutboundMessage
from celeriac.exceptions import BrokerConnectionError
from celeriac.outbox.table import DEAD, PENDING, SENT, notify_channel, outbox_table
from celeriac.outbox.wakeup import wakeup_for

logger = logging.getLogger("celeriac.outbox")

_NO_RETRY = RetryPolicy(max_retries=0)  # the relay waits and tries again itself
_MAX_BACKOFF = 300.0  # seconds between attempts for a row that keeps failing
_MAX_OUTAGE_WAIT = 5.0  # seconds between attempts while the broker cannot be reached


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """How a relay works (the ``outbox_*`` settings; docs/outbox.md)."""

    batch_size: int = 500
    poll_interval: float = 1.0
    max_attempts: int = 10
    retention: float | None = 7 * 86400.0  # seconds sent rows are kept; None keeps them
    prune_interval: float = 60.0

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.max_attempts < 1 or self.poll_interval <= 0:
            raise ValueError(
                "outbox relay: batch_size and max_attempts must be at least 1 and "
                f"poll_interval above 0 (got {self.batch_size}, {self.max_attempts}, "
                f"{self.poll_interval})"
            )


def backoff(attempts: int) -> float:
    """Seconds before a row that failed ``attempts`` times is tried again."""
    return float(min(2.0 ** min(attempts, 16), _MAX_BACKOFF))


class Relay:
    """Moves rows of ``table`` from the database at ``engine`` to ``broker``."""

    def __init__(
        self,
        broker: Broker,
        engine: sa.Engine | str,
        *,
        table: sa.Table = outbox_table,
        settings: RelaySettings | None = None,
    ) -> None:
        self.broker = broker
        self.sender = BrokerSender(broker)
        self.engine = sa.create_engine(engine) if isinstance(engine, str) else engine
        self.table = table
        self.settings = settings or RelaySettings()

    def relay_batch(self) -> int:
        """Publish one batch of due pending rows; return how many rows it handled.

        A lost broker connection rolls the claim back (the rows stay pending, their
        attempts uncounted) and raises ``BrokerConnectionError``; any other failure to
        publish counts an attempt on each row of the batch.
        """
        t = self.table
        now = time.time()
        claim = (
            sa.select(t.c.id, t.c.queue, t.c.priority, t.c.payload, t.c.due_at, t.c.attempts)
            .where(t.c.status == PENDING, t.c.available_at <= now)
            .order_by(t.c.available_at)
            .limit(self.settings.batch_size)
            .with_for_update(skip_locked=True)
        )
        with self._claiming() as connection:
            rows = connection.execute(claim).all()
            if not rows:
                return 0
            messages, broken = self._messages(rows, now)
            for row, error in broken:
                self._failed(connection, [row], error, now)
            if messages:
                self._publish(connection, rows, messages, now)
        return len(rows)

    @contextlib.contextmanager
    def _claiming(self) -> Iterator[sa.Connection]:
        """A transaction for one batch. READ COMMITTED on MySQL and MariaDB: under their
        default REPEATABLE READ the claim would lock index gaps and block (or deadlock
        with) the inserts of writers' transactions."""
        with self.engine.connect() as connection:
            if self.engine.dialect.name in ("mysql", "mariadb"):
                connection.execution_options(isolation_level="READ COMMITTED")
            with connection.begin():
                yield connection

    def _publish(
        self, connection: sa.Connection, rows: Sequence[Any], messages: list[OutboundMessage],
        now: float,
    ) -> None:  # fmt: skip
        try:
            self.sender.send(messages, _NO_RETRY)
            self.sender.broker.flush()  # marked sent only once stored, pipelined or not
        except BrokerConnectionError:  # refused credentials too: not the rows' fault
            raise
        except Exception as exc:
            self._failed(connection, _with_ids(rows, messages), exc, now)
            return
        ids = [message.message_id for message in messages]
        t = self.table
        sent = sa.update(t).where(t.c.id.in_(ids)).values(status=SENT, sent_at=time.time())
        connection.execute(sent)

    @staticmethod
    def _messages(
        rows: Sequence[Any], now: float
    ) -> tuple[list[OutboundMessage], list[tuple[Any, Exception]]]:
        """The rows as messages, the delay left until each is due; rows that cannot be
        (a priority out of range written by hand) come back with the reason."""
        messages: list[OutboundMessage] = []
        broken: list[tuple[Any, Exception]] = []
        for row in rows:
            delay = None if row.due_at is None else row.due_at - now
            try:
                message = OutboundMessage(
                    row.queue, bytes(row.payload), row.id, row.priority,
                    delay if delay is not None and delay > 0 else None,
                )  # fmt: skip
            except (ValueError, TypeError) as exc:
                broken.append((row, exc))
                continue
            messages.append(message)
        return messages, broken

    def _failed(
        self, connection: sa.Connection, rows: Sequence[Any], error: BaseException, now: float
    ) -> None:
        """Count a failed attempt on ``rows``: try again after a backoff, or go dead."""
        t = self.table
        reason = f"{type(error).__name__}: {error}"[:2000]
        logger.warning("outbox relay: %d row(s) failed to publish: %s", len(rows), reason)
        for row in rows:
            attempts = row.attempts + 1
            dead = attempts >= self.settings.max_attempts
            values: dict[str, Any] = {"attempts": attempts, "last_error": reason}
            values["status"] = DEAD if dead else PENDING
            values["available_at"] = now + backoff(attempts)
            connection.execute(sa.update(t).where(t.c.id == row.id).values(**values))
            if dead:
                logger.error("outbox relay: row %s is dead after %d attempts", row.id, attempts)

    def prune(self) -> int:
        """Delete the rows sent longer ago than the retention; return how many."""
        if self.settings.retention is None:
            return 0
        t = self.table
        cutoff = time.time() - self.settings.retention
        with self.engine.begin() as connection:
            result = connection.execute(
                sa.delete(t).where(t.c.status == SENT, t.c.sent_at < cutoff)
            )
        return int(result.rowcount or 0)

    def counts(self) -> dict[str, int]:
        """How many rows are pending, sent and dead."""
        t = self.table
        query = sa.select(t.c.status, sa.func.count()).group_by(t.c.status)
        with self.engine.connect() as connection:
            found = {status: int(n) for status, n in connection.execute(query).all()}
        return {status: found.get(status, 0) for status in (PENDING, SENT, DEAD)}

    def run(self, stop: threading.Event | None = None) -> None:
        """Relay until ``stop`` is set: batches back to back while rows wait, then wait
        for a ``NOTIFY`` (PostgreSQL) or the poll interval; sent rows pruned now and then."""
        stop = stop if stop is not None else threading.Event()
        wakeup = wakeup_for(
            self.engine, notify_channel(self.table), stop, self.settings.poll_interval
        )
        outages = 0
        next_prune = time.monotonic()
        try:
            while not stop.is_set():
                try:
                    handled = self.relay_batch()
                    outages = 0
                except BrokerConnectionError as exc:
                    outages += 1
                    wait = min(0.1 * 2**outages, _MAX_OUTAGE_WAIT)
                    logger.warning(
                        "outbox relay: cannot reach the broker (%s); again in %.1fs", exc, wait
                    )
                    stop.wait(wait)
                    continue
                except sa.exc.DBAPIError as exc:
                    logger.warning("outbox relay: database error (%s)", exc)
                    stop.wait(self.settings.poll_interval)
                    continue
                if time.monotonic() >= next_prune:
                    self._prune_quietly()
                    next_prune = time.monotonic() + self.settings.prune_interval
                if handled < self.settings.batch_size:
                    wakeup.wait()
        finally:
            wakeup.close()

    def _prune_quietly(self) -> None:
        try:
            pruned = self.prune()
        except sa.exc.DBAPIError as exc:
            logger.warning("outbox relay: pruning failed (%s)", exc)
            return
        if pruned:
            logger.info("outbox relay: pruned %d sent row(s)", pruned)


def _with_ids(rows: Sequence[Any], messages: Sequence[OutboundMessage]) -> list[Any]:
    ids = {message.message_id for message in messages}
    return [row for row in rows if row.id in ids]
