"""A worker process and its broker connection: a refused login or vhost at start, a broker
not up yet (Celery's ``broker_connection_*`` settings), signals while it waits, and an
outage after start (one warning, one "restored" line). Real workers, real servers; a
RabbitMQ outage is a cut TCP proxy, so the shared server keeps serving other tests."""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import textwrap
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from celeriac import Celery
from celeriac.brokers.base import OutboundMessage
from celeriac.brokers.redis import RedisBroker
from celeriac.exceptions import BackendConnectionError, BrokerAccessRefused, BrokerConnectionError
from celeriac.results.redis import RedisBackend
from tests.conftest import service_missing
from tests.integration.conftest import PrivateRedis, free_port
from tests.integration.proxy import Proxy
from tests.integration.workers import ROOT, WorkerProcess

PROJECT = textwrap.dedent(
    """
    import json, os

    from celeriac import Celery

    app = Celery(
        "proj", broker=os.environ["T_BROKER"], backend=os.environ["T_REDIS"],
        broker_transport_options=json.loads(os.environ["T_OPTIONS"]),
        result_backend_transport_options={"key_prefix": os.environ["T_PREFIX"]},
        **json.loads(os.environ["T_CONF"]),
    )


    @app.task
    def add(x, y):
        return x + y
    """
)
LINE = re.compile(r"^\[[^]]*: (DEBUG|INFO|WARNING|ERROR|CRITICAL)/[^]]*\] (.*)$")


class Project:
    """The project above on disk, for one broker URL, and an app here to send to it."""

    def __init__(self, path: Path, redis_url: str, prefix: str, broker: str, **conf: object):
        (path / "proj.py").write_text(PROJECT)
        amqp = broker.startswith("amqp")
        self.options = {"namespace": f"t{prefix[-10:]}"} if amqp else {"key_prefix": prefix}
        self.path, self.broker, self.redis_url, self.prefix = path, broker, redis_url, prefix
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(path)]),
            "PYTHONUNBUFFERED": "1",
            "T_BROKER": broker,
            "T_REDIS": redis_url,
            "T_PREFIX": prefix,
            "T_OPTIONS": json.dumps(self.options),
            "T_CONF": json.dumps(conf),
        }

    def worker(self, *args: str) -> WorkerProcess:
        return WorkerProcess(self.path, self.env, "-P", "threads", "-c", "1", *args)

    def sender(self) -> Celery:
        return Celery(
            "sender", broker=self.broker, backend=self.redis_url,
            broker_transport_options=self.options,
            result_backend_transport_options={"key_prefix": self.prefix},
        )  # fmt: skip


def logged(worker: WorkerProcess, *levels: str) -> list[str]:
    """The messages of the worker's log lines at ``levels``."""
    found = (LINE.match(line.rstrip("\n")) for line in list(worker.log))
    return [m[2] for m in found if m is not None and m[1] in levels]


def wait_count(worker: WorkerProcess, text: str, count: int, timeout: float = 20) -> None:
    """Poll the collected log (appended by the reader thread) until ``text`` appears
    ``count`` times."""
    deadline = time.monotonic() + timeout
    while sum(text in line for line in list(worker.log)) < count:
        assert time.monotonic() < deadline, f"{text!r} x{count} not logged:\n{worker.text}"
        time.sleep(0.05)


def exits(worker: WorkerProcess, timeout: float = 15) -> int:
    try:
        return worker.wait(timeout)
    finally:
        worker.stop(5)


MakeProject = Callable[..., Project]


@pytest.fixture
def project(tmp_path: Path, redis_url: str, redis_prefix: str) -> MakeProject:
    """``project(broker_url, **settings)``: results always go to the test Redis."""

    def make(broker: str, **conf: object) -> Project:
        return Project(tmp_path, redis_url, redis_prefix, broker, **conf)

    return make


def _amqp_variant(amqp_url: str, **change: str) -> str:
    parts = urlsplit(amqp_url)
    user = change.get("user", parts.username or "guest")
    password = change.get("password", parts.password or "guest")
    host = change.get("host", f"{parts.hostname}:{parts.port or 5672}")
    vhost = change.get("vhost", parts.path[1:])
    return f"amqp://{user}:{password}@{host}/{vhost}"


