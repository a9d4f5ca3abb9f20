"""Hostile messages pushed straight into Redis and RabbitMQ, where celeriac's engines keep
queued messages, while valid tasks flow, with a real worker process: the worker never
exits, no valid task is lost, each hostile message is dead-lettered exactly once with the
expected reason, and the worker's memory stays bounded.

A few hundred hostile messages per broker by default; ``CELERIAC_HOSTILE_COUNT=10000
pytest -m long tests/integration/test_hostile_flood.py`` runs the long tier.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import subprocess
import sys
import textwrap
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac.brokers.base import DeadLetterReason, OutboundMessage
from celeriac.messages import task_message
from celeriac.messages.envelope import MAGIC
from tests.integration.test_malformed_messages import unsettled
from tests.integration.workers import WorkerProcess, broker_url, fresh_queues, project_env

LIMIT = 64 * 1024  # the project's task_message_max_size
CI_COUNT = 240
LONG_COUNT = int(os.environ.get("CELERIAC_HOSTILE_COUNT", "10000"))
VALID = 60  # valid calls sent while the hostile messages arrive
R = DeadLetterReason


def frame(meta: Any, body: bytes) -> bytes:
    raw = meta if isinstance(meta, bytes) else json.dumps(meta).encode()
    return MAGIC + struct.pack(">I", len(raw)) + raw + body


def call(task_id: str, task: str = "proj.add", **headers: Any) -> dict[str, Any]:
    return {"h": {"id": task_id, "task": task, **headers}, "p": {}}


BODY = json.dumps([[1, 2], {}, {}]).encode()
Make = Callable[[str], bytes]
# kind -> (payload for a message id, the dead-letter reason it must get)
KINDS: dict[str, tuple[Make, DeadLetterReason]] = {
    "truncated-meta": (lambda i: frame(call(i), BODY)[:20], R.MALFORMED),
    "truncated-body": (lambda i: frame(call(i), BODY[:7]), R.MALFORMED),
    "not-ours": (lambda i: b"\x00\x01garbage " + i.encode(), R.MALFORMED),
    "pickle": (lambda i: frame({**call(i), "ct": "application/x-python-serialize"},
                               b"cos\nsystem\n(S'true'\ntR."), R.CONTENT_DISALLOWED),
    "unknown-type": (lambda i: frame({**call(i), "ct": "text/x-yaml"}, b"- 1"),
                     R.CONTENT_DISALLOWED),
    "huge": (lambda i: frame(call(i), b"[[\"" + b"x" * 4 * LIMIT + b"\"],{},{}]"), R.OVERSIZED),
    "bomb": (lambda i: frame(call(i, compression="application/x-gzip"),
                             zlib.compress(b"[[\"" + b"0" * 50 * LIMIT + b"\"],{},{}]")),
             R.OVERSIZED),
    "deep-body": (lambda i: frame(call(i), b"[" * 5_000 + b"]" * 5_000), R.MALFORMED),
    "deep-meta": (lambda i: frame(b"[" * 5_000, b""), R.MALFORMED),
    "unknown-task": (lambda i: frame(call(i, task="proj.nobody"), BODY), R.UNKNOWN_TASK),
    "bad-eta": (lambda i: frame(call(i, eta="next tuesday"), BODY), R.MALFORMED),
    "bad-expires": (lambda i: frame(call(i, expires=[2024]), BODY), R.MALFORMED),
    "args-not-list": (lambda i: frame(call(i), b'["1,2",{},{}]'), R.MALFORMED),
    "kwargs-not-dict": (lambda i: frame(call(i), b"[[1,2],[3],{}]"), R.MALFORMED),
    "bad-retries": (lambda i: frame(call(i, retries="many"), BODY), R.MALFORMED),
    "headers-not-object": (lambda i: frame({"h": [i, "proj.add"]}, BODY), R.MALFORMED),
    "surrogate": (lambda i: frame(call(i, origin="\ud800"), BODY), R.MALFORMED),
    "non-utf8-meta": (lambda i: frame(b'{"h":{"id":"' + i.encode() + b'","task":"\xff"}}', BODY),
                      R.MALFORMED),
    "non-utf8-body": (lambda i: frame(call(i), b'[["\xff\xfe"],{},{}]'), R.MALFORMED),
}  # fmt: skip
EXTRA = textwrap.dedent(
    f"""
    app.conf.task_message_max_size = {LIMIT}
    app.conf.worker_prefetch_multiplier = 8
    """
)


def hostile(count: int) -> list[tuple[str, bytes, DeadLetterReason]]:
    """``count`` hostile messages, the kinds in turn: (message id, payload, reason)."""
    kinds = list(KINDS.items())
    out = []
    for n in range(count):
        kind, (make, reason) = kinds[n % len(kinds)]
        message_id = f"h-{kind}-{n}"
        out.append((message_id, make(message_id), reason))
    return out


# -- pushing raw payloads where each engine keeps its queued messages --------------------
def push_redis(app: Any, queue: str, batch: list[tuple[str, bytes, DeadLetterReason]]) -> None:
    """XADD to the queue's stream (brokers/redis/keys.py), as other software could."""
    from celeriac.brokers.redis.keys import QueueKeys

    keys = QueueKeys(app.broker.prefix, queue)
    client = app.broker.client
    with client.pipeline(transaction=False) as pipe:
        for n, (message_id, payload, _) in enumerate(batch):
            fields: dict[str, Any] = {"m": message_id, "p": payload}
            if n % 7 == 3:  # (a hand-made priority, as our publisher writes for 0-9)
                fields["y"] = "1"
            if bad_count(message_id):
                fields["d"] = "many"
            pipe.xadd(keys.stream(n % 4), fields)
        pipe.execute()


