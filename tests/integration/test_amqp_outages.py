"""RabbitMQ's sharp edges, against a real worker process: a short ``consumer_timeout`` with
far countdowns (nothing is held unacked while it waits), and a broker restart mid-run
(``rabbitmqctl stop_app``/``start_app``: no confirmed publish lost, consumption resumes).

Both change their RabbitMQ node, so each test gets a node of its own (``RabbitNode``),
never the machine's: other tests running meanwhile keep theirs.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator

import pytest

from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.base import OutboundMessage
from celeriac.exceptions import BrokerConnectionError, BrokerError
from tests.integration.rabbitmq_node import RabbitNode
from tests.integration.test_amqp_worker import Project, make_project, marks, wait_marks
from tests.integration.workers import WorkerProcess

__all__ = ["make_project"]  # the fixture, used here by name

COUNTDOWN = 90.0  # longer than the consumer_timeout below
CONSUMER_TIMEOUT_MS = 60_000


@pytest.fixture
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RabbitNode]:
    started = RabbitNode(tmp_path_factory.mktemp("rabbitmq"), label="outages")
    started.start()
    try:
        yield started
    finally:
        started.stop()


@pytest.fixture
def amqp_url(node: RabbitNode) -> str:
    """The projects of this module talk to the test's own node (its default vhost)."""
    return node.url


@pytest.fixture
def short_consumer_timeout(node: RabbitNode) -> None:
    """RabbitMQ 3.10 has only the node-wide setting: set on the test's own node."""
    node.rabbitmqctl(
        "eval", f"application:set_env(rabbit, consumer_timeout, {CONSUMER_TIMEOUT_MS})."
    )


@pytest.mark.long  # waits out a 90 s countdown; test_amqp_worker's countdowns are the short form
@pytest.mark.timeout(300)
def test_far_countdowns_run_once_on_time_under_a_short_consumer_timeout(
    make_project: Callable[..., Project], short_consumer_timeout: None
) -> None:
    path, env, proj = make_project(CONSUMER_TIMEOUT=str(CONSUMER_TIMEOUT_MS / 1000))
    worker = WorkerProcess(path, env, "-P", "threads", "-c", "4")
    try:
        worker.wait_ready()
        window: dict[str, tuple[float, float]] = {}
        for n in range(50):
            before = time.time()
            proj.stamp.apply_async((f"t{n}",), countdown=COUNTDOWN)
            window[f"t{n}"] = (before + COUNTDOWN, time.time() + COUNTDOWN)
        assert proj.app.broker.delayed_count("celery") == 50  # held by RabbitMQ, not a worker
        wait_marks(proj, "ran", 50, timeout=COUNTDOWN + 30)
        ran = [line.split("|") for line in marks(proj, "ran")]
        assert sorted(tag for tag, _ in ran) == sorted(window), "each task ran exactly once"
        for tag, at in ran:
            due_from, due_to = window[tag]
            assert due_from - 0.05 <= float(at) <= due_to + 2.0, f"{tag} ran off time"
        assert worker.process.poll() is None
    finally:
        worker.stop()
    log = worker.text
    # A channel closed by the broker (consumer_timeout) would show as a failed fetch or ack.
    assert "failed" not in log and "PRECONDITION" not in log and "lease" not in log, log


@pytest.mark.timeout(300)
def test_restart_mid_run_loses_no_confirmed_publish(
    make_project: Callable[..., Project], node: RabbitNode
) -> None:
    path, env, proj = make_project()
    worker = WorkerProcess(path, env, "-P", "threads", "-c", "4")
    confirmed: list[str] = []
    refused: list[str] = []
    stop = threading.Event()

    def produce() -> None:
        n = 0
        while not stop.is_set():
            tag = f"p{n}"
            n += 1
            try:
                proj.stamp.delay(tag)
                confirmed.append(tag)
            except BrokerError:  # down (after the retry policy): not confirmed, not counted
                refused.append(tag)
            stop.wait(0.01)

    producer = threading.Thread(target=produce)
    try:
        worker.wait_ready()
        producer.start()
        wait_marks(proj, "ran", 20)  # consuming
        try:
            node.rabbitmqctl("stop_app")
        finally:
            node.rabbitmqctl("start_app")
        node.rabbitmqctl("await_startup")
        restarted = len(confirmed)
        deadline = time.monotonic() + 60
        while len(confirmed) < restarted + 20:  # publishing works again
            assert time.monotonic() < deadline, f"no publish confirmed after the restart {refused}"
            stop.wait(0.1)
        stop.set()
        producer.join()
        ran: set[str] = set()
        deadline = time.monotonic() + 60
        while not set(confirmed) <= ran:  # consumption resumed by itself
            assert time.monotonic() < deadline, f"lost: {sorted(set(confirmed) - ran)[:20]}"
            proj.marks.blpop(f"{proj.PREFIX}:events:ran", 1)
            ran = {line.split("|")[0] for line in marks(proj, "ran")}
        assert worker.process.poll() is None, worker.text
        assert "cannot reach the RabbitMQ broker" in worker.text, "the outage never reached it"
    finally:
        stop.set()
        if producer.is_alive():
            producer.join()
        worker.stop()


@pytest.mark.timeout(120)
def test_a_fetch_in_an_outage_raises_at_once_and_the_next_gets_the_message(
    node: RabbitNode,
) -> None:
    """As on Redis: the worker's consumer reports an outage and spaces its attempts, so a
    fetch does not ride one out in silence; once RabbitMQ is back the next fetch works."""
    broker = AmqpBroker(node.url)

    async def scenario() -> list[str]:
        assert await broker.fetch(["q"], 1, 0.1) == []  # the standing consumer is up
        await asyncio.to_thread(node.rabbitmqctl, "stop_app")
        try:
            started = time.monotonic()
            with pytest.raises(BrokerConnectionError, match="cannot reach the RabbitMQ"):
                await broker.fetch(["q"], 1, 8)
            assert time.monotonic() - started < 4, "raised at once, not at the fetch's timeout"
        finally:
            await asyncio.to_thread(node.rabbitmqctl, "start_app")
        await asyncio.to_thread(node.rabbitmqctl, "await_startup")
        await asyncio.to_thread(broker.publish, OutboundMessage("q", b"p", "after"))
        got = await broker.fetch(["q"], 1, 8)
        for delivery in got:
            await broker.ack(delivery)
        return [d.message_id for d in got]

    try:
        assert asyncio.run(scenario()) == ["after"]
    finally:
        broker.close()