# -- refused at start ---------------------------------------------------------------------
@pytest.mark.parametrize("refusal", ["vhost", "password"])
def test_a_refused_vhost_or_login_stops_the_worker_at_once_with_one_clear_line(
    project: MakeProject, amqp_url: str, refusal: str
) -> None:
    missing = f"celeriac-missing-{uuid.uuid4().hex[:8]}"
    url = _amqp_variant(amqp_url, **({"vhost": missing} if refusal == "vhost" else
                                       {"password": "wrong-password"}))  # fmt: skip
    worker = project(url).worker()
    assert exits(worker) == 69, worker.text  # EX_UNAVAILABLE: not retried, not hung
    [critical] = logged(worker, "CRITICAL")
    if refusal == "vhost":
        assert f"refused to open the vhost {missing!r} for user 'guest'" in critical
        assert f"rabbitmqctl add_vhost {missing}" in critical
        assert f"rabbitmqctl set_permissions -p {missing} guest" in critical
    else:
        assert "refused the login of user 'guest' (ACCESS_REFUSED)" in critical
        assert "wrong-password" not in worker.text
    assert logged(worker, "WARNING", "ERROR") == [], "refusals are not retried"
    assert "Traceback" not in worker.text


def test_a_producer_gets_the_vhost_refusal_as_a_celeriac_error(amqp_url: str) -> None:
    missing = f"celeriac-missing-{uuid.uuid4().hex[:8]}"
    app = Celery("p", broker=_amqp_variant(amqp_url, vhost=missing), backend="cache+memory://")
    try:
        started = time.monotonic()
        with pytest.raises(BrokerAccessRefused, match=f"vhost '{missing}'") as info:
            app.send_task("proj.add", (1, 2))
        assert isinstance(info.value, BrokerConnectionError)
        assert "rabbitmqctl add_vhost" in str(info.value)
        assert time.monotonic() - started < 2, "a refusal is not retried by the publish policy"
    finally:
        app.close()


def test_a_refused_redis_password_is_named_and_not_retried(
    project: MakeProject, private_redis: PrivateRedis
) -> None:
    import redis

    with redis.Redis(port=private_redis.port) as admin:
        admin.config_set("requirepass", "right-one")
    url = private_redis.url.replace("redis://", "redis://:wrong-one@")
    worker = project(url).worker()
    assert exits(worker) == 69, worker.text
    [critical] = logged(worker, "CRITICAL")
    assert "refused the login" in critical and "redis://:**@" in critical
    assert "wrong-one" not in worker.text
    assert logged(worker, "WARNING") == []


# -- not up yet ---------------------------------------------------------------------------
def test_the_worker_waits_for_a_broker_that_is_not_up_yet(
    project: MakeProject, tmp_path: Path
) -> None:
    server = PrivateRedis(tmp_path)
    if server.binary is None:
        service_missing("redis-server", "the redis-server program is not on PATH")
    made = project(server.url)
    worker = made.worker()
    try:
        wait_count(worker, "Trying again in", 2)
        server.start()
        worker.wait_ready()
        warnings = logged(worker, "WARNING")
        assert warnings[0].startswith(f"cannot reach the Redis broker at {server.url}")
        assert "Connection refused. Check that" in warnings[0]  # one full stop, not two
        assert warnings[0].endswith("Trying again in 1 s... (1/100)")
        assert warnings[1].endswith("Trying again in 2 s... (2/100)")
        sender = made.sender()
        assert sender.send_task("proj.add", (2, 3)).get(timeout=10) == 5
        sender.close()
    finally:
        assert worker.stop() == 0, worker.text
        server.stop()


def test_without_retry_on_startup_the_worker_exits_69_at_once(project: MakeProject) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    conf = {"broker_connection_retry_on_startup": False}
    worker = project(url, **conf).worker()
    assert exits(worker) == 69, worker.text
    [critical] = logged(worker, "CRITICAL")
    assert critical.startswith(f"cannot reach the Redis broker at {url}")
    assert "Trying again" not in worker.text


def test_the_worker_gives_up_after_broker_connection_max_retries(project: MakeProject) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    worker = project(url, broker_connection_max_retries=1).worker()
    assert exits(worker) == 69, worker.text
    [warning] = logged(worker, "WARNING")
    assert warning.endswith("Trying again in 1 s... (1/1)")
    [critical] = logged(worker, "CRITICAL")
    assert critical.endswith("Gave up after 2 attempts (broker_connection_max_retries=1).")


@pytest.mark.parametrize("signals", [1, 2])
def test_signals_while_waiting_for_the_broker_stop_the_worker_at_once(
    project: MakeProject, signals: int
) -> None:
    url = f"redis://127.0.0.1:{free_port()}/0"
    worker = project(url).worker()
    wait_count(worker, "Trying again in", 1)
    for _ in range(signals):
        worker.signal(signal.SIGTERM)
    started = time.monotonic()
    assert exits(worker, 5) == 0, worker.text
    assert time.monotonic() - started < 2, "the backoff wait must not delay a stop"
    assert "stopped before the broker could be reached" in worker.text
    assert "Traceback" not in worker.text and "AssertionError" not in worker.text


