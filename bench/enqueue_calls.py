"""Per-call enqueue, split into its parts: ``task.delay()`` against the broker's own
``publish`` of the same message, so the producer's share of a call shows on its own.

    .venv/bin/python -m bench.enqueue_calls [--broker redis|amqp] [-n 5000] [--rounds 5]

Each round times ``n`` calls of ``delay(i)`` on a no-op task with no result store (the
bench's worker setup), then ``n`` publishes of one message built as ``delay`` builds it.
On RabbitMQ both wait for the confirms still due (``flush``) before the clock stops.
Prints the median of the rounds as calls/s and µs per call; the queue is purged after.
No worker runs: this measures the caller's side only.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

from celeriac import Celeriac

URLS = {"redis": "redis://127.0.0.1:6379/14", "amqp": "amqp://guest:guest@127.0.0.1:5672//"}


def per_call(calls: int, step: Callable[[int], object], finish: Callable[[], object]) -> float:
    """Seconds per call of ``step(i)`` for ``calls`` calls, ``finish()`` included."""
    started = time.perf_counter()
    for i in range(calls):
        step(i)
    finish()
    return (time.perf_counter() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--broker", choices=sorted(URLS), default="redis")
    parser.add_argument("--url", help="broker URL (default: the local service)")
    parser.add_argument("-n", type=int, default=5000, help="calls per round")
    parser.add_argument("--rounds", type=int, default=5)
    opts = parser.parse_args()
    queue = "bench-enqueue"  # one name, purged after: a run leaves no queue of its own
    app = Celeriac("enqueue", broker=opts.url or URLS[opts.broker], task_ignore_result=True)

    @app.task(name="bench.noop", queue=queue)
    def noop(i: int) -> None:
        return None

    broker = app.broker
    flush = getattr(broker, "flush", lambda: None)
    noop.delay(0)  # connects, loads scripts, declares the queue
    outbound = app.producer._build(noop.name, (0,), {}, "x" * 36, noop, {"queue": queue}).outbound
    delays, publishes = [], []
    try:
        for _ in range(opts.rounds):
            delays.append(per_call(opts.n, noop.delay, flush))
            publishes.append(per_call(opts.n, lambda i: broker.publish(outbound), flush))
    finally:
        broker.purge(queue)
    delay, publish = statistics.median(delays), statistics.median(publishes)
    print(f"{opts.broker}: {opts.rounds} rounds of {opts.n} calls, medians")
    print(f"  delay()            {1 / delay:8,.0f} calls/s  {delay * 1e6:6.1f} µs per call")
    print(f"  broker.publish()   {1 / publish:8,.0f} calls/s  {publish * 1e6:6.1f} µs per call")
    print(f"  producer's share   {(delay - publish) * 1e6:6.1f} µs per call")


if __name__ == "__main__":
    main()
