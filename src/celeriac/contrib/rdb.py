"""``celery.contrib.rdb``: a pdb session over TCP, for debugging a task inside a worker.

Edge layer (standard library only). ``set_trace()`` in a task body listens on
``CELERIAC_RDB_HOST``:``CELERIAC_RDB_PORT`` (or Celery's ``CELERY_RDB_HOST``/``_PORT``;
default 127.0.0.1:6899; a prefork child adds its number, and a port in use moves on to
the next), prints where, and waits for a client (``telnet 127.0.0.1 6900``). The task's
``sys.stdin``/``sys.stdout`` are the connection while the session lasts; ``c`` or a
closed connection ends it and the task runs on, ``q`` ends it and stops tracing.
"""

from __future__ import annotations

import contextlib
import errno
import multiprocessing
import os
import pdb
import socket
import sys
from types import FrameType
from typing import IO, Any

from celeriac.exceptions import ImproperlyConfigured

DEFAULT_PORT = 6899
_current: list[Rdb | None] = [None]  # the active debugger of this process


def rdb_address() -> tuple[str, int]:
    """The host and base port, read from the environment at each call."""
    host = os.environ.get("CELERIAC_RDB_HOST") or os.environ.get("CELERY_RDB_HOST")
    raw = os.environ.get("CELERIAC_RDB_PORT") or os.environ.get("CELERY_RDB_PORT")
    try:
        port = int(raw) if raw else DEFAULT_PORT
    except ValueError:
        raise ImproperlyConfigured(
            f"CELERIAC_RDB_PORT (or CELERY_RDB_PORT) must be a port number, not {raw!r}"
        ) from None
    return host or "127.0.0.1", port


def _child_skew() -> int:
    """A prefork child's number (``ForkPoolWorker-3``: 3), so children use other ports."""
    _, _, number = multiprocessing.current_process().name.rpartition("-")
    return int(number) if number.isdigit() else 0


class Rdb(pdb.Pdb):
    """A ``Pdb`` whose terminal is a TCP client: made when one connects (it waits)."""

    me = "Remote Debugger"

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        port_search_limit: int = 100,
        port_skew: int = 0,
        out: IO[str] | None = None,
    ) -> None:
        default_host, default_port = rdb_address()
        self.host = default_host if host is None else host
        self.out = sys.stdout if out is None else out
        self.active = True
        self._prev_handles = sys.stdin, sys.stdout
        base = (default_port if port is None else port) + port_skew + _child_skew()
        self._sock, self.port = self._listen(self.host, base, port_search_limit)
        self.ident = f"{self.me}:{self.port}"
        self.say(
            f"{self.ident}: Ready to connect: telnet {self.host} {self.port}\n"
            f"Type `exit` in session to continue.\n{self.ident}: Waiting for client..."
        )
        self._client, address = self._sock.accept()
        self.remote_addr = ":".join(str(part) for part in address[:2])
        self.say(f"{self.ident}: Now in session with {self.remote_addr}.")
        self._handle = self._client.makefile("rw")
        sys.stdin = sys.stdout = self._handle  # the task's own prints go to the client too
        super().__init__(completekey="tab", stdin=self._handle, stdout=self._handle)
        self.use_rawinput = False  # read the socket, not the terminal readline knows

    def _listen(self, host: str, port: int, limit: int) -> tuple[socket.socket, int]:
        for candidate in range(port, port + limit):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, candidate))
            except OSError as exc:
                sock.close()
                if exc.errno in (errno.EADDRINUSE, errno.EINVAL):
                    continue
                raise
            sock.listen(1)
            return sock, candidate
        raise OSError(
            f"{self.me}: no free port in {port}..{port + limit - 1} on {host}: set "
            f"CELERIAC_RDB_PORT (or CELERY_RDB_PORT) to a free range"
        )

    def say(self, message: str) -> None:
        print(message, file=self.out, flush=True)

    def __enter__(self) -> Rdb:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._close_session()

    def _close_session(self) -> None:
        self.stdin, self.stdout = sys.stdin, sys.stdout = self._prev_handles
        if not self.active:
            return
        self.active = False
        for closable in (self._handle, self._client, self._sock):
            with contextlib.suppress(OSError):  # the client already went away
                closable.close()
        self.say(f"{self.ident}: Session with {self.remote_addr} ended.")

    def do_continue(self, arg: str) -> bool:
        self._close_session()
        self.set_continue()
        return True

    do_c = do_cont = do_continue

    def do_quit(self, arg: str) -> bool:
        self._close_session()
        self.set_quit()
        return True

    do_q = do_exit = do_quit

    def do_EOF(self, arg: str) -> bool:
        """The client closed the connection: the task runs on."""
        return self.do_continue(arg)

    def set_quit(self) -> None:
        # Stop tracing without raising BdbQuit into the task, as Celery's does.
        sys.settrace(None)


def debugger() -> Rdb:
    """The active debugger of this process, or a new one (which waits for a client)."""
    rdb = _current[0]
    if rdb is None or not rdb.active:
        rdb = _current[0] = Rdb()
    return rdb


def set_trace(frame: FrameType | None = None) -> Any:
    """Break here (or in ``frame``) and wait for a client to debug it."""
    if frame is None:
        frame = sys._getframe().f_back
    return debugger().set_trace(frame)


__all__ = ["DEFAULT_PORT", "Rdb", "debugger", "rdb_address", "set_trace"]
