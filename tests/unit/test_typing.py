"""Task[P, R]: a wrong argument to delay() is a type error, found by mypy."""

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


def test_wrong_arguments_to_delay_are_type_errors(tmp_path: Path) -> None:
    source = tmp_path / "typed_tasks.py"
    source.write_text(SNIPPET)
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
    assert status == 1, stdout
    assert 'Revealed type is "int"' in stdout
    errors = [line for line in stdout.splitlines() if ": error:" in line]
    assert [line.split(":")[1] for line in errors] == ["17", "18"], stdout
    assert 'Argument 1 to "delay" of "Task" has incompatible type "str"' in stdout
