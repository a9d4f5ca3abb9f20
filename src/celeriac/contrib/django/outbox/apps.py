"""The Django app of the outbox: its model, migration and admin page."""

from __future__ import annotations

from django.apps import AppConfig


class OutboxConfig(AppConfig):  # type: ignore[misc]  # Django ships no types
    name = "celeriac.contrib.django.outbox"
    label = "celeriac_outbox"
    verbose_name = "Task outbox"

    def ready(self) -> None:
        # apply_async(outbox=connection) takes Django connections once the writer is loaded.
        from celeriac.contrib.django.outbox import writer  # noqa: F401
