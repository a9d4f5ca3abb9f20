"""``celeriac multi start|stop|stopwait|restart|kill|show|names``: several detached workers.

Edge layer (cli). ``start`` runs one ``celeriac worker`` per node in a session of its own
(detached from the terminal), each with a pid file (default ``%n.pid``) and a log file
(default ``%n%I.log``), and waits until each has written its pid file. ``stop`` sends
SIGTERM (a warm shutdown; ``-KILL``/``-9``/``-QUIT`` choose another signal) to the pid in
each node's file; ``stopwait`` also waits until they are gone; ``restart`` is stopwait then
start. Give ``stop`` the same --pidfile as ``start``: the files are how nodes are found.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import click

from celeriac.cli.base import CLIContext, CLIError
from celeriac.cli.multi_nodes import MultiUsageError, Node, build_nodes, find_signal, split_names
from celeriac.cli.pidfile import process_alive, read_pid

START_TIMEOUT = 30.0  # seconds a node gets to write its pid file
STOP_TIMEOUT = 120.0  # stopwait: seconds nodes get to finish a warm shutdown
COMMANDS = ("start", "stop", "stopwait", "restart", "kill", "show", "names")


def _global_args(obj: CLIContext) -> list[str]:
    """The group options this command was given, for each worker's command line."""
    args: list[str] = []
    for flag, value in (("-A", obj.app_spec), ("-b", obj.broker),
                        ("--result-backend", obj.result_backend)):  # fmt: skip
        if value:
            args += [flag, value]
    return args


def command_line(obj: CLIContext, node: Node) -> list[str]:
    """The full command that starts ``node``."""
    return [sys.executable, "-m", "celeriac", *_global_args(obj), *node.worker_argv(obj.loglevel)]


def _start(obj: CLIContext, nodes: Sequence[Node]) -> int:
    if not obj.app_spec:
        raise CLIError(
            "multi start: no app given: pass -A before multi (celeriac -A proj multi start 2), "
            "or set CELERIAC_APP"
        )
    click.echo("> Starting nodes...")
    failed = 0
    for node in nodes:
        click.echo(f"\t> {node.name}: ", nl=False)
        existing = read_pid(Path(node.pidfile))
        if existing is not None and process_alive(existing):
            click.echo(f"already running (pid {existing})")
            continue
        logfile = Path(node.logfile)
        logfile.parent.mkdir(parents=True, exist_ok=True)
        with open(os.devnull, "rb") as stdin, logfile.open("ab") as log:
            # A session of its own: the terminal's Ctrl-C and hang-up no longer reach it.
            process = subprocess.Popen(
                command_line(obj, node), stdin=stdin, stdout=log, stderr=log,
                start_new_session=True, close_fds=True,
            )  # fmt: skip
        ok = _wait_started(node, process)
        failed += not ok
        click.echo("OK" if ok else f"FAILED (see {logfile})")
    return 1 if failed else 0


def _wait_started(node: Node, process: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + START_TIMEOUT
    path = Path(node.pidfile)
    while time.monotonic() < deadline:
        if read_pid(path) == process.pid:
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.1)  # waiting on another process's file: nothing to block on
    return False


def _pids(nodes: Sequence[Node]) -> list[tuple[Node, int]]:
    found = []
    for node in nodes:
        pid = read_pid(Path(node.pidfile))
        if pid is None or not process_alive(pid):
            click.echo(f"> {node.name}: DOWN")
            continue
        found.append((node, pid))
    return found


def _signal_all(nodes: Sequence[Node], signame: str) -> list[tuple[Node, int]]:
    sent = []
    for node, pid in _pids(nodes):
        click.echo(f"\t> {node.name}: {signame} -> {pid}")
        try:
            os.kill(pid, signal.Signals[signame])
        except ProcessLookupError:
            click.echo(f"\t> {node.name}: DOWN")
            continue
        sent.append((node, pid))
    return sent


def _wait_gone(sent: Sequence[tuple[Node, int]]) -> bool:
    pending = list(sent)
    if pending:
        click.echo(f"> Waiting for {len(pending)} node(s) -> "
                   f"{', '.join(str(pid) for _, pid in pending)}...")  # fmt: skip
    deadline = time.monotonic() + STOP_TIMEOUT
    while pending and time.monotonic() < deadline:
        for node, pid in list(pending):
            if not process_alive(pid):
                click.echo(f"\t> {node.name}: OK")
                pending.remove((node, pid))
        time.sleep(0.1)  # another session's process: polling is the only way to see it go
    for node, pid in pending:
        click.echo(f"\t> {node.name}: still running (pid {pid}) after {STOP_TIMEOUT:.0f}s")
    return not pending


@click.command(
    "multi",
    short_help="Start, stop and restart several detached workers.",
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True,
                      "help_option_names": ["--help"]},
)  # fmt: skip
@click.argument("command", type=click.Choice(COMMANDS))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@click.option("--range-prefix", default="celeriac", show_default=True,
              help="Name prefix for numbered nodes (start 3: celeriac1..celeriac3).")  # fmt: skip
@click.pass_obj
def multi_command(
    obj: CLIContext, /, command: str, args: tuple[str, ...], range_prefix: str
) -> None:
    """Manage several workers at once: COMMAND NODES [WORKER OPTIONS].

    \b
    NODES: a number (3 -> celeriac1@host .. celeriac3@host) or names (image video, or
    full names foo@%h). WORKER OPTIONS go to every node (-c 4 -Q images); -c:1-3 10 or
    -c:image 10 sets one for some nodes. %n (short name), %h (node name), %d expand.
    Pid files default to %n.pid and log files to %n%I.log in the current directory.

    \b
      celeriac -A proj multi start 2 -c 4 -l info
      celeriac -A proj multi stopwait 2            (warm shutdown, wait until gone)
      celeriac -A proj multi restart 2 -c 4 -l info
      celeriac multi stop 2 -KILL                  (signal: -TERM default, -QUIT, -9)
      celeriac -A proj multi show 3 -Q:1 images -Q default
    """
    names, options = split_names(list(args))
    signame, options = find_signal(options, "SIGTERM")
    try:
        nodes = build_nodes(names, options, prefix=range_prefix)
    except MultiUsageError as exc:
        raise CLIError(f"multi {command}: {exc}") from exc
    code = 0
    if command == "names":
        click.echo("\n".join(node.name for node in nodes))
    elif command == "show":
        click.echo("\n".join(" ".join(command_line(obj, node)) for node in nodes))
    elif command == "start":
        code = _start(obj, nodes)
    elif command == "kill":
        _signal_all(nodes, "SIGKILL")
    elif command == "stop":
        click.echo("> Stopping nodes...")
        _signal_all(nodes, signame)
    else:  # stopwait, restart
        click.echo("> Stopping nodes...")
        code = 0 if _wait_gone(_signal_all(nodes, signame)) else 1
        if command == "restart" and code == 0:
            code = _start(obj, nodes)
    sys.exit(code)


__all__ = ["command_line", "multi_command"]
