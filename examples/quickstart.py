"""celeriac quick start: define tasks, send them, run them, read their results.

    python examples/quickstart.py

Nothing to install and no service to start: the broker (``memory://``) and the result
store (``cache+memory://``) live in this process. ``celeriac.testing.drain(app)`` runs
the messages that are ready, one by one, through the same path a worker takes (decode,
run, store the result, ack). It stands in for the worker until the ``celeriac worker``
command lands in the next release; then you start a worker instead of calling drain.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

# Run from a checkout without installing anything: celeriac has no required dependencies.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from celeriac import Celery
from celeriac.testing import drain

app = Celery("quickstart", broker="memory://", backend="cache+memory://")


@app.task
def add(x: int, y: int) -> int:
    return x + y


@app.task(bind=True)
def greet(self, name: str) -> str:
    # bind=True: the first argument is the task itself; self.request describes this call.
    return f"hello {name}, this is attempt {self.request.retries + 1}"


@app.task
def days_between(start: dt.date, end: dt.date) -> int:
    # Dates travel as dates: the JSON serializer round-trips them.
    return (end - start).days


@app.task
def remind(text: str) -> str:
    return f"reminder: {text}"


def main() -> None:
    total = add.delay(2, 3)
    hello = greet.apply_async(("Ada",), priority=9)  # 0-9, 9 is served first
    span = days_between.delay(dt.date(2024, 1, 1), dt.date(2024, 3, 1))
    later = remind.apply_async(("stand up",), countdown=60)  # due in a minute

    queue = app.conf.task_default_queue
    print(
        f"sent 4 calls to queue {queue!r}: {app.broker.queue_length(queue)} ready, "
        f"{app.broker.delayed_count(queue)} delayed"
    )
    print(f"ran {drain(app)} tasks")  # a worker does this in the next release

    print(f"add(2, 3) = {total.get(timeout=1)}")
    print(f"greet('Ada') = {hello.get(timeout=1)!r}")
    print(f"days_between(2024-01-01, 2024-03-01) = {span.get(timeout=1)}")
    print(f"remind is {later.state}: it waits in the broker's delayed set until it is due")


if __name__ == "__main__":
    main()
