"""The dashboard's JSON API and security over a real app on Redis (Starlette's TestClient):
the overview and workers from events, task search and detail, queues, dead letters listed,
replayed and deleted, revoke, the live stream, CSRF, basic auth with hashed passwords,
bearer tokens, the read-only flag, refusing to listen in the open without auth, headers.

Events are applied to the dashboard's own ``Monitor`` (the real ``events.State``), so each
test states exactly what the cluster told it; the broker reads and actions are real.
"""

from __future__ import annotations

import asyncio
import base64
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from starlette.testclient import TestClient

from celeriac import Celery
from celeriac.brokers.base import DeadLetterReason
from celeriac.dashboard import Auth, Monitor, create_app, hash_password
from celeriac.dashboard.security import parse_basic_auth
from celeriac.dashboard.server import build, check_exposure
from celeriac.exceptions import ImproperlyConfigured

HASH = hash_password("s3cret-pass", iterations=1000)  # few iterations: a fast test


@pytest.fixture
def app(redis_url: str, redis_prefix: str) -> Iterator[Celery]:
    app = Celery(
        "dash", broker=redis_url, backend=redis_url,
        broker_transport_options={"key_prefix": redis_prefix},
        result_backend_transport_options={"key_prefix": redis_prefix},
    )  # fmt: skip
    yield app
    app.close()


def client_for(app: Celery, **options: Any) -> tuple[TestClient, Monitor]:
    monitor = Monitor(app)
    return TestClient(create_app(app, monitor=monitor, **options)), monitor


def csrf(client: TestClient, **headers: str) -> dict[str, str]:
    token = client.get("/api/csrf", headers=headers).json()["csrf_token"]
    return {"X-CSRF-Token": token, **headers}


def worker_events(monitor: Monitor, hostname: str = "w1@host") -> None:
    now = time.time()
    monitor.apply({"type": "worker-online", "hostname": hostname, "timestamp": now,
                   "local_received": now, "freq": 2.0, "pool_size": 4, "active": 1,
                   "processed": 3, "pid": 42})  # fmt: skip


def task_events(monitor: Monitor, task_id: str, *steps: str, **fields: Any) -> None:
    for step in steps:
        now = time.time()
        monitor.apply({"type": f"task-{step}", "uuid": task_id, "hostname": "w1@host",
                       "timestamp": now, "local_received": now, **fields})  # fmt: skip


def dead_letter_one(app: Celery, task: str = "proj.missing") -> str:
    """A real dead letter: a message sent, fetched and dead-lettered through the broker."""
    sent = app.send_task(task, args=(1, 2))

    async def settle() -> None:
        try:
            (delivery,) = await app.broker.fetch(["celery"], 1, 5.0)
            await delivery.dead_letter(DeadLetterReason.UNKNOWN_TASK, f"no task {task}")
        finally:
            await app.broker.close_async()

    asyncio.run(settle())
    return str(sent.id)


def test_overview_and_workers_come_from_events(app: Celery) -> None:
    client, monitor = client_for(app)
    with client:
        worker_events(monitor)
        task_events(monitor, "t-1", "received", "started", "succeeded", name="proj.add")
        task_events(monitor, "t-2", "received", "started", name="proj.slow")
        task_events(monitor, "t-3", "received", "failed", name="proj.boom",
                    exception="ValueError('boom')", traceback="Traceback ...")  # fmt: skip
        overview = client.get("/api/overview").json()
        assert overview["workers_online"] == 1
        assert overview["totals_last_5m"]["received"] == 3
        assert overview["failure_rate"] == 0.5
        assert overview["queues"][0] == {"name": "celery", "ready": 0, "delayed": 0,
                                         "delayed_shared": False, "dead_letters": 0,
                                         "in_per_s": 0.0, "out_per_s": 0.0,
                                         "error": None}  # fmt: skip
        assert len(overview["series"]["time"]) == len(overview["series"]["failed"]) == 720
        (worker,) = client.get("/api/workers").json()["workers"]
        assert worker["hostname"] == "w1@host" and worker["online"]
        assert (worker["pool_size"], worker["busy"], worker["free"]) == (4, 1, 3)
        assert worker["running"] == [
            {"id": "t-2", "name": "proj.slow", "started": pytest.approx(time.time(), abs=5)}
        ]
        # A page renders the same numbers
        page = client.get("/workers")
        assert page.status_code == 200 and "w1@host" in page.text


