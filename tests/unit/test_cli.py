"""The command line: ``-A`` loading, worker options -> ``Worker`` arguments, logging, banner.

A fake ``Worker`` records what the CLI built, so nothing here starts a real worker.
Apps live in modules written to ``tmp_path``; each test leaves ``sys.modules``,
``sys.path``, the root logger and the current app as it found them.
"""

from __future__ import annotations

import importlib
import io
import logging
import os
import re
import socket
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

import celeriac
from celeriac import Celery, _context, signals
from celeriac.app.logsetup import WorkerFormatter, resolve_level, setup_logging
from celeriac.cli import cli
from celeriac.cli import worker as worker_cli
from celeriac.cli.loading import AppLoadError, load_app
from celeriac.cli.pidfile import Pidfile, PidfileInUse
from celeriac.cli.worker import expand_hostname, split_queues, worker_kwargs
from celeriac.exceptions import ImproperlyConfigured
from celeriac.log import get_task_logger
from celeriac.worker.banner import mask_password, render_banner
from celeriac.worker.exitcodes import EX_CONFIG, EX_OK, EX_UNAVAILABLE, EX_USAGE

task_logger = get_task_logger(__name__)
LOG_LINE = re.compile(r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}: (\w+)/MainProcess\] (.*)$")


# -- fixtures -------------------------------------------------------------------------------
class FakeWorker:
    """Stands for ``Worker``: keeps its arguments, exposes what the banner reads."""

    created: list[FakeWorker] = []
    exit_code = EX_OK
    on_start: Any = None

    def __init__(self, app: Any, step_options: Any = None, **kwargs: Any) -> None:
        self.app = app
        self.kwargs = kwargs
        self.step_options = step_options  # the app's user options, for its bootsteps
        self.hostname = kwargs.get("hostname", "celeriac@test")
        self.queues = list(kwargs.get("queues", ["celery"]))
        self.concurrency = kwargs.get("concurrency", 2)
        self.pool_name = kwargs.get("pool", "prefork")
        self.prefetch = self.concurrency * kwargs.get("prefetch_multiplier", 1)
        self.send_events = kwargs.get("send_events", False)
        self.started = False
        FakeWorker.created.append(self)

    def start(self) -> int:
        self.started = True
        if FakeWorker.on_start is not None:
            FakeWorker.on_start(self)
        return FakeWorker.exit_code


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """Fresh fake worker; modules in ``tmp_path`` importable, the cwd an empty directory
    (the CLI must add it to the path itself); sys.path, sys.modules, the current app
    restored after."""
    monkeypatch.setattr(FakeWorker, "created", [])
    monkeypatch.setattr(FakeWorker, "exit_code", EX_OK)
    monkeypatch.setattr(FakeWorker, "on_start", None)
    monkeypatch.setattr(worker_cli, "Worker", FakeWorker)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    modules = set(sys.modules)
    current = _context._current_app
    yield
    for name in set(sys.modules) - modules:
        del sys.modules[name]
    _context.set_current_app(current)


