"""The outbox on SQLite in process: rows in the caller's transaction, the relay, dead rows,
pruning, and one run for a row published twice (memory broker, drained by hand)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession, create_async_engine
from sqlalchemy.orm import Session

from celeriac import Celery
from celeriac.outbox import DEAD, PENDING, SENT, Relay, RelaySettings, metadata, outbox
from celeriac.outbox import outbox_table as table
from celeriac.testing import drain


@pytest.fixture
def engine(tmp_path: Any) -> Any:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'outbox.db'}")
    metadata.create_all(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def app() -> Any:
    app = Celery("outbox", broker="memory://", backend="cache+memory://", set_as_current=False)
    app.ran = []

    @app.task(name="record")
    def record(value: Any) -> Any:
        app.ran.append(value)
        return value

    return app


def _statuses(engine: Any) -> dict[str, str]:
    with engine.connect() as connection:
        return dict(connection.execute(sa.select(table.c.id, table.c.status)).all())


def test_a_committed_call_is_published_by_the_relay_and_runs_once(app: Any, engine: Any) -> None:
    with Session(engine) as session, session.begin(), outbox(session, app=app):
        result = app.tasks["record"].delay(1)
    assert app.broker.queue_length("celery") == 0  # nothing reaches the broker by itself
    assert _statuses(engine) == {result.id: PENDING}
    assert Relay(app.broker, engine).relay_batch() == 1
    assert _statuses(engine) == {result.id: SENT}
    drain(app)
    assert app.ran == [1]
    assert result.get(timeout=1) == 1


def test_a_rolled_back_call_leaves_nothing(app: Any, engine: Any) -> None:
    with Session(engine) as session, session.begin(), outbox(session, app=app):
        app.tasks["record"].delay(1)
        session.rollback()
    with pytest.raises(RuntimeError), Session(engine) as session, session.begin():
        app.tasks["record"].apply_async((2,), outbox=session)
        raise RuntimeError("the view failed")
    assert _statuses(engine) == {}
    assert Relay(app.broker, engine).relay_batch() == 0


def test_outbox_option_takes_a_session_or_a_connection(app: Any, engine: Any) -> None:
    with Session(engine) as session, session.begin():
        by_session = app.tasks["record"].apply_async((1,), outbox=session)
    with engine.begin() as connection:
        by_connection = app.tasks["record"].apply_async((2,), outbox=connection)
    assert set(_statuses(engine)) == {by_session.id, by_connection.id}
    Relay(app.broker, engine).relay_batch()
    drain(app)
    assert sorted(app.ran) == [1, 2]


def test_outbox_option_refuses_other_values_and_idempotency_keys(app: Any, engine: Any) -> None:
    with pytest.raises(TypeError, match="outbox= takes a SQLAlchemy Session"):
        app.tasks["record"].apply_async((1,), outbox="postgresql://")
    refused = pytest.raises(ValueError, match="idempotency_key cannot be combined")
    with Session(engine) as session, session.begin(), refused:
        app.tasks["record"].apply_async((1,), outbox=session, idempotency_key="k")


def test_the_row_keeps_an_absolute_due_time(app: Any, engine: Any) -> None:
    with Session(engine) as session, session.begin():
        before = time.time()
        result = app.tasks["record"].apply_async((1,), countdown=60, outbox=session)
    with engine.connect() as connection:
        due_at = connection.execute(sa.select(table.c.due_at)).scalar_one()
    assert before + 60 <= due_at <= time.time() + 60
    with engine.begin() as connection:  # as if the row waited 50 s for the relay
        connection.execute(sa.update(table).values(due_at=due_at - 50))
    Relay(app.broker, engine).relay_batch()
    assert app.broker.delayed_count("celery") == 1
    assert _statuses(engine) == {result.id: SENT}


def test_a_row_published_twice_runs_once(app: Any, engine: Any) -> None:
    with Session(engine) as session, session.begin(), outbox(session, app=app):
        result = app.tasks["record"].delay(1)
    relay = Relay(app.broker, engine)
    relay.relay_batch()
    with engine.begin() as connection:  # the relay died after publishing, before marking
        connection.execute(sa.update(table).values(status=PENDING))
    relay.relay_batch()
    assert app.broker.queue_length("celery") == 2
    drain(app)
    assert app.ran == [1]
    assert result.get(timeout=1) == 1


def test_a_row_that_keeps_failing_goes_dead_with_the_reason(app: Any, engine: Any) -> None:
    with Session(engine) as session, session.begin(), outbox(session, app=app):
        app.tasks["record"].delay(1)
    with engine.begin() as connection:  # written by hand with a priority out of range
        connection.execute(sa.update(table).values(priority=42))
    relay = Relay(app.broker, engine, settings=RelaySettings(max_attempts=2))
    relay.relay_batch()
    with engine.begin() as connection:
        row = connection.execute(sa.select(table)).one()
        assert (row.status, row.attempts) == (PENDING, 1)
        assert row.available_at > time.time()  # tried again after a backoff
        connection.execute(sa.update(table).values(available_at=0))
    relay.relay_batch()
    with engine.connect() as connection:
        row = connection.execute(sa.select(table)).one()
    assert (row.status, row.attempts) == (DEAD, 2)
    assert "priority" in row.last_error
    assert relay.counts() == {PENDING: 0, SENT: 0, DEAD: 1}


def test_sent_rows_are_pruned_after_the_retention(app: Any, engine: Any) -> None:
    with Session(engine) as session, session.begin(), outbox(session, app=app):
        app.tasks["record"].delay(1)
    Relay(app.broker, engine).relay_batch()
    assert Relay(app.broker, engine).prune() == 0  # kept for a week by default
    assert Relay(app.broker, engine, settings=RelaySettings(retention=0)).prune() == 1
    assert _statuses(engine) == {}


def test_an_async_session_writes_its_rows_when_it_commits(
    app: Any, engine: Any, tmp_path: Any
) -> None:
    async def place_order(rollback: bool) -> str:
        async_engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'outbox.db'}")
        try:
            async with AsyncSession(async_engine) as session:
                async with session.begin():
                    result = app.tasks["record"].apply_async((1,), outbox=session)
                    if rollback:
                        await session.rollback()
                return str(result.id)
        finally:
            await async_engine.dispose()

    asyncio.run(place_order(rollback=True))
    assert _statuses(engine) == {}
    task_id = asyncio.run(place_order(rollback=False))
    assert _statuses(engine) == {task_id: PENDING}


def test_relay_settings_refuse_nonsense() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        RelaySettings(batch_size=0)


@pytest.mark.parametrize(
    ("database", "url"),
    [
        (
            {"ENGINE": "django.db.backends.postgresql", "NAME": "shop", "USER": "app",
             "PASSWORD": "p@ss", "HOST": "db", "PORT": 5433,
             "OPTIONS": {"options": "-c search_path=s1"}},
            "postgresql+psycopg://app:p%40ss@db:5433/shop?options=-c+search_path%3Ds1",
        ),
        (
            {"ENGINE": "django.db.backends.mysql", "NAME": "shop", "USER": "root"},
            "mysql+pymysql://root@127.0.0.1/shop",
        ),
        ({"ENGINE": "django.db.backends.sqlite3", "NAME": "/srv/db.sqlite3"}, "sqlite:////srv/db.sqlite3"),
    ],
)  # fmt: skip
def test_the_relay_url_of_a_django_database(database: dict[str, Any], url: str) -> None:
    from celeriac.contrib.django.outbox import sqlalchemy_url

    assert sqlalchemy_url(database) == url
    assert sa.make_url(url).database is not None


def test_a_django_database_without_a_driver_is_refused() -> None:
    from celeriac.contrib.django.outbox import sqlalchemy_url

    with pytest.raises(ValueError, match="set outbox_database_url yourself"):
        sqlalchemy_url({"ENGINE": "django.db.backends.oracle", "NAME": "x"})


def test_an_outbox_task_that_retries_runs_its_retry(app: Any, engine: Any) -> None:
    attempts = []

    @app.task(name="flaky", bind=True, max_retries=1)
    def flaky(self: Any) -> str:
        attempts.append(self.request.retries)
        if self.request.retries == 0:
            raise self.retry(countdown=0)
        return "done"

    with Session(engine) as session, session.begin(), outbox(session, app=app):
        result = flaky.delay()
    Relay(app.broker, engine).relay_batch()
    drain(app)
    drain(app)
    assert attempts == [0, 1]  # the retry keeps the id and key, and is not a second copy
    assert result.get(timeout=1) == "done"
