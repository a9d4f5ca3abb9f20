"""What a move did, queue by queue: messages moved (or, in a dry run, that would move),
and those left behind with the reason, so the command can say what remains to be done.

Pure bookkeeping: imports the standard library only.
"""

from __future__ import annotations

import enum
from collections import Counter
from dataclasses import dataclass, field

PROBLEMS_KEPT = 20  # messages named per queue in the report; the rest are only counted


class SkipReason(str, enum.Enum):
    """Why a message was not moved."""

    # Not a task message in the source's format: given back to the source, unchanged.
    UNDECODABLE = "undecodable"
    # The target cannot take it as it is (larger than task_message_max_size, an eta further
    # away than the broker's delays reach): given back to the source.
    REFUSED = "refused"
    # The source broker moved it to its own dead letters while handing messages out (an
    # entry that is not a message at all), as its workers would.
    DEAD_LETTERED = "dead_lettered"


@dataclass(frozen=True)
class Problem:
    """One message left behind: its id (its task's, when it could be read), and why."""

    message_id: str
    reason: SkipReason
    detail: str


@dataclass
class QueueTally:
    """One source queue and the target queue its messages go to."""

    source: str
    target: str
    moved: int = 0  # in a dry run: would move
    waiting_for_eta: int = 0  # of those, published to wait on the target until their eta
    skipped: Counter[SkipReason] = field(default_factory=Counter)
    problems: list[Problem] = field(default_factory=list)
    #: Messages still delayed on the source (a countdown a celeriac producer or worker sent
    #: in Celery's format): the source holds them until they are due.
    delayed_on_source: int = 0
    on_target: int | None = None  # in a dry run: what the target queue held before it
    #: After a move: what the source queue still holds (what was left behind, and any
    #: message sent to it meanwhile).
    on_source: int | None = None

    def skip(self, problem: Problem) -> None:
        self.skipped[problem.reason] += 1
        if len(self.problems) < PROBLEMS_KEPT:
            self.problems.append(problem)

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())


@dataclass
class Tally:
    """Every queue of one run, in the order they were named."""

    queues: dict[str, QueueTally]
    dry_run: bool = False
    #: Messages that could not be given back when the run ended (the source was down):
    #: the source hands them out again once their lease runs out.
    not_given_back: int = 0
    stopped: str | None = None  # the broker error that ended the run early

    @classmethod
    def of(cls, renames: dict[str, str], dry_run: bool = False) -> Tally:
        return cls({src: QueueTally(src, dest) for src, dest in renames.items()}, dry_run)

    def queue(self, name: str) -> QueueTally:
        """The tally of source queue ``name`` (one the source handed out unasked is added)."""
        found = self.queues.get(name)
        if found is None:
            found = self.queues[name] = QueueTally(name, name)
        return found

    @property
    def moved(self) -> int:
        return sum(queue.moved for queue in self.queues.values())

    @property
    def skipped(self) -> int:
        return sum(queue.skipped_total for queue in self.queues.values())

    @property
    def delayed_on_source(self) -> int:
        return sum(queue.delayed_on_source for queue in self.queues.values())

    @property
    def on_source(self) -> int:
        return sum(queue.on_source or 0 for queue in self.queues.values())


__all__ = ["PROBLEMS_KEPT", "Problem", "QueueTally", "SkipReason", "Tally"]
