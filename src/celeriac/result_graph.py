"""The tree of results a task left behind: ``AsyncResult.iterdeps``, ``collect``,
``get_leaf`` and ``build_graph`` walk a result's ``children`` (the calls it sent), and
``result_from_tuple`` rebuilds a result from its stored ``as_tuple()`` form.

App core, below ``result``: it sees results only through ``ready()``, ``children`` and
``get()``, makes them only through ``app.AsyncResult``/``app.GroupResult``, and imports
leaves only.
"""

from __future__ import annotations

import functools
from collections import deque
from collections.abc import Iterable, Iterator
from typing import IO, Any, Generic, Protocol, TypeVar, cast

from celeriac._context import get_current_app
from celeriac.exceptions import IncompleteStream


class Node(Protocol):
    """What the walk needs of a result."""

    @property
    def id(self) -> Any: ...

    @property
    def children(self) -> list[Any] | None: ...

    def ready(self) -> bool: ...


def iterdeps(root: Node, intermediate: bool = False) -> Iterator[tuple[Any, Any]]:
    """``(parent, result)`` pairs, breadth first from ``(None, root)``. A result that is not
    ready has no children yet: ``IncompleteStream`` unless ``intermediate`` (then the
    walk goes on without its subtree)."""
    stack: deque[tuple[Any, Any]] = deque([(None, root)])
    while stack:
        parent, node = stack.popleft()
        yield parent, node
        if node.ready():
            stack.extend((node, child) for child in node.children or ())
        elif not intermediate:
            raise IncompleteStream(
                f"task {node.id} has not finished, so its children are unknown: wait for "
                f"it, or pass intermediate=True to walk past it"
            )


def collect(root: Node, intermediate: bool = False, **get_options: Any) -> Iterator[Any]:
    """``(result, value)`` for ``root`` and every result below it, each waited for."""
    for _, node in iterdeps(root, intermediate=intermediate):
        yield node, node.get(**get_options)


def get_leaf(root: Node) -> Any:
    """The value of the last result the walk reaches (the deepest, latest child)."""
    value = None
    for _, node in iterdeps(root):
        value = node.get()
    return value


N = TypeVar("N")


class DependencyGraph(Generic[N]):
    """Results and the results each one sent: ``graph[result]`` lists its children."""

    def __init__(self, edges: Iterable[tuple[N, Iterable[N]]] = ()) -> None:
        self.adjacent: dict[N, list[N]] = {}
        for node, children in edges:
            self.add_arc(node)
            for child in children:
                self.add_edge(node, child)

    def add_arc(self, node: N) -> None:
        """Add ``node`` (with no edges yet)."""
        self.adjacent.setdefault(node, [])

    def add_edge(self, parent: N, child: N) -> None:
        """``parent`` sent ``child``."""
        self.add_arc(child)
        self.adjacent.setdefault(parent, []).append(child)

    def edges(self) -> Iterator[tuple[N, N]]:
        for parent, children in self.adjacent.items():
            for child in children:
                yield parent, child

    def topsort(self) -> list[N]:
        """Every node after the node that sent it (parents first)."""
        seen: set[int] = set()
        order: list[N] = []

        def visit(node: N) -> None:
            if id(node) in seen:
                return
            seen.add(id(node))
            for child in self.adjacent.get(node, ()):
                visit(child)
            order.append(node)

        for node in list(self.adjacent):
            visit(node)
        return order[::-1]

    def to_dot(self, fh: IO[str]) -> None:
        """Write the graph in Graphviz's dot language (``dot -Tpng``)."""
        fh.write("digraph dependencies {\n")
        for node in self.adjacent:
            fh.write(f'  "{node}";\n')
        for parent, child in self.edges():
            fh.write(f'  "{parent}" -> "{child}";\n')
        fh.write("}\n")

    def items(self) -> Iterator[tuple[N, list[N]]]:
        return iter(self.adjacent.items())

    def __getitem__(self, node: N) -> list[N]:
        return self.adjacent[node]

    def __contains__(self, node: object) -> bool:
        return node in self.adjacent

    def __iter__(self) -> Iterator[N]:
        return iter(self.adjacent)

    def __len__(self) -> int:
        return len(self.adjacent)

    def __repr__(self) -> str:
        return f"<DependencyGraph: {len(self)} results, {sum(1 for _ in self.edges())} edges>"


def build_graph(root: Node, intermediate: bool = False) -> DependencyGraph[Any]:
    """The results under ``root`` as a ``DependencyGraph``."""
    graph: DependencyGraph[Any] = DependencyGraph()
    for parent, node in iterdeps(root, intermediate=intermediate):
        graph.add_arc(node)
        if parent is not None:
            graph.add_edge(parent, node)
    return graph


class Dependencies:
    """The walk, as methods of a result (``AsyncResult`` inherits them)."""

    def iterdeps(self, intermediate: bool = False) -> Iterator[tuple[Any, Any]]:
        """``(parent, result)`` for this result and every result below it, breadth first."""
        return iterdeps(cast(Node, self), intermediate)

    def collect(self, intermediate: bool = False, **kwargs: Any) -> Iterator[tuple[Any, Any]]:
        """``(result, value)`` for this result and every result below it, each waited for
        (``get(**kwargs)``); a task not finished when reached raises ``IncompleteStream``
        unless ``intermediate``."""
        return collect(cast(Node, self), intermediate, **kwargs)

    def get_leaf(self) -> Any:
        return get_leaf(cast(Node, self))

    def build_graph(
        self, intermediate: bool = False, formatter: Any = None
    ) -> DependencyGraph[Any]:
        """The results under this one as a ``DependencyGraph`` (``formatter`` is accepted
        for Celery's signature; ``to_dot`` writes plain Graphviz)."""
        return build_graph(cast(Node, self), intermediate)

    @functools.cached_property
    def graph(self) -> DependencyGraph[Any]:
        return self.build_graph()


def result_from_tuple(value: Any, app: Any = None) -> Any:
    """A result from its ``as_tuple()`` form, as stored (JSON turns tuples into lists):
    ``((id, parent form or None), None)`` for a task, ``((id, parent), [members])`` for a
    group, made by ``app`` (default: the current app). A result is returned as it is."""
    if not isinstance(value, (list, tuple)):
        return value
    app = app if app is not None else get_current_app()
    head, members = value
    task_id, parent = head if isinstance(head, (list, tuple)) else (head, None)
    parent_result = result_from_tuple(parent, app) if parent else None
    if members is not None:
        results = [result_from_tuple(member, app) for member in members]
        return app.GroupResult(task_id, results, parent=parent_result)
    return app.AsyncResult(task_id, parent=parent_result)


__all__ = [
    "Dependencies",
    "DependencyGraph",
    "build_graph",
    "collect",
    "get_leaf",
    "iterdeps",
    "result_from_tuple",
]
