"""The built-in inspect commands, with Celery's names, arguments and reply shapes.

Pure logic over ``ControlState`` (the worker implements it). ``scheduled`` is always
empty: celeriac keeps a task's ETA on the broker, so no worker holds scheduled tasks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from celeriac.config.masking import masked
from celeriac.config.settings import SETTINGS
from celeriac.control.registry import inspect_command, ok
from celeriac.control.state import ControlState

DEFAULT_TASK_INFO_ITEMS = ("exchange", "routing_key", "rate_limit")


@inspect_command(default_timeout=0.2)
def ping(state: ControlState, **kwargs: Any) -> dict[str, Any]:
    """Ping worker(s)."""
    return ok("pong")


@inspect_command()
def report(state: ControlState, **kwargs: Any) -> dict[str, Any]:
    """Information about the worker's versions, platform and settings, for a bug report."""
    return ok(state.app.bugreport())


@inspect_command(args=[("with_defaults", lambda word: word.lower() in ("1", "true", "yes"))])
def conf(state: ControlState, with_defaults: bool = False, **kwargs: Any) -> dict[str, Any]:
    """List the worker's settings (changed ones; ``with_defaults`` for all), secrets
    masked as Celery censors them (passwords in URLs, ``*KEY*``, ``*PASSWORD*``...)."""
    settings = state.app.conf
    names = list(SETTINGS) if with_defaults else list(settings.changes())
    return {name: masked(name, settings[name]) for name in names if not name.startswith("__")}


@inspect_command()
def clock(state: ControlState, **kwargs: Any) -> dict[str, Any]:
    """The worker's logical clock (the one its events carry)."""
    return {"clock": state.app.events.clock.value}


@inspect_command()
def stats(state: ControlState, **kwargs: Any) -> dict[str, Any]:
    """Worker statistics: pool, prefetch, tasks done, resource usage, uptime."""
    return state.stats()


@inspect_command(alias="dump_active")
def active(state: ControlState, safe: bool = False, **kwargs: Any) -> list[dict[str, Any]]:
    """The tasks being executed now (``safe``: arguments as their repr)."""
    infos = state.active()
    if safe:
        for info in infos:
            info["args"], info["kwargs"] = repr(info["args"]), repr(info["kwargs"])
    return infos


@inspect_command(alias="dump_reserved")
def reserved(state: ControlState, **kwargs: Any) -> list[dict[str, Any]]:
    """The tasks received and waiting for a slot (neither running nor scheduled)."""
    return state.reserved()


@inspect_command(alias="dump_schedule")
def scheduled(state: ControlState, **kwargs: Any) -> list[dict[str, Any]]:
    """Tasks with an ETA held by the worker: none, they wait on the broker until due."""
    return []


@inspect_command(visible=False)
def hello(
    state: ControlState, from_node: str = "", revoked: Any = None, **kwargs: Any
) -> dict[str, Any] | None:
    """Celery's greeting between workers: the revoked ids in force and the clock, moved
    on, for a worker other than this one. The caller's own ``revoked`` ids need no
    merging: revocations are shared through the broker, so every worker already has them."""
    if from_node == state.hostname:
        return None
    return {"revoked": state.revoked(), "clock": state.app.clock.forward()}


@inspect_command(alias="dump_revoked")
def revoked(state: ControlState, **kwargs: Any) -> list[str]:
    """The revoked task ids in force."""
    return state.revoked()


@inspect_command()
def memsample(state: ControlState, **kwargs: Any) -> str:
    """Sample current RSS memory usage."""
    return state.memsample()


@inspect_command(args=[("samples", int)], signature="[n_samples=10]")
def memdump(state: ControlState, samples: int = 10, **kwargs: Any) -> str:
    """Dump statistics of previous memsample requests."""
    return state.memdump(int(samples))


@inspect_command(
    alias="dump_tasks", variadic="taskinfoitems", signature="[attr1 [attr2 [... [attrN]]]]"
)
def registered(
    state: ControlState,
    taskinfoitems: Sequence[str] | None = None,
    builtins: bool = False,
    **kwargs: Any,
) -> list[str]:
    """The registered tasks, with the attributes ``taskinfoitems`` named."""
    tasks = state.app.tasks
    items = [
        item
        for item in (taskinfoitems or DEFAULT_TASK_INFO_ITEMS)
        if isinstance(item, str) and not item.startswith("_")
    ]
    names = sorted(name for name in tasks if builtins or not _builtin(name))
    return [_describe(tasks[name], items) for name in names]


def _builtin(name: str) -> bool:
    return name.startswith(("celery.", "celeriac."))


def _describe(task: Any, items: Sequence[str]) -> str:
    fields = [f"{item}={getattr(task, item)}" for item in items if _known(task, item)]
    return f"{task.name} [{' '.join(fields)}]" if fields else str(task.name)


def _known(task: Any, item: str) -> bool:
    try:
        return getattr(task, item, None) is not None
    except Exception:  # an attribute that cannot be read is not shown
        return False


@inspect_command()
def active_queues(state: ControlState, **kwargs: Any) -> list[dict[str, Any]]:
    """The queues the worker consumes from now."""
    return [_queue_info(name) for name in state.queues()]


def _queue_info(name: str) -> dict[str, Any]:
    """Celery's queue description (every key of kombu's ``Queue.as_dict``, which Flower's
    worker page reads), with what celeriac uses: a queue routed to by name."""
    exchange = {
        "name": name, "type": "direct", "arguments": None, "durable": True, "passive": False,
        "auto_delete": False, "delivery_mode": None, "no_declare": False,
    }  # fmt: skip
    return {
        "name": name, "exchange": exchange, "routing_key": name, "queue_arguments": None,
        "binding_arguments": None, "consumer_arguments": None, "durable": True,
        "exclusive": False, "auto_delete": False, "no_ack": False, "alias": None,
        "bindings": [], "no_declare": None, "expires": None, "message_ttl": None,
        "max_length": None, "max_length_bytes": None, "max_priority": None,
    }  # fmt: skip


@inspect_command(variadic="ids", signature="[id1 [id2 [... [idN]]]]")
def query_task(
    state: ControlState, ids: Sequence[str] | str = (), **kwargs: Any
) -> dict[str, list[Any]]:
    """What the worker knows of these task ids: ``{id: [state, info]}``."""
    wanted = {ids} if isinstance(ids, str) else set(ids)
    found: dict[str, list[Any]] = {}
    for where, infos in (("reserved", state.reserved()), ("active", state.active())):
        for info in infos:
            if info["id"] in wanted:
                found[info["id"]] = [where, info]
    return found
