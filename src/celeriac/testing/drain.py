"""``drain(app)``: run every ready message of the app's broker here, one by one.

Tests step tasks by hand with it, through the real path (encode, broker, decode, trace,
settle), with no worker thread. Delayed messages stay delayed until they are due.
Messages the broker dead-lettered by itself on the way are ended as a worker ends them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from celeriac.worker import handed_back
from celeriac.worker.execution import Job, prepare, refuse, run, settle


async def drain_async(
    app: Any, queues: Sequence[str] | None = None, limit: int | None = None
) -> int:
    names = list(queues or [app.conf.task_default_queue])
    handled = 0
    try:
        while limit is None or handled < limit:
            # What this process published (the calls, a chain's next step) is held first.
            await app.broker.flush_async()
            deliveries = await app.broker.fetch(names, 1, timeout=0)
            handed_back.end_all(app, app.broker.take_dead_lettered(), "drain@localhost")
            if not deliveries:
                break
            prepared = prepare(app, deliveries[0], hostname="drain@localhost")
            if isinstance(prepared, Job):
                await settle(prepared, run(prepared))
            else:
                await refuse(app, prepared)
            handled += 1
    finally:  # the broker's async connections belong to this loop: release them here
        await app.broker.close_async()
    return handled


def drain(app: Any, queues: Sequence[str] | None = None, limit: int | None = None) -> int:
    """Process ready messages of ``queues`` (default queue if None); return how many."""
    return asyncio.run(drain_async(app, queues, limit))
