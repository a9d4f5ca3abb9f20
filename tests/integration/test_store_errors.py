"""Celery's result store errors: a failed read raises ``BackendGetMetaError`` (with the
task id), a failed write ``BackendStoreError`` (with the state and task id), and a lost
store is also a ``BackendConnectionError``. Stores pointed at ports nothing listens on."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from celeriac import Celery, states
from celeriac.exceptions import (
    BackendConnectionError,
    BackendError,
    BackendGetMetaError,
    BackendStoreError,
)
from celeriac.results.database import DatabaseBackend
from celeriac.results.redis import RedisBackend
from tests.integration.conftest import free_port


def test_a_dead_redis_store_raises_get_meta_and_store_errors() -> None:
    backend = RedisBackend(f"redis://127.0.0.1:{free_port()}/0")
    try:
        with pytest.raises(BackendGetMetaError) as read:
            backend.get_task_meta("t-1")
        assert read.value.task_id == "t-1"
        assert isinstance(read.value, BackendConnectionError)
        assert "cannot reach the Redis result backend" in str(read.value)
        assert isinstance(read.value.__cause__, BackendConnectionError)

        with pytest.raises(BackendStoreError) as write:
            backend.store_result("t-2", 5, states.SUCCESS)
        assert (write.value.state, write.value.task_id) == (states.SUCCESS, "t-2")
        assert isinstance(write.value, ConnectionError)
        assert repr(write.value).endswith(" state:SUCCESS task_id:t-2")

        with pytest.raises(BackendGetMetaError):  # get() reads the state too
            backend.wait_for("t-3", timeout=1)
    finally:
        backend.close()


def test_a_dead_database_store_raises_them_too() -> None:
    backend = DatabaseBackend(f"postgresql://u:p@127.0.0.1:{free_port()}/x")
    try:
        with pytest.raises(BackendStoreError) as write:
            backend.mark_as_failure("t-4", ValueError("no"))
        assert (write.value.state, write.value.task_id) == (states.FAILURE, "t-4")
        assert "cannot reach the database result backend" in str(write.value)
    finally:
        backend.close()


def test_a_refused_write_is_a_store_error_but_not_a_lost_store(tmp_path: Path) -> None:
    backend = DatabaseBackend(f"sqlite:///{tmp_path / 'r.db'}")
    try:
        with pytest.raises(BackendStoreError, match="keys of up to 155") as write:
            backend.mark_as_done("x" * 200, 1)
        assert not isinstance(write.value, BackendConnectionError)
        assert write.value.task_id == "x" * 200
    finally:
        backend.close()


def test_retries_run_out_then_the_state_read_raises_get_meta_error() -> None:
    # Celery's always-retry case: the retries end in BackendGetMetaError.
    app = Celery(
        "p",
        broker="memory://",
        backend=f"redis://127.0.0.1:{free_port()}/0",
        result_backend_always_retry=True,
        result_backend_max_retries=2,
        result_backend_base_sleep_between_retries_ms=1,
    )
    try:
        with pytest.raises(BackendGetMetaError) as read:
            app.AsyncResult("t-5").state  # noqa: B018 - reading it is the call under test
        assert read.value.task_id == "t-5"
    finally:
        app.close()


def test_the_errors_keep_their_fields_through_pickle() -> None:
    stored = pickle.loads(pickle.dumps(BackendStoreError("full", state="STARTED", task_id="a")))
    assert (str(stored), stored.state, stored.task_id) == ("full", "STARTED", "a")
    read = pickle.loads(pickle.dumps(BackendGetMetaError("gone", task_id="b")))
    assert (str(read), read.task_id) == ("gone", "b")
    assert issubclass(BackendStoreError, BackendError)
    assert issubclass(BackendGetMetaError, BackendError)
    assert repr(BackendGetMetaError("x", task_id="c")) == "BackendGetMetaError('x') task_id:c"
