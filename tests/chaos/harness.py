"""One case: a broker, a system under test on one pool, and one scenario's faults at
seeded random moments while tasks are sent; then quiescence, and the outcome."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

import redis

from tests.chaos.brokers import (
    BrokerUnderTest,
    RabbitBroker,
    RabbitClusterBroker,
    RedisBroker,
    RedisClusterBroker,
)
from tests.chaos.proxy import FaultyProxy
from tests.chaos.report import PROBE, Fault, Outcome, Sent, judge
from tests.chaos.scenarios import Scenario
from tests.chaos.servers import RedisServer
from tests.chaos.systems import MakeSystem, Setup, SystemUnderTest, Worker

# Worker log lines worth keeping with a case's outcome.
# (Not the start-up banner, nor the warm shutdown the harness asks for.)
NOTEWORTHY = re.compile(r"^(?!.*(warm shutdown|defaults )).*(WARNING|ERROR|CRITICAL|\blease)")


@dataclass
class Plan:
    tasks: int = 60
    send_window: float = 4.0  # seconds over which the tasks are sent
    faults: int = 2  # injected at random moments within the send window
    lease: float = 2.0  # the broker's lease (visibility timeout), short so faults heal fast
    task_seconds: float = 0.2
    workers: int = 2
    quiet_deadline: float = 60.0  # give up waiting for every task after this long
    logs: Path | None = None  # where to write each worker's whole log, if anywhere


@dataclass
class Case:
    """What a scenario may act on while it runs."""

    broker: BrokerUnderTest
    system: SystemUnderTest
    proxy: FaultyProxy
    lease: float
    workers: list[Worker] = field(default_factory=list)
    retired: list[Worker] = field(default_factory=list)  # killed; their groups cleaned up
    # Held while a worker is killed and replaced, so the supervisor never replaces it too.
    lock: threading.RLock = field(default_factory=threading.RLock)
    exits: list[tuple[float, str]] = field(default_factory=list)  # (when, which) by itself

    def replace_worker(self, index: int) -> None:
        with self.lock:
            self.retired.append(self.workers[index])
            self.workers[index] = self.system.start_worker(index, wait=False)


MakeBroker = Callable[[Path], BrokerUnderTest]


def redis_broker(persistence: str) -> MakeBroker:
    return lambda directory: RedisBroker(directory, persistence)


def rabbitmq_broker(queue_type: str, delay_queue_type: str | None = None) -> MakeBroker:
    return lambda directory: RabbitBroker(directory, queue_type, delay_queue_type)


def redis_cluster_broker() -> MakeBroker:
    return RedisClusterBroker


def rabbitmq_cluster_broker() -> MakeBroker:
    return RabbitClusterBroker


@contextlib.contextmanager
def running_case(make_broker: MakeBroker, make_system: MakeSystem, pool: str,
                 plan: Plan) -> Iterator[tuple[Case, str]]:  # fmt: skip
    """Servers, proxy and workers for one case, all stopped and removed afterwards.
    Yields the case and the records store's URL."""
    directory = Path(tempfile.mkdtemp(prefix="celeriac-chaos-"))
    with contextlib.ExitStack() as stack:
        stack.callback(shutil.rmtree, directory, ignore_errors=True)
        records = RedisServer(directory / "records")
        records.start()
        stack.callback(records.stop)
        broker = make_broker(directory / "broker")
        broker.start()
        stack.callback(broker.stop)
        proxy = FaultyProxy(broker.port)
        stack.callback(proxy.close)
        system = make_system(Setup(broker, broker.url(broker.port), broker.url(proxy.port),
                                   records.url, pool, plan.lease))  # fmt: skip
        stack.callback(system.close)
        case = Case(broker, system, proxy, plan.lease)
        stack.callback(_kill_workers, case)
        for index in range(plan.workers):
            case.workers.append(system.start_worker(index))
        yield case, records.url


def _kill_workers(case: Case) -> None:
    for worker in [*case.workers, *case.retired]:
        worker.kill_group()


# How many workers that exited by themselves the supervisor starts again in one case, at
# most (a worker that cannot start at all is not started forever).
RESTARTS = 20


@contextlib.contextmanager
def supervised(case: Case) -> Iterator[None]:
    """While the case runs, start again under the same name a worker that exited by itself
    (crashed), as a supervisor such as systemd (``Restart=on-failure``) would, so that what
    it held is not counted as lost only because no worker was left to run it."""
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.2):  # a supervisor's check, not a wait for an event
            with case.lock:
                for index, worker in enumerate(case.workers):
                    if not worker.alive() and len(case.exits) < RESTARTS:
                        case.exits.append((time.time(), f"w{index} (pid {worker.pid})"))
                        case.replace_worker(index)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        done.set()
        watcher.join()


