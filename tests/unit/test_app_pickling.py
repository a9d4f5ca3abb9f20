"""``pickle.dumps(app)``: the app comes back in another process with its name, its own
settings and part classes, not current, and finds its tasks as a new app does."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import textwrap
from pathlib import Path

from celeriac import Celery
from celeriac.app.pickling import AppPickler


def test_an_app_pickles_as_what_it_was_made_with() -> None:
    app = Celery("pk", broker="memory://", set_as_current=False, task_acks_late=True)
    app.conf.worker_prefetch_multiplier = 4
    copy = pickle.loads(pickle.dumps(app))
    assert copy is not app and type(copy) is Celery and Celery.Pickler is AppPickler
    assert copy.main == "pk" and copy.conf.broker_url == "memory://"
    assert copy.conf.task_acks_late is True and copy.conf.worker_prefetch_multiplier == 4
    assert copy.conf.task_serializer == "json"  # a default stays a default


def test_the_copy_in_another_process_finds_its_tasks(tmp_path: Path) -> None:
    (tmp_path / "pkl_tasks.py").write_text(
        textwrap.dedent("""
        from celeriac import shared_task

        @shared_task(name="pkl.add")
        def add(x, y):
            return x + y
    """)
    )
    script = textwrap.dedent("""
        import json, pickle, sys
        app = pickle.loads(sys.stdin.buffer.read())
        app.finalize()
        names = sorted(n for n in app.tasks if n.startswith("pkl."))
        eager = app.tasks["pkl.add"].apply((2, 3)).get()
        print(json.dumps({"main": app.main, "tasks": names, "eager": eager}))
    """)
    app = Celery("pkproj", broker="memory://", set_as_current=False, include=["pkl_tasks"])
    done = subprocess.run(
        [sys.executable, "-c", script], input=pickle.dumps(app), cwd=tmp_path,
        capture_output=True, timeout=60, check=False,
        env={"PYTHONPATH": f"{tmp_path}:{':'.join(sys.path)}"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr.decode()
    seen = json.loads(done.stdout.decode().strip().splitlines()[-1])
    assert seen == {"main": "pkproj", "tasks": ["pkl.add"], "eager": 5}