@pytest.fixture(autouse=True)
def logging_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str | None]]:
    """CLI tests record the logging set-up instead of reconfiguring pytest's root logger."""
    calls: list[tuple[str, str | None]] = []
    monkeypatch.setattr(
        worker_cli,
        "setup_logging",
        lambda level, logfile, app, **_: calls.append((level, logfile)),
    )
    return calls


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    """The root logger, with its handlers and level put back (ours closed) after the test."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield root
    for handler in root.handlers:
        if handler not in handlers:
            handler.close()
    root.handlers[:] = handlers
    root.setLevel(level)


def write(root: Path, relative: str, source: str) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source))
    importlib.invalidate_caches()  # the import system caches directory listings


def run(*args: str, **kwargs: Any) -> Result:
    return CliRunner().invoke(cli, list(args), prog_name="celeriac", **kwargs)


APP = "from celeriac import Celery\n{name} = Celery('{main}', broker='memory://')\n"


# -- app loading ------------------------------------------------------------------------------
@pytest.mark.parametrize("attribute", ["app", "celery", "celeriac"])
def test_a_module_attribute_named_app_celery_or_celeriac_is_the_app(
    tmp_path: Path, attribute: str
) -> None:
    write(tmp_path, f"mod_{attribute}.py", APP.format(name=attribute, main="m"))
    assert load_app(f"mod_{attribute}") is sys.modules[f"mod_{attribute}"].__dict__[attribute]


def test_the_only_instance_in_a_module_is_the_app(tmp_path: Path) -> None:
    write(tmp_path, "only.py", APP.format(name="my_app", main="only") + "alias = my_app\n")
    assert load_app("only").main == "only"


@pytest.mark.parametrize("spec", ["exact:second", "exact.second"])
def test_module_colon_attr_and_module_dot_attr_name_the_app(tmp_path: Path, spec: str) -> None:
    write(
        tmp_path,
        "exact.py",
        APP.format(name="first", main="one") + "second = Celery('two', broker='memory://')\n",
    )
    assert load_app(spec).main == "two"


def test_a_dotted_attribute_after_the_colon(tmp_path: Path) -> None:
    write(
        tmp_path,
        "holder.py",
        "from celeriac import Celery\n"
        "class Holder:\n    app = Celery('held', broker='memory://')\n",
    )
    assert load_app("holder:Holder.app").main == "held"


@pytest.mark.parametrize("submodule", ["celery", "celeriac"])
def test_a_package_whose_submodule_defines_the_app(tmp_path: Path, submodule: str) -> None:
    package = f"pkg_{submodule}"
    write(tmp_path, f"{package}/__init__.py", "")
    write(tmp_path, f"{package}/{submodule}.py", APP.format(name="app", main=package))
    assert load_app(package).main == package


def test_the_celery_project_layout(tmp_path: Path) -> None:
    # Given Celery's documented layout: proj/celery.py, re-exported in proj/__init__.py
    write(tmp_path, "proj/__init__.py", "from .celery import app as celery_app\n")
    write(tmp_path, "proj/celery.py", APP.format(name="app", main="proj"))
    # Then every way of naming it finds the same app
    apps = {
        id(load_app(spec)) for spec in ("proj", "proj.celery", "proj.celery:app", "proj:celery_app")
    }
    assert len(apps) == 1


def test_a_missing_module_names_what_was_looked_for() -> None:
    with pytest.raises(AppLoadError, match=r"no module named 'nowhere\.app' nor 'nowhere'"):
        load_app("nowhere.app")


def test_a_module_without_an_app_lists_what_was_tried(tmp_path: Path) -> None:
    write(tmp_path, "empty_pkg/__init__.py", "import celeriac\n")
    with pytest.raises(AppLoadError) as info:
        load_app("empty_pkg")
    message = str(info.value)
    for tried in (
        "empty_pkg.app",
        "empty_pkg.celery",
        "empty_pkg.celeriac",
        "module empty_pkg.celeriac (absent)",
        "module empty_pkg.celery (absent)",
        "the only Celeriac instance in empty_pkg",
    ):
        assert tried in message


def test_two_apps_in_a_module_must_be_named(tmp_path: Path) -> None:
    write(tmp_path, "two.py", APP.format(name="a", main="a") + APP.format(name="b", main="b"))
    with pytest.raises(AppLoadError, match=r"several apps \(two:a, two:b\)"):
        load_app("two")


def test_an_attribute_that_is_missing_or_not_an_app(tmp_path: Path) -> None:
    write(tmp_path, "things.py", "number = 42\n")
    with pytest.raises(AppLoadError, match="has no attribute 'missing'"):
        load_app("things:missing")
    with pytest.raises(AppLoadError, match="it is a int, not a Celeriac app"):
        load_app("things:number")


def test_an_import_error_inside_the_module_is_not_reported_as_not_found(tmp_path: Path) -> None:
    write(tmp_path, "broken.py", "import not_installed_dependency\n")
    with pytest.raises(AppLoadError) as info:
        load_app("broken")
    assert "importing 'broken' failed" in str(info.value)
    assert "not_installed_dependency" in str(info.value)


def test_the_cli_finds_an_app_in_the_current_directory() -> None:
    write(Path.cwd(), "here.py", APP.format(name="app", main="here"))
    result = run("-A", "here", "worker")
    assert result.exit_code == EX_OK, result.output
    assert FakeWorker.created[0].app.main == "here"


def test_workdir_changes_where_the_app_is_looked_for(tmp_path: Path) -> None:
    write(tmp_path / "project", "there.py", APP.format(name="app", main="there"))
    result = run("--workdir", str(tmp_path / "project"), "-A", "there", "worker")
    assert result.exit_code == EX_OK, result.output
    assert FakeWorker.created[0].app.main == "there"


def test_the_app_can_come_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write(tmp_path, "fromenv.py", APP.format(name="app", main="fromenv"))
    monkeypatch.setenv("CELERIAC_APP", "fromenv")
    assert run("worker").exit_code == EX_OK
    assert FakeWorker.created[0].app.main == "fromenv"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["-A", "nowhere", "worker"], "cannot load app 'nowhere': no module named 'nowhere'"),
        (["worker"], "no app given: pass -A/--app"),
        (["-A", ":app", "worker"], "expected 'module', 'module.attr' or 'module:attr'"),
    ],
)
def test_app_loading_errors_exit_with_ex_usage(args: list[str], message: str) -> None:
    result = run(*args)
    assert result.exit_code == EX_USAGE
    assert message in result.output
    assert FakeWorker.created == []


def test_broker_and_result_backend_options_override_the_settings(tmp_path: Path) -> None:
    write(tmp_path, "over.py", APP.format(name="app", main="over"))
    result = run(
        "-A", "over", "-b", "redis://h:6379/1", "--result-backend", "cache+memory://", "worker"
    )
    assert result.exit_code == EX_OK, result.output
    conf = FakeWorker.created[0].app.conf
    assert (conf.broker_url, conf.result_backend) == ("redis://h:6379/1", "cache+memory://")


# -- worker options ---------------------------------------------------------------------------
@pytest.fixture
def project(tmp_path: Path) -> str:
    write(tmp_path, "proj.py", APP.format(name="app", main="proj"))
    return "proj"


def test_celery_command_line_becomes_worker_arguments(
    project: str, logging_calls: list[tuple[str, str | None]]
) -> None:
    result = run(
        "-A", project, "worker", "-l", "INFO", "-Q", "a,b", "-Q", "c", "-c", "4",
        "-P", "Threads", "-n", "w1@%h", "-O", "fair", "--prefetch-multiplier", "2",
        "--max-tasks-per-child", "100", "--max-memory-per-child", "200000", "-E",
        "--shutdown-timeout", "30", "--without-gossip", "--without-mingle",
        "--without-heartbeat", "-f", "worker.log",
    )  # fmt: skip
    assert result.exit_code == EX_OK, result.output
    [worker] = FakeWorker.created
    assert worker.started
    assert worker.kwargs == {
        "hostname": expand_hostname("w1@%h"),
        "queues": ["a", "b", "c"],
        "concurrency": 4,
        "pool": "threads",
        "prefetch_multiplier": 2,
        "max_tasks_per_child": 100,
        "max_memory_per_child": 200000,
        "send_events": True,
        "shutdown_timeout": 30.0,
    }
    assert logging_calls == [("INFO", "worker.log")]


def test_options_not_given_are_left_to_the_settings(
    project: str, logging_calls: list[tuple[str, str | None]]
) -> None:
    result = run("-A", project, "worker")
    assert result.exit_code == EX_OK, result.output
    assert FakeWorker.created[0].kwargs == {}
    assert logging_calls == [("WARNING", None)]  # Celery's default worker level


def test_the_group_loglevel_applies_unless_the_worker_sets_one(
    project: str, logging_calls: list[tuple[str, str | None]]
) -> None:
    assert run("-A", project, "-l", "debug", "worker").exit_code == EX_OK
    assert run("-A", project, "-l", "debug", "worker", "-l", "error").exit_code == EX_OK
    assert [level.upper() for level, _ in logging_calls] == ["DEBUG", "ERROR"]


def test_the_worker_exit_code_is_the_process_exit_code(project: str) -> None:
    FakeWorker.exit_code = EX_UNAVAILABLE
    assert run("-A", project, "worker").exit_code == EX_UNAVAILABLE


@pytest.mark.parametrize("pool", ["eventlet", "gevent", "GEVENT"])
def test_eventlet_and_gevent_are_refused_with_the_alternatives(project: str, pool: str) -> None:
    result = run("-A", project, "worker", "-P", pool)
    assert result.exit_code == EX_USAGE
    assert f"no {pool.lower()} pool" in result.output
    assert "-P threads" in result.output and "-P asyncio" in result.output
    assert FakeWorker.created == []


def test_pool_names(project: str) -> None:
    assert run("-A", project, "worker", "-P", "processes").exit_code == EX_OK
    assert run("-A", project, "worker", "-P", "solo").exit_code == EX_OK
    assert [w.kwargs["pool"] for w in FakeWorker.created] == ["prefork", "solo"]
    result = run("-A", project, "worker", "-P", "greenlets")
    assert result.exit_code == EX_USAGE
    assert "prefork, threads, asyncio, solo" in result.output


@pytest.mark.parametrize(
    "args",
    [
        ["-c", "0"],
        ["-O", "fastest"],
        ["--bogus"],
        ["-l", "verbose"],
        ["--prefetch-multiplier", "x"],
    ],
)
def test_bad_options_exit_with_ex_usage(project: str, args: list[str]) -> None:
    assert run("-A", project, "worker", *args).exit_code == EX_USAGE
    assert FakeWorker.created == []


def test_detach_is_refused(project: str) -> None:
    result = run("-A", project, "worker", "--detach")
    assert result.exit_code == EX_USAGE
    assert "process manager" in result.output
    assert FakeWorker.created == []


def test_settings_the_worker_rejects_exit_with_ex_config(
    project: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(app: Any, **kwargs: Any) -> None:
        raise ImproperlyConfigured("unknown pool 'x'")

    monkeypatch.setattr(worker_cli, "Worker", refuse)
    pidfile = Path("worker.pid")
    result = run("-A", project, "worker", "--pidfile", str(pidfile))
    assert result.exit_code == EX_CONFIG
    assert "unknown pool 'x'" in result.output
    assert not pidfile.exists()


def test_the_banner_is_printed_before_the_worker_starts(project: str) -> None:
    result = run("-A", project, "worker", "-Q", "reports")
    assert "celeriac 0.1.0 worker" in result.output
    assert re.search(r"queues\s+reports", result.output)


def test_worker_kwargs_is_pure() -> None:
    assert worker_kwargs() == {}
    assert worker_kwargs(queues=[" a, ,b", "a"], concurrency=1) == {
        "queues": ["a", "b"],
        "concurrency": 1,
    }
    assert split_queues(["x,y", "z"]) == ["x", "y", "z"]


def test_hostname_expansion() -> None:
    expand = expand_hostname
    assert expand("w1@%h", hostname="box.example.com", pid=7) == "w1@box.example.com"
    assert expand("%n@%d", hostname="box.example.com", pid=7) == "box@example.com"
    assert expand("w%i-%I@%n", hostname="box", pid=7) == "w7-7@box"
    assert expand("100%%@%h %x", hostname="box", pid=7) == "100%@box %x"
    assert expand("w@%h", pid=7) == "w@" + socket.gethostname()


# -- pidfile ----------------------------------------------------------------------------------
def test_the_pidfile_holds_our_pid_while_running_and_is_removed_after(
    project: str, tmp_path: Path
) -> None:
    pidfile = tmp_path / "worker.pid"
    seen: list[str] = []
    FakeWorker.on_start = lambda worker: seen.append(pidfile.read_text().strip())
    result = run("-A", project, "worker", "--pidfile", str(pidfile))
    assert result.exit_code == EX_OK, result.output
    assert seen == [str(os.getpid())]
    assert not pidfile.exists()


def test_a_pidfile_naming_a_live_process_refuses_the_start(project: str, tmp_path: Path) -> None:
    pidfile = tmp_path / "worker.pid"
    pidfile.write_text(f"{os.getppid()}\n")  # our parent: alive
    result = run("-A", project, "worker", "--pidfile", str(pidfile))
    assert result.exit_code == EX_USAGE
    assert f"names process {os.getppid()}, which is running" in result.output
    assert FakeWorker.created == []
    assert pidfile.read_text() == f"{os.getppid()}\n"  # another worker's file is left alone


def test_a_stale_pidfile_is_replaced(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    pidfile = tmp_path / "stale.pid"
    pidfile.write_text(f"{child.pid}\n")
    lock = Pidfile(pidfile)
    lock.acquire()
    assert pidfile.read_text() == f"{os.getpid()}\n"
    with pytest.raises(PidfileInUse):  # a second claim while the first holds it
        other = Pidfile(pidfile)
        other.pid = os.getppid()
        other.acquire()
    lock.release()
    assert not pidfile.exists()


# -- help and version -------------------------------------------------------------------------
def test_version() -> None:
    result = run("--version")
    assert result.exit_code == 0
    assert celeriac.__version__ in result.output


def test_help_shows_the_options() -> None:
    main_help = run("--help").output
    for option in ("-A, --app", "-b, --broker", "--result-backend", "--workdir", "worker"):
        assert option in main_help
    worker_help = run("worker", "--help").output
    for option in (
        "-l, --loglevel", "-Q, --queues", "-c, --concurrency", "-P, --pool", "-n, --hostname",
        "-O", "--prefetch-multiplier", "--max-tasks-per-child", "--max-memory-per-child",
        "-E, --task-events", "--without-gossip", "--without-mingle", "--without-heartbeat",
        "--logfile", "--pidfile", "--shutdown-timeout", "--detach", "always fair",
    ):  # fmt: skip
        assert option in worker_help, option


def test_help_works_even_when_the_app_cannot_load() -> None:
    result = run("-A", "nowhere", "worker", "--help")
    assert result.exit_code == 0
    assert "--concurrency" in result.output


def test_python_dash_m_celeriac_runs_the_same_cli() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "celeriac", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "-A, --app" in done.stdout and "worker" in done.stdout


# -- logging ----------------------------------------------------------------------------------
def test_worker_logging_uses_the_task_format_inside_tasks_only(
    app: Celery, root_logger: logging.Logger, monkeypatch: pytest.MonkeyPatch
) -> None:
    stream = io.StringIO()
    monkeypatch.setattr(sys, "stderr", stream)

    @app.task
    def add(x: int, y: int) -> int:
        task_logger.info("adding %s and %s", x, y)
        return x + y

    setup_logging("info", None, app)
    task_id = add.apply((2, 3)).id
    task_logger.info("outside any task")
    logging.getLogger("celeriac.worker").debug("below the level")

    lines = stream.getvalue().splitlines()
    matches = [LOG_LINE.match(line) for line in lines]
    assert all(matches), lines
    messages = [m.groups() for m in matches if m and ("adding" in m[2] or "outside" in m[2])]
    assert messages == [
        ("INFO", f"{add.name}[{task_id}]: adding 2 and 3"),
        ("INFO", "outside any task"),
    ]
    assert "below the level" not in stream.getvalue()


def test_the_formatter_picks_the_format_by_task_id() -> None:
    formatter = WorkerFormatter(
        "plain: %(message)s", "task %(task_name)s[%(task_id)s]: %(message)s"
    )
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hi", None, None)
    assert formatter.format(record) == "plain: hi"
    record.task_id, record.task_name = "???", "???"
    assert formatter.format(record) == "plain: hi"
    record.task_id, record.task_name = "abc", "proj.add"
    assert formatter.format(record) == "task proj.add[abc]: hi"


def test_logging_to_a_file(app: Celery, root_logger: logging.Logger, tmp_path: Path) -> None:
    logfile = tmp_path / "worker.log"
    setup_logging("DEBUG", str(logfile), app)
    logging.getLogger("celeriac.worker").debug("Task proj.add[1] received")
    for handler in root_logger.handlers:
        handler.flush()
    [line] = logfile.read_text().splitlines()
    match = LOG_LINE.match(line)
    assert match is not None and match.groups() == ("DEBUG", "Task proj.add[1] received")


def test_a_setup_logging_receiver_takes_over(app: Celery, root_logger: logging.Logger) -> None:
    before = list(root_logger.handlers)
    calls: list[dict[str, Any]] = []
    after: list[Any] = []

    def receiver(**kwargs: Any) -> None:
        calls.append(kwargs)

    def after_receiver(**kwargs: Any) -> None:
        after.append(kwargs)

    signals.setup_logging.connect(receiver, weak=False)
    signals.after_setup_logger.connect(after_receiver, weak=False)
    try:
        setup_logging("info", None, app)
    finally:
        signals.setup_logging.disconnect(receiver)
        signals.after_setup_logger.disconnect(after_receiver)
    assert calls[0]["loglevel"] == logging.INFO
    assert root_logger.handlers == before and after == []


def test_after_setup_logger_fires_with_the_configured_root(
    app: Celery, root_logger: logging.Logger
) -> None:
    seen: list[Any] = []

    def receiver(logger: Any, loglevel: int, **kwargs: Any) -> None:
        seen.append((logger, loglevel))

    signals.after_setup_logger.connect(receiver, weak=False)
    try:
        setup_logging("warning", None, app)
    finally:
        signals.after_setup_logger.disconnect(receiver)
    assert seen == [(root_logger, logging.WARNING)]
    [handler] = root_logger.handlers
    assert isinstance(handler.formatter, WorkerFormatter)


def test_without_hijack_existing_root_handlers_are_kept(
    app: Celery, root_logger: logging.Logger
) -> None:
    app.conf.worker_hijack_root_logger = False
    mine = logging.NullHandler()
    root_logger.addHandler(mine)
    setup_logging("error", None, app)
    assert mine in root_logger.handlers
    assert not any(isinstance(h.formatter, WorkerFormatter) for h in root_logger.handlers)
    assert root_logger.level == logging.ERROR


def test_level_names() -> None:
    assert [resolve_level(n) for n in ("debug", "Info", "WARN", "fatal", "10", 20)] == [
        logging.DEBUG, logging.INFO, logging.WARNING, logging.CRITICAL, 10, 20,
    ]  # fmt: skip
    with pytest.raises(ValueError, match="unknown log level 'loud'"):
        resolve_level("loud")


# -- banner -----------------------------------------------------------------------------------
def test_the_banner_describes_the_worker_without_passwords() -> None:
    app = Celery(
        "shop",
        broker="redis://:s3cret@redis.internal:6379/0",
        backend="redis://admin:hunter2@redis.internal:6379/1",
        set_as_current=False,
    )

    @app.task
    def refund(order: int) -> None: ...

    @app.task(name="shop.email")
    def email() -> None: ...

    worker = FakeWorker(app, hostname="w1@box", queues=["a", "b"], concurrency=4, pool="threads")
    banner = render_banner(worker)
    assert "s3cret" not in banner and "hunter2" not in banner
    expected = {
        "node": "w1@box",
        "app": "shop",
        "transport": "redis://:**@redis.internal:6379/0",
        "results": "redis://admin:**@redis.internal:6379/1",
        "concurrency": "4 (threads pool)",
        "prefetch": "4 (concurrency 4 x multiplier 1)",
        "task events": "OFF (enable -E to monitor tasks in this worker)",
        "queues": "a, b",
        "defaults": "acks late ON, reject on worker lost ON, prefetch multiplier 1",
    }
    for label, value in expected.items():
        assert re.search(rf"^  {label}\s+{re.escape(value)}$", banner, re.MULTILINE), label
    assert f"celeriac {celeriac.__version__}" in banner and "Python" in banner
    tasks = banner.split("registered tasks (2):\n")[1].splitlines()
    assert tasks == ["  - shop.email", f"  - {refund.name}"]


def test_the_banner_of_an_app_without_results_or_tasks() -> None:
    app = Celery("bare", broker="memory://", set_as_current=False)
    worker = FakeWorker(app, send_events=True)
    banner = render_banner(worker)
    assert re.search(r"^  results\s+disabled$", banner, re.MULTILINE)
    assert re.search(r"^  task events\s+ON$", banner, re.MULTILINE)
    assert "memory:// (in-process" in banner
    assert "registered tasks (0):" in banner


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("amqp://guest:guest@rabbit//", "amqp://guest:**@rabbit//"),
        ("redis://localhost:6379/0", "redis://localhost:6379/0"),
        ("sentinel://:a@h1:26379;sentinel://:b@h2:26379", "sentinel://:**@h1:26379;sentinel://:**@h2:26379"),
        ("db+postgresql://u:p%40ss@db/x", "db+postgresql://u:**@db/x"),
    ],
)  # fmt: skip
def test_mask_password(url: str, masked: str) -> None:
    assert mask_password(url) == masked
