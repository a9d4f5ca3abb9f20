"""``LoggingProxy`` and ``redirected_stdouts``: printed lines become log records."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator

import pytest

from celeriac import Celery
from celeriac.app.redirect import REDIRECTED_LOGGER, LoggingProxy, redirected_stdouts
from celeriac.exceptions import ImproperlyConfigured


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def collected() -> Iterator[Collect]:
    handler = Collect()
    logger = logging.getLogger(REDIRECTED_LOGGER)
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.setLevel(logging.NOTSET)
    logger.removeHandler(handler)


def test_each_printed_line_is_one_record_and_bare_newlines_log_nothing(
    collected: Collect,
) -> None:
    proxy = LoggingProxy(logging.getLogger(REDIRECTED_LOGGER), "info")
    print("hello", "world", file=proxy)
    proxy.writelines(["a\n", "\n", "b\nc", "d"])
    assert [r.getMessage() for r in collected.records] == ["hello world", "a", "b"]
    proxy.flush()
    assert [(r.levelno, r.getMessage()) for r in collected.records][-1] == (logging.INFO, "cd")
    assert not proxy.isatty() and proxy.writable()


def test_a_handler_writing_to_the_proxy_does_not_recurse() -> None:
    logger = logging.getLogger("celeriac.test.loop")
    proxy = LoggingProxy(logger)
    loop = logging.StreamHandler(proxy)  # writes every record back into the proxy
    logger.addHandler(loop)
    try:
        assert proxy.write("once\n") == 5
    finally:
        logger.removeHandler(loop)


def test_the_block_swaps_both_streams_and_restores_them(collected: Collect) -> None:
    app = Celery("t", broker="memory://", set_as_current=False)
    before = sys.stdout, sys.stderr
    with redirected_stdouts(app.conf):
        assert isinstance(sys.stdout, LoggingProxy) and sys.stderr is sys.stdout
        print("inside")
    assert (sys.stdout, sys.stderr) == before
    assert [(r.levelname, r.getMessage()) for r in collected.records] == [("WARNING", "inside")]


def test_off_or_taken_over_leaves_the_streams_alone() -> None:
    app = Celery("t", broker="memory://", set_as_current=False)
    before = sys.stdout
    with redirected_stdouts(app.conf, enabled=False):
        assert sys.stdout is before
    app.conf.worker_redirect_stdouts = False
    with redirected_stdouts(app.conf):
        assert sys.stdout is before


def test_an_unknown_level_names_the_setting() -> None:
    app = Celery("t", broker="memory://", set_as_current=False)
    app.conf.worker_redirect_stdouts_level = "loud"
    with (
        pytest.raises(ImproperlyConfigured, match=r"worker_redirect_stdouts_level.*'loud'"),
        redirected_stdouts(app.conf),
    ):
        pass
