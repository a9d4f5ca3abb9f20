"""Routing: which queue a task call goes to (``queue=`` > task attribute > ``task_routes``
> ``task_default_queue``), and whether that queue may be used.

``task_routes`` takes Celery's forms: a mapping of task name, glob or compiled regex to
options (or a queue name), a router function ``(name, args, kwargs, options, task=None,
**kw)``, or a list of those tried in order.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from celeriac.exceptions import QueueNotFound
from celeriac.messages.call_options import WORKER_DIRECT_EXCHANGE

RouterFunction = Callable[..., Any]


def _queue_name(item: Any) -> str:
    if isinstance(item, str):
        return item
    if isinstance(item, Mapping):
        return str(item["name"])
    return str(item.name)  # kombu.Queue-like objects


def declared_queues(task_queues: Any) -> list[str]:
    if not task_queues:
        return []
    if isinstance(task_queues, Mapping):
        return [str(name) for name in task_queues]
    return [_queue_name(item) for item in task_queues]


def _mapping_router(routes: Mapping[Any, Any]) -> RouterFunction:
    exact = {k: v for k, v in routes.items() if isinstance(k, str) and not _is_glob(k)}
    patterns = [
        (re.compile(fnmatch.translate(k)) if isinstance(k, str) else k, v)
        for k, v in routes.items()
        if not (isinstance(k, str) and not _is_glob(k))
    ]

    def route(name: str, *_: Any, **__: Any) -> Any:
        if name in exact:
            return exact[name]
        for pattern, value in patterns:
            if pattern.match(name):
                return value
        return None

    return route


def _is_glob(key: str) -> bool:
    return any(ch in key for ch in "*?[")


def compile_routes(task_routes: Any) -> list[RouterFunction]:
    if not task_routes:
        return []
    if isinstance(task_routes, Mapping) or callable(task_routes):
        task_routes = [task_routes]
    routers: list[RouterFunction] = []
    for item in task_routes:
        if isinstance(item, Mapping):
            routers.append(_mapping_router(item))
        elif callable(item):
            routers.append(item)
        else:
            raise TypeError(f"task_routes entry must be a mapping or a function, not {item!r}")
    return routers


def direct_queue(hostname: str) -> str:
    """The queue only the worker ``hostname`` consumes (``worker_direct``): Celery's name."""
    return f"{hostname}.dq2"


class Router:
    """Decides the queue (and route options such as priority) for each call."""

    def __init__(
        self,
        routes: Any,
        queues: Any,
        default_queue: str,
        create_missing: bool,
    ) -> None:
        self.routers = compile_routes(routes)
        self.queues = declared_queues(queues)
        self.default_queue = default_queue
        self.create_missing = create_missing

    def route(
        self,
        name: str,
        args: Sequence[Any],
        kwargs: Mapping[str, Any],
        options: Mapping[str, Any],
        task: Any = None,
    ) -> dict[str, Any]:
        """Return the call's options completed with ``queue`` (explicit options win)."""
        merged = dict(options)
        if not merged.get("queue"):
            for router in self.routers:
                found = router(name, args, kwargs, dict(options), task=task)
                if found is None:
                    continue
                route = {"queue": found} if isinstance(found, str) else dict(found)
                merged = {**route, **{k: v for k, v in merged.items() if v is not None}}
                break
        if not merged.get("queue") and merged.get("exchange") == WORKER_DIRECT_EXCHANGE:
            node = merged.get("routing_key")
            if node:  # Celery's route to one worker: exchange C.dq2, routing key its name
                merged["queue"] = direct_queue(str(node))
        queue = _queue_name(merged.get("queue") or self.default_queue)
        if not queue.endswith(".dq2"):  # a worker's own queue is made by the worker
            self.check_queue(queue)
        merged["queue"] = queue
        return merged

    def check_queue(self, queue: str) -> None:
        if self.create_missing or not self.queues or queue in self.queues:
            return
        raise QueueNotFound(
            f"queue {queue!r} is not in task_queues ({', '.join(self.queues)}) and "
            f"task_create_missing_queues is off: declare it or fix the route"
        )
