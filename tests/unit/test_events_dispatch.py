"""Events on the in-process broker: a dispatcher's events reach a receiver with Celery's
common fields, groups switch task events on and off, custom fields must travel as JSON,
the buffered face sends in batches, and the dump prints one line per event."""

from __future__ import annotations

import asyncio
import io

import pytest

from celeriac import Celery
from celeriac.events.dumper import Dumper, humanize_type


def test_a_sent_event_reaches_a_receiver_with_the_common_fields(app: Celery) -> None:
    received: list[dict] = []
    receiver = app.events.Receiver(app, handlers={"*": received.append}, history=True)
    dispatcher = app.events.Dispatcher(hostname="me@here")
    sent = dispatcher.send("task-progress", uuid="t1", done=3)
    assert sent is not None
    events = list(receiver.itercapture(limit=1, timeout=2))
    assert events == received
    event = received[0]
    assert event["type"] == "task-progress" and event["uuid"] == "t1" and event["done"] == 3
    assert event["hostname"] == "me@here" and isinstance(event["pid"], int)
    assert {"timestamp", "utcoffset", "clock", "local_received"} <= set(event)


def test_handlers_by_type_and_the_catch_all(app: Celery) -> None:
    typed: list[str] = []
    rest: list[str] = []
    handlers = {"worker-heartbeat": lambda e: typed.append(e["type"]),
                "*": lambda e: rest.append(e["type"])}  # fmt: skip
    receiver = app.events.Receiver(app, handlers=handlers, history=True)
    dispatcher = app.events.Dispatcher()
    dispatcher.send("worker-heartbeat")
    dispatcher.send("task-received", uuid="t")
    receiver.capture(limit=2, timeout=2)
    assert typed == ["worker-heartbeat"] and rest == ["task-received"]


def test_capture_times_out_without_events(app: Celery) -> None:
    receiver = app.events.Receiver(app)
    with pytest.raises(TimeoutError):
        receiver.capture(timeout=0.2, wakeup=False)


def test_groups_switch_task_events_on_and_off(app: Celery) -> None:
    dispatcher = app.events.Dispatcher(groups=["worker"])
    assert dispatcher.send("task-received", uuid="t") is None  # not in the groups
    assert dispatcher.send("worker-heartbeat") is not None
    assert dispatcher.enable_task_events() and not dispatcher.enable_task_events()
    assert dispatcher.sends("task-received")
    assert dispatcher.disable_task_events() and not dispatcher.disable_task_events()
    assert not dispatcher.sends("task-received") and dispatcher.sends("worker-online")
    dispatcher.disable()
    assert dispatcher.send("worker-heartbeat") is None


def test_a_custom_field_that_is_not_json_is_refused(app: Celery) -> None:
    dispatcher = app.events.Dispatcher()
    with pytest.raises(TypeError, match="field 'when'"):
        dispatcher.send("task-progress", uuid="t", when=object())


def test_celery_queue_options_are_refused(app: Celery) -> None:
    with pytest.raises(TypeError, match="queue_ttl"):
        app.events.Receiver(app, queue_ttl=5)
    with pytest.raises(TypeError, match=r"app\.connection"):
        app.events.Dispatcher(connection=object())


def test_the_buffered_face_sends_what_queued_in_one_payload(app: Celery) -> None:
    async def scenario() -> list[bytes]:
        subscription = await app.broker.subscribe(app.events.topic)
        dispatcher = app.events.Dispatcher(hostname="w@h")
        dispatcher.start_flushing()
        for index in range(5):  # posted before the flusher runs: one payload
            dispatcher.post("task-started", {"uuid": str(index)})
        await dispatcher.close()
        payloads = []
        while (payload := await subscription.get(0.2)) is not None:
            payloads.append(payload)
        await subscription.close()
        return payloads

    payloads = asyncio.run(scenario())
    assert len(payloads) == 1
    from celeriac.events.event import decode

    events = decode(payloads[0])
    assert [event["uuid"] for event in events] == ["0", "1", "2", "3", "4"]
    clocks = [event["clock"] for event in events]
    assert clocks == sorted(clocks)


def test_the_dump_prints_one_line_per_event() -> None:
    out = io.StringIO()
    dumper = Dumper(out)
    dumper.on_event({"type": "task-received", "uuid": "t1", "name": "proj.add",
                     "args": "(2, 3)", "kwargs": "{}", "hostname": "w@h",
                     "timestamp": 0.0, "retries": 0})  # fmt: skip
    dumper.on_event({"type": "task-succeeded", "uuid": "t1", "hostname": "w@h",
                     "timestamp": 1.0, "result": "5"})  # fmt: skip
    dumper.on_event({"type": "worker-heartbeat", "hostname": "w@h", "timestamp": 2.0,
                     "active": 0})  # fmt: skip
    assert out.getvalue().splitlines() == [
        "w@h [1970-01-01 00:00:00+00:00] task received: proj.add(t1) args=(2, 3) kwargs={} "
        "retries=0",
        "w@h [1970-01-01 00:00:01+00:00] task succeeded: proj.add(t1) args=(2, 3) kwargs={} "
        "result=5",
        "w@h [1970-01-01 00:00:02+00:00] heartbeat: active=0",
    ]
    assert humanize_type("worker-online") == "started"
    assert humanize_type("worker-offline") == "shutdown"


def test_msgpack_events_are_read_as_well(app: Celery) -> None:
    pytest.importorskip("msgpack")
    app.conf.event_serializer = "msgpack"
    received: list[dict] = []
    receiver = app.events.Receiver(app, handlers={"*": received.append}, history=True)
    app.events.Dispatcher(hostname="w@h").send("task-progress", uuid="t1", done=1)
    receiver.capture(limit=1, timeout=2)
    assert received[0]["done"] == 1 and received[0]["hostname"] == "w@h"
    app.conf.event_serializer = "yaml"
    with pytest.raises(ValueError, match="'json' or 'msgpack'"):
        app.events.Dispatcher()


def test_heartbeat_sent_is_sent_with_each_worker_event(app: Celery) -> None:
    from celeriac import signals
    from celeriac.events.worker_events import WorkerEvents

    senders: list[object] = []

    def on_heartbeat(sender: object, **_: object) -> None:
        senders.append(sender)

    signals.heartbeat_sent.connect(on_heartbeat)
    try:
        events = WorkerEvents(app.events.Dispatcher(), active=lambda: 0, pool_size=lambda: 1)
        events.beat("worker-online")
        events.beat()
    finally:
        signals.heartbeat_sent.disconnect(on_heartbeat)
    assert senders == [events, events]


def test_receive_in_one_call(app: Celery) -> None:
    app.events.Dispatcher().send("task-progress", uuid="t1")
    seen: list[str] = []
    handled = app.events.receive({"*": lambda e: seen.append(e["type"])}, history=True,
                                 timeout=0.3)  # fmt: skip
    assert handled == 1 and seen == ["task-progress"]


def test_an_old_kept_heartbeat_does_not_make_a_worker_alive(app: Celery) -> None:
    import time

    state = app.events.State()
    dispatcher = app.events.Dispatcher(hostname="gone@host")
    dispatcher.send("worker-heartbeat", freq=2.0, timestamp=time.time() - 60)
    app.events.Dispatcher(hostname="here@host").send("worker-heartbeat", freq=2.0)
    app.events.receive({"*": state.event}, history=True, limit=2)
    assert not state.workers["gone@host"].alive  # its send time stands for its arrival
    assert state.workers["here@host"].alive
