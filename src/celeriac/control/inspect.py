"""``Inspect``: ``app.control.inspect()``, the read-only commands with Celery's names,
each returning ``{node: reply}`` (None when no worker answered in time).

Imports the client's types only: the app hands it its ``broadcast`` (and itself, kept as
``app`` for callers that read it), so this module imports no app. ``objgraph`` is not
offered.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

from celeriac.control.client import Reply, ReplyCallback, check_destination
from celeriac.exceptions import DuplicateNodenameWarning

Broadcast = Callable[..., "list[Reply] | None"]


def flatten_reply(replies: Sequence[Reply]) -> dict[str, Any]:
    """``[{node: reply}, ...]`` as ``{node: reply, ...}``; warns when a node answered twice
    (two workers started with the same ``-n`` name)."""
    nodes: dict[str, Any] = {}
    twice: set[str] = set()
    for item in replies:
        twice.update(name for name in item if name in nodes)
        nodes.update(item)
    if twice:
        warnings.warn(
            f"Received multiple replies from node name(s) {', '.join(sorted(twice))}: give "
            f"each worker a unique node name with the worker's -n option",
            DuplicateNodenameWarning,
            stacklevel=3,
        )
    return nodes


class Inspect:
    """Inspect the workers: all of them, or the ``destination`` list of node names."""

    def __init__(
        self,
        broadcast: Broadcast,
        destination: Sequence[str] | None = None,
        timeout: float = 1.0,
        callback: ReplyCallback | None = None,
        limit: int | None = None,
        app: Any = None,
    ) -> None:
        self.app = app
        self._broadcast = broadcast
        self.destination = check_destination(destination)
        self.timeout = timeout
        self.callback = callback
        self.limit = limit

    def _request(self, command: str, **arguments: Any) -> dict[str, Any] | None:
        replies = self._broadcast(
            command,
            arguments=arguments,
            destination=self.destination,
            reply=True,
            timeout=self.timeout,
            limit=self.limit,
            callback=self.callback,
        )
        return flatten_reply(replies) if replies else None

    def ping(self, destination: Sequence[str] | None = None) -> dict[str, Any] | None:
        """``{node: {'ok': 'pong'}}`` for each worker that answered."""
        if destination:
            self.destination = check_destination(destination)
        return self._request("ping")

    def report(self) -> dict[str, Any] | None:
        return self._request("report")

    def active(self, safe: bool | None = None) -> dict[str, Any] | None:
        """``{node: [task info, ...]}``: the tasks running now."""
        return self._request("active", safe=safe)

    def reserved(self, safe: bool | None = None) -> dict[str, Any] | None:
        """``{node: [task info, ...]}``: received, waiting for a slot."""
        return self._request("reserved")

    def scheduled(self, safe: bool | None = None) -> dict[str, Any] | None:
        """``{node: []}``: ETA tasks wait on the broker, not in a worker."""
        return self._request("scheduled")

    def stats(self) -> dict[str, Any] | None:
        return self._request("stats")

    def clock(self) -> dict[str, Any] | None:
        """``{node: {'clock': value}}``: each worker's logical clock."""
        return self._request("clock")

    def revoked(self) -> dict[str, Any] | None:
        return self._request("revoked")

    def hello(self, from_node: str, revoked: Any = None) -> dict[str, Any] | None:
        """``{node: {'revoked': [...], 'clock': n}}`` from each worker but ``from_node``
        (which answers None)."""
        return self._request("hello", from_node=from_node, revoked=revoked)

    def registered(self, *taskinfoitems: str) -> dict[str, Any] | None:
        return self._request("registered", taskinfoitems=taskinfoitems)

    registered_tasks = registered

    def active_queues(self) -> dict[str, Any] | None:
        return self._request("active_queues")

    def query_task(self, *ids: str | Sequence[str]) -> dict[str, Any] | None:
        """``{node: {task_id: [state, info]}}``; ``query_task(id1, id2)`` or a list."""
        flat = [i for item in ids for i in ([item] if isinstance(item, str) else item)]
        return self._request("query_task", ids=flat)

    def memsample(self) -> dict[str, Any] | None:
        """``{node: '24.5MB'}``: each worker's resident memory now, also recorded."""
        return self._request("memsample")

    def memdump(self, samples: int = 10) -> dict[str, Any] | None:
        """``{node: text}``: the recorded samples and the memory after a collection."""
        return self._request("memdump", samples=samples)

    def conf(self, with_defaults: bool = False) -> dict[str, Any] | None:
        return self._request("conf", with_defaults=with_defaults)
