"""The lease contract: ``hold_lease``/``drop_lease`` as tests every ``Broker`` engine passes.

One holder at a time, renewals keep the token, a new holder gets a larger token, a
dropped lease is free at once and one left alone is free after its ttl. Uses only the
public verbs, so it runs unchanged against memory, Redis and RabbitMQ (where a holder is a
connection: the second holder uses a second broker). Imports ``celeriac.brokers.base``,
pytest and the stdlib; never an engine.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import pytest

from celeriac.brokers.base import Broker
from celeriac.testing.contracts.broker import BrokerFactory


def _name() -> str:
    return f"contract-{uuid.uuid4().hex[:12]}"


def _wait_for(take: Callable[[], int | None], timeout: float) -> int:
    """Retry ``take`` until it returns a token."""
    deadline = time.monotonic() + timeout
    while True:
        token = take()
        if token is not None:
            return int(token)
        assert time.monotonic() < deadline, f"the lease was not free within {timeout} s"
        time.sleep(0.1)


class LeaseContract:
    """Subclass with a ``make_broker`` fixture (a ``BrokerFactory``)."""

    def test_one_holder_at_a_time(self, make_broker: BrokerFactory) -> None:
        first, second = make_broker(), make_broker()
        name = _name()
        token = first.hold_lease(name, "a", 10)
        assert isinstance(token, int)
        assert second.hold_lease(name, "b", 10) is None
        assert first.hold_lease(name, "a", 10) == token, "a renewal keeps the token"
        assert second.hold_lease(name, "b", 10) is None

    def test_a_dropped_lease_passes_on_with_a_larger_token(
        self, make_broker: BrokerFactory
    ) -> None:
        first, second = make_broker(), make_broker()
        name = _name()
        token = first.hold_lease(name, "a", 10)
        assert token is not None
        assert first.drop_lease(name, "a") is True
        taken = _wait_for(lambda: second.hold_lease(name, "b", 10), 5)
        assert taken > token
        assert second.drop_lease(name, "a") is False, "only the holder drops it"
        assert first.hold_lease(name, "a", 10) is None

    def test_a_lease_left_alone_ends_after_its_ttl(self, make_broker: BrokerFactory) -> None:
        first, second = make_broker(), make_broker()
        name = _name()
        token = first.hold_lease(name, "a", 1.0)
        assert token is not None
        assert second.hold_lease(name, "b", 1.0) is None
        self.abandon(first)
        taken = _wait_for(lambda: second.hold_lease(name, "b", 1.0), 5)
        assert taken > token

    def abandon(self, broker: Broker) -> None:
        """Make ``broker`` stop renewing; an engine whose lease lives with a connection
        closes it (a dead process)."""
        return None

    def test_bad_arguments_are_refused(self, make_broker: BrokerFactory) -> None:
        broker = make_broker()
        with pytest.raises(ValueError):
            broker.hold_lease("", "a", 10)
        with pytest.raises(ValueError):
            broker.hold_lease(_name(), "a", 0)
