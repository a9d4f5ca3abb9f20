"""``celeriac worker``: Celery's worker options, turned into ``Worker`` arguments and run.

Edge layer (cli). ``worker_kwargs`` is pure (options in, keyword arguments out) so it is
tested without starting anything; options left out stay out, and the Worker falls back
to the app's settings. Options Celery has that mean nothing here are accepted and
explained (``--without-gossip``, ``-O fair``); the ones we cannot honour are refused
with what to use instead (``cli.refused``).
"""

from __future__ import annotations

import contextlib
import importlib
import logging
import os
import re
import socket
import sys
from collections.abc import Iterable
from typing import Any, TypedDict

import click

from celeriac.app.logsetup import node_format, setup_logging
from celeriac.app.redirect import redirected_stdouts
from celeriac.cli.base import LOGLEVEL, CLIContext, CLIError
from celeriac.cli.metrics import start_worker_metrics
from celeriac.cli.pidfile import Pidfile, PidfileInUse
from celeriac.cli.privileges import apply_umask, drop_privileges
from celeriac.cli.refused import refused_options
from celeriac.cli.user_options import user_values
from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured
from celeriac.worker.autoscale import parse_autoscale
from celeriac.worker.banner import render_banner
from celeriac.worker.exitcodes import EX_CONFIG, EX_UNAVAILABLE
from celeriac.worker.pools import POOLS
from celeriac.worker.pools.start_method import SPAWN_REFUSED
from celeriac.worker.worker import Worker, default_hostname

logger = logging.getLogger("celeriac.cli")


class ConfigError(CLIError):
    """The settings cannot work (e.g. an unknown pool in ``worker_pool``): ``EX_CONFIG``."""

    exit_code = EX_CONFIG


_POOL_ALIASES = {"processes": "prefork"}
_REFUSED_POOLS = ("eventlet", "gevent")


class WorkerKwargs(TypedDict, total=False):
    """The keyword arguments of ``Worker`` the command line can set."""

    hostname: str
    queues: list[str]
    concurrency: int
    pool: str
    prefetch_multiplier: int
    max_tasks_per_child: int
    max_memory_per_child: int
    send_events: bool
    shutdown_timeout: float
    heartbeat_interval: float
    autoscale: tuple[int, int]


