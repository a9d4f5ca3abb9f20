"""``celery.contrib.testing.tasks``: the ``celery.ping`` task ``start_worker`` sends to check
that a test worker answers. Importing this module registers it with every app."""

from __future__ import annotations

from typing import Any

from celeriac.app import shared_task


def _pong() -> str:
    """Answers ``'pong'``: proof that a worker takes and runs tasks."""
    return "pong"


ping: Any = shared_task(name="celery.ping")(_pong)
