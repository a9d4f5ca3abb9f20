"""What a case's records say (counts per outcome, recovery) and the Markdown report."""

from __future__ import annotations

import itertools
import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

PROBE = "probe-"  # the task ids of probes, left out of the counts
LATE = 5.0  # seconds after its due time that a countdown's first run is noted as late

TABLE_COLUMNS = (
    "system", "broker", "pool", "scenario", "sent", "confirmed", "once", "dup (key)",
    "dup (no key)", "overlapping", "lost", "dead-lettered", "recovery s", "redelivery s", "note",
)  # fmt: skip


@dataclass
class Sent:
    task_id: str
    idempotency_key: str | None
    confirmed: bool
    countdown: float | None = None
    at: float = 0.0  # when the send returned (or raised)


@dataclass
class Fault:
    started: float
    ended: float
    probe: str  # the task id sent as soon as the fault was undone (the next fault waits)
    probe_sent: bool = True  # its send returned


@dataclass
class Outcome:
    system: str
    broker: str
    pool: str
    scenario: str
    sent: int = 0
    confirmed: int = 0
    once: int = 0
    duplicated_with_key: int = 0
    duplicated_without_key: int = 0
    overlapping: int = 0  # task ids two of whose runs were going at the same moment
    lost: list[str] = field(default_factory=list)
    lost_probes: list[str] = field(default_factory=list)  # sent after a fault, never ran
    dead_lettered: Counter[str] = field(default_factory=Counter)
    recovery: float = 0.0  # longest time from a fault's end to a new run finished
    redelivery: float = 0.0  # longest time from a fault to the end of a run it interrupted
    note: str = ""
    lost_only_countdowns: bool = False  # every lost task was sent with a countdown
    evidence: list[str] = field(default_factory=list)  # duplicated runs, workers' warnings
    offered: bool = True  # False: the system has no such pool, and the case was not run

    def row(self) -> list[str]:
        if not self.offered:
            counts = len(TABLE_COLUMNS) - 5  # every column but the case's and the note
            return [self.system, self.broker, self.pool, self.scenario, *["-"] * counts, self.note]
        letters = ", ".join(f"{r}: {n}" for r, n in sorted(self.dead_lettered.items())) or "0"
        return [
            self.system, self.broker, self.pool, self.scenario, str(self.sent), str(self.confirmed),
            str(self.once), str(self.duplicated_with_key), str(self.duplicated_without_key),
            str(self.overlapping), self._lost(), letters, f"{self.recovery:.2f}",
            f"{self.redelivery:.2f}", self.note,
        ]  # fmt: skip

    def _lost(self) -> str:
        probes = len(self.lost_probes)
        if not probes:
            return str(len(self.lost))
        return f"{len(self.lost)} (+{probes} probe{'s' if probes > 1 else ''})"


def judge(outcome: Outcome, sent: list[Sent], raw_runs: Sequence[bytes | str],
          dead: dict[str, str], faults: list[Fault]) -> Outcome:  # fmt: skip
    """Fill ``outcome`` from what was sent, the runs recorded and the dead letters."""
    runs: dict[str, list[dict[str, Any]]] = {}
    every_run = [json.loads(raw) for raw in raw_runs]
    for run in every_run:
        runs.setdefault(run["id"], []).append(run)
    outcome.sent = len(sent)
    outcome.confirmed = sum(s.confirmed for s in sent)
    for item in sent:
        count = len(runs.get(item.task_id, ()))
        if count == 1:
            outcome.once += 1
        elif count > 1 and item.idempotency_key:
            outcome.duplicated_with_key += 1
        elif count > 1:
            outcome.duplicated_without_key += 1
        elif item.task_id in dead:
            outcome.dead_lettered[dead[item.task_id]] += 1
        elif item.confirmed:
            outcome.lost.append(item.task_id)
    outcome.overlapping = sum(_overlap(r) for i, r in runs.items() if not i.startswith(PROBE))
    origin = min((f.started for f in faults), default=0.0)
    for task_id, task_runs in runs.items():
        if len(task_runs) > 1 and not task_id.startswith(PROBE):
            outcome.evidence += [f"ran twice: {task_id} " + "; ".join(
                f"{r['hostname']} pid {r['pid']} attempt {r['attempt']} "
                f"{r['started'] - origin:+.2f}..{r['finished'] - origin:+.2f}s" for r in task_runs
            )]  # fmt: skip
    lost = [item for item in sent if item.task_id in outcome.lost]
    outcome.lost_only_countdowns = bool(lost) and all(item.countdown for item in lost)
    outcome.evidence += [
        f"lost: {item.task_id} sent at {item.at - origin:+.2f}s"
        + (f" with a countdown of {item.countdown:.2f}s" if item.countdown else "")
        for item in lost
    ]  # fmt: skip
    outcome.evidence += _late_countdowns(sent, runs)
    for fault in faults:
        if fault.probe_sent and fault.probe not in runs and fault.probe not in dead:
            outcome.lost_probes.append(fault.probe)
            outcome.evidence += [f"probe lost: {fault.probe}, sent after the fault at "
                                 f"{fault.started - origin:+.2f}s, never ran"]  # fmt: skip
    if faults:
        outcome.evidence += [
            "faults at (s from the first): "
            + ", ".join(f"{f.started - origin:+.2f}..{f.ended - origin:+.2f}" for f in faults)
        ]
    outcome.recovery, outcome.redelivery = _recovery(every_run, faults)
    return outcome


def _late_countdowns(sent: list[Sent], runs: dict[str, list[dict[str, Any]]]) -> list[str]:
    """A line when countdowns first ran more than ``LATE`` s after their due time (the send's
    return plus the countdown): held on the way, even if they ran before the deadline."""
    late = sorted(
        min(run["started"] for run in runs[item.task_id]) - (item.at + item.countdown)
        for item in sent
        if item.countdown and item.task_id in runs
    )
    held = [seconds for seconds in late if seconds > LATE]
    if not held:
        return []
    return [f"countdowns late: {len(held)} first ran more than {LATE:.0f} s after their due "
            f"time, the latest {held[-1]:.1f} s after it"]  # fmt: skip


def _overlap(runs: list[dict[str, Any]]) -> bool:
    spans = sorted((run["started"], run["finished"]) for run in runs)
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


def _recovery(runs: list[dict[str, Any]], faults: list[Fault]) -> tuple[float, float]:
    """The longest time from a fault's end to the first run that started after it finishing
    (work resumed; a backlog the fault left may still be draining); and from a fault to the
    end of a redelivered run (attempt > 1) that started after it and before the next fault:
    how long a message the fault stranded waited."""
    recovery = redelivery = 0.0
    for fault in faults:
        fresh = [r["finished"] for r in runs if r["started"] >= fault.ended]
        recovery = max(recovery, min(fresh) - fault.ended if fresh else math.inf)
    starts = sorted(fault.started for fault in faults)
    for run in runs:
        before = [t for t in starts if t <= run["started"]]
        if run["attempt"] > 1 and before:
            redelivery = max(redelivery, run["finished"] - before[-1])
    return recovery, redelivery


def markdown(outcomes: list[Outcome]) -> str:
    lines = ["| " + " | ".join(TABLE_COLUMNS) + " |", "|" + "---|" * len(TABLE_COLUMNS)]
    lines += ["| " + " | ".join(outcome.row()) + " |" for outcome in outcomes]
    return "\n".join(lines)
