"""``app.control``: commands to the workers, sent through the app's broker: ``revoke``,
``revoke_by_stamped_headers``, ``broadcast``, ``inspect()`` and Celery's other commands.

App core: reads the app's settings and talks only to the ``Broker`` seam and the mailbox
client (``celeriac.control``): a command goes to every worker or a ``destination`` list,
and ``reply=True`` returns ``[{node: reply}, ...]`` as they arrived by ``timeout``. A revoke is
cluster-wide: it is stored on the broker for ``worker_revoke_expires`` seconds, so a worker
that starts later still skips the task, and announced to the workers running now. A revoke
by stamped header is the same record, keyed by stamp (``messages.revocation``).
"""

from __future__ import annotations

import re
import signal as os_signal
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.control import client
from celeriac.control.client import Reply, ReplyCallback
from celeriac.control.inspect import Inspect
from celeriac.messages import revocation

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac

_SIGNAL_NAME = re.compile(r"SIG[A-Z0-9]+")
# Celery's broadcast() options celeriac does not offer (they would reach the worker as
# command arguments and be ignored there).
_NOT_OFFERED = frozenset({"connection", "channel", "pattern", "matcher"})


def signal_name(signal: str | int) -> str:
    """Celery's forms, ``"SIGKILL"``, ``"KILL"``, ``9`` or ``signal.SIGKILL``, as ``"SIGKILL"``.

    A name is not checked against this machine's signals: the worker may run elsewhere.
    """
    if isinstance(signal, int):  # signal.Signals members are ints too
        try:
            return os_signal.Signals(signal).name
        except ValueError:
            raise ValueError(f"{signal!r} is not a signal number on this machine") from None
    name = str(signal).strip().upper()
    if not name.startswith("SIG"):
        name = f"SIG{name}"
    if not _SIGNAL_NAME.fullmatch(name):
        raise ValueError(f"{signal!r} is not a signal name: use e.g. 'SIGTERM' or 'SIGKILL'")
    return name


