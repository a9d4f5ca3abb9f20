"""Pools: where task bodies run. ``base`` is the seam; one module per kind, each imported
only by a worker that runs it (``pool_class``): the prefork pool and multiprocessing would
add about 1.5 MB to every threads or asyncio worker."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from celeriac.worker.pools.base import Pool

POOLS = ("prefork", "threads", "asyncio", "solo")
POOL_CLASSES = {
    "prefork": "celeriac.worker.pools.prefork:PreforkPool",
    "threads": "celeriac.worker.pools.threads:ThreadsPool",
    "asyncio": "celeriac.worker.pools.asyncio_pool:AsyncioPool",
    "solo": "celeriac.worker.pools.threads:SoloPool",
}


def pool_class(name: str) -> type[Pool]:
    """The class of pool ``name`` (one of ``POOLS``), imported now."""
    module, _, attribute = POOL_CLASSES[name].partition(":")
    kind: type[Pool] = getattr(importlib.import_module(module), attribute)
    return kind
