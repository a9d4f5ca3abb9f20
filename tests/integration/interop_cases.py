"""The Celery interop cases every broker runs, one class per direction: a Celery producer's
calls run on a celeriac worker started from the CLI, and a celeriac producer's (this
process) on a Celery worker; each side reads the results the other stored. Subclassed in
``test_celery_interop_amqp.py`` and ``test_celery_interop_redis.py``, whose module fixture
``interop`` gives the environment (``env``) and the project's settings (``settings``).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.integration.celery_peer import (
    CeleryWorker,
    celeriac_env,
    celery_env,
    imported_as_celeriac,
    run_celery_script,
)
from tests.integration.workers import ROOT, WorkerProcess

APP = "tests.integration.interop_project"
PRODUCER = "tests.integration.interop_celery_producer"
TROUBLE = ("dead-lettered", "internal error", "DecodeError")


def produce(interop: dict[str, Any], *args: str) -> Any:
    """Run one scenario of the Celery producer; its outcome."""
    return run_celery_script(ROOT, celery_env(interop["env"], ROOT), "-m", PRODUCER, *args)


class CeleriacSide:
    @pytest.fixture(scope="class")
    @classmethod
    def proj(cls, interop: dict[str, Any]) -> Iterator[ModuleType]:
        """The project imported here as celeriac's side."""
        with imported_as_celeriac(ROOT, APP, interop["settings"]) as module:
            yield module


class CeleryProducerCeleriacWorker(CeleriacSide):
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def celeriac_worker(cls, interop: dict[str, Any]) -> Iterator[WorkerProcess]:
        cls.before_the_celeriac_worker(interop)
        worker = WorkerProcess.started(
            ROOT, celeriac_env(interop["env"]), "-P", "solo", "-Q", "celery", app=APP
        )
        try:
            yield worker
        finally:
            worker.stop()
        for trouble in TROUBLE:
            assert trouble not in worker.text, worker.text

    @classmethod
    def before_the_celeriac_worker(cls, interop: dict[str, Any]) -> None:
        """What the broker's tests do before the worker starts."""

    def test_delay(self, interop: dict[str, Any]) -> None:
        assert produce(interop, "delay") == 5
        out = produce(interop, "who")
        assert out == {"sum": 5, "side": "celeriac", "id": out["id"]}

    def test_countdown_waits_for_its_eta(self, interop: dict[str, Any]) -> None:
        out = produce(interop, "countdown")
        assert out["side"] == "celeriac" and out["eta"] is True
        assert out["after"] >= 1.5 - 0.05, "ran before its eta"
        assert out["after"] < 10

    def test_retry(self, interop: dict[str, Any]) -> None:
        out = produce(interop, "retry", f"c2l-{uuid.uuid4().hex[:6]}")
        assert out == {"attempts": 2, "retries": 1, "side": "celeriac", "state": "SUCCESS"}

    def test_chain(self, interop: dict[str, Any]) -> None:
        assert produce(interop, "chain") == {"result": 50, "first": 5}

    def test_group(self, interop: dict[str, Any]) -> None:
        out = produce(interop, "group")
        assert out["results"] == [0, 2, 4, 6] and len(set(out["ids"])) == 4

    def test_a_chord_fails_when_celeriac_workers_run_its_header(
        self, interop: dict[str, Any]
    ) -> None:
        # Celery's producer leaves the join to Celery's keys (it saves no header group);
        # celeriac's workers join with celeriac's, find no header, and fail the chord
        # rather than leave it waiting. Chords do not cross (differences-from-celery.md).
        out = produce(interop, "chord")
        assert (out["state"], out["error"]) == ("FAILURE", "ChordError")
        assert "the header of chord" in out["message"]

    def test_link_error(self, interop: dict[str, Any]) -> None:
        out = produce(interop, "link_error")
        assert out["state"] == "FAILURE"
        assert (out["error"], out["message"]) == ("ValueError", "boom")
        assert out["errback"] == f"{out['id']}|celeriac"

    def test_a_call_revoked_with_celeriac_is_not_run(
        self, interop: dict[str, Any], proj: ModuleType
    ) -> None:
        # Revocations are the consuming worker's: celeriac's revoke reaches celeriac workers.
        task_id = str(uuid.uuid4())
        proj.app.control.revoke(task_id)
        out = produce(interop, "send_revoked", task_id)
        assert out == {"state": "REVOKED", "error": "TaskRevokedError"}


