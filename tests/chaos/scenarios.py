"""Named faults. Each injects one fault into a running case and returns when the harness
has undone it (a worker restarted, the broker back, the link healed)."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from random import Random
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.chaos.harness import Case


@dataclass(frozen=True)
class Scenario:
    name: str
    inject: Callable[[Case, Random], None]
    pools: tuple[str, ...] = ("threads", "prefork", "solo", "asyncio")  # where it means something


def sigkill_main(case: Case, rng: Random) -> None:
    """SIGKILL a worker's main process (its children are left to notice), then start a new
    worker under the same name, as a supervisor would."""
    with case.lock:  # the harness's supervisor must not start it again too
        index = rng.randrange(len(case.workers))
        victim = case.workers[index]
        os.kill(victim.pid, signal.SIGKILL)
        case.replace_worker(index)


def sigkill_child(case: Case, rng: Random) -> None:
    """SIGKILL one prefork child in the middle of whatever it runs."""
    children = [pid for worker in case.workers for pid in worker.children()]
    if children:
        os.kill(rng.choice(children), signal.SIGKILL)


def sigstop(case: Case, rng: Random) -> None:
    """Freeze a worker (and its children) for longer than its lease, then thaw it: the
    messages it held go to the other worker; its late acks must be refused."""
    victim = case.workers[rng.randrange(len(case.workers))]
    os.killpg(victim.pid, signal.SIGSTOP)
    time.sleep(case.lease + 1.5)  # the length of the fault itself
    os.killpg(victim.pid, signal.SIGCONT)


def broker_restart(case: Case, rng: Random) -> None:
    """Crash the broker's server (SIGKILL) and start it again on the same port and data."""
    case.broker.restart()


def proxy_cut(case: Case, rng: Random) -> None:
    """Cut every worker connection mid-stream; refuse new ones for a while."""
    case.proxy.cut()
    time.sleep(rng.uniform(0.5, 2.0))  # the length of the outage
    case.proxy.restore()


def proxy_drop(case: Case, rng: Random) -> None:
    """Drop every packet for a while, connections kept (TCP retransmits when it heals)."""
    case.proxy.stall()
    time.sleep(rng.uniform(0.5, 2.0))  # the length of the partition
    case.proxy.resume()


def proxy_delay(case: Case, rng: Random) -> None:
    """Add latency to every chunk, both ways, for a few seconds."""
    case.proxy.delay = rng.uniform(0.05, 0.3)
    time.sleep(3.0)  # the length of the slow spell
    case.proxy.delay = 0.0


SCENARIOS = {
    s.name: s
    for s in (
        Scenario("sigkill-main", sigkill_main),
        Scenario("sigkill-child", sigkill_child, pools=("prefork",)),
        Scenario("sigstop", sigstop),
        Scenario("broker-restart", broker_restart),
        Scenario("proxy-cut", proxy_cut),
        Scenario("proxy-drop", proxy_drop),
        Scenario("proxy-delay", proxy_delay),
    )
}
