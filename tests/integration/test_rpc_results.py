"""rpc:// with a real worker process started from the CLI: results come back to the process
that sent the calls, through RabbitMQ (and through Redis), on every pool; failures, progress,
retries, chains and groups arrive; chords are refused before anything is sent; the reply
queue goes when the client closes."""

from __future__ import annotations

import os
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from celeriac import Celery, chain, chord, group
from celeriac.exceptions import RemoteTaskError
from tests.conftest import rabbitmqctl
from tests.integration.workers import ROOT, WorkerProcess

PROJECT = textwrap.dedent(
    """
    import asyncio, os

    import redis

    from celeriac import Celery

    BROKER = os.environ["BROKER"]
    if BROKER.startswith("amqp"):
        options = {"namespace": os.environ["NAMESPACE"]}
    else:
        options = {"key_prefix": os.environ["PREFIX"]}
    app = Celery("rpcproj", broker=BROKER, backend="rpc://", broker_transport_options=options)
    gate = redis.Redis.from_url(os.environ["REDIS"])


    @app.task
    def add(x, y):
        return x + y


    @app.task
    async def async_add(x, y):
        await asyncio.sleep(0)
        return x + y


    class PaymentError(Exception):
        pass


    @app.task
    def refuse(reason):
        raise PaymentError(reason)


    @app.task(bind=True)
    def progress(self, gate_key):
        self.update_state(state="PROGRESS", meta={"done": 1})
        gate.blpop(gate_key, timeout=30)  # the test lets it finish once it saw PROGRESS
        return "finished"


    @app.task(bind=True)
    def flaky(self):
        if self.request.retries == 0:
            raise self.retry(countdown=0)
        return self.request.retries
    """
)


def rpc_app(broker: str, namespace: str, prefix: str) -> Celery:
    options = {"namespace": namespace} if broker.startswith("amqp") else {"key_prefix": prefix}
    return Celery(
        "rpcproj", broker=broker, backend="rpc://", broker_transport_options=options,
        set_as_current=False,
    )  # fmt: skip


class Project:
    def __init__(self, path: Path, broker: str, redis_url: str, prefix: str) -> None:
        (path / "rpcproj.py").write_text(PROJECT)
        self.path, self.broker, self.prefix = path, broker, prefix
        self.namespace = f"t{prefix.rsplit('-', 1)[-1]}"
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(path)]),
            "BROKER": broker, "NAMESPACE": self.namespace, "PREFIX": prefix,
            "REDIS": redis_url, "PYTHONUNBUFFERED": "1",
        }  # fmt: skip

    def worker(self, *args: str) -> WorkerProcess:
        return WorkerProcess.started(self.path, self.env, *args, app="rpcproj")

    def client(self) -> Celery:
        return rpc_app(self.broker, self.namespace, self.prefix)


@pytest.fixture
def project(
    request: pytest.FixtureRequest, tmp_path: Path, redis_url: str, redis_prefix: str
) -> Project:
    broker = request.getfixturevalue("amqp_url") if request.param == "amqp" else redis_url
    return Project(tmp_path, broker, redis_url, redis_prefix)


@pytest.fixture
def client(project: Project) -> Iterator[Celery]:
    app = project.client()
    yield app
    app.close()


def signature(app: Celery, name: str, *args: Any) -> Any:
    return app.signature(f"rpcproj.{name}", args)


POOLS = [
    pytest.param("amqp", "prefork", id="rabbitmq-prefork"),
    pytest.param("amqp", "threads", id="rabbitmq-threads"),
    pytest.param("amqp", "asyncio", id="rabbitmq-asyncio"),
    pytest.param("redis", "prefork", id="redis-prefork"),
]


