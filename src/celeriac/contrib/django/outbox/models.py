"""``OutboxMessage``: Django's view of the ``celeriac_outbox`` table.

The columns are those of ``celeriac.outbox.outbox_table`` (docs/outbox.md), so the relay
(SQLAlchemy) reads what Django writes. Times are unix times, as the relay keeps them.
"""

from __future__ import annotations

from django.db import models

from celeriac.outbox.table import DEAD, DEFAULT_TABLE, PENDING, SENT

STATUSES = [(PENDING, "pending"), (SENT, "sent"), (DEAD, "dead")]


class OutboxMessage(models.Model):  # type: ignore[misc]  # Django ships no types
    """A task message written in a transaction, published by the relay once committed."""

    id = models.CharField(max_length=155, primary_key=True)  # the task id
    queue = models.CharField(max_length=255)
    priority = models.SmallIntegerField(default=0)
    payload = models.BinaryField()
    due_at = models.FloatField(null=True)
    created_at = models.FloatField()
    available_at = models.FloatField()
    status = models.CharField(max_length=8, choices=STATUSES, default=PENDING)
    attempts = models.IntegerField(default=0)
    last_error = models.TextField(null=True)
    sent_at = models.FloatField(null=True)

    class Meta:
        db_table = DEFAULT_TABLE
        indexes = [
            models.Index(fields=["status", "available_at"], name="celeriac_outbox_status_avail")
        ]
        verbose_name = "outbox message"

    def __str__(self) -> str:
        return f"{self.id} ({self.status})"
