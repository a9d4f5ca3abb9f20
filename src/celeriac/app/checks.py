"""Settings whose other values celeriac refuses rather than ignores: checked when the app
is first configured and again when a message is built, so a late change is caught too.

App core; imports only ``exceptions``.
"""

from __future__ import annotations

from typing import Any

from celeriac.exceptions import ImproperlyConfigured

WRITTEN_PROTOCOL = 2  # the task message protocol celeriac writes (and reads)


def check_task_protocol(conf: Any) -> None:
    """``task_protocol``: 2, Celery's default since 4.0; protocol 1 is not written."""
    protocol = conf.task_protocol
    if protocol == WRITTEN_PROTOCOL:
        return
    raise ImproperlyConfigured(
        f"task_protocol is {protocol!r}, but celeriac writes task messages in protocol 2 "
        f"only (Celery's default since 4.0, read by every Celery 4 and 5 worker): remove "
        f"the task_protocol setting or set it to 2"
    )
