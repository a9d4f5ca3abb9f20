"""Beat's loop cost: how late due runs are sent with many entries (default 1,000).

    .venv/bin/python -m bench.beat_lateness                       # Redis, 1,000 entries, 30 s
    .venv/bin/python -m bench.beat_lateness --every 1 --seconds 20  # every entry each second
    .venv/bin/python -m bench.beat_lateness --broker amqp           # RabbitMQ (guest@127.0.0.1)

One scheduler in this process (the loop ``celeriac beat`` runs), sending to a queue no
worker reads. Entry i runs every ``--every`` seconds or, by default, every 10 + i % 51
seconds (10 s to 1 min, spread over the seconds). Lateness is the moment a run's publish
returned minus its due time. Redis DB 14 under a key prefix of the run's own (deleted
after); RabbitMQ under a namespace of its own.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from datetime import datetime, timezone
from typing import Any

from celeriac import Celery
from celeriac.beat import Scheduler, Service


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--broker", choices=["redis", "amqp"], default="redis")
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--every", type=float, default=None)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    prefix = f"bench-beat-{uuid.uuid4().hex[:8]}"
    if args.broker == "amqp":
        url, options = "amqp://guest:guest@127.0.0.1:5672//", {"namespace": prefix}
    else:
        url, options = "redis://127.0.0.1:6379/14", {"key_prefix": prefix}
    app = Celery("bench", broker=url, broker_transport_options=options)
    queue = f"{prefix}-q"
    app.conf.beat_schedule = {
        f"entry-{i}": {
            "task": "bench.noop",
            "schedule": args.every or float(10 + i % 51),
            "options": {"queue": queue},
        }
        for i in range(args.entries)
    }
    lateness: list[float] = []
    worst: list[tuple[float, str]] = []

    class Measured(Scheduler):
        def _send(self, runs: list[tuple[Any, datetime]]) -> int:
            sent = super()._send(runs)
            at = datetime.now(timezone.utc)
            for entry, due in runs:
                if entry.last_run_at == due:
                    lateness.append((at - due).total_seconds())
                    worst.append((lateness[-1], due.isoformat()))
            return sent

    service = Service(app, scheduler_cls=Measured)
    thread = threading.Thread(target=service.start, daemon=True)
    thread.start()
    time.sleep(args.seconds)  # the measured period
    service.stop(wait=True)
    if app.conf.broker_url.startswith("redis"):
        client = app.broker.client
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    else:
        app.broker.purge(queue)
    ms = [x * 1000 for x in lateness]
    print(
        f"beat lateness ({args.broker}, {args.entries} entries, "
        f"{f'every {args.every:g} s' if args.every else 'every 10-60 s'}, {args.seconds:g} s): "
        f"{len(ms)} sends, p50 {statistics.median(ms):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, "
        f"max {max(ms):.1f} ms"
    )
    app.broker.close()
    print("latest:", sorted(worst)[-3:])


if __name__ == "__main__":
    main()
