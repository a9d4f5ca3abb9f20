"""Settling on Redis: ``RedisBroker``'s ack, requeue and dead-letter go through here.

Settles of one event loop are sent together, one pipeline at a time: the acks of each
stream as one ``ack_many.lua`` call, any other outcome as a ``settle.lua`` call. A batched
ack (its job has run) may wait up to ``ACK_LINGER`` for the acks of the other deliveries
still out. A mixin of ``RedisBroker``, kept apart so the broker module stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import Mapping
from typing import Any, NamedTuple

from redis.exceptions import NoScriptError

from celeriac.brokers.base import Delivery
from celeriac.brokers.redis.keys import GROUP
from celeriac.exceptions import BrokerError

# A batched ack (its job has run) waits at most this long for the acks of the other
# deliveries still out, so that one script call acks many of them.
ACK_LINGER = 0.005


def _ack_args(items: list[Settle], acked: list[int]) -> list[Any]:
    """``ack_many``'s arguments after the group and consumer: the span of entry ids, then
    each entry id with its pending count."""
    pairs = [v for i in acked for v in (items[i].entry_id, items[i].pending)]
    ids = sorted(_entry_order(items[i].entry_id) for i in acked)
    return [f"{ids[0][0]}-{ids[0][1]}", f"{ids[-1][0]}-{ids[-1][1]}", *pairs]


def _entry_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id as the pair Redis orders it by."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _answer(done: asyncio.Future[Any], *, result: Any = None, exception: Any = None) -> None:
    """Give a settle's caller its answer, unless it has one (or stopped waiting)."""
    if done.done():
        return
    if exception is not None:
        done.set_exception(exception)
    else:
        done.set_result(result)


def _unsent(exc: BaseException) -> BrokerError:
    """The error a settle gets when the sending of its batch ended early."""
    why = "it was cancelled" if isinstance(exc, asyncio.CancelledError) else repr(exc)
    return BrokerError(f"the settle was not sent: {why}; the lease brings the message back")


class Settle(NamedTuple):
    """One settle waiting for the next pipeline: the delivery's fencing token, the
    outcome, and the future its caller awaits."""

    stream: str
    entry_id: str
    pending: str
    queue: str
    action: str  # 'ack' | 'requeue' | 'requeue_counted' | 'dead' (settle.lua); 'ack' only
    # for a batched ack, 'ack_now' for one its caller waits on
    reason: str
    detail: str
    done: asyncio.Future[Any]


class SettleBatch:
    """Settles of one event loop waiting for the next pipeline, whether one is out, and
    how many deliveries this loop fetched and has not settled yet (``out``)."""

    __slots__ = ("flush", "out", "sending", "task", "urgent", "waiting")

    def __init__(self) -> None:
        self.waiting: list[Settle] = []
        self.urgent = 0  # how many of them are not batched acks (they never linger)
        self.sending = False
        self.task: asyncio.Task[None] | None = None
        self.out = 0
        self.flush = asyncio.Event()  # set: send what waits now, without lingering

    def add(self, settle: Settle) -> None:
        self.waiting.append(settle)
        if settle.action != "ack":
            self.urgent += 1

    def take(self) -> list[Settle]:
        """Everything waiting, for the next pipeline."""
        items, self.waiting, self.urgent = self.waiting, [], 0
        return items

    def ready(self) -> bool:
        """Send now: something other than a batched ack waits, or every delivery still
        out is waiting here (no other ack can join)."""
        return self.urgent > 0 or len(self.waiting) >= self.out