def test_queue_rates_in_and_out_come_from_sent_and_received_events(app: Celery) -> None:
    client, monitor = client_for(app)
    with client:
        for n in range(6):
            now = time.time()
            monitor.apply({"type": "task-sent", "uuid": f"q-{n}", "queue": "celery",
                           "timestamp": now, "local_received": now})  # fmt: skip
        task_events(monitor, "q-0", "received", name="proj.add", routing_key="celery")
        (queue,) = client.get("/api/queues").json()["queues"]
    assert (queue["in_per_s"], queue["out_per_s"]) == (0.1, round(1 / 60, 3))


def test_a_worker_goes_offline_after_three_heartbeats_and_is_forgotten_later(
    app: Celery,
) -> None:
    monitor = Monitor(app, worker_ttl=60)
    old = time.time() - 7  # a heartbeat every 2 s: three missed after 6 s
    monitor.apply({"type": "worker-heartbeat", "hostname": "gone@h", "timestamp": old,
                   "local_received": old, "freq": 2.0})  # fmt: skip
    assert not monitor.state.workers["gone@h"].alive
    monitor.forget_workers(now=time.time())
    assert "gone@h" in monitor.state.workers  # offline, still listed
    monitor.forget_workers(now=time.time() + 61)
    assert "gone@h" not in monitor.state.workers


def test_tasks_are_searched_paged_and_shown_with_their_timeline(app: Celery) -> None:
    client, monitor = client_for(app)
    with client:
        for n in range(5):
            task_events(monitor, f"add-{n}", "received", "started", "succeeded",
                        name="proj.add", args=f"({n}, 1)", result=str(n + 1))  # fmt: skip
        task_events(monitor, "boom-1", "received", "started", "failed", name="proj.boom",
                    args="()", exception="ValueError('boom')",
                    traceback='Traceback (most recent call last):\nValueError: boom')  # fmt: skip
        found = client.get("/api/tasks", params={"name": "proj.add", "limit": 2}).json()
        assert found["total"] == 5 and len(found["tasks"]) == 2
        assert found["tasks"][0]["id"] == "add-4"  # newest first
        assert client.get("/api/tasks", params={"search": "(3, 1)"}).json()["total"] == 1
        failed = client.get("/api/tasks", params={"state": "failure"}).json()["tasks"]
        assert [task["id"] for task in failed] == ["boom-1"]
        detail = client.get("/api/tasks/boom-1").json()
        assert detail["traceback"].endswith("ValueError: boom")
        assert [step["step"] for step in detail["timeline"]] == ["received", "started", "failed"]
        assert client.get("/api/tasks", params={"limit": 0}).status_code == 400
        assert client.get("/api/tasks/nope").status_code == 404
        assert "ValueError: boom" in client.get("/tasks/boom-1").text


def test_a_task_only_the_result_store_knows_is_shown_from_it(app: Celery) -> None:
    client, _ = client_for(app)
    task_id = str(uuid.uuid4())
    app.backend.store_result(task_id, ValueError("stored"), "FAILURE", traceback="TB here")
    with client:
        detail = client.get(f"/api/tasks/{task_id}").json()
    assert detail["state"] == "FAILURE" and detail["source"] == "results"
    assert detail["traceback"] == "TB here"


