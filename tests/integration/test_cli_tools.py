"""The operations commands as users run them (``celeriac ...`` in a subprocess) on real
Redis and RabbitMQ: ``migrate`` moves messages a worker on the destination then runs,
``multi`` starts two detached workers that run tasks and stop cleanly, ``list bindings``
shows a declared queue."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

from celeriac import Celery
from celeriac.cli.pidfile import process_alive, read_pid
from tests.integration.workers import TEST_ENV, WorkerProcess, project_env


@pytest.fixture
def proj(
    tmp_path: Path, redis_url: str, redis_prefix: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[ModuleType, dict[str, str]]]:
    env = project_env(tmp_path, redis_url, redis_prefix)
    for name in TEST_ENV:
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("proj", None)
    module = importlib.import_module("proj")
    yield module, env
    module.app.close()
    sys.modules.pop("proj", None)


def celeriac(cwd: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "celeriac", *args],
        cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def test_migrate_moves_messages_to_rabbitmq_where_a_worker_runs_them(
    tmp_path: Path, proj: tuple[ModuleType, dict[str, str]], amqp_url: str
) -> None:
    module, env = proj
    results = [module.add.delay(n, n) for n in range(5)]  # on Redis, nobody consuming
    other = module.add.apply_async((100, 1), queue="other")  # not in -Q: stays
    assert module.app.broker.queue_length("celery") == 5
    env_amqp = {**env, "CELERIAC_TEST_BROKER": amqp_url}
    done = celeriac(tmp_path, env, "-A", "proj", "migrate", env["CELERIAC_TEST_REDIS"],
                    amqp_url, "-Q", "celery", "-t", "0.5")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "5 message(s) moved" in done.stdout and "Migrating task 1: proj.add" in done.stdout
    assert module.app.broker.queue_length("celery") == 0
    assert module.app.broker.queue_length("other") == 1 and other.id
    worker = WorkerProcess.started(tmp_path, env_amqp, "-P", "threads", "-c", "2")
    try:
        assert [r.get(timeout=20) for r in results] == [0, 2, 4, 6, 8]
    finally:
        worker.stop()


def test_migrate_with_a_task_filter_and_a_limit_leaves_the_rest(
    tmp_path: Path, proj: tuple[ModuleType, dict[str, str]], redis_prefix: str
) -> None:
    module, env = proj
    for n in range(4):
        module.add.delay(n, n)
        module.where.delay()
    redis_url = env["CELERIAC_TEST_REDIS"]
    done = celeriac(tmp_path, env, "-A", "proj", "migrate", redis_url, redis_url,
                    "-Q", "celery:moved", "-T", "proj.add", "-n", "3", "-t", "0.5")  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "3 message(s) moved" in done.stdout
    assert module.app.broker.queue_length("moved") == 3
    assert module.app.broker.queue_length("celery") == 5  # 4 where + 1 add, given back


def test_multi_starts_two_workers_that_run_tasks_and_stop_cleanly(
    tmp_path: Path, proj: tuple[ModuleType, dict[str, str]]
) -> None:
    module, env = proj
    args = ("-A", "proj", "multi")
    node_opts = ("-P", "threads", "-c", "2", "--pidfile", f"{tmp_path}/run/%n.pid",
                 "--logfile", f"{tmp_path}/log/%n%I.log", "-l", "info")  # fmt: skip
    (tmp_path / "run").mkdir()
    started = celeriac(tmp_path, env, *args, "start", "2", *node_opts)
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert started.stdout.count("OK") == 2, started.stdout
        pids = [read_pid(tmp_path / "run" / f"celeriac{n}.pid") for n in (1, 2)]
        assert all(pid and process_alive(pid) for pid in pids)
        hosts = {module.where.delay().get(timeout=20)["hostname"] for _ in range(20)}
        assert all(h.startswith(("celeriac1@", "celeriac2@")) for h in hosts)
        assert [module.add.delay(n, 1).get(timeout=20) for n in range(4)] == [1, 2, 3, 4]
        names = celeriac(tmp_path, env, *args, "names", "2")
        assert [n.partition("@")[0] for n in names.stdout.split()] == ["celeriac1", "celeriac2"]
        restarted = celeriac(tmp_path, env, *args, "restart", "2", *node_opts)
        assert restarted.returncode == 0 and restarted.stdout.count("OK") == 4, restarted.stdout
        new_pids = [read_pid(tmp_path / "run" / f"celeriac{n}.pid") for n in (1, 2)]
        assert set(new_pids).isdisjoint(pids) and not any(map(process_alive, pids))
        pids = new_pids
        assert module.add.delay(5, 5).get(timeout=20) == 10
    finally:
        stopped = celeriac(tmp_path, env, *args, "stopwait", "2", *node_opts)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    assert stopped.stdout.count("OK") == 2, stopped.stdout
    assert not any(process_alive(pid) for pid in pids if pid)
    assert not any((tmp_path / "run").iterdir())  # each worker removed its pid file
    log = (tmp_path / "log" / "celeriac1.log").read_text()
    assert "celeriac1@" in log and "warm shutdown" in log


def test_list_bindings_on_rabbitmq_shows_a_declared_queue(
    tmp_path: Path, proj: tuple[ModuleType, dict[str, str]], amqp_url: str
) -> None:
    _, env = proj
    config = tmp_path / "bound.py"
    config.write_text(
        "import os\nfrom proj import app\napp.conf.task_queues = ['images', 'video']\n"
    )
    env = {**env, "CELERIAC_TEST_BROKER": amqp_url}
    done = celeriac(tmp_path, env, "-A", "bound:app", "list", "bindings")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["Queue", "Exchange", "Routing", "key"]
    assert any(line.split() == ["images", "(default)", "images"] for line in lines)
    namespace = env["CELERIAC_TEST_NAMESPACE"]
    assert any(line.split()[:2] == ["video", f"{namespace}.delay.deliver"] for line in lines)


def test_list_bindings_on_redis_says_there_are_none(
    tmp_path: Path, proj: tuple[ModuleType, dict[str, str]]
) -> None:
    _, env = proj
    done = celeriac(tmp_path, env, "-A", "proj", "list", "bindings")
    assert done.returncode == 0, done.stderr
    assert "has no exchanges or bindings" in done.stdout and "celery" in done.stdout
    assert os.environ.get("CELERIAC_TEST_BROKER", "") == ""


def test_a_queue_added_in_celeryd_after_setup_is_consumed(
    tmp_path: Path, proj: tuple[ModuleType, dict[str, str]]
) -> None:
    module, env = proj
    (tmp_path / "direct.py").write_text(
        "from celeriac.signals import celeryd_after_setup\n"
        "from proj import app\n\n\n"
        "@celeryd_after_setup.connect\n"
        "def setup_direct_queue(sender, instance, **kwargs):\n"
        "    instance.app.amqp.queues.select_add(f'{sender}.dq')\n"
    )
    worker = WorkerProcess.started(tmp_path, env, "-P", "threads", "-n", "w1@node", app="direct")
    try:
        result = module.add.apply_async((20, 22), queue="w1@node.dq")
        assert result.get(timeout=20) == 42
        assert module.add.delay(1, 1).get(timeout=20) == 2  # its -Q queue still consumed
    finally:
        worker.stop()


def test_migrate_from_rabbitmq_with_copy_leaves_the_messages_on_the_source(
    tmp_path: Path, proj: tuple[ModuleType, dict[str, str]], amqp_url: str
) -> None:
    module, env = proj
    queue = f"mig-{env['CELERIAC_TEST_NAMESPACE']}"
    source = Celery("src", broker=amqp_url)
    try:
        for n in range(3):
            source.send_task("proj.add", (n, n), queue=queue)
        source.broker.flush()  # held by RabbitMQ before the migrate process looks
        # The app is on Redis: its key prefix applies to the Redis side only.
        done = celeriac(tmp_path, env, "-A", "proj", "migrate", amqp_url,
                        env["CELERIAC_TEST_REDIS"], "-Q", queue, "--copy", "-t", "0.5")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert "3 message(s) copied" in done.stdout
        assert source.broker.queue_length(queue) == 3
        source.broker.purge(queue)
    finally:
        source.close()
    assert module.app.broker.queue_length(queue) == 3


def test_a_script_ending_in_worker_main_runs_a_worker(
    tmp_path: Path, proj: tuple[ModuleType, dict[str, str]]
) -> None:
    module, env = proj
    (tmp_path / "run_worker.py").write_text(
        "import sys\nfrom proj import app\n\n"
        "if __name__ == '__main__':\n    sys.exit(app.worker_main())\n"
    )
    process = subprocess.Popen(
        [sys.executable, "run_worker.py", "worker", "-P", "threads", "-l", "info"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert module.add.delay(20, 22).get(timeout=20) == 42
    finally:
        process.terminate()
        output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert "warm shutdown" in output
