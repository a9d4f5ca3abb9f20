"""Revocations on Redis: the announcement format, and a watch that follows the channel.

A revoke is one script (``revoke.lua``): the sorted set ``{prefix}:revoked`` keeps it for
workers that start later, and a PUBLISH on ``{prefix}:control`` tells the running ones.
Engine helper: imports ``brokers.base`` and redis-py; never the app or other engines.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import redis
import redis.asyncio.client

from celeriac.brokers.base import Revocation, RevocationCallback, RevocationWatch
from celeriac.exceptions import BrokerConnectionError

logger = logging.getLogger("celeriac.brokers.redis")
_DOWN = (redis.ConnectionError, redis.TimeoutError, OSError, BrokerConnectionError)
KEEPALIVE = 15.0  # seconds of silence before the watch PINGs its connection
SUBSCRIBE_TIMEOUT = 10.0  # seconds to wait for Redis to confirm the subscription
MAX_PAUSE = 5.0  # longest wait between attempts while Redis is unreachable


def announcement(task_ids: Sequence[str], ttl: float, terminate: bool, signal: str) -> str:
    """The JSON published on the control channel for one revoke."""
    body = {"revoke": list(task_ids), "terminate": terminate, "signal": signal, "ttl": ttl}
    return json.dumps(body, separators=(",", ":"))


def parse_announcement(data: Any) -> Revocation | None:
    """A ``Revocation`` from a control message; None for other commands (or garbage).

    The ttl travels, not an end time: the receiver counts it from now on its own clock.
    """
    try:
        body = json.loads(data)
        ids = body["revoke"] if isinstance(body, dict) else None
        if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            return None
        ends = time.time() + float(body.get("ttl", 0))
        signal = str(body.get("signal") or "SIGTERM")
        return Revocation(dict.fromkeys(ids, ends), bool(body.get("terminate")), signal)
    except (ValueError, TypeError):
        return None


def local_expiries(rows: Sequence[Any]) -> dict[str, float]:
    """``revoked.lua``'s {now ms, id, end ms, ...} -> id -> end on this process's clock."""
    now_ms, local = int(rows[0]), time.time()
    found: dict[str, float] = {}
    for index in range(1, len(rows) - 1, 2):
        task_id = rows[index]
        task_id = task_id.decode() if isinstance(task_id, bytes) else str(task_id)
        found[task_id] = local + (float(rows[index + 1]) - now_ms) / 1000
    return found


class ChannelWatch(RevocationWatch):
    """Follows ``{prefix}:control`` on one pubsub connection, in a task on its loop.

    Every SUBSCRIBE confirmation after the first means the connection was lost and made
    again (redis-py re-subscribes on reconnect): the watch then reloads the revoked set
    and hands it to the callback, so nothing announced meanwhile is missed.
    """

    def __init__(
        self,
        pubsub: redis.asyncio.client.PubSub,
        channel: str,
        callback: RevocationCallback,
        reload: Callable[[], Awaitable[dict[str, float]]],
    ) -> None:
        self._pubsub, self._channel = pubsub, channel
        self._callback, self._reload = callback, reload
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Subscribe and wait for Redis to confirm it, then follow in the background."""
        try:
            await self._pubsub.subscribe(self._channel)
            await self._confirmed()
        except BaseException:
            await self._pubsub.aclose()  # type: ignore[no-untyped-call]
            raise
        self._task = asyncio.create_task(self._follow(), name="celeriac-revocations")

    async def _confirmed(self) -> None:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + SUBSCRIBE_TIMEOUT
        while (left := give_up - loop.time()) > 0:
            message = await self._pubsub.get_message(timeout=left)
            if message is not None and message["type"] == "subscribe":
                return
        raise redis.TimeoutError(f"Redis did not confirm SUBSCRIBE {self._channel}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _follow(self) -> None:
        pause, reload = 0.1, False
        while True:
            try:
                if reload:  # after the message loop below saw a re-subscription
                    expires = await self._reload()
                    reload = False
                    logger.debug("revocations: reconnected; %d live revocations", len(expires))
                    self._hand_over(Revocation(expires))
                message = await self._pubsub.get_message(timeout=KEEPALIVE)
                if message is None:
                    await self._pubsub.ping()  # the reply (a "pong" message) proves the link
                elif message["type"] == "subscribe":
                    reload = True
                elif message["type"] == "message":
                    revocation = parse_announcement(message["data"])
                    if revocation is not None:
                        self._hand_over(revocation)
                pause = 0.1
            except _DOWN as exc:  # the worker's consumer reports an outage once, for both
                logger.debug("revocations: the Redis control channel is down (%s)", exc)
            except Exception:  # the watch must outlive any one reply
                logger.exception("revocations: unexpected error on the control channel")
            else:
                continue
            await asyncio.sleep(pause)  # back off before reading (and reconnecting) again
            pause = min(pause * 2, MAX_PAUSE)

    def _hand_over(self, revocation: Revocation) -> None:
        try:
            self._callback(revocation)
        except Exception:  # a faulty callback must not end the watch
            logger.exception("revocations: the callback failed on %s", revocation.task_ids)
