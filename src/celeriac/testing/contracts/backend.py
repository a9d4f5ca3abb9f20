"""The result-backend contract: what ``AsyncResult`` users rely on, for every engine.

Uses only the public ``ResultBackend`` API, so it runs unchanged against memory and
Redis. Imports ``celeriac.results.base``, ``celeriac.request``, leaves, pytest and the
stdlib. Waiting is checked by finishing a task from another thread while a caller
waits on it.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

import pytest

from celeriac import states
from celeriac.exceptions import RemoteTaskError, TimeoutError
from celeriac.request import Request
from celeriac.results.base import ResultBackend


class BackendFactory(Protocol):
    """Builds a backend for one test; the fixture providing it cleans up afterwards."""

    def __call__(self, expires: float | None = 86400.0) -> ResultBackend: ...


class InvoiceError(Exception):
    """A user exception type: it must come back by name, never be imported."""


def _id() -> str:
    return f"contract-{uuid.uuid4().hex}"


class _Child:
    """A result the task sent: the store keeps its ``as_tuple()`` form."""

    def __init__(self, task_id: str) -> None:
        self.id = task_id

    def as_tuple(self) -> tuple[tuple[str, None], None]:
        return ((self.id, None), None)


class ResultBackendContract:
    """Subclass it and provide a ``make_backend`` fixture returning a ``BackendFactory``."""

    def test_unknown_task_is_pending(self, make_backend: BackendFactory) -> None:
        meta = make_backend().get_task_meta(_id())
        assert (meta["status"], meta["result"], meta["date_done"]) == (states.PENDING, None, None)

    def test_success_round_trips_value_and_date_done(self, make_backend: BackendFactory) -> None:
        backend, task_id = make_backend(), _id()
        backend.store_result(task_id, {"sum": 4, "items": [1, "two"]}, states.SUCCESS, name="t")
        meta = backend.get_task_meta(task_id)
        assert meta["status"] == states.SUCCESS and meta["result"] == {
            "sum": 4,
            "items": [1, "two"],
        }
        assert meta["date_done"] is not None and meta["name"] == "t"

    def test_builtin_failure_comes_back_as_itself_with_traceback(
        self, make_backend: BackendFactory
    ) -> None:
        backend, task_id = make_backend(), _id()
        backend.store_result(task_id, ValueError("bad", 42), states.FAILURE, traceback="TB text")
        meta = backend.get_task_meta(task_id)
        assert isinstance(meta["result"], ValueError) and meta["result"].args == ("bad", 42)
        assert meta["traceback"] == "TB text"

    def test_user_exception_comes_back_by_name_only(self, make_backend: BackendFactory) -> None:
        backend, task_id = make_backend(), _id()
        backend.store_result(task_id, InvoiceError("unpaid"), states.FAILURE)
        error = backend.get_task_meta(task_id)["result"]
        assert isinstance(error, RemoteTaskError) and type(error).__name__ == "InvoiceError"
        assert error.exc_module == __name__ and error.args == ("unpaid",)

    def test_the_call_is_kept_with_its_result(self, make_backend: BackendFactory) -> None:
        """Children, group and parent always; name, args, kwargs, worker, retries and queue
        with ``extended`` (``result_extended``)."""
        backend, task_id = make_backend(), _id()
        backend.extended = True
        request = Request(id=task_id, task="shop.buy", args=(1, "pear"), kwargs={"n": 2})
        request.hostname, request.retries, request.group = "w1@host", 2, "g-1"
        request.delivery_info = {"routing_key": "shop"}
        request.children = [_Child("c-1")]
        backend.store_result(task_id, 5, states.SUCCESS, request=request)
        meta = backend.get_task_meta(task_id)
        assert meta["children"] == [[["c-1", None], None]]  # a tuple comes back as a list
        assert (meta["group_id"], meta["name"], meta["args"]) == ("g-1", "shop.buy", [1, "pear"])
        assert (meta["kwargs"], meta["worker"], meta["retries"]) == ({"n": 2}, "w1@host", 2)
        assert meta["queue"] == "shop"
        backend.extended = False
        backend.store_result(task_id, 5, states.SUCCESS, request=request)
        assert "args" not in backend.get_task_meta(task_id)

    def test_wait_returns_when_another_thread_stores_the_result(
        self, make_backend: BackendFactory
    ) -> None:
        backend, task_id = make_backend(), _id()
        started = time.monotonic()
        timer = threading.Timer(0.2, backend.mark_as_done, args=(task_id, "late"))
        timer.start()
        try:
            meta = backend.wait_for(task_id, timeout=10)
        finally:
            timer.join()
        assert meta["result"] == "late"
        assert time.monotonic() - started < 5, "wait_for did not wake when the result arrived"

    def test_wait_ignores_unready_states_until_ready(self, make_backend: BackendFactory) -> None:
        backend, task_id = make_backend(), _id()
        backend.store_result(task_id, {"done": 1}, "PROGRESS")
        with pytest.raises(TimeoutError):
            backend.wait_for(task_id, timeout=0.3)
        assert backend.get_task_meta(task_id)["result"] == {"done": 1}
        backend.mark_as_done(task_id, 7)
        assert backend.wait_for(task_id, timeout=5)["result"] == 7

    def test_wait_for_an_already_ready_result_returns_at_once(
        self, make_backend: BackendFactory
    ) -> None:
        backend, task_id = make_backend(), _id()
        backend.mark_as_done(task_id, 1)
        started = time.monotonic()
        assert backend.wait_for(task_id, timeout=10)["result"] == 1
        assert time.monotonic() - started < 1

    def test_wait_times_out_with_timeout_error(self, make_backend: BackendFactory) -> None:
        started = time.monotonic()
        with pytest.raises(TimeoutError, match="not ready within"):
            make_backend().wait_for(_id(), timeout=0.3)
        assert 0.25 <= time.monotonic() - started < 3

    def test_forget_removes_the_result(self, make_backend: BackendFactory) -> None:
        backend, task_id = make_backend(), _id()
        backend.mark_as_done(task_id, 1)
        backend.forget(task_id)
        assert backend.get_task_meta(task_id)["status"] == states.PENDING

    def test_results_expire(self, make_backend: BackendFactory) -> None:
        backend, task_id = make_backend(expires=1), _id()
        backend.mark_as_done(task_id, 1)
        assert backend.get_task_meta(task_id)["status"] == states.SUCCESS
        deadline = time.monotonic() + 5
        while backend.get_task_meta(task_id)["status"] != states.PENDING:
            assert time.monotonic() < deadline, "result did not expire within 5 s of 1 s"
            time.sleep(0.1)  # polling the store's clock is the thing under test here

    def test_group_ids_are_saved_restored_and_deleted(self, make_backend: BackendFactory) -> None:
        backend, group_id = make_backend(), _id()
        ids = [_id() for _ in range(3)]
        assert backend.restore_group(group_id) is None
        backend.save_group(group_id, ids)
        assert backend.restore_group(group_id) == ids
        backend.delete_group(group_id)
        assert backend.restore_group(group_id) is None

    def test_exactly_one_header_task_completes_a_chord(self, make_backend: BackendFactory) -> None:
        backend, group_id = make_backend(), _id()
        members = [_id() for _ in range(200)]
        with ThreadPoolExecutor(max_workers=8) as pool:
            done = list(pool.map(lambda m: backend.chord_part_done(group_id, m, 200), members))
        assert done.count(True) == 1, "exactly one header task must apply the body"
        completer = members[done.index(True)]
        assert backend.chord_part_done(group_id, completer, 200), "redelivered: still it"
        assert not backend.chord_part_done(group_id, members[0 if done[1] else 1], 200)

    def test_a_redelivered_header_task_counts_once(self, make_backend: BackendFactory) -> None:
        backend, group_id = make_backend(), _id()
        assert not backend.chord_part_done(group_id, "a", 2)
        assert not backend.chord_part_done(group_id, "a", 2), "the same task again: 1 of 2"
        assert backend.chord_part_done(group_id, "b", 2)

    def test_a_chord_grown_by_add_to_chord_waits_for_the_added_tasks(
        self, make_backend: BackendFactory
    ) -> None:
        # Given a chord of two, where "a" adds "c" and "c" adds "d" before each ends
        backend, group_id = make_backend(), _id()
        backend.add_to_chord(group_id, "c", added_by="a")
        # When the original members end, the chord still waits for "c"
        assert not backend.chord_part_done(group_id, "a", 2)
        assert not backend.chord_part_done(group_id, "b", 2)
        backend.add_to_chord(group_id, "d", added_by="c")
        assert not backend.chord_part_done(group_id, "c", 2)
        # Then the last added task completes it, and the members list the added ones
        # right after the task that added them
        assert backend.chord_part_done(group_id, "d", 2)
        assert backend.chord_members(group_id, ["a", "b"]) == ["a", "c", "d", "b"]

    def test_a_chord_nothing_was_added_to_lists_its_header(
        self, make_backend: BackendFactory
    ) -> None:
        backend, group_id = make_backend(), _id()
        assert backend.chord_members(group_id, ["a", "b"]) == ["a", "b"]

    def test_growing_a_chord_races_no_join(self, make_backend: BackendFactory) -> None:
        # Many members each add one task while others end: exactly one completes it.
        backend, group_id = make_backend(), _id()
        members = [_id() for _ in range(50)]

        def member_ends(member: str) -> list[bool]:
            added = f"{member}-added"
            backend.add_to_chord(group_id, added, added_by=member)
            return [
                backend.chord_part_done(group_id, member, 50),
                backend.chord_part_done(group_id, added, 50),
            ]

        with ThreadPoolExecutor(max_workers=8) as pool:
            done = [flag for pair in pool.map(member_ends, members) for flag in pair]
        assert done.count(True) == 1