def bad_count(message_id: str) -> bool:
    """On Redis, one message in 13 also has a delivery count that is not a number: the
    fetch script refuses the entry itself, as malformed."""
    return int(message_id.rsplit("-", 1)[1]) % 13 == 6


def push_amqp(app: Any, queue: str, batch: list[tuple[str, bytes, DeadLetterReason]]) -> None:
    """``basic.publish`` to the queue with aiormq, with headers of any type and value."""
    import aiormq
    from aiormq.abc import AbstractConnection

    async def publish() -> None:
        connection: AbstractConnection = await aiormq.connect(app.conf.broker_url)
        try:
            channel = await connection.channel()
            await channel.confirm_delivery()
            for n, (message_id, payload, _) in enumerate(batch):
                # (RabbitMQ itself refuses NaN and infinity in headers: they never arrive)
                headers: dict[str, Any] = {"x-celeriac-id": message_id}
                if n % 5 == 1:
                    headers["x-celeriac-deliveries"] = -7.5
                elif n % 5 == 2:
                    headers["x-celeriac-deliveries"] = "many"
                elif n % 5 == 3:
                    headers["x-celeriac-deliveries"] = {"nested": [1, "table"]}
                elif n % 5 == 4:
                    headers["x-delivery-count"] = "lots"
                properties = aiormq.spec.Basic.Properties(
                    headers=headers, priority=(n * 37) % 256, content_type="text/hostile",
                    correlation_id=message_id,
                )  # fmt: skip
                await channel.basic_publish(payload, routing_key=queue, properties=properties)
        finally:
            await connection.close()

    asyncio.run(publish())


def wait_drained(app: Any, queue: str, timeout: float) -> None:
    """Until nothing of ``queue`` is ready or held: every message has been settled."""
    deadline = time.monotonic() + timeout
    while app.broker.queue_length(queue) or unsettled(app, queue):
        assert time.monotonic() < deadline, f"{queue} not drained in {timeout} s"
        time.sleep(0.3)  # polled: the queue's counts are the observable outcome


