"""The built-in control commands, with Celery's names, arguments and reply shapes.

Pure logic over ``ControlState`` (the worker implements it). ``revoke`` is recorded on
the broker for every worker (``worker_revoke_expires``), as ``app.control.revoke`` is; a
terminate reaches the tasks running on the workers the command was sent to.
``recorded=True`` (sent by ``app.control.revoke``, which records the revocation itself)
only asks for the reply.
"""

from __future__ import annotations

import logging
import signal as signal_module
from collections.abc import Sequence
from typing import Any

from celeriac.control.registry import NO_REPLY, NoReply, control_command, nok, ok
from celeriac.control.state import ControlState
from celeriac.messages import revocation
from celeriac.rates import parse_rate

logger = logging.getLogger("celeriac.worker")


def _ids(task_id: str | Sequence[str]) -> list[str]:
    return [task_id] if isinstance(task_id, str) else [str(i) for i in task_id]


def _signal(name: str | int | None) -> str:
    """Celery's forms (``"KILL"``, ``"SIGKILL"``, ``9``) as ``"SIGKILL"``."""
    if name is None:
        return "SIGTERM"
    if isinstance(name, int) or str(name).isdigit():
        return signal_module.Signals(int(name)).name
    text = str(name).upper()
    return text if text.startswith("SIG") else f"SIG{text}"


