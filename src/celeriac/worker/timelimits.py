"""Task time limits: which limits apply to a job, and the small pieces every pool shares.

A job has a hard limit (``time_limit``: the task is stopped) and a soft one
(``soft_time_limit``: ``SoftTimeLimitExceeded`` is raised inside the body so it can save
its work). Each is looked up on its own: the call's ``timelimit`` header
(``apply_async(time_limit=..., soft_time_limit=...)``) wins, then the task's attribute,
then the ``task_time_limit`` / ``task_soft_time_limit`` settings. As in Celery, ``None``
and ``0`` mean "not set here" and the next source is asked. How a limit is enforced is
each pool's business (``pools.prefork``, ``pools.child``, ``pools.threads``,
``pools.asyncio_pool``), armed by trace's hook around the body so a limit times the body
alone; ``pool_limit_warning`` tells at start where a pool cannot do what prefork does;
``endings`` records a job that prefork's hard limit killed. Imports leaves and
``worker.execution``.
"""

from __future__ import annotations

import functools
import inspect
import logging
import math
from typing import Any

from celeriac.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celeriac.worker.execution import Job

logger = logging.getLogger("celeriac.worker")

#: What a pool raises inside a running task when one of its limits passes.
LIMIT_ERRORS = (SoftTimeLimitExceeded, TimeLimitExceeded)

Limits = tuple[float | None, float | None]  # (hard, soft) in seconds; None: no limit

_WARNED_MAX = 256  # distinct (task, hard, soft) warnings remembered, so a log is not flooded
_warned: set[tuple[str, float, float]] = set()


def limits_for(job: Job) -> Limits:
    """``(hard, soft)`` for ``job``; a soft limit not below the hard one is dropped (it
    could never fire first), with a warning."""
    task, request = job.task, job.request
    header = request.timelimit or (None, None)
    conf = task.app.conf
    # The call's, the task's, the setting's; most tasks have none (checked first: this
    # runs for every task).
    hards = (header[0], getattr(task, "time_limit", None), conf.task_time_limit)
    softs = (header[1], getattr(task, "soft_time_limit", None), conf.task_soft_time_limit)
    hard = None if hards == _NONE_GIVEN else _first(hards, "time_limit", str(task.name))
    soft = None if softs == _NONE_GIVEN else _first(softs, "soft_time_limit", str(task.name))
    if hard is not None and soft is not None and soft >= hard:
        _warn_once(str(task.name), hard, soft)
        soft = None
    return hard, soft


def longest_hard_limit(app: Any) -> float | None:
    """The longest hard time limit configured for a registered task (its attribute, else
    ``task_time_limit``); None when no task has one. A call's own limit is not known yet."""
    limits = [
        _first(
            (None, getattr(task, "time_limit", None), app.conf.task_time_limit),
            "time_limit",
            str(task.name),
        )
        for task in app.tasks.values()
    ]
    return max((limit for limit in limits if limit is not None), default=None)


# -- where a pool enforces a limit differently from prefork (said once, at start) ---------------
_NAMES_SHOWN = 8  # task names a warning lists before "and N more"
_THREAD_SOFT = (
    "soft limits of {who} raise SoftTimeLimitExceeded only at the task's next Python "
    "instruction, so a blocking call (time.sleep, a socket read) runs to its end first, and "
    "a task whose hard limit passes meanwhile fails with TimeLimitExceeded instead"
)
_THREAD_HARD = (
    "hard limits of {who} cannot stop a thread: TimeLimitExceeded is raised the same way, "
    "as a best effort, and a task that blocks or catches it runs on"
)
_CORO_SOFT = (
    "soft limits of {who} cancel the coroutine: it sees asyncio.CancelledError at its "
    "current await, not SoftTimeLimitExceeded, and a blocking call in it is not interrupted"
)
_CORO_HARD = (
    "hard limits of {who} cancel the coroutine again: one that ignores the cancellation or "
    "blocks the loop runs on"
)