class CeleriacProducerCeleryWorker(CeleriacSide):
    @pytest.fixture(scope="class", autouse=True)
    @classmethod
    def celery_worker(cls, interop: dict[str, Any], proj: ModuleType) -> Iterator[CeleryWorker]:
        proj.app.broker.purge("celery")  # what the other class's worker may have left
        worker = CeleryWorker.started(ROOT, celery_env(interop["env"], ROOT), app=APP)
        try:
            yield worker
        finally:
            # Killed: every call it was given has finished. (Celery 5.7's solo pool spends
            # ten seconds in a warm stop after an errback, failing to cancel a request it
            # no longer runs.)
            worker.kill()

    def test_delay(self, proj: ModuleType) -> None:
        assert proj.add.delay(2, 3).get(timeout=15) == 5
        result = proj.who.delay(2, 3)
        assert result.get(timeout=15) == {"sum": 5, "side": "celery", "id": result.id}

    def test_retry(self, proj: ModuleType) -> None:
        result = proj.flaky.delay(f"l2c-{uuid.uuid4().hex[:6]}")
        assert result.get(timeout=15) == {"attempts": 2, "retries": 1, "side": "celery"}

    def test_chain(self, proj: ModuleType) -> None:
        from celeriac import chain

        result = chain(proj.add.s(2, 3), proj.mul.s(10)).apply_async()
        assert result.get(timeout=15) == 50
        assert result.parent.get(timeout=15) == 5

    def test_group(self, proj: ModuleType) -> None:
        from celeriac import group

        result = group(proj.add.s(i, i) for i in range(4)).apply_async()
        assert result.get(timeout=15) == [0, 2, 4, 6]

    def test_a_chord_is_not_joined_by_celery_workers(self, proj: ModuleType) -> None:
        from celeriac import chord
        from celeriac.exceptions import TimeoutError

        # The header runs on the Celery worker, whose join counts on Celery's keys, which
        # celeriac's producer does not set up: the body never runs. Chords do not cross.
        header = [proj.add.s(i, i).set(task_id=str(uuid.uuid4())) for i in range(4)]
        result = chord(header, proj.tsum.s()).apply_async()
        done = [proj.app.AsyncResult(sig.id).get(timeout=15) for sig in header]
        assert done == [0, 2, 4, 6]
        with pytest.raises(TimeoutError):
            result.get(timeout=2)  # the header is done; a body would be on its way
        assert result.state == "PENDING"

    def test_link_error(self, proj: ModuleType) -> None:
        result = proj.boom.apply_async(link_error=proj.on_error.s())
        with pytest.raises(Exception, match="boom") as raised:
            result.get(timeout=15)
        assert type(raised.value).__name__ == "ValueError"
        errback = proj.marks.blpop(f"{proj.PREFIX}errback", 15)
        assert errback is not None and errback[1].decode() == f"{result.id}|celery"

    def test_a_call_revoked_with_celery_is_not_run(
        self, interop: dict[str, Any], proj: ModuleType
    ) -> None:
        from celeriac.exceptions import TaskRevokedError

        # Celery's revoke, broadcast to its live workers, which confirm it; then the call.
        task_id = str(uuid.uuid4())
        assert produce(interop, "revoke", task_id) == {"replies": 1}
        result = proj.add.apply_async((1, 1), task_id=task_id)
        with pytest.raises(TaskRevokedError):
            result.get(timeout=15)
        assert result.state == "REVOKED"


def countdown_on_a_celery_worker(proj: ModuleType) -> dict[str, Any]:
    """A celeriac producer's countdown, as the Celery worker ran it, with the time it took."""
    sent = time.time()
    ran: dict[str, Any] = proj.when.apply_async(countdown=1.5).get(timeout=15)
    return {**ran, "after": ran["at"] - sent}
