"""Task definitions and calls of two typical Celery projects (an email/report service
and Celery's tutorial), with only the import line changed.

Network calls are replaced by local functions; everything else is as those projects write it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from celeriac import Celery
from celeriac.brokers.memory import MemoryBroker
from celeriac.exceptions import MaxRetriesExceededError, SoftTimeLimitExceeded
from celeriac.messages import Message
from celeriac.testing import drain
from celeriac.utils.log import get_task_logger
from tests.conftest import take_messages

logger = get_task_logger(__name__)


class FakeSMTP:
    """Fails ``failures`` times with ConnectionError, then sends."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.sent: list[tuple[str, str, str]] = []

    def send(self, to: str, subject: str, body: str) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError("smtp unreachable")
        self.sent.append((to, subject, body))


def define_email_project_tasks(app: Celery, smtp_client: FakeSMTP) -> dict[str, Any]:
    saved_partial: list[str] = []

    @app.task(bind=True, max_retries=3)
    def send_email(self: Any, to: str, subject: str, body: str) -> dict[str, str]:
        try:
            logger.info(f"Sending email to {to}")
            smtp_client.send(to=to, subject=subject, body=body)
            return {"status": "sent", "to": to}
        except ConnectionError as exc:
            raise self.retry(exc=exc, countdown=10 * (2**self.request.retries)) from exc

    @app.task(bind=True, rate_limit="10/m")
    def process_image(self: Any, image_path: str, operations: list[str]) -> list[str]:
        logger.info(f"Processing {image_path}")
        return [f"{op}:{image_path}" for op in operations]

    @app.task(time_limit=300, soft_time_limit=240)
    def generate_report(report_id: str, slow: bool = False) -> dict[str, str]:
        try:
            if slow:
                raise SoftTimeLimitExceeded()  # what the worker raises at 240 s
            return {"report_id": report_id, "url": f"https://s3/{report_id}.pdf"}
        except SoftTimeLimitExceeded:
            logger.warning(f"Report {report_id} soft time limit exceeded")
            saved_partial.append(report_id)
            raise

    return {
        "send_email": send_email,
        "process_image": process_image,
        "generate_report": generate_report,
        "saved_partial": saved_partial,
    }


EMAIL_PROJECT_SETTINGS: dict[str, Any] = {
    "task_serializer": "json",
    "accept_content": ["json"],
    "result_serializer": "json",
    "timezone": "Asia/Seoul",
    "enable_utc": True,
    "worker_concurrency": 4,
    "worker_max_tasks_per_child": 100,
    "result_expires": 86400,
}


@pytest.fixture
def project_app() -> Celery:
    app = Celery("myapp", broker="memory://", backend="cache+memory://")
    app.conf.update(EMAIL_PROJECT_SETTINGS)
    return app


def test_email_project_send_email_eager_retries_then_sends(project_app: Celery) -> None:
    project_app.conf.task_always_eager = True
    smtp = FakeSMTP(failures=2)
    tasks = define_email_project_tasks(project_app, smtp)
    result = tasks["send_email"].delay("user@test.com", "제목", "본문")
    assert result.get(timeout=30) == {"status": "sent", "to": "user@test.com"}
    assert smtp.sent == [("user@test.com", "제목", "본문")]


def test_email_project_send_email_gives_up_after_max_retries(project_app: Celery) -> None:
    project_app.conf.task_always_eager = True
    tasks = define_email_project_tasks(project_app, FakeSMTP(failures=99))
    result = tasks["send_email"].delay("user@test.com", "제목", "본문")
    assert result.failed() and isinstance(result.result, MaxRetriesExceededError)


def test_email_project_send_email_backs_off_broker_side_10_20_40_seconds() -> None:
    now = [1_000_000.0]
    app = Celery("myapp", broker=MemoryBroker(clock=lambda: now[0]), backend="cache+memory://")
    smtp = FakeSMTP(failures=3)
    tasks = define_email_project_tasks(app, smtp)
    result = tasks["send_email"].apply_async(
        args=["user@test.com", "제목", "본문"], countdown=60, expires=3600, queue="email-queue"
    )
    assert result.id and result.status == "PENDING"
    waits = [60.0, 10.0, 20.0, 40.0]  # the countdown, then 10 * 2**retries
    for wait in waits:
        now[0] += wait - 0.5
        assert drain(app, ["email-queue"]) == 0  # not due yet: nothing runs early
        now[0] += 0.5
        assert drain(app, ["email-queue"]) == 1
    assert result.get(timeout=30) == {"status": "sent", "to": "user@test.com"}
    assert len(smtp.sent) == 1


