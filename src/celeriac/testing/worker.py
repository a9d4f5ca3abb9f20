"""``start_worker(app)``: a real worker in a background thread, for tests.

The same consumer and pools as ``celeriac worker``, minus signal handling (a thread
cannot own signals). Leaving the ``with`` block stops it warm and waits for it.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from celeriac.worker.worker import Worker


@contextlib.contextmanager
def start_worker(
    app: Any,
    *,
    pool: str = "threads",
    concurrency: int = 1,
    queues: Sequence[str] | None = None,
    shutdown_timeout: float = 10.0,
    ready_timeout: float = 10.0,
    WorkController: type[Worker] = Worker,
    **options: Any,
) -> Iterator[Worker]:
    """Run a worker for ``app`` in a thread while the block runs; stop it warm after.
    ``WorkController`` is the worker class to run (a ``Worker`` subclass), as Celery's."""
    worker = WorkController(
        app,
        pool=pool,
        concurrency=concurrency,
        queues=queues,
        shutdown_timeout=shutdown_timeout,
        install_signal_handlers=False,
        **options,
    )
    codes: list[int] = []
    thread = threading.Thread(
        target=lambda: codes.append(worker.start()), name="celeriac-test-worker", daemon=True
    )
    thread.start()
    if not worker.ready.wait(ready_timeout):
        worker.stop("cold")  # (it may still be waiting for its broker: end that too)
        thread.join(shutdown_timeout + 5)
        raise RuntimeError(f"the test worker did not start within {ready_timeout}s")
    try:
        yield worker
    finally:
        worker.stop("warm")
        thread.join(shutdown_timeout + 5)
        if thread.is_alive():
            raise RuntimeError("the test worker did not stop")
