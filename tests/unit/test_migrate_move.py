"""The move behind ``celeriac migrate-queue``, stepped on the memory engine: a source
reading Celery's wire format, a target writing celeriac's. What moves keeps its id,
headers and priority, and waits on the target until its eta; what cannot move stays on
the source, in order; a dry run and ``limit`` stop where they say. (The real brokers and
Celery's own producer: tests/integration/test_migrate_queue*.py.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
import uuid

import pytest

from celeriac.brokers.base import OutboundMessage
from celeriac.brokers.memory import MemoryBroker
from celeriac.messages.celery import CELERY
from celeriac.messages.envelope import Message
from celeriac.migrate import MovePlan, Sides, SkipReason, Tally, move

FUTURE = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).isoformat()
PAST = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).isoformat()


def celery_message(source: MemoryBroker, priority: int = 0, **headers: object) -> str:
    """Queue one task message in Celery's format, ready at once (as Celery queues an eta
    message); its task id."""
    task_id = str(uuid.uuid4())
    message = Message(
        headers={"task": "proj.add", "id": task_id, "retries": 1, **headers},
        body=json.dumps([[2, 3], {}, {"callbacks": None, "errbacks": None}]).encode(),
    )
    source.publish(OutboundMessage("celery", CELERY.encode(message), task_id, priority))
    return task_id


def sides() -> Sides:
    return Sides(MemoryBroker(wire_format=CELERY), MemoryBroker())


def run(pair: Sides, **plan: object) -> Tally:
    return move(pair, MovePlan({"celery": "celery"}, timeout=0, **plan))  # type: ignore[arg-type]


def ready_ids(broker: MemoryBroker, queue: str = "celery") -> list[str]:
    """Take every ready message of ``queue``: their ids, in fetch order."""

    async def take() -> list[str]:
        taken = []
        while deliveries := await broker.fetch([queue], 100, timeout=0):
            for delivery in deliveries:
                taken.append(delivery.message_id)
                await delivery.ack()
        return taken

    return asyncio.run(take())


def test_a_moved_message_keeps_its_id_headers_and_priority() -> None:
    pair = sides()
    task_id = celery_message(pair.source, priority=7, root_id="root-1", parent_id="parent-1")
    tally = run(pair)
    assert (tally.moved, tally.skipped, pair.source.queue_length("celery")) == (1, 0, 0)

    async def take() -> tuple[Message, int]:
        [delivery] = await pair.target.fetch(["celery"], 1, timeout=0)
        return Message.decode(delivery.payload), delivery.priority

    message, priority = asyncio.run(take())
    assert message.id == task_id and priority == 7
    assert message.properties == {"priority": 7}
    assert {k: message.headers[k] for k in ("retries", "root_id", "parent_id")} == {
        "retries": 1, "root_id": "root-1", "parent_id": "parent-1",
    }  # fmt: skip
    assert json.loads(message.body)[:2] == [[2, 3], {}]


def test_an_eta_still_to_come_waits_on_the_target_and_a_past_one_does_not() -> None:
    pair = sides()
    celery_message(pair.source, eta=FUTURE)
    celery_message(pair.source, eta=PAST)
    tally = run(pair)
    assert tally.moved == 2 and tally.queues["celery"].waiting_for_eta == 1
    assert (pair.target.queue_length("celery"), pair.target.delayed_count("celery")) == (1, 1)


def test_what_cannot_be_read_stays_on_the_source_in_its_place() -> None:
    pair = sides()
    first = celery_message(pair.source)
    pair.source.publish(OutboundMessage("celery", b"not a message", "junk-1"))
    last = celery_message(pair.source)
    tally = run(pair)
    assert ready_ids(pair.target) == [first, last]
    assert tally.queues["celery"].on_source == 1
    [problem] = tally.queues["celery"].problems
    assert (problem.message_id, problem.reason) == ("junk-1", SkipReason.UNDECODABLE)
    assert "CEL2" in problem.detail  # the codec's own words: what the payload should be
    assert ready_ids(pair.source) == ["junk-1"]


def test_a_message_over_the_size_limit_stays_on_the_source() -> None:
    pair = sides()
    task_id = celery_message(pair.source)
    tally = run(pair, max_size=100)
    [problem] = tally.queues["celery"].problems
    assert (problem.message_id, problem.reason) == (task_id, SkipReason.REFUSED)
    assert "task_message_max_size (100)" in problem.detail
    assert ready_ids(pair.source) == [task_id] and pair.target.queue_length("celery") == 0


def test_a_dry_run_counts_and_leaves_every_message_where_it_was() -> None:
    pair = sides()
    sent = [celery_message(pair.source, eta=FUTURE if i == 1 else None) for i in range(5)]
    tally = run(pair, dry_run=True)
    assert (tally.moved, tally.queues["celery"].waiting_for_eta) == (5, 1)
    assert tally.queues["celery"].on_target == 0
    assert pair.target.queue_length("celery") == pair.target.delayed_count("celery") == 0
    assert ready_ids(pair.source) == sent  # all there, in the same order


@pytest.mark.parametrize("dry_run", [False, True])
def test_limit_stops_after_that_many(dry_run: bool) -> None:
    pair = sides()
    sent = [celery_message(pair.source) for _ in range(25)]
    tally = run(pair, limit=12, dry_run=dry_run)
    assert tally.moved == 12
    assert tally.queues["celery"].on_source == (None if dry_run else 13)
    left = 25 if dry_run else 13
    assert pair.source.queue_length("celery") == left
    assert ready_ids(pair.target) == ([] if dry_run else sent[:12])


def test_the_run_ends_once_no_message_comes_within_the_timeout() -> None:
    pair = sides()
    started = time.monotonic()
    tally = move(pair, MovePlan({"celery": "celery"}, timeout=0.2))
    assert tally.moved == 0 and 0.2 <= time.monotonic() - started < 2