def test_dead_letters_are_listed_shown_replayed_and_deleted(app: Celery) -> None:
    client, _ = client_for(app)
    with client:
        task_id = dead_letter_one(app)
        listing = client.get("/api/dead-letters", params={"reason": "unknown_task"}).json()
        (letter,) = listing["letters"]
        assert (letter["id"], letter["task"], letter["queue"]) == (task_id, "proj.missing",
                                                                   "celery")  # fmt: skip
        assert listing["reasons"] == {"unknown_task": 1}
        assert client.get("/api/dead-letters", params={"reason": "bogus"}).status_code == 400
        detail = client.get(f"/api/dead-letters/celery/{letter['entry_id']}").json()
        assert detail["headers"]["task"] == "proj.missing"
        # Replay one: back in the queue, no longer a dead letter
        replayed = client.post(
            "/api/dead-letters/celery/replay",
            json={"entry_ids": [letter["entry_id"]]},
            headers=csrf(client),
        )
        assert replayed.json()["replayed"] == 1
        assert app.broker.queue_length("celery") == 1
        assert client.get("/api/dead-letters").json()["letters"] == []
        # Delete: dead-letter it again, then drop every dead letter of the queue
        app.broker.purge("celery")
        dead_letter_one(app)
        deleted = client.post("/api/dead-letters/celery/purge", headers=csrf(client))
        assert deleted.json()["deleted"] == 1
        assert app.broker.dead_letters("celery") == []


def test_queues_show_depths_and_purge_needs_the_csrf_token(app: Celery) -> None:
    client, _ = client_for(app)
    with client:
        app.send_task("proj.add", args=(1, 1))
        app.send_task("proj.add", args=(1, 1), countdown=600)
        (queue,) = client.get("/api/queues").json()["queues"]
        assert (queue["ready"], queue["delayed"]) == (1, 1)
        refused = client.post("/api/queues/celery/purge")
        assert refused.status_code == 403 and "CSRF" in refused.json()["error"]
        done = client.post("/api/queues/celery/purge", headers=csrf(client))
        assert done.json()["purged"] == 2
        assert client.post("/api/queues/nope/purge", headers=csrf(client)).status_code == 404
        # htmx asks for a fragment to show
        fragment = client.post("/api/queues/celery/purge",
                               headers={**csrf(client), "HX-Request": "true"})  # fmt: skip
        assert fragment.text.startswith('<p class="flash ok"')


def test_revoke_with_terminate_reaches_the_broker(app: Celery) -> None:
    client, _ = client_for(app)
    with client:
        answer = client.post("/api/tasks/t-9/revoke", json={"terminate": True},
                             headers=csrf(client))  # fmt: skip
        message = "Task t-9 revoked and terminated (SIGTERM)."
        assert answer.json() == {"ok": True, "terminate": True, "message": message}
        assert "t-9" in app.broker.revoked_ids()
        bad = client.post("/api/tasks/t-9/revoke", json={"signal": "SIGFOO"}, headers=csrf(client))
        assert bad.status_code == 400


def test_the_stream_sends_snapshots(app: Celery) -> None:
    client, monitor = client_for(app)
    with client:
        worker_events(monitor)
        task_events(monitor, "s-1", "received", name="proj.add")
        with client.stream("GET", "/api/stream", params={"limit": 2, "workers": 1,
                                                         "task": "s-1"}) as stream:  # fmt: skip
            assert stream.headers["content-type"].startswith("text/event-stream")
            text = "".join(stream.iter_text())
    events = [block for block in text.split("\n\n") if block]
    assert len(events) == 2 and all(block.startswith("event: snapshot\n") for block in events)
    assert '"workers_online": 1' in events[0] and '"s-1"' in events[0]
    assert '"series"' in events[0] and '"series"' not in events[1]


