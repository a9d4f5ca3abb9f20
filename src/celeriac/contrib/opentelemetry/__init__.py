"""OpenTelemetry tracing for an app: ``instrument(app)`` (needs ``celeriac[otel]``).

Edge package: imports the app's tracing seam (``celeriac._tracing``) and OpenTelemetry's
API; nothing in celeriac imports it, so without OpenTelemetry installed nothing changes.
Spans are sent to the tracer provider the process sets up (the OpenTelemetry SDK); with
none set, each send and execution costs one check.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

try:
    from opentelemetry.propagators.textmap import TextMapPropagator
    from opentelemetry.trace import TracerProvider
except ImportError as exc:  # the extra is not installed
    raise ImportError(
        "celeriac.contrib.opentelemetry needs OpenTelemetry's API: "
        "pip install 'celeriac[otel]' (and opentelemetry-sdk to export spans)"
    ) from exc

from celeriac.contrib.opentelemetry.spans import OpenTelemetryTracing

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac

__all__ = ["OpenTelemetryTracing", "instrument", "is_instrumented", "uninstrument"]


def instrument(
    app: Celeriac,
    *,
    tracer_provider: TracerProvider | None = None,
    propagator: TextMapPropagator | None = None,
) -> None:
    """Trace ``app``'s task sends and executions, in this process and in its workers.

    Call it where the app is defined, so the worker and every prefork child have it.
    ``tracer_provider``: else the global provider, as it is when each span starts;
    ``propagator``: how the context is written into message headers, else the global
    one (W3C trace context and baggage). Calling it again replaces the earlier choice.
    """
    if not hasattr(app, "producer") or not hasattr(app, "tracing"):
        raise TypeError(
            f"instrument() needs a celeriac app (Celery(...)), not {type(app).__name__}"
        )
    app.tracing = OpenTelemetryTracing(tracer_provider, propagator)


def uninstrument(app: Celeriac) -> None:
    """Stop tracing ``app``: sends and executions go back to costing nothing."""
    app.tracing = None


def is_instrumented(app: Celeriac) -> bool:
    return isinstance(app.tracing, OpenTelemetryTracing)
