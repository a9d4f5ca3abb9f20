"""``celeriac graph workers``: the cluster as a Graphviz (DOT) graph, as Celery's draws it.

Edge layer (cli). The workers and their pool sizes come from ``inspect stats`` (or from
the ``nodes:``/``threads:`` arguments), the broker and result store from the app's
settings; the DOT text goes to stdout (``| dot -Tpng > cluster.png``). Celery's other
graph, ``bootsteps``, has no counterpart: celeriac's worker does not start its own parts
as bootsteps.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import click

from celeriac.cli.base import CLIContext, CLIError
from celeriac.exceptions import CeleriacError
from celeriac.worker.banner import mask_password

#: The ``key:value`` arguments Celery's ``graph workers`` reads, and its two flags.
KEYS = ("nodes", "threads", "wmax", "tmax", "backend", "broker")
FLAGS = ("enumerate", "generic")
_SUBSCRIPTS = str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉")

BROKER_STYLE = {"shape": "circle", "style": "filled", "fillcolor": "cadetblue3",
                "color": "cadetblue4", "height": "1"}  # fmt: skip
BACKEND_STYLE = {"shape": "folder", "style": "filled", "fillcolor": "peachpuff3",
                 "color": "black", "width": "2", "height": "1"}  # fmt: skip
WORKER_STYLE = {"shape": "box", "style": "filled", "fillcolor": "palegreen3",
                "color": "palegreen4"}  # fmt: skip
PROCESS_STYLE = {"shape": "oval", "style": "filled", "fillcolor": "lightcyan4",
                 "fontcolor": "yellow", "fontsize": "10", "color": "black"}  # fmt: skip


def parse_arguments(words: Iterable[str]) -> dict[str, str]:
    """``['nodes:w1,w2', 'enumerate']`` -> ``{'nodes': 'w1,w2', 'enumerate': ''}``; an
    argument Celery's command does not read is refused."""
    found: dict[str, str] = {}
    for word in words:
        key, colon, value = word.partition(":")
        if (colon and key not in KEYS) or (not colon and key not in FLAGS):
            raise CLIError(
                f"graph workers: unknown argument {word!r}: use key:value with a key of "
                f"{', '.join(KEYS)}, or the words {' and '.join(FLAGS)}"
            )
        found[key] = value
    return found


def abbreviate(labels: list[str], limit: int, name: str) -> list[str]:
    """At most ``limit`` labels (0: all): the first ones, one standing for those left
    out, and the last one, as Celery's graph shortens a long list."""
    limit = max(limit, 3) if limit else 0  # the first, the ellipsis and the last at least
    if not limit or len(labels) <= limit:
        return labels
    hidden = len(labels) - (limit - 1)
    return [*labels[: limit - 2], f"{name[0]}⎨…{str(hidden).translate(_SUBSCRIPTS)}⎬", labels[-1]]


def quote(text: str) -> str:
    """A DOT string: in double quotes, with quotes and backslashes escaped."""
    return json.dumps(text, ensure_ascii=False)


@dataclass
class Dot:
    """A DOT digraph being written: nodes (id, label, style) and edges."""

    lines: list[str] = field(default_factory=list)

    def node(self, node_id: str, label: str, style: dict[str, str]) -> None:
        attrs = "".join(f", {key}={quote(value)}" for key, value in style.items())
        self.lines.append(f"    {quote(node_id)} [label={quote(label)}{attrs}]")

    def edge(self, source: str, target: str, **attrs: str) -> None:
        extra = "".join(f", {key}={quote(value)}" for key, value in attrs.items())
        self.lines.append(f"    {quote(source)} -> {quote(target)} [arrowsize=0.7{extra}]")

    def text(self) -> str:
        body = "\n".join(self.lines)
        return f'digraph workers {{\n    graph [fontname="HelveticaNeue"]\n{body}\n}}\n'


def _number(args: dict[str, str], key: str, default: int) -> int:
    value = args.get(key) or str(default)
    if not value.isdigit():
        raise CLIError(f"graph workers: {key}:{value} is not a whole number")
    return int(value)


def _store_label(url: str, generic: bool, kind: str) -> str:
    scheme = url.partition("://")[0]
    return f"{kind} ({scheme}://)" if generic else mask_password(url)


def workers_graph(
    workers: list[str], sizes: list[int], broker: str, backend: str | None, args: dict[str, str]
) -> str:
    """The DOT text: each worker (at most ``wmax``) linked to the broker and the result
    store, and its pool processes (at most ``tmax``) linked to it."""
    wmax, tmax = _number(args, "wmax", 4), _number(args, "tmax", 3)
    generic = "generic" in args
    if "enumerate" in args:
        workers = [f"Worker{str(i).translate(_SUBSCRIPTS)}" for i in range(1, len(workers) + 1)]
    shown = abbreviate(workers, wmax, "Worker")
    if len(shown) < len(workers):  # the sizes of the workers shown; none for the ellipsis
        sizes = [*sizes[: len(shown) - 2], 0, *sizes[-1:]]
    dot = Dot()
    dot.node("broker", _store_label(broker, generic, "Broker"), BROKER_STYLE)
    if backend:
        dot.node("backend", _store_label(backend, generic, "Backend"), BACKEND_STYLE)
    for index, worker in enumerate(shown):
        worker_id = f"worker-{index}"
        dot.node(worker_id, worker, WORKER_STYLE)
        dot.edge(worker_id, "broker")
        if backend:
            dot.edge(worker_id, "backend")
        size = sizes[index] if index < len(sizes) else 0
        processes = [f"P{str(i).translate(_SUBSCRIPTS)}" for i in range(1, size + 1)]
        for number, process in enumerate(abbreviate(processes, tmax, "P")):
            process_id = f"{worker_id}-p{number}"
            dot.node(process_id, process, PROCESS_STYLE)
            dot.edge(process_id, worker_id, arrowhead="none", arrowtail="tee")
    return dot.text()


def _from_inspect(app: Any) -> tuple[list[str], list[int]]:
    try:
        replies = app.control.inspect().stats() or {}
    except CeleriacError as exc:
        raise CLIError(f"graph workers: could not ask the workers: {exc}") from exc
    workers = sorted(replies)
    return workers, [int(replies[name]["pool"]["max-concurrency"]) for name in workers]


@click.group("graph", short_help="Draw the cluster as a Graphviz graph.")
def graph_group() -> None:
    """Graphviz (DOT) drawings: 'graph workers' draws the workers, their pool processes,
    the broker and the result store."""


@graph_group.command(
    "workers", context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
)
@click.pass_context
def graph_workers(ctx: click.Context) -> None:
    """Print the workers graph in DOT: the running workers (from inspect stats), or
    nodes:w1,w2 threads:4,2; wmax:N and tmax:N shorten (0: all), broker:URL and
    backend:URL replace the app's, 'enumerate' numbers the workers, 'generic' shows
    the URLs' schemes only."""
    args = parse_arguments(ctx.args)
    obj: CLIContext = ctx.obj
    app = obj.load_app()
    if "nodes" in args:
        workers = [name for name in args["nodes"].split(",") if name]
        sizes = [
            _number({"threads": size}, "threads", 0)
            for size in args.get("threads", "").split(",")
            if size
        ]
    else:
        workers, sizes = _from_inspect(app)
    broker = args.get("broker") or app.connection_for_read().as_uri()
    backend = args.get("backend", app.conf.result_backend)
    click.echo(workers_graph(workers, sizes, broker, backend or None, args), nl=False)


__all__ = ["abbreviate", "graph_group", "parse_arguments", "workers_graph"]
