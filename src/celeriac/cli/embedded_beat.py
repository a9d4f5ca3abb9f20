"""``worker -B``: the periodic task scheduler in a thread of the worker's process.

Edge layer (cli): the worker does not import beat; this module starts an
``EmbeddedService`` once the worker is ready (its pool started, so no child is forked with
the scheduler's thread inside) and stops it when the worker begins to shut down (the state
is written and the lease given up). Several workers with -B are safe: one leads.
"""

from __future__ import annotations

from typing import Any

from celeriac import signals
from celeriac.beat import EmbeddedService


def embed_beat(app: Any, schedule_filename: str | None, scheduler: str | None) -> EmbeddedService:
    """Arrange for a scheduler to run beside the worker that is about to start."""
    # Built now, so a wrong scheduler name stops the start instead of the thread later.
    service = EmbeddedService(app, schedule_filename=schedule_filename, scheduler_cls=scheduler)

    def start(sender: Any = None, **kwargs: Any) -> None:
        if not service.is_alive():
            service.start()

    def stop(sender: Any = None, **kwargs: Any) -> None:
        if service.is_alive():
            service.stop(timeout=10)

    signals.worker_ready.connect(start, weak=False)  # closures: nothing else holds them
    signals.worker_shutting_down.connect(stop, weak=False)
    return service
