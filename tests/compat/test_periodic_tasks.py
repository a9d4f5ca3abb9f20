"""User guide, "Periodic Tasks": entries in ``beat_schedule`` (seconds, a timedelta, a
crontab) and from ``add_periodic_task`` in ``on_after_configure``, run by ``celeriac beat``
beside a worker, and by a worker started with ``-B`` — real processes, as a user runs them."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.compat.conftest import Guide, guide_project

PROJECT = """
import os
from datetime import timedelta

import redis

from celeriac import Celery
from celeriac.schedules import crontab

app = Celery("guide_periodic")
app.config_from_object("celeryconfig")
app.conf.timezone = "Europe/London"
PREFIX = os.environ["GUIDE_PREFIX"]
notes = redis.Redis.from_url(app.conf.result_backend, decode_responses=True)

app.conf.beat_schedule = {
    "tick-every-second": {"task": "guide_periodic.tick", "schedule": 1.0, "args": ("fast",)},
    "tick-every-2s": {"task": "guide_periodic.tick", "schedule": timedelta(seconds=2),
                      "args": ("timedelta",)},
    "monday-morning": {"task": "guide_periodic.tick", "schedule": crontab(hour=7, minute=30,
                       day_of_week=1), "args": ("crontab",)},
}


@app.on_after_configure.connect
def setup_periodic_tasks(sender, **kwargs):
    sender.add_periodic_task(1.0, tick.s("added"), name="added every second")


@app.task(bind=True)
def tick(self, label):
    notes.rpush(f"{PREFIX}:ticks", f"{label} {self.request.id}")
"""


@pytest.fixture
def guide(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Guide]:
    with guide_project(tmp_path_factory, "guide_periodic", PROJECT) as guide:
        yield guide


def await_ticks(guide: Guide, labels: dict[str, int]) -> list[str]:
    """Pop ticks until each label has run at least as often as asked; all that came."""
    client, seen = guide.redis(), []
    while any(sum(t.startswith(f"{label} ") for t in seen) < n for label, n in labels.items()):
        popped = client.blpop([f"{guide.prefix}:ticks"], timeout=20)
        assert popped is not None, f"the schedule stalled after {seen}"
        seen.append(popped[1])
    return seen


def test_beat_beside_a_worker_sends_every_entry_once_per_due_time(guide: Guide) -> None:
    worker = guide.worker("-P", "threads", "-c", "2")
    log = guide.path / "beat.log"
    with open(log, "w") as out:
        beat = subprocess.Popen(
            [sys.executable, "-m", "celeriac", "-A", "guide_periodic", "beat", "-l", "info"],
            cwd=guide.path, env=guide.env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        ticks = await_ticks(guide, {"fast": 3, "added": 3, "timedelta": 1})
    finally:
        beat.send_signal(signal.SIGTERM)
        assert beat.wait(30) == 0, log.read_text()
        assert worker.stop() == 0, worker.text
    ids = [tick.split()[1] for tick in ticks]
    assert len(ids) == len(set(ids))  # each run sent once
    assert not any(t.startswith("crontab") for t in ticks)  # not due in these seconds
    assert "tick-every-second" in log.read_text()  # each send is logged with its entry


def test_a_worker_with_beat_embedded(guide: Guide) -> None:
    worker = guide.worker("-P", "threads", "-c", "2", "-B")
    try:
        ticks = await_ticks(guide, {"fast": 2, "added": 2})
    finally:
        assert worker.stop() == 0, worker.text
    ids = [tick.split()[1] for tick in ticks]
    assert len(ids) == len(set(ids))


def test_a_crontab_is_read_in_the_projects_time_zone(guide: Guide) -> None:
    from datetime import datetime, timezone

    entry = guide.module.app.conf.beat_schedule["monday-morning"]["schedule"]
    summer = datetime(2025, 6, 1, tzinfo=timezone.utc)  # a Sunday; London is on BST
    assert entry.due_after(summer) == datetime(2025, 6, 2, 6, 30, tzinfo=timezone.utc)
