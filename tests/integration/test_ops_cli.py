"""The ops commands against a real worker process, on Redis and on RabbitMQ: ``call`` then
``result`` round trip a task, ``purge`` empties a queue (asking first unless ``-f``), and
``dead-letters`` lists, shows, replays (keeping the task id) and purges what a queue gave
up on."""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.integration.workers import TEST_ENV, WorkerProcess, broker_url, project_env

TASKS = textwrap.dedent(
    """
    from celeriac.exceptions import Reject
    from proj import PREFIX, app, marks


    @app.task
    def gated(value):
        # Given up on (dead-lettered) until the test opens the gate; then it runs.
        if not marks.get(f"{PREFIX}:gate"):
            raise Reject("the gate is closed", requeue=False)
        return value
    """
)


class Ops:
    """The project, a queue of this test's own, and the ``celeriac`` command line."""

    def __init__(self, module: ModuleType, path: Path, env: dict[str, str]) -> None:
        self.module, self.path, self.env = module, path, env
        self.app = module.app
        self.queue = f"ops-{uuid.uuid4().hex[:8]}"

    def run(self, *args: str, input: str | None = None, check: bool = True) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "celeriac", "-A", "opsproj", *args],
            cwd=self.path, env=self.env, input=input, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        if check:
            assert done.returncode == 0, done.stdout + done.stderr
        return done.stdout + (done.stderr if not check else "")

    def json(self, *args: str) -> Any:
        return json.loads(self.run(*args, "--json"))


@pytest.fixture(params=["redis", "amqp"])
def ops(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Ops]:
    env = project_env(tmp_path, redis_url, redis_prefix, broker_url(request))
    (tmp_path / "opsproj.py").write_text(TASKS)
    for name in TEST_ENV:
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    for name in ("proj", "opsproj"):
        sys.modules.pop(name, None)
    setup = Ops(importlib.import_module("opsproj"), tmp_path, env)
    try:
        yield setup
    finally:
        for queue in (setup.queue, f"{setup.queue}-parked"):
            setup.app.broker.purge(queue)
            setup.app.broker.purge_dead_letters(queue)
        setup.app.close()
        for name in ("proj", "opsproj"):
            sys.modules.pop(name, None)


def wait_dead_letters(app: Any, queue: str, count: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while len(app.broker.dead_letters(queue)) < count:
        assert time.monotonic() < deadline, f"fewer than {count} dead letters in {queue}"
        time.sleep(0.1)  # polled: the dead letters are the observable outcome


def test_call_result_purge_and_dead_letters_round_trip(ops: Ops) -> None:
    parked = f"{ops.queue}-parked"  # no worker consumes it
    worker = WorkerProcess.started(
        ops.path, ops.env, "-P", "prefork", "-c", "2", "-Q", ops.queue, app="opsproj"
    )
    try:
        # call, then result: text and JSON
        task_id = ops.run("call", "proj.add", "-a", "[2, 3]", "--queue", ops.queue).strip()
        assert ops.run("result", task_id).strip() == "5"
        called = ops.json("call", "proj.add", "--args", "[1]", "--kwargs", '{"y": 1}',
                          "--queue", ops.queue)  # fmt: skip
        assert ops.json("result", called["id"]) == {
            "id": called["id"], "state": "SUCCESS", "result": 2, "exception": None,
            "traceback": None,
        }  # fmt: skip
        assert "Error" in ops.run("call", "proj.add", "-a", "{}", check=False)

        # purge: asks first; -f does not
        for _ in range(3):
            ops.run("call", "proj.add", "-a", "[1, 1]", "--queue", parked, "--countdown", "0")
        ops.run("call", "proj.add", "-a", "[1, 1]", "--queue", parked, "--countdown", "600")
        assert "Aborted" in ops.run("purge", "-Q", parked, input="n\n", check=False)
        assert ops.app.broker.queue_length(parked) == 3
        assert ops.json("purge", "-Q", f"{parked},{ops.queue}", "-X", ops.queue, "-f") == {
            "purged": 4, "queues": {parked: 4},
        }  # fmt: skip
        assert ops.run("purge", "-Q", parked, "-f").strip() == "No messages purged from 1 queue."

        # dead letters: list, show, replay with the same id, purge
        gated_id = ops.run("call", "opsproj.gated", "-a", '["opened"]', "--queue", ops.queue)
        gated_id = gated_id.strip()
        wait_dead_letters(ops.app, ops.queue, 1)
        [listed] = ops.json("dead-letters", "list", "-Q", ops.queue, "--reason", "rejected")
        assert (listed["id"], listed["task"], listed["queue"], listed["reason"]) == (
            gated_id, "opsproj.gated", ops.queue, "rejected",
        )  # fmt: skip
        assert ops.json("dead-letters", "list", "-Q", ops.queue, "--reason", "failed") == []
        [shown] = ops.json("dead-letters", "show", gated_id, "-Q", ops.queue)
        assert shown["argsrepr"] == "('opened',)" and "gate is closed" in shown["detail"]
        assert gated_id in ops.run("dead-letters", "list", "-Q", ops.queue)
        ops.module.marks.set(f"{ops.module.PREFIX}:gate", "1")
        assert ops.json("dead-letters", "replay", gated_id, "-Q", ops.queue) == {
            "replayed": 1, "queues": {ops.queue: 1},
        }  # fmt: skip
        assert ops.run("result", gated_id).strip() == "opened"  # the original id, run again
        assert ops.app.broker.dead_letters(ops.queue) == []

        ops.module.marks.delete(f"{ops.module.PREFIX}:gate")
        ops.run("call", "opsproj.gated", "-a", '["x"]', "--queue", ops.queue)
        wait_dead_letters(ops.app, ops.queue, 1)
        missing = ops.run("dead-letters", "replay", "nosuch", "-Q", ops.queue, check=False)
        assert "no dead letter nosuch" in missing
        assert ops.json("dead-letters", "purge", "-Q", ops.queue, "-f") == {
            "purged": 1, "queues": {ops.queue: 1},
        }  # fmt: skip
        assert ops.run("dead-letters", "list", "-Q", ops.queue).strip() == "No dead letters."
    finally:
        worker.stop()
