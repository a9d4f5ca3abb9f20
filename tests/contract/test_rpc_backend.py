"""The result-backend contract against rpc:// on each broker (memory, real Redis, real
RabbitMQ), and what only rpc:// promises: a state reaches the client that sent the call and
no other, groups and chords are refused with the fix, and closing stops the listener.

rpc:// has no store that a worker writes and anyone reads: the worker sends each state to
the caller. So the contract runs on ``Loopback``, a client that also plays the worker
answering it: a state stored with no request goes to its own reply topic, and the store
returns once the reply has come back, so the contract's read-after-write checks hold.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from celeriac import states
from celeriac.brokers.base import Broker, Topic
from celeriac.brokers.memory import MemoryBroker
from celeriac.exceptions import BackendConnectionError, TimeoutError
from celeriac.request import Request
from celeriac.results.base import ResultBackend
from celeriac.results.rpc import RpcBackend
from celeriac.results.rpc.backend import unframe
from celeriac.testing.contracts import BackendFactory, ResultBackendContract

BrokerMaker = Callable[[], Broker]
_NOT_SHARED = (
    "rpc:// keeps no record that other processes read: groups live in the caller's "
    "GroupResult (saving one raises, tested below)"
)
_NO_CHORDS = "rpc:// refuses chords: the header's results reach only the caller (tested below)"


class Loopback(RpcBackend):
    """A client that answers itself, as a worker answers the client that sent a call: a
    state whose request names no ``reply_to`` is sent to this client's own topic."""

    def __init__(self, broker: Broker, **options: Any) -> None:
        super().__init__(broker, **options)
        self._arrived = threading.Condition()
        self._sent = self._received = 0

    def store_result(self, task_id: str, result: Any, state: str, **options: Any) -> None:
        request = options.get("request")
        if request is None:
            options["request"] = request = Request(id=task_id, correlation_id=task_id)
        if request.reply_to is None:  # sent as if from this client
            request.reply_to = self.reply_address()
        with self._arrived:
            self._sent += 1
            sent = self._sent
        super().store_result(task_id, result, state, **options)
        with self._arrived:
            assert self._arrived.wait_for(lambda: self._received >= sent, 10), "no reply"

    def _receive(self, payload: bytes) -> None:
        super()._receive(payload)
        try:
            unframe(payload)
        except ValueError:  # not a state: nothing it stored
            return
        with self._arrived:
            self._received += 1
            self._arrived.notify_all()


def _id() -> str:
    return f"rpc-{uuid.uuid4().hex}"


@pytest.fixture(params=["memory", "redis", "amqp"])
def make_broker(request: pytest.FixtureRequest) -> Iterator[BrokerMaker]:
    made: list[Broker] = []

    def make() -> Broker:
        if request.param == "memory":
            broker: Broker = MemoryBroker()
        elif request.param == "redis":
            from celeriac.brokers.redis import RedisBroker

            url, prefix = (
                request.getfixturevalue("redis_url"),
                request.getfixturevalue("redis_prefix"),
            )
            broker = RedisBroker(url, transport_options={"key_prefix": prefix})
        else:
            from celeriac.brokers.amqp import AmqpBroker

            url = request.getfixturevalue("amqp_url")
            namespace = request.getfixturevalue("amqp_namespace")
            broker = AmqpBroker(url, transport_options={"namespace": namespace})
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def clients(make_broker: BrokerMaker) -> Iterator[Callable[..., RpcBackend]]:
    """Builds rpc:// clients on one broker; closes each (before the broker) at teardown."""
    made: list[RpcBackend] = []
    broker: list[Broker] = []

    def make(kind: type[RpcBackend] = RpcBackend, **options: Any) -> RpcBackend:
        if not broker:
            broker.append(make_broker())
        made.append(kind(broker[0], **options))
        return made[-1]

    yield make
    for client in made:
        client.close()


class TestRpcBackend(ResultBackendContract):
    @pytest.fixture
    def make_backend(self, clients: Callable[..., RpcBackend]) -> BackendFactory:
        def make(expires: float | None = 86400.0) -> ResultBackend:
            return clients(Loopback, expires=expires)

        return make

    @pytest.mark.skip(reason=_NOT_SHARED)
    def test_group_ids_are_saved_restored_and_deleted(self) -> None: ...

    @pytest.mark.skip(reason=_NO_CHORDS)
    def test_exactly_one_header_task_completes_a_chord(self) -> None: ...

    @pytest.mark.skip(reason=_NO_CHORDS)
    def test_a_redelivered_header_task_counts_once(self) -> None: ...

    @pytest.mark.skip(reason=_NO_CHORDS)
    def test_a_chord_grown_by_add_to_chord_waits_for_the_added_tasks(self) -> None: ...

    @pytest.mark.skip(reason=_NO_CHORDS)
    def test_growing_a_chord_races_no_join(self) -> None: ...


