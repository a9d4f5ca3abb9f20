"""Celery's wire format: task messages as Celery 5 and kombu write and read them.

``to_celery(message) -> CeleryWire`` and ``from_celery(wire) -> Message`` map celeriac's
``Message`` to Celery's task message protocol 2 and back (protocol 1 is read too);
``to_kombu_redis(wire) -> bytes`` and ``from_kombu_redis(bytes) -> CeleryWire`` are the
JSON document kombu's Redis transport keeps in its lists; ``CELERY`` is the wire format the
``wire_format = "celery"`` setting selects. docs/messages.md has the mapping, field by
field. Pure logic: imports ``celeriac.messages`` and leaves only.
"""

from celeriac.messages.celery.body import BUILTINS
from celeriac.messages.celery.kombu_redis import from_kombu_redis, to_kombu_redis
from celeriac.messages.celery.task_protocol import HEADERS, from_celery, to_celery
from celeriac.messages.celery.wire import CeleryWire
from celeriac.messages.celery.wire_format import CELERY, CeleryWireFormat

__all__ = [
    "BUILTINS",
    "CELERY",
    "HEADERS",
    "CeleryWire",
    "CeleryWireFormat",
    "from_celery",
    "from_kombu_redis",
    "to_celery",
    "to_kombu_redis",
]
