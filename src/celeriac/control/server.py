"""``ControlServer``: a worker's mailbox. It follows the control topic, runs each command
meant for this worker and publishes the reply on the caller's reply topic.

Runtime side of the mailbox, on the worker's event loop; imports the channel seam, the
registry and the built-in commands. A command runs on the loop (it reads and changes the
worker's state there); one that returns an awaitable is awaited. A command that fails
answers ``{"error": repr(exc)}``, as Celery's; unknown commands answer an error too. With
a wire format that has remote control of its own (``wire_format = "celery"``), the worker
also follows that mailbox (``wire_mailbox``), so Celery's tools reach it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from celeriac._futures import cancel_and_wait
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
Serve = Callable[[bytes], Awaitable[None]]


class ControlServer:
    """Serves remote control and inspect commands for one worker."""

    def __init__(self, broker: Broker, state: ControlState) -> None:
        self.broker = broker
        self.state = state
        # Each mailbox followed: celeriac's control topic, and the wire format's own.
        self._followed: list[tuple[Subscription, asyncio.Task[None]]] = []

    async def start(self) -> None:
        """Listen from now on. Raises ``BrokerConnectionError`` when the broker is down."""
        if self._followed:
            return
        self._follow_from(await self.broker.subscribe(CONTROL), self._serve)
        if self.broker.serves_wire_control:
            try:
                wire = await self.broker.subscribe_wire_control(self.state.hostname)
            except BaseException:
                await self.stop()
                raise
            self._follow_from(wire, self._serve_wire)

    def _follow_from(self, subscription: Subscription, serve: Serve) -> None:
        task = asyncio.create_task(self._follow(subscription, serve), name="celeriac-control")
        self._followed.append((subscription, task))

    async def stop(self) -> None:
        followed, self._followed = self._followed, []
        for subscription, task in followed:
            await cancel_and_wait(task)
            await subscription.close()

    async def _follow(self, subscription: Subscription, serve: Serve) -> None:
        while True:
            try:
                payload = await subscription.get()
            except BrokerError as exc:  # missed commands are lost; the callers time out
                logger.debug("remote control: the broker's channel is down (%s)", exc)
                await subscription.wait_live()
                continue
            if payload is None:  # closed
                return
            try:
                await serve(payload)
            except (BrokerError, ValueError, TypeError) as exc:
                logger.warning("remote control: could not send a reply: %s", exc)

    async def _serve(self, payload: bytes) -> None:
        command = decode_command(payload)
        if command is None or not command.is_for(self.state.hostname):
            return
        reply = await self.dispatch(command)
        if command.ticket is not None and not isinstance(reply, NoReply):
            await self._reply(command.ticket, reply)

    async def _serve_wire(self, payload: bytes) -> None:
        from celeriac.control import wire_mailbox  # (Celery's format: only where it is spoken)

        await wire_mailbox.serve(self.broker, self.state.hostname, payload, self.dispatch)

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
        payload = encode_reply(ticket, self.state.hostname, reply)
        await self.broker.publish_topic_async(reply_topic(ticket), payload)
