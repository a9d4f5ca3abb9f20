"""``--pidfile``: one worker per pid file, written at start and removed at exit.

Edge layer (cli); stdlib only. A file naming a live process refuses the start; one left
by a dead process (a crash, a SIGKILL) is stale and replaced. Creation is exclusive, so
two workers started at once with the same file cannot both win.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path


class PidfileInUse(Exception):
    """The pid file names a process that is still running."""


def process_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)  # signal 0: checks existence and permission, delivers nothing
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, owned by another user
        return True
    return True


def read_pid(path: Path) -> int | None:
    """The pid in the file, or None if it is missing, empty or not a number."""
    try:
        text = path.read_text().strip()
    except (FileNotFoundError, IsADirectoryError):
        return None
    return int(text) if text.isdigit() else None


class Pidfile:
    """``acquire()`` at start (raises ``PidfileInUse``), ``release()`` at exit; or ``with``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path).absolute()
        self.pid = os.getpid()

    def acquire(self) -> None:
        for _ in range(2):  # a second try after removing a stale file
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                self._remove_if_stale()
                continue
            with os.fdopen(fd, "w") as file:
                file.write(f"{self.pid}\n")
            return
        raise PidfileInUse(f"could not create pid file {self.path}")

    def _remove_if_stale(self) -> None:
        pid = read_pid(self.path)
        if pid is not None and pid != self.pid and process_alive(pid):
            raise PidfileInUse(
                f"pid file {self.path} names process {pid}, which is running: "
                f"is a worker already started with this pid file?"
            )
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()

    def __enter__(self) -> Pidfile:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def release(self) -> None:
        """Remove the file if it is still ours (never another worker's)."""
        if read_pid(self.path) == self.pid:
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()


__all__ = ["Pidfile", "PidfileInUse", "process_alive", "read_pid"]
