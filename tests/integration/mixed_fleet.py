"""A mixed fleet under SIGKILL: one Celery worker and one celeriac worker, each started from
its own CLI, consume Celery's default queue while a Celery producer and a celeriac producer
send half the tasks each. Each worker is killed at seeded random moments (SIGKILL to its
process group: the main process and its pool children at once, as when its container
dies) and started again under a new node name (``celery-2@host``). When every task has run
and the broker holds nothing, ``tally`` counts the runs.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from random import Random
from typing import Any

import redis

from tests.integration.celery_peer import CELERY_PYTHON, CeleryWorker, celeriac_env, celery_env
from tests.integration.fleet_brokers import FleetBroker, Recording
from tests.integration.workers import ROOT, WorkerProcess

APP = "tests.integration.mixed_fleet_project"
SIDES = ("celery", "celeriac")


@dataclass(frozen=True)
class Plan:
    tasks: int
    kills: int  # per worker
    seed: int
    pool: str = "prefork"
    concurrency: int = 2
    task_seconds: float = 0.02
    lease: float = 5.0  # Redis: the visibility timeout of both kinds of worker
    gaps: tuple[float, float] = (0.5, 2.5)  # seconds from a worker being ready to its kill
    straggle: float = 60.0  # seconds after the last kill (and a lease) to give up waiting


class CeleriacWorker:
    """``celeriac -A ... worker`` (``WorkerProcess``) in a process group of its own."""

    def __init__(self, process: WorkerProcess) -> None:
        self.process = process
        self.pid = process.process.pid

    @property
    def text(self) -> str:
        return self.process.text

    def stop(self, timeout: float = 30) -> None:
        self.process.stop(timeout)

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        self.process.stop(10)


@dataclass
class Incarnation:
    name: str  # the node name's first part, which each run records: "celery-2"
    worker: CeleryWorker | CeleriacWorker
    recording: Recording | None  # its Redis traffic (a Celery worker on Redis)
    killed_at: float | None = None


@dataclass
class Seat:
    """One worker's place in the fleet: started, killed and started again."""

    side: str
    start: Callable[[str], Incarnation]
    incarnations: list[Incarnation] = field(default_factory=list)

    def start_next(self) -> None:
        self.incarnations.append(self.start(f"{self.side}-{len(self.incarnations) + 1}"))

    def kill_and_restart(self) -> None:
        victim = self.incarnations[-1]
        victim.killed_at = time.time()
        victim.worker.kill()
        self.start_next()

    def stop(self) -> None:
        self.incarnations[-1].worker.stop()

    def kill_all(self) -> None:
        for incarnation in self.incarnations:
            incarnation.worker.kill()


@dataclass
class Tally:
    broker: str
    seed: int
    sent: int
    runs: int  # executions started, redeliveries included
    lost: list[str]
    lost_in_celery_fetch: dict[str, str]  # task id -> the evidence
    # Redis: for each other lost task, what the Celery workers' recorded traffic shows of it
    # (the commands that named it or its delivery tag): evidence for a loss not explained.
    lost_traces: dict[str, list[str]]
    # Redis: tasks a Celery worker ran that its recorded BRPOP replies do not show (0 unless
    # the recordings cannot be read, and then a loss in Celery's fetch could not be told).
    unseen_by_recordings: int
    duplicated: int  # tasks that started more than once
    extra_runs: int  # runs beyond one per task
    unexplained: dict[str, list[dict[str, Any]]]  # duplicates no kill accounts for
    finished_twice: int  # tasks whose run finished more than once
    kills: dict[str, int]
    bound: int  # kills x messages a worker holds: the most runs a kill can repeat
    dead_lettered: int
    seconds: float
    trouble: list[str]  # the workers' error lines

    def summary(self) -> str:
        return (
            f"{self.broker}: sent {self.sent}, runs {self.runs}, lost {len(self.lost)} "
            f"({len(self.lost_in_celery_fetch)} in Celery's fetch), duplicated "
            f"{self.duplicated} ({self.extra_runs} extra runs, {self.finished_twice} "
            f"finished twice, {len(self.unexplained)} not from a kill), kills "
            f"{self.kills['celery']} Celery + {self.kills['celeriac']} celeriac "
            f"(bound {self.bound}), dead-lettered {self.dead_lettered}, "
            f"{self.seconds:.0f} s, seed {self.seed}"
        )


