"""``OpenTelemetryTracing``: the app's ``TaskTracing`` on OpenTelemetry's API.

A PRODUCER span per message sent, its context written into the message's headers by the
propagator (W3C ``traceparent`` by default); a CONSUMER span per execution, child of the
context the message carries and current while the task runs, stores its result and sends
what follows it (callbacks, the next chain step, a chord's body), so those sends are its
children. A retry carries the context of the attempt that asked for it.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.propagators.textmap import TextMapPropagator
from opentelemetry.trace import (
    NoOpTracerProvider,
    ProxyTracerProvider,
    SpanKind,
    Status,
    StatusCode,
    TracerProvider,
)

import celeriac
from celeriac.contrib.opentelemetry import attributes

if TYPE_CHECKING:
    from celeriac.request import Request
    from celeriac.task import Task
    from celeriac.trace import Outcome

SCOPE = "celeriac.contrib.opentelemetry"


class _Untraced:
    """What a send or run gets when nothing records spans: no headers, nothing to end."""

    headers: Mapping[str, str] = {}

    def end(self, *_: Any) -> None:
        return None


_UNTRACED = _Untraced()


class _Sending:
    """A PRODUCER span (or a batch's parent span, current until it ends)."""

    __slots__ = ("headers", "span", "token")

    def __init__(self, span: trace.Span, headers: Mapping[str, str], current: bool) -> None:
        self.span, self.headers = span, headers
        self.token = otel_context.attach(trace.set_span_in_context(span)) if current else None

    def end(self, error: BaseException | None) -> None:
        if error is not None:
            _record_error(self.span, error)
        if self.token is not None:
            otel_context.detach(self.token)
        self.span.end()


class _Running:
    """A CONSUMER span, current in the execution's context until it ends."""

    __slots__ = ("context", "propagator", "span", "task", "token")

    def __init__(
        self,
        span: trace.Span,
        task: Task[..., Any],
        propagator: TextMapPropagator,
        parent: otel_context.Context,
    ) -> None:
        self.span, self.task, self.propagator = span, task, propagator
        self.context = trace.set_span_in_context(span, parent)  # with the message's baggage
        self.token = otel_context.attach(self.context)

    def end(self, outcome: Outcome | None, error: BaseException | None) -> None:
        try:
            if outcome is not None:
                self._record(outcome)
            elif error is not None:
                _record_error(self.span, error)
        finally:
            otel_context.detach(self.token)
            self.span.end()

    def _record(self, outcome: Outcome) -> None:
        self.span.set_attributes(attributes.ended(outcome))
        retry = outcome.retry
        if retry is not None and retry.sig is not None:
            # The worker's main process sends the retry after this span ended: the message
            # carries this attempt's context, so the next attempt is its child.
            options = retry.sig.options
            options["headers"] = self._with_context(options.get("headers") or {})
        failed = outcome.state == "FAILURE" and outcome.exc is not None
        if failed and not isinstance(outcome.exc, tuple(self.task.throws)):  # as Celery's
            assert outcome.exc is not None
            _record_error(self.span, outcome.exc)

    def _with_context(self, headers: Mapping[str, Any]) -> dict[str, Any]:
        carrier = {k: v for k, v in headers.items() if k not in self.propagator.fields}
        self.propagator.inject(carrier, context=self.context)
        return carrier


def _record_error(span: trace.Span, error: BaseException) -> None:
    span.record_exception(error)
    span.set_attribute(attributes.ERROR_TYPE, attributes.error_type(error))
    span.set_status(Status(StatusCode.ERROR, f"{type(error).__name__}: {error}"))


def _valid(context: otel_context.Context) -> bool:
    return trace.get_current_span(context).get_span_context().is_valid


class OpenTelemetryTracing:
    """Spans for one app's sends and executions (``celeriac.contrib.opentelemetry.instrument``).

    ``tracer_provider``: the provider to use, else the global one (``trace.
    set_tracer_provider``), looked up when each span starts, so a provider set up later
    (in ``worker_process_init``) applies. ``propagator``: else the global one.
    """

    def __init__(
        self,
        tracer_provider: TracerProvider | None = None,
        propagator: TextMapPropagator | None = None,
    ) -> None:
        self._provider = tracer_provider
        self._propagator = propagator
        self._tracer = trace.get_tracer(SCOPE, celeriac.__version__, tracer_provider)

    def _recording(self) -> bool:
        """Whether a provider that records is there: the cheap check before any span."""
        if self._provider is not None:
            return True
        provider = trace.get_tracer_provider()
        return not isinstance(provider, (ProxyTracerProvider, NoOpTracerProvider))

    @property
    def propagator(self) -> TextMapPropagator:
        return self._propagator or propagate.get_global_textmap()

    def start_batch(self, count: int) -> _Sending | _Untraced:
        if not self._recording():
            return _UNTRACED
        span = self._tracer.start_span(attributes.BATCH_SPAN, attributes=attributes.batch(count))
        return _Sending(span, {}, current=True)

    def start_publish(
        self, name: str, task_id: str, queue: str, options: Mapping[str, Any]
    ) -> _Sending | _Untraced:
        if not self._recording():
            return _UNTRACED
        parent = otel_context.get_current()
        given = options.get("headers")
        if not _valid(parent) and given:  # a retry sent by the worker: its attempt's context
            parent = self.propagator.extract(given)
        span = self._tracer.start_span(
            attributes.publish_name(name),
            context=parent,
            kind=SpanKind.PRODUCER,
            attributes=attributes.publish(name, task_id, queue, options),
        )
        headers: MutableMapping[str, str] = {}
        self.propagator.inject(headers, context=trace.set_span_in_context(span, parent))
        return _Sending(span, headers, current=False)

    def start_run(self, task: Task[..., Any], request: Request) -> _Running | _Untraced:
        if not self._recording():
            return _UNTRACED
        parent = self.propagator.extract(request.headers) if request.headers else None
        if parent is None or not _valid(parent):  # apply() or an untraced sender: the caller's
            parent = otel_context.get_current()
        span = self._tracer.start_span(
            attributes.run_name(str(task.name)),
            context=parent,
            kind=SpanKind.CONSUMER,
            attributes=attributes.run(task, request),
        )
        return _Running(span, task, self.propagator, parent)
