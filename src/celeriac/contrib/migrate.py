"""``celery.contrib.migrate.migrate_tasks``: move task messages from one broker to another
from Python, the same run as ``celeriac migrate`` (``celeriac.app.migration``).

Edge layer. ``source`` and ``dest`` are broker URLs or celeriac ``Broker`` objects (not
kombu connections). Celery's per-message hooks (``migrate=``, ``republish``,
``migrate_task``) work on kombu messages and producers, so they are not offered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from celeriac._context import get_current_app
from celeriac.app.migration import (
    Migration,
    broker_for,
    default_queues,
    migrate,
    parse_queues,
    split_names,
)
from celeriac.brokers.base import Broker
from celeriac.exceptions import CeleriacError


@dataclass
class State:
    """Celery's migration progress: ``count`` messages migrated, ``total_apx`` the
    messages the source queues held at the start (0 when the broker cannot say)."""

    count: int = 0
    filtered: int = 0
    total_apx: int = 0

    @property
    def strtotal(self) -> str:
        return str(self.total_apx) if self.total_apx else "?"

    def __repr__(self) -> str:
        return f"^{self.filtered}" if self.filtered else f"{self.count}/{self.strtotal}"


def migrate_tasks(
    source: str | Broker,
    dest: str | Broker,
    app: Any = None,
    queues: str | Iterable[str] | Mapping[str, str] | None = None,
    *,
    tasks: str | Iterable[str] | None = None,
    limit: int | None = None,
    timeout: float = 1.0,
    ack_messages: bool = False,
    forever: bool = False,
    callback: Callable[[State, str, str], None] | None = None,
) -> State:
    """Move (``ack_messages=True``) or copy (Celery's default) the task messages of
    ``queues`` from ``source`` to ``dest``; return the ``State``.

    ``queues``: names (a list, or a comma-separated string; ``"src:dest"`` renames), or a
    mapping of source to destination; default the app's queues. ``tasks``: only these
    task names. Stops after ``limit`` messages, or when none came for ``timeout`` seconds
    (never with ``forever``). ``callback(state, task_name, task_id)`` per message.
    """
    app = get_current_app() if app is None else app
    plan = Migration(
        _queues(queues, default_queues(app.conf)),
        frozenset(split_names([tasks] if isinstance(tasks, str) else tasks or ())),
        limit,
        timeout,
        forever,
        copy=not ack_messages,
    )
    src = source if isinstance(source, Broker) else broker_for(app.conf, source)
    dst = dest if isinstance(dest, Broker) else broker_for(app.conf, dest)
    state = State(total_apx=_queued(src, plan.queues))

    def report(name: str, task_id: str, count: int) -> None:
        state.count = count
        if callback is not None:
            callback(state, name, task_id)

    migrate(src, dst, plan, report)
    return state


def _queues(
    given: str | Iterable[str] | Mapping[str, str] | None, default: list[str]
) -> dict[str, str]:
    if isinstance(given, Mapping):
        return {str(source): str(dest) for source, dest in given.items()}
    return parse_queues([given] if isinstance(given, str) else given or (), default)


def _queued(broker: Broker, queues: Iterable[str]) -> int:
    try:
        return sum(broker.queue_length(queue) for queue in queues)
    except (CeleriacError, NotImplementedError):  # approximate: none when it cannot count
        return 0


__all__ = ["State", "migrate_tasks"]
