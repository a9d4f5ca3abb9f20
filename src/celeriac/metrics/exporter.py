"""``celeriac exporter``: cluster-wide metrics from the broker's state, on one endpoint.

Runtime layer, beside the worker's own metrics. Serves ``celeriac_queue_depth`` (ready and
delayed; a worker's leased messages are in that worker's own metrics) and
``celeriac_dead_letters`` for the app's queues, read at each scrape. Task counts and worker
liveness come from the workers' own endpoints (``--metrics-port``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from prometheus_client.registry import CollectorRegistry

from celeriac.metrics.broker_state import BrokerStateCollector
from celeriac.metrics.server import MetricsServer


def exporter_registry(app: Any, queues: Sequence[str] = ()) -> CollectorRegistry:
    """The exporter's metrics for ``queues`` (default: the app's known queues, read at
    each scrape, so queues declared later are included)."""
    registry = CollectorRegistry()
    chosen = list(queues)
    registry.register(BrokerStateCollector(app.broker, lambda: chosen or sorted(app.amqp.queues)))
    return registry


def serve_exporter(
    app: Any, port: int, address: str = "0.0.0.0", queues: Sequence[str] = ()
) -> MetricsServer:
    """Start serving the exporter's metrics; ``close()`` the server to stop."""
    return MetricsServer(exporter_registry(app, queues), port, address).start()


__all__ = ["exporter_registry", "serve_exporter"]
