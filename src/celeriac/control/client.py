"""The caller's side of the mailbox: send a command, collect the replies that arrive in
time (Celery's ``broadcast(..., reply=True, timeout=, limit=, callback=)``).

Imports the channel seam and the protocol. Replies come back on a topic made for this one
call, subscribed before the command is published, so none is missed. With ``destination``
and no ``limit``, the call returns as soon as every named node answered.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from celeriac.brokers.base import Broker
from celeriac.control.protocol import CONTROL, decode_reply, encode_command, reply_topic

T = TypeVar("T")
Reply = dict[str, Any]  # {node: its reply}
ReplyCallback = Callable[[Reply], Any]


def check_destination(destination: Sequence[str] | None) -> tuple[str, ...] | None:
    """None (every worker) or the node names; a lone string is refused, as in Celery."""
    if destination is None:
        return None
    if isinstance(destination, str) or not isinstance(destination, (list, tuple, set)):
        raise ValueError(
            f"destination must be a list or tuple of node names, not {destination!r}: "
            f"write destination=[{destination!r}]"
        )
    return tuple(destination)


async def broadcast_async(
    broker: Broker,
    command: str,
    arguments: Mapping[str, Any] | None = None,
    destination: Sequence[str] | None = None,
    reply: bool = False,
    timeout: float = 1.0,
    limit: int | None = None,
    callback: ReplyCallback | None = None,
) -> list[Reply] | None:
    """Send ``command``; with ``reply``, the ``[{node: reply}, ...]`` that arrived within
    ``timeout`` seconds (at most ``limit`` of them)."""
    nodes = check_destination(destination)
    if not reply:
        await broker.publish_topic_async(CONTROL, encode_command(command, arguments, nodes))
        return None
    if limit is None and nodes:
        limit = len(nodes)
    ticket = uuid.uuid4().hex
    replies: list[Reply] = []
    async with await broker.subscribe(reply_topic(ticket)) as subscription:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + float(timeout)
        await broker.publish_topic_async(CONTROL, encode_command(command, arguments, nodes, ticket))
        while limit is None or len(replies) < limit:
            left = deadline - loop.time()
            payload = await subscription.get(left) if left > 0 else None
            if payload is None:
                break
            decoded = decode_reply(payload, ticket)
            if decoded is None:
                continue
            node_reply = {decoded[0]: decoded[1]}
            if callback is not None:
                callback(node_reply)
            replies.append(node_reply)
    return replies


def broadcast(broker: Broker, command: str, **options: Any) -> list[Reply] | None:
    """``broadcast_async`` for synchronous callers (a script, a view, the command line),
    on a loop of its own: what the broker's async face bound to that loop is released
    before it closes."""

    async def call() -> list[Reply] | None:
        try:
            return await broadcast_async(broker, command, **options)
        finally:
            await broker.close_async()

    if not options.get("reply"):  # nothing to wait for: no loop needed
        nodes = check_destination(options.get("destination"))
        payload = encode_command(command, options.get("arguments"), nodes)
        broker.publish_topic(CONTROL, payload)
        return None
    return run_blocking(call)


def run_blocking(make: Callable[[], Awaitable[T]]) -> T:
    """Run a coroutine to its end from synchronous code: on a fresh loop in this thread,
    or in a thread of its own when this thread already runs a loop (a sync call made
    from async code must not nest loops)."""

    async def main() -> T:
        return await make()

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(main())
    outcome: list[T] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            outcome.append(asyncio.run(main()))
        except BaseException as exc:  # handed back to the calling thread
            failure.append(exc)

    thread = threading.Thread(target=work, name="celeriac-control-call", daemon=True)
    thread.start()
    thread.join()
    if failure:
        raise failure[0]
    return outcome[0]