def test_email_project_process_image_carries_its_rate_limit(project_app: Celery) -> None:
    tasks = define_email_project_tasks(project_app, FakeSMTP(0))
    assert tasks["process_image"].rate_limit == "10/m"
    result = tasks["process_image"].delay("img_1.jpg", ["resize", "watermark"])
    drain(project_app)
    assert result.get(timeout=1) == ["resize:img_1.jpg", "watermark:img_1.jpg"]


def test_email_project_generate_report_limits_travel_and_soft_limit_path_saves_work(
    project_app: Celery,
) -> None:
    tasks = define_email_project_tasks(project_app, FakeSMTP(0))
    report = tasks["generate_report"]
    report.delay("daily")
    [(message, _)] = take_messages(project_app)
    assert message.headers["timelimit"] == [300, 240]
    assert report.apply(("daily",)).get()["report_id"] == "daily"
    failed = report.apply(("weekly",), {"slow": True})
    assert isinstance(failed.result, SoftTimeLimitExceeded)
    assert tasks["saved_partial"] == ["weekly"]


def test_tutorial_add_with_delay_apply_async_apply_get_and_custom_task_id(
    project_app: Celery,
) -> None:
    @project_app.task
    def add(num1: int, num2: int) -> int:
        return num1 + num2

    assert add.apply(args=(2, 2)).get() == 4
    by_delay = add.delay(1, 2)
    by_apply_async = add.apply_async(args=[3, 4], kwargs={}, task_id="my-own-uuid-0001")
    ignored = add.apply_async(args=[5, 6], ignore_result=True)
    assert not by_delay.ready() and by_apply_async.id == "my-own-uuid-0001"
    drain(project_app)
    assert (by_delay.get(), by_apply_async.get()) == (3, 7)
    assert by_delay.ready() and isinstance(by_delay.date_done, dt.datetime)
    assert ignored.ready() is False  # ignore_result: nothing is stored
    sig = add.s(2, 2).set(countdown=10).set(expires=30)
    assert sig.options == {"countdown": 10, "expires": 30}
    sig.delay()
    assert project_app.broker.delayed_count("celery") == 1


def test_tutorial_signatures_with_si_and_options(project_app: Celery) -> None:
    @project_app.task
    def check_registration_number(registration_number: str = "1208801280") -> str:
        return f"checked:{registration_number}"

    stask_1 = check_registration_number.si("1208801280")
    stask_2 = check_registration_number.signature(args=["3898602190"], ignore_result=False)
    stask_3 = check_registration_number.signature(ignore_result=True)
    task_1 = stask_1.delay()
    task_2 = stask_2.apply_async(args=[], kwargs={}, countdown=3)
    task_3 = stask_3.apply_async(args=["898989"], kwargs={})
    drain(project_app)
    assert task_1.get(timeout=1) == "checked:1208801280"
    assert project_app.broker.delayed_count("celery") == 1  # task_2 waits its 3 s countdown
    assert task_3.state == "PENDING"  # ran, but ignore_result=True stored nothing
    assert task_2.id != task_1.id
    # an immutable signature ignores call-time args; a partial one puts them first
    assert stask_1.clone(("ignored",)).args == ("1208801280",)
    assert check_registration_number.s().clone(("x",)).args == ("x",)
    assert isinstance(Message, type)


def test_backoff_recipe_exponential_backoff_waits_within_its_jitter_bounds() -> None:
    import random

    def exponential_backoff(task_self: Any) -> int:  # a common backoff recipe, as written
        minutes = task_self.default_retry_delay / 60
        rand = random.uniform(minutes, minutes * 1.3)
        return int(rand**task_self.request.retries) * 60

    now = [1_000_000.0]
    app = Celery("backoff", broker=MemoryBroker(clock=lambda: now[0]), backend="cache+memory://")
    attempts: list[int] = []

    @app.task(bind=True, default_retry_delay=180, max_retries=5)
    def flaky_api(self: Any) -> str:
        attempts.append(self.request.retries)
        try:
            if len(attempts) <= 3:
                raise ConnectionError("service confused")
            return "ok"
        except ConnectionError as e:
            raise self.retry(exc=e, countdown=exponential_backoff(self)) from e

    result = flaky_api.delay()
    assert drain(app) == 1
    # retries 0 -> 60 s; 1 -> int(3..3.9) * 60 = 180 s; 2 -> int(9..15.21) * 60 in [540, 900]
    for earliest, latest in [(60, 60), (180, 180), (540, 900)]:
        now[0] += earliest - 1
        assert drain(app) == 0, "a retry ran before its backoff"
        now[0] += latest - earliest + 1
        assert drain(app) == 1, "a retry did not run by the end of its jitter window"
    assert result.get(timeout=1) == "ok" and attempts == [0, 1, 2, 3]