class Control:
    """Worker remote control; ``app.control``."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app

    def revoke(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
        **kwargs: Any,
    ) -> list[Reply] | None:
        """Revoke one task id or several: no worker starts them from now on.

        ``terminate=True`` also stops them where they are running now, with ``signal``
        (Celery's ``revoke(task_id, terminate=True, signal='SIGKILL')``). A revoke reaches
        every worker, so ``destination`` narrows nothing but who replies: a task id names
        one task wherever it is. ``reply=True`` (and ``broadcast``'s other options) returns
        the workers' replies.
        """
        ids = [task_id] if isinstance(task_id, str) else list(task_id)
        if not all(isinstance(i, str) and i for i in ids):
            raise TypeError(f"revoke() takes task ids (non-empty strings), not {task_id!r}")
        reserved = [i for i in ids if revocation.is_stamp_key(i)]
        if reserved:  # the record would read it as a revoked stamp
            raise ValueError(
                f"revoke(): task ids starting with {revocation.STAMP_PREFIX + '['!r} name "
                f"revocations by stamped header, not tasks: {reserved[0]!r}"
            )
        self._record(ids, terminate, signal)
        return self._confirm("revoke", {"task_id": ids}, destination, terminate, signal, kwargs)

    def revoke_by_stamped_headers(
        self,
        headers: Mapping[str, Any] | Sequence[str],
        destination: Sequence[str] | None = None,
        terminate: bool = False,
        signal: str | int = "SIGTERM",
        **kwargs: Any,
    ) -> list[Reply] | None:
        """Revoke every task stamped with one of ``headers`` (``{name: value or [values]}``,
        or Celery's command-line form ``["name=value", ...]``): no worker starts one from
        now on, and ``terminate=True`` also stops those running now, with ``signal``.

        Kept on the broker like ``revoke`` (``worker_revoke_expires``), so a task sent or a
        worker started later is covered too. ``destination`` narrows nothing, as for
        ``revoke``.
        """
        if not isinstance(headers, Mapping):
            headers = _parse_pairs(headers)
        if not headers:
            raise ValueError("revoke_by_stamped_headers() needs at least one stamped header")
        self._record(revocation.stamp_keys(headers), terminate, signal)
        arguments = {"headers": dict(headers)}
        return self._confirm(
            "revoke_by_stamped_headers", arguments, destination, terminate, signal, kwargs
        )

    def _record(self, keys: list[str], terminate: bool, signal: str | int) -> None:
        ttl = float(self.app.conf.worker_revoke_expires)
        self.app.broker.revoke(keys, ttl, terminate=bool(terminate), signal=signal_name(signal))

    def _confirm(
        self,
        command: str,
        arguments: dict[str, Any],
        destination: Sequence[str] | None,
        terminate: bool,
        signal: str | int,
        options: dict[str, Any],
    ) -> list[Reply] | None:
        """Recorded and announced already: with ``reply=True``, ask the workers to confirm
        (``recorded``: they need not record it again)."""
        _refuse_not_offered(options)
        if not options.get("reply"):
            return None
        arguments = {**arguments, "terminate": bool(terminate),
                     "signal": signal_name(signal), "recorded": True}  # fmt: skip
        return self.broadcast(command, arguments=arguments, destination=destination, **options)

    def terminate(
        self,
        task_id: str | Sequence[str],
        destination: Sequence[str] | None = None,
        signal: str | int = "SIGTERM",
        **kwargs: Any,
    ) -> list[Reply] | None:
        """``revoke(task_id, terminate=True, signal=signal)``."""
        return self.revoke(task_id, destination, terminate=True, signal=signal, **kwargs)

    def purge(self) -> int:
        """Discard every message waiting in the app's queues (``task_queues``, else
        ``task_default_queue``; ready and delayed); the number discarded. No undo."""
        return sum(self.app.broker.purge(name) for name in self.app.amqp.queues)

    discard_all = purge

    # -- the mailbox ------------------------------------------------------------------------
    def broadcast(
        self,
        command: str,
        arguments: Mapping[str, Any] | None = None,
        destination: Sequence[str] | None = None,
        reply: bool = False,
        timeout: float = 1.0,
        limit: int | None = None,
        callback: ReplyCallback | None = None,
        **extra: Any,
    ) -> list[Reply] | None:
        """Send ``command`` to every worker (or the ``destination`` node names). With
        ``reply=True``: the ``[{node: reply}, ...]`` that arrived within ``timeout``
        seconds, at most ``limit`` of them (with ``destination``: one per node named),
        each also handed to ``callback`` as it arrives. ``extra`` keywords join
        ``arguments``, as in Celery."""
        _refuse_not_offered(extra)
        return client.broadcast(
            self.app.broker, command, arguments=dict(arguments or {}, **extra),
            destination=destination, reply=reply, timeout=timeout, limit=limit,
            callback=callback,
        )  # fmt: skip

    def inspect(
        self,
        destination: Sequence[str] | None = None,
        timeout: float = 1.0,
        callback: ReplyCallback | None = None,
        limit: int | None = None,
    ) -> Inspect:
        """``app.control.inspect().active()`` and the other read-only commands."""
        return Inspect(self.broadcast, destination, timeout, callback, limit, app=self.app)

    def ping(
        self, destination: Sequence[str] | None = None, timeout: float = 1.0, **kwargs: Any
    ) -> list[Reply] | None:
        """``[{node: {'ok': 'pong'}}, ...]`` from the workers that answered in time."""
        kwargs.setdefault("reply", True)
        return self.broadcast("ping", {}, destination, timeout=timeout, **kwargs)

    def rate_limit(
        self,
        task_name: str,
        rate_limit: str | float | None,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[Reply] | None:
        """Set a task's rate limit on the workers (``'100/m'``; 0 or None: no limit)."""
        arguments = {"task_name": task_name, "rate_limit": rate_limit}
        return self.broadcast("rate_limit", arguments, destination, **kwargs)

    def time_limit(
        self,
        task_name: str,
        soft: float | None = None,
        hard: float | None = None,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[Reply] | None:
        """Set a task's soft and hard time limits (seconds) on the workers."""
        arguments = {"task_name": task_name, "hard": hard, "soft": soft}
        return self.broadcast("time_limit", arguments, destination, **kwargs)

    def add_consumer(
        self,
        queue: str,
        exchange: str | None = None,
        exchange_type: str = "direct",
        routing_key: str | None = None,
        options: Mapping[str, Any] | None = None,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[Reply] | None:
        """Have the workers consume from ``queue`` too."""
        arguments = {"queue": queue, "exchange": exchange, "exchange_type": exchange_type,
                     "routing_key": routing_key, **(options or {})}  # fmt: skip
        return self.broadcast("add_consumer", arguments, destination, **kwargs)

    def cancel_consumer(
        self, queue: str, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[Reply] | None:
        """Have the workers stop consuming from ``queue``."""
        return self.broadcast("cancel_consumer", {"queue": queue}, destination, **kwargs)

    def enable_events(
        self, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[Reply] | None:
        return self.broadcast("enable_events", {}, destination, **kwargs)

    def disable_events(
        self, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[Reply] | None:
        return self.broadcast("disable_events", {}, destination, **kwargs)

    def pool_grow(
        self, n: int = 1, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[Reply] | None:
        """Grow the workers' pools by ``n`` processes or threads."""
        return self.broadcast("pool_grow", {"n": n}, destination, **kwargs)

    def pool_shrink(
        self, n: int = 1, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[Reply] | None:
        """Shrink the workers' pools by ``n`` processes or threads."""
        return self.broadcast("pool_shrink", {"n": n}, destination, **kwargs)

    def pool_restart(
        self,
        modules: Sequence[str] | None = None,
        reload: bool = False,
        reloader: Any = None,
        destination: Sequence[str] | None = None,
        **kwargs: Any,
    ) -> list[Reply] | None:
        """Have the workers import ``modules`` (None: their task modules), reload those
        already imported when ``reload``, and replace their pool processes, which fork
        again from the worker. The workers need ``worker_pool_restarts = True``."""
        if reloader is not None:
            raise TypeError(
                "pool_restart(reloader=...) cannot be sent to a worker (a function does not "
                "travel in a message): workers reload with importlib.reload"
            )
        names = [modules] if isinstance(modules, str) else modules
        arguments = {"modules": list(names) if names is not None else None,
                     "reload": bool(reload)}  # fmt: skip
        return self.broadcast("pool_restart", arguments, destination, **kwargs)

    def autoscale(
        self, max: int, min: int, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[Reply] | None:
        """New bounds for the workers started with ``--autoscale`` (the others answer an
        error): their pools grow and shrink between ``min`` and ``max`` from now on."""
        return self.broadcast("autoscale", {"max": max, "min": min}, destination, **kwargs)

    def shutdown(
        self, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[Reply] | None:
        """Warm shutdown of the workers (they send no reply, as Celery's)."""
        return self.broadcast("shutdown", {}, destination, **kwargs)

    def heartbeat(
        self, destination: Sequence[str] | None = None, **kwargs: Any
    ) -> list[Reply] | None:
        """Have the workers send a heartbeat event now."""
        return self.broadcast("heartbeat", {}, destination, **kwargs)


def _refuse_not_offered(options: Mapping[str, Any]) -> None:
    refused = sorted(set(options) & _NOT_OFFERED)
    if refused:
        raise TypeError(
            f"app.control does not take {', '.join(refused)}: the app's broker carries the "
            f"commands; address nodes with destination=[...]"
        )


def _parse_pairs(pairs: Sequence[str]) -> dict[str, list[str]]:
    """``["name=value", ...]`` as ``{name: [values]}``."""
    if isinstance(pairs, str):
        pairs = [pairs]
    parsed: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=") if isinstance(pair, str) else ("", "", "")
        if not sep or not name:
            raise ValueError(
                f"revoke_by_stamped_headers(): {pair!r} is not 'name=value'; pass a dict "
                "{name: value} or strings 'name=value'"
            )
        parsed.setdefault(name, []).append(value)
    return parsed
