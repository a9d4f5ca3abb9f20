"""``ControlServer``: a worker's mailbox. It follows the control topic, runs each command
meant for this worker and publishes the reply on the caller's reply topic.

Runtime side of the mailbox, on the worker's event loop; imports the channel seam, the
registry and the built-in commands. A command runs on the loop (it reads and changes the
worker's state there); one that returns an awaitable is awaited. A command that fails
answers ``{"error": repr(exc)}``, as Celery's; unknown commands answer an error too.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from typing import Any

from celeriac.brokers.base import Broker, Subscription
from celeriac.control.protocol import (
    CONTROL,
    Command,
    decode_command,
    encode_reply,
    reply_topic,
)
from celeriac.control.registry import COMMANDS, NoReply
from celeriac.control.state import ControlState
from celeriac.exceptions import BrokerError

logger = logging.getLogger("celeriac.worker")


class ControlServer:
    """Serves remote control and inspect commands for one worker."""

    def __init__(self, broker: Broker, state: ControlState) -> None:
        self.broker = broker
        self.state = state
        self._subscription: Subscription | None = None
        self._follower: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Listen from now on. Raises ``BrokerConnectionError`` when the broker is down."""
        if self._subscription is not None:
            return
        self._subscription = await self.broker.subscribe(CONTROL)
        self._follower = asyncio.create_task(
            self._follow(self._subscription), name="celeriac-control"
        )

    async def stop(self) -> None:
        follower, self._follower = self._follower, None
        subscription, self._subscription = self._subscription, None
        if follower is not None:
            follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await follower
        if subscription is not None:
            await subscription.close()

    async def _follow(self, subscription: Subscription) -> None:
        while True:
            try:
                payload = await subscription.get()
            except BrokerError as exc:  # missed commands are lost; the callers time out
                logger.debug("remote control: the broker's channel is down (%s)", exc)
                await subscription.wait_live()
                continue
            if payload is None:  # closed
                return
            command = decode_command(payload)
            if command is None or not command.is_for(self.state.hostname):
                continue
            reply = await self.dispatch(command)
            if command.ticket is not None and not isinstance(reply, NoReply):
                await self._reply(command.ticket, reply)

    async def dispatch(self, command: Command) -> Any:
        """Run ``command`` here; its reply (``NoReply`` for one that answers nothing)."""
        info = COMMANDS.get(command.method)
        if info is None:
            logger.error("remote control: unknown command %r", command.method)
            return {"error": f"unknown command {command.method!r}"}
        logger.debug("remote control: %s %s", command.method, dict(command.arguments))
        try:
            reply = info.handler(self.state, **command.arguments)
            if inspect.isawaitable(reply):
                reply = await reply
        except Exception as exc:  # the worker outlives any command
            logger.exception("remote control command %r failed", command.method)
            return {"error": repr(exc)}
        return reply

    async def _reply(self, ticket: str, reply: Any) -> None:
        try:
            payload = encode_reply(ticket, self.state.hostname, reply)
            await self.broker.publish_topic_async(reply_topic(ticket), payload)
        except (BrokerError, ValueError, TypeError) as exc:
            logger.warning("remote control: could not send a reply: %s", exc)