def test_basic_auth_with_a_hashed_password(app: Celery) -> None:
    client, _ = client_for(app, auth=Auth(users=parse_basic_auth(f"ann:{HASH}")))
    good = "Basic " + base64.b64encode(b"ann:s3cret-pass").decode()
    bad = "Basic " + base64.b64encode(b"ann:wrong").decode()
    with client:
        refused = client.get("/api/overview")
        assert refused.status_code == 401
        assert refused.headers["www-authenticate"] == 'Basic realm="celeriac"'
        assert client.get("/", headers={"Authorization": bad}).status_code == 401
        assert client.get("/api/overview", headers={"Authorization": good}).status_code == 200
        # The API works with auth on, actions with the user's CSRF token
        headers = csrf(client, Authorization=good)
        assert client.post("/api/queues/celery/purge", headers=headers).status_code == 200
    with pytest.raises(ValueError, match="hashed, not in plain text"):
        parse_basic_auth("ann:s3cret-pass")


def test_bearer_token_needs_no_csrf_and_read_only_refuses_actions(app: Celery) -> None:
    token = "t" * 32
    client, _ = client_for(app, auth=Auth.from_token(token))
    with client:
        assert client.get("/api/queues").status_code == 401
        auth = {"Authorization": f"Bearer {token}"}
        assert client.get("/api/queues", headers=auth).status_code == 200
        assert client.post("/api/queues/celery/purge", headers=auth).status_code == 200
    client, _ = client_for(app, auth=Auth.from_token(token, read_only=True))
    with client:
        refused = client.post(
            "/api/queues/celery/purge", headers={"Authorization": f"Bearer {token}"}
        )
        assert refused.status_code == 403 and "read-only" in refused.json()["error"]


def test_it_refuses_to_listen_in_the_open_without_auth(app: Celery) -> None:
    with pytest.raises(ImproperlyConfigured, match="without authentication"):
        check_exposure("0.0.0.0", Auth())
    check_exposure("127.0.0.1", Auth())
    check_exposure("0.0.0.0", Auth.from_token("x" * 20))
    # On loopback without auth, a request for another host name (DNS rebinding) is refused
    client = TestClient(build(app, "127.0.0.1", Auth()))
    with client:
        assert client.get("/api/queues", headers={"Host": "evil.example"}).status_code == 400
        assert client.get("/api/queues", headers={"Host": "127.0.0.1:5555"}).status_code == 200


def test_security_headers_prefix_and_the_openapi_schema(app: Celery) -> None:
    client, _ = client_for(app, url_prefix="/flower/")
    with client:
        page = client.get("/flower/")
        assert page.status_code == 200
        assert "default-src 'self'" in page.headers["content-security-policy"]
        assert page.headers["x-frame-options"] == "DENY"
        assert page.headers["x-content-type-options"] == "nosniff"
        assert 'href="/flower/static/vendor/uplot-1.6.32.min.css"' in page.text
        assert client.get("/flower/static/vendor/htmx-2.0.11.min.js").status_code == 200
        assert client.get("/api/overview").status_code == 404
        schema = client.get("/flower/api/openapi.json").json()
    assert "/flower/api/dead-letters/{queue}/replay" in schema["paths"]
    revoke = schema["paths"]["/flower/api/tasks/{task_id}/revoke"]["post"]
    assert revoke["summary"].startswith("Revoke a task")
    assert all(isinstance(path, str) and not path.startswith("/flower/static")
               for path in schema["paths"])  # fmt: skip


def test_vendored_files_are_pinned_with_their_licences() -> None:
    vendor = Path(__file__).resolve().parents[2] / "src/celeriac/dashboard/static/vendor"
    names = sorted(path.name for path in vendor.iterdir())
    assert names == ["README.md", "htmx-2.0.11.LICENSE", "htmx-2.0.11.min.js",
                     "uplot-1.6.32.LICENSE", "uplot-1.6.32.iife.min.js",
                     "uplot-1.6.32.min.css"]  # fmt: skip


