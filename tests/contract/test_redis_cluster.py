"""The broker, channel, lease and result-backend contracts against a real Redis Cluster of
three masters and three replicas that this module starts (``redis+cluster://``), and what
only a cluster asks for: queues on different masters, keys that must share a slot, and a
URL that names the problem when it cannot work."""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from redis.cluster import RedisCluster
from redis.crc import key_slot

from celeriac._redis import beside, parse_target
from celeriac.app.connections import create_backend, create_broker
from celeriac.brokers.base import Broker, OutboundMessage, Topic
from celeriac.brokers.redis import RedisBroker
from celeriac.brokers.redis.channel import topic_key
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured
from celeriac.messages.wire import WireFormat
from celeriac.results.base import ResultBackend
from celeriac.results.redis import RedisBackend
from celeriac.testing.contracts import (
    BackendFactory,
    BrokerContract,
    BrokerFactory,
    ChannelContract,
    LeaseContract,
    ResultBackendContract,
)
from celeriac.testing.contracts.wire import WireFormatContract
from tests.integration.redis_cluster import LocalCluster, redis_cluster  # noqa: F401 (fixture)


@pytest.fixture
def cluster_prefix(redis_cluster: LocalCluster) -> Iterator[str]:  # noqa: F811
    """A key prefix unique to this test; its keys are deleted from every master afterwards."""
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    yield prefix
    for node in redis_cluster.masters():
        client = node.client()
        try:
            for key in client.scan_iter(match=f"{prefix}*", count=1000):
                client.delete(key)
        finally:
            client.close()


@pytest.fixture
def make_cluster_broker(
    redis_cluster: LocalCluster,  # noqa: F811
    cluster_prefix: str,
) -> Iterator[Callable[..., RedisBroker]]:
    made: list[RedisBroker] = []

    def make(
        lease_seconds: float = 30.0,
        delivery_limit: int = 5,
        wire_format: WireFormat | None = None,
    ) -> RedisBroker:
        broker = RedisBroker(
            redis_cluster.url,
            lease_seconds=lease_seconds,
            delivery_limit=delivery_limit,
            transport_options={"key_prefix": cluster_prefix},
            wire_format=wire_format,
        )
        made.append(broker)
        return broker

    yield make
    for broker in made:
        broker.close()


class TestRedisClusterBroker(BrokerContract, WireFormatContract):
    @pytest.fixture
    def make_broker(self, make_cluster_broker: Callable[..., RedisBroker]) -> BrokerFactory:
        return make_cluster_broker


class TestRedisClusterChannel(ChannelContract):
    @pytest.fixture
    def make_broker(self, make_cluster_broker: Callable[..., RedisBroker]) -> BrokerFactory:
        def make(lease_seconds: float = 30.0, delivery_limit: int = 5) -> Broker:
            return make_cluster_broker(lease_seconds, delivery_limit)

        return make

    async def held(self, broker: Broker, topic: Topic) -> int | None:
        """Subscribers of the topic's channel on every node (each node counts its own)."""
        assert isinstance(broker, RedisBroker)
        if topic.kind != "broadcast":
            return None
        key = topic_key(broker.prefix, topic)
        client: Any = broker.client
        total = 0
        for node in client.get_nodes():
            replies = client.get_redis_connection(node).pubsub_numsub(key)
            total += int(dict(replies)[key.encode()])
        return total


class TestRedisClusterLease(LeaseContract):
    @pytest.fixture
    def make_broker(self, make_cluster_broker: Callable[..., RedisBroker]) -> BrokerFactory:
        def make(lease_seconds: float = 30.0, delivery_limit: int = 5) -> Broker:
            return make_cluster_broker(lease_seconds, delivery_limit)

        return make


class TestRedisClusterBackend(ResultBackendContract):
    @pytest.fixture
    def make_backend(
        self,
        redis_cluster: LocalCluster,  # noqa: F811
        cluster_prefix: str,
    ) -> Iterator[BackendFactory]:
        made: list[RedisBackend] = []

        def make(expires: float | None = 86400.0) -> ResultBackend:
            made.append(RedisBackend(redis_cluster.url, expires=expires, key_prefix=cluster_prefix))
            return made[-1]

        yield make
        for backend in made:
            backend.close()


# -- what only a cluster asks for ------------------------------------------------------------


def _queues_on_every_master(cluster: LocalCluster, prefix: str, count: int = 3) -> list[str]:
    """Queue names whose keys lie on ``count`` different masters."""
    found: dict[int, str] = {}
    for n in range(1000):
        name = f"q{n}"
        port = cluster.owner(f"{prefix}:{{{name}}}:s0").port
        found.setdefault(port, name)
        if len(found) == count:
            return list(found.values())
    raise AssertionError("no queue names spread over the masters")


