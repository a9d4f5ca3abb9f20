"""``celeriac worker -B``: the scheduler runs in the worker's process, beside a prefork pool,
and the worker runs what it sends; two such workers send each due time once."""

from __future__ import annotations

import re
import time
import uuid
from datetime import datetime
from pathlib import Path

from celeriac.beat import run_id
from tests.integration.beats import beat_env
from tests.integration.workers import WorkerProcess

SENT = re.compile(r"Sending due task every-second \(proj.tick\) due (\S+) id (\S+)")


def test_two_workers_with_an_embedded_beat_send_each_due_time_once(
    tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    queue = f"beat-{uuid.uuid4().hex[:8]}"
    env = beat_env(tmp_path, redis_url, redis_prefix, "unused", BEAT_LEASE="3", BEAT_QUEUE=queue)
    args = ("-B", "-Q", queue, "-c", "1", "--pool", "prefork")
    workers = [WorkerProcess.started(tmp_path, env, *args) for _ in range(2)]

    def sent() -> list[tuple[str, str]]:
        return [m for w in workers for m in SENT.findall(w.text)]

    try:
        deadline = time.monotonic() + 20
        while len(sent()) < 3 or "succeeded" not in "".join(w.text for w in workers):
            assert time.monotonic() < deadline, "\n---\n".join(w.text for w in workers)
            time.sleep(0.05)  # polling the log readers
    finally:
        for worker in workers:
            worker.stop()
    runs = sent()
    assert len({due for due, _ in runs}) == len(runs), "each due time sent once"
    assert all(task_id == run_id("every-second", datetime.fromisoformat(due))
               for due, task_id in runs)  # fmt: skip
    assert "gave up the lease" in "".join(w.text for w in workers)
