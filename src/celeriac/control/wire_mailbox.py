"""Commands from the wire format's own mailbox: with ``wire_format = "celery"``, a worker
also answers Celery's remote control (``celery inspect``, ``celery control``, Flower), sent
through kombu's ``celery.pidbox``. The command's body is the same JSON object celeriac's
own commands are (``method``, ``arguments``, ``destination``, ``ticket``), with Celery's
``pattern``/``matcher`` addressing and a ``reply_to``; the reply is ``{hostname: value}``
sent where ``reply_to`` says, with the command's ticket.

Imports the channel seam, the control protocol and Celery's message helpers.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from celeriac.brokers.base import Broker
from celeriac.control.protocol import Command, decode_command
from celeriac.control.registry import NoReply
from celeriac.messages.celery.events import addressed_to, reply_address

Dispatch = Callable[[Command], Awaitable[Any]]


async def serve(broker: Broker, hostname: str, payload: bytes, dispatch: Dispatch) -> None:
    """Run the command in ``payload`` if it is meant for ``hostname``, and send its reply."""
    command = decode_command(payload)
    if command is None:
        return
    body = json.loads(payload)  # (decode_command has read it as a JSON object)
    if not addressed_to(body, hostname):
        return
    reply = await dispatch(command)
    address = reply_address(body)
    if address is None or command.ticket is None or isinstance(reply, NoReply):
        return
    parts = broker.wire_format.control_reply_parts(command.ticket, hostname, reply)
    await broker.publish_wire_reply(*address, parts)
