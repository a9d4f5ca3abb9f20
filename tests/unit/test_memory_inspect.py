"""``inspect memsample`` and ``memdump`` against a worker in a thread: the samples are the
worker process's real resident memory (it rises with what a task keeps), ``memdump``
reports and forgets them, and both work from the command line."""

from __future__ import annotations

import re
from typing import Any

from click.testing import CliRunner

from celeriac import Celery
from celeriac.cli import cli
from celeriac.testing import start_worker
from celeriac.worker.memory import human_bytes

NODE = "mem@unit"
TO: dict[str, Any] = {"destination": [NODE], "timeout": 10.0}
KEPT: list[bytes] = []  # what the task keeps alive, so the process's memory stays up
UNITS = {"b": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40}


def _bytes(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(b|KB|MB|GB|TB)", text)
    assert match, f"not a human size: {text!r}"
    return float(match[1]) * UNITS[match[2]]


def test_memsample_reads_the_workers_memory_and_memdump_reports_it() -> None:
    app = Celery("mem", broker="memory://", backend="cache+memory://")

    @app.task
    def grow(megabytes: int) -> None:
        KEPT.append(b"x" * (megabytes * 2**20))  # written, so the pages are resident

    try:
        with start_worker(app, hostname=NODE):
            inspect = app.control.inspect(**TO)
            before = inspect.memsample()
            assert before is not None
            grow.delay(120).get(timeout=10)
            after = inspect.memsample()
            assert after is not None
            assert _bytes(after[NODE]) - _bytes(before[NODE]) > 100 * 2**20
            dump = inspect.memdump()
            assert dump is not None
            samples, end = dump[NODE].rsplit("- rss (end): ", 1)
            assert samples == f"- rss (sample):\n-    > {before[NODE]},\n-    > {after[NODE]},\n"
            assert _bytes(end.rstrip(".\n")) > 100 * 2**20  # after a collection: still kept
            again = inspect.memdump(samples=5)  # the samples were forgotten
            assert again is not None and again[NODE].startswith("- rss (end): ")
            output = (
                CliRunner()
                .invoke(cli, ["inspect", "memsample", "-d", NODE, "-t", "10"], obj=app)
                .output
            )
            assert output.startswith(f"->  {NODE}: OK\n    ") and "1 node online." in output
            dumped = (
                CliRunner()
                .invoke(cli, ["inspect", "memdump", "1", "-d", NODE, "-t", "10"], obj=app)
                .output
            )
            assert "- rss (sample):" in dumped and "- rss (end):" in dumped
    finally:
        KEPT.clear()


def test_sizes_read_as_celerys() -> None:
    assert [human_bytes(n) for n in (500, 1024, 25690112, 3 * 2**30)] == [
        "500b", "1KB", "24.5MB", "3GB",
    ]  # fmt: skip