def pool_limit_warning(app: Any, pool: str) -> str | None:
    """One line saying how ``pool`` enforces the time limits the tasks and settings
    configure where it cannot do what prefork does (interrupt a blocking call at the soft
    limit, kill the task at the hard one), naming the tasks; None when nothing differs.
    A call's own limit is not known at start: the pools log each limit as it fires."""
    if pool == "prefork":
        return None
    soft: dict[bool, list[str]] = {False: [], True: []}  # by "runs as a coroutine"
    hard: dict[bool, list[str]] = {False: [], True: []}
    for name, task in sorted(app.tasks.regular().items()):
        limit_hard, limit_soft = configured_limits(task, app.conf)
        coroutine = pool == "asyncio" and inspect.iscoroutinefunction(getattr(task, "run", None))
        if limit_soft is not None:
            soft[coroutine].append(name)
        if limit_hard is not None:
            hard[coroutine].append(name)
    noun = {False: "plain tasks" if pool == "asyncio" else "tasks", True: "async def tasks"}
    conf = app.conf
    soft_note = _setting_note("task_soft_time_limit", conf.task_soft_time_limit)
    hard_note = _setting_note("task_time_limit", conf.task_time_limit)
    parts = [
        template.format(who=_who(noun[coroutine], names) + note)
        for template, names, coroutine, note in (
            (_THREAD_SOFT, soft[False], False, soft_note),
            (_THREAD_HARD, hard[False], False, hard_note),
            (_CORO_SOFT, soft[True], True, soft_note),
            (_CORO_HARD, hard[True], True, hard_note),
        )
        if names
    ]
    if not parts:
        return None
    return (
        f"Time limits on the {pool} pool do not work as on prefork: " + "; ".join(parts) + ". "
        "Run tasks whose limits must interrupt blocking work on the prefork pool (-P prefork)."
    )


def configured_limits(task: Any, conf: Any) -> Limits:
    """``(hard, soft)`` from the task's attributes, else the settings (no call known yet);
    a soft limit not below the hard one is left out, as ``limits_for`` drops it."""
    name = str(task.name)
    hard = _first(
        (None, getattr(task, "time_limit", None), conf.task_time_limit), "time_limit", name
    )
    soft = _first(
        (None, getattr(task, "soft_time_limit", None), conf.task_soft_time_limit),
        "soft_time_limit",
        name,
    )
    if hard is not None and soft is not None and soft >= hard:
        soft = None
    return hard, soft


def _setting_note(name: str, value: Any) -> str:
    limit = seconds(value, name)
    return f" ({name}={show(limit)} for those without their own)" if limit else ""


def _who(noun: str, names: list[str]) -> str:
    shown = ", ".join(names[:_NAMES_SHOWN])
    more = len(names) - _NAMES_SHOWN
    return f"{noun} {shown}" + (f" and {more} more" if more > 0 else "")


def seconds(value: Any, source: str = "time limit") -> float | None:
    """A limit as a positive number of seconds, or None for "not set" (None, 0, infinity).

    A value that is not a usable number (text, a negative number, NaN) is ignored with a
    warning: a bad header from another producer must not stop the task from running.
    """
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        if value is not None:
            logger.warning("ignoring %s=%r: not a number of seconds", source, value)
        return None
    if math.isnan(value) or value < 0:
        logger.warning("ignoring %s=%r: not a positive number of seconds", source, value)
        return None
    if value == 0 or math.isinf(value):
        return None
    return float(value)


_NONE_GIVEN = (None, None, None)


def _first(values: tuple[Any, Any, Any], option: str, task_name: str) -> float | None:
    """The first of the call's, the task's and the setting's ``option`` that is a limit."""
    sources = (f"the call's {option}", f"{task_name}.{option}", f"task_{option}")
    for value, source in zip(values, sources, strict=True):
        limit = seconds(value, source)
        if limit is not None:
            return limit
    return None


def _warn_once(name: str, hard: float, soft: float) -> None:
    key = (name, hard, soft)
    if key in _warned:
        return
    if len(_warned) >= _WARNED_MAX:
        _warned.clear()
    _warned.add(key)
    logger.warning(
        "Task %s: soft time limit (%s) is not below its hard time limit (%s): "
        "the soft limit is ignored",
        name, show(soft), show(hard),
    )  # fmt: skip


def show(limit: float) -> str:
    """``2.0`` -> ``"2s"``, ``0.25`` -> ``"0.25s"``: a limit as log lines show it."""
    return f"{limit:g}s"


@functools.lru_cache(maxsize=64)
def raisable(base: type[BaseException], *args: Any) -> type[BaseException]:
    """A class whose instances are ``base(*args)``, for raising by class.

    ``PyThreadState_SetAsyncExc`` raises a class, never an instance, so a limit that
    should carry its value (``TimeLimitExceeded(2.0)``) needs a class that builds it. It
    has ``base``'s module and name, so it is stored, pickled and shown as ``base`` itself.
    """

    def __init__(self: BaseException, *given: Any) -> None:
        base.__init__(self, *(given or args))

    namespace = {"__init__": __init__, "__module__": base.__module__}
    cls = type(base.__name__, (base,), namespace)
    cls.__qualname__ = base.__qualname__
    return cls


__all__ = [
    "LIMIT_ERRORS",
    "Limits",
    "configured_limits",
    "limits_for",
    "pool_limit_warning",
    "raisable",
    "seconds",
    "show",
]
