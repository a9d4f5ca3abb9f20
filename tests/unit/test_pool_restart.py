"""``pool_restart`` on the in-process broker, with a worker in a thread: refused unless
``worker_pool_restarts``; imports the modules named, reloads them with ``reload``, and
gives the threads pool fresh threads."""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from celeriac import Celery
from celeriac.testing import start_worker

NODE = "restart@unit"
TO: dict[str, Any] = {"destination": [NODE], "timeout": 10.0}


def test_pool_restart_is_refused_unless_the_worker_allows_it() -> None:
    app = Celery("restart", broker="memory://", backend="cache+memory://")
    with start_worker(app, hostname=NODE):
        [reply] = app.control.pool_restart(reply=True, **TO)
        assert reply[NODE]["error"].startswith("ValueError('Pool restarts not enabled")
        assert "worker_pool_restarts = True" in reply[NODE]["error"]
    with pytest.raises(TypeError, match="reloader"):
        app.control.pool_restart(reloader=print)


def test_pool_restart_imports_and_reloads_modules_and_replaces_the_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "restart_helper.py").write_text("VALUE = 1\n")
    (tmp_path / "restart_extra.py").write_text("LOADED = True\n")
    app = Celery("restart", broker="memory://", backend="cache+memory://")
    app.conf.worker_pool_restarts = True
    local = threading.local()  # what one pool thread saw: a fresh thread has none

    @app.task
    def ask() -> list[Any]:
        import restart_helper

        seen, local.seen = getattr(local, "seen", False), True
        return [restart_helper.VALUE, seen]

    try:
        with start_worker(app, hostname=NODE):
            assert ask.delay().get(timeout=5) == [1, False]
            assert ask.delay().get(timeout=5) == [1, True]  # the same thread again
            (tmp_path / "restart_helper.py").write_text("VALUE = 22  # changed\n")
            replies = app.control.pool_restart(
                ["restart_helper", "restart_extra"], reload=True, reply=True, **TO
            )
            assert replies == [{NODE: {"ok": "reload started"}}]
            assert "restart_extra" in sys.modules  # not imported before: imported now
            assert ask.delay().get(timeout=5) == [22, False]  # new code, a fresh thread
            # Without reload, a module already imported is left as it is (as in Celery).
            (tmp_path / "restart_helper.py").write_text("VALUE = 333  # changed again\n")
            app.control.pool_restart(["restart_helper"], reply=True, **TO)
            assert ask.delay().get(timeout=5)[0] == 22
    finally:
        for name in ("restart_helper", "restart_extra"):
            sys.modules.pop(name, None)