def run_case(make_broker: MakeBroker, make_system: MakeSystem, pool: str, scenario: Scenario,
             plan: Plan, seed: int) -> Outcome:  # fmt: skip
    rng = Random(f"{seed}:{pool}:{scenario.name}")
    with running_case(make_broker, make_system, pool, plan) as (case, records_url):
        outcome = Outcome(case.system.name, case.broker.name, pool, scenario.name)
        sent: list[Sent] = []
        sender = threading.Thread(
            target=_send_all, args=(case.system, plan, Random(rng.random()), sent)
        )
        store = redis.Redis.from_url(records_url)
        try:
            with supervised(case):
                sender.start()
                try:
                    faults = _inject_all(case, scenario, plan, rng)
                finally:
                    sender.join()
                prefix = case.system.prefix
                wanted = {s.task_id for s in sent if s.confirmed} | {f.probe for f in faults}
                _wait_quiet(case.system, store, prefix, wanted, plan.quiet_deadline)
            for worker in case.workers:  # a graceful stop: runs in progress finish
                worker.stop()
            runs = store.lrange(f"{prefix}:runs", 0, -1)
            dead = case.system.dead_letters()
        finally:
            store.close()
        judge(outcome, sent, runs, dead, faults)
        _report_exits(outcome, case, faults)
        if plan.logs is not None:
            _write_logs(
                plan.logs / f"{case.system.name}-{case.broker.name}-{pool}-{scenario.name}", case
            )
        outcome.evidence += [
            line.strip() for worker in [*case.workers, *case.retired]
            for line in worker.log().splitlines() if NOTEWORTHY.search(line)
        ]  # fmt: skip
        return outcome


def _report_exits(outcome: Outcome, case: Case, faults: list[Fault]) -> None:
    """Workers that exited by themselves (and were started again): in the note and evidence."""
    if not case.exits:
        return
    origin = min((f.started for f in faults), default=case.exits[0][0])
    count = len(case.exits)
    outcome.note = f"{count} worker{'s' if count > 1 else ''} crashed (restarted)"
    outcome.evidence += [
        f"exited by itself: {which} at {when - origin:+.2f}s; started again"
        for when, which in case.exits
    ]


def _inject_all(case: Case, scenario: Scenario, plan: Plan, rng: Random) -> list[Fault]:
    """The scenario's faults at seeded moments of the send window, each followed by a
    probe; the next fault waits for the probe, so that each recovery is its own."""
    moments = sorted(rng.uniform(0.2, plan.send_window) for _ in range(plan.faults))
    start = time.monotonic()
    faults = []
    for moment in moments:
        time.sleep(max(0.0, start + moment - time.monotonic()))  # the seeded moment
        began = time.time()
        scenario.inject(case, rng)
        faults.append(Fault(began, time.time(), *_probe(case.system)))
        case.system.wait_ran(faults[-1].probe, plan.lease + 5.0)
    return faults


def _write_logs(directory: Path, case: Case) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for number, worker in enumerate([*case.workers, *case.retired]):
        (directory / f"worker-{number}-{worker.pid}.log").write_text(worker.log())


def _probe(system: SystemUnderTest) -> tuple[str, bool]:
    """A task sent as soon as a fault is undone: when it has run, the system has recovered.
    Its id, and whether its send returned."""
    task_id = f"{PROBE}{uuid.uuid4()}"
    try:
        system.send(task_id, 0.0, None, None)
    except Exception:  # unsent: the recovery shows as never
        return task_id, False
    return task_id, True


def _send_all(system: SystemUnderTest, plan: Plan, rng: Random, sent: list[Sent]) -> None:
    """Send the tasks evenly over the window; a quarter later (countdown), half with an
    idempotency key where the system takes keys. A send that raises is sent, not confirmed."""
    began = time.monotonic()
    for index in range(plan.tasks):
        time.sleep(max(0.0, began + index * plan.send_window / plan.tasks - time.monotonic()))
        task_id = str(uuid.uuid4())
        key = f"chaos-{task_id}" if index % 2 == 0 and system.keys else None
        countdown = rng.uniform(0.5, 2.0) if index % 4 == 1 else None
        try:
            system.send(task_id, plan.task_seconds, countdown, key)
            sent.append(Sent(task_id, key, confirmed=True, countdown=countdown, at=time.time()))
        except Exception:  # the broker is down or cut off: the caller saw the failure
            sent.append(Sent(task_id, key, confirmed=False, countdown=countdown, at=time.time()))


def _wait_quiet(system: SystemUnderTest, store: redis.Redis, prefix: str,
                wanted: set[str], deadline: float) -> None:  # fmt: skip
    """Until every task in ``wanted`` has run or is dead-lettered, or the deadline."""
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        finished = {json.loads(raw)["id"] for raw in store.lrange(f"{prefix}:runs", 0, -1)}
        if not wanted - finished - set(system.dead_letters()):
            return
        store.blpop([f"{prefix}:done"], timeout=0.5)  # the next run finished, or recheck
