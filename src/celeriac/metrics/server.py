"""The ``/metrics`` HTTP endpoint: prometheus-client's server on a daemon thread.

Imports prometheus-client only. ``MetricsServer.start`` binds the port at once, so a port
in use fails the start with a clear error instead of a silent endpoint that never answers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from wsgiref.simple_server import WSGIServer

from prometheus_client import start_http_server
from prometheus_client.registry import CollectorRegistry

from celeriac.exceptions import ImproperlyConfigured


class MetricsServer:
    """Serves one registry on ``http://address:port/metrics`` until ``close``."""

    def __init__(self, registry: CollectorRegistry, port: int, address: str = "0.0.0.0") -> None:
        self.registry, self.port, self.address = registry, port, address
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.closing: list[Callable[[], None]] = []  # what to release once it stops

    def start(self) -> MetricsServer:
        try:
            self._server, self._thread = start_http_server(self.port, self.address, self.registry)
        except OSError as exc:
            raise ImproperlyConfigured(
                f"cannot serve metrics on {self.address}:{self.port}: {exc.strerror or exc}; "
                f"choose a free port (--metrics-port / worker_metrics_port)"
            ) from exc
        self.port = self._server.server_port  # the port given, or the one 0 picked
        return self

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        while self.closing:
            self.closing.pop()()


__all__ = ["MetricsServer"]
