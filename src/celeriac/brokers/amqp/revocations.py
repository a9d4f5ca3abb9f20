"""Revocations on RabbitMQ: one publish to the ``celeriac.control`` fanout both records and
announces them.

The fanout routes each revoke to the stream ``celeriac.revocations`` (the record: workers
that start later read it from the beginning, non-destructively, so any number can read at
once) and to one exclusive queue per running watcher (the announcement). ``revoked_ids``
reads the stream up to a marker it publishes itself, so it has seen every revoke confirmed
before it. A stream keeps no server clock a client can read, so a record's end time is the
revoking process's clock plus the ttl. Engine helper: imports aiormq, ``brokers.base`` and
the amqp engine's own modules.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import Any

from aiormq.abc import DeliveredMessage

from celeriac.brokers.amqp import topology as t
from celeriac.brokers.amqp.io import IOThread
from celeriac.brokers.amqp.link import DOWN, Link
from celeriac.brokers.amqp.publish import Copy, Publisher
from celeriac.brokers.base import Revocation, RevocationCallback, RevocationWatch
from celeriac.exceptions import BrokerError

logger = logging.getLogger("celeriac.brokers.amqp")
READ_TIMEOUT = 10.0  # seconds to read the stream up to our marker
MAX_PAUSE = 5.0


def announcement(ids: list[str], ttl: float, terminate: bool, signal: str) -> bytes:
    body = {"revoke": ids, "terminate": terminate, "signal": signal, "ttl": ttl,
            "ends": time.time() + ttl}  # fmt: skip
    return json.dumps(body, separators=(",", ":")).encode()


def _parse(data: bytes) -> dict[str, Any] | None:
    try:
        body = json.loads(data)
    except ValueError:
        return None
    ids = body.get("revoke") if isinstance(body, dict) else None
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
        return None
    return dict(body)


def live_revocation(data: bytes) -> Revocation | None:
    """An announcement as heard now: its ttl counts from now, on this process's clock."""
    body = _parse(data)
    if body is None:
        return None
    try:
        ends = time.time() + float(body.get("ttl", 0))
    except (TypeError, ValueError):
        return None
    return Revocation(
        dict.fromkeys(body["revoke"], ends), bool(body.get("terminate")),
        str(body.get("signal") or "SIGTERM"),
    )  # fmt: skip


class Revocations:
    """Record, read and follow revocations; every coroutine runs on the I/O loop."""

    def __init__(self, link: Link, publisher: Publisher) -> None:
        self.link = link
        self.publisher = publisher

    async def revoke(self, ids: list[str], ttl: float, terminate: bool, signal: str) -> None:
        await self.publisher.declare_control()
        payload = announcement(ids, ttl, terminate, signal)
        names = self.publisher.names
        copy = Copy(names.control, "", payload, uuid.uuid4().hex, 0, {}, names.control)
        await self.publisher.publish([copy])

    async def revoked(self) -> dict[str, float]:
        """Every live revocation in the stream: task id -> end (this process's clock)."""
        await self.publisher.declare_control()
        stream = self.publisher.names.revocations
        marker = uuid.uuid4().hex
        ends: dict[str, float] = {}
        reached = asyncio.Event()
        async with self.link.scratch() as channel:
            with self.link.guard():
                await channel.basic_qos(prefetch_count=1000)

            async def receive(message: DeliveredMessage) -> None:
                headers = message.header.properties.headers or {}
                if headers.get(t.H_ID) == marker:
                    reached.set()
                else:
                    body = _parse(bytes(message.body))
                    if body is not None:
                        with contextlib.suppress(TypeError, ValueError):
                            end = float(body.get("ends", 0))
                            for task_id in body["revoke"]:
                                ends[task_id] = max(ends.get(task_id, 0.0), end)
                assert message.delivery_tag is not None
                with contextlib.suppress(Exception):
                    await channel.basic_ack(message.delivery_tag)

            with self.link.guard():
                await channel.basic_consume(
                    stream, receive, no_ack=False, arguments={"x-stream-offset": "first"}
                )
            copy = Copy("", stream, b"", marker, 0, {t.H_ID: marker}, stream)
            await self.publisher.publish([copy])
            try:
                await asyncio.wait_for(reached.wait(), READ_TIMEOUT)
            except asyncio.TimeoutError:
                raise BrokerError(
                    f"could not read the revocations stream {stream!r} within {READ_TIMEOUT:.0f} s"
                ) from None
        now = time.time()
        return {task_id: end for task_id, end in ends.items() if end > now}


class AmqpWatch(RevocationWatch):
    """One watcher: an exclusive queue bound to the control fanout, on the I/O loop; after a
    lost connection it binds again and hands over every live revocation once."""

    def __init__(
        self, io: IOThread, revocations: Revocations, callback: RevocationCallback
    ) -> None:
        self._io, self._revocations, self._callback = io, revocations, callback
        self._loop = asyncio.get_running_loop()  # the caller's loop: callbacks run there
        self.active = True
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._io.run_async(self._start())

    async def _start(self) -> None:
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._task = asyncio.create_task(self._follow(ready), name="celeriac-revocations")
        try:
            await ready
        except BaseException:  # refused, or the starting worker was stopped: follow nothing
            await self._stop()
            raise

    async def stop(self) -> None:
        self.active = False
        await self._io.run_async(self._stop())

    async def _stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _hand_over(self, revocation: Revocation) -> None:
        with contextlib.suppress(RuntimeError):  # the caller's loop is closed: nobody listens
            self._loop.call_soon_threadsafe(self._deliver, revocation)

    def _deliver(self, revocation: Revocation) -> None:
        if not self.active:
            return
        try:
            self._callback(revocation)
        except Exception:  # a faulty callback must not end the watch
            logger.exception("revocations: the callback failed on %s", revocation.task_ids)

    async def _follow(self, ready: asyncio.Future[None]) -> None:
        link, pause, first = self._revocations.link, 0.1, True
        while True:
            channel = None
            try:
                await self._revocations.publisher.declare_control()
                connection = await link.connection()
                with link.guard():
                    channel = await connection.channel()
                    declared = await channel.queue_declare("", exclusive=True, auto_delete=True)
                    assert declared.queue is not None
                    control = self._revocations.publisher.names.control
                    await channel.queue_bind(declared.queue, control, "")

                    async def receive(message: DeliveredMessage) -> None:
                        revocation = live_revocation(bytes(message.body))
                        if revocation is not None:
                            self._hand_over(revocation)

                    await channel.basic_consume(declared.queue, receive, no_ack=True)
                if first:
                    first = False
                    ready.set_result(None)
                else:  # announcements sent while we were away: hand over every live one
                    expires = await self._revocations.revoked()
                    logger.debug("revocations: reconnected; %d live revocations", len(expires))
                    self._hand_over(Revocation(expires))
                pause = 0.1
                await asyncio.wait([channel.closing])
            except asyncio.CancelledError:
                if channel is not None:
                    with contextlib.suppress(Exception):
                        await channel.close()
                raise
            except Exception as exc:
                if first:  # the caller is waiting: hand it the error, never leave it hanging
                    ready.set_exception(exc)
                    return
                if not isinstance(exc, (BrokerError, *DOWN)):
                    logger.exception("revocations: unexpected error on the control channel")
                # The worker's consumer reports an outage once; this is one more attempt.
                logger.debug("revocations: the RabbitMQ control channel is down (%s)", exc)
            await asyncio.sleep(pause)
            pause = min(pause * 2, MAX_PAUSE)
