"""``RpcBackend``: states travel back to the caller as messages on the broker's channel.

Each client (a backend in one process) has a reply topic, ``celeriac.reply.<random hex>``,
listened to from the first call it sends; every call carries it as ``reply_to``, and the
worker publishes each state there, framed as ``<correlation id>\\n<0|1 ready>\\n<record>``.
The client keeps what it received in memory (``inbox``). Nothing is stored anywhere else,
so a state can be read only by the client that sent the call, groups cannot be saved and
chords are refused. Imports ``results.base``, ``brokers.base``, ``_context`` and leaves.
"""

from __future__ import annotations

import contextvars
import logging
import os
import threading
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from celeriac._context import get_current_request
from celeriac.brokers.base import Broker, Topic
from celeriac.exceptions import TimeoutError
from celeriac.results.base import RecordFormat, ResultBackend, TaskMeta
from celeriac.results.rpc.inbox import Inbox, ReplyListener

logger = logging.getLogger("celeriac.results.rpc")

TOPIC_PREFIX = "celeriac.reply."
_NO_CHORDS = (
    "the rpc:// result backend cannot run chords: a chord's body is sent by whichever "
    "worker ends the header's last task, after reading every header result, and rpc:// "
    "results reach only the caller. A group followed by a task in a chain is a chord too. "
    "Use a result backend every process reads, e.g. result_backend='redis://localhost:6379/1'."
)
_NO_GROUPS = (
    "the rpc:// result backend cannot {what}: its results live only in the memory of the "
    "client that sent the calls. Keep the GroupResult object, or use a result backend every "
    "process reads, e.g. result_backend='redis://localhost:6379/1'."
)
# Where the state being stored goes: (reply_to, correlation_id), set by store_result.
_destination: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar(
    "celeriac_rpc_destination", default=None
)


def frame(correlation_id: str, ready: bool, record: bytes) -> bytes:
    return f"{correlation_id}\n{int(ready)}\n".encode() + record


def unframe(payload: bytes) -> tuple[str, bool, bytes]:
    """``(correlation_id, ready, record)``; ``ValueError`` for bytes that are not a reply."""
    correlation_id, ready, record = payload.split(b"\n", 2)
    if ready not in (b"0", b"1") or not correlation_id:
        raise ValueError("not an rpc:// reply")
    return correlation_id.decode(), ready == b"1", record


