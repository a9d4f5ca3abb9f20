"""``DjangoFixup``: the app's half of the Django integration, as Celery's fix-up.

Edge layer. ``DjangoTask`` becomes the app's default task class, ``autodiscover_tasks()``
with no packages searches every installed Django app, ``django.setup()`` runs before the
task modules are imported (the ``import_modules`` signal), and the app's workers run
Django's system checks (``checks``) and get the database care of
``worker_fixup.DjangoWorkerFixup`` (the ``worker_init`` signal).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import django
from django.apps import apps

from celeriac import signals
from celeriac.contrib.django.checks import run_system_checks
from celeriac.contrib.django.task import DjangoTask
from celeriac.contrib.django.worker_fixup import DjangoWorkerFixup

if TYPE_CHECKING:
    from celeriac.app.base import Celeriac


class DjangoFixup:
    """Installed once per app; ``worker_fixup`` is set once a worker of the app starts."""

    def __init__(self, app: Celeriac) -> None:
        self.app = app
        self.task_cls: type[Any] | None = DjangoTask
        self.worker_fixup: DjangoWorkerFixup | None = None

    def install(self) -> DjangoFixup:
        # Several apps may live in one process: each fix-up answers its own app only.
        signals.import_modules.connect(self.on_import_modules, sender=self.app)
        # worker_init's sender is the worker, not the app: a receiver per fix-up (its own
        # dispatch_uid), and on_worker_init skips the workers of other apps.
        signals.worker_init.connect(self.on_worker_init, dispatch_uid=("django", id(self)))
        return self

    def autodiscover_tasks(self) -> list[str]:
        """The package of every installed Django app (``django.setup()`` has run)."""
        return [config.name for config in apps.get_app_configs()]

    def on_import_modules(self, **_: Any) -> None:
        """Before the task modules are imported, so that they can import models. Not
        again in a process Django already set up (a web process finalizing the app on
        its first call), nor while Django's own set-up is what imports the app."""
        if not apps.ready and not apps.loading:
            django.setup()

    def on_worker_init(self, sender: Any = None, **_: Any) -> None:
        if getattr(sender, "app", None) is not self.app:
            return  # another app's worker: its own fix-up looks after it
        if self.worker_fixup is None:
            run_system_checks()  # before the pool starts, as Celery's fix-up does
            self.worker_fixup = DjangoWorkerFixup().install()


__all__ = ["DjangoFixup"]