def _message(queue: str, n: int, **kw: Any) -> OutboundMessage:
    return OutboundMessage(queue=queue, payload=b"m%d" % n, message_id=f"m{n}", **kw)


def test_one_consumer_waits_on_queues_of_three_masters_and_wakes_for_each(
    redis_cluster: LocalCluster,  # noqa: F811
    make_cluster_broker: Callable[..., RedisBroker],
    cluster_prefix: str,
) -> None:
    broker = make_cluster_broker()
    queues = _queues_on_every_master(redis_cluster, cluster_prefix)

    async def run() -> list[tuple[str, float]]:
        loop = asyncio.get_running_loop()
        woke: list[tuple[str, float]] = []
        try:
            for n, queue in enumerate([*queues, *reversed(queues)]):
                fetch = asyncio.ensure_future(broker.fetch(queues, 1, 10.0))
                await asyncio.sleep(0.2)  # the consumer is blocked in its wait by now
                assert not fetch.done()
                started = loop.time()
                await broker.publish_async(_message(queue, n))
                (delivery,) = await fetch
                woke.append((delivery.queue, loop.time() - started))
                assert await broker.ack(delivery)
        finally:
            await broker.close_async()
        return woke

    woke = asyncio.run(run())
    assert [queue for queue, _ in woke] == [*queues, *reversed(queues)]
    assert all(after < 1.0 for _, after in woke), woke  # woken by the write, not a timeout


def test_publish_many_spans_masters_and_delayed_and_high_priority_ones_use_scripts(
    redis_cluster: LocalCluster,  # noqa: F811
    make_cluster_broker: Callable[..., RedisBroker],
    cluster_prefix: str,
) -> None:
    broker = make_cluster_broker()
    queues = _queues_on_every_master(redis_cluster, cluster_prefix)
    batch = [_message(q, n, priority=9 if n % 2 else 0) for n, q in enumerate(queues * 4)]
    batch.append(_message(queues[0], 99, delay=60.0))
    broker.publish_many(batch)
    assert [broker.queue_length(q) for q in queues] == [4, 4, 4]
    assert broker.delayed_count(queues[0]) == 1


def test_publish_many_loads_scripts_a_node_does_not_have(
    redis_cluster: LocalCluster,  # noqa: F811
    make_cluster_broker: Callable[..., RedisBroker],
    cluster_prefix: str,
) -> None:
    """A replica promoted by a failover knows no scripts: flushing them has the same effect."""
    broker = make_cluster_broker()
    queues = _queues_on_every_master(redis_cluster, cluster_prefix)
    broker.publish(_message(queues[0], 0, priority=9))  # scripts loaded, the SHAs known
    for node in redis_cluster.masters():
        client = node.client()
        client.script_flush()
        client.close()
    broker.publish_many([_message(q, n, priority=9) for n, q in enumerate(queues)])
    assert broker.reserve_many([("k1", "a"), ("k2", "b")], 60) == [None, None]
    for node in redis_cluster.masters():
        client = node.client()
        client.script_flush()
        client.close()

    async def run() -> None:
        try:
            delayed = [_message(q, n, delay=30) for n, q in enumerate(queues)]
            await broker.publish_many_async(delayed)
        finally:
            await broker.close_async()

    asyncio.run(run())
    assert [broker.queue_length(q) for q in queues] == [2, 1, 1]
    assert [broker.delayed_count(q) for q in queues] == [1, 1, 1]


def test_a_chord_keeps_its_three_keys_in_one_slot(
    redis_cluster: LocalCluster,  # noqa: F811
    cluster_prefix: str,
) -> None:
    backend = RedisBackend(redis_cluster.url, key_prefix=cluster_prefix)
    try:
        group = uuid.uuid4().hex
        backend.add_to_chord(group, "extra", added_by="a")
        assert [backend.chord_part_done(group, t, 2) for t in ("a", "b", "extra")] == [
            False, False, True,
        ]  # fmt: skip
    finally:
        backend.close()
    name = f"{cluster_prefix}:result:chord:{group}"
    slots = {key_slot(k.encode()) for k in (name, beside(name, ":owner"), beside(name, ":grown"))}
    assert len(slots) == 1


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("p:result:chord:x", "{p:result:chord:x}:owner"),
        ("{app}:result:chord:x", "{app}:result:chord:x:owner"),  # a tag of its own: kept
        ("p:{q}:s0", "p:{q}:s0:owner"),
        ("a{b", "{a{b}:owner"),  # no tag ('{' without '}'): hashed whole, wrapped
    ],
)
def test_a_key_beside_another_hashes_to_its_slot(key: str, expected: str) -> None:
    assert beside(key, ":owner") == expected
    assert key_slot(expected.encode()) == key_slot(key.encode())