@control_command(variadic="task_id", signature="[id1 [id2 [... [idN]]]]")
async def revoke(
    state: ControlState,
    task_id: str | Sequence[str],
    terminate: bool = False,
    signal: str | None = None,
    recorded: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Revoke task(s) by id; ``terminate`` also stops them where they run."""
    ids = _ids(task_id)
    running = state.running_ids(ids) if terminate else []
    if not recorded:
        await state.revoke(ids, bool(terminate), _signal(signal))
    if terminate:
        return ok(f"terminate: {', '.join(running)}" if running else "terminate: tasks unknown")
    logger.info("Tasks flagged as revoked: %s", ", ".join(ids))
    return ok(f"tasks {set(ids)} flagged as revoked")


@control_command()
async def revoke_by_stamped_headers(
    state: ControlState,
    headers: dict[str, Any],
    terminate: bool = False,
    signal: str | None = None,
    recorded: bool = False,
    **kwargs: Any,
) -> dict[str, Any]:
    """Revoke the tasks stamped with one of ``headers`` ({name: value or [values]})."""
    if not recorded:
        await state.revoke(revocation.stamp_keys(headers), bool(terminate), _signal(signal))
    return ok(f"headers {headers} flagged as revoked")


@control_command(
    variadic="task_id", args=[("signal", str)], signature="<signal> [id1 [id2 [... [idN]]]]"
)
async def terminate(
    state: ControlState, signal: str, task_id: str | Sequence[str], **kwargs: Any
) -> dict[str, Any]:
    """Terminate task(s) by id: revoke with ``terminate=True``."""
    return await revoke(state, task_id, terminate=True, signal=signal)


@control_command(
    args=[("task_name", str), ("rate_limit", str)],
    signature="<task_name> <rate_limit (e.g., 5/s | 5/m | 5/h)>",
)
def rate_limit(
    state: ControlState, task_name: str, rate_limit: str | float | None, **kwargs: Any
) -> dict[str, Any]:
    """Set a task's rate limit on the worker(s) (0 or None: no limit)."""
    try:
        parse_rate(rate_limit)
    except (ValueError, TypeError) as exc:
        return nok(f"Invalid rate limit string: {exc!r}")
    task = state.app.tasks.get(task_name)
    if task is None:
        logger.error("Rate limit attempt for unknown task %s", task_name)
        return nok("unknown task")
    task.rate_limit = rate_limit
    state.set_rate_limit(task_name, rate_limit)
    if not rate_limit:
        logger.info("Rate limits disabled for tasks of type %s", task_name)
        return ok("rate limit disabled successfully")
    logger.info("New rate limit for tasks of type %s: %s.", task_name, rate_limit)
    return ok("new rate limit set successfully")


@control_command(
    args=[("task_name", str), ("soft", float), ("hard", float)],
    signature="<task_name> <soft_secs> [hard_secs]",
)
def time_limit(
    state: ControlState,
    task_name: str | None = None,
    hard: float | None = None,
    soft: float | None = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Set a task's time limits (seconds) on the worker(s)."""
    task = state.app.tasks.get(task_name) if task_name else None
    if task is None:
        logger.error("Change time limit attempt for unknown task %s", task_name)
        return nok("unknown task")
    task.soft_time_limit = soft
    task.time_limit = hard
    logger.info("New time limits for tasks of type %s: soft=%s hard=%s", task_name, soft, hard)
    return ok("time limits set successfully")


@control_command(args=[("n", int)], signature="[N=1]")
def pool_grow(state: ControlState, n: int = 1, **kwargs: Any) -> dict[str, Any]:
    """Grow the pool by ``n`` processes or threads."""
    if state.autoscaling:
        return nok("pool_grow is not supported with autoscale. Adjust autoscale range instead.")
    state.resize_pool(_count(n))
    return ok("pool will grow")


@control_command(args=[("n", int)], signature="[N=1]")
def pool_shrink(state: ControlState, n: int = 1, **kwargs: Any) -> dict[str, Any]:
    """Shrink the pool by ``n`` processes or threads."""
    if state.autoscaling:
        return nok("pool_shrink is not supported with autoscale. Adjust autoscale range instead.")
    state.resize_pool(-_count(n))
    return ok("pool will shrink")


def _count(n: Any) -> int:
    count = int(n)
    if count < 1:
        raise ValueError(f"n must be a positive number of processes or threads, not {n!r}")
    return count


@control_command()
def pool_restart(
    state: ControlState,
    modules: Sequence[str] | None = None,
    reload: bool = False,
    reloader: Any = None,
    **kwargs: Any,
) -> dict[str, Any]:
    """Restart execution pool."""
    if not state.app.conf.worker_pool_restarts:
        raise ValueError(
            "Pool restarts not enabled: set worker_pool_restarts = True where the worker is "
            "configured"
        )
    if reloader is not None:
        raise ValueError("pool_restart takes no reloader: modules are reloaded with importlib")
    if isinstance(modules, str):
        modules = [modules]
    state.restart_pool(None if modules is None else [str(m) for m in modules], bool(reload))
    return ok("reload started")


@control_command(args=[("max", int), ("min", int)], signature="[max [min]]")
def autoscale(
    state: ControlState, max: int | None = None, min: int | None = None, **kwargs: Any
) -> dict[str, Any]:
    """Modify autoscale settings."""
    high, low = state.autoscale(max, min)
    return ok(f"autoscale now max={high} min={low}")


@control_command()
def shutdown(state: ControlState, msg: str = "Got shutdown from remote", **kwargs: Any) -> NoReply:
    """Shut the worker(s) down (warm: running tasks finish). Sends no reply, as Celery's."""
    logger.warning("%s", msg)
    state.shutdown()
    return NO_REPLY


@control_command(
    args=[("queue", str), ("exchange", str), ("exchange_type", str), ("routing_key", str)],
    signature="<queue> [exchange [type [routing_key]]]",
)
def add_consumer(
    state: ControlState,
    queue: str,
    exchange: str | None = None,
    exchange_type: str | None = None,
    routing_key: str | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Start consuming from a queue (by name)."""
    refused = _routing_refused(queue, exchange, exchange_type, routing_key, options)
    if refused:
        return nok(refused)
    if not state.add_queue(queue):
        logger.info("already consuming from %s", queue)
    return ok(f"add consumer {queue}")


def _routing_refused(
    queue: str, exchange: Any, kind: Any, key: Any, options: dict[str, Any]
) -> str | None:
    if not isinstance(queue, str) or not queue:
        return f"add_consumer needs a queue name, not {queue!r}"
    given = [f"{name}={value!r}" for name, value in options.items() if value is not None]
    if exchange not in (None, queue):
        given.append(f"exchange={exchange!r}")
    if kind not in (None, "direct"):
        given.append(f"exchange_type={kind!r}")
    if key not in (None, queue):
        given.append(f"routing_key={key!r}")
    if not given:
        return None
    return (
        f"celeriac routes a task to a queue by the queue's name, so add_consumer takes the "
        f"queue only: drop {', '.join(given)}"
    )


@control_command(args=[("queue", str)], signature="<queue>")
def cancel_consumer(state: ControlState, queue: str, **kwargs: Any) -> dict[str, Any]:
    """Stop consuming from a queue (the messages it holds from it finish first)."""
    state.cancel_queue(queue)
    return ok(f"no longer consuming from {queue}")


@control_command()
def enable_events(state: ControlState, **kwargs: Any) -> dict[str, Any]:
    """Turn task events on."""
    if state.set_task_events(True):
        return ok("task events enabled")
    return ok("task events already enabled")


@control_command()
def disable_events(state: ControlState, **kwargs: Any) -> dict[str, Any]:
    """Turn task events off."""
    if state.set_task_events(False):
        return ok("task events disabled")
    return ok("task events already disabled")


@control_command()
def heartbeat(state: ControlState, **kwargs: Any) -> None:
    """Send a worker heartbeat event now."""
    state.heartbeat()
