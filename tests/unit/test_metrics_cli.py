"""The metrics command line on the in-process broker: a port in use stops the worker before
it starts (naming the option and the setting), and ``celeriac exporter``'s endpoint serves
the queues' depths and dead letters from the broker and the workers from their events."""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from celeriac import Celery
from celeriac.brokers.base import OutboundMessage
from celeriac.metrics.exporter import serve_exporter
from celeriac.testing.worker import start_worker
from celeriac.worker.exitcodes import EX_USAGE


@pytest.fixture
def app() -> Iterator[Celery]:
    app = Celery("metricscli", broker="memory://", backend="cache+memory://",
                 set_as_current=False)  # fmt: skip

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    yield app
    app.close()


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def samples(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.parametrize("how", ["option", "setting"])
def test_a_metrics_port_in_use_stops_the_worker_before_it_starts(
    app: Celery, busy_port: int, how: str
) -> None:
    argv = ["worker", "-P", "threads"]
    if how == "option":
        argv += ["--metrics-port", str(busy_port)]
    else:
        app.conf.worker_metrics_port = busy_port
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        assert app.start(argv) == EX_USAGE
    assert f"cannot serve metrics on 0.0.0.0:{busy_port}" in err.getvalue()
    assert "--metrics-port / worker_metrics_port" in err.getvalue()


def test_the_exporter_serves_the_broker_and_the_workers(app: Celery) -> None:
    app.broker.publish(OutboundMessage("parked", b"not a task message", "m1"))
    server = serve_exporter(app, 0, "127.0.0.1", ["celery", "parked"])
    try:
        assert samples(server.port)[
            ("celeriac_queue_depth", (("queue", "parked"), ("state", "ready")))
        ] == 1  # fmt: skip
        with start_worker(app, queues=["celery", "parked"], concurrency=3) as worker:
            deadline = time.monotonic() + 10
            while True:  # polled: the next heartbeat, then the refusal, reach the endpoint
                seen = samples(server.port)
                up = seen.get(("celeriac_worker_up", (("worker", worker.hostname),)))
                dead = seen.get(
                    ("celeriac_dead_letters", (("queue", "parked"), ("reason", "malformed")))
                )
                if up == 1 and dead == 1:
                    break
                assert time.monotonic() < deadline, seen
                time.sleep(0.1)
            assert seen[("celeriac_worker_slots", (("state", "idle"),))] == 3
    finally:
        server.close()
    assert not [t for t in threading.enumerate() if t.name == "celeriac-events-feed"]