def dead_letters_cli(path: Path, env: dict[str, str], queue: str, count: int) -> list[Any]:
    """What ``celeriac dead-letters list --json`` shows an operator for ``queue``."""
    done = subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "proj", "dead-letters", "list", "-Q", queue,
         "--limit", str(count + 50), "--json"],
        cwd=path, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    entries: list[Any] = json.loads(done.stdout)
    return entries


def worker_memory_kb(pid: int) -> int:
    """The worker's peak resident memory (VmHWM), in kB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


@pytest.fixture(params=["redis", "amqp"])
def project(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Any, Path, dict[str, str], str]]:
    import importlib

    env = project_env(tmp_path, redis_url, redis_prefix, broker_url(request))
    (tmp_path / "proj.py").write_text((tmp_path / "proj.py").read_text() + EXTRA)
    for name in ("CELERIAC_TEST_REDIS", "CELERIAC_TEST_PREFIX", "CELERIAC_TEST_BROKER",
                 "CELERIAC_TEST_NAMESPACE"):  # fmt: skip
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("proj", None)
    proj = importlib.import_module("proj")
    queue = f"hostile-{uuid.uuid4().hex[:8]}"
    fresh_queues(proj.app, queue)
    try:
        yield proj.app, tmp_path, env, queue
    finally:
        if proj.app.conf.broker_url.startswith("amqp"):
            proj.app.broker.purge_dead_letters(queue)
        proj.app.close()
        sys.modules.pop("proj", None)


def flood(project: tuple[Any, Path, dict[str, str], str], count: int) -> None:
    app, path, env, queue = project
    messages = hostile(count)
    push = push_amqp if app.conf.broker_url.startswith("amqp") else push_redis
    if push is push_redis:
        messages = [(i, p, R.MALFORMED if bad_count(i) else r) for i, p, r in messages]
    # The queue exists (with its priority levels) before anything is pushed raw.
    app.broker.publish(OutboundMessage(queue, task_message(
        task_name="proj.add", task_id="first", args=(0, 0)).encode(), "first"))  # fmt: skip
    worker = WorkerProcess.started(path, env, "-P", "threads", "-c", "4", "-Q", queue)
    try:
        baseline = worker_memory_kb(worker.process.pid)
        results = []
        step = max(1, len(messages) // VALID)
        for start in range(0, len(messages), step):  # valid calls between hostile batches
            push(app, queue, messages[start : start + step])
            results.append((start, app.tasks["proj.add"].apply_async((start, 1), queue=queue)))
        for start, result in results:
            assert result.get(timeout=60) == start + 1  # no valid task lost
        wait_drained(app, queue, timeout=max(30, count / 20))
        letters = app.broker.dead_letters(queue, count + 50)  # (read once: it is a scan)
        assert worker.process.poll() is None, worker.text  # the worker never exited
        grown = worker_memory_kb(worker.process.pid) - baseline
    finally:
        worker.stop()
    expected = {message_id: reason for message_id, _, reason in messages}
    seen = Counter(letter.message_id for letter in letters)
    assert seen == Counter(set(expected)), "each hostile message dead-lettered exactly once"
    for letter in letters:
        assert letter.reason is expected[letter.message_id], (letter.message_id, letter.detail)
        assert letter.detail and letter.delivery_count == 1
    assert "Unexpected error" not in worker.text
    by_cli = dead_letters_cli(path, env, queue, count)
    assert Counter(entry["reason"] for entry in by_cli) == Counter(
        letter.reason.value for letter in letters
    )
    assert grown < 150_000, f"the worker grew by {grown} kB"  # bounded, not per message


def test_hostile_messages_are_dead_lettered_once_while_valid_tasks_run(
    project: tuple[Any, Path, dict[str, str], str],
) -> None:
    flood(project, CI_COUNT)


@pytest.mark.long
@pytest.mark.timeout(1800)
def test_ten_thousand_hostile_messages(project: tuple[Any, Path, dict[str, str], str]) -> None:
    flood(project, LONG_COUNT)
