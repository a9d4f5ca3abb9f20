"""``celeriac.contrib.sphinx`` (``celery.contrib.sphinx``): Sphinx's autodoc documents a
module's tasks with their function's signature and docstring and a ``(task)`` prefix.
Sphinx runs in a subprocess, with its warnings as errors, on a small project."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")

ROOT = Path(__file__).resolve().parents[2]

TASKS = '''"""Tasks of a project."""
from celeriac import Celery

app = Celery("docproj", broker="memory://")


@app.task
def add(x: int, y: int) -> int:
    """Add two numbers."""
    return x + y


@app.task(bind=True)
def report(self, kind: str = "sales") -> None:
    """Write a report."""


def helper(z):
    """A plain function."""
'''

INDEX = """Tasks
=====

.. automodule:: docproj
   :members:

.. autotask:: docproj.add
   :no-index:

.. py:task:: manual(n)

   Written by hand; see :py:task:`docproj.add`.
"""


def build(tmp_path: Path, conf: str) -> str:
    (tmp_path / "docproj.py").write_text(TASKS)
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "conf.py").write_text(conf)
    (docs / "index.rst").write_text(INDEX)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(tmp_path)])}
    done = subprocess.run(
        [sys.executable, "-W", "error", "-m", "sphinx", "-b", "text", "-W", "-q",
         str(docs), str(tmp_path / "out")],
        env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return (tmp_path / "out" / "index.txt").read_text()


def test_automodule_documents_tasks_with_their_signature(tmp_path: Path) -> None:
    text = build(tmp_path, 'extensions = ["celeriac.contrib.sphinx"]\n')
    assert "(task) docproj.add(x: int, y: int) -> int\n\n   Add two numbers." in text
    # A bound task's signature leaves out the task itself.
    assert "(task) docproj.report(kind: str = 'sales') -> None\n\n   Write a report." in text
    assert "\ndocproj.helper(z)\n" in text  # a plain function stays a function
    assert text.count("(task) docproj.add(") == 2  # automodule, then autotask
    assert '(task) docproj.manual(n)\n\n   Written by hand; see "docproj.add()".' in text


def test_the_task_prefix_is_a_setting(tmp_path: Path) -> None:
    conf = 'extensions = ["celeriac.contrib.sphinx"]\ncelery_task_prefix = "[job]"\n'
    text = build(tmp_path, conf)
    assert "[job] docproj.add(x: int, y: int) -> int" in text
