"""The type of each queue celeriac declares on a real RabbitMQ: the app's queues
(``task_default_queue_type``), a queue made on first use (``task_create_missing_queue_type``)
and the delay queues (``broker_native_delayed_delivery_queue_type``); and the login
mechanism (``broker_login_method``). Few quorum queues on purpose: each is costly."""

from __future__ import annotations

import time
import uuid
from urllib.parse import unquote, urlsplit

import pytest

from celeriac import Celery
from celeriac.brokers.amqp.topology import LEVELS
from celeriac.exceptions import BrokerAccessRefused, ImproperlyConfigured
from tests.conftest import rabbitmqctl


def _queue_types(amqp_url: str) -> dict[str, str]:
    vhost = unquote(urlsplit(amqp_url).path[1:])
    out = rabbitmqctl("list_queues", "-q", "-p", vhost, "name", "type", "--no-table-headers")
    return dict(line.split() for line in out.splitlines() if line.strip())


def test_missing_queues_and_delay_queues_get_their_own_types(
    amqp_url: str, amqp_namespace: str
) -> None:
    # Given classic app queues, quorum for queues made on first use, classic delay queues
    own, routed = f"own-{uuid.uuid4().hex[:8]}", f"routed-{uuid.uuid4().hex[:8]}"
    app = Celery(
        "types", broker=amqp_url, set_as_current=False, task_default_queue=own,
        task_create_missing_queue_type="quorum",
        broker_native_delayed_delivery_queue_type="classic",
        broker_transport_options={"namespace": amqp_namespace},
    )  # fmt: skip
    try:
        # When a task goes to the default queue, one to a routed queue, one later to it
        app.send_task("proj.add", (1, 2))
        app.send_task("proj.add", (1, 2), queue=routed)
        app.send_task("proj.add", (1, 2), queue=routed, countdown=0.05)
        types = _queue_types(amqp_url)
        # Then the routed queue (and its dead letters) is quorum, the app's queue classic
        assert types[own] == "classic" and types[f"{amqp_namespace}.dead.{own}"] == "classic"
        assert types[routed] == "quorum" and types[f"{amqp_namespace}.dead.{routed}"] == "quorum"
        # And the delay queues, which every queue shares, are classic
        delays = {types[f"{amqp_namespace}.delay-level.{k}"] for k in range(LEVELS)}
        assert delays == {"classic"}
        # And the delayed message reaches its queue when due
        deadline = time.monotonic() + 10
        while app.broker.queue_length(routed) < 2 and time.monotonic() < deadline:
            time.sleep(0.05)  # polled: the queue length is the observable outcome
        assert app.broker.queue_length(routed) == 2
        assert app.broker.queue_length(own) == 1
    finally:
        app.broker.purge(own)
        app.broker.purge(routed)
        app.close()


def test_bad_queue_types_are_refused_naming_the_setting() -> None:
    app = Celery("x", broker="memory://", set_as_current=False,
                 broker_native_delayed_delivery_queue_type="stream")  # fmt: skip
    with pytest.raises(ImproperlyConfigured, match="broker_native_delayed_delivery_queue_type"):
        app.broker  # noqa: B018


def test_plain_login_works_and_amqplain_is_refused(amqp_url: str) -> None:
    # PLAIN: the URL's user and password, chosen explicitly
    app = Celery("login", broker=amqp_url, set_as_current=False, broker_login_method="PLAIN")
    try:
        assert app.broker.queue_length(f"login-{uuid.uuid4().hex[:8]}") == 0
    finally:
        app.close()
    # AMQPLAIN: not spoken by the client, refused before connecting, with the fix
    refused = Celery("login", broker=amqp_url, set_as_current=False,
                     broker_login_method="AMQPLAIN")  # fmt: skip
    with pytest.raises(ImproperlyConfigured, match="Set it to 'PLAIN' or unset it"):
        refused.broker  # noqa: B018


def test_a_mechanism_the_server_does_not_offer_is_refused(amqp_url: str) -> None:
    # The local RabbitMQ offers PLAIN and AMQPLAIN only; ask for EXTERNAL through the URL
    app = Celery("login", broker=f"{amqp_url}?auth=external", set_as_current=False)
    try:
        with pytest.raises(BrokerAccessRefused, match="does not offer the login mechanism"):
            app.broker.queue_length("anything")
    finally:
        app.close()
