"""``cache+memory://``: results kept in this process, for tests and single-process use.

Imports only ``results.base``. Waiting uses a Condition (woken on store), not a poll loop;
records expire after ``expires`` seconds like every other engine's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from celeriac.results.base import MEMORY_SCHEMES, RecordFormat, ResultBackend


class MemoryBackend(ResultBackend):
    schemes = MEMORY_SCHEMES

    def __init__(
        self,
        *,
        expires: float | None = 86400.0,
        serializer: str = "json",
        accept_content: Sequence[str] = ("json",),
        clock: Callable[[], float] = time.monotonic,
        record_format: RecordFormat | None = None,
    ) -> None:
        super().__init__(
            expires=expires,
            serializer=serializer,
            accept_content=accept_content,
            record_format=record_format,
        )
        self._clock = clock
        self._data: dict[str, tuple[bytes, float | None]] = {}
        self._ready: set[str] = set()
        self._sets: dict[str, tuple[set[str], str | None, float | None]] = {}
        self._grown: dict[str, tuple[int, float | None]] = {}  # what _grow added to a size
        self._changed = threading.Condition()

    def _alive(self, key: str) -> bytes | None:
        entry = self._data.get(key)
        if entry is None:
            return None
        value, deadline = entry
        if deadline is not None and self._clock() >= deadline:
            del self._data[key]
            self._ready.discard(key)
            return None
        return value

    def _set(self, key: str, value: bytes, ttl: float | None, *, ready: bool = False) -> None:
        deadline = None if ttl is None else self._clock() + ttl
        with self._changed:
            self._data[key] = (value, deadline)
            if ready:
                self._ready.add(key)
                self._changed.notify_all()
            else:
                self._ready.discard(key)

    def _get(self, key: str) -> bytes | None:
        with self._changed:
            return self._alive(key)

    def _delete(self, key: str) -> None:
        with self._changed:
            self._data.pop(key, None)
            self._ready.discard(key)

    def _wait(self, key: str, timeout: float | None) -> bytes | None:
        with self._changed:
            done = self._changed.wait_for(
                lambda: key in self._ready and self._alive(key) is not None, timeout
            )
            return self._alive(key) if done else None

    def _join(self, key: str, member: str, size: int, ttl: float | None) -> bool:
        with self._changed:
            now = self._clock()
            members, owner, deadline = self._sets.get(key, (set(), None, None))
            if deadline is not None and now >= deadline:
                members, owner = set(), None
            members.add(member)
            if owner is None and len(members) >= size + self._grown_by(key, now):
                owner = member
            self._sets[key] = (members, owner, None if ttl is None else now + ttl)
            return owner == member

    def _grown_by(self, key: str, now: float) -> int:
        grown, deadline = self._grown.get(key, (0, None))
        return 0 if deadline is not None and now >= deadline else grown

    def _grow(self, key: str, by: int, ttl: float | None) -> None:
        with self._changed:
            now = self._clock()
            grown = self._grown_by(key, now) + by
            self._grown[key] = (grown, None if ttl is None else now + ttl)

    def clear(self) -> None:
        with self._changed:
            self._data.clear()
            self._ready.clear()
            self._sets.clear()
            self._grown.clear()
