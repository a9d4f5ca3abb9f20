"""The move: fetch from the source, publish each message to the target, and ack it on the
source only once the target holds it. One message is in between at a time, so a crash
duplicates at most one message (on both brokers) and never loses one.

Runtime layer: the broker seam and ``convert``. A message that cannot be moved, and in a
dry run every message, is held (its lease renewed) and given back to the source when the
run ends, unchanged, so that a later fetch of this run does not meet it again.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass

from celeriac.brokers.base import Broker, Delivery
from celeriac.exceptions import BrokerError
from celeriac.migrate.convert import Converted, convert
from celeriac.migrate.sides import Sides
from celeriac.migrate.tally import Problem, SkipReason, Tally

BATCH = 10  # messages fetched per round trip; each is still moved on its own
SOURCE, TARGET = "the source", "the target"


@contextlib.contextmanager
def on(side: str) -> Iterator[None]:
    """A broker error says which side it came from (both may be the same kind of broker)."""
    try:
        yield
    except BrokerError as exc:
        raise BrokerError(f"{side}: {exc}") from exc


@dataclass(frozen=True)
class MovePlan:
    """What one run moves: source queue -> target queue, and when it stops."""

    queues: dict[str, str]
    limit: int | None = None  # stop after this many moved
    timeout: float = 1.0  # stop once no message arrives for this many seconds
    dry_run: bool = False
    max_size: int | None = None  # task_message_max_size: larger messages stay behind


def move(sides: Sides, plan: MovePlan) -> Tally:
    """Run ``plan`` from synchronous code and count what is left; both brokers are closed
    at the end. A broker error that stops the run is kept in ``tally.stopped``."""
    tally = Tally.of(plan.queues, plan.dry_run)

    async def run() -> None:
        try:
            await run_move(sides.source, sides.target, plan, tally)
        finally:
            await sides.source.close_async()
            await sides.target.close_async()

    try:
        for queue in tally.queues.values():  # the target answers before anything is read
            with on(TARGET):
                on_target = sides.target.queue_length(queue.target)
            if plan.dry_run:
                queue.on_target = on_target
        asyncio.run(run())
        for queue in tally.queues.values():
            with on(SOURCE):
                queue.delayed_on_source = sides.source.delayed_count(queue.source)
                if not plan.dry_run:
                    queue.on_source = sides.source.queue_length(queue.source)
    except BrokerError as exc:
        tally.stopped = str(exc)
    finally:
        sides.close()
    return tally


class _Run:
    """The state of one run: what is held, and when the leases were last renewed."""

    def __init__(self, source: Broker, target: Broker, plan: MovePlan, tally: Tally) -> None:
        self.source, self.target, self.plan, self.tally = source, target, plan, tally
        self.held: list[Delivery] = []
        self.renewed = time.monotonic()

    def wanted(self) -> int:
        if self.plan.limit is None:
            return BATCH
        return min(BATCH, self.plan.limit - self.tally.moved)

    async def take(self, deliveries: list[Delivery]) -> None:
        """Move (or hold) each message in turn; what an error leaves unhandled is held."""
        pending = list(deliveries)
        try:
            while pending:
                await self.one(pending[0])
                pending.pop(0)
                await self.renew(pending)
        finally:
            self.held.extend(pending)

    async def one(self, delivery: Delivery) -> None:
        queue = self.tally.queue(delivery.queue)
        found = convert(
            delivery, self.source.wire_format, self.target.wire_format,
            queue.target, time.time(), self.plan.max_size,
        )  # fmt: skip
        if isinstance(found, Problem):
            queue.skip(found)
            self.held.append(delivery)
            return
        if self.plan.dry_run:
            self.held.append(delivery)
        else:
            if not await self.publish(delivery, found):
                return
            # False when its lease ran out meanwhile: the source hands it out again, and
            # the target gets it twice, with the same task id.
            with on(SOURCE):
                await delivery.ack()
                await self.source.settle_acks()  # applied before the next is published
        queue.moved += 1
        queue.waiting_for_eta += found.waits_for_eta

    async def publish(self, delivery: Delivery, found: Converted) -> bool:
        """Publish to the target and return once it holds the message; False (the
        message held for the source) when the target refuses this message alone."""
        try:
            with on(TARGET):
                await self.target.publish_async(found.outbound)
                await self.target.flush_async()
        except ValueError as exc:  # this message only (a delay the broker cannot hold...)
            problem = Problem(found.message.id, SkipReason.REFUSED, str(exc))
            self.tally.queue(delivery.queue).skip(problem)
            self.held.append(delivery)
            return False
        return True

    def note_dead_lettered(self) -> None:
        """What the source moved to its dead letters on its own while handing out."""
        for letter in self.source.take_dead_lettered():
            detail = f"{letter.reason.value}: {letter.detail}"
            problem = Problem(letter.message_id, SkipReason.DEAD_LETTERED, detail)
            self.tally.queue(letter.queue).skip(problem)

    async def renew(self, pending: list[Delivery]) -> None:
        """Keep the leases of the held messages and of those still to move, as a worker
        does for the tasks it runs."""
        if time.monotonic() - self.renewed > self.source.lease_seconds / 3:
            if self.held or pending:
                with on(SOURCE):
                    await self.source.extend([*self.held, *pending])
            self.renewed = time.monotonic()

    async def give_back(self) -> None:
        """Every held message back to the source, in the order it was handed out."""
        for delivery in self.held:
            try:
                await delivery.requeue()
            except BrokerError:  # the source is down: the lease's end gives it back
                self.tally.not_given_back += 1
        self.held.clear()
        with contextlib.suppress(BrokerError):
            await self.source.stop_fetching()


async def run_move(source: Broker, target: Broker, plan: MovePlan, tally: Tally) -> Tally:
    """Move until no message comes within ``plan.timeout`` or ``plan.limit`` moved."""
    run = _Run(source, target, plan, tally)
    try:
        while run.wanted() > 0:
            with on(SOURCE):
                deliveries = await source.fetch(list(plan.queues), run.wanted(), plan.timeout)
            run.note_dead_lettered()
            await run.take(deliveries)
            if not deliveries:
                break
    finally:
        await run.give_back()
    return tally


__all__ = ["BATCH", "MovePlan", "move", "run_move"]
