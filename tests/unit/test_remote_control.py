"""Remote control and inspect on the in-process broker, with a worker in a thread: the
message format, custom commands, addressing, errors, pool resizing on the threads pool,
queues, events, and the ``inspect``/``control``/``status`` commands."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from click.testing import CliRunner

from celeriac import Celery
from celeriac.cli import cli
from celeriac.control.protocol import decode_command, decode_reply, encode_command, encode_reply
from celeriac.control.registry import COMMANDS
from celeriac.testing import start_worker
from celeriac.worker.control import control_command, inspect_command, ok
from celeriac.worker.worker import Worker

NODE = "one@unit"
TO: dict[str, Any] = {"destination": [NODE], "timeout": 10.0}  # returns once NODE replied


def make_app() -> Celery:
    return Celery("ctl", broker="memory://", backend="cache+memory://")


@pytest.fixture
def custom_commands() -> Iterator[None]:
    """Commands a project registers, removed again after the test."""

    @control_command(args=[("word", str)], signature="<word>")
    def shout(state: Any, word: str = "") -> dict[str, Any]:
        """Shout a word back."""
        return ok(f"{word.upper()} from {state.hostname}")

    @inspect_command()
    def queue_count(state: Any) -> int:
        return len(state.consumer.queues)

    @control_command()
    def explode(state: Any) -> None:
        raise RuntimeError("boom")

    yield
    for name in ("shout", "queue_count", "explode"):
        COMMANDS.pop(name, None)


def test_the_message_format_round_trips_and_ignores_garbage() -> None:
    command = decode_command(encode_command("ping", {"a": {1, 2}}, ["x@y"], "t1"))
    assert command is not None and command.method == "ping" and command.ticket == "t1"
    assert command.arguments == {"a": [1, 2]} and command.is_for("x@y")
    assert not command.is_for("z@y")
    assert decode_command(b"not json") is None and decode_command(b'{"method": 1}') is None
    assert decode_reply(encode_reply("t1", "x@y", {"ok": "pong"}), "t1") == ("x@y", {"ok": "pong"})
    assert decode_reply(encode_reply("t1", "x@y", 1), "other") is None


def test_custom_commands_errors_and_addressing(custom_commands: None) -> None:
    app = make_app()
    with start_worker(app, hostname=NODE):
        control = app.control
        assert control.broadcast("shout", {"word": "hi"}, reply=True, **TO) == [
            {NODE: {"ok": f"HI from {NODE}"}}
        ]
        assert control.broadcast("queue_count", reply=True, **TO) == [{NODE: 1}]
        assert control.broadcast("explode", reply=True, **TO) == [
            {NODE: {"error": "RuntimeError('boom')"}}
        ]
        assert control.broadcast("no_such_command", reply=True, **TO) == [
            {NODE: {"error": "unknown command 'no_such_command'"}}
        ]
        assert control.ping(destination=["someone@else"], timeout=0.2) == []
        assert control.inspect(destination=["someone@else"], timeout=0.2).ping() is None
        # Without reply the command is sent and nothing is awaited.
        assert control.broadcast("ping") is None
        with pytest.raises(ValueError, match=r"destination=\['one@unit'\]"):
            control.ping(destination=NODE)  # the wrong type is the point


def test_inspect_lists_running_and_waiting_tasks() -> None:
    app = make_app()
    gate, started = threading.Event(), threading.Event()

    @app.task
    def held(n: int) -> int:
        started.set()
        gate.wait(10)
        return n

    with start_worker(app, hostname=NODE, pool="threads", concurrency=1, prefetch_multiplier=2):
        first, second = held.delay(1), held.delay(2)
        assert started.wait(5)
        inspect = app.control.inspect(**TO)
        active, reserved = inspect.active(), inspect.reserved()
        assert active is not None and reserved is not None
        assert [(i["id"], i["args"], i["acknowledged"]) for i in active[NODE]] == [
            (first.id, [1], False)
        ]
        assert [i["id"] for i in reserved[NODE]] == [second.id]
        assert inspect.active(safe=True)[NODE][0]["args"] == "[1]"
        assert inspect.query_task(first.id, second.id) == {
            NODE: {
                first.id: ["active", active[NODE][0]],
                second.id: ["reserved", reserved[NODE][0]],
            }
        }
        gate.set()
        assert [first.get(timeout=5), second.get(timeout=5)] == [1, 2]
        assert inspect.stats()[NODE]["total"] == {held.name: 2}


def test_pool_grow_runs_more_tasks_at_once_on_the_threads_pool() -> None:
    app = make_app()
    running, gate = threading.Semaphore(0), threading.Event()

    @app.task
    def held() -> None:
        running.release()
        gate.wait(10)

    with start_worker(app, hostname=NODE, pool="threads", concurrency=1) as worker:
        assert app.control.pool_grow(2, reply=True, **TO) == [{NODE: {"ok": "pool will grow"}}]
        assert worker.pool is not None and worker.pool.concurrency == 3
        results = [held.delay() for _ in range(3)]
        for _ in range(3):  # all three run together: the pool really has three threads
            assert running.acquire(timeout=5)
        gate.set()
        for result in results:
            result.get(timeout=5)
        app.control.pool_shrink(2, reply=True, **TO)
        stats = app.control.inspect(**TO).stats()
        assert stats is not None and stats[NODE]["pool"]["max-concurrency"] == 1


def test_the_solo_pool_refuses_to_resize() -> None:
    app = make_app()
    with start_worker(app, hostname=NODE, pool="solo"):
        [reply] = app.control.pool_grow(1, reply=True, **TO)
        assert "the solo pool runs one task at a time" in reply[NODE]["error"]


def test_queues_can_be_cancelled_and_added_back() -> None:
    app = make_app()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app, hostname=NODE):
        assert app.control.cancel_consumer("celery", reply=True, **TO) == [
            {NODE: {"ok": "no longer consuming from celery"}}
        ]
        assert app.control.inspect(**TO).active_queues() == {NODE: []}
        result = add.delay(1, 2)
        refused = app.control.add_consumer("celery", exchange="other", reply=True, **TO)
        assert "drop exchange='other'" in refused[0][NODE]["error"]
        assert app.control.add_consumer("celery", reply=True, **TO) == [
            {NODE: {"ok": "add consumer celery"}}
        ]
        assert result.get(timeout=5) == 3


def test_events_commands_and_time_limit() -> None:
    app = make_app()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app, hostname=NODE) as worker:
        control = app.control
        assert control.enable_events(reply=True, **TO) == [{NODE: {"ok": "task events enabled"}}]
        assert control.enable_events(reply=True, **TO) == [
            {NODE: {"ok": "task events already enabled"}}
        ]
        assert worker.events is not None and worker.events.sends("task-received")
        assert control.disable_events(reply=True, **TO) == [{NODE: {"ok": "task events disabled"}}]
        assert control.heartbeat(reply=True, **TO) == [{NODE: None}]
        assert control.time_limit(add.name, soft=5, hard=10, reply=True, **TO) == [
            {NODE: {"ok": "time limits set successfully"}}
        ]
        assert (add.soft_time_limit, add.time_limit) == (5, 10)  # one app: the worker's task
        assert control.time_limit("nope", reply=True, **TO) == [{NODE: {"error": "unknown task"}}]


def run(app: Celery, *args: str) -> Any:
    return CliRunner().invoke(cli, list(args), obj=app, prog_name="celeriac")


def test_the_command_line() -> None:
    app = make_app()

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    with start_worker(app, hostname=NODE):
        status = run(app, "status", "-d", NODE, "-t", "10")
        assert status.exit_code == 0, status.output
        assert status.output == f"->  {NODE}: OK\n\n1 node online.\n"
        limited = run(app, "control", "rate_limit", add.name, "10/m", "-d", NODE, "-t", "10")
        assert limited.output.startswith(f"->  {NODE}: OK\n        new rate limit set")
        registered = run(app, "inspect", "registered", "--json", "-d", NODE, "-t", "10")
        assert registered.exit_code == 0 and f"{add.name} [rate_limit=10/m]" in registered.output
        unknown = run(app, "inspect", "nope")
        assert unknown.exit_code == 64 and "Available inspect commands: active" in unknown.output
        listing = run(app, "control", "--list")
        assert "rate_limit <task_name> <rate_limit" in listing.output
    none = run(app, "status", "-t", "0.2")
    assert none.exit_code == 69 and "No nodes replied within time constraint" in none.output


def test_revoke_keeps_its_answer_and_may_ask_for_replies() -> None:
    app = make_app()
    assert app.control.revoke("some-id") is None
    with start_worker(app, hostname=NODE) as worker:
        [reply] = app.control.revoke(["a", "b"], reply=True, **TO)
        assert reply[NODE]["ok"] in (
            "tasks {'a', 'b'} flagged as revoked",
            "tasks {'b', 'a'} flagged as revoked",
        )
        assert worker.revocations is not None and "a" in worker.revocations
        revoked = app.control.inspect(**TO).revoked()
        assert revoked is not None and {"a", "b", "some-id"} <= set(revoked[NODE])


def test_worker_has_a_mailbox_only_while_running() -> None:
    worker = Worker(make_app(), install_signal_handlers=False)
    assert worker.mailbox is None and worker.control is None


def test_celery_options_celeriac_does_not_offer_are_refused() -> None:
    app = make_app()
    for option in ("connection", "pattern", "matcher"):
        with pytest.raises(TypeError, match=f"does not take {option}"):
            app.control.broadcast("ping", reply=True, **{option: object()})
        with pytest.raises(TypeError, match=f"does not take {option}"):
            app.control.revoke("some-id", **{option: object()})


def test_a_worker_with_remote_control_off_does_not_answer() -> None:
    app = make_app()
    app.conf.worker_enable_remote_control = False
    with start_worker(app, hostname=NODE) as worker:
        assert worker.mailbox is None
        assert app.control.ping(timeout=0.3) == []


def test_a_revoke_sent_as_a_command_is_recorded_for_every_worker() -> None:
    app = make_app()
    with start_worker(app, hostname=NODE) as worker:
        assert app.control.broadcast("revoke", {"task_id": ["x1"]}, reply=True, **TO) == [
            {NODE: {"ok": "tasks {'x1'} flagged as revoked"}}
        ]
        assert "x1" in app.broker.revoked_ids()  # a worker started later skips it too
        assert worker.revocations is not None and "x1" in worker.revocations
        [reply] = app.control.terminate("x2", signal=9, reply=True, **TO)
        assert reply == {NODE: {"ok": "terminate: tasks unknown"}}


def test_inspect_clock_reads_the_workers_logical_clock() -> None:
    app = make_app()
    with start_worker(app, hostname=NODE):
        clock = app.control.inspect(**TO).clock()
        assert clock is not None and clock[NODE]["clock"] == app.events.clock.value >= 1


def test_inspect_hello_answers_another_node_with_revoked_ids_and_the_clock() -> None:
    app = make_app()
    with start_worker(app, hostname=NODE):
        app.control.revoke("gone-1", reply=True, **TO)
        before = app.events.clock.value
        hello = app.control.inspect(**TO).hello("other@unit", revoked=["from-other"])
        assert hello is not None and hello[NODE]["revoked"] == ["gone-1"]
        assert hello[NODE]["clock"] > before  # moved on, as Celery's
        assert app.control.inspect(**TO).hello(NODE) == {NODE: None}  # not to itself
