"""Task states, with Celery's names and precedence.

Leaf module: imports nothing from celeriac.
"""

from __future__ import annotations

PENDING = "PENDING"
RECEIVED = "RECEIVED"
STARTED = "STARTED"
SUCCESS = "SUCCESS"
FAILURE = "FAILURE"
REVOKED = "REVOKED"
REJECTED = "REJECTED"
RETRY = "RETRY"
IGNORED = "IGNORED"

#: States after which a task will not change any more.
READY_STATES = frozenset({SUCCESS, FAILURE, REVOKED})
#: States before a task has finished.
UNREADY_STATES = frozenset({PENDING, RECEIVED, STARTED, REJECTED, RETRY})
#: States that propagate an exception to ``AsyncResult.get()``.
EXCEPTION_STATES = frozenset({RETRY, FAILURE, REVOKED})
PROPAGATE_STATES = frozenset({FAILURE, REVOKED})

ALL_STATES = frozenset(
    {PENDING, RECEIVED, STARTED, SUCCESS, FAILURE, REVOKED, REJECTED, RETRY, IGNORED}
)

#: Celery's order of states, most final first: ``None`` stands for any state not listed
#: (a custom state such as ``PROGRESS``).
PRECEDENCE = [SUCCESS, FAILURE, None, REVOKED, STARTED, RECEIVED, REJECTED, RETRY, PENDING]
_PRECEDENCE = {name: index for index, name in enumerate(PRECEDENCE)}


def precedence(state: str | None) -> int:
    """The state's index in ``PRECEDENCE`` (lower is more final); a custom state ranks
    where ``None`` does."""
    return _PRECEDENCE.get(state, _PRECEDENCE[None])


class state(str):  # Celery's name (lowercase)
    """A state name that compares by precedence: ``state(PENDING) < state(SUCCESS)``."""

    def __gt__(self, other: str) -> bool:
        return precedence(self) < precedence(other)

    def __ge__(self, other: str) -> bool:
        return precedence(self) <= precedence(other)

    def __lt__(self, other: str) -> bool:
        return precedence(self) > precedence(other)

    def __le__(self, other: str) -> bool:
        return precedence(self) >= precedence(other)


__all__ = [
    "ALL_STATES",
    "EXCEPTION_STATES",
    "FAILURE",
    "IGNORED",
    "PENDING",
    "PRECEDENCE",
    "PROPAGATE_STATES",
    "READY_STATES",
    "RECEIVED",
    "REJECTED",
    "RETRY",
    "REVOKED",
    "STARTED",
    "SUCCESS",
    "UNREADY_STATES",
    "precedence",
    "state",
]
