"""Servers the harness owns: a redis-server per role (the broker under fault, and a
separate one for execution records and results, so a broker restart never wipes them)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.integration.conftest import free_port, system_redis_server, wait_for_redis_server

# How the broker's redis-server keeps its data across a restart.
PERSISTENCE = {
    "aof": ("--appendonly", "yes", "--appendfsync", "everysec", "--save", ""),
    "off": ("--appendonly", "no", "--save", ""),
}


@dataclass
class RedisServer:
    """A redis-server on a spare port, started and restarted on the same port and dir."""

    directory: Path
    persistence: str = "off"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None

    def __post_init__(self) -> None:
        self.port = self.port or free_port()
        self.directory.mkdir(parents=True, exist_ok=True)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = system_redis_server()
        if binary is None:
            raise RuntimeError("the redis-server program is not on PATH")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.directory), "--logfile", str(self.directory / "redis.log"),
             *PERSISTENCE[self.persistence]],
        )  # fmt: skip
        wait_for_redis_server(self.port, self.stop)

    def stop(self) -> None:
        """SIGKILL: a crash, not a shutdown (no final save)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()
