"""``celeriac.contrib.migrate.migrate_tasks``: the ``celeriac migrate`` run from Python,
with Celery's arguments (``queues`` renames, ``tasks``, ``ack_messages``), on Redis."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac import Celery
from celeriac.brokers.base import DeadLetterReason, OutboundMessage
from celeriac.contrib.migrate import State, migrate_tasks


@pytest.fixture
def app(redis_url: str, redis_prefix: str) -> Iterator[Celery]:
    made = Celery(
        "proj", broker=redis_url, set_as_current=False,
        broker_transport_options={"key_prefix": redis_prefix},
    )  # fmt: skip
    yield made
    made.close()


def test_migrate_tasks_moves_the_named_tasks_and_gives_back_the_rest(
    app: Celery, redis_url: str
) -> None:
    sent = [app.send_task("proj.add", (i, i)).id for i in range(2)]
    app.send_task("proj.mul", (2, 3))
    seen: list[tuple[int, str, str]] = []

    state = migrate_tasks(
        redis_url, redis_url, app=app, queues="celery:moved", tasks="proj.add",
        ack_messages=True, timeout=0.2,
        callback=lambda state, name, task_id: seen.append((state.count, name, task_id)),
    )  # fmt: skip

    assert isinstance(state, State) and state.count == 2 and state.total_apx == 3
    assert seen == [(1, "proj.add", sent[0]), (2, "proj.add", sent[1])]
    assert app.broker.queue_length("moved") == 2
    assert app.broker.queue_length("celery") == 1  # proj.mul, given back


def test_without_ack_messages_they_are_copied_as_in_celery(app: Celery, redis_url: str) -> None:
    app.send_task("proj.add", (1, 1))
    state = migrate_tasks(
        redis_url, redis_url, app=app, queues={"celery": "copies"}, limit=5, timeout=0.2
    )
    assert state.count == 1 and repr(state) == "1/1"
    assert app.broker.queue_length("copies") == 1 and app.broker.queue_length("celery") == 1


def test_a_message_that_cannot_be_read_is_dead_lettered_and_the_rest_move(
    app: Celery, redis_url: str
) -> None:
    app.send_task("proj.add", (1, 1))
    app.broker.publish(OutboundMessage("celery", b"not a task message", "unreadable-1"))
    app.send_task("proj.add", (2, 2))

    state = migrate_tasks(
        redis_url, redis_url, app=app, queues="celery:moved", ack_messages=True, timeout=0.2
    )

    assert state.count == 2
    assert app.broker.queue_length("moved") == 2 and app.broker.queue_length("celery") == 0
    (letter,) = app.broker.dead_letters("celery")
    assert letter.message_id == "unreadable-1" and letter.reason is DeadLetterReason.MALFORMED
