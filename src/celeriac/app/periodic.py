"""``app.add_periodic_task``: a signature and a schedule become a ``beat_schedule`` entry.

App core: imports ``celeriac.canvas`` and the stdlib. Beat reads ``beat_schedule``; this
module only writes the entry there, as Celery's app does.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from celeriac.canvas import Signature

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac

logger = logging.getLogger("celeriac.app")


def add_periodic_task(
    app: Celeriac,
    schedule: Any,
    sig: Any,
    args: Sequence[Any] = (),
    kwargs: Mapping[str, Any] | None = None,
    name: str | None = None,
    **options: Any,
) -> str:
    """Add ``sig`` (a signature, or a task) to ``beat_schedule`` under ``name`` (else the
    signature's repr, as Celery names it); return that key. The same key twice replaces
    the first entry."""
    if isinstance(sig, Signature):
        sig = sig.clone(args, kwargs or {})
    elif hasattr(sig, "name"):  # a task object, as Celery accepts
        sig = app.signature(sig.name, tuple(args), dict(kwargs or {}))
    else:
        raise TypeError(
            f"add_periodic_task takes a signature (e.g. add.s(2, 2)) or a task, not {sig!r}"
        )
    key = name or repr(sig)
    if name is None and key in app.conf.beat_schedule:
        logger.warning(
            "Periodic task key=%r replaced an earlier unnamed periodic task; pass name= to "
            "add_periodic_task to keep both.",
            key,
        )
    entry = {
        "schedule": schedule,
        "task": sig.name,
        "args": tuple(sig.args),
        "kwargs": dict(sig.kwargs),
        "options": {**sig.options, **options},
    }
    app.conf.beat_schedule = {**app.conf.beat_schedule, key: entry}
    return key
