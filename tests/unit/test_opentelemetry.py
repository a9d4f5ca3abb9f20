"""OpenTelemetry spans (``celeriac.contrib.opentelemetry``), stepped through the real message
path with ``drain`` and eagerly: a PRODUCER span per send and a CONSUMER span per run, their
names and attributes, and one trace through chains, groups, chords and retries."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from celeriac import Celery, chain, chord, group
from celeriac.contrib.opentelemetry import instrument, is_instrumented, uninstrument
from celeriac.testing import drain
from tests.conftest import take_messages


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    provider.shutdown()


@pytest.fixture
def traced(app: Celery, provider: TracerProvider) -> Celery:
    instrument(app, tracer_provider=provider)

    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(name="tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.task(name="fail", throws=(KeyError,))
    def fail(kind: str) -> None:
        raise KeyError(kind) if kind == "expected" else ValueError(kind)

    @app.task(name="flaky", bind=True, max_retries=3)
    def flaky(self: Any, times: int) -> int:
        if self.request.retries < times:
            raise self.retry(exc=ConnectionError("no route"), countdown=0)
        return self.request.retries

    @app.task(name="fan_out")
    def fan_out(n: int) -> list[str]:
        return [app.send_task("add", (i, i)).id for i in range(n)]

    return app


def run_all(app: Celery) -> None:
    while drain(app):
        pass


def spans(exporter: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [span for span in exporter.get_finished_spans() if span.name == name]


def only(exporter: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = spans(exporter, name)
    return span


def parent_of(span: ReadableSpan) -> int | None:
    return span.parent.span_id if span.parent is not None else None


def span_id(span: ReadableSpan) -> int:
    assert span.context is not None
    return span.context.span_id


def trace_ids(exporter: InMemorySpanExporter) -> set[int]:
    return {span.context.trace_id for span in exporter.get_finished_spans() if span.context}


def test_a_send_and_its_run_are_producer_and_consumer_of_one_trace(
    traced: Celery, exporter: InMemorySpanExporter
) -> None:
    # Given a traced app, when a call is sent and run
    result = traced.tasks["add"].apply_async((2, 3), countdown=0, priority=3)
    run_all(traced)
    # Then the send is a PRODUCER span with the messaging attributes
    send = only(exporter, "apply_async/add")
    assert send.kind is SpanKind.PRODUCER
    assert send.attributes == {
        "messaging.system": "celeriac",
        "messaging.operation.type": "send",
        "messaging.operation.name": "send",
        "messaging.destination.name": "celery",
        "messaging.message.id": result.id,
        "celery.action": "apply_async",
        "celery.task_name": "add",
        "celery.countdown": 0.0,
        "celery.priority": 3,
    }
    # And the run is a CONSUMER span, the child of its send
    ran = only(exporter, "run/add")
    assert ran.kind is SpanKind.CONSUMER
    assert parent_of(ran) == span_id(send)
    assert ran.context is not None and send.context is not None
    assert ran.context.trace_id == send.context.trace_id
    assert ran.attributes is not None
    assert ran.attributes["messaging.operation.type"] == "process"
    assert ran.attributes["messaging.destination.name"] == "celery"
    assert ran.attributes["celery.action"] == "run"
    assert ran.attributes["celery.task_name"] == "add"
    assert ran.attributes["celery.hostname"] == "drain@localhost"
    assert ran.attributes["celery.state"] == "SUCCESS"
    assert ran.status.status_code is StatusCode.UNSET


def test_the_message_carries_its_send_span_as_w3c_traceparent(
    traced: Celery, exporter: InMemorySpanExporter
) -> None:
    traced.tasks["add"].delay(1, 2)
    (message, _), = take_messages(traced)  # fmt: skip
    context = only(exporter, "apply_async/add").context
    assert context is not None
    version, trace_id, parent_id, flags = message.headers["traceparent"].split("-")
    assert (version, trace_id, parent_id) == (
        "00",
        f"{context.trace_id:032x}",
        f"{context.span_id:016x}",
    )
    assert int(flags, 16) & 1  # sampled


def test_a_chain_is_one_trace_each_step_the_child_of_the_step_before(
    traced: Celery, exporter: InMemorySpanExporter
) -> None:
    add = traced.tasks["add"]
    result = chain(add.s(1, 1), add.s(2), add.s(3)).apply_async()
    run_all(traced)
    assert result.get(timeout=1) == 7
    assert len(trace_ids(exporter)) == 1
    sends = spans(exporter, "apply_async/add")
    runs = spans(exporter, "run/add")
    assert len(sends) == len(runs) == 3
    # send 1 (root) -> run 1 -> send 2 -> run 2 -> send 3 -> run 3
    assert parent_of(sends[0]) is None
    for send, ran in zip(sends, runs, strict=True):
        assert parent_of(ran) == span_id(send)
    for ran, send in zip(runs, sends[1:], strict=False):
        assert parent_of(send) == span_id(ran)


def test_a_chord_sent_from_a_span_is_one_trace_its_body_sent_by_the_last_header_run(
    traced: Celery, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    add, tsum = traced.tasks["add"], traced.tasks["tsum"]
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("request") as outer:
        result = chord(group(add.s(1, 1), add.s(2, 2)), tsum.s()).apply_async()
    run_all(traced)
    assert result.get(timeout=1) == 6
    assert trace_ids(exporter) == {outer.get_span_context().trace_id}
    # The header goes out as one batch, under one span, each member's send its child
    batch = only(exporter, "apply_async/group")
    assert parent_of(batch) == outer.get_span_context().span_id
    assert batch.attributes is not None
    assert batch.attributes["messaging.batch.message_count"] == 2
    header_runs = spans(exporter, "run/add")
    for send in spans(exporter, "apply_async/add"):
        assert parent_of(send) == span_id(batch)
    # The body is sent from the header task that completed the chord, inside its run
    body_send = only(exporter, "apply_async/tsum")
    assert parent_of(body_send) == span_id(header_runs[-1])
    assert parent_of(only(exporter, "run/tsum")) == span_id(body_send)


def test_a_group_sent_outside_any_span_is_still_one_trace(
    traced: Celery, exporter: InMemorySpanExporter
) -> None:
    add = traced.tasks["add"]
    group(add.s(i, i) for i in range(3)).apply_async()
    run_all(traced)
    assert len(trace_ids(exporter)) == 1
    assert parent_of(only(exporter, "apply_async/group")) is None


def test_calls_sent_from_a_task_body_are_children_of_its_run(
    traced: Celery, exporter: InMemorySpanExporter
) -> None:
    traced.tasks["fan_out"].delay(2)
    run_all(traced)
    fan_out = only(exporter, "run/fan_out")
    sends = spans(exporter, "apply_async/add")
    assert [parent_of(send) for send in sends] == [span_id(fan_out)] * 2
    assert len(trace_ids(exporter)) == 1


def test_a_retried_task_stays_in_its_trace_each_attempt_under_the_one_before(
    traced: Celery, exporter: InMemorySpanExporter
) -> None:
    result = traced.tasks["flaky"].delay(2)
    run_all(traced)
    assert result.get(timeout=1) == 2
    assert len(trace_ids(exporter)) == 1
    runs = spans(exporter, "run/flaky")
    sends = spans(exporter, "apply_async/flaky")
    assert len(runs) == len(sends) == 3  # the call and its two retries
    assert [run.attributes["celery.state"] for run in runs if run.attributes] == [
        "RETRY", "RETRY", "SUCCESS",
    ]  # fmt: skip
    assert runs[0].attributes is not None
    assert runs[0].attributes["celery.retry.reason"] == "no route"
    assert runs[1].attributes is not None
    assert runs[1].attributes["celery.retries"] == 1
    # Each retry is sent by the worker after the attempt ended, as that attempt's child
    for attempt, retry in zip(runs, sends[1:], strict=False):
        assert parent_of(retry) == span_id(attempt)
        assert retry.attributes is not None and retry.attributes["celery.retries"] >= 1
    for send, ran in zip(sends, runs, strict=True):
        assert parent_of(ran) == span_id(send)


def test_a_failure_is_recorded_on_the_run_an_expected_one_is_not(
    traced: Celery, exporter: InMemorySpanExporter
) -> None:
    traced.tasks["fail"].delay("unexpected")
    traced.tasks["fail"].delay("expected")
    run_all(traced)
    failed, expected = spans(exporter, "run/fail")
    assert failed.status.status_code is StatusCode.ERROR
    assert failed.status.description == "ValueError: unexpected"
    assert failed.attributes is not None
    assert failed.attributes["error.type"] == "ValueError"
    assert failed.attributes["celery.state"] == "FAILURE"
    (event,) = failed.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert event.attributes["exception.type"] == "ValueError"
    # A task's ``throws`` are expected failures: no error status, as Celery's instrumentation
    assert expected.status.status_code is StatusCode.UNSET
    assert not expected.events


def test_apply_runs_under_the_callers_span(
    traced: Celery, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    with provider.get_tracer("test").start_as_current_span("caller") as caller:
        assert traced.tasks["add"].apply((1, 2)).get() == 3
    ran = only(exporter, "run/add")
    assert parent_of(ran) == caller.get_span_context().span_id
    assert not spans(exporter, "apply_async/add")  # apply() sends nothing


def test_the_trace_context_of_the_caller_and_its_baggage_reach_the_run(
    traced: Celery, provider: TracerProvider, exporter: InMemorySpanExporter
) -> None:
    from opentelemetry import baggage, context

    @traced.task(name="read_baggage")
    def read_baggage() -> Any:
        return baggage.get_baggage("tenant")

    token = context.attach(baggage.set_baggage("tenant", "acme"))
    try:
        result = read_baggage.delay()
    finally:
        context.detach(token)
    run_all(traced)
    assert result.get(timeout=1) == "acme"


def test_nothing_is_added_without_a_recording_provider(app: Celery) -> None:
    # No provider given and none set globally: one check, no span and no header
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    instrument(app)
    assert is_instrumented(app)

    @app.task(name="add")
    def add(x: int, y: int) -> int:
        return x + y

    add.delay(1, 2)
    (message, _), = take_messages(app)  # fmt: skip
    assert "traceparent" not in message.headers


def test_uninstrument_stops_the_spans(traced: Celery, exporter: InMemorySpanExporter) -> None:
    uninstrument(traced)
    assert not is_instrumented(traced) and traced.tracing is None
    traced.tasks["add"].delay(1, 2)
    run_all(traced)
    assert exporter.get_finished_spans() == ()


def test_instrument_refuses_what_is_not_an_app() -> None:
    with pytest.raises(TypeError, match=r"needs a celeriac app \(Celery\(...\)\), not str"):
        instrument("proj")  # the wrong type is the point


def test_celeriac_never_imports_opentelemetry_by_itself() -> None:
    code = (
        "import sys\n"
        "from celeriac import Celery\n"
        "from celeriac.testing import drain\n"
        "app = Celery('t', broker='memory://', backend='cache+memory://')\n"
        "add = app.task(name='add')(lambda x, y: x + y)\n"
        "result = add.delay(1, 2)\n"
        "drain(app)\n"
        "assert result.get(timeout=1) == 3\n"
        "assert not [m for m in sys.modules if m.startswith('opentelemetry')], 'imported'\n"
    )
    subprocess.run([sys.executable, "-W", "error", "-c", code], check=True, timeout=60)


def test_async_bodies_side_by_side_each_send_under_their_own_run(
    traced: Celery, exporter: InMemorySpanExporter
) -> None:
    import asyncio

    from celeriac.request import Request
    from celeriac.trace import trace_task_async

    @traced.task(name="relay")
    async def relay(tag: str) -> str:
        await asyncio.sleep(0.01)  # the other body runs meanwhile
        return traced.send_task("add", (1, 1), headers={"tag": tag}).id

    async def both() -> None:
        await asyncio.gather(
            *(
                trace_task_async(
                    relay, Request(id=tag, task="relay", args=(tag,), called_directly=False)
                )
                for tag in ("a", "b")
            )
        )

    asyncio.run(both())
    runs = {run.attributes["messaging.message.id"]: run for run in spans(exporter, "run/relay")}
    sends = {span_id(send): send for send in spans(exporter, "apply_async/add")}
    messages = [message for message, _ in take_messages(traced)]
    assert len(messages) == len(sends) == 2
    for message in messages:  # each send is the child of the run that made it
        send = sends[int(message.headers["traceparent"].split("-")[2], 16)]
        assert parent_of(send) == span_id(runs[message.headers["tag"]])
    assert len(trace_ids(exporter)) == 2  # each run started a trace of its own


def test_without_opentelemetry_the_import_names_the_extra_to_install() -> None:
    code = (
        "import sys\n"
        "sys.modules['opentelemetry'] = None  # as if it were not installed\n"
        "try:\n"
        "    import celeriac.contrib.opentelemetry\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == (
        "celeriac.contrib.opentelemetry needs OpenTelemetry's API: pip install "
        "'celeriac[otel]' (and opentelemetry-sdk to export spans)"
    )