class RpcBackend(ResultBackend):
    """Results sent to the caller. ``broker``: the broker, or a callable giving it (the
    app passes one, so the broker is built only when the backend is first used)."""

    schemes = ("rpc",)

    def __init__(
        self,
        broker: Broker | Callable[[], Broker],
        *,
        expires: float | None = 86400.0,
        serializer: str = "json",
        accept_content: Sequence[str] = ("json",),
        record_format: RecordFormat | None = None,
    ) -> None:
        super().__init__(
            expires=expires,
            serializer=serializer,
            accept_content=accept_content,
            record_format=record_format,
        )
        self._broker_source = broker
        self._lock = threading.Lock()
        self._start_afresh()

    def _start_afresh(self) -> None:
        """A new reply topic and an empty inbox: at start, and in a forked child (which
        must not read its parent's replies or think its parent's listener is its own)."""
        self._pid = os.getpid()
        self._topic = Topic(f"{TOPIC_PREFIX}{uuid.uuid4().hex}")
        self._inbox = Inbox(self.expires)
        self._listener: ReplyListener | None = None

    def _own(self) -> None:
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._start_afresh()

    def __repr__(self) -> str:
        return f"<RpcBackend reply topic {self._topic.name}>"

    @property
    def broker(self) -> Broker:
        source = self._broker_source
        return source if isinstance(source, Broker) else source()

    # -- the caller's side ------------------------------------------------------------------
    def reply_address(self) -> str:
        """This client's reply topic, listened to before it is returned, so no state a
        worker sends for a call carrying it can be missed."""
        self._own()
        with self._lock:
            if self._listener is None:
                listener = ReplyListener(self.broker, self._topic, self._receive)
                listener.start()
                self._listener = listener
            return self._topic.name

    def _receive(self, payload: bytes) -> None:
        try:
            correlation_id, ready, record = unframe(payload)
        except ValueError:
            logger.warning("rpc:// replies: dropped %d bytes that are not a reply", len(payload))
            return
        self._inbox.put(self.records.task_key(correlation_id), record, ready)

    # -- the worker's side ------------------------------------------------------------------
    def store_result(self, task_id: str, result: Any, state: str, **options: Any) -> None:
        """Send the state to the caller the call's ``request`` names (its ``reply_to``);
        without one (the call was sent with another result backend, or the state is not
        the running task's own), there is nobody to tell and nothing is sent."""
        request = options.get("request")
        if request is None:  # Celery's fallback: the task running here, for its own id
            current = get_current_request()
            request = current if current is not None and current.id == task_id else None
        reply_to = getattr(request, "reply_to", None)
        if not reply_to:
            logger.debug("rpc:// result of %s not sent: its call names no reply_to", task_id)
            return
        correlation_id = getattr(request, "correlation_id", None) or task_id
        token = _destination.set((str(reply_to), str(correlation_id)))
        try:  # the base builds the record; ``_set`` sends it
            super().store_result(task_id, result, state, **options)
        finally:
            _destination.reset(token)

    def _send(self, reply_to: str, correlation_id: str, record: bytes, ready: bool) -> None:
        try:
            topic = Topic(reply_to)
        except ValueError:
            logger.warning(
                "rpc:// result of %s not sent: reply_to %r is not a reply topic",
                correlation_id,
                reply_to,
            )
            return
        self.broker.publish_topic(topic, frame(correlation_id, ready, record))

    # -- engine I/O -------------------------------------------------------------------------
    def _set(self, key: str, value: bytes, ttl: float | None, *, ready: bool = False) -> None:
        destination = _destination.get()
        if destination is None:  # only store_result sends; group records have no caller
            raise NotImplementedError(_NO_GROUPS.format(what="store a group"))
        self._send(destination[0], destination[1], value, ready)

    def _get(self, key: str) -> bytes | None:
        self._own()
        return self._inbox.get(key)

    def _delete(self, key: str) -> None:
        self._own()
        self._inbox.delete(key)

    def _wait(self, key: str, timeout: float | None) -> bytes | None:
        self._own()
        return self._inbox.wait(key, timeout)

    def _join(self, key: str, member: str, size: int, ttl: float | None) -> bool:
        raise NotImplementedError(_NO_CHORDS)

    def ensure_chords_allowed(self) -> None:
        raise NotImplementedError(_NO_CHORDS)

    def wait_for(self, task_id: str, timeout: float | None = None) -> TaskMeta:
        try:
            return super().wait_for(task_id, timeout)
        except TimeoutError as exc:
            raise TimeoutError(
                f"task {task_id} was not ready within {timeout}s. With rpc:// only the "
                f"process that sent the call receives its result, while it runs: is a "
                f"worker consuming its queue, and was the call sent from this process?"
            ) from exc

    # -- groups -----------------------------------------------------------------------------
    def save_group(self, group_id: str, task_ids: Sequence[Any]) -> None:
        raise NotImplementedError(_NO_GROUPS.format(what="save a group (GroupResult.save)"))

    def restore_group(self, group_id: str) -> list[Any] | None:
        raise NotImplementedError(_NO_GROUPS.format(what="restore a group (GroupResult.restore)"))

    def delete_group(self, group_id: str) -> None:
        raise NotImplementedError(_NO_GROUPS.format(what="delete a group (GroupResult.delete)"))

    def close(self) -> None:
        """Stop listening (RabbitMQ: the reply queue is deleted) and wake any waiter with
        an error; states already received stay readable. The next call listens again."""
        with self._lock:
            listener, self._listener = self._listener, None
        self._inbox.close()
        if listener is not None and self._pid == os.getpid():
            listener.stop()
