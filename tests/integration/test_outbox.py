"""The outbox relay on real PostgreSQL and MariaDB with the Redis broker: NOTIFY wakes the
relay at once, two relays share the table without publishing a row twice (SKIP LOCKED),
and the table and relay work the same on MariaDB by polling; ``worker --outbox-relay``,
``outbox status`` and ``outbox relay`` from the command line."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session

from celeriac import Celery
from celeriac.outbox import PENDING, SENT, Relay, RelaySettings, outbox
from tests.integration.outbox_project import outbox_database, project_env, write_project
from tests.integration.workers import WorkerProcess


@pytest.fixture(params=["postgresql", "mariadb"])
def database(request: Any) -> Iterator[str]:
    with outbox_database(request.param) as url:
        yield url


@pytest.fixture
def app(redis_url: str, redis_prefix: str) -> Iterator[Any]:
    app = Celery(
        "outbox", broker=redis_url, broker_transport_options={"key_prefix": redis_prefix},
        set_as_current=False,
    )  # fmt: skip

    @app.task(name="record", ignore_result=True)
    def record(n: int) -> int:
        return n

    yield app
    app.close()


def _write(engine: sa.Engine, app: Any, numbers: range) -> None:
    for n in numbers:
        with Session(engine) as session, session.begin(), outbox(session, app=app):
            session.execute(sa.text("INSERT INTO orders (id) VALUES (:n)"), {"n": n})
            app.tasks["record"].delay(n)


def test_two_relays_share_the_table_and_publish_each_row_once(app: Any, database: str) -> None:
    engine = sa.create_engine(database)
    _write(engine, app, range(600))
    relays = [Relay(app.broker, engine, settings=RelaySettings(batch_size=50)) for _ in range(2)]
    handled = [0, 0]

    def drain_table(i: int) -> None:
        while (n := relays[i].relay_batch()) > 0:
            handled[i] += n

    threads = [threading.Thread(target=drain_table, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert sum(handled) == 600  # between them, each row once (how they split it varies)
    assert app.broker.queue_length("celery") == 600
    assert relays[0].counts() == {PENDING: 0, SENT: 600, "dead": 0}
    engine.dispose()


def test_a_commit_wakes_a_listening_relay_at_once(app: Any, redis_url: str) -> None:
    with outbox_database("postgresql") as url:
        engine = sa.create_engine(url)
        relay = Relay(app.broker, engine, settings=RelaySettings(poll_interval=30))
        stop = threading.Event()
        thread = threading.Thread(target=relay.run, args=(stop,))
        thread.start()
        try:
            time.sleep(0.5)  # the relay's first look (empty table), then it listens
            committed = time.monotonic()
            _write(engine, app, range(1))
            while app.broker.queue_length("celery") == 0:
                assert time.monotonic() - committed < 5, "the relay did not wake"
                time.sleep(0.01)
            assert time.monotonic() - committed < 2  # far below the 30 s poll interval
        finally:
            stop.set()
            thread.join(40)
            engine.dispose()


def test_a_worker_with_outbox_relay_runs_committed_calls(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    write_project(tmp_path)
    marks = redis.Redis.from_url(redis_url)
    with outbox_database("postgresql") as url:
        env = project_env(tmp_path, redis_url, redis_prefix, url)
        worker = WorkerProcess.started(
            tmp_path, env, "-P", "threads", "--outbox-relay", app="outboxproj"
        )
        app = Celery(
            "outboxproj", broker=redis_url, set_as_current=False,
            broker_transport_options={"key_prefix": redis_prefix},
        )  # fmt: skip
        app.task(name="record", ignore_result=True)(lambda n: n)
        engine = sa.create_engine(url)
        try:
            _write(engine, app, range(5, 6))
            assert marks.blpop([f"{redis_prefix}:ran"], timeout=20) is not None
            status = subprocess.run(
                [sys.executable, "-m", "celeriac", "-A", "outboxproj", "outbox", "status",
                 "--json"],
                cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True,
            )  # fmt: skip
            assert json.loads(status.stdout) == {"dead": 0, "pending": 0, "sent": 1}
        finally:
            assert worker.stop() == 0
            engine.dispose()
            app.close()
            marks.close()


def test_the_relay_command_needs_a_database(tmp_path: Path, redis_url: str) -> None:
    write_project(tmp_path)
    env = project_env(tmp_path, redis_url, "unused", "")
    done = subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "outboxproj", "outbox", "relay"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode != 0
    assert "no outbox database: set outbox_database_url" in done.stderr
