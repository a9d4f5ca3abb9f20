"""A RabbitMQ node of a test's own (never the shared one on 5672): its own node name, ports,
Erlang cookie, data and log directories, and a ``rabbitmq.conf`` the test writes. It can be
crashed (SIGKILL) and started again on the same ports with the same data, as a machine
restart would leave it. The nodes of a cluster share one ``home`` (their Erlang cookie)."""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import service_missing
from tests.integration.conftest import free_port, free_ports

# Debian's real scripts: its /usr/sbin wrappers switch to the rabbitmq user and lose our
# environment. Elsewhere (a generic-unix install, Homebrew) the ones on PATH are real.
_DEBIAN_BIN = Path("/usr/lib/rabbitmq/bin")
# The AMQP 0-9-1 protocol header; a node that is up answers it with a Connection.Start frame.
_PROTOCOL_HEADER = b"AMQP\x00\x00\x09\x01"
_METHOD_FRAME = 1
# Erlang sizes its port table from the open-file limit: a very high one (a container's
# million) makes a node slow to start and large, a low one starves it of sockets.
OPEN_FILES = 20_000


def rabbitmq_tool(name: str) -> Path | None:
    if (_DEBIAN_BIN / name).exists():
        return _DEBIAN_BIN / name
    found = shutil.which(name)
    return Path(found) if found else None


def rabbitmq_tools() -> tuple[Path, Path]:
    """rabbitmq-server and rabbitmqctl, or the test is skipped (a failure when services are
    required)."""
    server, ctl = rabbitmq_tool("rabbitmq-server"), rabbitmq_tool("rabbitmqctl")
    if server is None or ctl is None or not shutil.which("erl"):
        service_missing("rabbitmq-server", "rabbitmq-server, rabbitmqctl or erl is not installed")
    assert server is not None and ctl is not None
    return server, ctl


@dataclass
class RabbitNode:
    """A node under ``directory``; ``config`` is the body of its ``rabbitmq.conf``, which
    names its listeners (``{port}`` in it becomes the node's AMQP port), and ``advanced``
    that of its ``advanced.config`` (Erlang terms, for settings ``rabbitmq.conf`` lacks)."""

    directory: Path
    config: str = "listeners.tcp.default = 127.0.0.1:{port}\n"
    label: str = "test"
    port: int = 0  # AMQP (0: a free one)
    process: subprocess.Popen[bytes] | None = None
    home: Path | None = None  # where its Erlang cookie is (None: a home of its own)
    dist_port: int = 0  # Erlang distribution: clustering and rabbitmqctl (0: a free one)
    advanced: str = ""  # the body of advanced.config (empty: none)

    def __post_init__(self) -> None:
        spare = [p for p in free_ports(3) if p not in (self.port, self.dist_port)]
        self.port = self.port or spare.pop()
        self.dist_port = self.dist_port or spare.pop()
        self.server, self.ctl = rabbitmq_tools()
        self.node = f"celeriac-{self.label}-{os.getpid()}-{self.port}@localhost"
        self.env = self._environment()

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}//"

    @property
    def log(self) -> Path:
        return self.directory / "log" / f"{self.node}.log"

    def _environment(self) -> dict[str, str]:
        self.directory.mkdir(parents=True, exist_ok=True)
        config, plugins, env_file = (
            self.directory / name for name in ("rabbitmq.conf", "plugins", "env.conf")
        )
        config.write_text(self.config.replace("{port}", str(self.port)))
        if self.advanced:
            (self.directory / "advanced.config").write_text(self.advanced)
        plugins.write_text("[].\n")  # no management plugin: a faster start, no HTTP port
        env_file.write_text("")  # not the machine's rabbitmq-env.conf (it names the shared node)
        home = self.home or self.directory / "home"
        home.mkdir(parents=True, exist_ok=True)
        return {
            **{k: v for k, v in os.environ.items() if not k.startswith(("RABBITMQ_", "ERL_"))},
            "HOME": str(home),  # our own Erlang cookie
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_PORT": str(free_port()),  # unused: the config names the listeners
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(self.directory / "mnesia"),
            "RABBITMQ_LOG_BASE": str(self.directory / "log"),
            "RABBITMQ_CONFIG_FILE": str(config),
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(self.directory / "advanced.config"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(plugins),
            "RABBITMQ_CONF_ENV_FILE": str(env_file),
            "RABBITMQ_PID_FILE": str(self.directory / "node.pid"),
            "ERL_EPMD_ADDRESS": "127.0.0.1",
            "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
        }

    def start(self, ready: bool = True) -> None:
        """Start the node; with ``ready``, return once it answers AMQP on its port."""
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        files = OPEN_FILES if hard == resource.RLIM_INFINITY else min(OPEN_FILES, hard)
        self.process = subprocess.Popen(
            ["sh", "-c", f'ulimit -n {files} && exec "$0"', str(self.server)], env=self.env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        )  # fmt: skip
        if ready:
            self.wait_ready()

    def wait_ready(self, timeout: float = 90.0) -> None:
        """Until the node answers the AMQP protocol header with Connection.Start."""
        deadline = time.monotonic() + timeout
        while not self._answers():
            tail = self.log.read_text(errors="replace")[-3000:] if self.log.exists() else ""
            assert self.process is not None and self.process.poll() is None, (
                f"the RabbitMQ node exited at start-up:\n{tail}"
            )
            assert time.monotonic() < deadline, f"the RabbitMQ node did not start:\n{tail}"
            time.sleep(0.1)  # another process's start-up: nothing to wait on but its port

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=2) as sock:
                sock.sendall(_PROTOCOL_HEADER)
                return sock.recv(1)[:1] == bytes([_METHOD_FRAME])
        except OSError:
            return False

    def rabbitmqctl(self, *args: str, timeout: float = 120) -> str:
        """``rabbitmqctl -n <this node> ARGS``; its output, or an AssertionError with it."""
        done = subprocess.run(
            [str(self.ctl), "-n", self.node, *args], env=self.env,
            capture_output=True, text=True, timeout=timeout,
        )  # fmt: skip
        assert done.returncode == 0, f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}"
        return done.stdout

    def crash(self) -> None:
        """SIGKILL the node's whole process group: a crash, nothing flushed or closed."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def restart(self) -> None:
        self.crash()
        self.start()

    def stop(self) -> None:
        """SIGTERM stops a node as cleanly as ``rabbitmqctl stop`` does, without starting a
        second Erlang VM (seconds saved); the command, then SIGKILL, if it does not."""
        process = self.process
        if process is None:
            return
        if process.poll() is None:
            process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            subprocess.run(
                [str(self.ctl), "-n", self.node, "stop"], env=self.env,
                capture_output=True, timeout=60,
            )  # fmt: skip
        self.crash()  # whatever is left of its group (epmd is shared and left alone)
