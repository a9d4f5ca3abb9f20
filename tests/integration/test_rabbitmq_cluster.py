"""A worker on a real three-node RabbitMQ cluster that this module starts (no Docker): the
broker URL lists every node, queues are quorum queues led by different nodes, and the
node the worker is connected to is killed with SIGKILL under load -- the worker and the
producer move to another node and every confirmed publish runs. Run with ``-s`` to see
the recovery figures. The long form (more tasks, repeated kills, pipelined confirms) is
test_rabbitmq_cluster_failover.py."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest
import redis

from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.base import OutboundMessage
from celeriac.exceptions import BrokerConnectionError
from tests.integration.rabbitmq_cluster import (  # noqa: F401 (rabbit_cluster: a fixture)
    LocalRabbitCluster,
    Producer,
    cluster_project,
    declare_on,
    rabbit_cluster,
    rabbit_project,
    recovery,
    worker_node,
)
from tests.integration.workers import WorkerProcess


@pytest.fixture
def project(
    tmp_path: Path,
    rabbit_cluster: LocalRabbitCluster,  # noqa: F811
    redis_url: str,
) -> Iterator[tuple[dict[str, str], ModuleType, redis.Redis]]:
    with cluster_project(tmp_path, rabbit_cluster, redis_url, CONFIRM="1") as made:
        yield made


def test_a_worker_runs_tasks_from_quorum_queues_led_by_each_node(
    tmp_path: Path,
    rabbit_cluster: LocalRabbitCluster,  # noqa: F811
    project: tuple[dict[str, str], ModuleType, redis.Redis],
) -> None:
    env, proj, _ = project
    queues = [f"{proj.PREFIX}-q{n}" for n in range(3)]
    for node, queue in zip(rabbit_cluster.nodes, queues, strict=True):
        declare_on(node, [queue], proj.PREFIX)  # its leader: the node it was declared on
    worker = WorkerProcess.started(
        tmp_path, env, "-P", "threads", "-c", "4", "-Q", ",".join(queues), app="rabbitproj"
    )
    try:
        sent = [proj.add.apply_async((n, n), queue=queues[n % 3]) for n in range(30)]
        assert [r.get(timeout=30) for r in sent] == [2 * n for n in range(30)]
        # A countdown waits in the delay queues, replicated too, then lands in its queue.
        later = proj.add.apply_async((1, 2), queue=queues[1], countdown=0.5)
        assert later.get(timeout=30) == 3
        assert worker.stop() == 0
    finally:
        worker.stop()
    # Several nodes in the URL: quorum queues, with no setting for it; a leader on each node.
    found = rabbit_cluster.queues()
    assert {found[q]["type"] for q in queues} == {"quorum"}
    assert {found[f"{proj.PREFIX}.dead.{q}"]["type"] for q in queues} == {"quorum"}
    assert sorted(found[q]["leader"] for q in queues) == sorted(
        n.node for n in rabbit_cluster.nodes
    )
    assert worker_node(worker.text) in {n.port for n in rabbit_cluster.nodes}  # logged
    assert "guest:guest" not in worker.text and "Traceback" not in worker.text, worker.text


def test_the_first_node_that_answers_is_used_and_an_outage_names_every_node(
    amqp_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Two nodes where nothing listens, then the local RabbitMQ: the list works as long
    as one node answers, and the broker says which one it is on."""
    vhost = amqp_url.rsplit("/", 1)[1]
    dead = [f"amqp://guest:guest@127.0.0.1:{port}/{vhost}" for port in (1, 2)]
    broker = AmqpBroker(";".join([*dead, amqp_url]), transport_options={"namespace": "fo"})
    message = OutboundMessage(queue=f"failover-{time.time_ns()}", payload=b"x", message_id="m1")
    try:
        with caplog.at_level(logging.INFO, logger="celeriac.brokers.amqp"):
            broker.publish(message)
        assert broker.queue_length(message.queue) == 1
        assert broker.link.target is broker.nodes.targets[2]
        said = [r.getMessage() for r in caplog.records]
        assert any(f"connected to RabbitMQ node {broker.link.target.safe_url}" in s for s in said)
        broker.purge(message.queue)
    finally:
        broker.close()
    nowhere = AmqpBroker(
        "amqp://guest:pw-secret@127.0.0.1:1//;amqp://guest:pw-secret@127.0.0.1:2//",
        transport_options={"connect_timeout": 2},
    )
    try:
        with pytest.raises(BrokerConnectionError) as caught:
            nowhere.publish(message)
    finally:
        nowhere.close()
    text = str(caught.value)
    assert "any of the 2 RabbitMQ nodes" in text and ":1//" in text and ":2//" in text
    assert "pw-secret" not in text


def test_killing_the_workers_node_under_load_loses_no_confirmed_publish(
    tmp_path: Path,
    rabbit_cluster: LocalRabbitCluster,  # noqa: F811
    project: tuple[dict[str, str], ModuleType, redis.Redis],
) -> None:
    """Last in this module: it leaves one node down (the long form starts it again). A
    classic queue on the killed node is out of reach meanwhile: publishing to it raises,
    saying why."""
    env, proj, marks = project
    queue = f"{proj.PREFIX}-load"
    worker = WorkerProcess.started(
        tmp_path, env, "-P", "threads", "-c", "4", "-Q", queue, app="rabbitproj"
    )
    producer = Producer(proj, [queue])
    thread = threading.Thread(target=producer.run, daemon=True)
    classic = {"queue_type": "classic", "namespace": proj.PREFIX}
    message = OutboundMessage(queue=f"{proj.PREFIX}-classic", payload=b"x", message_id="c1")
    try:
        victim = rabbit_cluster.by_port(worker_node(worker.text))
        on_victim = AmqpBroker(victim.url, transport_options=classic)
        on_victim.publish(message)  # the queue's home: the node about to be killed
        on_victim.close()
        thread.start()
        producer.wait_for(marks, ran=100)  # load before the kill
        killed_at, killed_wall = time.monotonic(), time.time()
        rabbit_cluster.kill(victim)
        worker.wait_for_log("having been lost", timeout=60)
        moved_at = time.monotonic()
        producer.wait_for(marks, ran=len(producer.acked) + 100)  # load after the move
        producer.stop.set()
        thread.join(60)
        figures = recovery(proj, marks, producer, killed_at, killed_wall, timeout=60)
        assert worker.stop() == 0
        elsewhere = AmqpBroker(rabbit_cluster.url, transport_options=classic)
        with pytest.raises(BrokerConnectionError, match="A classic queue lives on one node"):
            elsewhere.publish(message)
        elsewhere.close()
    finally:
        producer.stop.set()
        worker.stop()
    print(
        f"\nRabbitMQ node killed under load: the worker moved to node "
        f"{worker_node(worker.text, last=True)} {moved_at - killed_at:.2f} s after SIGKILL; "
        f"{figures}"
    )
    assert worker_node(worker.text, last=True) != victim.port
    assert figures.lost == [], f"confirmed publishes that never ran: {figures.lost}"
    assert figures.before > 50 and figures.after > 50, "too little load to measure"
    assert producer.failures == [], "a publish raised: the retry policy did not cover it"
    assert "Traceback" not in worker.text, worker.text
