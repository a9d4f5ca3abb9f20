"""Revoking tasks (``app.control.revoke``, the worker's ``Revocations``) and idempotency keys,
on the memory broker and on the real Redis (skipped when it is not running)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator

import pytest

from celeriac import Celery
from celeriac.app.control import signal_name
from celeriac.brokers.base import Broker, OutboundMessage, Revocation
from celeriac.brokers.memory import MemoryBroker
from celeriac.exceptions import BrokerConnectionError
from celeriac.worker.revocations import Revocations

SLACK = 2.0  # seconds an announcement may take to arrive


@pytest.fixture(params=["memory", "redis"])
def make_broker(request: pytest.FixtureRequest) -> Iterator[Callable[[], Broker]]:
    """Builds brokers on one shared store: for Redis, new clients on the same key prefix
    (as a restarted worker would connect); for memory, the one in-process instance."""
    made: list[Broker] = []
    if request.param == "memory":
        memory = MemoryBroker()

        def make() -> Broker:
            return memory

    else:
        from celeriac.brokers.redis import RedisBroker

        url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")

        def make() -> Broker:
            broker = RedisBroker(url, transport_options={"key_prefix": prefix})
            made.append(broker)
            return broker

    yield make
    for broker in made:
        broker.close()


@pytest.fixture
def app(make_broker: Callable[[], Broker]) -> Iterator[Celery]:
    app = Celery("t", broker=make_broker(), backend="cache+memory://")
    try:
        yield app
    finally:
        app.close()


async def eventually(check: Callable[[], bool], timeout: float = SLACK) -> None:
    give_up = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < give_up, "not within the time allowed"
        await asyncio.sleep(0.01)


# -- app.control.revoke and the worker's cache ------------------------------------------------
def test_a_running_worker_learns_of_a_revoke_at_once(app: Celery) -> None:
    async def scenario() -> None:
        async with Revocations(app.broker) as revocations:
            assert not revocations.is_revoked("t-1")
            app.control.revoke("t-1")
            await eventually(lambda: revocations.is_revoked("t-1"))
            app.control.revoke(["t-2", "t-3"])
            app.AsyncResult("t-4").revoke()
            await eventually(lambda: all(i in revocations for i in ("t-2", "t-3", "t-4")))
            assert not revocations.is_revoked("t-5")
            assert len(revocations) == 4

    asyncio.run(scenario())


def test_a_worker_started_after_the_revoke_still_skips_the_task(
    app: Celery, make_broker: Callable[[], Broker]
) -> None:
    app.control.revoke("t-1")
    later = make_broker()  # a new worker process: a new connection, same broker

    async def scenario() -> None:
        async with Revocations(later) as revocations:
            assert revocations.is_revoked("t-1")  # loaded at start, no wait

    asyncio.run(scenario())
    assert set(later.revoked_ids()) == {"t-1"}


def test_a_revocation_ends_after_worker_revoke_expires(
    app: Celery, make_broker: Callable[[], Broker]
) -> None:
    app.conf.worker_revoke_expires = 0.4

    async def scenario() -> None:
        async with Revocations(app.broker) as running:
            app.control.revoke("t-1")
            await eventually(lambda: running.is_revoked("t-1"))
            async with Revocations(make_broker()) as started_later:
                assert started_later.is_revoked("t-1")
                await asyncio.sleep(0.6)
                assert not running.is_revoked("t-1")
                assert not started_later.is_revoked("t-1")
        assert app.broker.revoked_ids() == {}

    asyncio.run(scenario())


def test_terminate_requests_reach_the_callback(app: Celery) -> None:
    killed: list[tuple[str, str]] = []

    async def scenario() -> None:
        async with Revocations(app.broker, on_terminate=lambda *kill: killed.append(kill)):
            app.control.revoke("t-1")  # no terminate: the callback is not called
            app.control.revoke(["t-2", "t-3"], terminate=True, signal="KILL")
            app.AsyncResult("t-4").revoke(terminate=True)
            await eventually(lambda: len(killed) == 3)
            await asyncio.sleep(0.1)

    asyncio.run(scenario())
    assert killed == [("t-2", "SIGKILL"), ("t-3", "SIGKILL"), ("t-4", "SIGTERM")]


def test_a_failing_terminate_callback_does_not_stop_the_cache(app: Celery) -> None:
    def explode(task_id: str, signal: str) -> None:
        raise RuntimeError("no such process")

    async def scenario() -> None:
        async with Revocations(app.broker, on_terminate=explode) as revocations:
            app.control.revoke(["t-1", "t-2"], terminate=True)
            await eventually(lambda: "t-2" in revocations)
            app.control.revoke("t-3")
            await eventually(lambda: "t-3" in revocations)

    asyncio.run(scenario())


def test_stopped_cache_hears_nothing_more(app: Celery) -> None:
    async def scenario() -> None:
        revocations = Revocations(app.broker)
        await revocations.start()
        await revocations.start()  # once is enough
        await revocations.stop()
        app.control.revoke("t-1")
        await asyncio.sleep(0.2)
        assert not revocations.is_revoked("t-1")
        await revocations.stop()

    asyncio.run(scenario())


def test_the_cache_expires_on_its_own_clock() -> None:
    now = [1000.0]
    revocations = Revocations(MemoryBroker(), clock=lambda: now[0])
    revocations.apply(Revocation({"t-1": time.time() + 5.0}))
    assert revocations.is_revoked("t-1")
    now[0] += 4.9
    assert revocations.is_revoked("t-1")
    now[0] += 0.2
    assert not revocations.is_revoked("t-1")
    assert len(revocations) == 0


@pytest.mark.parametrize(
    ("given", "name"),
    [("SIGKILL", "SIGKILL"), ("kill", "SIGKILL"), ("TERM", "SIGTERM"), (9, "SIGKILL")],
)
def test_signals_are_named_as_celery_accepts_them(given: str | int, name: str) -> None:
    assert signal_name(given) == name


def test_bad_revoke_arguments_fail_at_the_call(app: Celery) -> None:
    for signal in ("SIG TERM", "", 10_000):
        with pytest.raises(ValueError, match="signal"):
            app.control.revoke("t-1", signal=signal)
    for task_id in ("", ["t-1", 7]):
        with pytest.raises(TypeError, match="task ids"):
            app.control.revoke(task_id)  # the wrong type is the point
    assert app.broker.revoked_ids() == {}


# -- idempotency keys -------------------------------------------------------------------------
def test_a_second_call_with_the_key_sends_nothing(app: Celery) -> None:
    @app.task
    def welcome(user_id: int) -> None: ...

    first = welcome.apply_async((42,), idempotency_key="welcome:42")
    second = welcome.apply_async((42,), idempotency_key="welcome:42")
    assert second.id == first.id
    assert app.broker.queue_length("celery") == 1
    other = welcome.apply_async((43,), idempotency_key="welcome:43")
    unkeyed = welcome.delay(42)
    assert len({first.id, other.id, unkeyed.id}) == 3
    assert app.broker.queue_length("celery") == 3


def test_after_the_ttl_the_key_sends_again(app: Celery) -> None:
    app.conf.task_idempotency_ttl = 0.3
    first = app.send_task("welcome", (42,), idempotency_key="welcome:42")
    time.sleep(0.5)
    second = app.send_task("welcome", (42,), idempotency_key="welcome:42")
    assert second.id != first.id
    assert app.broker.queue_length("celery") == 2
    assert app.send_task("welcome", (42,), idempotency_key="welcome:42").id == second.id


def test_a_task_resending_itself_keeps_its_key(app: Celery) -> None:
    # A retry re-publishes with the same task id and key: that must go through.
    first = app.send_task("welcome", (42,), idempotency_key="welcome:42")
    again = app.send_task("welcome", (42,), task_id=first.id, idempotency_key="welcome:42")
    assert again.id == first.id
    assert app.broker.queue_length("celery") == 2


class _DownOnce(MemoryBroker):
    def __init__(self) -> None:
        super().__init__()
        self.down = True

    def publish(self, message: OutboundMessage) -> None:
        if self.down:
            self.down = False
            raise BrokerConnectionError("the broker is down")
        super().publish(message)


def test_a_call_that_was_not_sent_frees_its_key() -> None:
    app = Celery("t", broker=_DownOnce(), task_publish_retry=False)
    with pytest.raises(BrokerConnectionError):
        app.send_task("welcome", (42,), idempotency_key="welcome:42")
    sent = app.send_task("welcome", (42,), idempotency_key="welcome:42")
    assert app.broker.queue_length("celery") == 1
    assert app.send_task("welcome", (42,), idempotency_key="welcome:42").id == sent.id


def test_the_producer_check_serves_calls_that_do_not_publish(app: Celery) -> None:
    # What eager mode calls before running a task locally: None means "go ahead".
    producer = app.producer
    assert producer.reserve_idempotency_key(None, "t-1") is None
    assert producer.reserve_idempotency_key("welcome:42", "t-1") is None
    assert producer.reserve_idempotency_key("welcome:42", "t-2") == "t-1"
    assert app.broker.queue_length("celery") == 0


def test_a_key_must_be_a_string(app: Celery) -> None:
    with pytest.raises(TypeError, match="idempotency_key"):
        app.send_task("welcome", idempotency_key=42)
    assert app.broker.queue_length("celery") == 0


# -- Redis: the worker's subscription survives a lost connection -----------------------------
def test_redis_revocations_reload_after_their_connection_is_cut(
    redis_url: str, redis_prefix: str
) -> None:
    from celeriac.brokers.redis import RedisBroker

    broker = RedisBroker(redis_url, transport_options={"key_prefix": redis_prefix})
    killed: list[tuple[str, str]] = []

    async def scenario() -> None:
        async with Revocations(broker, on_terminate=lambda *kill: killed.append(kill)) as cache:
            # Cut the subscription's own connection (and no one else's) from the server side.
            connection = cache._subscription._pubsub.connection
            host, port = connection._writer.get_extra_info("sockname")[:2]
            broker.client.client_kill(f"{host}:{port}")
            broker.revoke(["t-meanwhile"], 60.0)  # announced while nobody is subscribed
            await eventually(lambda: "t-meanwhile" in cache, 5.0)
            broker.revoke(["t-after"], 60.0, terminate=True)
            await eventually(lambda: killed == [("t-after", "SIGTERM")])
        await broker.close_async()

    try:
        asyncio.run(scenario())
    finally:
        broker.close()


def test_redis_revocations_keep_their_idle_connection_alive(
    redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from celeriac import _redis_pubsub
    from celeriac.brokers.redis import RedisBroker

    monkeypatch.setattr(_redis_pubsub, "KEEPALIVE", 0.05)  # PING after 50 ms of silence
    broker = RedisBroker(redis_url, transport_options={"key_prefix": redis_prefix})

    async def scenario() -> None:
        async with Revocations(broker) as cache:
            await asyncio.sleep(0.3)  # a few PINGs and their replies go by
            assert len(cache) == 0
            broker.revoke(["t-1"], 60.0)
            await eventually(lambda: "t-1" in cache)
        await broker.close_async()

    try:
        asyncio.run(scenario())
    finally:
        broker.close()


def test_redis_shared_keys_expire(redis_url: str, redis_prefix: str) -> None:
    # Guarantee 8: nothing the revocations, idempotency keys and buckets write lives forever.
    from celeriac.brokers.redis import RedisBroker

    broker = RedisBroker(redis_url, transport_options={"key_prefix": redis_prefix})
    try:
        broker.revoke(["t-1"], 0.3)
        broker.revoke(["t-2"], 60.0)
        assert broker.reserve("welcome:42", "t-1", 60.0) is None

        async def acquire() -> float:
            try:
                return await broker.acquire("send-mail", 10.0, 5.0)
            finally:
                await broker.close_async()

        assert asyncio.run(acquire()) == 0.0
        shared, client = broker.shared, broker.client
        keys = [shared.revoked, shared.idempotency("welcome:42"), shared.bucket("send-mail")]
        ttls = [client.pttl(key) for key in keys]
        assert 59_000 < ttls[0] <= 60_000, "the revoked set lives as long as its last member"
        assert 59_000 < ttls[1] <= 60_000
        assert 0 < ttls[2] <= 1_000 + 100, "a bucket lives until it would be full again"
        time.sleep(0.5)
        broker.revoke(["t-3"], 60.0)  # a write drops the ended revocations
        assert set(broker.revoked_ids()) == {"t-2", "t-3"}
        assert client.zcard(shared.revoked) == 2
    finally:
        broker.close()
