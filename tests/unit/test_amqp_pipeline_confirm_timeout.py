"""The RabbitMQ engine's pipelined publishes: a confirm that does not come within
``confirm_timeout`` is a failure the producer hears of (raised by ``flush()``), found by
one watch over the oldest sends rather than a timer per publish; sends confirmed in time
are forgotten by that watch and leave nothing behind."""

from __future__ import annotations

import asyncio

import pytest

from celeriac.brokers.amqp import pipeline
from celeriac.brokers.amqp.io import IOThread
from celeriac.brokers.amqp.pipeline import Pipeline
from celeriac.exceptions import BrokerError


def test_a_publish_never_confirmed_fails_after_the_confirm_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(pipeline, "WATCH_EVERY", 0.05)
    io = IOThread("test-pipeline-timeout")

    async def hand_over(messages: list[str]) -> list[asyncio.Future[None]]:
        # "stuck" is never confirmed; the others are at once.
        loop = asyncio.get_running_loop()
        sends = []
        for message in messages:
            send: asyncio.Future[None] = loop.create_future()
            if message != "stuck":
                send.set_result(None)
            sends.append(send)
        return sends

    line: Pipeline[str] = Pipeline(io, hand_over, confirm_timeout=0.2)
    try:
        line.put("fine")
        line.flush()  # confirmed: no failure
        line.put("stuck")
        with pytest.raises(BrokerError, match=r"did not confirm a publish within 0.2 s"):
            line.flush()
        assert line.idle and line.unconfirmed == 0
        line.put("fine again")  # the failure was raised once; the line goes on
        line.flush()

        async def look() -> int:  # the watch's next look, now
            line._look()
            return len(line._due) + len(line._overdue)

        assert io.run(look()) == 0  # nothing is kept of the sends that ended
    finally:
        io.stop()


def test_a_slow_confirm_does_not_keep_the_sends_confirmed_after_it() -> None:
    io = IOThread("test-pipeline-slow")
    slow: list[asyncio.Future[None]] = []

    async def hand_over(messages: list[str]) -> list[asyncio.Future[None]]:
        loop = asyncio.get_running_loop()
        sends = []
        for message in messages:
            send: asyncio.Future[None] = loop.create_future()
            if message == "slow":
                slow.append(send)
            else:
                send.set_result(None)
            sends.append(send)
        return sends

    line: Pipeline[str] = Pipeline(io, hand_over, confirm_timeout=60.0)
    try:
        for message in ("slow", *(f"quick {i}" for i in range(50))):
            line.put(message)

        async def look() -> list[asyncio.Future[None]]:
            line._look()
            return [send for _, send in line._due]

        assert io.run(look()) == slow  # only the one still waiting for its confirm
        io.loop.call_soon_threadsafe(slow[0].set_result, None)
        line.flush()
        assert io.run(look()) == []
    finally:
        io.stop()
