"""``on_ready`` over Redis (broker and result store): callbacks chained on a result's and
a group's promise fire once the handle sees the tasks finished by a real worker."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from celeriac import Celery, group
from celeriac.testing import start_worker


@pytest.fixture
def app(redis_url: str, redis_prefix: str) -> Iterator[Celery]:
    app = Celery(
        "on-ready-redis", broker=redis_url, backend=redis_url,
        broker_transport_options={"key_prefix": redis_prefix},
        result_backend_transport_options={"key_prefix": redis_prefix},
    )  # fmt: skip
    yield app
    app.close()


def test_on_ready_callbacks_fire_when_get_sees_the_results(app: Celery) -> None:
    @app.task
    def square(x: int) -> int:
        return x * x

    seen: list[Any] = []
    with start_worker(app, concurrency=2):
        one = square.delay(3)
        one.on_ready.then(lambda r: r.result).then(seen.append)
        many = group(square.s(n) for n in range(4)).delay()
        many.on_ready.then(lambda rs: seen.append(sorted(r.result for r in rs)))
        assert seen == []  # nothing has been read yet
        assert one.get(timeout=10) == 9 and seen == [9]
        assert many.get(timeout=10) == [0, 1, 4, 9]
    assert seen == [9, [0, 1, 4, 9]]
    assert one.on_ready.ready and many.on_ready.ready
