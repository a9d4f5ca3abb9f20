"""A chord whose header task never runs to an outcome still ends, with its errback, once:
the chord's result raises ``ChordError`` naming the member and why, the body never runs.

- a member that kills its worker on every delivery, until the broker itself moves it to
  the dead letters at the delivery limit (no worker settles it: the broker hands it back
  to the worker that fetched, which tells the chord);
- a member the worker refuses: an unknown task, a message with an invalid header, and (on
  Redis) a stream entry other software wrote that the broker's fetch refuses;
- a member that expired, and one that was revoked.

Real workers started from the CLI on Redis and on RabbitMQ (results in Redis); errbacks
and bodies report through Redis lists, read once the workers have stopped, so "once" and
"never" are counted, not sampled. The same endings on the memory broker run with
``drain`` at the end.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import os
import textwrap
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import redis

from celeriac import Celery, chord, states
from celeriac.app.sending import BrokerSender, RetryPolicy, Sender
from celeriac.brokers.base import DeadLetterReason, OutboundMessage
from celeriac.brokers.memory import MemoryBroker
from celeriac.exceptions import ChordError, Reject
from celeriac.testing import drain, start_worker
from tests.conftest import REDIS_URL
from tests.integration.workers import ROOT, WorkerProcess, imported_project

PROJECT = textwrap.dedent(
    """
    import os

    import redis

    from celeriac import Celery

    QUEUE_TYPE = "classic"  # RabbitMQ's
    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_REDIS"]
    BROKER = os.environ.get("CELERIAC_TEST_BROKER") or URL
    if BROKER.startswith("amqp"):
        options = {"namespace": os.environ["CELERIAC_TEST_NAMESPACE"],
                   "queue_type": QUEUE_TYPE}
    else:
        options = {"key_prefix": PREFIX}
    app = Celery(
        "dlproj", broker=BROKER, backend=URL,
        # A short lease and a small limit: a lost delivery comes back within a second.
        broker_transport_options={**options, "visibility_timeout": 1},
        result_backend_transport_options={"key_prefix": PREFIX},
        task_delivery_limit=2,
    )
    marks = redis.Redis.from_url(URL)


    @app.task
    def add(x, y):
        return x + y


    @app.task
    def total(values):
        marks.rpush(f"{PREFIX}:bodies", repr(values))  # a chord body that must never run
        return sum(values)


    @app.task
    def poison():
        marks.rpush(f"{PREFIX}:poisoned", os.getpid())
        os._exit(1)  # the whole worker dies with it, on every delivery


    @app.task
    def on_err(request, exc, traceback, key):
        marks.rpush(f"{PREFIX}:errbacks:{key}", f"{request.id}|{type(exc).__name__}")
    """
)

Project = tuple[Path, ModuleType]


@pytest.fixture(scope="module", params=["redis", "amqp"])
def project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Project]:
    with imported_project(request, tmp_path_factory, "dlproj", PROJECT) as found:
        yield found


@pytest.fixture(scope="module", params=["amqp"])
def quorum_project(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Project]:
    """The same project on RabbitMQ quorum queues, which count redeliveries themselves."""
    source = PROJECT.replace('QUEUE_TYPE = "classic"', 'QUEUE_TYPE = "quorum"')
    with imported_project(request, tmp_path_factory, "dlquorum", source) as found:
        yield found


def worker(path: Path, proj: ModuleType, queue: str, *args: str) -> WorkerProcess:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(path)]),
        "PYTHONUNBUFFERED": "1",
    }
    command = ("-P", "threads", "-Q", queue, *args)
    return WorkerProcess(path, env, *command, app=proj.__name__)


def new_queue() -> str:
    return f"dl-{uuid.uuid4().hex[:8]}"  # RabbitMQ queue names are shared by the session


def reports(proj: ModuleType, name: str) -> list[str]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        return [item.decode() for item in client.lrange(f"{proj.PREFIX}:{name}", 0, -1)]
    finally:
        client.close()


def failing_chord(proj: ModuleType, queue: str, member: Any, key: str) -> tuple[Any, str]:
    """A chord of two good tasks around ``member``, its body with an errback reporting
    under ``key``, every task on ``queue``; frozen, not sent. With the member's task id."""
    header = [proj.add.s(1, 1), member, proj.add.s(2, 2)]
    body = proj.total.s().on_error(proj.on_err.s(key))
    workflow = chord([sig.set(queue=queue) for sig in header], body.set(queue=queue))
    workflow.freeze()
    return workflow, workflow.tasks[1].id