@pytest.mark.parametrize(("project", "pool"), POOLS, indirect=["project"])
def test_results_come_back_to_the_sending_process(
    project: Project, client: Celery, pool: str, redis_url: str
) -> None:
    worker = project.worker("-P", pool, "-c", "2")
    try:
        # A plain call, and an async one on the asyncio pool
        assert client.send_task("rpcproj.add", (2, 3)).get(timeout=20) == 5
        assert client.send_task("rpcproj.async_add", (4, 5)).get(timeout=20) == 9

        # A failure is re-raised here, by its name (never imported)
        failed = client.send_task("rpcproj.refuse", ("card declined",))
        with pytest.raises(RemoteTaskError) as caught:
            failed.get(timeout=20)
        assert type(caught.value).__name__ == "PaymentError"
        assert caught.value.args == ("card declined",) and failed.state == "FAILURE"

        # update_state: the progress is seen while the task runs, then its result
        gate_key = f"{project.prefix}:gate"
        running = client.send_task("rpcproj.progress", (gate_key,))
        deadline = time.monotonic() + 20
        while running.state != "PROGRESS":  # the state is what is under test here
            assert time.monotonic() < deadline, f"no PROGRESS, state {running.state}"
            time.sleep(0.02)
        assert running.info == {"done": 1}
        redis.Redis.from_url(redis_url).rpush(gate_key, "go")
        assert running.get(timeout=20) == "finished"

        # A retry is sent by the worker and still answers this process
        assert client.send_task("rpcproj.flaky").get(timeout=20) == 1

        # A chain's later steps are sent by the worker, to this process
        steps = chain(signature(client, "add", 1, 2), signature(client, "add", 3))
        assert (steps | signature(client, "add", 4)).apply_async().get(timeout=20) == 10

        # A group: each member answers here
        members = group((signature(client, "add", i, i) for i in range(5)), app=client)
        assert members.apply_async().get(timeout=20) == [0, 2, 4, 6, 8]

        # Another client cannot read these results: they were sent to this one
        other = project.client()
        try:
            assert other.AsyncResult(failed.id).state == "PENDING"
        finally:
            other.close()
    finally:
        worker.stop()
    assert "CRITICAL" not in worker.text and "could not" not in worker.text, worker.text


@pytest.mark.parametrize("project", ["amqp"], indirect=True)
def test_chords_are_refused_before_anything_is_sent(project: Project, client: Celery) -> None:
    header = [signature(client, "add", 1, 1), signature(client, "add", 2, 2)]
    with pytest.raises(NotImplementedError, match="cannot run chords") as caught:
        chord(header, app=client)(signature(client, "add"))
    assert "redis://localhost:6379/1" in str(caught.value)
    with pytest.raises(NotImplementedError, match="cannot run chords"):
        (group(header, app=client) | signature(client, "add")).apply_async()
    assert client.broker.queue_length("celery") == 0


def bound_queues(vhost: str, exchange: str, routing_key: str) -> list[str]:
    listing = rabbitmqctl(
        "list_bindings", "-q", "-p", vhost, "source_name", "destination_name", "routing_key"
    )
    rows = [line.split("\t") for line in listing.splitlines()]
    return [
        row[1] for row in rows if len(row) == 3 and row[0] == exchange and row[2] == routing_key
    ]


def queues(vhost: str) -> set[str]:
    return set(rabbitmqctl("list_queues", "-q", "-p", vhost, "name").split())


@pytest.mark.parametrize("project", ["amqp"], indirect=True)
def test_the_reply_queue_goes_when_the_client_closes(project: Project, amqp_url: str) -> None:
    vhost = amqp_url.rsplit("/", 1)[-1]
    client = project.client()
    try:
        address = client.backend.reply_address()
        [queue] = bound_queues(vhost, f"{project.namespace}.broadcast", address)
        assert queue in queues(vhost)
    finally:
        client.close()
    assert bound_queues(vhost, f"{project.namespace}.broadcast", address) == []
    assert queue not in queues(vhost)


@pytest.mark.skipif(sys.platform != "linux", reason="fork")
@pytest.mark.parametrize("project", ["amqp"], indirect=True)
def test_a_forked_child_listens_on_a_topic_of_its_own(project: Project, client: Celery) -> None:
    parent_address = client.backend.reply_address()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: a new topic, not the parent's listener
        try:
            os.write(write, client.backend.reply_address().encode())
        finally:
            os._exit(0)
    os.close(write)
    child_address = os.read(read, 200).decode()
    os.close(read)
    os.waitpid(pid, 0)
    assert child_address.startswith("celeriac.reply.") and child_address != parent_address
    assert uuid.UUID(child_address.rsplit(".", 1)[-1])
