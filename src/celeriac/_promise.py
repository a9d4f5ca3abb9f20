"""``Promise``: a value that arrives once, with callbacks chained onto it (``on_ready``
of a result handle), and ``Barrier``: a promise kept once several others are.

A leaf: imports nothing of celeriac. Callbacks run in the thread that fulfils the
promise (or at once in ``then()`` when it already is); nothing runs in the background.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Barrier", "Promise"]

Callback = Callable[..., Any]


class Promise:
    """Called once (``p(*args)``) it is *ready*: its ``value`` is ``(args, kwargs)``, or,
    when made with ``fun``, ``((fun(*args),), {})``; each ``then`` callback gets them.
    ``throw(exc)`` makes it *failed*: callbacks' ``on_error`` get ``exc`` instead."""

    def __init__(
        self,
        fun: Callback | None = None,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
        on_error: Callback | None = None,
    ) -> None:
        if fun is not None and not callable(fun):
            raise TypeError(f"Promise(fun=...) takes a callable, not {fun!r}.")
        self.fun = fun
        self.args = tuple(args)
        self.kwargs = dict(kwargs or {})
        self.on_error = on_error
        self.ready = False
        self.failed = False
        self.cancelled = False
        self.value: tuple[tuple[Any, ...], dict[str, Any]] | None = None
        self.reason: BaseException | None = None
        self._pending: list[Promise] = []
        self._lock = threading.Lock()

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Fulfil it and run the callbacks waiting on it; a later call does nothing."""
        with self._lock:
            if self.ready or self.failed or self.cancelled:
                return None
            self.ready = True  # claimed: a second caller in another thread returns above
        args, kwargs = self.args + args, {**self.kwargs, **kwargs}
        if self.fun is not None:
            try:
                retval = self.fun(*args, **kwargs)
            except Exception as exc:
                self.ready = False
                self.throw(exc)  # to on_error (or up, when there is none)
                return None
            args, kwargs = (retval,), {}
        else:
            retval = None
        self.value = (args, kwargs)
        _run_all(self._take_pending(), lambda p: p(*args, **kwargs))
        return retval

    def then(self, callback: Callback | Promise, on_error: Callback | None = None) -> Promise:
        """Run ``callback`` with this promise's value once it is ready (at once if it is);
        returns the promise of ``callback``'s return value, to chain further. If
        ``callback`` raises, ``on_error(exc)`` gets the error instead of the caller."""
        if not callable(callback):
            raise TypeError(f"then() takes a callable, not {callback!r}.")
        child = callback if isinstance(callback, Promise) else Promise(callback, on_error=on_error)
        with self._lock:
            if self.cancelled:
                child.cancel()
                return child
            settled = self.value is not None or self.failed
            if not settled:
                self._pending.append(child)
        if self.failed:
            child.throw(self.reason)
        elif settled and self.value is not None:
            child(*self.value[0], **self.value[1])
        return child

    def throw(
        self, exc: BaseException | None = None, tb: Any = None, propagate: bool = True
    ) -> None:
        """Fail it with ``exc`` (default: the exception being handled): ``on_error(exc)``
        and every waiting callback's ``on_error``; raises ``exc`` when there is no
        ``on_error`` and ``propagate``."""
        if self.cancelled:
            return
        exc = exc if exc is not None else sys.exc_info()[1]
        if exc is None:
            raise TypeError("Promise.throw() needs an exception (none is being handled).")
        self.failed, self.reason = True, exc
        if self.on_error is not None:
            self.on_error(*self.args, exc, **self.kwargs)
        _run_all(self._take_pending(), lambda p: p.throw(exc, propagate=False))
        if self.on_error is None and propagate:
            raise exc.with_traceback(tb) if tb is not None else exc

    def cancel(self) -> None:
        """Never fire: callbacks waiting on it are cancelled too."""
        self.cancelled = True
        for child in self._take_pending():
            child.cancel()

    def _take_pending(self) -> list[Promise]:
        with self._lock:
            pending, self._pending = self._pending, []
        return pending

    def __repr__(self) -> str:
        state = "failed" if self.failed else "ready" if self.ready else "pending"
        target = f" --> {self.fun!r}" if self.fun is not None else ""
        return f"<Promise {state}{target}>"


def _run_all(children: list[Promise], run: Callable[[Promise], Any]) -> None:
    """Run every child even if one raises (then re-raise the first error): one broken
    callback does not starve the others."""
    first: BaseException | None = None
    for child in children:
        try:
            run(child)
        except Exception as exc:
            first = first or exc
    if first is not None:
        raise first


class Barrier:
    """Fires ``promise`` once every promise added has fired and ``finalize()`` was
    called; the first one to fail fails it (without raising)."""

    def __init__(self, promise: Promise) -> None:
        self.promise = promise
        self._waiting: set[int] = set()
        self._final = False

    def add(self, member: Promise) -> None:
        key = id(member)
        self._waiting.add(key)
        member.then(lambda *_: self._done(key), on_error=self._failed)

    def discard(self, member: Promise) -> None:
        self._done(id(member))

    def finalize(self) -> None:
        self._final = True
        self._done(None)

    def _done(self, key: int | None) -> None:
        if key is not None:
            self._waiting.discard(key)
        if self._final and not self._waiting:
            self.promise()

    def _failed(self, exc: BaseException) -> None:
        self.promise.throw(exc, propagate=False)
