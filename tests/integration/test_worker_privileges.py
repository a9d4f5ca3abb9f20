"""``celeriac worker --uid/--gid/--umask`` on a real worker process started as root: the
task runs as the new user and group, and the files it creates follow the umask."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import sys
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from celeriac import Celery
from celeriac.cli import cli
from celeriac.cli.privileges import parse_umask
from tests.integration.workers import WorkerProcess, project_env

WHO = textwrap.dedent(
    """
    import os

    from proj import app


    @app.task(name="who.am_i")
    def am_i(directory):
        path = os.path.join(directory, "made-by-task")
        with open(path, "w") as handle:
            handle.write("x")
        return [os.getuid(), os.getgid(), os.stat(path).st_mode & 0o777]
    """
)


def readable_python(spare: Path) -> tuple[str, ...]:
    """A command prefix under which ``nobody`` can read this Python's standard library.

    Modules a worker imports after dropping privileges are read as the new user. Where
    the interpreter lives below a directory only root may enter (a Python under /root),
    the worker runs in a mount namespace of its own in which that directory is an open
    one holding the interpreter's tree (``spare``: an empty directory the namespace uses
    as a mount point); nothing changes outside it."""
    prefix = Path(sys.base_prefix).resolve()
    for closed in [*reversed(prefix.parents), prefix]:
        if not os.stat(closed).st_mode & stat.S_IXOTH:
            break
    else:
        return ()
    if shutil.which("unshare") is None or closed == prefix:
        pytest.skip(f"{closed} is closed to other users and cannot be opened for the test")
    keep = prefix.relative_to(closed).parts[0]
    script = (
        'mount --bind "$1/$2" "$3" && mount -t tmpfs -o mode=755 tmpfs "$1" && '
        'mkdir "$1/$2" && mount --bind "$3" "$1/$2" && shift 3 && exec "$@"'
    )
    spare.mkdir()
    return ("unshare", "-m", "sh", "-c", script, "sh", str(closed), keep, str(spare))


@pytest.fixture
def shared() -> Iterator[Path]:
    """A directory every user may write to (tmp_path is root's own)."""
    path = Path(tempfile.mkdtemp(prefix="celeriac-shared-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0, reason="dropping privileges needs a worker started as root")
def test_the_worker_runs_tasks_as_the_user_and_group_given(
    tmp_path: Path,
    shared: Path,
    redis_url: str,
    redis_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    nobody = pwd.getpwnam("nobody")
    env = project_env(tmp_path, redis_url, redis_prefix)
    (tmp_path / "who.py").write_text(WHO)
    for name in ("CELERIAC_TEST_REDIS", "CELERIAC_TEST_PREFIX", "CELERIAC_TEST_BROKER"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.syspath_prepend(str(tmp_path))
    import proj  # the caller's side

    worker = WorkerProcess.started(
        tmp_path, env, "-P", "threads", "-I", "who", "--uid", "nobody", "--gid",
        str(nobody.pw_gid), "--umask", "0077", wrapper=readable_python(tmp_path / "mnt"),
    )  # fmt: skip
    try:
        result = proj.app.send_task("who.am_i", (str(shared),))
        uid, gid, mode = result.get(timeout=20)
        assert (uid, gid) == (nobody.pw_uid, nobody.pw_gid)
        assert mode == 0o600  # 0666 less the umask 0077
        assert stat.S_IMODE((shared / "made-by-task").stat().st_mode) == 0o600
    finally:
        worker.stop()
        proj.app.close()


def test_bad_users_groups_and_masks_are_refused_with_the_fix() -> None:
    assert parse_umask("0027") == 0o27 and parse_umask("18") == 18  # Celery's reading
    runner = CliRunner()
    for args, message in (
        (["--uid", "no-such-user-here"], "--uid: user 'no-such-user-here' does not exist"),
        (["--gid", "no-such-group-here"], "--gid: group 'no-such-group-here' does not exist"),
        (["--umask", "rw"], "--umask takes an octal mask such as 0027"),
    ):
        app = Celery("bad", broker="memory://")
        result = runner.invoke(cli, ["worker", *args], obj=app)
        assert result.exit_code == 64 and message in result.output, result.output