class RedisSettles:
    """``_settle`` for ``RedisBroker`` (which supplies ``_aclient``, ``_guard``, ``_error``,
    ``keys``, ``consumer``, ``dead_letter_max`` and ``_parse_token``)."""

    _settles: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, SettleBatch]

    async def _settle(
        self, delivery: Delivery, action: str, reason: str = "", detail: str = ""
    ) -> bool:
        """Settle one delivery; returns once Redis applied it (or refused: lease lost).

        Settles issued while another batch is on its way are sent together in the next
        pipeline, so a busy worker acks many messages per round trip, and an idle one
        pays no extra wait.
        """
        broker: Any = self
        stream, entry_id, pending = broker._parse_token(delivery)
        batch = self._batch()
        done: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        batch.add(Settle(stream, entry_id, pending, delivery.queue, action, reason, detail, done))
        if batch.ready():
            batch.flush.set()
        if not batch.sending:
            batch.sending = True
            batch.task = asyncio.get_running_loop().create_task(self._send_settles(batch))
        return bool(await done)

    def _batch(self) -> SettleBatch:
        loop = asyncio.get_running_loop()
        batch = self._settles.get(loop)
        if batch is None:
            batch = self._settles[loop] = SettleBatch()
        return batch

    async def _send_settles(self, batch: SettleBatch) -> None:
        """Send what waits, one pipeline at a time; batched acks first linger (at most
        ``ACK_LINGER``) while other deliveries are still out, for their acks to join.

        Every settle taken from ``batch`` gets its answer, whatever happens here: a caller
        left waiting on its future would hold its message, and a warm stop, forever."""
        broker: Any = self
        items: list[Settle] = []
        try:
            client, scripts = broker._aclient()
            while batch.waiting:
                if not batch.ready():
                    batch.flush.clear()
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(batch.flush.wait(), ACK_LINGER)
                items = batch.take()
                batch.out = max(0, batch.out - len(items))
                try:
                    with broker._guard():
                        replies = await self._settle_round_trip(client, scripts, items)
                except Exception as exc:  # the whole round trip failed: every settle did
                    replies = [exc] * len(items)
                for item, reply in zip(items, replies, strict=True):
                    if isinstance(reply, Exception):  # (on a cluster, one node's failure)
                        _answer(item.done, exception=broker._error(reply))
                    else:
                        _answer(item.done, result=reply)
        except BaseException as exc:  # cancelled, or a bug: nobody may wait forever
            for item in [*items, *batch.take()]:
                _answer(item.done, exception=_unsent(exc))
            raise
        finally:
            batch.sending = False

    async def _settle_round_trip(
        self, client: Any, scripts: Mapping[str, Any], items: list[Settle]
    ) -> list[Any]:
        """One pipeline for a batch of settles: the acks of each stream in one
        ``ack_many`` call, any other outcome in a ``settle`` call of its own. Replies come
        back in ``items`` order. EVALSHA directly (a pipeline given the script object would
        ask SCRIPT EXISTS first, a second round trip every time); only when Redis lost a
        script (a restart, SCRIPT FLUSH) is it loaded and those settles sent again."""
        broker: Any = self
        settle, ack_many = scripts["settle"], scripts["ack_many"]
        unloaded: set[Any] = set()

        async def send(chosen: list[int]) -> dict[int, Any]:
            acks: dict[str, list[int]] = {}
            others: list[int] = []
            for i in chosen:
                if items[i].action in ("ack", "ack_now"):
                    acks.setdefault(items[i].stream, []).append(i)
                else:
                    others.append(i)
            if len(acks) == 1 and not others:  # (the usual batch) one call, pre-packed
                [(stream, acked)] = acks.items()
                reply = await broker._packed().evalsha(
                    ack_many, [stream], [GROUP, broker.consumer, *_ack_args(items, acked)]
                )
                return dict(zip(acked, reply, strict=True))
            calls: list[tuple[Any, list[int]]] = []  # (script, the items it settles)
            async with client.pipeline(transaction=False) as pipe:
                # Acks first: an ack was asked before any other outcome of the same entry
                # in this batch (a cold stop requeueing a job that has just ended).
                for stream, acked in acks.items():
                    args = _ack_args(items, acked)
                    pipe.evalsha(ack_many.sha, 1, stream, GROUP, broker.consumer, *args)
                    calls.append((ack_many, acked))
                for i in others:
                    item = items[i]
                    level = int(item.stream.rsplit(":s", 1)[1])
                    queue_keys = broker.keys(item.queue)
                    pipe.evalsha(
                        settle.sha, 3, item.stream, queue_keys.dead, queue_keys.high,
                        GROUP, broker.consumer, item.entry_id, item.pending, item.action,
                        item.reason, item.detail, broker.dead_letter_max, level,
                    )  # fmt: skip
                    calls.append((settle, [i]))
                replies: list[Any] = await pipe.execute(raise_on_error=False)
            out: dict[int, Any] = {}
            for (script, settled), reply in zip(calls, replies, strict=True):
                if isinstance(reply, NoScriptError):
                    unloaded.add(script)
                if script is ack_many and not isinstance(reply, Exception):
                    out.update(zip(settled, reply, strict=True))
                else:
                    out.update((i, reply) for i in settled)
            return out

        replies = await send(list(range(len(items))))
        missing = [i for i, reply in replies.items() if isinstance(reply, NoScriptError)]
        if missing:
            for script in unloaded:
                script.sha = await client.script_load(script.script)
            replies.update(await send(missing))
        return [replies[i] for i in range(len(items))]
