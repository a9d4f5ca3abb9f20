"""``celeriac migrate-queue`` killed mid-move (SIGKILL) and run again: every message reaches
the target, and at most one twice (the one published but not yet acked on the source when
the process died). On Redis (kombu's lists into Streams) and RabbitMQ (one vhost, the
queue renamed), with messages in Celery's format from celeriac's own Celery-format
producer (the interop tests show it writes what Celery writes), and no ``-A`` app: the
options go on the command line.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator

import pytest

from celeriac import Celery
from celeriac.messages.envelope import Message
from tests.integration.workers import ROOT

TOTAL = 3000


def drain(app: Celery, queue: str) -> list[str]:
    """Fetch and ack every message ``queue`` holds now: their task ids. (On RabbitMQ a
    fetch may come back empty while deliveries are on their way: it is the count that
    says when all are in.)"""
    expected = app.broker.queue_length(queue)

    async def take() -> list[str]:
        taken: list[str] = []
        try:
            while len(taken) < expected:
                deliveries = await app.broker.fetch([queue], 100, timeout=5)
                assert deliveries, f"{expected - len(taken)} message(s) never came"
                for delivery in deliveries:
                    taken.append(Message.decode(delivery.payload).id)
                    await delivery.ack()
        finally:
            await app.broker.close_async()
        return taken

    return asyncio.run(take())


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "celeriac", "migrate-queue", "--timeout", "3", *args]


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT)])}


@pytest.fixture(params=["kombu", "amqp"])
def brokers(request: pytest.FixtureRequest, redis_url: str) -> Iterator[dict[str, object]]:
    """A Celery-format producer on the source, the target app, and the command's options."""
    tag = uuid.uuid4().hex[:10]
    if request.param == "kombu":
        prefix = f"celeriac-test-{tag}:"
        source = Celery("source", broker=f"kombu+{redis_url}", wire_format="celery",
                        broker_transport_options={"global_keyprefix": prefix},
                        set_as_current=False)  # fmt: skip
        target = Celery("target", broker=redis_url, set_as_current=False,
                        broker_transport_options={"key_prefix": f"{prefix}native"})  # fmt: skip
        queue = target_queue = "celery"
        args = ["--from", f"kombu+{redis_url}", "--to", redis_url,
                "--from-option", f"global_keyprefix={prefix}",
                "--from-option", "visibility_timeout=1",  # a dead run's hold ends soon
                "--to-option", f"key_prefix={prefix}native"]  # fmt: skip
    else:
        amqp_url = str(request.getfixturevalue("amqp_url"))
        queue, target_queue = f"crash-{tag}", f"crash-{tag}-native"
        source = Celery("source", broker=amqp_url, wire_format="celery", set_as_current=False)
        target = Celery("target", broker=amqp_url, set_as_current=False)
        args = ["--from", amqp_url, "--to", amqp_url, "--queue", f"{queue}:{target_queue}"]
        prefix = ""
    try:
        yield {"source": source, "target": target, "queue": queue,
               "target_queue": target_queue, "args": args}  # fmt: skip
    finally:
        if request.param == "amqp":
            source.broker.purge(queue)
        source.close()
        target.close()
        if prefix:
            import redis

            client = redis.Redis.from_url(redis_url)
            keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
            if keys:
                client.delete(*keys)
            client.close()


def test_a_killed_move_loses_nothing_and_duplicates_at_most_one(
    brokers: dict[str, object],
) -> None:
    source, target = brokers["source"], brokers["target"]
    assert isinstance(source, Celery) and isinstance(target, Celery)
    queue, target_queue = str(brokers["queue"]), str(brokers["target_queue"])
    args = [str(arg) for arg in brokers["args"]]  # type: ignore[attr-defined]
    sent = {source.send_task("proj.add", (i, i), queue=queue).id for i in range(TOTAL)}
    source.broker.flush()

    # Given a move under way, when its process is killed part way through...
    run = subprocess.Popen(command(*args), env=env(), stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while target.broker.queue_length(target_queue) < TOTAL // 10:
            assert run.poll() is None, run.communicate()
            assert time.monotonic() < deadline, "the move did not start"
            time.sleep(0.01)  # another process's progress: only a count shows it
        run.send_signal(signal.SIGKILL)
        run.communicate(timeout=10)
    finally:
        if run.poll() is None:
            run.kill()
    moved_before = target.broker.queue_length(target_queue)
    assert moved_before < TOTAL, "the move ended before it was killed: nothing was tested"

    # ...and run again, every message is on the target, at most one of them twice.
    done = subprocess.run(command(*args), env=env(), capture_output=True, text=True,
                          timeout=120, check=False)  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    ids = drain(target, target_queue)
    assert set(ids) == sent
    assert len(ids) - len(sent) <= 1
    assert source.broker.queue_length(queue) == target.broker.queue_length(target_queue) == 0


def test_a_target_that_cannot_be_reached_stops_the_move_before_the_source_is_read(
    redis_url: str, redis_prefix: str
) -> None:
    source = Celery("source", broker=f"kombu+{redis_url}", wire_format="celery",
                    broker_transport_options={"global_keyprefix": redis_prefix},
                    set_as_current=False)  # fmt: skip
    try:
        source.send_task("proj.add", (1, 1))
        done = subprocess.run(
            command("--from", f"kombu+{redis_url}", "--to", "redis://127.0.0.1:1/0",
                    "--from-option", f"global_keyprefix={redis_prefix}"),
            env=env(), capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 1
        stopped = "stopped: the target: cannot reach the Redis broker at redis://127.0.0.1:1/0"
        assert stopped in done.stderr
        assert done.stdout.splitlines()[-1] == "Total: 0 message(s) moved, 0 left behind."
        assert source.broker.queue_length("celery") == 1
        client = source.broker.client  # type: ignore[attr-defined]
        assert not client.exists(f"{redis_prefix}_celeriac.deliveries")  # never handed out
    finally:
        source.close()
