"""``Worker``: starts the pool and the consumer in written order, runs until a signal,
then shuts down warm (finish running tasks, give back the rest) or cold (give back now).

Runtime layer: imports the app core, the seams and the worker's own modules only.
SIGTERM/SIGINT: warm; a second one: cold; SIGQUIT: immediate (leases bring messages back).
Before the pool starts, the broker is reached (retried per ``worker.connection``); a
signal while it is being reached ends the worker at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import logging
import os
import signal
import socket
import sys
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from celeriac import signals
from celeriac.app.routing import direct_queue
from celeriac.bootsteps import WorkerSteps
from celeriac.control.server import ControlServer
from celeriac.events.worker_events import HEARTBEAT_INTERVAL, WorkerEvents
from celeriac.events.worker_events import for_worker as events_for_worker
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured, WorkerTerminate
from celeriac.worker import exitcodes
from celeriac.worker.autoscale import (
    KEEPALIVE,
    Autoscaler,
    keepalive_from_environment,
    parse_autoscale,
)
from celeriac.worker.banner import mask_password
from celeriac.worker.connection import Outage, RetryPolicy, off_loop, reach_broker
from celeriac.worker.consumer import Consumer
from celeriac.worker.control import WorkerControl
from celeriac.worker.gc_tuning import tune_for_worker
from celeriac.worker.listeners import Listeners
from celeriac.worker.pools import POOLS, pool_class
from celeriac.worker.pools.base import Pool
from celeriac.worker.pools.start_method import check_start_method
from celeriac.worker.ratelimit import RateLimits
from celeriac.worker.request import check_request_classes
from celeriac.worker.revocations import Revocations
from celeriac.worker.soft_shutdown import NO_SOFT_SHUTDOWN, SoftShutdown
from celeriac.worker.timelimits import longest_hard_limit, pool_limit_warning
from celeriac.worker.timer import Timer

logger = logging.getLogger("celeriac.worker")
# Pools whose task bodies never run on the worker's loop: the broker may do its I/O there.
LOOP_FREE_POOLS = frozenset({"prefork", "threads", "solo"})
# The signals that stop a worker (warm at the first, cold at the next).
STOP_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGHUP})


def default_hostname() -> str:
    return f"celeriac@{socket.gethostname()}"


class Worker:
    """One worker process (or, in tests, one worker thread) consuming some queues."""

    def __init__(
        self,
        app: Any,
        *,
        hostname: str | None = None,
        queues: Sequence[str] | None = None,
        concurrency: int | None = None,
        pool: str | None = None,
        prefetch_multiplier: int | None = None,
        max_tasks_per_child: int | None = None,
        max_memory_per_child: int | None = None,
        send_events: bool | None = None,
        shutdown_timeout: float | None = None,
        heartbeat_interval: float | None = None,
        autoscale: str | tuple[int, int] | None = None,
        install_signal_handlers: bool = True,
        step_options: Mapping[str, Any] | None = None,
    ) -> None:
        conf = app.conf
        self.app = app
        given = {
            "hostname": hostname, "queues": queues, "concurrency": concurrency, "pool": pool,
            "prefetch_multiplier": prefetch_multiplier, "send_events": send_events,
            "max_tasks_per_child": max_tasks_per_child, "shutdown_timeout": shutdown_timeout,
            "max_memory_per_child": max_memory_per_child,
            "heartbeat_interval": heartbeat_interval, "autoscale": autoscale,
        }  # fmt: skip
        # What this worker was started with (celeryd_init's ``options``, as Celery's).
        self.options = {key: value for key, value in given.items() if value is not None}
        hostname = hostname or default_hostname()
        self.hostname = hostname if "@" in hostname else f"celeriac@{hostname}"
        self.queues = list(queues or [conf.task_default_queue])
        self.concurrency = int(concurrency or conf.worker_concurrency or os.cpu_count() or 1)
        self.pool_name = self._choose_pool(pool or conf.worker_pool)
        check_start_method(conf.worker_pool_start_method)  # 'fork': 'spawn' is refused
        # Built now, like the broker above: a result_backend that no engine serves stops the
        # start (EX_CONFIG) instead of failing every task's outcome later.
        self.backend = app.backend
        if self.pool_name == "solo":
            self.concurrency = 1
        # --autoscale=MAX,MIN: the pool starts at MIN (at least 1) and holds what MAX can run.
        self.autoscale_keepalive = KEEPALIVE  # AUTOSCALE_KEEPALIVE, read with --autoscale
        self.autoscale = self._check_autoscale(autoscale)
        if self.autoscale is not None:
            self.concurrency = max(1, self.autoscale[1])
        # worker_disable_prefetch (Celery 5.5): hold only what a free slot can start.
        self.prefetch_multiplier = (
            1
            if conf.worker_disable_prefetch
            else max(1, int(prefetch_multiplier or conf.worker_prefetch_multiplier))
        )
        most = self.autoscale[0] if self.autoscale is not None else self.concurrency
        self.prefetch = most * self.prefetch_multiplier
        self.max_tasks_per_child = max_tasks_per_child or conf.worker_max_tasks_per_child
        self.max_memory_per_child = max_memory_per_child or conf.worker_max_memory_per_child
        self.send_events = bool(
            conf.worker_send_task_events if send_events is None else send_events
        )
        self.shutdown_timeout = (
            conf.worker_shutdown_timeout if shutdown_timeout is None else shutdown_timeout
        )
        if heartbeat_interval is not None and heartbeat_interval <= 0:
            raise ImproperlyConfigured(
                f"heartbeat_interval must be a number of seconds above 0, not "
                f"{heartbeat_interval!r}"
            )
        self.heartbeat_interval = heartbeat_interval or HEARTBEAT_INTERVAL  # worker-heartbeat
        self.soft_shutdown = SoftShutdown.from_conf(conf)  # before a cold shutdown
        self._soft: asyncio.Task[None] | None = None  # the soft shutdown under way
        self.install_signal_handlers = install_signal_handlers
        self.retry_policy = RetryPolicy.from_conf(conf)
        self.ready = threading.Event()  # set once the worker consumes (tests wait on it)
        self.pool: Pool | None = None
        self.consumer: Consumer | None = None
        # Observers of every task this worker runs (events, metrics): add before start.
        self.listeners = Listeners()
        self.events: WorkerEvents | None = None  # heartbeats, and task events with -E
        self.revocations: Revocations | None = None
        self.control: WorkerControl | None = None  # what remote control sees and changes
        self.mailbox: ControlServer | None = None
        self.autoscaler: Autoscaler | None = None  # with --autoscale, once consuming
        self._exit_code = exitcodes.EX_OK  # EX_FAILURE once the broker is lost for good
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._how = "warm"
        self._sig: str | None = None  # the signal that asked for the shutdown, by name
        self.cold = False  # set when the shutdown ended cold
        if self.pool_name != "prefork" and (self.max_tasks_per_child or self.max_memory_per_child):
            logger.warning(
                "max tasks/memory per child apply to the prefork pool only; the %s pool "
                "ignores them",
                self.pool_name,
            )
        self._make_user_steps(step_options or {})

    def _make_user_steps(self, step_options: Mapping[str, Any]) -> None:
        """``app.steps['worker']``, made now with the worker's options and ``step_options``
        (the command line's user options), which ``celeryd_init`` sends too."""
        self.options.update(step_options)
        self.timer = Timer(f"{self.hostname} timer")  # for the steps: call_repeatedly(...)
        self.steps: list[Any] = []  # the StartStopSteps included, in start order
        self.blueprint = WorkerSteps.of_app(self.app.steps)
        self.blueprint.apply(self, **self.options)

    def _choose_pool(self, name: str) -> str:
        if name not in POOLS:
            raise ImproperlyConfigured(f"unknown pool {name!r}: choose one of {', '.join(POOLS)}")
        broker = self.app.read_broker
        if name == "prefork" and not broker.shares_across_processes:
            where = f"{broker.schemes[0]}://" if broker.schemes else type(broker).__name__
            logger.warning(
                "the %s broker lives inside one process, so child processes cannot "
                "share it: using the threads pool. Use a Redis or RabbitMQ broker for prefork.",
                where,
            )
            return "threads"
        return name

    def _check_autoscale(self, value: str | tuple[int, int] | None) -> tuple[int, int] | None:
        if value is None:
            return None
        try:
            bounds = parse_autoscale(value)
            self.autoscale_keepalive = keepalive_from_environment()
        except ValueError as exc:
            raise ImproperlyConfigured(str(exc)) from None
        if self.pool_name == "solo":
            raise ImproperlyConfigured(
                "the solo pool runs one task at a time and cannot autoscale: use -P prefork "
                "or -P threads with --autoscale"
            )
        return bounds

    def _make_pool(self, kind: type[Pool]) -> Pool:
        options: dict[str, Any] = {}
        if self.pool_name == "prefork":  # what only a pool of child processes takes
            options = {
                "max_tasks_per_child": self.max_tasks_per_child,
                "max_memory_per_child": self.max_memory_per_child,
                "hostname": self.hostname,
                "proc_alive_timeout": self.app.conf.worker_proc_alive_timeout,
            }
        return kind(self.app, self.concurrency, **options)

    # -- running ----------------------------------------------------------------------------
    def start(self) -> int:
        """Run until shut down; return an exit code (``worker.exitcodes``)."""
        try:
            code = asyncio.run(self._run_holding_stop_signals())
        except ImproperlyConfigured as exc:
            logger.critical("%s", exc)
            return exitcodes.EX_CONFIG
        except BrokerConnectionError as exc:
            logger.critical("%s", exc)
            return exitcodes.EX_UNAVAILABLE
        finally:
            self.timer.stop()  # also when the user steps never started
            if self.install_signal_handlers:
                # The loop's handlers are gone with it: a further stop signal must not
                # kill the process in the middle of its exit (the pid file, the logs).
                # One that came meanwhile was held back (blocked) and is dropped here.
                for signum in STOP_SIGNALS:
                    signal.signal(signum, signal.SIG_IGN)
                signal.pthread_sigmask(signal.SIG_UNBLOCK, STOP_SIGNALS)
        if self.cold and self.install_signal_handlers and self.pool_name != "prefork":
            # Threads cannot be stopped and Python would wait for them at exit; their
            # messages were given back, so end the process now, as a cold stop means.
            logging.shutdown()
            os._exit(code)
        return code

    def _check_rate_limit_scopes(self) -> None:
        """A cluster-wide rate limit needs a broker with shared key-value state: refuse to
        start without one rather than fail on every message."""
        if self.app.broker.supports_key_value:
            return
        cluster = sorted(
            name
            for name, task in self.app.tasks.items()
            if task.resolve("rate_limit") and task.resolve("rate_limit_scope") == "cluster"
        )
        if cluster:
            raise ImproperlyConfigured(
                f"tasks {', '.join(cluster)} have rate_limit_scope='cluster', which needs "
                f"shared state this broker ({type(self.app.broker).__name__}) does not keep: "
                f"use rate_limit_scope='worker', or a Redis broker"
            )

    def _check_signing(self) -> None:
        """A worker that accepts only signed messages must be able to verify them: refuse
        to start without a signer rather than dead-letter every message
        (``app.signer`` itself refuses two ways of signing at once)."""
        if self.app.signer is None and "auth" in list(self.app.conf.accept_content):
            raise ImproperlyConfigured(
                "accept_content names 'auth' (signed messages), but this app cannot verify "
                "them: call app.setup_security() where the app is defined"
            )

    async def _run_holding_stop_signals(self) -> int:
        """``run``; then stop signals are held back until ``start`` ignores them: closing
        the loop puts back their default action (end the process), and a second SIGTERM
        in that gap would kill a worker that is exiting cleanly."""
        try:
            return await self.run()
        finally:
            if self.install_signal_handlers:
                signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)

    async def run(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if self.install_signal_handlers:
            self._install_signal_handlers()
        # A task's follow-ups (a chain's next step, a retry) must be stored before its ack.
        for broker in {self.app.broker, self.app.read_broker}:
            broker.confirm_each_publish()
            if self.pool_name in LOOP_FREE_POOLS and broker.adopt_loop(self._loop):
                logger.debug("%r does its I/O on the worker's loop", broker)
        try:
            started = await self._start_up()
        except BaseException:
            await self._release_broker()
            raise
        if not started:
            await self._release_broker()
            logger.warning("stopped before the broker could be reached")
            return exitcodes.EX_OK
        assert self.pool is not None and self.revocations is not None
        limits = RateLimits(disabled=bool(self.app.conf.worker_disable_rate_limits))
        self.consumer = Consumer(
            self.app, self.app.read_broker, self.pool, self.queues,
            prefetch=self.prefetch, hostname=self.hostname, rate_limits=limits,
            revocations=self.revocations, outage=self._outage(), listeners=self.listeners,
            on_stop=self._stop_asked_by_task,
        )  # fmt: skip
        selected = self.app.amqp.queues
        selected.select(self.queues)
        if self.app.conf.worker_direct:  # a queue only this worker consumes, Celery's name
            selected.select_add(direct_queue(self.hostname))
        signals.celeryd_after_setup.send(sender=self.hostname, instance=self, conf=self.app.conf)
        # A receiver may add queues (instance.app.amqp.queues.select_add(name)), as in Celery.
        self.queues = self.consumer.queues = list(selected.consume_from)
        await self._start_events()
        self._start_autoscaler()
        await self._start_mailbox()
        started = self._start_user_steps()
        consuming = asyncio.create_task(self.consumer.run(), name="celeriac-consumer")
        if started:
            logger.info("%s ready.", self.hostname)
            signals.worker_ready.send(sender=self.consumer)
            self.ready.set()
        await self._stop.wait()
        if self.autoscaler is not None:  # the pool keeps its size while it winds down
            await self.autoscaler.stop()
        try:
            return await self._shutdown(consuming)
        finally:
            signals.worker_shutdown.send(sender=self)
            if self.events is not None:  # worker-offline, and what is still queued
                await self.events.stop()
            await self._release_broker()

    async def _start_up(self) -> bool:
        """Checks, the broker, then the pool. False when stopped before the broker was
        reached (nothing was started then)."""
        assert self._stop is not None
        self.app.finalize()
        signals.celeryd_init.send(
            sender=self.hostname, instance=self, conf=self.app.conf, options=dict(self.options)
        )
        warning = self.app.read_broker.check_time_limit(longest_hard_limit(self.app))
        if warning:
            logger.warning("%s", warning)
        warning = pool_limit_warning(self.app, self.pool_name)
        if warning:
            logger.warning("%s", warning)
        self._check_rate_limit_scopes()
        self._check_signing()
        check_request_classes(self.app)  # a bad Task.Request fails the start, not each message
        signals.worker_init.send(sender=self)
        # Revocations survive restarts (they live in the broker); follow new ones live.
        self.revocations = Revocations(
            self.app.read_broker, on_terminate=self._terminate, running=self._running_stamps
        )
        if not await reach_broker(self._reach_broker, self.retry_policy, self._stop):
            return False
        kind = pool_class(self.pool_name)  # imported before the freeze: children share it
        if self.app.conf.worker_tune_gc and self.install_signal_handlers:
            # Only a worker that owns its process (not one in a thread of a test or an
            # app); before the pool forks, so children share what start-up made.
            tune_for_worker()
        self.pool = self._make_pool(kind)
        await self.pool.start()
        if self.pool_name == "solo":  # the worker's own process runs the tasks (Celery 5.7)
            signals.worker_process_init.send(sender=self.hostname)
        return True

    async def _reach_broker(self) -> None:
        """One attempt at what start-up needs from the broker: its safety check (a
        blocking call, kept off the loop so that signals are handled meanwhile) and the
        revocations in force."""
        warning = await off_loop(self.app.read_broker.check_safety)
        assert self.revocations is not None
        await self.revocations.start()
        if warning:
            logger.warning("%s", warning)

    def _start_user_steps(self) -> bool:
        """Start the user bootsteps; False (the worker stops, exit 1) when one raised."""
        try:
            self.blueprint.start(self)
        except Exception as exc:
            logger.critical("Unrecoverable error: %r", exc, exc_info=True)
            self._exit_code = exitcodes.EX_FAILURE
            self._request_stop("warm")
            return False
        return True

    async def _start_events(self) -> None:
        """worker-online now, a heartbeat every ``heartbeat_interval`` seconds (2 by
        default); task events too when enabled."""
        consumer, pool = self.consumer, self.pool
        assert consumer is not None and pool is not None
        self.events = events_for_worker(
            self.app, self.hostname, task_events=self.send_events,
            active=lambda: len(consumer.running), pool_size=lambda: pool.concurrency,
            results_are_reprs=self.pool_name == "prefork", interval=self.heartbeat_interval,
        )  # fmt: skip
        self.listeners.add(self.events)
        await self.events.start()

    def _start_autoscaler(self) -> None:
        """With ``--autoscale``: size the pool to the tasks held, from now on."""
        consumer = self.consumer
        if self.autoscale is None or consumer is None:
            return
        high, low = self.autoscale
        self.autoscaler = Autoscaler(
            size=lambda: self.concurrency,
            reserved=lambda: len(consumer.held) - len(consumer.settling),
            resize=self._autoscale_to, max_concurrency=high, min_concurrency=low,
            keepalive=self.autoscale_keepalive,
        )  # fmt: skip
        self.listeners.add(self.autoscaler)
        self.autoscaler.start()

    def _autoscale_to(self, size: int) -> None:
        """The pool and the consumer's slots at ``size``; the prefetch stays MAX's."""
        assert self.pool is not None and self.consumer is not None
        self.pool.resize(size)
        self.concurrency = size
        if self.autoscaler is not None:
            self.prefetch = self.autoscaler.max_concurrency * self.prefetch_multiplier
        self.consumer.resize(size, self.prefetch)

    def _outage(self) -> Outage:
        url = getattr(self.app.read_broker, "url", None) or self.app.conf.broker_url or "memory://"
        return Outage(mask_password(str(url)), self.retry_policy, self._broker_lost)

    def _broker_lost(self, exc: BrokerConnectionError) -> None:
        """The connection is gone and the policy allows no more attempts: stop cold (the
        messages held come back with their leases) and exit with EX_FAILURE."""
        self._exit_code = exitcodes.EX_FAILURE
        self.soft_shutdown = NO_SOFT_SHUTDOWN  # nothing could be acked: no time to give
        self._request_stop("cold")

    async def _start_mailbox(self) -> None:
        """Answer remote control and inspect (``celeriac.control``) from now on, unless
        ``worker_enable_remote_control`` is off."""
        if not self.app.conf.worker_enable_remote_control:
            return
        self.control = WorkerControl(self)
        self.listeners.add(self.control)
        self.mailbox = ControlServer(self.app.read_broker, self.control)
        await self.mailbox.start()

    async def _release_broker(self) -> None:
        if self.mailbox is not None:
            await self.mailbox.stop()
        if self.revocations is not None:
            await self.revocations.stop()
        read = self.app.read_broker
        await read.close_async()
        if self.app.broker is not read:  # broker_write_url: the one published to
            await self.app.broker.close_async()

    async def _shutdown(self, consuming: asyncio.Task[None]) -> int:
        assert self.consumer is not None and self.pool is not None
        how = self._how
        signals.worker_shutting_down.send(
            sender=self.hostname, sig=self._sig, how=how.title(), exitcode=self._exit_code
        )
        self.consumer.stop_fetching()
        await consuming
        self.blueprint.stop(self, terminate=how == "cold")  # the user steps stop first
        self.timer.stop()
        if how == "warm":
            returned = await self.consumer.give_back(running_too=False)
            logger.info("warm shutdown: gave back %d waiting message(s)", returned)
            if not await self.consumer.wait_idle(self.shutdown_timeout):
                logger.warning(
                    "warm shutdown: tasks still running after %ss; giving them back",
                    self.shutdown_timeout,
                )
                how = "cold"
        if how == "cold" and self.soft_shutdown.wanted(self.consumer):
            await self.consumer.give_back(running_too=False)
            await self.soft_shutdown.wait(self.consumer)
        if how == "cold":
            returned = await self.consumer.give_back(running_too=True)
            logger.info("cold shutdown: gave back %d message(s)", returned)
        self.cold = how == "cold" or self._how == "cold"
        await self.pool.stop(terminate=self.cold)
        return self._exit_code

    def _running_stamps(self) -> list[tuple[str, Mapping[str, Any]]]:
        """The tasks running here, with their stamps (a revoke by stamped header)."""
        running = self.consumer.running if self.consumer is not None else {}
        return [(task_id, job.request.stamps) for task_id, job in running.items()]

    def _terminate(self, task_id: str, signal_name: str) -> None:
        """A revoke with terminate=True: stop that task if it runs here."""
        if self.pool is None or self.consumer is None or task_id not in self.consumer.running:
            return  # not running here: nothing to stop
        signum = signal.Signals[signal_name] if signal_name in signal.Signals.__members__ else 15
        self.consumer.terminating[task_id] = int(signum)  # task_revoked's ``signum``
        if not self.pool.terminate_job(task_id, signum) and self.pool_name != "prefork":
            logger.warning(
                "revoke(terminate=True) for %s: the %s pool cannot stop a running task; "
                "it will finish (use -P prefork to terminate tasks)", task_id, self.pool_name,
            )  # fmt: skip

    # -- stopping ---------------------------------------------------------------------------
    def stop(self, how: str = "warm") -> None:
        """Ask the worker to stop (thread-safe): ``warm`` or ``cold``."""
        if self._loop is None:
            return
        with contextlib.suppress(RuntimeError):  # the loop already closed: it has stopped
            self._loop.call_soon_threadsafe(self._request_stop, how)

    def _stop_asked_by_task(self, stop: BaseException) -> None:
        """A task raised ``WorkerShutdown`` (warm) or ``WorkerTerminate`` (cold); as in
        Celery, the worker exits with its code (None: 0; not a number: 1)."""
        cold = isinstance(stop, WorkerTerminate)
        if self._stop is not None and self._stop.is_set() and not cold:
            return  # already stopping: a second warm request must not turn it cold
        code = stop.code if isinstance(stop, SystemExit) else None
        self._exit_code = exitcodes.EX_OK if code is None else code if isinstance(code, int) else 1
        self._request_stop("cold" if cold else "warm")

    def _request_stop(self, how: str) -> None:
        assert self._stop is not None
        if self._stop.is_set():  # already stopping: a further request means cold, now
            if self._how != "cold" or (self._soft is not None and not self._soft.done()):
                self._how = "cold"
                self._escalate()
            return
        self._how = how
        self._stop.set()

    def _escalate(self) -> None:
        """A cold request during a warm shutdown: give everything back now."""
        if self.consumer is None or self._loop is None:
            return  # still starting: nothing runs yet, and the start-up ends by itself
        if self._soft is None and self.soft_shutdown.wanted(self.consumer):
            self._soft = self._loop.create_task(self._soft_then_cold())
            return
        if self._soft is not None:
            self._soft.cancel()  # a further request during the soft shutdown
        logger.warning("cold shutdown requested: giving back running tasks now")
        self._loop.create_task(self._cold_now())

    async def _soft_then_cold(self) -> None:
        assert self.consumer is not None
        if not await self.soft_shutdown.wait(self.consumer):
            await self._cold_now()

    async def _cold_now(self) -> None:
        assert self.consumer is not None and self.pool is not None
        await self.consumer.give_back(running_too=True)
        await self.pool.stop(terminate=True)

    def _install_signal_handlers(self) -> None:
        assert self._loop is not None
        for signum in STOP_SIGNALS:
            self._loop.add_signal_handler(signum, self._on_signal, signum)
        self._loop.add_signal_handler(signal.SIGQUIT, self._immediate)
        # SIGUSR1, as in Celery: every thread's stack to the process's stderr (not the
        # log, where ``sys.stderr`` may point), and the worker carries on. At the C level,
        # so it answers even when the event loop is stuck.
        # Then, once the loop runs it, the stack of each of its asyncio tasks.
        stderr = sys.__stderr__
        if stderr is not None:
            self._loop.add_signal_handler(signal.SIGUSR1, _dump_tasks, self._loop, stderr)
            with contextlib.suppress(ValueError, OSError):  # a stderr with no descriptor
                faulthandler.register(signal.SIGUSR1, stderr, all_threads=True, chain=True)

    def _on_signal(self, signum: int) -> None:
        name = signal.Signals(signum).name
        first = self._stop is not None and not self._stop.is_set()
        logger.warning("%s received: %s shutdown", name, "warm" if first else "cold")
        if first:
            self._sig = name
        self._request_stop("warm" if first else "cold")

    def _immediate(self) -> None:
        """SIGQUIT: exit now. Held messages come back when their leases run out."""
        logger.warning("SIGQUIT received: stopping immediately")
        signals.worker_shutting_down.send(
            sender=self.hostname, sig="SIGQUIT", how="Cold", exitcode=exitcodes.EX_OK
        )
        if self.pool is not None:
            self.pool.kill_now()
        logging.shutdown()
        os._exit(exitcodes.EX_OK)


def _dump_tasks(loop: asyncio.AbstractEventLoop, out: Any) -> None:
    """SIGUSR1's second half: what each asyncio task of the worker's loop awaits."""
    tasks = asyncio.all_tasks(loop)
    print(f"asyncio tasks ({len(tasks)}), most recent call last:", file=out)
    for task in tasks:
        task.print_stack(file=out)
    out.flush()
