"""Countdowns through the loss of a RabbitMQ cluster node, on a real three-node cluster that
this module starts. The queue and the 32 delay queues are declared through the first node,
so it leads them all; countdowns of up to 4 s are sent for 4 s, and the first node is
killed (SIGKILL) halfway and started again 3 s later. Every countdown must run, and soon
after its due time.

A countdown moves from one delay queue to the next by RabbitMQ's at-least-once
dead-lettering: a process on the leader of each quorum delay queue publishes every
expired message to the next queue and removes it once that queue confirmed it. When that
process first publishes to a queue whose recorded leader is the killed node, RabbitMQ
3.10 refuses the publish, and the process sends it again only after
``dead_letter_worker_publisher_confirm_timeout`` (180 s by default; ``advanced.config``)
and only if that node answers by then; meanwhile the message is in neither queue for an
AMQP client (a passive declare counts 0, ``basic.get`` finds nothing), and a delay queue
that holds 32 such messages dead-letters nothing more until then. So these nodes set
the timeout to ``RETRY`` seconds: a held countdown moves on within two of them (RabbitMQ
sends again what has waited a whole timeout, on one timer) once the node is back.

Run with ``-s`` to see how many countdowns were held and how late. The long form
(``--long``) runs the same on nodes with RabbitMQ's default timeout: held countdowns run
up to 6 minutes late there, none lost.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

import pytest
import redis

from celeriac.brokers.amqp import AmqpBroker
from tests.integration.rabbitmq_cluster import cluster_project
from tests.integration.rabbitmq_cluster_nodes import (
    LocalRabbitCluster,
    dead_letter_retry,
    start_rabbit_cluster,
)
from tests.integration.workers import WorkerProcess

RETRY = 5.0  # dead_letter_worker_publisher_confirm_timeout of the short test's nodes
DEFAULT_RETRY = 180.0  # RabbitMQ's own
LONGEST = 4.0  # the longest countdown sent
SLACK = 5.0  # worker and hops, on a loaded 2-core machine


@pytest.fixture(scope="module")
def retrying_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRabbitCluster]:
    cluster = start_rabbit_cluster(
        tmp_path_factory.mktemp("rabbit-delays"), advanced=dead_letter_retry(RETRY)
    )
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def default_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRabbitCluster]:
    cluster = start_rabbit_cluster(tmp_path_factory.mktemp("rabbit-delays-default"))
    try:
        yield cluster
    finally:
        cluster.stop()


@dataclass
class Countdowns:
    """Calls ``record(n)`` with a random countdown, evenly over ``window`` seconds, from a
    thread; notes each confirmed call's due time (wall clock, as the worker marks runs)."""

    proj: ModuleType
    queue: str
    calls: int = 120
    window: float = 4.0
    due: dict[int, float] = field(default_factory=dict)
    countdown: dict[int, float] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    def run(self) -> None:
        choose = random.Random(7)
        start = time.monotonic()
        for n in range(self.calls):
            # Paced on purpose: the calls spread evenly over the window, across the kill.
            time.sleep(max(0.0, start + self.window * n / self.calls - time.monotonic()))
            delay = choose.uniform(0.5, LONGEST)
            sent = time.time()
            try:
                self.proj.record.apply_async(
                    (n,), queue=self.queue, countdown=delay, task_id=f"c{n}"
                )
            except Exception as exc:  # noted; the test fails on any
                self.failures.append(repr(exc))
                continue
            self.due[n], self.countdown[n] = sent + delay, delay


@dataclass
class Outcome:
    lost: list[int]  # confirmed, never ran
    late: list[tuple[int, float]]  # ran after the bound: (n, seconds past it)
    held: int  # ran more than 2 s after due
    latest: float  # the most seconds any ran after its due time
    sent: int
    failures: list[str]

    def __str__(self) -> str:
        return (
            f"{self.sent} countdowns confirmed, {self.held} of them ran more than 2 s after "
            f"their due time (at most {self.latest:.1f} s after), {len(self.lost)} lost"
        )


