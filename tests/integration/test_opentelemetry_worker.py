"""OpenTelemetry against a real prefork worker, on Redis and on RabbitMQ: each child sets
up its own SDK in ``worker_process_init`` and exports its spans to a Redis list this test
reads; the caller exports to memory. A 3-task chain and a chord are each one trace, every
run the child of its send; a retried task's attempts stay in the trace, each under the
attempt before."""

from __future__ import annotations

import json
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from celeriac import chain, chord, group
from celeriac.contrib.opentelemetry import instrument
from celeriac.signals import worker_process_init
from tests.integration.workers import (
    TEST_ENV,
    WorkerProcess,
    broker_url,
    fresh_queues,
    project_env,
)

PROJECT = textwrap.dedent(
    """
    import json, os

    import redis
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter
    from opentelemetry.sdk.trace.export import SpanExportResult

    from celeriac import Celery
    from celeriac.contrib.opentelemetry import instrument
    from celeriac.signals import worker_process_init

    PREFIX = os.environ["CELERIAC_TEST_PREFIX"]
    URL = os.environ["CELERIAC_TEST_REDIS"]
    BROKER = os.environ.get("CELERIAC_TEST_BROKER") or URL  # spans and results: in Redis
    if BROKER.startswith("amqp"):
        options = {"namespace": os.environ["CELERIAC_TEST_NAMESPACE"]}
    else:
        options = {"key_prefix": PREFIX}
    app = Celery(
        "otelproj", broker=BROKER, backend=URL, broker_transport_options=options,
        result_backend_transport_options={"key_prefix": PREFIX},
    )
    instrument(app)  # here, so the worker and each of its children trace


    class RedisExporter(SpanExporter):
        def __init__(self):
            self.client = redis.Redis.from_url(URL)

        def export(self, spans):
            for span in spans:
                parent = span.parent.span_id if span.parent else None
                self.client.rpush(f"{PREFIX}:spans", json.dumps({
                    "name": span.name, "kind": span.kind.name, "pid": os.getpid(),
                    "trace_id": span.context.trace_id, "span_id": span.context.span_id,
                    "parent_id": parent, "attributes": dict(span.attributes),
                    "status": span.status.status_code.name,
                }))
            return SpanExportResult.SUCCESS


    @worker_process_init.connect
    def start_tracing(**kwargs):
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(RedisExporter()))
        trace.set_tracer_provider(provider)


    @app.task
    def add(x, y):
        return x + y


    @app.task
    def tsum(values):
        return sum(values)


    @app.task(bind=True, max_retries=3)
    def flaky(self):
        if self.request.retries < 1:
            raise self.retry(exc=ConnectionError("no route"), countdown=0)
        return os.getpid()
    """
)


class Spans:
    """The spans the worker's children export, read from their Redis list as they come."""

    def __init__(self, client: redis.Redis, key: str) -> None:
        self.client, self.key = client, key

    def take(self, count: int, timeout: float = 30) -> list[dict[str, Any]]:
        taken = []
        for _ in range(count):
            item = self.client.blpop([self.key], timeout=timeout)
            assert item is not None, f"only {len(taken)} of {count} spans arrived: {taken}"
            taken.append(json.loads(item[1]))
        return taken


@pytest.fixture(params=["redis", "amqp"])
def otelproj(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Any, InMemorySpanExporter, Spans]]:
    env = project_env(tmp_path, redis_url, redis_prefix, broker_url(request))
    (tmp_path / "otelproj.py").write_text(PROJECT)
    for name in TEST_ENV:
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("otelproj", None)
    import otelproj

    fresh_queues(otelproj.app)
    exporter, provider = InMemorySpanExporter(), TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrument(otelproj.app, tracer_provider=provider)  # the caller's spans, in memory
    client = redis.Redis.from_url(redis_url)
    worker = WorkerProcess.started(tmp_path, env, "-P", "prefork", "-c", "2", app="otelproj")
    try:
        yield otelproj, exporter, Spans(client, f"{redis_prefix}:spans")
    finally:
        worker.stop()
        # Its receiver would set the process-wide tracer provider in this process the
        # next time a test starts a worker here (solo pools send worker_process_init).
        worker_process_init.disconnect(otelproj.start_tracing)
        otelproj.app.close()
        provider.shutdown()
        client.close()
        sys.modules.pop("otelproj", None)


