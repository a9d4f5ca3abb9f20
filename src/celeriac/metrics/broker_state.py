"""What the broker holds, read at scrape time: queue depths and dead letters per reason.

Reads the broker through the seam only (``queue_length``, ``delayed_count``,
``dead_letters``) from the HTTP server's thread. A broker that cannot be reached (or a
worker's broker already closed) gives no samples for that scrape, never an error page.
The oldest message's age is not in the seam, so it is not exported.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from celeriac.brokers.base import Broker
from celeriac.metrics.names import DEAD_LETTERS, QUEUE_DEPTH

logger = logging.getLogger("celeriac.metrics")
#: Dead letters read per queue and scrape: the count stops here (a queue with more shows
#: this many), so a scrape stays cheap when a queue has piled up many.
DEAD_LETTER_SCAN = 1000
#: The queue label of the one delayed sample of a broker that counts every queue's
#: delayed messages together (RabbitMQ's shared delay queues).
ALL_QUEUES = "*"


class BrokerStateCollector(Collector):
    """``celeriac_queue_depth`` (ready, delayed, and leased when ``leased`` is given) and
    ``celeriac_dead_letters`` for ``queues``."""

    def __init__(
        self,
        broker: Broker,
        queues: Callable[[], Sequence[str]],
        leased: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.broker = broker
        self.queues = queues
        self.leased = leased
        self._lock = threading.Lock()  # one scrape at a time on the broker connection

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily(
            QUEUE_DEPTH,
            "Messages in a queue: ready to fetch, delayed (a countdown or eta), or leased "
            "(held by this worker, in the worker's own metrics)",
            labels=["queue", "state"],
        )
        dead = GaugeMetricFamily(
            DEAD_LETTERS, "Dead letters of a queue, by reason", labels=["queue", "reason"]
        )
        queues = list(self.queues())
        with self._lock:
            for queue in queues:
                self._depth(depth, queue)
                self._dead(dead, queue)
            if queues and not self.broker.delays_counted_per_queue:
                self._delayed(depth, ALL_QUEUES, queues[0])
        if self.leased is not None:
            held = self.leased()
            for queue in sorted(set(queues) | set(held)):
                depth.add_metric([queue, "leased"], held.get(queue, 0))
        yield depth
        yield dead

    def _depth(self, family: GaugeMetricFamily, queue: str) -> None:
        try:
            ready = self.broker.queue_length(queue)
        except Exception as exc:  # a scrape never fails: the samples are absent
            logger.debug("queue depth of %s unavailable: %s", queue, exc)
            return
        family.add_metric([queue, "ready"], ready)
        if self.broker.delays_counted_per_queue:
            self._delayed(family, queue, queue)

    def _delayed(self, family: GaugeMetricFamily, label: str, queue: str) -> None:
        """The delayed sample, labelled ``label``: the queue, or ``ALL_QUEUES`` where the
        broker counts every queue's delayed messages together (RabbitMQ)."""
        try:
            delayed = self.broker.delayed_count(queue)
        except Exception as exc:
            logger.debug("delayed count of %s unavailable: %s", queue, exc)
            return
        family.add_metric([label, "delayed"], delayed)

    def _dead(self, family: GaugeMetricFamily, queue: str) -> None:
        try:
            letters = self.broker.dead_letters(queue, DEAD_LETTER_SCAN)
        except Exception as exc:
            logger.debug("dead letters of %s unavailable: %s", queue, exc)
            return
        for reason, count in sorted(Counter(letter.reason.value for letter in letters).items()):
            family.add_metric([queue, reason], count)


def held_by_queue(deliveries: Iterable[Any]) -> dict[str, int]:
    """Deliveries counted per queue (``Delivery.queue``)."""
    return dict(Counter(delivery.queue for delivery in deliveries))


__all__ = ["ALL_QUEUES", "DEAD_LETTER_SCAN", "BrokerStateCollector", "held_by_queue"]