def countdowns_through_a_node_loss(
    tmp_path: Path,
    cluster: LocalRabbitCluster,
    project: tuple[dict[str, str], ModuleType, redis.Redis],
    retry: float,
) -> Outcome:
    """Send countdowns around a SIGKILL of the node leading every queue involved; each
    must have run by its due time, or by ``2 * retry`` after the node is back plus its
    countdown (what is left of its wait once it moves on), whichever is later."""
    env, proj, marks = project
    queue = f"{proj.PREFIX}-countdowns"
    first = cluster.nodes[0]
    options = {"namespace": proj.PREFIX, "queue_type": "quorum"}
    setup = AmqpBroker(first.url, transport_options=options)
    try:
        setup.declare_queue(queue)  # the queue and the delay queues, led by the first node
    finally:
        setup.close()
    leaders = {name: row.get("leader") for name, row in cluster.queues().items()}
    delays = [f"{proj.PREFIX}.delay-level.{k}" for k in range(32)]
    assert {leaders[name] for name in [queue, *delays]} == {first.node}, leaders
    worker = WorkerProcess.started(
        tmp_path, env, "-P", "threads", "-c", "8", "-Q", queue, app="rabbitproj"
    )
    sender = Countdowns(proj, queue)
    thread = threading.Thread(target=sender.run, daemon=True)
    try:
        thread.start()
        time.sleep(sender.window / 2)  # the middle of the sending
        cluster.kill(first)
        time.sleep(3.0)  # a node down for a while, as a crashed machine is
        cluster.revive()
        back = time.time()
        thread.join(60)
        deadline = {n: max(due, back + 2 * retry + sender.countdown[n]) + SLACK
                    for n, due in sender.due.items()}  # fmt: skip
        give_up = max(deadline.values(), default=0.0)
        while int(marks.hlen(f"{proj.PREFIX}:ran")) < len(sender.due):
            remaining = give_up - time.time()
            if remaining <= 0:
                break
            marks.blpop([f"{proj.PREFIX}:run-log"], max(0.01, remaining))  # each run
        assert worker.stop() == 0
    finally:
        worker.stop()
    ran = {int(k): float(v) for k, v in marks.hgetall(f"{proj.PREFIX}:ran").items()}
    after = {n: ran[n] - due for n, due in sender.due.items() if n in ran}
    return Outcome(
        lost=sorted(set(sender.due) - set(ran)),
        late=sorted((n, ran[n] - deadline[n]) for n in after if ran[n] > deadline[n]),
        held=sum(1 for seconds in after.values() if seconds > 2.0),
        latest=max(after.values(), default=0.0),
        sent=len(sender.due),
        failures=sender.failures,
    )


def assert_every_countdown_ran_in_bound(outcome: Outcome) -> None:
    assert outcome.lost == [], f"confirmed countdowns that never ran: {outcome.lost}"
    assert outcome.late == [], f"countdowns that ran past their bound: {outcome.late}"
    assert outcome.sent > 100 and outcome.failures == [], outcome.failures


@pytest.mark.alone
def test_countdowns_held_by_a_node_loss_run_soon_after_the_node_is_back(
    tmp_path: Path, retrying_cluster: LocalRabbitCluster, redis_url: str
) -> None:
    with cluster_project(tmp_path, retrying_cluster, redis_url, CONFIRM="1") as project:
        outcome = countdowns_through_a_node_loss(tmp_path, retrying_cluster, project, RETRY)
    print(f"\nRabbitMQ node leading the delay queues killed (retry {RETRY:.0f} s): {outcome}")
    assert_every_countdown_ran_in_bound(outcome)


@pytest.mark.long
@pytest.mark.timeout(900)
def test_with_rabbitmqs_default_retry_held_countdowns_run_within_two_timeouts(
    tmp_path: Path, default_cluster: LocalRabbitCluster, redis_url: str
) -> None:
    with cluster_project(tmp_path, default_cluster, redis_url, CONFIRM="1") as project:
        outcome = countdowns_through_a_node_loss(tmp_path, default_cluster, project, DEFAULT_RETRY)
    print(f"\nRabbitMQ node leading the delay queues killed (default retry): {outcome}")
    assert_every_countdown_ran_in_bound(outcome)
