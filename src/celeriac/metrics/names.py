"""The metric names, their help texts and the label rules, in one place.

Pure definitions (imports prometheus-client only). Label values are bounded: a task name
the app has not registered is counted as ``UNREGISTERED``, a queue the process was not
told about as ``OTHER_QUEUE``, so a stream of odd names cannot grow the series without end.
"""

from __future__ import annotations

from collections.abc import Collection

from celeriac import states

UNREGISTERED = "unregistered"  # the task label of a name the app does not know
OTHER_QUEUE = "other"  # the queue label of a queue outside the known ones

TASKS_TOTAL = "celeriac_tasks"  # prometheus-client adds the _total suffix of a counter
TASK_RUNTIME = "celeriac_task_runtime_seconds"
TASK_QUEUE_WAIT = "celeriac_task_queue_wait_seconds"
QUEUE_DEPTH = "celeriac_queue_depth"
WORKER_UP = "celeriac_worker_up"
WORKER_SLOTS = "celeriac_worker_slots"
DEAD_LETTERS = "celeriac_dead_letters"

#: Every series name a scrape may show (histograms add _bucket, _sum, _count; a counter
#: _total and _created). Alert rules and the dashboard may only use these.
EXPORTED = frozenset({
    f"{TASKS_TOTAL}_total", f"{TASKS_TOTAL}_created",
    *(f"{name}_{part}" for name in (TASK_RUNTIME, TASK_QUEUE_WAIT)
      for part in ("bucket", "sum", "count", "created")),
    QUEUE_DEPTH, WORKER_UP, WORKER_SLOTS, DEAD_LETTERS,
})  # fmt: skip

#: The ``state`` label of celeriac_tasks_total: each final state, in lower case.
FINAL_STATES = {
    states.SUCCESS: "success", states.FAILURE: "failure", states.RETRY: "retry",
    states.REVOKED: "revoked", states.REJECTED: "rejected", states.IGNORED: "ignored",
}  # fmt: skip

#: Seconds: from a few milliseconds to an hour; most tasks end well inside.
RUNTIME_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)
WAIT_BUCKETS = (0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 900, 3600)


def bounded(value: str, known: Collection[str], other: str) -> str:
    """``value`` when it is one of ``known``, else the fixed ``other`` label."""
    return value if value in known else other


__all__ = [
    "DEAD_LETTERS", "EXPORTED", "FINAL_STATES", "OTHER_QUEUE", "QUEUE_DEPTH",
    "RUNTIME_BUCKETS", "TASKS_TOTAL", "TASK_QUEUE_WAIT", "TASK_RUNTIME", "UNREGISTERED",
    "WAIT_BUCKETS", "WORKER_SLOTS", "WORKER_UP", "bounded",
]  # fmt: skip
