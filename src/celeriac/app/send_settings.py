"""``SendSettings``: the settings a task call reads, taken from the configuration once per
change of it instead of one lookup each on every call.

A call reads about a dozen settings; each lookup through ``app.conf`` checks the
environment overrides and the lazily added defaults first, which cost more than
building the message's headers. ``Settings.version`` moves on every write, so a
snapshot taken at one version holds until the next write. Mutable values (the retry
policy's mapping) are kept by reference, so a change made inside one is seen too.

App core; imports only the settings checks.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from celeriac.app.checks import check_task_protocol


@dataclass(frozen=True, slots=True)
class SendSettings:
    version: int  # the configuration's version these were read at
    serializer: str
    compression: str | None
    max_size: int | None
    repr_maxlevels: int
    delivery_mode: Any
    publish_retry: bool
    publish_retry_policy: dict[str, Any]
    default_priority: int | None
    inherit_parent_priority: bool
    send_sent_event: bool
    always_eager: bool

    @classmethod
    def read(cls, conf: Any) -> SendSettings:
        """The current values; refuses a ``task_protocol`` celeriac does not write, so a
        change made after the app was configured is caught at the next call."""
        version = conf.version  # before the reads: a write during them makes a re-read
        check_task_protocol(conf)
        return cls(
            version=version,
            serializer=conf.task_serializer,
            compression=conf.task_compression,
            max_size=conf.task_message_max_size,
            repr_maxlevels=conf.task_repr_maxlevels,
            delivery_mode=conf.task_default_delivery_mode,
            publish_retry=conf.task_publish_retry,
            publish_retry_policy=conf.task_publish_retry_policy,
            default_priority=conf.task_default_priority,
            inherit_parent_priority=conf.task_inherit_parent_priority,
            send_sent_event=conf.task_send_sent_event,
            always_eager=conf.task_always_eager,
        )


__all__ = ["SendSettings"]
