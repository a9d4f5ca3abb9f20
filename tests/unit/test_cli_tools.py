"""The operations commands and the app entry points that need no broker server:
``upgrade settings``, ``report``, ``shell``, ``multi``'s node parsing, ``app.start``/
``worker_main``, ``config_from_cmdline``, ``app.amqp.queues`` and the connection handles."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from celeriac import Celery
from celeriac.cli import cli
from celeriac.cli.multi_nodes import MultiUsageError, build_nodes, find_signal, split_names
from celeriac.config.hints import UnknownSettingWarning
from celeriac.exceptions import QueueNotFound
from tests.conftest import take_messages

ROOT = Path(__file__).resolve().parents[2]

PROJECT = textwrap.dedent(
    """
    import warnings

    from celeriac import Celery

    app = Celery(
        "proj",
        broker="redis://:s3cret@broker.example:6379/0",
        backend="redis://user:hunter2@results.example/1",
        broker_transport_options={"visibility_timeout": 60, "password": "hidden"},
        task_default_queue="jobs",
        worker_prefetch_multiplier=1,
    )
    with warnings.catch_warnings():  # a name celeriac does not read: it warns
        warnings.simplefilter("ignore")
        app.conf.secret_api_token = "abc"


    @app.task
    def add(x, y):
        return x + y
    """
)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    (tmp_path / "proj.py").write_text(PROJECT)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    sys.modules.pop("proj", None)
    yield tmp_path
    sys.modules.pop("proj", None)


# -- upgrade settings -----------------------------------------------------------------------
OLD = 'BROKER_URL = "redis://"\r\nCELERY_ALWAYS_EAGER=True\r\nCELERYD_CONCURRENCY: int = 4\r\n'
OLD += 'CELERY_TASK_RESULT_EXPIRES = 60\r\nURL = os.environ["BROKER_URL"]\r\nCUSTOM = 1\r\n'


def test_upgrade_settings_renames_old_names_and_keeps_a_backup(tmp_path: Path) -> None:
    settings = tmp_path / "celeryconfig.py"
    settings.write_bytes(OLD.encode())
    result = CliRunner().invoke(cli, ["upgrade", "settings", str(settings)])
    assert result.exit_code == 0, result.output
    assert settings.read_bytes().decode() == (
        'broker_url = "redis://"\r\ntask_always_eager=True\r\nworker_concurrency: int = 4\r\n'
        'result_expires = 60\r\nURL = os.environ["BROKER_URL"]\r\nCUSTOM = 1\r\n'
    )  # line endings kept; a name inside a string (an environment variable) left alone
    assert (tmp_path / "celeryconfig.py.orig").read_bytes().decode() == OLD
    assert "CELERY_ALWAYS_EAGER -> task_always_eager" in result.output


def test_upgrade_settings_for_django_writes_the_celery_prefixed_names(tmp_path: Path) -> None:
    settings = tmp_path / "settings.py"
    settings.write_text(
        "BROKER_URL = 'x'\nCELERY_ALWAYS_EAGER = True\nCELERY_RESULT_BACKEND = 'y'\n"
    )
    result = CliRunner().invoke(cli, ["upgrade", "settings", "--django", "--no-backup",
                                      str(settings)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert settings.read_text() == (
        "CELERY_BROKER_URL = 'x'\nCELERY_TASK_ALWAYS_EAGER = True\nCELERY_RESULT_BACKEND = 'y'\n"
    )
    assert not (tmp_path / "settings.py.orig").exists()


def test_upgrade_settings_leaves_a_new_style_file_untouched(tmp_path: Path) -> None:
    settings = tmp_path / "celeryconfig.py"
    settings.write_text("broker_url = 'x'\ntask_acks_late = True\n")
    result = CliRunner().invoke(cli, ["upgrade", "settings", str(settings)])
    assert result.exit_code == 0 and "nothing to change" in result.output
    assert not (tmp_path / "celeryconfig.py.orig").exists()


# -- report ---------------------------------------------------------------------------------
def test_report_masks_passwords_and_secrets_and_lists_changed_settings(project: Path) -> None:
    result = CliRunner().invoke(cli, ["-A", "proj", "report"])
    assert result.exit_code == 0, result.output
    out = result.output
    assert "celeriac:" in out and "py:" in out and "system:" in out
    assert "s3cret" not in out and "hunter2" not in out and "hidden" not in out
    assert "abc" not in out
    assert "transport:redis://:********@broker.example:6379/0" in out
    assert "results:redis://user:********@results.example/1" in out
    assert "task_default_queue: 'jobs'" in out and "secret_api_token: '********'" in out
    assert "'visibility_timeout': 60" in out
    assert "worker_prefetch_multiplier" not in out  # set, but to its default


# -- shell ----------------------------------------------------------------------------------
def test_shell_starts_python_with_the_app_tasks_and_canvas_names(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "proj", "shell", "--python"],
        input="print(app.main, celery is app, add.name, chain.__name__, Task.__name__)\n",
        capture_output=True, text=True, timeout=60, check=False, cwd=project,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "proj True proj.add chain Task" in done.stdout


def test_shell_without_tasks_and_a_missing_ipython_is_refused_clearly(project: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "celeriac", "-A", "proj", "shell", "--python", "-T"],
        input="print('add' in dir())\n", capture_output=True, text=True, timeout=60,
        check=False, cwd=project,
    )  # fmt: skip
    assert "False" in done.stdout
    result = CliRunner().invoke(cli, ["-A", "proj", "shell", "--bpython"])
    assert result.exit_code == 64 and "bpython is not installed" in result.output


# -- app.start, worker_main, config_from_cmdline ----------------------------------------------
def test_app_start_runs_a_command_for_the_app_without_A(
    app: Celery, capsys: pytest.CaptureFixture[str]
) -> None:
    app.conf.task_default_queue = "from-start"
    assert app.start(["report"]) == 0
    assert "task_default_queue: 'from-start'" in capsys.readouterr().out
    assert app.start(["no-such-command"]) == 64  # a usage error, as on the console


def test_worker_main_needs_the_worker_command(app: Celery) -> None:
    with pytest.raises(ValueError, match="'worker' command"):
        app.worker_main(["report"])


def test_config_from_cmdline_reads_celery_s_forms(app: Celery) -> None:
    with pytest.warns(UnknownSettingWarning, match="custom_name"):
        app.config_from_cmdline(
        ["worker.concurrency=3", "TASK_ACKS_LATE=false", ".default_queue=q",
         "task_default_priority=(int)5", "broker_transport_options={\"a\": 1}",
         "result_expires=1.5", "custom_name=(string)x"],
        namespace="task",
    )  # fmt: skip
    conf = app.conf
    assert conf.worker_concurrency == 3 and conf.task_acks_late is False
    assert conf.task_default_queue == "q" and conf.task_default_priority == 5
    assert conf.broker_transport_options == {"a": 1} and conf.result_expires == 1.5
    assert conf["custom_name"] == "x"


@pytest.mark.parametrize(
    ("arg", "error"),
    [
        ("worker_concurency=3", "did you mean 'worker_concurrency'"),
        ("worker_concurrency=three", "cannot read 'three'"),
        ("task_acks_late=maybe", "not a boolean"),
        ("worker_concurrency", "name=value"),
        ("x=(complex)1", "unknown type"),
    ],
)
def test_config_from_cmdline_refuses_what_it_cannot_read(app: Celery, arg: str, error: str) -> None:
    with pytest.raises(ValueError, match=error):
        app.config_from_cmdline([arg])


def test_worker_reads_settings_after_its_options(project: Path) -> None:
    result = CliRunner().invoke(cli, ["-A", "proj", "worker", "--", "worker_concurency=2"])
    assert result.exit_code == 64
    assert "did you mean 'worker_concurrency'" in result.output


# -- app.amqp ---------------------------------------------------------------------------------
def test_amqp_queues_follow_task_queues_and_select_add(app: Celery) -> None:
    app.conf.task_queues = ["images", {"name": "video"}]
    queues = app.amqp.queues
    assert list(queues) == ["images", "video"] and app.amqp.default_queue == "celery"
    queues.select(["images"])
    assert list(queues.consume_from) == ["images"]
    queues.select_add("direct")
    assert list(queues.consume_from) == ["images", "direct"] and "direct" in queues
    queues.deselect("images")
    assert list(queues.consume_from) == ["direct"]
    assert queues["created"] == "created"  # task_create_missing_queues (on by default)
    assert app.amqp.router is app.router


def test_amqp_queues_without_task_queues_and_with_missing_queues_off(app: Celery) -> None:
    app.conf.task_create_missing_queues = False
    assert list(app.amqp.queues) == ["celery"]
    with pytest.raises(QueueNotFound, match="task_create_missing_queues"):
        app.amqp.queues["other"]
    with pytest.raises(TypeError, match="exchange"):
        app.amqp.queues.add("q", exchange="x")
    assert isinstance(app.amqp.Queues(["a"]), app.amqp.Queues)


# -- connection handles and producer_or_acquire -------------------------------------------------
def make_add(app: Celery) -> Any:
    @app.task(name="t.add")
    def add(x: int, y: int) -> int:
        return x + y

    return add


def test_producer_or_acquire_and_the_app_s_own_connection_send_to_the_app_broker(
    app: Celery,
) -> None:
    add = make_add(app)
    with app.producer_or_acquire() as producer:
        add.apply_async((1, 2), producer=producer)
    with app.connection_for_write() as conn:
        assert conn.broker is app.broker and conn.ensure_connection() is conn
        add.apply_async((3, 4), connection=conn)
    assert conn.as_uri() == "memory://" and "app broker" in repr(conn)
    assert [m.task_name for m, _ in take_messages(app)] == ["t.add", "t.add"]


def test_a_connection_to_another_broker_receives_the_calls_sent_through_it(app: Celery) -> None:
    add = make_add(app)
    other = app.connection("redis://:pw@elsewhere.example:6399/0")
    assert other.as_uri() == "redis://:**@elsewhere.example:6399/0"
    assert other.as_uri(include_password=True).endswith(":pw@elsewhere.example:6399/0")
    memory = app.connection_for_read("memory://?other")
    with memory:
        add.apply_async((1, 1), connection=memory)
        assert memory.broker is not app.broker and memory.broker.queue_length("celery") == 1
    assert app.broker.queue_length("celery") == 0


def test_celerys_older_connection_names_hand_out_the_same_handles(app: Celery) -> None:
    add = make_add(app)
    with app.connection_or_acquire() as conn:  # none given: a handle on the app's broker
        assert conn.broker is app.broker
        add.apply_async((1, 1), connection=conn)
    other = app.broker_connection("memory://?older")
    with app.default_connection(other) as given:  # the one given, left open after
        assert given is other
        add.apply_async((2, 2), connection=given)
    assert other.broker.queue_length("celery") == 1
    other.release()
    with app.default_producer() as producer:
        assert producer is app.producer
    assert [m.task_name for m, _ in take_messages(app)] == ["t.add"]


# -- multi's nodes --------------------------------------------------------------------------
def test_multi_nodes_from_a_count_names_and_scoped_options() -> None:
    names, options = split_names(["3", "-c", "3", "-c:1-2", "10", "--queues:3=q3", "-l", "info"])
    nodes = build_nodes(names, options, hostname="h.example.com")
    assert [n.name for n in nodes] == ["celeriac1@h.example.com", "celeriac2@h.example.com",
                                       "celeriac3@h.example.com"]  # fmt: skip
    argv = nodes[0].worker_argv()
    assert argv[:3] == ["worker", "-n", "celeriac1@h.example.com"]
    assert argv[3:7] == ["--pidfile", "celeriac1.pid", "--logfile", "celeriac1.log"]
    assert nodes[0].options == ["-l", "info", "-c", "10"]
    assert nodes[2].options == ["-c", "3", "-l", "info", "--queues=q3"]
    named = build_nodes(["image", "video@%h"], ["--pidfile=/run/%n.pid", "-f", "/log/%h.log",
                                               "-c:image", "5"], hostname="h")  # fmt: skip
    assert [n.name for n in named] == ["image@h", "video@h"]
    assert named[0].pidfile == "/run/image.pid" and named[1].logfile == "/log/video@h.log"
    assert named[0].worker_argv("info")[-4:] == ["-l", "info", "-c", "5"]


def test_multi_signal_and_bad_arguments() -> None:
    assert find_signal(["-c", "2", "-KILL"], "SIGTERM") == ("SIGKILL", ["-c", "2"])
    assert find_signal(["-9"], "SIGTERM")[0] == "SIGKILL"
    assert find_signal([], "SIGTERM")[0] == "SIGTERM"
    with pytest.raises(MultiUsageError, match="name the nodes"):
        build_nodes([], [])
    with pytest.raises(MultiUsageError, match="VALUE"):
        build_nodes(["2"], ["-c:1"])
    result = CliRunner().invoke(cli, ["multi", "show"])
    assert result.exit_code == 64 and "name the nodes" in result.output
    result = CliRunner().invoke(cli, ["multi", "start", "2"], env={"CELERIAC_APP": ""})
    assert result.exit_code == 64 and "pass -A before multi" in result.output


def test_every_new_command_has_help() -> None:
    for command in (["report"], ["shell"], ["migrate"], ["multi"], ["list", "bindings"],
                    ["upgrade", "settings"]):  # fmt: skip
        result = CliRunner().invoke(cli, [*command, "--help"])
        assert result.exit_code == 0 and "Usage:" in result.output, command
