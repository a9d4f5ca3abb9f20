"""``Service``: runs a ``Scheduler`` until stopped (``celeriac beat``); ``EmbeddedService``
runs one in a thread beside a worker (``worker -B``).

Runtime layer (beat): imports ``celeriac.signals`` and the beat modules; the worker does
not import it (the command line starts the embedded service). ``beat_init`` /
``beat_embedded_init`` are sent as the service starts, before its first tick.
"""

from __future__ import annotations

import importlib
import logging
import threading
from typing import Any

from celeriac import signals
from celeriac.beat.scheduler import Scheduler
from celeriac.exceptions import ImproperlyConfigured

logger = logging.getLogger("celeriac.beat")


def scheduler_class(spec: str | type[Scheduler]) -> type[Scheduler]:
    """The class ``beat_scheduler`` / ``-S`` names: ``'module:Class'`` (or
    ``'module.Class'``), a subclass of ``celeriac.beat.Scheduler``. Celery's own
    ``celery.beat:...`` names mean celeriac's."""
    if isinstance(spec, type):
        found: Any = spec
    else:
        module_name, _, name = spec.replace(":", ".").rpartition(".")
        if module_name in ("celery.beat", "celery"):
            module_name = "celeriac.beat"
        try:
            found = getattr(importlib.import_module(module_name), name)
        except (ImportError, AttributeError, ValueError) as exc:
            raise ImproperlyConfigured(
                f"cannot load the beat scheduler {spec!r} ({exc}): name a class as "
                f"'module:Class', e.g. 'celeriac.beat:PersistentScheduler'"
            ) from None
    if not (isinstance(found, type) and issubclass(found, Scheduler)):
        raise ImproperlyConfigured(
            f"the beat scheduler {spec!r} is not a subclass of celeriac.beat.Scheduler; "
            f"schedulers written for Celery (e.g. django_celery_beat's DatabaseScheduler) do "
            f"not run on celeriac: use 'celeriac.beat:PersistentScheduler' and live changes "
            f"(docs/beat.md)"
        )
    return found


class Service:
    """Celery's ``beat.Service``: ``start()`` ticks the scheduler until ``stop()``."""

    def __init__(
        self,
        app: Any,
        max_interval: float | None = None,
        schedule_filename: str | None = None,
        scheduler_cls: str | type[Scheduler] | None = None,
    ) -> None:
        self.app = app
        self.max_interval = max_interval
        self.schedule_filename = schedule_filename
        self.scheduler_cls = scheduler_class(scheduler_cls or app.conf.beat_scheduler)
        self._is_shutdown = threading.Event()
        self._is_stopped = threading.Event()
        self._scheduler: Scheduler | None = None

    def get_scheduler(self, lazy: bool = False) -> Scheduler:
        return self.scheduler_cls(
            self.app,
            max_interval=self.max_interval,
            lazy=lazy,
            schedule_filename=self.schedule_filename,
        )

    @property
    def scheduler(self) -> Scheduler:
        if self._scheduler is None:
            self._scheduler = self.get_scheduler()
        return self._scheduler

    def start(self, embedded_process: bool = False) -> None:
        """Tick until ``stop()``; the state is written and the lease given up on the way out."""
        self.app.broker.confirm_each_publish()  # a run is recorded as sent once stored
        scheduler = self.scheduler
        signal = signals.beat_embedded_init if embedded_process else signals.beat_init
        signal.send(sender=self)
        logger.info("beat: Starting... (%d entries)", len(scheduler.schedule))
        try:
            while not self._is_shutdown.is_set():
                interval = scheduler.tick()
                if interval > 0:
                    self._is_shutdown.wait(interval)
        finally:
            self.sync()
            self._is_stopped.set()

    def sync(self) -> None:
        if self._scheduler is not None:
            self._scheduler.close()

    def stop(self, wait: bool = False) -> None:
        logger.info("beat: Shutting down...")
        self._is_shutdown.set()
        if wait:
            self._is_stopped.wait()


class EmbeddedService(threading.Thread):
    """A ``Service`` in a daemon thread of the worker's process (``worker -B``)."""

    def __init__(self, app: Any, max_interval: float | None = None, **kwargs: Any) -> None:
        super().__init__(name="celeriac-beat", daemon=True)
        self.service = Service(app, max_interval=max_interval, **kwargs)

    def run(self) -> None:
        try:
            self.service.start(embedded_process=True)
        except Exception:  # the worker goes on; say loudly that periodic tasks stopped
            logger.exception("beat (embedded): stopped by an error; periodic tasks stop")

    def stop(self, timeout: float | None = None) -> None:
        self.service.stop()
        self.join(timeout)
