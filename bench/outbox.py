"""Outbox figures on the local PostgreSQL and Redis: commit->enqueue latency with a relay
woken by NOTIFY, and one relay's throughput in rows per second.

    .venv/bin/python -m bench.outbox                      # 500 commits, 20,000 rows
    .venv/bin/python -m bench.outbox --commits 2000 --rows 50000

Latency: one-row transactions, a few milliseconds apart, while one relay runs in a thread
with a 5 s poll interval (so only NOTIFY wakes it in time); a row's latency is from its
transaction's commit returning to the relay having published it (``sent_at``, stamped
once the broker holds the message). Throughput: ``--rows`` committed rows, then one relay
(batches of 500) publishes them all; rows / elapsed. PostgreSQL ``test`` on 127.0.0.1
(trust, user ``postgres``; a schema of the run's own, dropped after) and Redis DB 14 (under
a key prefix of the run's own, deleted after).
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid

import redis
import sqlalchemy as sa
from sqlalchemy.orm import Session

from celeriac import Celery
from celeriac.outbox import PENDING, Relay, RelaySettings, metadata, outbox, outbox_table

POSTGRES = os.environ.get("BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1/test")
REDIS = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def latency(app: Celery, engine: sa.Engine, commits: int) -> list[float]:
    """Seconds from each commit to its publish, with a relay woken by NOTIFY."""
    relay = Relay(app.broker, engine, settings=RelaySettings(poll_interval=5.0))
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    time.sleep(0.5)  # the relay's first look at the empty table; then it listens
    committed: dict[str, float] = {}
    for n in range(commits):
        with Session(engine) as session:
            with session.begin(), outbox(session, app=app):
                task_id = app.tasks["noop"].delay(n).id
            committed[task_id] = time.time()
        time.sleep(0.005)
    t = outbox_table
    deadline = time.monotonic() + 30
    while relay.counts()[PENDING] and time.monotonic() < deadline:
        time.sleep(0.05)
    stop.set()
    thread.join(30)
    with engine.connect() as connection:
        sent = dict(connection.execute(sa.select(t.c.id, t.c.sent_at)).all())
    return [sent[task_id] - at for task_id, at in committed.items()]


def throughput(app: Celery, engine: sa.Engine, rows: int) -> float:
    """Rows per second one relay publishes from a table holding ``rows`` committed rows."""
    with engine.begin() as connection:
        connection.execute(sa.delete(outbox_table))
    for start in range(0, rows, 1000):
        with Session(engine) as session, session.begin(), outbox(session, app=app):
            for n in range(start, min(start + 1000, rows)):
                app.tasks["noop"].delay(n)
    relay = Relay(app.broker, engine, settings=RelaySettings(batch_size=500))
    began = time.perf_counter()
    handled = 0
    while (batch := relay.relay_batch()) > 0:
        handled += batch
    elapsed = time.perf_counter() - began
    assert handled == rows and relay.counts()[PENDING] == 0
    return rows / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commits", type=int, default=500)
    parser.add_argument("--rows", type=int, default=20_000)
    args = parser.parse_args()
    prefix = f"bench-outbox-{uuid.uuid4().hex[:8]}"
    schema = f"bench_outbox_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(POSTGRES, poolclass=sa.pool.NullPool)
    with admin.begin() as connection:
        connection.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    url = sa.make_url(POSTGRES).set(query={"options": f"-csearch_path={schema}"})
    engine = sa.create_engine(url)
    app = Celery("bench", broker=REDIS, broker_transport_options={"key_prefix": prefix})
    app.task(name="noop", ignore_result=True)(lambda n: None)
    try:
        metadata.create_all(engine)
        waits = latency(app, engine, args.commits)
        print(
            f"commit->enqueue with NOTIFY ({args.commits} commits): "
            f"p50 {percentile(waits, 0.5) * 1000:.1f} ms, "
            f"p99 {percentile(waits, 0.99) * 1000:.1f} ms, "
            f"max {max(waits) * 1000:.1f} ms, mean {statistics.mean(waits) * 1000:.1f} ms"
        )
        rate = throughput(app, engine, args.rows)
        print(f"one relay, {args.rows} rows in batches of 500: {rate:,.0f} rows/s")
    finally:
        app.close()
        engine.dispose()
        with admin.begin() as connection:
            connection.execute(sa.text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()
        client = redis.Redis.from_url(REDIS)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


if __name__ == "__main__":
    main()
