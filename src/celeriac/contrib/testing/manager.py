"""``celery.contrib.testing.manager``: ``Manager``, the helpers of Celery's integration
tests over a running cluster: wait for something with growing pauses (``wait_for``), make
sure something does not happen (``ensure_not_for_a_while``), join results while saying
which are missing, and ask the workers, over remote control, whether they have received
or accepted given tasks (``assert_received``, ``assert_accepted``)."""

from __future__ import annotations

import itertools
import sys
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from typing import Any, TextIO

from celeriac import states
from celeriac.app.base import Celeriac
from celeriac.control.inspect import Inspect
from celeriac.exceptions import BackendConnectionError, BrokerConnectionError, TimeoutError
from celeriac.result import AsyncResult, ResultSet

__all__ = ["Manager", "ManagerMixin", "Sentinel"]

# What a worker answers query_task with, by how far a task has got.
_RECEIVED = ("reserved", "active", "ready")
_ACCEPTED = ("active", "ready")


class Sentinel(Exception):
    """Raised by ``true_or_raise`` while a condition is not met yet."""


def _pauses(start: float, step: float, maximum: float) -> Iterator[float]:
    """``start``, ``start + step``, ... up to ``maximum``, then ``maximum`` for ever."""
    pause = start
    while True:
        yield min(pause, maximum)
        pause += step


