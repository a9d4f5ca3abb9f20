"""The worker's memory samples for ``inspect memsample`` and ``memdump`` (Celery's).

Runtime layer: stdlib only (``/proc``, else ``resource``), so no psutil is needed. Samples
are the main process's, kept until a ``memdump`` reads them. Prefork children read their
own size with ``resident_kib`` (``max_memory_per_child``).
"""

from __future__ import annotations

import gc
import os
import resource
import sys
from collections.abc import Iterator, Sequence

_PAGE_KIB = os.sysconf("SC_PAGE_SIZE") // 1024
_UNITS = ((2**40, "TB"), (2**30, "GB"), (2**20, "MB"), (2**10, "KB"), (0, "b"))


def human_bytes(size: float) -> str:
    """``25690112`` -> ``'24.5MB'``: Celery's units, up to five significant digits."""
    for divisor, unit in _UNITS:
        if size >= divisor:
            value = size / divisor if divisor else size
            text = str(int(value)) if value == int(value) else f"{value:.5}"
            return f"{text}{unit}"
    return f"{size}b"  # (a negative size: not one /proc gives)


def resident_kib() -> int:
    """This process's resident memory now, in KiB.

    /proc gives the current size, which falls again when memory is freed; without it the
    peak (``ru_maxrss``) is the best there is, and a peak never falls.
    """
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_KIB
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak  # bytes on macOS


def rss() -> str:
    """This process's resident memory now, in human units."""
    return human_bytes(resident_kib() * 1024)


def _spread(items: Sequence[str], count: int) -> Iterator[str]:
    """``count`` items taken at even steps from ``items`` (all of them when fewer)."""
    if len(items) <= count:
        yield from items
        return
    step = len(items) // count
    for index in range(count):
        yield items[index * step]


class MemorySamples:
    """``memsample`` records, ``memdump`` reports and forgets."""

    def __init__(self) -> None:
        self.samples: list[str] = []

    def sample(self) -> str:
        current = rss()
        self.samples.append(current)
        return current

    def dump(self, samples: int = 10) -> str:
        if samples < 1:
            raise ValueError(f"memdump needs at least 1 sample to show, not {samples}")
        taken = list(_spread(self.samples, samples))
        self.samples.clear()
        gc.collect()
        lines = ["- rss (sample):", *(f"-    > {mem}," for mem in taken)] if taken else []
        lines.append(f"- rss (end): {rss()}.")
        return "\n".join(lines) + "\n"


__all__ = ["MemorySamples", "human_bytes", "rss"]
