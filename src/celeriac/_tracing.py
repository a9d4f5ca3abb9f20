"""The seam distributed tracing plugs into: what the producer and ``trace`` call.

Leaf module: imports nothing from celeriac at run time. An app is traced when
``app.tracing`` holds a ``TaskTracing`` (``celeriac.contrib.opentelemetry.instrument``
sets one); while it is ``None`` the producer and ``trace`` skip all of this after one
attribute read.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:  # types only: the request, outcome and task sit above the leaves
    from celeriac.request import Request
    from celeriac.task import Task
    from celeriac.trace import Outcome


class PublishTrace(Protocol):
    """One message being sent: its context goes into the message's headers."""

    #: Headers to add to the message (``traceparent``, ...); empty when not recording.
    headers: Mapping[str, str]

    def end(self, error: BaseException | None) -> None:
        """The send is over: ``error`` is what failed it, if anything did."""


class RunTrace(Protocol):
    """One execution of a task, current in its context from start until ``end``."""

    def end(self, outcome: Outcome | None, error: BaseException | None) -> None:
        """The execution is over: its outcome, or ``error`` when trace itself failed."""


class TaskTracing(Protocol):
    """What an app's tracing does around each send and each execution."""

    def start_batch(self, count: int) -> PublishTrace:
        """``count`` messages sent together (a group's): the parent of their sends."""

    def start_publish(
        self, name: str, task_id: str, queue: str, options: Mapping[str, Any]
    ) -> PublishTrace:
        """A task call about to be encoded: ``options`` are its routed call options."""

    def start_run(self, task: Task[..., Any], request: Request) -> RunTrace:
        """An execution about to begin (before ``task_prerun``)."""
