"""A read-only admin page of the outbox: what waits, what was sent, what died and why."""

from __future__ import annotations

from typing import Any

from django.contrib import admin

from celeriac.contrib.django.outbox.models import OutboxMessage


@admin.register(OutboxMessage)
class OutboxMessageAdmin(admin.ModelAdmin):  # type: ignore[misc]  # Django ships no types
    list_display = ("id", "queue", "status", "attempts", "created_at", "sent_at", "last_error")
    list_filter = ("status", "queue")
    search_fields = ("id",)
    exclude = ("payload",)

    def has_add_permission(self, request: Any) -> bool:
        return False

    def has_change_permission(self, request: Any, obj: Any = None) -> bool:
        return False