def test_runtimes_and_the_time_window(app: Celery) -> None:
    client, monitor = client_for(app)
    with client:
        for n in range(1, 101):
            task_events(monitor, f"r-{n}", "received", "started", name="proj.add")
            task_events(monitor, f"r-{n}", "succeeded", name="proj.add", runtime=n / 100)
        (row,) = client.get("/api/runtimes").json()["runtimes"]
        assert row == {"name": "proj.add", "count": 100, "p50": 0.5, "p95": 0.95, "p99": 0.99}
        future = client.get("/api/tasks", params={"since": time.time() + 60}).json()
        assert future["total"] == 0
        window = {"since": "2000-01-01T00:00:00", "until": str(time.time() + 60)}
        assert client.get("/api/tasks", params=window).json()["total"] == 100
        bad = client.get("/api/tasks", params={"since": "yesterday"})
        assert bad.status_code == 400 and "ISO 8601" in bad.json()["error"]
        assert "p95" in client.get("/tasks").text


def test_worker_actions_are_checked_and_sent(app: Celery) -> None:
    client, _ = client_for(app)
    with client:
        headers = csrf(client)
        sent = client.post("/api/workers/w1@host/pool-grow", json={"n": 2}, headers=headers)
        assert sent.json() == {
            "ok": True,
            "message": "Sent pool-grow to w1@host.",
            "replies": [],
        }  # fmt: skip (no such worker: nobody replies)
        assert client.post("/api/workers/w1@host/pool-shrink", json={"n": 0},
                           headers=headers).status_code == 400  # fmt: skip
        assert client.post("/api/workers/w1@host/add-consumer", json={},
                           headers=headers).status_code == 400  # fmt: skip
        assert client.post("/api/workers/w1@host/explode", headers=headers).status_code == 404


def test_beat_entries_are_listed_disabled_and_run_now(app: Celery) -> None:
    app.conf.beat_schedule = {"tick": {"task": "proj.add", "schedule": 60.0, "args": (1, 2)}}
    client, _ = client_for(app)
    with client:
        (entry,) = client.get("/api/beat").json()["entries"]
        assert (entry["name"], entry["task"], entry["enabled"]) == ("tick", "proj.add", True)
        assert entry["schedule"]["every"] == 60.0 and entry["next_run"] > time.time()
        headers = csrf(client)
        assert client.post("/api/beat/tick/disable", headers=headers).json()["ok"]
        assert client.get("/api/beat").json()["entries"][0]["enabled"] is False
        ran = client.post("/api/beat/tick/run-now", headers=headers).json()
        assert ran["task_id"] and app.broker.queue_length("celery") == 1
        assert client.post("/api/beat/nope/enable", headers=headers).status_code == 404
        assert "tick" in client.get("/beat").text


def test_a_failed_task_is_sent_again_with_the_arguments_the_store_kept(app: Celery) -> None:
    app.conf.result_extended = True
    call = SimpleNamespace(task="proj.add", args=[2, 3], kwargs={"z": 1}, hostname="w1@h",
                           retries=0, delivery_info={"routing_key": "celery"})  # fmt: skip
    failed_id, plain_id = str(uuid.uuid4()), str(uuid.uuid4())
    app.backend.store_result(failed_id, ValueError("x"), "FAILURE", request=call)
    client, _ = client_for(app)
    with client:
        sent = client.post(f"/api/tasks/{failed_id}/retry", headers=csrf(client)).json()
        assert sent["message"] == f"Sent proj.add again as task {sent['task_id']}."
        assert app.broker.queue_length("celery") == 1
        # Without the kept arguments (stored with no call), or not failed, it says why
        app.backend.store_result(plain_id, ValueError("x"), "FAILURE")
        refused = client.post(f"/api/tasks/{plain_id}/retry", headers=csrf(client))
        assert refused.status_code == 409 and "result_extended=True" in refused.json()["error"]
        app.backend.store_result(plain_id, 5, "SUCCESS")
        refused = client.post(f"/api/tasks/{plain_id}/retry", headers=csrf(client))
        assert refused.status_code == 409 and "is SUCCESS" in refused.json()["error"]
