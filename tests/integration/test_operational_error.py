"""``except OperationalError:`` around ``delay()``, as Celery users write it, catches a
broker that cannot be reached (Redis and RabbitMQ at ports nothing listens on)."""

from __future__ import annotations

import pytest

from celeriac import Celery
from celeriac.exceptions import BrokerConnectionError, BrokerError, OperationalError
from tests.integration.conftest import free_port


@pytest.mark.parametrize("scheme", ["redis", "amqp"])
def test_a_dead_broker_raises_operational_error_from_delay(scheme: str) -> None:
    app = Celery(
        "p",
        broker=f"{scheme}://guest:guest@127.0.0.1:{free_port()}//",
        task_publish_retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0},
        set_as_current=False,
    )

    @app.task
    def add(x: int, y: int) -> int:
        return x + y

    try:
        with pytest.raises(OperationalError) as caught:
            add.delay(2, 2)
        assert isinstance(caught.value, BrokerConnectionError)
        with pytest.raises(add.OperationalError):  # Celery's handle on the task class
            add.apply_async((1, 1))
    finally:
        app.close()


def test_operational_error_is_the_broker_error() -> None:
    assert OperationalError is BrokerError
    assert issubclass(BrokerConnectionError, OperationalError)
