"""``celeriac exporter`` and the worker's ``--metrics-port``: Prometheus endpoints.

Edge layer (cli). The metrics package needs the ``metrics`` extra (prometheus-client); a
missing one stops the command with the install line instead of an import error.
"""

from __future__ import annotations

import importlib.util
import signal
import threading
from typing import Any

import click

from celeriac.cli.base import CLIContext, CLIError
from celeriac.exceptions import ImproperlyConfigured

PORTS = click.IntRange(min=0, max=65535)


def require_prometheus_client() -> None:
    if importlib.util.find_spec("prometheus_client") is None:
        raise CLIError("metrics need prometheus-client: pip install 'celeriac[metrics]'")


def start_worker_metrics(worker: Any, port: int | None) -> Any:
    """Serve ``worker``'s ``/metrics`` on ``port`` (the option, else the
    ``worker_metrics_port`` setting); None when neither asks for it."""
    port = port if port is not None else worker.app.conf.get("worker_metrics_port")
    if port is None:
        return None
    require_prometheus_client()
    from celeriac.metrics import serve_worker_metrics  # the optional extra, only when asked

    try:
        return serve_worker_metrics(worker, int(port))
    except ImproperlyConfigured as exc:
        raise CLIError(str(exc)) from exc


@click.command("exporter")
@click.option("--port", type=PORTS, default=9808, show_default=True, help="Port to serve on.")
@click.option("--address", default="0.0.0.0", show_default=True, help="Address to bind.")
@click.option(
    "-Q", "--queues", multiple=True, metavar="COMMA SEPARATED LIST",
    help="Queues to report (default: every known queue).",
)  # fmt: skip
@click.option(
    "--without-events", is_flag=True,
    help="Only what the broker holds: no task counts, runtimes or workers from events.",
)  # fmt: skip
@click.pass_obj
def exporter_command(
    obj: CLIContext, port: int, address: str, queues: tuple[str, ...], without_events: bool
) -> None:
    """Serve cluster-wide metrics on /metrics: queue depths and dead letters from the
    broker; task counts, runtimes and workers from events."""
    require_prometheus_client()
    from celeriac.cli.ops import comma_list  # (the exporter's command only)
    from celeriac.metrics.exporter import serve_exporter

    app = obj.load_app()
    try:
        server = serve_exporter(app, port, address, comma_list(queues), events=not without_events)
    except ImproperlyConfigured as exc:
        raise CLIError(str(exc)) from exc
    click.echo(f"celeriac exporter: serving http://{address}:{server.port}/metrics")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        server.close()
        app.close()


__all__ = ["exporter_command", "require_prometheus_client", "start_worker_metrics"]