def _answer(worker: RpcBackend, caller: RpcBackend, task_id: str, value: Any) -> None:
    """What a worker does for a call ``caller`` sent: send the state to its reply topic."""
    request = Request(id=task_id, reply_to=caller.reply_address(), correlation_id=task_id)
    worker.store_result(task_id, value, states.SUCCESS, request=request)


def test_a_state_reaches_the_client_that_sent_the_call_and_no_other(
    clients: Callable[..., RpcBackend],
) -> None:
    caller, other, worker = clients(), clients(), clients()
    task_id = _id()
    other.reply_address()  # listening too, on a topic of its own
    _answer(worker, caller, task_id, 42)
    assert caller.wait_for(task_id, timeout=10)["result"] == 42
    assert other.get_task_meta(task_id)["status"] == states.PENDING
    assert worker.get_task_meta(task_id)["status"] == states.PENDING  # the sender only


def test_the_reply_address_is_one_topic_per_client(clients: Callable[..., RpcBackend]) -> None:
    first, second = clients(), clients()
    address = first.reply_address()
    assert address == first.reply_address() != second.reply_address()
    assert address.startswith("celeriac.reply.")


def test_a_state_without_a_reply_to_is_not_sent(
    clients: Callable[..., RpcBackend], caplog: pytest.LogCaptureFixture
) -> None:
    worker = clients()
    with caplog.at_level(logging.DEBUG, logger="celeriac.results.rpc"):
        worker.store_result(_id(), 1, states.SUCCESS, request=Request(id="x"))
    assert "names no reply_to" in caplog.text


def test_progress_then_success_the_waiter_wakes_on_the_final_state(
    clients: Callable[..., RpcBackend],
) -> None:
    caller, worker, task_id = clients(), clients(), _id()
    request = Request(id=task_id, reply_to=caller.reply_address(), correlation_id=task_id)
    worker.store_result(task_id, {"done": 1}, "PROGRESS", request=request)
    with pytest.raises(TimeoutError, match="only the process that sent the call"):
        caller.wait_for(task_id, timeout=0.3)
    assert caller.get_task_meta(task_id)["result"] == {"done": 1}
    worker.store_result(task_id, 7, states.SUCCESS, request=request)
    assert caller.wait_for(task_id, timeout=10)["result"] == 7


def test_groups_and_chords_are_refused_naming_the_fix(clients: Callable[..., RpcBackend]) -> None:
    backend = clients()
    for call in (
        lambda: backend.save_group("g", ["a"]),
        lambda: backend.restore_group("g"),
        lambda: backend.delete_group("g"),
    ):
        with pytest.raises(NotImplementedError, match="redis://localhost:6379/1"):
            call()
    with pytest.raises(NotImplementedError, match="cannot run chords"):
        backend.chord_part_done("g", "a", 2)
    with pytest.raises(NotImplementedError, match="cannot run chords"):
        backend.ensure_chords_allowed()


def _listeners() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("celeriac-rpc-")}


def test_close_stops_listening_and_wakes_a_waiter_with_a_clear_error(
    clients: Callable[..., RpcBackend],
) -> None:
    before = _listeners()
    backend, task_id = clients(), _id()
    backend.reply_address()
    assert len(_listeners() - before) == 1
    box: dict[str, BaseException] = {}

    def wait() -> None:
        try:
            backend.wait_for(task_id, timeout=30)
        except BaseException as exc:
            box["error"] = exc

    waiter = threading.Thread(target=wait)
    waiter.start()
    backend.close()
    waiter.join(10)
    assert isinstance(box.get("error"), BackendConnectionError)
    assert _listeners() - before == set()
    backend.close()  # again: nothing to do


def test_bytes_that_are_not_a_reply_are_dropped_with_a_warning(
    clients: Callable[..., RpcBackend], caplog: pytest.LogCaptureFixture
) -> None:
    caller, worker, task_id = clients(Loopback), clients(), _id()
    with caplog.at_level(logging.WARNING, logger="celeriac.results.rpc"):
        worker.broker.publish_topic(Topic(caller.reply_address()), b"garbage")
        caller.store_result(task_id, 1, states.SUCCESS)  # arrives after the garbage
    assert caller.get_task_meta(task_id)["result"] == 1
    assert "not a reply" in caplog.text
