"""``celeriac migrate-queue``: task messages a Celery 5.7 producer queued, moved into
celeriac's own format and run by a celeriac worker, on Redis (kombu's lists, read through
``kombu+redis://``, into Redis Streams) and on RabbitMQ (a Celery vhost into a vhost of
celeriac's own topology).

Per broker, in order: Celery's producer (its own virtualenv) queues plain, countdown,
expires, retried, priority, child (root and parent ids), linked, chain and errback
calls, and one message that is not a task; ``migrate-queue --dry-run`` runs as a CLI
subprocess and must leave both brokers as they were; the real move runs; a celeriac
worker started on the target runs every call with its arguments, the countdown not
before its eta. What cannot be moved stays where the source keeps it, and is reported.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import os
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis

from celeriac import Celery
from tests.conftest import delete_vhost, rabbitmqctl
from tests.integration.celery_peer import (
    celeriac_env,
    celery_env,
    run_celery_script,
    skip_without_celery,
)
from tests.integration.workers import WorkerProcess

skip_without_celery()

COUNTDOWN = 12.0  # seconds: long enough for both runs of the command to end before it

PROJECT = textwrap.dedent(
    """
    import json, os, time

    import redis

    SIDE = os.environ["INTEROP_SIDE"]
    PREFIX = os.environ["MQ_PREFIX"]
    REDIS = os.environ["MQ_REDIS"]
    if SIDE == "celery":
        from celery import Celery

        BROKER = os.environ["MQ_CELERY_BROKER"]
        options = {"global_keyprefix": PREFIX} if BROKER.startswith("redis") else {}
        app = Celery("mq", broker=BROKER, backend=REDIS, broker_transport_options=options,
                     result_backend_transport_options={"global_keyprefix": PREFIX})
    else:
        from celeriac import Celery

        BROKER = os.environ["MQ_TARGET"]
        options = {"key_prefix": PREFIX + "native"} if BROKER.startswith("redis") else {}
        app = Celery("mq", broker=BROKER, backend=REDIS, broker_transport_options=options,
                     result_backend_transport_options={"key_prefix": PREFIX + "results"})
    marks = redis.Redis.from_url(REDIS)


    @app.task(name="mq.record", bind=True)
    def record(self, *args, label, **kwargs):
        r = self.request
        marks.rpush(f"{PREFIX}ran", json.dumps({
            "label": label, "args": list(args), "kwargs": kwargs, "id": r.id,
            "retries": r.retries, "eta": r.eta, "expires": r.expires,
            "priority": (r.delivery_info or {}).get("priority"),
            "root_id": r.root_id, "parent_id": r.parent_id, "at": time.time(),
        }))
        return label


    @app.task(name="mq.boom")
    def boom():
        raise ValueError("boom")


    @app.task(name="mq.on_error")
    def on_error(task_id):  # Celery's errback with one argument: the failed task's id
        marks.rpush(f"{PREFIX}ran", json.dumps({"label": "errback", "args": [task_id]}))
    """
)

# Celery's producer: every call queued (no worker runs), and one message that is no task.
PRODUCER = textwrap.dedent(
    f"""
    import json, time

    from celery import chain
    from kombu import Producer

    import mq

    sent = {{}}
    def note(label, result):
        sent[label] = {{"id": result.id, "sent": time.time()}}

    note("plain", mq.record.delay(1, 2, label="plain", extra={{"nested": [1, None]}}))
    note("countdown", mq.record.apply_async(kwargs={{"label": "countdown"}}, countdown={COUNTDOWN}))
    note("expires", mq.record.apply_async(kwargs={{"label": "expires"}}, expires=600))
    note("retried", mq.record.apply_async(kwargs={{"label": "retried"}}, retries=2))
    note("priority", mq.record.apply_async(kwargs={{"label": "priority"}}, priority=7))
    note("child", mq.record.apply_async(kwargs={{"label": "child"}}, root_id="root-1",
                                         parent_id="parent-1"))
    note("linked", mq.record.apply_async(kwargs={{"label": "linked"}},
                                         link=mq.record.si(label="callback")))
    steps = chain(mq.record.s(label="chain-1"), mq.record.s(label="chain-2")).apply_async()
    note("chain-1", steps.parent)
    note("boom", mq.boom.apply_async(link_error=mq.on_error.s()))
    with mq.app.connection_for_write() as conn:  # kombu's own message: not a task
        Producer(conn).publish({{"not": "a task"}}, exchange="", routing_key="celery",
                               serializer="json")
    print(json.dumps(sent))
    """
)
QUEUED = 9  # task messages the producer queues (the chain's second step is in its first)
RUN = ("plain", "countdown", "expires", "retried", "priority", "child", "linked", "callback",
       "chain-1", "chain-2", "errback")  # fmt: skip


@dataclass
class Move:
    """One broker's run: the URLs, what the producer sent, and each step's outcome."""

    kind: str  # "kombu" or "amqp"
    path: Path
    env: dict[str, str]
    source: str  # --from
    target: str  # --to
    from_options: list[str]
    redis_url: str
    prefix: str
    sent: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, Any] = field(default_factory=dict)

    def side_env(self, side: str) -> dict[str, str]:
        made = celery_env if side == "celery" else celeriac_env
        return made(self.env, self.path)

    def command(self, *extra: str) -> subprocess.CompletedProcess[str]:
        """``celeriac -A mq migrate-queue`` as a user types it."""
        args = [sys.executable, "-m", "celeriac", "-A", "mq", "migrate-queue",
                "--from", self.source, "--to", self.target, *self.from_options,
                "--timeout", "0.5", *extra]  # fmt: skip
        return subprocess.run(
            args, cwd=self.path, env=self.side_env("celeriac"), capture_output=True,
            text=True, timeout=60, check=False,
        )  # fmt: skip

    def source_app(self) -> Celery:
        """The source as celeriac reads it in Celery's format (for counts only)."""
        options = {"global_keyprefix": self.prefix} if self.kind == "kombu" else {}
        return Celery("check-source", broker=self.source, wire_format="celery",
                      broker_transport_options=options, set_as_current=False)  # fmt: skip

    def target_app(self) -> Celery:
        options = {"key_prefix": self.prefix + "native"} if self.kind == "kombu" else {}
        return Celery("check-target", broker=self.target, broker_transport_options=options,
                      set_as_current=False)  # fmt: skip


