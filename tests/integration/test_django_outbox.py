"""The Django outbox on PostgreSQL: the app's migration creates the table, task calls in
``transaction.atomic()`` become rows (``with outbox()`` and ``apply_async(outbox=
connection)``, every call in an atomic block with ``OutboxInAtomicBlocks``), a rollback
leaves none, and the SQLAlchemy relay publishes them to Redis."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.testing import drain
from tests.django_project import postgres_databases, project_env
from tests.sql_databases import postgres_schema

pytest.importorskip("django")

CLIENT = textwrap.dedent(
    """
    import json, os, sys

    import django
    from django.conf import settings

    settings.configure(
        INSTALLED_APPS=["django.contrib.contenttypes", "celeriac.contrib.django.outbox"],
        DATABASES=json.loads(os.environ["DJANGO_TEST_DATABASES"]),
        USE_TZ=True,
    )
    django.setup()

    from django.core.management import call_command
    from django.db import connection, transaction

    from celeriac import Celery
    from celeriac.contrib.django.outbox import outbox

    app = Celery("proj", broker=os.environ["CELERIAC_TEST_REDIS"],
                 broker_transport_options={"key_prefix": os.environ["CELERIAC_TEST_PREFIX"]})


    @app.task(name="record")
    def record(n):
        return n


    call_command("migrate", verbosity=0)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TABLE orders (id integer PRIMARY KEY)")
    ids = []
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO orders (id) VALUES (1)")
        with outbox():
            ids.append(record.delay(1).id)
        ids.append(record.apply_async((2,), outbox=connection).id)
    try:
        with transaction.atomic():
            with outbox():
                record.delay(3)
            raise LookupError("the view failed")
    except LookupError:
        pass

    from celeriac.contrib.django.outbox import OutboxInAtomicBlocks

    app.sender = OutboxInAtomicBlocks(app)
    with transaction.atomic():
        ids.append(record.delay(4).id)  # to the outbox: inside an atomic block
    record.delay(5)  # to the broker: outside one
    print(json.dumps(ids))
    """
)


def test_calls_in_an_atomic_block_are_published_by_the_relay(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    from celeriac.contrib.django.outbox import sqlalchemy_url
    from celeriac.outbox import PENDING, SENT, Relay

    (tmp_path / "client.py").write_text(CLIENT)
    with postgres_schema() as (url, schema):
        databases = postgres_databases(url, schema)
        env = project_env(
            tmp_path, databases, CELERIAC_TEST_REDIS=redis_url, CELERIAC_TEST_PREFIX=redis_prefix
        )
        done = subprocess.run(
            [sys.executable, "-W", "error", "client.py"],
            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        ids = json.loads(done.stdout.strip().splitlines()[-1])
        app = Celery(
            "proj", broker=redis_url, backend="cache+memory://", set_as_current=False,
            broker_transport_options={"key_prefix": redis_prefix},
        )  # fmt: skip
        ran: list[Any] = []
        app.task(name="record")(ran.append)
        relay = Relay(app.broker, sqlalchemy_url(databases["default"]))
        try:
            assert app.broker.queue_length("celery") == 1  # 5, sent outside atomic blocks
            assert relay.counts() == {PENDING: 3, SENT: 0, "dead": 0}
            assert relay.relay_batch() == 3
            assert drain(app) == 4
            assert sorted(ran) == [1, 2, 4, 5]  # the rolled-back call (3) never ran
            assert len(ids) == 3
        finally:
            relay.engine.dispose()
            app.close()
