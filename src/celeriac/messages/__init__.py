"""Messages: the task envelope (Celery protocol v2 field names), its wire form, serializers,
and the checks on every field a worker reads (``validation``).

Pure logic: imports only leaves (exceptions). Brokers carry the bytes this package
produces; the app builds messages here and the worker reads them back here.
"""

from celeriac.messages.envelope import Message
from celeriac.messages.protocol import TaskBody, decode_task_body, task_message
from celeriac.messages.serializers import (
    Serializer,
    dumps,
    loads,
    registry,
    resolve_accept,
)
from celeriac.messages.validation import check_body, check_envelope

__all__ = [
    "Message",
    "Serializer",
    "TaskBody",
    "check_body",
    "check_envelope",
    "decode_task_body",
    "dumps",
    "loads",
    "registry",
    "resolve_accept",
    "task_message",
]
