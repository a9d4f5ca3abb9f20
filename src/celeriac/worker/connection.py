"""The worker's broker connection: Celery's ``broker_connection_*`` settings as a policy, the
backoff between attempts, reaching the broker at start, and what an outage logs.

Runtime layer: imports the exceptions, ``_futures`` and the stdlib. An outage logs one
WARNING when the connection is lost and one INFO line when it is back, whatever the number
of attempts in between. At start a refused login or vhost is final (retrying cannot fix it); after
start it is retried like any failure (a restarting RabbitMQ may refuse for a moment).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from celeriac._futures import cancel_and_wait
from celeriac.exceptions import BrokerAccessRefused, BrokerConnectionError

logger = logging.getLogger("celeriac.worker")
T = TypeVar("T")
FIRST_WAIT = 1.0  # seconds before the second attempt; doubled after each failure...
MAX_WAIT = 10.0  # ...up to this, so a broker that is back is noticed within seconds


def backoff(failures: int) -> float:
    """Seconds to wait after ``failures`` failed attempts in a row: 1, 2, 4, 8, 10, 10..."""
    doublings = min(max(0, failures - 1), 16)  # (16: far past the cap, and no overflow)
    return min(MAX_WAIT, FIRST_WAIT * float(2**doublings))


@dataclass(frozen=True)
class RetryPolicy:
    """``broker_connection_retry_on_startup``, ``broker_connection_retry`` and
    ``broker_connection_max_retries``, read once when the worker is built."""

    on_startup: bool = True
    after_start: bool = True
    max_retries: int | None = 100  # None: no limit; 0: the first failure is final

    @classmethod
    def from_conf(cls, conf: Any) -> RetryPolicy:
        retries = conf.broker_connection_max_retries
        return cls(
            on_startup=bool(conf.broker_connection_retry_on_startup),
            after_start=bool(conf.broker_connection_retry),
            max_retries=None if retries is None else max(0, int(retries)),
        )

    def used_up(self, failures: int) -> bool:
        """After ``failures`` failed attempts in a row, may no further attempt be made?"""
        return self.max_retries is not None and failures > self.max_retries

    def of(self, failures: int) -> str:
        """``3/100``, as Celery counts its retries; ``3`` when there is no limit."""
        return str(failures) if self.max_retries is None else f"{failures}/{self.max_retries}"


async def off_loop(call: Callable[[], T]) -> T:
    """Run a blocking broker call in a daemon thread and await it. Not the loop's default
    executor: a worker stopped while the call still waits for a connect must be able to
    exit at once, and the interpreter never waits for a daemon thread."""
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():  # the caller stopped waiting (cancelled): nothing to hand over
            outcome()

    def work() -> None:
        try:
            result = call()
        except BaseException as exc:  # handed to the awaiting coroutine, raised there
            error = exc
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(settle, lambda: future.set_exception(error))
            return
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, lambda: future.set_result(result))

    threading.Thread(target=work, name="celeriac-broker-call", daemon=True).start()
    return await future


async def _unless_stopped(attempt: Awaitable[None], stop: asyncio.Event) -> bool:
    """Await ``attempt``; if ``stop`` is set first, cancel it and return False."""
    task = asyncio.ensure_future(attempt)
    stopping = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if task.done():
        task.result()  # its error, if it failed
        return True
    with contextlib.suppress(Exception):
        await cancel_and_wait(task)
    return False


async def reach_broker(
    attempt: Callable[[], Awaitable[None]], policy: RetryPolicy, stop: asyncio.Event
) -> bool:
    """Run ``attempt`` (what start-up needs from the broker) until it succeeds: True.
    False when ``stop`` is set first (a signal), even in the middle of an attempt.

    A broker that cannot be reached is tried again after a backoff, one WARNING per
    failure, while ``policy`` allows; then the last ``BrokerConnectionError`` is raised.
    ``BrokerAccessRefused`` is raised at once.
    """
    failures = 0
    while True:
        try:
            return await _unless_stopped(attempt(), stop)
        except BrokerAccessRefused:
            raise
        except BrokerConnectionError as exc:
            failures += 1
            if not policy.on_startup:
                raise
            if policy.used_up(failures):
                raise BrokerConnectionError(
                    f"{exc} Gave up after {failures} attempts "
                    f"(broker_connection_max_retries={policy.max_retries})."
                ) from exc
            wait = backoff(failures)
            logger.warning("%s Trying again in %.0f s... (%s)", exc, wait, policy.of(failures))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), wait)
        if stop.is_set():
            return False


class Outage:
    """The consumer's account of the broker connection after start: how long to wait
    before the next attempt, and the two lines an outage logs (lost, then restored)."""

    def __init__(
        self,
        broker: str,
        policy: RetryPolicy | None = None,
        on_give_up: Callable[[BrokerConnectionError], None] | None = None,
    ) -> None:
        self.broker = broker  # the broker's URL, password hidden
        self.policy = policy or RetryPolicy(max_retries=None)
        self.on_give_up = on_give_up
        self.since: float | None = None  # time.monotonic() of the first failure
        self.failures = 0

    @property
    def down(self) -> bool:
        return self.since is not None

    def failed(self, exc: BrokerConnectionError) -> float | None:
        """A failed attempt: seconds to wait before the next one, or None when the policy
        allows no more (``on_give_up`` has been called: the worker stops)."""
        if self.since is None:
            self.since, self.failures = time.monotonic(), 0
        self.failures += 1
        # A refusal after start is retried like any failure: a restarting RabbitMQ may
        # refuse a vhost it has not opened yet.
        if not self.policy.after_start:
            self._give_up(exc, "broker_connection_retry is off")
            return None
        if self.policy.used_up(self.failures):
            self._give_up(exc, f"broker_connection_max_retries={self.policy.max_retries}")
            return None
        if self.failures == 1:
            limit = self.policy.max_retries
            logger.warning(
                "lost the broker connection: %s Trying again with backoff (%.0f s doubling "
                "to %.0f s, %s); running tasks go on.",
                exc, FIRST_WAIT, MAX_WAIT,
                "no limit" if limit is None else f"at most {limit} retries",
            )  # fmt: skip
        else:
            logger.debug("broker still unreachable (%s): %s", self.policy.of(self.failures), exc)
        return backoff(self.failures)

    def restored(self) -> None:
        """An attempt succeeded: say so once if the connection had been lost."""
        if self.since is None:
            return
        logger.info(
            "connection to %s restored after %.0f s (%d failed attempts)",
            self.broker, time.monotonic() - self.since, self.failures,
        )  # fmt: skip
        self.since, self.failures = None, 0

    def _give_up(self, exc: BrokerConnectionError, why: str) -> None:
        logger.critical("lost the broker connection and will not retry (%s): %s", why, exc)
        if self.on_give_up is not None:
            self.on_give_up(exc)
