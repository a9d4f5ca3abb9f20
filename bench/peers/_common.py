"""What every adapter shares: its settings (from the environment) and the instrument.

Runs inside each peer's virtualenv, so it imports only the standard library and
redis-py (every peer venv has it). It never imports celeriac.

The instrument is the same for every tool. A task of kind

- ``incr(target)`` does one Redis ``INCR`` on the counter; the task that makes it 1
  pushes its clock time to ``<prefix>:first`` and the one that makes it ``target``
  pushes its time to ``<prefix>:done``. The harness blocks on ``<prefix>:done``: it
  never polls a tool's internal state.
- ``sleep(target)`` sleeps 10 ms (an I/O wait: ``await asyncio.sleep`` in async tools),
  then does what ``incr`` does.
- ``noop(i)`` does nothing; ``mark(name)`` pushes its clock time to ``<prefix>:<name>``,
  so a ``mark('start')`` before N no-ops and a ``mark('end')`` after them time a drain.
- ``lat(sent_at)`` pushes ``time.time() - sent_at`` to ``<prefix>:lat``.
"""

from __future__ import annotations

import asyncio
import os
import time
from dataclasses import dataclass
from typing import Any

import redis

SLEEP_SECONDS = 0.01


@dataclass(frozen=True)
class Settings:
    broker: str  # "redis" or "amqp"
    broker_url: str
    redis_url: str  # the instrument's Redis (also the broker when broker == "redis")
    queue: str
    pool: str
    concurrency: int
    prefix: str

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        redis_url = env.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
        return cls(
            broker=env.get("BENCH_BROKER", "redis"),
            broker_url=env.get("BENCH_BROKER_URL", redis_url),
            redis_url=redis_url,
            queue=env.get("BENCH_QUEUE", "bench"),
            pool=env.get("BENCH_POOL", "threads"),
            concurrency=int(env.get("BENCH_CONCURRENCY", "8")),
            prefix=env.get("BENCH_PREFIX", "bench"),
        )


SETTINGS = Settings.from_env()
_sync: dict[int, redis.Redis] = {}
_async: dict[int, Any] = {}


def sync_redis() -> redis.Redis:
    """One client per process (a forked child makes its own)."""
    pid = os.getpid()
    client = _sync.get(pid)
    if client is None:
        client = _sync[pid] = redis.Redis.from_url(SETTINGS.redis_url)
    return client


def async_redis() -> Any:
    """One asyncio client per event loop."""
    import redis.asyncio

    loop = id(asyncio.get_running_loop())
    client = _async.get(loop)
    if client is None:
        client = _async[loop] = redis.asyncio.Redis.from_url(SETTINGS.redis_url)
    return client


def _key(name: str) -> str:
    return f"{SETTINGS.prefix}:{name}"


def incr(target: int) -> None:
    r = sync_redis()
    value = r.incr(_key("count"))
    if value == 1:
        r.rpush(_key("first"), time.time())
    if value == target:
        r.rpush(_key("done"), time.time())


def sleep_incr(target: int) -> None:
    time.sleep(SLEEP_SECONDS)
    incr(target)


def noop(i: int) -> None:
    return None


def mark(name: str) -> None:
    sync_redis().rpush(_key(name), time.time())


def lat(sent_at: float) -> None:
    sync_redis().rpush(_key("lat"), time.time() - sent_at)


async def aincr(target: int) -> None:
    r = async_redis()
    value = await r.incr(_key("count"))
    if value == 1:
        await r.rpush(_key("first"), time.time())
    if value == target:
        await r.rpush(_key("done"), time.time())


async def asleep_incr(target: int) -> None:
    await asyncio.sleep(SLEEP_SECONDS)
    await aincr(target)


async def anoop(i: int) -> None:
    return None


async def amark(name: str) -> None:
    await async_redis().rpush(_key(name), time.time())


async def alat(sent_at: float) -> None:
    await async_redis().rpush(_key("lat"), time.time() - sent_at)


SYNC = {"incr": incr, "sleep": sleep_incr, "noop": noop, "mark": mark, "lat": lat}
ASYNC = {"incr": aincr, "sleep": asleep_incr, "noop": anoop, "mark": amark, "lat": alat}
KINDS = tuple(SYNC)