def counts(app: Celery, queue: str = "celery") -> tuple[int, int]:
    """(ready, delayed) messages of ``queue``."""
    try:
        return app.broker.queue_length(queue), app.broker.delayed_count(queue)
    finally:
        app.close()


def kombu_bodies(redis_url: str, prefix: str) -> list[Any]:
    """The bodies of every envelope on kombu's lists of queue ``celery``."""
    client = redis.Redis.from_url(redis_url)
    try:
        found = []
        for key in client.scan_iter(match=f"{prefix}celery*"):
            if client.type(key) == b"list":
                for item in client.lrange(key, 0, -1):
                    found.append(json.loads(base64.b64decode(json.loads(item)["body"])))
        return found
    finally:
        client.close()


def amqp_bodies(url: str, queue: str = "celery") -> list[Any]:
    """The bodies waiting in ``queue``, read and given back (the channel closes unacked)."""
    import aiormq

    async def read() -> list[Any]:
        connection = await aiormq.connect(url)
        try:
            channel = await connection.channel()
            bodies = []
            while True:
                message = await channel.basic_get(queue, no_ack=False)
                if message.delivery_tag is None:  # basic.get-empty
                    return bodies
                bodies.append(json.loads(message.body))
        finally:
            await connection.close()

    return asyncio.run(read())


