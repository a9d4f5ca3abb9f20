"""Prometheus metrics: a worker's own ``/metrics`` and the cluster-wide ``exporter``.

Runtime layer, above the worker: it listens to the worker through its task listeners
(``worker.listeners``) and reads the broker through the seam, never an engine. Needs the
``metrics`` extra (prometheus-client); nothing else in celeriac imports this package.
"""

from __future__ import annotations

from celeriac.metrics.names import UNREGISTERED
from celeriac.metrics.server import MetricsServer
from celeriac.metrics.worker import WorkerMetrics, serve_worker_metrics

__all__ = ["UNREGISTERED", "MetricsServer", "WorkerMetrics", "serve_worker_metrics"]