def assert_ended_once(proj: ModuleType, result: Any, member_id: str, key: str, why: str) -> None:
    """Checked once every worker has stopped, so nothing more can happen after it."""
    assert reports(proj, f"errbacks:{key}") == [f"{result.id}|ChordError"], "errback not once"
    assert reports(proj, "bodies") == [], "the body ran"
    with pytest.raises(ChordError, match=rf"{member_id}.*{why}"):
        result.get(timeout=1)


def dead_letter(proj: ModuleType, queue: str, member_id: str) -> Any:
    [letter] = [d for d in proj.app.broker.dead_letters(queue) if d.message_id == member_id]
    return letter


# -- a member that kills its worker on every delivery ---------------------------------------
def test_a_member_killing_its_worker_until_the_broker_dead_letters_it(project: Project) -> None:
    killed_until_dead_lettered(project)


def test_the_same_on_rabbitmq_quorum_queues(quorum_project: Project) -> None:
    killed_until_dead_lettered(quorum_project)  # RabbitMQ counts the redeliveries there


def killed_until_dead_lettered(project: Project) -> None:
    path, proj = project
    queue, key = new_queue(), "killed"
    workflow, member_id = failing_chord(proj, queue, proj.poison.si(), key)
    # Three workers: two die with the member (delivery_limit=2); the third fetches it past
    # the limit, the broker moves it to the dead letters and hands it back to that worker.
    workers = [worker(path, proj, queue, "-c", "1", "--prefetch-multiplier", "1") for _ in range(3)]
    try:
        for each in workers:
            each.wait_ready()
        result = workflow.apply_async()
        with pytest.raises(ChordError, match=rf"{member_id}.*WorkerLostError"):
            result.get(timeout=20)
    finally:
        codes = sorted(each.stop() for each in workers)
    assert codes == [0, 1, 1], "".join(w.text for w in workers)  # two were killed
    assert len(reports(proj, "poisoned")) == 2  # killed on every delivery, up to the limit
    assert_ended_once(proj, result, member_id, key, "delivery_limit")
    letter = dead_letter(proj, queue, member_id)
    assert (letter.reason, letter.delivery_count) == (DeadLetterReason.DELIVERY_LIMIT, 2)
    member = proj.app.AsyncResult(member_id)
    assert member.state == states.FAILURE
    assert "dead letters" in str(member.result)


