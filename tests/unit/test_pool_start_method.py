"""``worker_pool_start_method`` and ``--pool-start-method``: ``fork`` (Celery's default)
is how the prefork pool starts its children; ``spawn`` is refused with what to use."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from celeriac import Celery
from celeriac.cli import cli
from celeriac.exceptions import ImproperlyConfigured
from celeriac.worker.worker import Worker


def test_fork_is_accepted_and_spawn_refused_when_the_worker_is_built() -> None:
    app = Celery("sm", broker="memory://", set_as_current=False)
    Worker(app, pool="solo")  # the default: fork
    app.conf.worker_pool_start_method = "spawn"
    with pytest.raises(ImproperlyConfigured, match="'spawn' start method is not offered"):
        Worker(app, pool="solo")
    app.conf.worker_pool_start_method = "forkserver"
    with pytest.raises(ImproperlyConfigured, match="must be 'fork' or 'spawn'"):
        Worker(app, pool="solo")


def test_the_option_refuses_spawn_before_anything_starts() -> None:
    done = CliRunner().invoke(cli, ["-A", "nowhere", "worker", "--pool-start-method", "spawn"])
    assert done.exit_code == 64
    assert "'spawn' start method is not offered" in done.output
    assert "-P threads" in done.output
