"""Settings and call options checked on use: ``task_protocol`` (only 2, checked when the
app is first configured and again when a message is built, so a late change is caught
too) and the delivery mode (``task_default_delivery_mode``, the ``delivery_mode`` option).

App core; imports only ``exceptions``.
"""

from __future__ import annotations

from typing import Any

from celeriac.exceptions import ImproperlyConfigured

WRITTEN_PROTOCOL = 2  # the task message protocol celeriac writes (and reads)
# AMQP delivery modes by kombu's names: 2 kept across a broker restart, 1 not.
_DELIVERY_MODES = {"persistent": 2, "transient": 1, 2: 2, 1: 1}


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


def is_persistent(option: Any, default: Any) -> bool:
    """The call's ``delivery_mode``, else ``task_default_delivery_mode``: False for
    ``'transient'`` (1), True for ``'persistent'`` (2, and unset), as kombu reads them."""
    for name, value in (("delivery_mode", option), ("task_default_delivery_mode", default)):
        if not value:
            continue  # unset: the next one, then persistent
        mode = _DELIVERY_MODES.get(value) if isinstance(value, (str, int)) else None
        if mode is None:
            raise ImproperlyConfigured(
                f"{name} is {value!r}: use 'persistent' (2, kept across a RabbitMQ restart) "
                f"or 'transient' (1, faster, lost if RabbitMQ restarts before delivery)"
            )
        return mode == 2
    return True
