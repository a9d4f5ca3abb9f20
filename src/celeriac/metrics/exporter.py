"""``celeriac exporter``: cluster-wide metrics on one endpoint, from the broker and events.

Runtime layer, beside the worker's own metrics. From the broker, read at each scrape:
``celeriac_queue_depth`` (ready and delayed; a worker's leased messages are in that
worker's own metrics) and ``celeriac_dead_letters``. From the event stream
(``events_feed``): ``celeriac_tasks_total`` and ``celeriac_task_runtime_seconds`` (workers
started with ``-E``), ``celeriac_worker_up`` and ``celeriac_worker_slots`` (heartbeats).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client.registry import CollectorRegistry

from celeriac.metrics.broker_state import BrokerStateCollector
from celeriac.metrics.events_feed import EventFeed, EventMetrics
from celeriac.metrics.server import MetricsServer


def serve_exporter(
    app: Any,
    port: int,
    address: str = "0.0.0.0",
    queues: Sequence[str] = (),
    *,
    events: bool = True,
) -> MetricsServer:
    """Start serving the exporter's metrics for ``queues`` (default: the app's known queues,
    read at each scrape); ``events=False`` leaves out what events tell. ``close()`` the
    server to stop (the event feed stops with it)."""
    chosen = list(queues)

    def known() -> list[str]:
        return chosen or sorted(app.amqp.queues)

    registry = CollectorRegistry()
    registry.register(BrokerStateCollector(app.broker, known))
    server = MetricsServer(registry, port, address)
    if events:
        feed = EventFeed(app, EventMetrics(app, registry, known)).start()
        server.closing.append(feed.close)
    try:
        return server.start()
    except BaseException:
        server.close()
        raise


__all__ = ["serve_exporter"]