def sent(exporter: InMemorySpanExporter) -> ReadableSpan:
    (span,) = exporter.get_finished_spans()
    return span


def by_name(spans: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [span for span in spans if span["name"] == name]


def test_a_chain_and_a_chord_under_prefork_are_each_one_trace(
    otelproj: tuple[Any, InMemorySpanExporter, Spans],
) -> None:
    proj, exporter, spans = otelproj
    # Given a 3-task chain sent from this process, when the prefork children run it
    result = chain(proj.add.s(1, 1), proj.add.s(2), proj.add.s(3)).apply_async()
    assert result.get(timeout=30) == 7
    first = sent(exporter)
    assert first.context is not None and first.parent is None
    # Then the worker's spans (3 runs, 2 sends of the next steps) are all in its trace
    worker_spans = spans.take(5)
    assert {span["trace_id"] for span in worker_spans} == {first.context.trace_id}
    runs, sends = (
        by_name(worker_spans, "run/otelproj.add"),
        by_name(worker_spans, "apply_async/otelproj.add"),
    )
    assert len(runs) == 3 and len(sends) == 2
    assert {span["kind"] for span in runs} == {"CONSUMER"}
    assert {span["kind"] for span in sends} == {"PRODUCER"}
    # send 1 (here) -> run 1 -> send 2 -> run 2 -> send 3 -> run 3, across processes
    ids = {span["span_id"]: span for span in worker_spans}
    step = next(span for span in runs if span["parent_id"] == first.context.span_id)
    for _ in range(2):
        assert step["attributes"]["messaging.destination.name"] == "celery"
        (send,) = (span for span in sends if span["parent_id"] == step["span_id"])
        step = next(span for span in runs if span["parent_id"] == send["span_id"])
    assert step["parent_id"] in ids and ids[step["parent_id"]]["name"].startswith("apply_async")

    # And a chord: its header batch here, its body sent by the last header run
    exporter.clear()
    total = chord(group(proj.add.s(1, 1), proj.add.s(2, 2)), proj.tsum.s()).apply_async()
    assert total.get(timeout=30) == 6
    here = exporter.get_finished_spans()
    (trace_id,) = {span.context.trace_id for span in here if span.context}
    chord_spans = spans.take(4)  # 2 header runs, the body's send and its run
    assert {span["trace_id"] for span in chord_spans} == {trace_id}
    (body_run,) = by_name(chord_spans, "run/otelproj.tsum")
    (body_send,) = by_name(chord_spans, "apply_async/otelproj.tsum")
    assert body_run["parent_id"] == body_send["span_id"]
    assert body_send["parent_id"] in {
        span["span_id"] for span in by_name(chord_spans, "run/otelproj.add")
    }


def test_a_retried_task_under_prefork_stays_in_its_trace(
    otelproj: tuple[Any, InMemorySpanExporter, Spans],
) -> None:
    proj, exporter, spans = otelproj
    result = proj.flaky.delay()
    assert isinstance(result.get(timeout=30), int)
    call = sent(exporter)
    assert call.context is not None
    first, second = spans.take(2)  # the worker's main process sends the retry untraced
    assert first["name"] == second["name"] == "run/otelproj.flaky"
    assert first["trace_id"] == second["trace_id"] == call.context.trace_id
    assert first["parent_id"] == call.context.span_id
    assert first["attributes"]["celery.state"] == "RETRY"
    assert first["attributes"]["celery.retry.reason"] == "no route"
    # The retry carries the attempt's context: the next attempt is its child
    assert second["parent_id"] == first["span_id"]
    assert second["attributes"]["celery.retries"] == 1
    assert second["attributes"]["celery.state"] == "SUCCESS"
    assert second["status"] == "UNSET"
