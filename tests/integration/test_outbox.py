"""The outbox relay on real PostgreSQL and MariaDB with the Redis broker: NOTIFY wakes the
relay at once, two relays share the table without publishing a row twice (SKIP LOCKED),
and the table and relay work the same on MariaDB by polling."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.orm import Session

from celeriac import Celery
from celeriac.outbox import PENDING, SENT, Relay, RelaySettings, outbox
from tests.integration.outbox_project import outbox_database


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
    assert sum(handled) == 600 and all(handled)  # both took part, no row twice
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
