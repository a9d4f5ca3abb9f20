"""The dashboard end to end in a real browser: Debian's Chromium driven by Playwright, a
real ``celeriac dashboard`` process and two real workers started from the CLI on Redis.

It opens the overview and watches the counts move as tasks pass, opens a failed task,
reads its traceback and sends it again, revokes a running task, replays a dead letter,
grows a pool, runs a beat entry now, and is refused without credentials when auth is on.
Every wait is on the page's DOM (or the broker's state).
Screenshots go to ``$CELERIAC_SCREENSHOTS`` when set (the docs' are made that way), else
to the test's temporary directory. Chromium missing skips locally and fails in CI.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.dashboard import hash_password
from tests.conftest import service_missing
from tests.integration.workers import WorkerProcess, project_env

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-background-networking",
                 "--disable-gpu", "--no-first-run", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip
MORE_TASKS = textwrap.dedent(
    """

    @app.task
    def boom(word):
        raise ValueError(f"boom: {word}")


    app.conf.result_extended = True  # failed tasks can be sent again from their page
    app.conf.beat_schedule = {"add-every-minute": {"task": "proj.add", "schedule": 60.0,
                                                   "args": (2, 2)}}
    """
)
WAIT_MS = 20_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DashboardProcess:
    """``celeriac -A proj dashboard`` in a child process."""

    def __init__(self, project: Path, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log: list[str] = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "celeriac", "-A", "proj", "dashboard",
             "--port", str(self.port), *args],
            cwd=project, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.log.append(line)

    def wait_listening(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while True:
            assert self.process.poll() is None, "dashboard exited:\n" + "".join(self.log)
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, "dashboard never listened"
                time.sleep(0.1)  # the port opens when uvicorn is up: nothing to wait on

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
        self._reader.join(10)  # the reader sees the end of the log, never a closed pipe
        if self.process.stdout is not None and not self._reader.is_alive():
            self.process.stdout.close()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest,
            ) -> Iterator[dict[str, Any]]:  # fmt: skip
    if not os.path.exists(CHROMIUM):
        service_missing("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    redis_url = request.getfixturevalue("redis_url")
    prefix = f"celeriac-test-{uuid.uuid4().hex[:10]}"
    project = tmp_path_factory.mktemp("dashboard")
    env = project_env(project, redis_url, prefix)
    with (project / "proj.py").open("a") as module:
        module.write(MORE_TASKS)
    app = Celery("client", broker=redis_url, backend=redis_url,
                 broker_transport_options={"key_prefix": prefix},
                 result_backend_transport_options={"key_prefix": prefix})  # fmt: skip
    started: list[Any] = []
    try:
        started.append(dashboard := DashboardProcess(project, env))
        # One worker on threads, one on prefork (where a revoke can terminate) with "slow"
        one = ("-E", "-n", "one@%h", "-P", "threads", "-c", "2")
        two = ("-E", "-n", "two@%h", "-P", "prefork", "-c", "1", "-Q", "celery,slow")
        started.append(WorkerProcess.started(project, env, *one))
        started.append(WorkerProcess.started(project, env, *two))
        dashboard.wait_listening()
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            try:
                yield {"app": app, "dashboard": dashboard, "browser": browser,
                       "project": project, "env": env}  # fmt: skip
            finally:
                browser.close()
    finally:
        for process in reversed(started):
            process.stop()
        app.close()
        import redis

        client = redis.Redis.from_url(redis_url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()


@pytest.fixture
def shots(tmp_path: Path) -> Callable[[Any, str], None]:
    where = Path(os.environ.get("CELERIAC_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)

    def shoot(page: Any, name: str) -> None:
        page.screenshot(path=str(where / f"{name}.png"), full_page=True)

    return shoot


@pytest.fixture
def page(cluster: dict[str, Any]) -> Iterator[Any]:
    context = cluster["browser"].new_context(viewport={"width": 1200, "height": 800})
    context.set_default_timeout(WAIT_MS)
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the confirm() before an action
    yield page
    context.close()


def live_text(page: Any, selector: str, expected: str) -> None:
    """Wait until the element's text is ``expected`` (the stream updates it)."""
    page.wait_for_function(
        "([sel, want]) => document.querySelector(sel)?.textContent.trim() === want",
        arg=[selector, expected], timeout=WAIT_MS,
    )  # fmt: skip


def wait_for(check: Callable[[], Any], what: str, timeout: float = 20) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)  # polling the broker's state: it has no change notification here
    return value


def test_the_overview_moves_as_tasks_pass(cluster: dict[str, Any], page: Any, shots: Any,
                                          ) -> None:  # fmt: skip
    page.goto(cluster["dashboard"].url + "/")
    live_text(page, '[data-live="workers_online"]', "2")
    for n in range(6):
        cluster["app"].send_task("proj.add", args=(n, n))
    live_text(page, '[data-live="totals_last_5m.succeeded"]', "6")
    # The chart moves without a reload: its highest rate leaves zero
    page.wait_for_function("() => Number(document.getElementById('chart').dataset.max) > 0")
    assert page.locator("#live").get_attribute("data-state") == "open"
    shots(page, "overview")
    page.goto(cluster["dashboard"].url + "/workers")
    page.wait_for_function("() => document.querySelectorAll('#workers td.online').length === 2")
    shots(page, "workers")
    # Grow a pool from its row: the next heartbeat shows three threads
    row = page.locator("#workers tr", has_text="one@")
    assert row.locator("td").nth(2).inner_text() == "2"
    row.locator("button", has_text="+1").click()
    page.wait_for_selector("#flash .flash.ok")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#workers tr')].some("
        "row => row.dataset.worker?.startsWith('one@') && row.children[2].textContent === '3')"
    )


