"""The project both sides of the Celery interop tests run (``-A
tests.integration.interop_project``): ``INTEROP_SIDE`` says which library it imports, so a
Celery process (in the Celery virtualenv) and a celeriac one share its tasks and settings.
Nothing else of the test suite is imported.

Settings, from the environment: ``INTEROP_BROKER`` (``amqp://...``, or ``redis://...`` for
kombu's Redis layout, ``kombu+redis://`` on celeriac's side), ``INTEROP_REDIS`` (results,
and the marks tasks leave) and ``INTEROP_PREFIX`` (the results' and marks' key prefix, and
kombu's ``global_keyprefix`` on Redis), so that Celery's default names (queue and exchange
``celery``) are used as Celery makes them.
"""

from __future__ import annotations

import os
import time
from typing import Any

import redis

SIDE = os.environ["INTEROP_SIDE"]
if SIDE == "celery":
    from celery import Celery  # type: ignore[import-not-found]  # the Celery virtualenv's
else:
    from celeriac import Celery

PREFIX = os.environ["INTEROP_PREFIX"]
BROKER = os.environ["INTEROP_BROKER"]
REDIS = os.environ["INTEROP_REDIS"]
ON_REDIS = BROKER.startswith("redis")


def broker_options() -> dict[str, Any]:
    if not ON_REDIS:
        return {}
    options: dict[str, Any] = {"global_keyprefix": PREFIX}
    if SIDE == "celeriac":  # look for what Celery's producers push at least this often
        options["polling_interval"] = 0.1
    return options


app = Celery(
    "interop",
    broker=("kombu+" + BROKER) if ON_REDIS and SIDE == "celeriac" else BROKER,
    backend=REDIS,
    broker_transport_options=broker_options(),
    result_backend_transport_options={"global_keyprefix": PREFIX},
    broker_connection_retry_on_startup=True,
    **({"wire_format": "celery"} if SIDE == "celeriac" else {}),
)
marks = redis.Redis.from_url(REDIS)


@app.task(name="interop.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="interop.mul")
def mul(x: int, y: int) -> int:
    return x * y


@app.task(name="interop.tsum")
def tsum(numbers: list[int]) -> int:
    return sum(numbers)


@app.task(name="interop.who", bind=True)
def who(self: Any, x: int, y: int) -> dict[str, Any]:
    return {"sum": x + y, "side": SIDE, "id": self.request.id}


@app.task(name="interop.when", bind=True)
def when(self: Any) -> dict[str, Any]:
    return {"at": time.time(), "side": SIDE, "eta": bool(self.request.eta)}


@app.task(name="interop.flaky", bind=True, max_retries=3)
def flaky(self: Any, key: str) -> dict[str, Any]:
    attempts = marks.incr(f"{PREFIX}attempts:{key}")
    if attempts < 2:
        raise self.retry(countdown=0.5)
    return {"attempts": attempts, "retries": self.request.retries, "side": SIDE}


@app.task(name="interop.boom")
def boom() -> None:
    raise ValueError("boom")


@app.task(name="interop.on_error")
def on_error(task_id: str) -> None:
    marks.rpush(f"{PREFIX}errback", f"{task_id}|{SIDE}")
