"""The bench's celeriac app (``bench.peers.celeriac``) plus a ready mark: each worker process
pushes its pid to ``<prefix>:ready`` in the instrument's Redis once it consumes, so
``bench.scaling`` times a drain from the moment every worker is up."""

from __future__ import annotations

from typing import Any

from bench.peers import _common
from bench.peers.celeriac import TASKS, app
from celeriac import signals

__all__ = ["TASKS", "app"]


@signals.worker_ready.connect
def _ready(sender: Any = None, **_: Any) -> None:
    import os

    _common.sync_redis().rpush(f"{_common.SETTINGS.prefix}:ready", os.getpid())
