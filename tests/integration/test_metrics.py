"""Prometheus metrics against real worker processes, on Redis and on RabbitMQ: after N tasks
on the prefork pool, the worker's ``/metrics`` counts N (its children's tasks are counted in
the parent), with runtimes, queue waits, slots and queue depths; ``celeriac exporter``
serves the queues' depths and dead letters."""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.conftest import free_port
from tests.integration.workers import TEST_ENV, WorkerProcess, broker_url, project_env


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics``: (name, sorted labels) -> value."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """The sample's value; a sample that is not there fails the test (so a check for 0
    cannot pass on a metric that was never exported)."""
    key = (name, tuple(sorted(labels.items())))
    assert key in samples, f"no sample {name}{labels} in the scrape: {sorted(samples)}"
    return samples[key]


def value_or_zero(samples: dict[Any, float], name: str, **labels: str) -> float:
    """For a wait: a counter not exported yet counts as 0."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def wait_for(check: Any, samples: dict[Any, float], timeout: float = 40) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"the metrics did not get there: {samples}"
        time.sleep(0.1)  # polled: a scrape is the observable outcome


@pytest.fixture(params=["redis", "amqp"])
def project(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[tuple[Path, dict[str, str], Any]]:
    env = project_env(tmp_path, redis_url, redis_prefix, broker_url(request))
    for name in TEST_ENV:
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("proj", None)
    import proj

    try:
        yield tmp_path, env, proj
    finally:
        proj.app.close()
        sys.modules.pop("proj", None)


def test_a_prefork_worker_counts_its_childrens_tasks(
    project: tuple[Path, dict[str, str], Any],
) -> None:
    path, env, proj = project
    queue, port, tasks = f"metrics-{uuid.uuid4().hex[:8]}", free_port(), 7
    worker = WorkerProcess.started(
        path, env, "-P", "prefork", "-c", "2", "-Q", queue, "--metrics-port", str(port)
    )
    try:
        results = [proj.add.apply_async((i, i), queue=queue) for i in range(tasks)]
        failed = proj.app.send_task("proj.poison_pill", queue=queue)  # not registered
        assert [result.get(timeout=30) for result in results] == [2 * i for i in range(tasks)]
        proj.add.apply_async((1, 1), queue=queue, countdown=600)  # waits, delayed
        proj.app.broker.flush()  # held by the broker before the scrape counts it
        samples: dict[Any, float] = {}

        def counted() -> bool:
            samples.update(scrape(port))
            done = value_or_zero(samples, "celeriac_tasks_total", task="proj.add", queue=queue,
                                 state="success")  # fmt: skip
            dead = value_or_zero(
                samples, "celeriac_dead_letters", queue=queue, reason="unknown_task"
            )
            return done == tasks and dead == 1

        wait_for(counted, samples)
        assert failed.id
        assert value(samples, "celeriac_task_runtime_seconds_count", task="proj.add",
                     queue=queue) == tasks  # fmt: skip
        assert value(samples, "celeriac_task_queue_wait_seconds_count", task="proj.add",
                     queue=queue) == tasks  # fmt: skip
        hostname = next(labels[0][1] for name, labels in samples if name == "celeriac_worker_up")
        assert value(samples, "celeriac_worker_up", worker=hostname) == 1
        assert value(samples, "celeriac_worker_slots", state="idle") == 2
        assert value(samples, "celeriac_worker_slots", state="busy") == 0
        # RabbitMQ counts every queue's delayed messages together: one sample for them all
        shared = not proj.app.broker.delays_counted_per_queue
        assert value(samples, "celeriac_queue_depth", queue="*" if shared else queue,
                     state="delayed") == 1  # fmt: skip
        assert value(samples, "celeriac_queue_depth", queue=queue, state="ready") == 0
    finally:
        worker.stop()
        proj.app.broker.purge(queue)
        proj.app.broker.purge_dead_letters(queue)


def test_the_exporter_serves_queues_from_the_broker_and_tasks_from_events(
    project: tuple[Path, dict[str, str], Any],
) -> None:
    path, env, proj = project
    queue, port, tasks = f"exported-{uuid.uuid4().hex[:8]}", free_port(), 5
    parked = f"{queue}-parked"  # no worker consumes it
    proj.app.conf.task_send_sent_event = True  # the events then name each task's queue
    for i in range(3):
        proj.add.apply_async((i, i), queue=parked)
    exporter = subprocess.Popen(
        [sys.executable, "-m", "celeriac", "-A", "proj", "exporter", "--port", str(port),
         "-Q", f"{queue},{parked}"],
        cwd=path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    worker = None
    try:
        assert exporter.stdout is not None
        assert "serving" in exporter.stdout.readline()
        samples = scrape(port)
        assert value(samples, "celeriac_queue_depth", queue=parked, state="ready") == 3
        shared = not proj.app.broker.delays_counted_per_queue
        assert value(samples, "celeriac_queue_depth", queue="*" if shared else parked,
                     state="delayed") == 0  # fmt: skip
        worker = WorkerProcess.started(
            path, env, "-P", "prefork", "-c", "2", "-Q", queue, "-E", "-n", f"{queue}@here"
        )

        def worker_seen() -> bool:  # the exporter follows the events now
            samples.update(scrape(port))
            return value_or_zero(samples, "celeriac_worker_up", worker=f"{queue}@here") == 1

        wait_for(worker_seen, samples)
        results = [proj.add.apply_async((i, 1), queue=queue) for i in range(tasks)]
        proj.app.send_task("proj.nothing_by_that_name", queue=queue)  # dead-lettered
        assert [result.get(timeout=30) for result in results] == [i + 1 for i in range(tasks)]

        def counted() -> bool:
            samples.update(scrape(port))
            done = value_or_zero(samples, "celeriac_tasks_total", task="proj.add", queue=queue,
                                 state="success")  # fmt: skip
            dead = value_or_zero(
                samples, "celeriac_dead_letters", queue=queue, reason="unknown_task"
            )
            return done == tasks and dead == 1

        wait_for(counted, samples)
        assert value(samples, "celeriac_task_runtime_seconds_count", task="proj.add",
                     queue=queue) == tasks  # fmt: skip
        assert value(samples, "celeriac_worker_up", worker=f"{queue}@here") == 1
        assert value(samples, "celeriac_worker_slots", state="idle") >= 2
    finally:
        if worker is not None:
            worker.stop()
        exporter.terminate()
        assert exporter.wait(20) == 0
        if exporter.stdout is not None:
            exporter.stdout.close()
        for name in (queue, parked):
            proj.app.broker.purge(name)
            proj.app.broker.purge_dead_letters(name)