@pytest.fixture(scope="module", params=["kombu", "amqp"])
def move(
    request: pytest.FixtureRequest, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Move]:
    """The project on disk, the brokers (on RabbitMQ, a vhost each for Celery's queues and
    celeriac's), and the Celery producer's calls, queued."""
    kind = request.param
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}:"
    path = tmp_path_factory.mktemp(f"migrate-{kind}")
    (path / "mq.py").write_text(PROJECT)
    (path / "produce.py").write_text(PRODUCER)
    vhosts: list[str] = []
    if kind == "kombu":
        celery_broker, source, target = redis_url, f"kombu+{redis_url}", redis_url
        from_options = ["--from-option", f"global_keyprefix={prefix}"]
    else:
        netloc = urlsplit(request.getfixturevalue("amqp_url")).netloc
        for side in ("celery", "native"):
            vhosts.append(f"celeriac-migrate-{side}-{uuid.uuid4().hex[:8]}")
            rabbitmqctl("add_vhost", vhosts[-1])
            rabbitmqctl("set_permissions", "-p", vhosts[-1], "guest", ".*", ".*", ".*")
        celery_broker = source = f"amqp://{netloc}/{vhosts[0]}"
        target, from_options = f"amqp://{netloc}/{vhosts[1]}", []
    settings = {"MQ_PREFIX": prefix, "MQ_REDIS": redis_url, "MQ_CELERY_BROKER": celery_broker,
                "MQ_TARGET": target, "PYTHONUNBUFFERED": "1"}  # fmt: skip
    made = Move(kind, path, {**os.environ, **settings}, source, target, from_options,
                redis_url, prefix)  # fmt: skip
    try:
        made.sent = run_celery_script(path, made.side_env("celery"), "produce.py")
        yield made
    finally:
        for vhost in vhosts:
            delete_vhost(vhost)
        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture(scope="module")
def dry_run(move: Move) -> dict[str, Any]:
    """``--dry-run``, with both brokers' counts before and after it."""
    before = counts(move.source_app())
    done = move.command("--dry-run")
    return {"done": done, "before": before, "source": counts(move.source_app()),
            "target": counts(move.target_app())}  # fmt: skip


@pytest.fixture(scope="module")
def moved(move: Move, dry_run: dict[str, Any]) -> dict[str, Any]:
    """The move itself (after the dry run), with what each broker holds afterwards. On
    Redis, an entry that is no kombu message at all is pushed first."""
    if move.kind == "kombu":
        client = redis.Redis.from_url(move.redis_url)
        client.lpush(f"{move.prefix}celery", b"\x00 not a kombu envelope")
        client.close()
    done = move.command("--json")
    ended = time.time()
    return {"done": done, "ended": ended, "source": counts(move.source_app()),
            "target": counts(move.target_app())}  # fmt: skip