def test_beat_entries_show_and_run_now(cluster: dict[str, Any], page: Any, shots: Any) -> None:
    page.goto(cluster["dashboard"].url + "/beat")
    row = page.locator('#beat tr[data-entry="add-every-minute"]')
    assert "every 60.0 s" in row.inner_text()
    shots(page, "beat")
    row.locator("button", has_text="Run now").click()
    page.wait_for_selector("#flash .flash.ok")
    assert page.inner_text("#flash").startswith("Sent add-every-minute now")


def test_a_failed_task_shows_its_traceback(cluster: dict[str, Any], page: Any, shots: Any,
                                           ) -> None:  # fmt: skip
    failed = cluster["app"].send_task("proj.boom", args=("kaboom",))
    page.goto(f"{cluster['dashboard'].url}/tasks/{failed.id}")  # opens once it is seen
    live_text(page, "#task-state", "FAILURE")
    page.goto(cluster["dashboard"].url + "/tasks?state=FAILURE")
    shots(page, "tasks")
    page.click(f'a[href$="/tasks/{failed.id}"]')
    page.wait_for_selector("#traceback")
    assert "ValueError: boom: kaboom" in page.inner_text("#traceback")
    steps = page.locator("#timeline .step").all_inner_texts()
    assert steps[-1] == "failed" and "started" in steps
    shots(page, "task")
    page.click("text=Retry (send again)")
    page.wait_for_selector("#flash .flash.ok")
    assert page.inner_text("#flash").startswith("Sent proj.boom again as task ")


def test_a_running_task_is_revoked_and_terminated(cluster: dict[str, Any], page: Any,
                                                  ) -> None:  # fmt: skip
    running = cluster["app"].send_task("proj.slow", args=("long", 60), queue="slow")
    page.goto(f"{cluster['dashboard'].url}/tasks/{running.id}")
    live_text(page, "#task-state", "STARTED")
    page.click("text=Revoke (terminate)")
    page.wait_for_selector("#flash .flash.ok")
    assert "terminated" in page.inner_text("#flash")
    live_text(page, "#task-state", "REVOKED")


def test_a_dead_letter_is_replayed(cluster: dict[str, Any], page: Any, shots: Any) -> None:
    app = cluster["app"]
    lost = app.send_task("proj.not_registered", args=(1,))
    wait_for(lambda: app.broker.dead_letters("celery"), "the unknown task's dead letter")
    page.goto(cluster["dashboard"].url + "/dead-letters?queue=celery")
    row = page.locator("#dead-letters tbody tr", has_text=lost.id)
    assert "unknown_task" in row.inner_text()
    shots(page, "dead-letters")
    row.locator("button", has_text="Replay").click()
    page.wait_for_selector("#flash .flash.ok")
    assert page.inner_text("#flash") == "Replayed 1 dead letter(s) to celery."
    page.goto(cluster["dashboard"].url + "/queues")
    page.wait_for_selector('#queues tr[data-queue="celery"]')
    shots(page, "queues")


def test_auth_refuses_without_credentials(cluster: dict[str, Any], shots: Any) -> None:
    encoded = hash_password("open sesame", iterations=1000)
    guarded = DashboardProcess(cluster["project"], cluster["env"], "--basic-auth",
                               f"ann:{encoded}")  # fmt: skip
    try:
        guarded.wait_listening()
        browser = cluster["browser"]
        from playwright.sync_api import Error as BrowserError

        # Chromium answers a 401 page load without credentials with a refused navigation
        anonymous = browser.new_context()
        with pytest.raises(BrowserError, match="ERR_INVALID_AUTH_CREDENTIALS"):
            anonymous.new_page().goto(guarded.url + "/")
        assert anonymous.request.get(guarded.url + "/api/overview").status == 401
        anonymous.close()
        wrong = browser.new_context(http_credentials={"username": "ann", "password": "guess"})
        refused = wrong.new_page().goto(guarded.url + "/")
        assert refused is not None and refused.status == 401
        wrong.close()
        ann = browser.new_context(http_credentials={"username": "ann", "password": "open sesame"})
        page = ann.new_page()
        response = page.goto(guarded.url + "/")
        assert response is not None and response.status == 200
        page.wait_for_selector(".user")
        assert page.inner_text(".user") == "ann"
        ann.close()
    finally:
        guarded.stop()
    # In the open without auth, it does not start at all
    exposed = subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "proj", "dashboard", "--address", "0.0.0.0"],
        cwd=cluster["project"], env=cluster["env"], capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert exposed.returncode != 0
    assert "will not listen on 0.0.0.0 without authentication" in exposed.stderr
