"""Task[P, R]: a wrong argument to delay() is a type error, found by mypy; signatures and
workflows give the result type their apply_async() returns."""

from __future__ import annotations

import textwrap
from pathlib import Path

from mypy import api

SNIPPET = textwrap.dedent(
    """
    from celeriac import Celery

    app = Celery("typed", broker="memory://")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    @app.task(bind=True, max_retries=3)
    def send_email(self, to: str) -> dict[str, str]:
        return {"to": to}

    add.delay(1, 2)
    send_email.delay("a@b.c")
    reveal_type(add.delay(1, 2).get())
    add.delay("x", 2)            # line 17: wrong type
    send_email.delay(to=3)       # line 18: wrong type
    """
)


CANVAS_SNIPPET = textwrap.dedent(
    """
    from celeriac import Celery, chain, chord, group

    app = Celery("typed", broker="memory://")

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    reveal_type(add.s(1, 2).apply_async().get())
    reveal_type(add.si(1, 2).delay())
    reveal_type(group(add.s(1, 2), add.s(3, 4)).apply_async())
    reveal_type(chain(add.s(1, 2), add.si(3, 4)).apply_async())
    reveal_type(chord([add.s(1, 2)], add.si(3, 4)).apply_async())
    reveal_type(add.s(1, 2) | add.si(3, 4))
    reveal_type(group(add.s(1, 2)) | add.si(3, 4))
    reveal_type(add.s(1, 2).app)
    group(add.s(1, 2)).apply_async().state   # line 18: a GroupResult has no state
    """
)


def run_mypy(tmp_path: Path, snippet: str) -> tuple[str, int]:
    source = tmp_path / "typed_tasks.py"
    source.write_text(snippet)
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\n")  # a user's default settings, not this project's strict ones
    stdout, _, status = api.run(
        [
            str(source),
            "--config-file",
            str(config),
            "--no-incremental",
            "--cache-dir",
            str(tmp_path / "cache"),
        ]
    )
    return stdout, status


def test_wrong_arguments_to_delay_are_type_errors(tmp_path: Path) -> None:
    stdout, status = run_mypy(tmp_path, SNIPPET)
    assert status == 1, stdout
    assert 'Revealed type is "int"' in stdout
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["17", "18"], stdout
    assert 'Argument 1 to "delay" of "Task" has incompatible type "str"' in stdout


def test_signatures_and_workflows_give_typed_results(tmp_path: Path) -> None:
    stdout, status = run_mypy(tmp_path, CANVAS_SNIPPET)
    revealed = [
        line.split("Revealed type is ")[1] for line in stdout.splitlines() if "Revealed" in line
    ]
    any_result = '"celeriac.result.AsyncResult[Any] | celeriac.result.GroupResult"'
    assert revealed == [
        '"int"',
        '"celeriac.result.AsyncResult[int]"',
        '"celeriac.result.GroupResult"',
        any_result,  # a chain's is its last step's, which may be a group
        any_result,  # a chord's is its body's
        '"celeriac.canvas.workflows.chain | celeriac.canvas.workflows.chord"',
        '"celeriac.canvas.workflows.chord"',
        '"celeriac.app.base.Celeriac"',
    ], stdout
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["18"], stdout
    assert status == 1, stdout