@pytest.fixture(scope="module")
def ran(move: Move, moved: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """A celeriac worker on the target runs what was moved: each call's record by label."""
    worker = WorkerProcess.started(
        move.path, move.side_env("celeriac"), "-P", "solo", "-Q", "celery", app="mq"
    )
    marks = redis.Redis.from_url(move.redis_url)
    records: dict[str, dict[str, Any]] = {}
    try:
        deadline = time.monotonic() + COUNTDOWN + 30
        while len(records) < len(RUN) and time.monotonic() < deadline:
            popped = marks.blpop([f"{move.prefix}ran"], timeout=1)
            if popped is not None:
                record = json.loads(popped[1])
                records[record["label"]] = record
    finally:
        marks.close()
        worker.stop()
    for trouble in ("dead-lettered", "internal error", "DecodeError"):
        assert trouble not in worker.text, worker.text
    assert sorted(records) == sorted(RUN), worker.text
    return records


def test_the_dry_run_counts_what_would_move_and_moves_nothing(
    move: Move, dry_run: dict[str, Any]
) -> None:
    done = dry_run["done"]
    assert done.returncode == 1, done.stdout + done.stderr  # one message would stay behind
    lines = done.stdout.splitlines()
    assert lines[0] == "Dry run: nothing was moved."
    assert lines[1] == (
        f"celery: {QUEUED} would move (1 to wait on the target until their eta), "
        f"1 left behind (1 undecodable); the target queue holds 0 now"
    ), done.stdout
    assert "not a Celery task message" in lines[2]
    assert lines[-1] == f"Total: {QUEUED} message(s) would move, 1 left behind."
    assert "1 message(s) would be left behind" in done.stderr
    # Every message is still on the source, and nothing reached the target.
    assert dry_run["before"] == dry_run["source"] == (QUEUED + 1, 0)
    assert dry_run["target"] == (0, 0)


def test_the_move_reports_each_queue(move: Move, moved: dict[str, Any]) -> None:
    done = moved["done"]
    assert done.returncode == 1, done.stdout + done.stderr
    report = json.loads(done.stdout)
    [queue] = report["queues"]
    assert (report["dry_run"], report["moved"], report["stopped"]) == (False, QUEUED, None)
    assert (queue["source"], queue["target"], queue["moved"]) == ("celery", "celery", QUEUED)
    assert queue["waiting_for_eta"] == 1
    assert report["on_source"] == queue["on_source"] == 1  # the undecodable one
    expected = {"undecodable": 1}
    if move.kind == "kombu":  # the raw entry: dead-lettered by the source, as its workers do
        expected["dead_lettered"] = 1
    assert queue["skipped"] == expected and report["skipped"] == sum(expected.values())
    by_reason = {problem["reason"]: problem["detail"] for problem in queue["problems"]}
    assert "not a Celery task message" in by_reason["undecodable"]
    if move.kind == "kombu":
        assert by_reason["dead_lettered"].startswith("malformed: ")


def test_every_task_message_is_on_the_target_and_the_countdown_waits_there(
    move: Move, moved: dict[str, Any]
) -> None:
    eta = move.sent["countdown"]["sent"] + COUNTDOWN
    assert moved["ended"] < eta - 1, "the move took too long to see the countdown wait"
    # Ready now: every message but the countdown, which waits on the target's own clock.
    assert moved["target"] == (QUEUED - 1, 1)


def test_what_cannot_be_moved_is_not_lost(move: Move, moved: dict[str, Any]) -> None:
    """kombu's non-task message is still on the source, as it was sent; on Redis, the raw
    entry is in the source's dead letters."""
    assert moved["source"] == (1, 0)
    if move.kind == "kombu":
        assert kombu_bodies(move.redis_url, move.prefix) == [{"not": "a task"}]
        app = move.source_app()
        try:
            [letter] = app.broker.dead_letters("celery")
        finally:
            app.close()
        assert letter.reason.value == "malformed" and letter.payload == b"\x00 not a kombu envelope"
    else:
        assert amqp_bodies(move.source) == [{"not": "a task"}]


def test_a_celeriac_worker_runs_every_call_with_its_arguments(
    move: Move, ran: dict[str, dict[str, Any]]
) -> None:
    sent = move.sent
    for label in ("plain", "countdown", "expires", "retried", "priority", "child", "linked"):
        assert ran[label]["id"] == sent[label]["id"], label  # each keeps its task id
    plain = ran["plain"]
    assert (plain["args"], plain["kwargs"]) == ([1, 2], {"extra": {"nested": [1, None]}})
    assert ran["retried"]["retries"] == 2 and ran["plain"]["retries"] == 0
    expires = dt.datetime.fromisoformat(ran["expires"]["expires"]).timestamp()
    assert abs(expires - (sent["expires"]["sent"] + 600)) < 5
    assert (ran["child"]["root_id"], ran["child"]["parent_id"]) == ("root-1", "parent-1")
    # kombu's Redis lists serve priority 0 first, celeriac 9 first: the order is kept.
    assert ran["priority"]["priority"] == (2 if move.kind == "kombu" else 7)
    assert ran["plain"]["priority"] == (9 if move.kind == "kombu" else None)
    # Links, chains and errbacks travel with the message.
    assert ran["callback"]["parent_id"] == sent["linked"]["id"]
    first, second = ran["chain-1"], ran["chain-2"]
    assert first["id"] == sent["chain-1"]["id"] and second["args"] == ["chain-1"]
    assert second["parent_id"] == second["root_id"] == first["id"]
    assert ran["errback"]["args"] == [sent["boom"]["id"]]


def test_the_countdown_runs_at_its_eta_not_before(
    move: Move, ran: dict[str, dict[str, Any]]
) -> None:
    record = ran["countdown"]
    eta = dt.datetime.fromisoformat(record["eta"]).timestamp()
    assert abs(eta - (move.sent["countdown"]["sent"] + COUNTDOWN)) < 2  # Celery's eta, kept
    assert record["at"] >= eta - 0.05, "ran before its eta"
    assert record["at"] < eta + 10