def test_the_result_listener_wakes_waiters_on_any_node(
    redis_cluster: LocalCluster,  # noqa: F811
    cluster_prefix: str,
) -> None:
    """PUBLISH on a cluster reaches every node, so one subscriber connection serves ids
    whose records lie on every master."""
    backend = RedisBackend(redis_cluster.url, key_prefix=cluster_prefix)
    ids = [f"t{n}" for n in range(12)]
    results: dict[str, Any] = {}

    def wait(task_id: str) -> None:
        results[task_id] = backend.wait_for(task_id, timeout=10)["result"]

    try:
        threads = [threading.Thread(target=wait, args=(task_id,)) for task_id in ids]
        for thread in threads:
            thread.start()
        for n, task_id in enumerate(ids):
            backend.mark_as_done(task_id, n)
        for thread in threads:
            thread.join(15)
    finally:
        backend.close()
    assert results == {task_id: n for n, task_id in enumerate(ids)}
    masters = {redis_cluster.owner(f"{cluster_prefix}:result:task:{t}").port for t in ids}
    assert len(masters) == 3


def test_the_eviction_check_reads_every_master(
    redis_cluster: LocalCluster,  # noqa: F811
    make_cluster_broker: Callable[..., RedisBroker],
) -> None:
    broker = make_cluster_broker()
    last = redis_cluster.masters()[-1]
    client = last.client()
    client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        problem = broker.check_safety()
    finally:
        client.config_set("maxmemory-policy", "noeviction")
        client.close()
    assert problem is not None and f"node 127.0.0.1:{last.port}" in problem
    assert broker.check_safety() is None


def test_the_app_builds_cluster_engines_from_the_url(
    redis_cluster: LocalCluster,  # noqa: F811
) -> None:
    broker = create_broker(redis_cluster.url, {"key_prefix": "kp"}, 5)
    backend = create_backend(redis_cluster.url, 60, "json", ["json"], {"key_prefix": "kp"})
    try:
        assert isinstance(broker, RedisBroker) and isinstance(backend, RedisBackend)
        assert isinstance(broker.client, RedisCluster)
    finally:
        broker.close()
        backend.close()


def test_building_engines_connects_to_nothing() -> None:
    url = "redis+cluster://127.0.0.1:1,127.0.0.1:2/"
    broker = create_broker(url, {}, 5)
    backend = create_backend(url, 60, "json", ["json"], {})
    broker.close()
    backend.close()


def test_an_unreachable_cluster_is_a_connection_error_naming_the_url() -> None:
    broker = RedisBroker("redis+cluster://:pw-secret@127.0.0.1:1,127.0.0.1:2/")
    try:
        with pytest.raises(BrokerConnectionError) as caught:
            broker.publish(_message("q", 1))
    finally:
        broker.close()
    assert "redis+cluster://:**@127.0.0.1:1,127.0.0.1:2/" in str(caught.value)
    assert "pw-secret" not in str(caught.value)


def test_a_cluster_url_to_a_single_server_says_so(redis_url: str) -> None:
    port = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs["port"]
    broker = RedisBroker(f"redis+cluster://127.0.0.1:{port}/")
    try:
        with pytest.raises(ImproperlyConfigured, match=r"not in cluster mode.*redis://host"):
            broker.publish(_message("q", 1))
    finally:
        broker.close()


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("redis+cluster://h1:7000,h2:7001/3", "database 0 only"),
        ("redis+cluster://h1:7000/?decode_responses=true", "does not read"),
        ("redis+cluster://h1:x/", "not a number"),
        ("redis+cluster://h1:7000,:7001/", "without a host"),
    ],
)
def test_cluster_urls_that_cannot_work_name_the_fix(url: str, problem: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=problem):
        parse_target(url)


def test_cluster_url_forms() -> None:
    target = parse_target("redis+cluster://user:p%40ss@h1:7000,[::1]:7001,h3/0")
    assert target.nodes == (("h1", 7000), ("::1", 7001), ("h3", 6379))
    assert (target.username, target.password) == ("user", "p@ss")
    tls = parse_target("rediss+cluster://h1:7000/", {"ssl_cert_reqs": "none"})
    assert dict(tls.options)["ssl_cert_reqs"] == 0
    with pytest.raises(ImproperlyConfigured, match="rediss\\+cluster://"):
        parse_target("redis+cluster://h1:7000/", {"ssl_ca_certs": "/ca.pem"})


def test_celery3_broker_parts_leave_a_node_list_whole() -> None:
    from celeriac import Celery

    app = Celery("p", broker="redis+cluster://h1:7000,h2:7001/", broker_vhost="0")
    try:
        assert app.connection_for_write().as_uri() == "redis+cluster://h1:7000,h2:7001/"
    finally:
        app.close()
