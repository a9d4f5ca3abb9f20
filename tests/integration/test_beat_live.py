"""Live changes against a running ``celeriac beat`` on Redis and RabbitMQ: an entry added
with ``app.beat.add`` is sent within a second of its first due time, a disabled one stops,
with no restart."""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from tests.integration.beats import LEADING, BeatProcess, beat_env


def sends(beat: BeatProcess, name: str) -> list[float]:
    return [at for at, line in list(beat.lines) if f"Sending due task {name} " in line]


def wait_until(check: Any, timeout: float, beat: BeatProcess, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}:\n{beat.text}"
        time.sleep(0.05)  # polling the log reader's list


@pytest.mark.alone
@pytest.mark.parametrize("kind", ["redis", "amqp"])
def test_an_entry_added_and_disabled_live(
    kind: str, request: Any, tmp_path: Path, redis_url: str, redis_prefix: str
) -> None:
    namespace = f"t{uuid.uuid4().hex[:10]}"
    url = request.getfixturevalue("amqp_url") if kind == "amqp" else redis_url
    options = {"namespace": namespace} if kind == "amqp" else {"key_prefix": redis_prefix}
    env = beat_env(tmp_path, url, redis_prefix, namespace, BEAT_LEASE="10", BEAT_QUEUE="q1")
    app = Celery("client", broker=url, broker_transport_options=options)
    beat = BeatProcess(tmp_path, env)
    try:
        wait_until(lambda: beat.last(LEADING) > 0, 20, beat, "beat never led")
        added_at = time.monotonic()
        app.beat.add("live-entry", "proj.tick", 1.0, options={"queue": "q2"})
        wait_until(lambda: sends(beat, "live-entry"), 5, beat, "the live entry was not sent")
        assert sends(beat, "live-entry")[0] - added_at < 2.5  # applied within 1 s, due within 1
        app.beat.disable("live-entry")
        disabled_at = time.monotonic()
        wait_until(lambda: time.monotonic() > disabled_at + 3, 5, beat, "")
        late = [at for at in sends(beat, "live-entry") if at > disabled_at + 1.5]
        assert late == [], "a disabled entry stops within a second"
        assert set(app.beat.entries()) == {"live-entry"}  # this app defines no beat_schedule
        assert app.beat.entries()["live-entry"]["enabled"] is False
    finally:
        beat.stop()
        app.broker.close()
