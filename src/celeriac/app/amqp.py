"""``app.amqp``: the app's queues as Celery's ``app.amqp`` shows them to user code.

App core. ``app.amqp.queues`` maps each queue name to its declaration (from
``task_queues``, else ``task_default_queue``); a name not declared is added on first
look-up while ``task_create_missing_queues`` is on. ``select``/``select_add``/``deselect``
choose what a worker consumes (``consume_from``): the worker selects its ``-Q`` queues
and, after ``celeryd_after_setup``, consumes what is selected then, so a receiver may
``instance.app.amqp.queues.select_add(name)``. Routing itself is ``app.router``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from celeriac.app.routing import Router, declared_queues
from celeriac.exceptions import QueueNotFound

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac


class Queues(dict[str, Any]):
    """Queue name -> its declaration (the ``task_queues`` item, or the name itself)."""

    def __init__(
        self,
        queues: Any = None,
        default_queue: str = "celery",
        create_missing: bool = True,
    ) -> None:
        super().__init__()
        self.default_queue = default_queue
        self.create_missing = create_missing
        self._consume_from: dict[str, Any] | None = None  # None: every queue
        items = list(queues.values()) if isinstance(queues, Mapping) else list(queues or ())
        for name, item in zip(declared_queues(queues), items, strict=True):
            self[name] = item
        if not self:
            self[default_queue] = default_queue

    def __missing__(self, name: str) -> Any:
        if not self.create_missing:
            raise QueueNotFound(
                f"queue {name!r} is not in task_queues ({', '.join(self)}) and "
                f"task_create_missing_queues is off: declare it"
            )
        return self.add(name)

    def add(self, queue: Any, **options: Any) -> Any:
        """Add a queue (a name, a mapping with ``name``, or a kombu-like ``Queue``)."""
        if options:
            raise TypeError(
                f"Queues.add() takes the queue only; {', '.join(sorted(options))} are "
                f"RabbitMQ exchange/binding options celeriac does not use (it routes to the "
                f"queue by name)"
            )
        name = declared_queues([queue])[0]
        self[name] = queue
        return queue

    def select_add(self, queue: Any, **options: Any) -> Any:
        """Add the queue and consume from it too."""
        name = declared_queues([queue])[0]
        if name not in self:
            self.add(queue, **options)
        if self._consume_from is not None:
            self._consume_from[name] = self[name]
        return self[name]

    def select(self, include: Iterable[str] | str) -> None:
        """Consume from these queues only (a name or names, comma-separated allowed)."""
        names = [include] if isinstance(include, str) else list(include)
        selected: dict[str, Any] = {}
        for item in names:
            for name in (part.strip() for part in item.split(",")):
                if name:
                    selected[name] = self[name]
        self._consume_from = selected

    def deselect(self, exclude: Iterable[str] | str) -> None:
        """Stop consuming from these queues."""
        names = [exclude] if isinstance(exclude, str) else list(exclude)
        current = dict(self.consume_from)
        for name in names:
            current.pop(name, None)
        self._consume_from = current

    @property
    def consume_from(self) -> dict[str, Any]:
        """The queues a worker consumes: those selected, else every queue."""
        return dict(self) if self._consume_from is None else dict(self._consume_from)


_Queues = Queues  # the class, for annotations inside AMQP (whose attribute shadows it)


class AMQP:
    """``app.amqp``: ``queues``, ``Queues``, ``router``, ``default_queue``."""

    Queues: type[Queues] = Queues

    def __init__(self, app: Celeriac) -> None:
        self.app = app
        self._queues: _Queues | None = None

    @property
    def queues(self) -> _Queues:
        """The app's queues, built from the settings on first use."""
        if self._queues is None:
            conf = self.app.conf
            self._queues = Queues(
                conf.task_queues, conf.task_default_queue, conf.task_create_missing_queues
            )
        return self._queues

    @queues.setter
    def queues(self, queues: _Queues) -> None:
        self._queues = queues

    @property
    def default_queue(self) -> str:
        return str(self.app.conf.task_default_queue)

    @property
    def router(self) -> Router:
        return self.app.router


__all__ = ["AMQP", "Queues"]
