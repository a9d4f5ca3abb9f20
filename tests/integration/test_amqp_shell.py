"""``celeriac amqp`` as users run it (a subprocess) on a real RabbitMQ: one-shot commands,
the shell reading commands from its input (get then ack on one channel), the broker's
refusal as an error, and a Redis app told the shell is RabbitMQ's."""

from __future__ import annotations

import subprocess
import sys
import uuid
from pathlib import Path

import pytest

APP = "from celeriac import Celeriac\napp = Celeriac('proj')\n"


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "proj.py").write_text(APP)
    return tmp_path


def celeriac(
    cwd: Path, broker: str, *args: str, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "proj", "-b", broker, "amqp", *args],
        cwd=cwd, input=stdin, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip


def test_one_shot_commands_declare_publish_get_and_delete(project: Path, amqp_url: str) -> None:
    queue, exchange = f"shell-{uuid.uuid4().hex[:8]}", f"shell-x-{uuid.uuid4().hex[:8]}"
    declared = celeriac(project, amqp_url, "queue.declare", queue)
    assert declared.returncode == 0, declared.stderr
    assert declared.stdout.splitlines() == [f"queue:{queue} messages:0 consumers:0", "OK"]
    assert "-> connected." in declared.stderr  # progress stays off stdout
    for args in (
        ("exchange.declare", exchange, "direct"),
        ("queue.bind", queue, exchange, "key"),
        ("basic.publish", "hello", exchange, "key"),
        ("basic.publish", "again", "", queue),  # the default exchange
    ):
        done = celeriac(project, amqp_url, *args)
        assert (done.returncode, done.stdout) == (0, "OK\n"), done.stderr
    counted = celeriac(project, amqp_url, "queue.declare", queue, "yes")
    assert f"queue:{queue} messages:2 consumers:0" in counted.stdout
    got = celeriac(project, amqp_url, "basic.get", queue, "yes")  # no_ack: taken
    assert "'body': 'hello'" in got.stdout and "'routing_key': 'key'" in got.stdout
    purged = celeriac(project, amqp_url, "queue.purge", queue)
    assert purged.stdout.splitlines() == ["1 messages deleted.", "OK"]
    empty = celeriac(project, amqp_url, "basic.get", queue)
    assert "No messages in queue. basic.publish something." in empty.stdout
    assert celeriac(project, amqp_url, "exchange.delete", exchange).returncode == 0
    deleted = celeriac(project, amqp_url, "queue.delete", queue)
    assert deleted.stdout.splitlines() == ["0 messages deleted.", "OK"]
    missing = celeriac(project, amqp_url, "queue.declare", queue, "yes")  # passive
    assert missing.returncode == 1
    assert f"Error: NOT_FOUND - no queue '{queue}'" in missing.stderr


def test_the_shell_gets_and_acks_on_one_channel(project: Path, amqp_url: str) -> None:
    queue = f"shell-{uuid.uuid4().hex[:8]}"
    lines = [
        f"queue.declare {queue}",
        f"basic.publish 'one message' '' {queue}",
        f"basic.get {queue}",
        "basic.ack 1",
        f"queue.declare no-such-{queue} yes",  # refused: the shell goes on, on a new channel
        "nonsense",
        f"queue.declare {queue} yes",
        f"queue.delete {queue}",
        "exit",
        f"queue.declare {queue}",  # after exit: not run
    ]
    done = celeriac(project, amqp_url, "repl", stdin="\n".join(lines) + "\n")
    assert done.returncode == 0, done.stderr
    assert "'body': 'one message'" in done.stdout and "'delivery_tag': 1" in done.stdout
    assert f"queue:{queue} messages:0 consumers:0" in done.stdout.split("'delivery_tag'")[1]
    assert "NOT_FOUND" in done.stderr and "no command 'nonsense'" in done.stderr
    assert "Commands: exchange.declare" in done.stdout
    assert done.stdout.rstrip().endswith("0 messages deleted.\nOK")  # acked: none left
    again = celeriac(project, amqp_url, stdin="")  # amqp alone: the shell, ended by EOF
    assert again.returncode == 0, again.stderr


def test_immediate_is_refused(project: Path, amqp_url: str) -> None:
    done = celeriac(project, amqp_url, "basic.publish", "x", "", "q", "no", "yes")
    assert done.returncode == 64 and "IMMEDIATE is not supported by RabbitMQ" in done.stderr


def test_a_redis_broker_is_told_the_shell_is_rabbitmqs(project: Path, redis_url: str) -> None:
    done = celeriac(project, redis_url, "queue.declare", "q")
    assert done.returncode == 64
    assert "RabbitMQ's admin shell" in done.stderr and "redis://" in done.stderr


def test_the_command_line_loads_without_aiormq(project: Path, amqp_url: str) -> None:
    """aiormq is the amqp extra's: without it, every other command works and this one
    says which extra to install."""
    script = (
        "import sys; sys.modules['aiormq'] = None\n"  # as if it were not installed
        "from celeriac.cli import main\n"
        f"main(['-A', 'proj', '-b', {amqp_url!r}, 'amqp', 'queue.declare', 'q'])\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=project, capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 64, done.stderr
    assert "pip install 'celeriac[amqp]'" in done.stderr
