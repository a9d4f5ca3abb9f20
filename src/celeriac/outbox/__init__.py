"""The transactional outbox: task calls written to a table in the caller's transaction,
published by a relay once committed (docs/outbox.md).

Runtimes layer: programs against the sender seam (``app/sending.py``) and the broker
seam; never imports an engine, the worker or beat. Needs SQLAlchemy 2 (the ``outbox``
extra); importing it lets ``apply_async(outbox=session)`` take SQLAlchemy sessions.
"""

from celeriac.outbox.relay import Relay, RelaySettings
from celeriac.outbox.table import DEAD, PENDING, SENT, make_table, metadata, outbox_table
from celeriac.outbox.writer import OutboxSender, outbox

__all__ = [
    "DEAD",
    "PENDING",
    "SENT",
    "OutboxSender",
    "Relay",
    "RelaySettings",
    "make_table",
    "metadata",
    "outbox",
    "outbox_table",
]
