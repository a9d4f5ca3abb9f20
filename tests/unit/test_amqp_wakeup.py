"""``Wakeup``: what a RabbitMQ fetch waits on while no message has arrived."""

from __future__ import annotations

import asyncio

from celeriac.brokers.amqp.wakeup import Wakeup


def test_a_wait_ends_when_news_comes_and_not_before() -> None:
    async def scenario() -> None:
        wakeup = Wakeup()
        waiting = asyncio.ensure_future(wakeup.wait(30))
        await asyncio.sleep(0)  # (let the wait start)
        assert not waiting.done()
        wakeup.set()
        assert await asyncio.wait_for(waiting, 5) is True

    asyncio.run(scenario())


def test_news_that_came_before_the_wait_is_not_missed_until_cleared() -> None:
    async def scenario() -> None:
        wakeup = Wakeup()
        wakeup.set()
        assert await wakeup.wait(30) is True  # at once
        wakeup.clear()
        assert await wakeup.wait(0.01) is False  # nothing new since the clear

    asyncio.run(scenario())


def test_a_wait_with_no_news_ends_after_its_timeout() -> None:
    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        assert await Wakeup().wait(0.05) is False
        assert loop.time() - started >= 0.05 - 0.005  # (the loop's clock granularity)

    asyncio.run(scenario())


def test_a_cancelled_wait_leaves_nothing_behind() -> None:
    async def scenario() -> None:
        wakeup = Wakeup()
        waiting = asyncio.ensure_future(wakeup.wait(30))
        await asyncio.sleep(0)
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
        assert waiting.cancelled()
        assert not wakeup._waiters, "a cancelled wait must not stay registered"
        wakeup.set()  # news after it: nobody to wake, and no error

    asyncio.run(scenario())
