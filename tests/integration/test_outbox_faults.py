"""The outbox under faults: transactions commit and roll back while the relay process is
SIGKILLed again and again and the broker is unreachable for a few seconds; in the end every
committed call ran exactly once, no rolled-back call ran, and nothing is left pending.

On PostgreSQL (LISTEN/NOTIFY) and MariaDB (polling), with the Redis broker. The CI tier
runs 1,000 transactions; the long form is

    CELERIAC_OUTBOX_FAULT_TRANSACTIONS=10000 CELERIAC_OUTBOX_KILL_EVERY=2 \\
        .venv/bin/python -m pytest tests/integration/test_outbox_faults.py -q
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session

from celeriac import Celery
from celeriac.outbox import DEAD, PENDING, Relay, outbox, outbox_table
from tests.integration.outbox_project import outbox_database, project_env, write_project
from tests.integration.proxy import Proxy
from tests.integration.workers import WorkerProcess

TRANSACTIONS = int(os.environ.get("CELERIAC_OUTBOX_FAULT_TRANSACTIONS", "1000"))
KILL_EVERY = float(os.environ.get("CELERIAC_OUTBOX_KILL_EVERY", "1.0"))
MIN_KILLS = 3
OUTAGE = 3.0  # seconds the relay cannot reach the broker
WRITERS = 4
ROLLED_BACK_EVERY = 7  # every 7th transaction rolls back
REPUBLISHED = 50  # rows published a second time, as after a kill between publish and mark


class RelayProcess:
    """``celeriac -A outboxproj outbox relay``, killed and started again by the test."""

    def __init__(self, path: Path, env: dict[str, str]) -> None:
        self.path, self.env = path, env
        self.log = open(path / "relay.log", "a")  # noqa: SIM115  (kept across restarts)
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    def start(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celeriac", "-A", "outboxproj", "outbox", "relay"],
            cwd=self.path, env=self.env, stdout=self.log, stderr=subprocess.STDOUT,
        )  # fmt: skip

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)
        self.kills += 1

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.log.close()


def _write(app: Any, engine: sa.Engine, committed: dict[int, str], numbers: range) -> None:
    """A transaction per number, each an order and its task call; some roll back."""
    for n in numbers:
        try:
            with Session(engine) as session, session.begin(), outbox(session, app=app):
                session.execute(sa.text("INSERT INTO orders (id) VALUES (:n)"), {"n": n})
                task_id = app.tasks["record"].delay(n).id
                if n % ROLLED_BACK_EVERY == 0:
                    raise LookupError("the view failed after sending")
        except LookupError:
            continue
        committed[n] = task_id


def _writers(app: Any, engine: sa.Engine, committed: dict[int, str]) -> list[threading.Thread]:
    """WRITERS threads sharing the transactions, as several web processes would."""
    return [
        threading.Thread(
            target=_write, args=(app, engine, committed, range(i, TRANSACTIONS, WRITERS))
        )
        for i in range(WRITERS)
    ]


def _republish(engine: sa.Engine, task_ids: list[str]) -> None:
    """Rows the relay published and then could not mark sent (killed in between) are
    pending again: set sent rows back, as that relay's rolled-back transaction would."""
    table = outbox_table
    with engine.begin() as connection:
        update = sa.update(table).where(table.c.id.in_(task_ids)).values(status=PENDING)
        assert connection.execute(update).rowcount == len(task_ids)


def _wait_until(check: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.2)


@pytest.mark.timeout(max(120.0, TRANSACTIONS * 0.05))
@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_every_committed_call_runs_once_through_kills_and_an_outage(
    kind: str, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    write_project(tmp_path)
    target = redis.Redis.from_url(redis_url).connection_pool.connection_kwargs
    proxy = Proxy(target.get("host", "127.0.0.1"), int(target.get("port", 6379)))
    proxy.restore()
    through_proxy = f"redis://127.0.0.1:{proxy.port}/{target.get('db', 0)}"
    marks = redis.Redis.from_url(redis_url)
    with outbox_database(kind) as database:
        env = project_env(tmp_path, redis_url, redis_prefix, database)
        app = Celery(
            "outboxproj", broker=redis_url, set_as_current=False,
            broker_transport_options={"key_prefix": redis_prefix},
        )  # fmt: skip
        app.task(name="record", ignore_result=True)(lambda n: n)
        engine = sa.create_engine(database, pool_size=WRITERS + 1)
        relay = RelayProcess(tmp_path, {**env, "CELERIAC_TEST_BROKER": through_proxy})
        worker = WorkerProcess.started(tmp_path, env, "-P", "threads", "-c", "4", app="outboxproj")
        committed: dict[int, str] = {}
        writers = _writers(app, engine, committed)
        try:
            relay.start()
            for writer in writers:
                writer.start()
            # Given: the relay killed every KILL_EVERY seconds, the broker cut once
            while any(w.is_alive() for w in writers) or relay.kills < MIN_KILLS:
                time.sleep(KILL_EVERY)
                relay.kill()
                if relay.kills == 2:
                    proxy.cut()
                relay.start()
                if relay.kills == 2:
                    time.sleep(OUTAGE)
                    proxy.restore()
            for writer in writers:
                writer.join(60)
            # When: the last relay has published everything, and published some rows again
            counter = Relay(app.broker, engine)
            _wait_until(lambda: counter.counts()[PENDING] == 0, 120, "rows left pending")
            _republish(engine, list(committed.values())[:REPUBLISHED])
            _wait_until(lambda: counter.counts()[PENDING] == 0, 120, "rows left pending")
            _wait_until(
                lambda: app.broker.queue_length("celery") == 0
                and app.broker.delayed_count("celery") == 0,
                120, "messages left in the queue",
            )  # fmt: skip
            assert worker.stop() == 0  # a warm stop: what it holds ends or goes back
            # Then: each committed call ran once, and nothing else ran
            ran = collections.Counter(int(n) for n in marks.lrange(f"{redis_prefix}:ran", 0, -1))
            twice = {n: count for n, count in ran.items() if count > 1}
            assert not twice, f"ran more than once: {sorted(twice)[:20]}"
            assert set(ran) == set(committed)
            assert app.broker.queue_length("celery") == 0
            assert counter.counts()[DEAD] == 0
            assert relay.kills >= MIN_KILLS
            assert len(committed) == TRANSACTIONS - len(range(0, TRANSACTIONS, ROLLED_BACK_EVERY))
            skipped = worker.text.count("second copy from the outbox")
            assert skipped >= REPUBLISHED
            print(
                f"{kind}: {len(committed)} committed, {relay.kills} kills, {skipped} copies skipped"
            )
        finally:
            for writer in writers:
                writer.join(120)
            relay.stop()
            worker.stop()
            proxy.close()
            engine.dispose()
            app.close()
            marks.close()