class Fleet:
    def __init__(self, broker: FleetBroker, plan: Plan, records_url: str) -> None:
        self.broker, self.plan = broker, plan
        self.records = redis.Redis.from_url(records_url)
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")},
            "FLEET_BROKER": broker.url, "FLEET_RECORDS": records_url,
            "FLEET_PREFIX": broker.prefix, "FLEET_LEASE": str(plan.lease),
            "PYTHONUNBUFFERED": "1",
        }  # fmt: skip
        self.seats = {side: Seat(side, getattr(self, f"_start_{side}")) for side in SIDES}
        self.gave_up = ""  # what the broker still held when the run stopped waiting

    def _args(self, name: str) -> tuple[str, ...]:
        plan = self.plan
        return ("-P", plan.pool, "-c", str(plan.concurrency), "-n", f"{name}@%h")

    def _start_celery(self, name: str) -> Incarnation:
        url, recording = self.broker.celery_url()
        env = celery_env({**self.env, "FLEET_BROKER": url}, ROOT)
        return Incarnation(name, CeleryWorker.started(ROOT, env, *self._args(name), app=APP),
                           recording)  # fmt: skip

    def _start_celeriac(self, name: str) -> Incarnation:
        process = WorkerProcess(ROOT, celeriac_env(self.env), *self._args(name), app=APP,
                                own_group=True)  # fmt: skip
        worker = CeleriacWorker(process)
        try:
            process.wait_ready(60)
        except BaseException:
            worker.kill()
            raise
        return Incarnation(name, worker, None)

    def run(self, workdir: Path) -> Tally:
        began = time.monotonic()
        rng = Random(self.plan.seed)
        ids = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(self.plan.tasks)]
        with contextlib.ExitStack() as stack:
            for seat in self.seats.values():
                stack.callback(seat.kill_all)
                seat.start_next()
            done = threading.Event()
            monkeys = [_Monkey(seat, self.plan, Random(f"{self.plan.seed}:{seat.side}"), done)
                       for seat in self.seats.values()]  # fmt: skip
            for monkey in monkeys:
                monkey.start()
                stack.callback(monkey.join)
                stack.callback(done.set)
            sent = self._produce(workdir, ids)
            self._settle(sent, monkeys, done)
            for monkey in monkeys:
                monkey.join()
            for seat in self.seats.values():
                seat.stop()
            return self._tally(sent, time.monotonic() - began)

    def _produce(self, workdir: Path, ids: list[str]) -> set[str]:
        """Both producers at once; the ids sent (every send must return: the broker is
        never at fault here)."""
        producers = []
        for side, python, half in (("celery", CELERY_PYTHON, ids[0::2]),
                                   ("celeriac", Path(sys.executable), ids[1::2])):  # fmt: skip
            (workdir / side).write_text("\n".join(half))
            env = (celery_env if side == "celery" else celeriac_env)(self.env, ROOT)
            command = [str(python), "-m", APP, "send", str(workdir / side),
                       str(self.plan.task_seconds)]  # fmt: skip
            producers.append(_popen(command, env))
        for producer in producers:
            out, err = producer.communicate(timeout=600)
            assert producer.returncode == 0, f"a producer failed:\n{out}\n{err}"
            answer = json.loads(out.strip().splitlines()[-1])
            assert not answer["failed"], f"sends failed on a healthy broker: {answer['error']}"
        return set(ids)

    def _settle(self, sent: set[str], monkeys: list[_Monkey], done: threading.Event) -> None:
        """Until every task has run, the killers are done and the broker holds nothing
        (nothing left to run, no redelivery to come), or until the straggling time after
        the last kill has passed."""
        while True:
            if int(self.records.scard(f"{self.broker.prefix}ran")) >= len(sent):
                done.set()  # nothing left to kill a worker in the middle of
            if not any(monkey.is_alive() for monkey in monkeys):
                if self.broker.held() == 0:
                    return
                last = max(monkey.ended for monkey in monkeys)  # after its last restart
                if time.time() > last + self.plan.lease + self.plan.straggle:
                    self.gave_up = f"gave up waiting; the broker holds: {self.broker.held_where()}"
                    return
            time.sleep(0.5)  # polling the records and the broker: neither can be awaited

    def _tally(self, sent: set[str], seconds: float) -> Tally:
        prefix = self.broker.prefix
        runs = [json.loads(raw) for raw in self.records.lrange(f"{prefix}runs", 0, -1)]
        by_id: defaultdict[str, list[dict[str, Any]]] = defaultdict(list)
        for run in runs:
            by_id[run["id"]].append(run)
        incarnations = [i for seat in self.seats.values() for i in seat.incarnations]
        killed = {i.name: i.killed_at for i in incarnations if i.killed_at is not None}
        duplicates = {task_id: sorted(r, key=lambda run: run["started"])
                      for task_id, r in by_id.items() if len(r) > 1}  # fmt: skip
        unexplained = {
            task_id: repeated for task_id, repeated in duplicates.items()
            if not all(killed.get(run["node"].split("@")[0], 0.0) >= run["started"]
                       for run in repeated[:-1])
        }  # fmt: skip
        finished = Counter(self.records.lrange(f"{prefix}finished", 0, -1))
        lost = sorted(sent - set(by_id))
        in_fetch = self._lost_in_celery_fetch(set(lost), incarnations)
        kills = {side: sum(i.killed_at is not None for i in seat.incarnations)
                 for side, seat in self.seats.items()}  # fmt: skip
        return Tally(
            broker=self.broker.name, seed=self.plan.seed, sent=len(sent), runs=len(runs),
            lost=lost, lost_in_celery_fetch=in_fetch,
            lost_traces=self._traces(set(lost) - set(in_fetch), incarnations),
            unseen_by_recordings=self._unseen_by_recordings(runs, incarnations),
            duplicated=len(duplicates), extra_runs=len(runs) - len(by_id),
            unexplained=unexplained, finished_twice=sum(n > 1 for n in finished.values()),
            kills=kills, bound=sum(kills.values()) * self.plan.concurrency,
            dead_lettered=self.broker.dead_letters(), seconds=seconds,
            trouble=[*(line for i in incarnations for line in i.worker.text.splitlines()
                       if "ERROR" in line or "CRITICAL" in line),
                     *([self.gave_up] if self.gave_up else [])],
        )  # fmt: skip

    def _lost_in_celery_fetch(
        self, lost: set[str], incarnations: list[Incarnation]
    ) -> dict[str, str]:
        """The lost tasks a killed Celery worker had taken (BRPOP) and not yet written to
        kombu's ``unacked`` hash: its recorded traffic shows them."""
        why = {}
        for incarnation in incarnations:
            recording = incarnation.recording
            if recording is None or incarnation.killed_at is None:
                continue
            for task_id in recording.popped(self.broker.list_keys) & lost:
                if not recording.wrote(task_id):
                    why[task_id] = f"taken by {incarnation.name}, killed before writing unacked"
        return why

    def _traces(self, lost: set[str], incarnations: list[Incarnation]) -> dict[str, list[str]]:
        """For each lost task, every Celery incarnation's recorded dealings with it: taken
        by BRPOP, then each command that named its id or its delivery tag (kombu's
        ``unacked`` writes, acks, restores)."""
        traces: dict[str, list[str]] = {task_id: [] for task_id in sorted(lost)}
        for incarnation in incarnations:
            recording = incarnation.recording
            if recording is None or not lost:
                continue
            tags = recording.delivery_tags(self.broker.list_keys)
            end = "killed" if incarnation.killed_at is not None else "not killed"
            for task_id in traces:
                sent = recording.mentions([task_id, tags.get(task_id, "")])
                if task_id in tags or sent:
                    taken = "took it (BRPOP)" if task_id in tags else "never took it"
                    traces[task_id].append(
                        f"{incarnation.name} ({end}) {taken}; sent: {', '.join(sent) or '-'}"
                    )
        return traces

    def _unseen_by_recordings(
        self, runs: list[dict[str, Any]], incarnations: list[Incarnation]
    ) -> int:
        recordings = [i.recording for i in incarnations if i.recording is not None]
        if not recordings:
            return 0
        popped = set().union(*(r.popped(self.broker.list_keys) for r in recordings))
        ran = {run["id"] for run in runs if run["node"].startswith("celery-")}
        return len(ran - popped)

    def close(self) -> None:
        self.records.close()


class _Monkey(threading.Thread):
    """Kills one seat's worker ``plan.kills`` times at seeded random moments, each time
    ``gaps`` seconds after the worker became ready, until ``done``."""

    def __init__(self, seat: Seat, plan: Plan, rng: Random, done: threading.Event) -> None:
        super().__init__(name=f"kill-{seat.side}", daemon=True)
        self.seat, self.plan, self.rng, self.done = seat, plan, rng, done
        self.ended = 0.0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for _ in range(self.plan.kills):
                if self.done.wait(self.rng.uniform(*self.plan.gaps)):  # the seeded moment
                    return
                self.seat.kill_and_restart()
        except BaseException as exc:  # a worker that would not start again: the test fails
            self.error = exc
        finally:
            self.ended = time.time()

    def join(self, timeout: float | None = None) -> None:
        super().join(timeout)
        if self.error is not None:
            raise self.error


def _popen(command: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


@contextlib.contextmanager
def fleet(broker: FleetBroker, plan: Plan, records_url: str) -> Iterator[Fleet]:
    made = Fleet(broker, plan, records_url)
    try:
        yield made
    finally:
        made.close()
