"""Messages a worker cannot handle, with a real worker process on Redis and on RabbitMQ:
each is dead-lettered on its first delivery, nothing stays pending or unacknowledged, and
the worker goes on with the next task."""

from __future__ import annotations

import importlib
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest
import redis

from celeriac.brokers.base import DeadLetter, DeadLetterReason, OutboundMessage
from celeriac.messages import dumps, task_message
from tests.conftest import rabbitmqctl
from tests.integration.workers import TEST_ENV, WorkerProcess, broker_url, project_env

TASKS = textwrap.dedent(
    """
    from proj import app


    @app.task(bind=True)
    def unsendable_retry(self, handle=None):
        # The retry is built here but sent by the worker after the run, where encoding
        # the object fails: an error in handling the message, outside the task.
        raise self.retry(kwargs={"handle": object()}, countdown=0)
    """
)

# One bad field each; the rest of the message is a valid call of proj.add(1, 2).
BAD_HEADERS: dict[str, dict[str, Any]] = {
    "retries-text": {"retries": "many"},
    "retries-list": {"retries": [1, 2]},
    "timelimit-number": {"timelimit": 5},
    "expires-text": {"expires": "tomorrow"},
    "expires-number": {"expires": 12345},
    "eta-text": {"eta": "soon"},
}
BAD_EMBEDS: dict[str, dict[str, Any]] = {
    "chain-text": {"chain": "notalist"},
    "callbacks-nameless": {"callbacks": [{"args": [], "kwargs": {}, "options": {}}]},
}

Setup = tuple[ModuleType, Path, dict[str, str], str]


@pytest.fixture(params=["redis", "amqp"])
def setup(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Setup]:
    """The project (on Redis or RabbitMQ, results in Redis) and a queue of this test's own."""
    env = project_env(tmp_path, redis_url, redis_prefix, broker_url(request))
    (tmp_path / "malformed.py").write_text(TASKS)
    for name in TEST_ENV:
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("proj", "malformed"):
        sys.modules.pop(name, None)
    module = importlib.import_module("malformed")
    (tmp_path / "proj.py").write_text(
        (tmp_path / "proj.py").read_text() + "\nimport malformed  # noqa: E402,F401\n"
    )
    try:
        yield module, tmp_path, env, f"bad-{uuid.uuid4().hex[:8]}"
    finally:
        module.app.close()
        for name in ("proj", "malformed"):
            sys.modules.pop(name, None)


def publish_raw(app: Any, queue: str, task_id: str, headers: Any = None, embed: Any = None) -> None:
    """A hand-made message, as another producer could write it, published as bytes."""
    message = task_message(task_name="proj.add", task_id=task_id, args=(1, 2))
    message.headers.update(headers or {})
    if embed is not None:
        message.body = dumps([[1, 2], {}, embed], "json")[0]
    app.broker.publish(OutboundMessage(queue, message.encode(), task_id))


def wait_dead_letters(app: Any, queue: str, count: int, timeout: float = 15) -> list[DeadLetter]:
    deadline = time.monotonic() + timeout
    while len(letters := app.broker.dead_letters(queue)) < count:
        assert time.monotonic() < deadline, f"{len(letters)} of {count} dead letters: {letters}"
        time.sleep(0.1)  # polled: the dead letters are the observable outcome
    return letters


def settled_soon(app: Any, queue: str, timeout: float = 5) -> int:
    """``unsettled`` once it is 0, or after ``timeout``: a result is stored before its
    message is acked, and the worker sends acks in batches a few milliseconds apart."""
    deadline = time.monotonic() + timeout
    while (held := unsettled(app, queue)) and time.monotonic() < deadline:
        time.sleep(0.05)  # polled: the broker's pending count is the observable outcome
    return held


def unsettled(app: Any, queue: str) -> int:
    """Messages of ``queue`` the broker has handed out and not seen settled."""
    url = app.conf.broker_url
    if url.startswith("amqp"):
        vhost = unquote(urlsplit(url).path.lstrip("/"))
        out = rabbitmqctl("list_queues", "-p", vhost, "-q", "name", "messages_unacknowledged")
        rows = [line.split() for line in out.splitlines()]
        return sum(int(row[1]) for row in rows if len(row) == 2 and row[0] == queue)
    prefix = app.conf.broker_transport_options["key_prefix"]
    total = 0
    with redis.Redis.from_url(url) as client:
        for level in range(4):  # the queue's stream per priority level (brokers/redis/keys.py)
            stream = f"{prefix}:{{{queue}}}:s{level}"
            if client.exists(stream):
                total += int(client.xpending(stream, "celeriac")["pending"])
    return total


def test_malformed_messages_are_dead_lettered_on_their_first_delivery(setup: Setup) -> None:
    module, path, env, queue = setup
    app = module.app
    for name, headers in BAD_HEADERS.items():
        publish_raw(app, queue, name, headers=headers)
    for name, embed in BAD_EMBEDS.items():
        publish_raw(app, queue, name, embed=embed)
    worker = WorkerProcess(path, env, "-P", "threads", "-c", "2", "-Q", queue)
    try:
        worker.wait_ready()
        assert app.tasks["proj.add"].apply_async((2, 3), queue=queue).get(timeout=20) == 5
        letters = wait_dead_letters(app, queue, len(BAD_HEADERS) + len(BAD_EMBEDS))
        assert settled_soon(app, queue) == 0  # nothing held back by the worker
    finally:
        worker.stop()
    by_id = {letter.message_id: letter for letter in letters}
    assert set(by_id) == {*BAD_HEADERS, *BAD_EMBEDS}
    for name, letter in by_id.items():
        assert letter.reason is DeadLetterReason.MALFORMED, (name, letter.detail)
        assert letter.delivery_count == 1, name
    assert "'retries'" in by_id["retries-text"].detail and "'many'" in by_id["retries-text"].detail
    assert "'timelimit'" in by_id["timelimit-number"].detail
    assert "ISO 8601" in by_id["expires-number"].detail
    assert "'chain'" in by_id["chain-text"].detail
    assert "Unexpected error" not in worker.text


def test_an_error_in_handling_dead_letters_the_message_and_holds_nothing(setup: Setup) -> None:
    module, path, env, queue = setup
    app = module.app
    failing = [module.unsendable_retry.apply_async(queue=queue) for _ in range(4)]
    # One slot and a prefetch of one: the worker may hold one message at a time.
    worker = WorkerProcess(
        path, env, "-P", "threads", "-c", "1", "--prefetch-multiplier", "1", "-Q", queue
    )
    try:
        worker.wait_ready()
        assert app.tasks["proj.add"].apply_async((2, 3), queue=queue).get(timeout=20) == 5
        letters = wait_dead_letters(app, queue, len(failing))
        assert settled_soon(app, queue) == 0
    finally:
        worker.stop()
    assert sorted(letter.message_id for letter in letters) == sorted(r.id for r in failing)
    for letter in letters:
        assert letter.reason is DeadLetterReason.INTERNAL_ERROR
        assert letter.delivery_count == 1
        assert letter.detail.startswith("internal error: ") and "EncodeError" in letter.detail
    assert all(r.state == "FAILURE" for r in failing)  # get() raises instead of waiting
