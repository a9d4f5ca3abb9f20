"""Broker URLs that name several RabbitMQ nodes (kombu's failover list), the failover
strategies, and the queue type such a URL defaults to; no server."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Iterator, Sequence

import pytest

from celeriac import Celery
from celeriac.brokers.amqp import AmqpBroker
from celeriac.brokers.amqp.nodes import Nodes, shuffled, strategy
from celeriac.brokers.amqp.params import Target, parse_targets
from celeriac.exceptions import ImproperlyConfigured

A, B, C = (f"amqp://u:p@{host}/prod" for host in ("a:5672", "b:5673", "c:5674"))
THREE = f"{A};{B};{C}"


def _ports(targets: Iterable[Target]) -> list[int]:
    return [int(t.safe_url.rsplit(":", 1)[1].split("/")[0]) for t in targets]


def test_a_failover_list_is_every_node_in_order_with_its_own_options() -> None:
    targets = parse_targets(f" {A} ;{B}?heartbeat=5;{C};", {"heartbeat": 30})
    assert _ports(targets) == [5672, 5673, 5674]
    assert {t.vhost for t in targets} == {"prod"} and {t.user for t in targets} == {"u"}
    assert "heartbeat=5" in targets[1].url and "heartbeat=30" in targets[0].url
    assert all("p@" not in t.safe_url for t in targets)  # passwords hidden
    assert len(parse_targets(A, {})) == 1  # one URL: one node


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        (f"{A};amqp://other:p@b:5673/prod", "same user"),
        (f"{A};amqp://u:wrong@b:5673/prod", "same password"),
        (f"{A};amqp://u:p@b:5673/staging", "same vhost"),
        (f"{A};amqp://b:5673/prod", "differs from"),  # no login: guest, not the first's
        (f"{A};redis://b:6379/0", "not an AMQP URL"),
        (" ; ", "names no node"),
    ],
)
def test_a_failover_list_that_cannot_work_names_the_problem(url: str, problem: str) -> None:
    with pytest.raises(ImproperlyConfigured, match=problem) as caught:
        parse_targets(url, {})
    assert ":p@" not in str(caught.value) and ":wrong@" not in str(caught.value)


def test_celery_forms_of_the_list_reach_the_engine() -> None:
    """``broker_url`` as a list, as a ';' string, and the transport option's strategy."""
    for given in ([A, B, C], THREE, (A, B, C)):
        app = Celery("t", broker=given)
        try:
            assert app.conf.broker_url == THREE
            broker = app.broker
            assert isinstance(broker, AmqpBroker)
            assert _ports(broker.nodes.targets) == [5672, 5673, 5674]
            assert "p@" not in repr(broker) and "5674" in repr(broker)
        finally:
            app.close()
    app = Celery("t", broker_url=[A, B], broker_write_url=[B, C], broker_read_url=[C, A])
    try:
        assert app.conf.broker_write_url == f"{B};{C}" and app.conf.broker_read_url == f"{C};{A}"
    finally:
        app.close()


def test_a_list_for_a_broker_that_takes_one_url_is_refused() -> None:
    app = Celery("t", broker=["redis://a:6379/0", "redis://b:6379/0"])
    try:
        with pytest.raises(ImproperlyConfigured, match=r"only RabbitMQ URLs.*redis\+cluster"):
            _ = app.broker
    finally:
        app.close()


def _walk(broker: AmqpBroker, connections: int) -> list[list[int]]:
    """The nodes each of ``connections`` successive connections would try, in order, when
    the first one it tries answers (it stops there) -- except every third, which finds
    every node down and tries them all."""
    order = broker.nodes.order()
    walked = []
    for n in range(connections):
        attempt = order.attempt()
        tried = [next(attempt)] if n % 3 else list(attempt)
        walked.append(_ports(tried))
    return walked


def test_round_robin_starts_each_connection_at_the_next_node() -> None:
    broker = AmqpBroker(THREE)
    assert _walk(broker, 5) == [
        [5672, 5673, 5674],  # all down: each tried once
        [5672],  # the node after the last one tried
        [5673],  # lost: the next connection goes to the next node
        [5674, 5672, 5673],
        [5674],
    ]


def test_shuffle_tries_every_node_once_per_connection_in_random_orders() -> None:
    random.seed(7)
    broker = AmqpBroker(THREE, transport_options={"failover_strategy": "shuffle"})
    full = [tried for tried in _walk(broker, 60) if len(tried) == 3]
    assert all(sorted(tried) == [5672, 5673, 5674] for tried in full)
    assert len({tuple(tried) for tried in full}) > 1  # not always one order
    assert sorted(itertools.islice(shuffled("xyz"), 3)) == ["x", "y", "z"]


def test_a_strategy_function_of_the_users_picks_the_order() -> None:
    def last_first(urls: Sequence[str]) -> Iterator[str]:
        return itertools.cycle(list(reversed(urls)))

    app = Celery("t", broker=THREE, broker_failover_strategy=last_first)
    try:
        broker = app.broker
        assert isinstance(broker, AmqpBroker)
        assert _ports(broker.nodes.order().attempt()) == [5674, 5673, 5672]
    finally:
        app.close()
    strays = AmqpBroker(THREE, failover_strategy=lambda urls: iter(["amqp://elsewhere//"]))
    with pytest.raises(ImproperlyConfigured, match="not one of the broker URLs"):
        list(strays.nodes.order().attempt())
    partial = AmqpBroker(THREE, failover_strategy=lambda urls: iter(urls[1:2]))
    assert _ports(partial.nodes.order().attempt()) == [5673, 5672, 5674]  # none left out


def test_the_transport_option_wins_over_the_setting_and_bad_names_are_refused() -> None:
    app = Celery(
        "t", broker=THREE, broker_failover_strategy="shuffle",
        broker_transport_options={"failover_strategy": "round-robin"},
    )  # fmt: skip
    try:
        broker = app.broker
        assert isinstance(broker, AmqpBroker)
        assert broker.nodes.strategy is itertools.cycle
    finally:
        app.close()
    with pytest.raises(ImproperlyConfigured, match=r"'round-robin'.*'shuffle'"):
        AmqpBroker(THREE, transport_options={"failover_strategy": "random"})
    assert strategy(None) is itertools.cycle


def test_several_nodes_default_to_quorum_queues() -> None:
    """A classic queue lives on one node; with several nodes the default is quorum,
    unless the queue type is set, or the queues are shared with Celery workers."""

    def queue_type(**settings: object) -> str:
        app = Celery("t", **settings)  # type: ignore[arg-type]
        try:
            broker = app.broker
            assert isinstance(broker, AmqpBroker)
            return broker.queue_type
        finally:
            app.close()

    assert queue_type(broker=THREE) == "quorum"
    assert queue_type(broker=[A, B]) == "quorum"
    assert queue_type(broker=A) == "classic"
    assert queue_type(broker=THREE, task_default_queue_type="classic") == "classic"
    options = {"queue_type": "classic"}
    assert queue_type(broker=THREE, broker_transport_options=options) == "classic"
    assert queue_type(broker=THREE, wire_format="celery") == "classic"


def test_one_node_keeps_nodes_simple() -> None:
    nodes = Nodes(parse_targets(A, {}))
    assert not nodes.several and _ports(nodes.order().attempt()) == [5672]
    with pytest.raises(ValueError, match="at least one node"):
        Nodes(())
