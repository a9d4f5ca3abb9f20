"""User guide, "Canvas: Designing Work-flows": signatures and partials, immutability,
callbacks, chain, group, chord, map/starmap/chunks and their results — a project written
as that chapter teaches, run by a real worker on Redis and on RabbitMQ."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from celeriac import chain, chord, group, signature
from celeriac.exceptions import ChordError
from tests.compat.conftest import Guide, guide_project

PROJECT = """
from celeriac import Celery

app = Celery("guide_canvas")
app.config_from_object("celeryconfig")


@app.task
def add(x, y):
    return x + y


@app.task
def mul(x, y):
    return x * y


@app.task
def xsum(numbers):
    return sum(numbers)


@app.task
def fails(*args):
    raise ValueError("no")
"""


@pytest.fixture(scope="module", params=["redis", "amqp"])
def guide(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Guide]:
    broker = request.getfixturevalue("amqp_url") if request.param == "amqp" else ""
    with guide_project(tmp_path_factory, "guide_canvas", PROJECT, broker=broker) as guide:
        worker = guide.worker("-P", "threads", "-c", "8")
        try:
            yield guide
        finally:
            assert worker.stop() == 0, worker.text


def test_signatures_by_name_and_partials(guide: Guide) -> None:
    proj = guide.module
    by_name = signature("guide_canvas.add", args=(2, 2), countdown=0)
    assert by_name.delay().get(timeout=20) == 4
    partial = proj.add.s(2)
    assert partial.delay(8).get(timeout=20) == 10  # the argument is added to the partial
    assert partial.clone(args=(3,)).apply_async().get(timeout=20) == 5


def test_an_immutable_signature_ignores_the_parent_result(guide: Guide) -> None:
    proj = guide.module
    result = (proj.add.s(2, 2) | proj.add.si(4, 4)).delay()
    assert result.get(timeout=20) == 8
    assert result.parent.get(timeout=20) == 4


def test_a_chain_passes_each_result_on(guide: Guide) -> None:
    proj = guide.module
    result = chain(proj.add.s(2, 2), proj.add.s(4), proj.add.s(8))()
    assert result.get(timeout=20) == 16
    assert result.parent.parent.get(timeout=20) == 4
    assert (proj.add.s(2, 2) | proj.mul.s(8) | proj.mul.s(10))().get(timeout=20) == 320


def test_a_group_runs_in_parallel_and_returns_in_order(guide: Guide) -> None:
    proj = guide.module
    result = group(proj.add.s(i, i) for i in range(10))()
    assert result.get(timeout=20) == [0, 2, 4, 6, 8, 10, 12, 14, 16, 18]
    assert result.ready() and result.successful() and result.completed_count() == 10


def test_a_chord_calls_its_body_with_every_result(guide: Guide) -> None:
    proj = guide.module
    assert chord(proj.add.s(i, i) for i in range(100))(proj.xsum.s()).get(timeout=30) == 9900
    upgraded = group(proj.add.s(i, i) for i in range(10)) | proj.xsum.s()
    assert upgraded().get(timeout=20) == 90


def test_a_failing_chord_member_fails_the_chord(guide: Guide) -> None:
    proj = guide.module
    result = chord([proj.add.s(1, 1), proj.fails.s()])(proj.xsum.s())
    with pytest.raises(ChordError):
        result.get(timeout=20)


def test_map_starmap_and_chunks(guide: Guide) -> None:
    proj = guide.module
    assert proj.xsum.map([list(range(10)), list(range(100))]).delay().get(timeout=20) == [45, 4950]
    assert proj.add.starmap([(i, i) for i in range(5)]).delay().get(timeout=20) == [0, 2, 4, 6, 8]
    chunked = proj.add.chunks([(i, i) for i in range(20)], 5).group()
    assert chunked.delay().get(timeout=20) == [
        [0, 2, 4, 6, 8],
        [10, 12, 14, 16, 18],
        [20, 22, 24, 26, 28],
        [30, 32, 34, 36, 38],
    ]


def test_callbacks_with_link(guide: Guide) -> None:
    proj = guide.module
    result = proj.add.apply_async((2, 2), link=proj.add.s(8))
    assert result.get(timeout=20) == 4
