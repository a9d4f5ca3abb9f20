"""The Celery producer of the interop tests, run in the Celery virtualenv
(``python -m tests.integration.interop_celery_producer SCENARIO [ARGS]``): one scenario per
run, its outcome as JSON on the last line, read back with Celery's own ``AsyncResult`` from
what a celeriac worker stored."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from celery import chain, chord, group  # type: ignore[import-not-found]  # its venv only

from tests.integration import interop_project as p

TIMEOUT = 15


def countdown() -> dict[str, Any]:
    sent = time.time()
    ran = p.when.apply_async(countdown=1.5).get(timeout=TIMEOUT)
    return {"after": ran["at"] - sent, "side": ran["side"], "eta": ran["eta"]}


def retry(key: str) -> dict[str, Any]:
    result = p.flaky.delay(key)
    return {**result.get(timeout=TIMEOUT), "state": result.state}


def chained() -> dict[str, Any]:
    result = chain(p.add.s(2, 3), p.mul.s(10)).apply_async()
    return {"result": result.get(timeout=TIMEOUT), "first": result.parent.get(timeout=TIMEOUT)}


def grouped() -> dict[str, Any]:
    result = group(p.add.s(i, i) for i in range(4)).apply_async()
    return {"results": result.get(timeout=TIMEOUT), "ids": [r.id for r in result.results]}


def chorded() -> dict[str, Any]:
    """A chord; how it ended (it fails when celeriac workers run its header)."""
    result = chord((p.add.s(i, i) for i in range(4)), p.tsum.s()).apply_async()
    out = result.get(timeout=TIMEOUT, propagate=False)
    if result.state == "SUCCESS":
        return {"state": result.state, "result": out}
    return {"state": result.state, "error": type(out).__name__, "message": str(out)}


def link_error() -> dict[str, Any]:
    result = p.boom.apply_async(link_error=p.on_error.s())
    result.get(timeout=TIMEOUT, propagate=False)
    errback = p.marks.blpop(f"{p.PREFIX}errback", TIMEOUT)
    return {
        "state": result.state,
        "error": type(result.result).__name__,
        "message": str(result.result),
        "errback": errback[1].decode() if errback else None,
        "id": result.id,
    }


def send_revoked(task_id: str) -> dict[str, Any]:
    """Send a call whose id a celeriac app revoked before: its outcome."""
    result = p.add.apply_async((1, 1), task_id=task_id)
    result.get(timeout=TIMEOUT, propagate=False)
    return {"state": result.state, "error": type(result.result).__name__}


def revoke(task_id: str) -> dict[str, Any]:
    """Celery's revoke, broadcast to the Celery workers; the replies of those that have it."""
    replies = p.app.control.revoke(task_id, reply=True, timeout=5)
    return {"replies": len(replies)}


def declare(*names: str) -> str:
    """The queues ``names``, declared as Celery declares quorum queues (RabbitMQ)."""
    from kombu import Exchange, Queue  # type: ignore[import-not-found]

    queues = [Queue(name, Exchange(name), routing_key=name,
                    queue_arguments={"x-queue-type": "quorum"}) for name in names]  # fmt: skip
    with p.app.connection_for_write() as conn:
        for queue in queues:
            queue.bind(conn.default_channel).declare()
    return "declared"


SCENARIOS = {
    "delay": lambda: p.add.delay(2, 3).get(timeout=TIMEOUT),
    "who": lambda: p.who.delay(2, 3).get(timeout=TIMEOUT),
    "countdown": countdown,
    "retry": retry,
    "chain": chained,
    "group": grouped,
    "chord": chorded,
    "link_error": link_error,
    "send_revoked": send_revoked,
    "revoke": revoke,
    "declare": declare,
}

if __name__ == "__main__":
    print(json.dumps(SCENARIOS[sys.argv[1]](*sys.argv[2:])), flush=True)