# -- outages after start ------------------------------------------------------------------
def test_a_redis_outage_logs_one_warning_then_one_restored_line(
    project: MakeProject, private_redis: PrivateRedis
) -> None:
    made = project(private_redis.url)
    worker = made.worker("-l", "debug")
    try:
        worker.wait_ready()
        private_redis.stop()
        wait_count(worker, "broker still unreachable (2/100)", 1)  # (a few seconds)
        problems = logged(worker, "WARNING", "ERROR", "CRITICAL")
        assert len(problems) == 1, "\n".join(problems)
        assert problems[0].startswith(f"lost the broker connection: cannot reach the Redis "
                                      f"broker at {private_redis.url}")  # fmt: skip
        private_redis.start()
        wait_count(worker, f"connection to {private_redis.url} restored after", 1)
        sender = made.sender()
        assert sender.send_task("proj.add", (4, 5)).get(timeout=10) == 9  # consuming again
        sender.close()
        assert len(logged(worker, "WARNING", "ERROR", "CRITICAL")) == 1, worker.text
    finally:
        assert worker.stop() == 0, worker.text


def test_an_amqp_outage_logs_one_warning_then_one_restored_line(
    project: MakeProject, amqp_url: str
) -> None:
    parts = urlsplit(amqp_url)
    proxy = Proxy(parts.hostname or "127.0.0.1", parts.port or 5672)
    proxy.restore()
    url = _amqp_variant(amqp_url, host=f"127.0.0.1:{proxy.port}")
    made = project(url)
    worker = made.worker("-l", "debug")
    try:
        worker.wait_ready()
        proxy.cut()
        wait_count(worker, "broker still unreachable (2/100)", 1)
        problems = logged(worker, "WARNING", "ERROR", "CRITICAL")
        assert len(problems) == 1, "\n".join(problems)
        assert "cannot reach the RabbitMQ broker at amqp://guest:**@127.0.0.1" in problems[0]
        proxy.restore()
        wait_count(worker, "restored after", 1)
        sender = made.sender()
        assert sender.send_task("proj.add", (1, 1)).get(timeout=10) == 2
        sender.close()
        assert len(logged(worker, "WARNING", "ERROR", "CRITICAL")) == 1, worker.text
    finally:
        assert worker.stop() == 0, worker.text
        proxy.close()


def test_without_connection_retry_a_lost_broker_stops_the_worker_with_status_1(
    project: MakeProject, private_redis: PrivateRedis
) -> None:
    worker = project(private_redis.url, broker_connection_retry=False).worker()
    worker.wait_ready()
    private_redis.stop()
    assert exits(worker) == 1, worker.text
    [critical] = logged(worker, "CRITICAL")
    assert "will not retry (broker_connection_retry is off)" in critical


def test_a_redis_connection_error_reads_as_one_sentence() -> None:
    broker = RedisBroker(f"redis://:secret@127.0.0.1:{free_port()}/0")
    with pytest.raises(BrokerConnectionError) as info:
        broker.publish(OutboundMessage("q", b"p", "m"))
    assert "Connection refused. Check that redis-server is running" in str(info.value)
    assert ".." not in str(info.value) and "secret" not in str(info.value)
    broker.close()
    backend = RedisBackend(f"redis://:secret@127.0.0.1:{free_port()}/0")
    with pytest.raises(BackendConnectionError) as stored:
        backend.get_task_meta("some-id")
    assert "Connection refused. Check that Redis is running" in str(stored.value)
    assert ".." not in str(stored.value) and "secret" not in str(stored.value)
    backend.close()


def test_stop_signals_that_keep_coming_while_the_worker_exits_never_kill_it(
    project: MakeProject,
) -> None:
    # An impatient supervisor (or a user at Ctrl-C) signals again and again: the worker
    # still exits by itself with 0, whatever instant of its exit a signal lands in.
    url = f"redis://127.0.0.1:{free_port()}/0"
    worker = project(url).worker()
    wait_count(worker, "Trying again in", 1)
    deadline = time.monotonic() + 10
    while worker.process.poll() is None and time.monotonic() < deadline:
        with contextlib.suppress(ProcessLookupError):
            worker.signal(signal.SIGTERM)
        time.sleep(0.0005)  # (a pace of signals, not a wait for an event)
    assert exits(worker, 5) == 0, worker.text
    assert "Traceback" not in worker.text
