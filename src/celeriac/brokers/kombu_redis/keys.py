"""Where the engine keeps things: kombu's Redis layout, and the keys of celeriac's own.

Kombu's keys (every name starts with the ``global_keyprefix`` transport option):

    <queue>                         list: priority step 0 (kombu serves it first)
    <queue>\\x06\\x16<step>           list: each further priority step (3, 6, 9 by default)
    unacked                         hash: delivery tag -> JSON [envelope, exchange, routing key]
    unacked_index                   zset: delivery tag -> unix time it was handed out
    unacked_mutex                   string: held while one process restores expired entries
    _kombu.binding.<exchange>       set: "<routing key>\\x06\\x16<pattern>\\x06\\x16<queue>"

Producers LPUSH and consumers pop from the right, so each list is FIFO. Celeriac's own
keys start with ``_celeriac``; Celery never reads them:

    _celeriac.delayed.<queue>       zset: "<step index><envelope>" -> due time (ms)
    _celeriac.dead.<queue>          stream: dead letters
    _celeriac.wake.<queue>          list: at most one token; a fetch waits on it (BRPOP)
    _celeriac.deliveries            hash: delivery tag -> hand-outs counted so far
    _celeriac.delivered_at          zset: delivery tag -> last hand-out (ms), for pruning
    _celeriac.leases                hash: delivery tag -> the live hand-out (fencing)
    _celeriac.serial                string: the hand-out counter

Engine helper: imports only the standard library.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

SEP = "\x06\x16"  # kombu's separator of a queue name and its priority step
PRIORITY_STEPS = (0, 3, 6, 9)  # kombu's default steps
KOMBU_MAX_PRIORITY = 9  # kombu's priorities run 0 (served first) to 9 (served last)
OWN = "_celeriac"  # the start of every key that is celeriac's own


def kombu_priority(priority: int) -> int:
    """Celeriac serves 9 first, kombu's Redis lists serve 0 first: the value kombu reads."""
    return KOMBU_MAX_PRIORITY - priority


def celeriac_priority(kombu: object) -> int | None:
    """The celeriac priority of a kombu ``properties.priority``; None when it is not a
    number (kombu then files the message under step 0, like priority 0)."""
    if isinstance(kombu, bool) or not isinstance(kombu, (int, float)):
        return None
    return KOMBU_MAX_PRIORITY - max(0, min(int(kombu), KOMBU_MAX_PRIORITY))


@dataclass(frozen=True)
class Layout:
    """The key names for one ``global_keyprefix`` and kombu's naming options."""

    prefix: str = ""
    sep: str = SEP
    steps: tuple[int, ...] = PRIORITY_STEPS
    unacked_name: str = "unacked"
    unacked_index_name: str = "unacked_index"
    unacked_mutex_name: str = "unacked_mutex"

    def __post_init__(self) -> None:
        steps = tuple(self.steps)
        if not steps or list(steps) != sorted(set(steps)) or steps[0] != 0 or steps[-1] > 9:
            raise ValueError(
                f"priority_steps must be increasing whole numbers from 0 to at most 9, "
                f"starting at 0 (kombu's default is [0, 3, 6, 9]), not {list(self.steps)!r}"
            )
        object.__setattr__(self, "steps", steps)

    # -- kombu's keys -----------------------------------------------------------------------
    def step_index(self, kombu: int) -> int:
        """The index in ``steps`` of the list kombu files priority ``kombu`` under."""
        return max(0, bisect.bisect(self.steps, max(0, min(kombu, KOMBU_MAX_PRIORITY))) - 1)

    def list_key(self, queue: str, index: int) -> str:
        step = self.steps[index]
        return f"{self.prefix}{queue}" if step == 0 else f"{self.prefix}{queue}{self.sep}{step}"

    def lists(self, queue: str) -> tuple[str, ...]:
        """The queue's lists in the order kombu serves them (step 0 first)."""
        return tuple(self.list_key(queue, index) for index in range(len(self.steps)))

    @property
    def unacked(self) -> str:
        return f"{self.prefix}{self.unacked_name}"

    @property
    def unacked_index(self) -> str:
        return f"{self.prefix}{self.unacked_index_name}"

    @property
    def unacked_mutex(self) -> str:
        return f"{self.prefix}{self.unacked_mutex_name}"

    def binding(self, exchange: str) -> str:
        return f"{self.prefix}_kombu.binding.{exchange}"

    def parse_binding(self, member: bytes | str) -> tuple[str, str, str]:
        """A binding member: (routing key, pattern, queue)."""
        text = member.decode() if isinstance(member, bytes) else member
        routing_key, _, rest = text.partition(self.sep)
        pattern, _, queue = rest.partition(self.sep)
        return routing_key, pattern, queue

    # -- celeriac's own ---------------------------------------------------------------------
    @property
    def own(self) -> str:
        """The start of celeriac's own keys (and the shared state's key prefix)."""
        return f"{self.prefix}{OWN}"

    def delayed(self, queue: str) -> str:
        return f"{self.own}.delayed.{queue}"

    def dead(self, queue: str) -> str:
        return f"{self.own}.dead.{queue}"

    def wake(self, queue: str) -> str:
        return f"{self.own}.wake.{queue}"

    @property
    def deliveries(self) -> str:
        return f"{self.own}.deliveries"

    @property
    def delivered_at(self) -> str:
        return f"{self.own}.delivered_at"

    @property
    def leases(self) -> str:
        return f"{self.own}.leases"

    @property
    def serial(self) -> str:
        return f"{self.own}.serial"

    @property
    def held(self) -> list[str]:
        """The keys every hand-out and settle touches, in the scripts' KEYS order."""
        return [self.unacked, self.unacked_index, self.deliveries, self.delivered_at, self.leases]


def steps_option(value: object) -> tuple[int, ...]:
    """The ``priority_steps`` transport option as a tuple (kombu takes any sequence)."""
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"priority_steps must be a list of numbers, not {value!r}")
    try:
        return tuple(int(step) for step in value)
    except (TypeError, ValueError):
        raise ValueError(f"priority_steps must be a list of numbers, not {value!r}") from None