# -- members that never run -----------------------------------------------------------------
class Tampering(Sender):
    """Sends the calls as usual, except the message of ``task_id``, which ``change`` puts
    in the queue its own way: what another producer, or a bug, could do."""

    def __init__(self, app: Celery, task_id: str, change: Any) -> None:
        self.app, self.task_id, self.change = app, task_id, change

    def send(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        BrokerSender(self.app.broker).send(
            [m for m in messages if m.message_id != self.task_id], policy
        )
        for message in messages:
            if message.message_id == self.task_id:
                self.change(self.app, message)

    async def send_async(self, messages: Sequence[OutboundMessage], policy: RetryPolicy) -> None:
        raise NotImplementedError("the chords here are sent from sync code")


def with_bad_eta(app: Celery, message: OutboundMessage) -> None:
    wire = app.broker.wire_format
    decoded = wire.decode(message.payload)
    decoded.headers["eta"] = "next tuesday"  # not an ISO 8601 date: refused as malformed
    app.broker.publish(dataclasses.replace(message, payload=wire.encode(decoded)))


def as_foreign_stream_entry(app: Celery, message: OutboundMessage) -> None:
    stream = app.broker.keys(message.queue).stream(0)
    fields = {"m": message.message_id, "p": message.payload, "y": "urgent"}  # not 0-9
    app.broker.client.xadd(stream, fields)


def ended_chord(
    project: Project, member: Any, why: str, *, change: Any = None, revoke: bool = False
) -> tuple[str, str]:
    """Send a chord with ``member`` (revoked first, or put in the queue by ``change``),
    then run a worker until the chord's result raises ``why``; checked once it stopped.
    The queue and the member's task id."""
    path, proj = project
    queue, key = new_queue(), uuid.uuid4().hex[:8]
    workflow, member_id = failing_chord(proj, queue, member, key)
    if revoke:
        proj.app.control.revoke(member_id)
    with proj.app.sending_through(Tampering(proj.app, member_id, change or _as_is)):
        result = workflow.apply_async()
    running = worker(path, proj, queue, "-c", "2")  # started after: every message is waiting
    try:
        running.wait_ready()
        with pytest.raises(ChordError, match=rf"{member_id}.*{why}"):
            result.get(timeout=10)
    finally:
        assert running.stop() == 0, running.text
    assert_ended_once(proj, result, member_id, key, why)
    return queue, member_id


def _as_is(app: Celery, message: OutboundMessage) -> None:
    app.broker.publish(message)


def test_a_member_naming_an_unknown_task(project: Project) -> None:
    _, proj = project
    member = proj.app.signature("dlproj.no_such_task", args=(3,))
    queue, member_id = ended_chord(project, member, "NotRegistered")
    assert dead_letter(proj, queue, member_id).reason is DeadLetterReason.UNKNOWN_TASK


def test_a_member_with_an_invalid_header(project: Project) -> None:
    _, proj = project
    queue, member_id = ended_chord(project, proj.add.s(3, 3), "eta", change=with_bad_eta)
    letter = dead_letter(proj, queue, member_id)
    assert letter.reason is DeadLetterReason.MALFORMED
    assert "eta" in letter.detail


def test_a_member_the_broker_refuses_to_hand_out(project: Project) -> None:
    _, proj = project
    if not proj.app.conf.broker_url.startswith("redis"):
        pytest.skip("a stream entry other software wrote: Redis only")
    member = proj.add.s(3, 3)
    queue, member_id = ended_chord(project, member, "priority", change=as_foreign_stream_entry)
    letter = dead_letter(proj, queue, member_id)
    assert letter.reason is DeadLetterReason.MALFORMED
    assert "priority" in letter.detail


def test_a_member_that_expired(project: Project) -> None:
    _, proj = project
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    _, member_id = ended_chord(project, proj.add.s(3, 3).set(expires=past), "expired")
    assert proj.app.AsyncResult(member_id).state == states.REVOKED


def test_a_member_that_was_revoked(project: Project) -> None:
    _, proj = project
    _, member_id = ended_chord(project, proj.add.s(3, 3), "revoked", revoke=True)
    assert proj.app.AsyncResult(member_id).state == states.REVOKED


# -- the memory broker, ended by drain ------------------------------------------------------
@pytest.fixture
def mem() -> Iterator[tuple[Celery, ModuleType]]:
    clock = [time.time()]  # the broker's clock, moved on by hand: leases end at once
    broker = MemoryBroker(lease_seconds=30, delivery_limit=1, clock=lambda: clock[0])
    app = Celery("memdl", broker=broker, backend="cache+memory://")
    tasks = ModuleType("memdl")
    reported: list[str] = []
    ran: list[Any] = []

    @app.task(name="memdl.add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="memdl.total")
    def total(values: list[int]) -> int:
        ran.append(values)
        return sum(values)

    @app.task(name="memdl.refuses")
    def refuses(requeue: bool) -> None:
        raise Reject("not today", requeue=requeue)

    @app.task(name="memdl.refuses_early", acks_late=False)  # acked before it runs
    def refuses_early() -> None:
        raise Reject("too late to requeue", requeue=True)

    @app.task(name="memdl.on_err")
    def on_err(request: Any, exc: Exception, traceback: Any, key: str) -> None:
        reported.append(f"{request.id}|{type(exc).__name__}")

    vars(tasks).update(app=app, add=add, total=total, on_err=on_err, refuses=refuses)
    vars(tasks).update(refuses_early=refuses_early, reported=reported, ran=ran)
    tasks.clock = clock
    try:
        yield app, tasks
    finally:
        app.close()


def memory_chord(tasks: ModuleType, member: Any) -> tuple[Any, str]:
    workflow, member_id = failing_chord(tasks, "celery", member, "mem")
    return workflow.apply_async(), member_id


def drained_once(app: Celery, tasks: ModuleType, result: Any, member_id: str, why: str) -> None:
    while drain(app):
        pass
    with pytest.raises(ChordError, match=rf"{member_id}.*{why}"):
        result.get(timeout=1)
    assert tasks.reported == [f"{result.id}|ChordError"]
    assert tasks.ran == []


def test_memory_a_member_whose_holder_vanished_until_the_limit(
    mem: tuple[Celery, ModuleType],
) -> None:
    app, tasks = mem
    result, member_id = memory_chord(tasks, tasks.add.s(3, 3))

    async def take_and_vanish() -> None:  # what a killed worker does: hold, never settle
        for delivery in await app.broker.fetch(["celery"], 10, 0):  # the header's three
            if delivery.message_id != member_id:
                await delivery.requeue()

    asyncio.run(take_and_vanish())
    tasks.clock[0] += 31  # its lease runs out: the next fetch dead-letters it (limit 1)
    drained_once(app, tasks, result, member_id, "WorkerLostError")
    [letter] = app.broker.dead_letters("celery")
    assert (letter.message_id, letter.reason) == (member_id, DeadLetterReason.DELIVERY_LIMIT)


def test_memory_a_member_naming_an_unknown_task(mem: tuple[Celery, ModuleType]) -> None:
    app, tasks = mem
    result, member_id = memory_chord(tasks, app.signature("memdl.no_such_task", args=(3,)))
    drained_once(app, tasks, result, member_id, "NotRegistered")
    [letter] = app.broker.dead_letters("celery")
    assert (letter.message_id, letter.reason) == (member_id, DeadLetterReason.UNKNOWN_TASK)


def test_memory_a_member_with_an_invalid_header(mem: tuple[Celery, ModuleType]) -> None:
    app, tasks = mem
    workflow, member_id = failing_chord(tasks, "celery", tasks.add.s(3, 3), "mem")
    with app.sending_through(Tampering(app, member_id, with_bad_eta)):
        result = workflow.apply_async()
    drained_once(app, tasks, result, member_id, "eta")
    [letter] = app.broker.dead_letters("celery")
    assert (letter.message_id, letter.reason) == (member_id, DeadLetterReason.MALFORMED)


def test_memory_a_member_that_expired(mem: tuple[Celery, ModuleType]) -> None:
    app, tasks = mem
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    result, member_id = memory_chord(tasks, tasks.add.s(3, 3).set(expires=past))
    drained_once(app, tasks, result, member_id, "expired")
    assert app.broker.dead_letters("celery") == []


@pytest.mark.parametrize(
    ("requeue", "reason"),
    [(False, DeadLetterReason.REJECTED), (True, DeadLetterReason.DELIVERY_LIMIT)],
)
def test_memory_a_member_that_rejects_its_message(
    mem: tuple[Celery, ModuleType], requeue: bool, reason: DeadLetterReason
) -> None:
    app, tasks = mem
    result, member_id = memory_chord(tasks, tasks.refuses.si(requeue))
    drained_once(app, tasks, result, member_id, "Reject")
    [letter] = app.broker.dead_letters("celery")
    assert (letter.message_id, letter.reason) == (member_id, reason)
    with pytest.raises(Reject, match="not today"):
        app.AsyncResult(member_id).get(timeout=1)


def test_memory_an_early_acked_member_that_rejects(mem: tuple[Celery, ModuleType]) -> None:
    app, tasks = mem
    result, member_id = memory_chord(tasks, tasks.refuses_early.si())
    expected = pytest.raises(ChordError, match=rf"{member_id}.*Reject")
    with start_worker(app, pool="threads", concurrency=2), expected:
        result.get(timeout=10)
    assert tasks.reported == [f"{result.id}|ChordError"]
    assert tasks.ran == []
    assert app.broker.dead_letters("celery") == []  # acked before it ran: nothing to bury
