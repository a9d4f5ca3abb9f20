"""The nodes of a RabbitMQ cluster one broker may connect to, and the order it tries them in.

A broker URL may name several nodes (kombu's failover list, ``amqp://a//;amqp://b//``).
Each connection goes to the first node that answers, trying every node once in the order
the failover strategy gives: kombu's ``round-robin`` (the default: the list's order, a
new connection starting at the node after the last one tried) or ``shuffle`` (a random
order), or a function that cycles through the URLs it is given, as kombu's strategies do.
Engine helper: imports the stdlib, ``params`` and ``celeriac.exceptions``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from typing import Any, cast

from celeriac.brokers.amqp.params import Target
from celeriac.exceptions import ImproperlyConfigured

# Takes the nodes' URLs (passwords hidden) and yields them, forever, in the order to try.
Strategy = Callable[[Sequence[str]], Iterable[str]]


def shuffled(urls: Sequence[str]) -> Iterator[str]:
    """kombu's ``shuffle``: every node once in a random order, then again in another."""
    while True:
        order = list(urls)
        random.shuffle(order)
        yield from order


STRATEGIES: dict[str, Strategy] = {"round-robin": itertools.cycle, "shuffle": shuffled}


def strategy(value: Any) -> Strategy:
    """The strategy ``broker_failover_strategy`` (or the ``failover_strategy`` transport
    option) names; None is round-robin."""
    if value is None:
        return STRATEGIES["round-robin"]
    if callable(value):
        return cast(Strategy, value)  # (kombu takes a function of the node list)
    found = STRATEGIES.get(value) if isinstance(value, str) else None
    if found is None:
        raise ImproperlyConfigured(
            f"the failover strategy is {value!r}: use 'round-robin' (the default: the nodes "
            f"in the order the broker URL lists them) or 'shuffle' (a random order), or a "
            f"function that takes the list of URLs and yields them in the order to try, "
            f"as itertools.cycle does"
        )
    return found


@dataclass(frozen=True)
class Nodes:
    """Where a broker may connect: one node, or the nodes of a failover list."""

    targets: tuple[Target, ...]
    strategy: Strategy = itertools.cycle

    def __post_init__(self) -> None:
        if not self.targets:
            raise ValueError("a broker needs at least one node")

    @property
    def several(self) -> bool:
        return len(self.targets) > 1

    @property
    def safe_url(self) -> str:
        """Every node's URL, passwords hidden, as the user wrote the list."""
        return ";".join(target.safe_url for target in self.targets)

    def with_each(self, change: Callable[[Target], Target]) -> Nodes:
        """The same nodes, each target changed (e.g. another heartbeat for a lease)."""
        return replace(self, targets=tuple(change(target) for target in self.targets))

    def order(self) -> Order:
        return Order(self)


class Order:
    """The strategy's walk through the nodes, kept by one connection: each ``attempt``
    offers every node once, from where the last one stopped."""

    def __init__(self, nodes: Nodes) -> None:
        self.targets = nodes.targets
        urls = [target.safe_url for target in self.targets]
        self._index = {url: n for n, url in reversed(list(enumerate(urls)))}
        self._walk = iter(nodes.strategy(urls))

    def attempt(self) -> Iterator[Target]:
        """Every node once, in the strategy's order; taken lazily, so the next attempt
        starts after the node this one connected to."""
        count = len(self.targets)
        if count == 1:
            yield self.targets[0]
            return
        offered: set[int] = set()
        for _ in range(4 * count):  # a strategy of the user's may repeat a node or stop
            if len(offered) == count:
                return
            url = next(self._walk, None)
            if url is None:
                break
            index = self._index.get(url)
            if index is None:
                raise ImproperlyConfigured(
                    f"the failover strategy yielded {url!r}, which is not one of the broker "
                    f"URLs it was given ({', '.join(self._index)})"
                )
            if index not in offered:
                offered.add(index)
                yield self.targets[index]
        for index, target in enumerate(self.targets):  # any node the strategy left out
            if index not in offered:
                yield target