def check_pool(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    """``-P``: our pools (any case), ``processes`` for prefork; eventlet/gevent refused."""
    if value is None:
        return None
    name = value.strip().lower()
    name = _POOL_ALIASES.get(name, name)
    if name in _REFUSED_POOLS:
        raise click.BadParameter(
            f"celeriac has no {name} pool (it does not monkey-patch): use -P threads for "
            f"blocking I/O-bound tasks, or -P asyncio for 'async def' tasks",
            ctx,
            param,
        )
    if name not in POOLS:
        raise click.BadParameter(f"{value!r} is not one of {', '.join(POOLS)}", ctx, param)
    return name


def split_queues(values: Iterable[str]) -> list[str]:
    """``('a,b', ' c ')`` -> ``['a', 'b', 'c']``: commas and repeated ``-Q`` both work."""
    queues: list[str] = []
    for value in values:
        for name in value.split(","):
            if (name := name.strip()) and name not in queues:
                queues.append(name)
    return queues


def expand_hostname(template: str, hostname: str | None = None, pid: int | None = None) -> str:
    """Expand ``%h`` (host name), ``%n`` (its first label), ``%d`` (the domain), ``%i``
    and ``%I`` (this process's id), ``%%`` (a percent sign). Others stay as written."""
    host = hostname if hostname is not None else socket.gethostname()
    short, _, domain = host.partition(".")
    process = str(pid if pid is not None else os.getpid())
    values = {"h": host, "n": short, "d": domain, "i": process, "I": process, "%": "%"}
    return re.sub(r"%(.)", lambda match: values.get(match[1], match[0]), template)


def worker_kwargs(
    *,
    hostname: str | None = None,
    queues: Iterable[str] = (),
    concurrency: int | None = None,
    pool: str | None = None,
    prefetch_multiplier: int | None = None,
    max_tasks_per_child: int | None = None,
    max_memory_per_child: int | None = None,
    task_events: bool = False,
    shutdown_timeout: float | None = None,
    heartbeat_interval: float | None = None,
    autoscale: tuple[int, int] | None = None,
) -> WorkerKwargs:
    """The ``Worker`` arguments for the parsed options; an option not given is left out."""
    kwargs: WorkerKwargs = {}
    if hostname:
        kwargs["hostname"] = expand_hostname(hostname)
    if names := split_queues(queues):
        kwargs["queues"] = names
    if concurrency is not None:
        kwargs["concurrency"] = concurrency
    if pool is not None:
        kwargs["pool"] = pool
    if prefetch_multiplier is not None:
        kwargs["prefetch_multiplier"] = prefetch_multiplier
    if max_tasks_per_child is not None:
        kwargs["max_tasks_per_child"] = max_tasks_per_child
    if max_memory_per_child is not None:
        kwargs["max_memory_per_child"] = max_memory_per_child
    if task_events:
        kwargs["send_events"] = True
    if shutdown_timeout is not None:
        kwargs["shutdown_timeout"] = shutdown_timeout
    if heartbeat_interval is not None:
        kwargs["heartbeat_interval"] = heartbeat_interval
    if autoscale is not None:
        kwargs["autoscale"] = autoscale
    return kwargs


def log_compatibility_notes(
    optimization: str | None, without_gossip: bool, without_mingle: bool, without_heartbeat: bool
) -> None:
    """Say what the Celery-only options do here, so nobody relies on a silent no-op."""
    if optimization:
        logger.debug("-O %s: celeriac always hands a task to a free pool slot (fair)", optimization)
    if without_gossip or without_mingle:
        logger.info("--without-gossip/--without-mingle: celeriac has neither; nothing to turn off")
    if without_heartbeat:
        logger.warning(
            "--without-heartbeat is accepted but changes nothing: the lease heartbeats that "
            "stop running tasks from being redelivered to another worker are required"
        )


def exclude_queues_of(app: Any, queues: list[str], excluded: Iterable[str]) -> list[str]:
    """``-X``: the queues to consume (those of ``-Q``, else every queue the app declares:
    ``task_queues``, or ``task_default_queue``) without the excluded ones, as Celery's."""
    names = split_queues(excluded)
    if not names:
        return queues
    kept = [name for name in queues or list(app.amqp.queues) if name not in names]
    if not kept:
        raise CLIError(
            f"-X/--exclude-queues {','.join(names)} leaves no queue to consume: name the "
            f"queues to consume with -Q, or declare more in task_queues"
        )
    return kept


def no_prefetch(multiplier: int | None) -> int:
    """``--disable-prefetch``: a multiplier of 1, the one that holds nothing a free slot
    cannot start; a larger ``--prefetch-multiplier`` beside it is a contradiction."""
    if multiplier not in (None, 1):
        raise CLIError(
            f"--disable-prefetch and --prefetch-multiplier {multiplier} contradict each "
            f"other: give one of them"
        )
    return 1


def config_from_args(app: Any, args: list[str]) -> None:
    """Settings after the options (``worker -- .concurrency=4 task_acks_late=false``), read
    by ``app.config_from_cmdline`` in the ``worker`` namespace, as Celery's worker does."""
    if not args:
        return
    try:
        app.config_from_cmdline(args, namespace="worker")
    except ValueError as exc:
        raise CLIError(f"cannot read the settings after the options: {exc}") from exc


def set_time_limits(app: Any, hard: float | None, soft: float | None) -> None:
    """``--time-limit``/``--soft-time-limit``: this worker's ``task_time_limit`` and
    ``task_soft_time_limit``, as in Celery (a task's or a call's own limit still wins)."""
    if hard is not None:
        app.conf.task_time_limit = hard
    if soft is not None:
        app.conf.task_soft_time_limit = soft


def import_modules(values: Iterable[str]) -> None:
    """``-I a.tasks,b.tasks``: import more task modules, so the worker registers them."""
    for name in split_queues(values):
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name is None or not (name == exc.name or name.startswith(exc.name + ".")):
                raise  # a module missing inside the one named: its own traceback says which
            raise CLIError(
                f"-I/--include: no module named {exc.name!r} (modules are looked up from "
                f"the current directory and the Python path)"
            ) from exc


def purge_queues(app: Any, queues: Iterable[str]) -> str:
    """``--purge``: delete the ready and delayed messages of ``queues``; what was done."""
    names = list(queues)
    count = sum(app.broker.purge(queue) for queue in names)
    return (
        f"purged {count} message(s) from {', '.join(names)} (ready and delayed; dead "
        f"letters and messages held by running workers are kept)"
    )


def check_start(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    """``--pool-start-method``: ``fork`` is how the prefork pool starts its children."""
    if value == "spawn":
        raise click.BadParameter(SPAWN_REFUSED, ctx, param)


def _start_relay(app: Any) -> Any:
    """``--outbox-relay``: the outbox relay beside the worker (its code loaded only then)."""
    from celeriac.cli.outbox import RelayThread, relay_for

    return RelayThread(relay_for(app)).start()


def check_autoscale(
    ctx: click.Context, param: click.Parameter, value: str | None
) -> tuple[int, int] | None:
    """``--autoscale=MAX,MIN`` (MIN 0 when left out), as Celery reads it."""
    if value is None:
        return None
    try:
        return parse_autoscale(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx, param) from None


POSITIVE = click.IntRange(min=1)
SECONDS = click.FloatRange(min=0, min_open=True)


@click.command(
    "worker",
    short_help="Start a worker.",
    context_settings={"max_content_width": 100, "allow_extra_args": True},
)
@click.option("-l", "--loglevel", type=LOGLEVEL, help="Log level (default: WARNING).")
@click.option("-f", "--logfile", type=click.Path(dir_okay=False), help="Log here, not stderr.")
@click.option("-Q", "--queues", multiple=True, help="Queues to consume, comma-separated.")
@click.option(
    "-X", "--exclude-queues", multiple=True, metavar="QUEUES",
    help="Queues not to consume (of -Q, else of task_queues), comma-separated.",
)  # fmt: skip
@click.option("-c", "--concurrency", type=POSITIVE, help="Pool size (default: CPU count).")
@click.option(
    "--autoscale", callback=check_autoscale, metavar="MAX,MIN",
    help="Grow the pool up to MAX while tasks wait, shrink it to MIN when idle (e.g. 10,3).",
)  # fmt: skip
@click.option(
    "--pool-start-method", type=click.Choice(["fork", "spawn"]), callback=check_start,
    expose_value=False, help="How prefork children start: fork (the only one offered).",
)  # fmt: skip
@click.option(
    "-P",
    "--pool",
    callback=check_pool,
    metavar="[" + "|".join(POOLS) + "]",
    help="Pool implementation (default: prefork).",
)
@click.option("-n", "--hostname", help="Node name; %h, %n, %d, %i expand (e.g. w1@%h).")
@click.option(
    "-O",
    "--optimization",
    "optimization",
    type=click.Choice(["fair", "default"], case_sensitive=False),
    help="Accepted for Celery compatibility: celeriac scheduling is always fair.",
)
@click.option("--prefetch-multiplier", type=POSITIVE, help="Messages reserved per pool slot.")
@click.option(
    "--disable-prefetch", is_flag=True,
    help="Hold only messages a free slot can start (prefetch multiplier 1).",
)  # fmt: skip
@click.option("--max-tasks-per-child", type=POSITIVE, help="Replace a child after N tasks.")
@click.option("--max-memory-per-child", type=POSITIVE, help="Replace a child above N KiB RSS.")
@click.option(
    "-E", "--task-events", "--events", "task_events", is_flag=True,
    help="Send task events (worker_send_task_events); worker heartbeats are always sent.",
)  # fmt: skip
@click.option(
    "--heartbeat-interval", type=POSITIVE, metavar="SECONDS",
    help="Send a worker-heartbeat event every SECONDS (default: 2).",
)  # fmt: skip
@click.option("--without-gossip", is_flag=True, help="Accepted; celeriac has no gossip.")
@click.option("--without-mingle", is_flag=True, help="Accepted; celeriac has no mingle.")
@click.option(
    "--without-heartbeat",
    is_flag=True,
    help="Accepted; lease heartbeats stay on (needed to keep running tasks).",
)
@click.option(
    "--shutdown-timeout",
    type=click.FloatRange(min=0),
    help="Warm shutdown: seconds running tasks get before their messages are handed back.",
)
@click.option(
    "--time-limit", type=SECONDS, help="Hard time limit for every task (task_time_limit)."
)
@click.option(
    "--soft-time-limit", type=SECONDS,
    help="Soft time limit for every task (task_soft_time_limit).",
)  # fmt: skip
@click.option(
    "-I", "--include", multiple=True, metavar="MODULES",
    help="More task modules to import, comma-separated.",
)  # fmt: skip
@click.option(
    "--purge", "--discard", "purge", is_flag=True,
    help="Delete the waiting messages of the worker's queues before starting (unrecoverable).",
)  # fmt: skip
@click.option(
    "--metrics-port", type=click.IntRange(min=0, max=65535), metavar="PORT",
    help="Serve Prometheus metrics on this port at /metrics (worker_metrics_port).",
)  # fmt: skip
@click.option(
    "--outbox-relay", is_flag=True,
    help="Also publish the outbox table's committed rows (outbox_database_url).",
)  # fmt: skip
@click.option(
    "-B", "--beat", is_flag=True,
    help="Also run the periodic task scheduler in this process (see docs/beat.md).",
)  # fmt: skip
@click.option(
    "-s", "--schedule-filename", metavar="FILE",
    help="With -B: accepted for Celery; beat keeps its state in the broker.",
)  # fmt: skip
@click.option("--scheduler", metavar="MODULE:CLASS", help="With -B: the scheduler class.")
@click.option("--pidfile", type=click.Path(dir_okay=False), help="Write the pid here.")
@click.option("--uid", metavar="USER", help="Drop privileges to this user (name or id).")
@click.option("--gid", metavar="GROUP", help="Drop privileges to this group (name or id).")
@click.option("--umask", metavar="MASK", help="Create files with this umask (octal: 0027).")
@click.option("-D", "--detach", is_flag=True, help="Refused: run under a process manager.")
@refused_options
@click.pass_obj
def worker_command(
    obj: CLIContext,
    /,
    loglevel: str | None,
    logfile: str | None,
    optimization: str | None,
    without_gossip: bool,
    without_mingle: bool,
    without_heartbeat: bool,
    pidfile: str | None,
    detach: bool,
    disable_prefetch: bool,
    time_limit: float | None,
    soft_time_limit: float | None,
    include: tuple[str, ...],
    purge: bool,
    beat: bool,
    schedule_filename: str | None,
    scheduler: str | None,
    metrics_port: int | None,
    outbox_relay: bool,
    uid: str | None = None,
    gid: str | None = None,
    umask: str | None = None,
    exclude_queues: tuple[str, ...] = (),
    **options: Any,
) -> None:
    """Start a worker: consume the queues and run their tasks until shut down."""
    if detach:
        raise CLIError(
            "--detach is not supported: run the worker in the foreground under a process "
            "manager (systemd, supervisord, a container runtime), or start detached "
            "workers with pid and log files with 'celeriac multi start'"
        )
    if disable_prefetch:
        options["prefetch_multiplier"] = no_prefetch(options.get("prefetch_multiplier"))
    app = obj.load_app()
    config_from_args(app, click.get_current_context().args)
    set_time_limits(app, time_limit, soft_time_limit)
    import_modules(include)
    queues = split_queues(options.get("queues", ()))
    options["queues"] = exclude_queues_of(app, queues, exclude_queues)
    if beat:
        # Imported only with -B: the scheduler and its schedules stay out of other workers.
        from celeriac.cli.embedded_beat import embed_beat

        embed_beat(app, schedule_filename, scheduler)
    elif schedule_filename or scheduler:
        raise CLIError("-s/--schedule-filename and --scheduler go with -B (--beat)")
    kwargs = worker_kwargs(**options)
    # As Celery: after the app is loaded, before any file is written or the worker starts.
    apply_umask(umask)
    drop_privileges(uid, gid)
    nodename = kwargs.get("hostname") or default_hostname()
    logfile = node_format(logfile, nodename) if logfile else None
    pidfile = node_format(pidfile, nodename) if pidfile else None
    logging_taken = setup_logging(
        loglevel or obj.loglevel or "WARNING", logfile, app, no_color=obj.no_color
    )
    try:
        with Pidfile(pidfile) if pidfile else contextlib.nullcontext():
            ctx = click.get_current_context()  # the app's user options go to its bootsteps
            instance = Worker(app, step_options=user_values(ctx), **kwargs)
            if not obj.quiet:  # -q
                click.echo(render_banner(instance))
            log_compatibility_notes(optimization, without_gossip, without_mingle, without_heartbeat)
            if purge:
                click.echo(purge_queues(app, instance.queues))
            metrics = start_worker_metrics(instance, metrics_port)
            relay = _start_relay(app) if outbox_relay else None
            try:  # the banner went to the real stdout; from here prints are logged
                with redirected_stdouts(app.conf, enabled=not logging_taken):
                    code = instance.start()
            finally:
                if relay is not None:
                    relay.close()
                if metrics is not None:
                    metrics.close()
    except PidfileInUse as exc:
        raise CLIError(str(exc)) from exc
    except ImproperlyConfigured as exc:  # raised by Worker() before anything started
        raise ConfigError(str(exc)) from exc
    except BrokerConnectionError as exc:  # e.g. the embedded Redis could not start
        click.echo(f"Error: {exc}", err=True)
        sys.exit(EX_UNAVAILABLE)
    sys.exit(code)


__all__ = [
    "ConfigError",
    "WorkerKwargs",
    "check_pool",
    "config_from_args",
    "exclude_queues_of",
    "expand_hostname",
    "import_modules",
    "no_prefetch",
    "purge_queues",
    "set_time_limits",
    "split_queues",
    "worker_command",
    "worker_kwargs",
]
