"""``result_cache_max``: records of finished tasks kept in the reading process, so a
result read once is not fetched from the store again (Celery's backend cache).

Only successes are kept (a failure may be retried under the same id), and saved groups.
-1 keeps nothing (the default), 0 keeps everything, N keeps the N used last. Imports
only ``exceptions``.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any

from celeriac.exceptions import ImproperlyConfigured

OFF = -1


class ResultCache:
    """Least recently used records by store key; safe to share between threads."""

    def __init__(self, limit: int = OFF) -> None:
        if not isinstance(limit, int) or limit < OFF:
            raise ImproperlyConfigured(
                f"result_cache_max must be -1 (no cache), 0 (no limit) or a number of "
                f"results to keep, not {limit!r}"
            )
        self.limit = limit
        self._records: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.limit != OFF

    def get(self, key: str) -> dict[str, Any] | None:
        """A copy of the record kept under ``key`` (the caller may change it), or None."""
        if not self.enabled:
            return None
        with self._lock:
            record = self._records.get(key)
            if record is None:
                return None
            self._records.move_to_end(key)
            return dict(record)

    def put(self, key: str, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        with self._lock:
            self._records[key] = dict(record)
            self._records.move_to_end(key)
            while self.limit and len(self._records) > self.limit:
                self._records.popitem(last=False)

    def discard(self, key: str) -> None:
        with self._lock:
            self._records.pop(key, None)

    def __len__(self) -> int:
        return len(self._records)