class ManagerMixin:
    """Everything ``Manager`` does, for a class of one's own with an ``app``."""

    app: Celeriac

    def _init_manager(
        self,
        block_timeout: float = 30 * 60.0,
        no_join: bool = False,
        stdout: TextIO | None = None,
        stderr: TextIO | None = None,
    ) -> None:
        self.stdout = sys.stdout if stdout is None else stdout
        self.stderr = sys.stderr if stderr is None else stderr
        # A lost connection to the broker or the result store: join() says so and tries again.
        self.connerrors: tuple[type[BaseException], ...] = (
            BrokerConnectionError,
            BackendConnectionError,
        )
        self.block_timeout = block_timeout
        self.no_join = no_join

    def remark(self, s: str, sep: str = "-") -> None:
        print(f"{sep}{s}", file=self.stdout)

    def warn(self, s: str) -> None:
        self.stderr.write(s + "\n")

    def missing_results(self, r: Iterable[AsyncResult[Any]]) -> list[str]:
        """The ids of the results in ``r`` that are not ready yet."""
        return [result.id for result in r if not result.ready()]

    def retry_over_time(
        self,
        fun: Callable[..., Any],
        catch: type[BaseException] | tuple[type[BaseException], ...],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        errback: Callable[[BaseException, Iterator[float], int], float] | None = None,
        max_retries: int | None = None,
        interval_start: float = 2,
        interval_step: float = 2,
        interval_max: float = 30,
        callback: Callable[[], Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Call ``fun`` until it returns without raising one of ``catch``, pausing longer
        each time (``interval_start``, plus ``interval_step``, up to ``interval_max``); the
        last error is raised after ``max_retries`` retries or ``timeout`` seconds.
        ``errback(exc, pauses, retries)`` returns the pause to take."""
        pauses = _pauses(interval_start, interval_step, interval_max)
        end = None if timeout is None else time.monotonic() + timeout
        for retries in itertools.count():
            try:
                return fun(*args, **(kwargs or {}))
            except catch as exc:
                if max_retries is not None and retries >= max_retries:
                    raise
                if end is not None and time.monotonic() > end:
                    raise
                if callback is not None:
                    callback()
                pause = errback(exc, pauses, retries) if errback else next(pauses)
                time.sleep(min(float(pause), interval_max))
        raise AssertionError("unreachable")

    def wait_for(
        self,
        fun: Callable[..., Any],
        catch: type[BaseException] | tuple[type[BaseException], ...],
        desc: str = "thing",
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        errback: Callable[[BaseException, float, int], Any] | None = None,
        max_retries: int | None = 10,
        interval_start: float = 0.1,
        interval_step: float = 0.5,
        interval_max: float = 5.0,
        emit_warning: bool = False,
        **options: Any,
    ) -> Any:
        """``fun(*args, **kwargs)`` once it stops raising ``catch`` (which means "not yet");
        with ``emit_warning``, each wait is reported on stderr. ``errback(exc, pause,
        retries)`` is told of each wait."""

        def on_error(exc: BaseException, pauses: Iterator[float], retries: int) -> float:
            pause = next(pauses)
            if emit_warning:
                self.warn(f"Still waiting for {desc}.  Trying again in {pause:.2f}s: {exc!r}")
            if errback is not None:
                errback(exc, pause, retries)
            return pause

        return self.retry_over_time(
            fun, catch, args=args, kwargs=kwargs, errback=on_error, max_retries=max_retries,
            interval_start=interval_start, interval_step=interval_step,
            interval_max=interval_max, **options,
        )  # fmt: skip

    def ensure_not_for_a_while(
        self,
        fun: Callable[..., Any],
        catch: type[BaseException] | tuple[type[BaseException], ...],
        desc: str = "thing",
        max_retries: int = 20,
        interval_start: float = 0.1,
        interval_step: float = 0.02,
        interval_max: float = 1.0,
        emit_warning: bool = False,
        **options: Any,
    ) -> None:
        """Raise ``AssertionError`` if ``fun`` stops raising ``catch`` within the retries:
        the thing it waits for must not happen (for a while)."""
        try:
            self.wait_for(
                fun, catch, desc=desc, max_retries=max_retries, interval_start=interval_start,
                interval_step=interval_step, interval_max=interval_max,
                emit_warning=emit_warning, **options,
            )  # fmt: skip
        except catch:
            return
        raise AssertionError(f"Should not have happened: {desc}")

    def join(
        self,
        r: AsyncResult[Any] | ResultSet,
        propagate: bool = False,
        max_retries: int | None = 10,
        **kwargs: Any,
    ) -> Any:
        """Wait for ``r`` (a result or a ``ResultSet``), each ``get`` bounded by the
        ``timeout=`` given; after a timeout, the missing ids are remarked and it waits again,
        up to ``max_retries`` times, then fails the test. As Celery's, it returns no values
        (its ``get`` has a callback): read them with ``r.get()`` after. Nothing with
        ``no_join``."""
        if self.no_join:
            return None
        results = r if isinstance(r, ResultSet) else self.app.ResultSet([r])
        received: list[str] = []
        attempts: Iterable[int] = range(max_retries) if max_retries else itertools.count()
        for _ in attempts:
            received.clear()
            try:
                return results.get(
                    callback=lambda task_id, value: received.append(task_id),
                    propagate=propagate,
                    **kwargs,
                )
            except TimeoutError as exc:
                waiting = ", ".join(self.missing_results(results))
                self.remark(
                    f"Still waiting for {len(results) - len(received)}/{len(results)}: "
                    f"[{waiting[:256]}]: {exc!r}",
                    "!",
                )
            except self.connerrors as exc:
                self.remark(f"join: connection lost: {exc!r}", "!")
        raise AssertionError("Test failed: Missing task results")

    def inspect(self, timeout: float = 3.0) -> Inspect:
        return self.app.control.inspect(timeout=timeout)

    def query_tasks(self, ids: Sequence[str], timeout: float = 0.5) -> Iterator[tuple[str, Any]]:
        """``(node, {task_id: [state, info]})`` for each worker that knows of the tasks."""
        yield from (self.inspect(timeout).query_task(*ids) or {}).items()

    def query_task_states(self, ids: Sequence[str], timeout: float = 0.5) -> dict[str, set[str]]:
        """The ids by the state the workers report them in (``reserved``, ``active``)."""
        found: dict[str, set[str]] = defaultdict(set)
        for _node, reply in self.query_tasks(ids, timeout=timeout):
            for task_id, (state, _info) in reply.items():
                found[state].add(task_id)
        return found

    def assert_accepted(
        self,
        ids: Sequence[str],
        interval: float = 0.5,
        desc: str = "waiting for tasks to be accepted",
        **policy: Any,
    ) -> Any:
        """Wait until a worker runs each task (``wait_for``'s ``policy``)."""
        return self.assert_task_worker_state(
            self.is_accepted, ids, interval=interval, desc=desc, **policy
        )

    def assert_received(
        self,
        ids: Sequence[str],
        interval: float = 0.5,
        desc: str = "waiting for tasks to be received",
        **policy: Any,
    ) -> Any:
        """Wait until a worker holds each task, waiting or running."""
        return self.assert_task_worker_state(
            self.is_received, ids, interval=interval, desc=desc, **policy
        )

    def assert_result_tasks_in_progress_or_completed(
        self,
        async_results: Sequence[AsyncResult[Any]],
        interval: float = 0.5,
        desc: str = "waiting for tasks to be started or completed",
        **policy: Any,
    ) -> Any:
        """Wait until each result is ``STARTED`` (``track_started``) or ``SUCCESS``."""
        return self.assert_task_state_from_result(
            self.is_result_task_in_progress, async_results, interval=interval, desc=desc,
            **policy,
        )  # fmt: skip

    def assert_task_state_from_result(
        self,
        fun: Callable[..., Any],
        results: Sequence[AsyncResult[Any]],
        interval: float = 0.5,
        **policy: Any,
    ) -> Any:
        return self.wait_for(
            partial(self.true_or_raise, fun, results, timeout=interval), (Sentinel,), **policy
        )

    @staticmethod
    def is_result_task_in_progress(results: Sequence[AsyncResult[Any]], **kwargs: Any) -> bool:
        return all(result.state in (states.STARTED, states.SUCCESS) for result in results)

    def assert_task_worker_state(
        self, fun: Callable[..., Any], ids: Sequence[str], interval: float = 0.5, **policy: Any
    ) -> Any:
        return self.wait_for(
            partial(self.true_or_raise, fun, ids, timeout=interval), (Sentinel,), **policy
        )

    def is_received(self, ids: Sequence[str], **kwargs: Any) -> bool:
        return self._ids_matches_state(_RECEIVED, ids, **kwargs)

    def is_accepted(self, ids: Sequence[str], **kwargs: Any) -> bool:
        return self._ids_matches_state(_ACCEPTED, ids, **kwargs)

    def _ids_matches_state(
        self, expected_states: Sequence[str], ids: Sequence[str], timeout: float = 0.5
    ) -> bool:
        found = self.query_task_states(ids, timeout=timeout)
        return all(any(task_id in found[state] for state in expected_states) for task_id in ids)

    def true_or_raise(self, fun: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """``fun(...)``'s value, or ``Sentinel`` raised when it is falsy (for ``wait_for``)."""
        value = fun(*args, **kwargs)
        if not value:
            raise Sentinel()
        return value

    def wait_until_idle(self, interval: float = 0.1) -> None:
        """Purge the app's queues until they are empty, then wait until no worker runs a
        task (polled every ``interval`` seconds)."""
        control = self.app.control
        while control.purge():
            pass
        inspect = control.inspect()
        while sum(len(tasks) for tasks in (inspect.active() or {}).values()):
            time.sleep(interval)


class Manager(ManagerMixin):
    """Test helpers for integration tests against running workers: ``Manager(app)``."""

    def __init__(self, app: Celeriac, **kwargs: Any) -> None:
        self.app = app
        self._init_manager(**kwargs)
