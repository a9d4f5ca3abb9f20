"""The startup banner: what this worker is, where it reads from, and what it will run.

Runtime layer; reads a worker's resolved attributes, its app's settings, and (through
``app.connections``) where the embedded Redis, when that is the broker, keeps its state.
Passwords in URLs are masked here (no redis-py import: the banner serves every broker).
"""

from __future__ import annotations

import platform
import re
from collections.abc import Sequence
from typing import Any, Protocol

import celeriac
from celeriac.app.connections import embedded_server
from celeriac.app.urls import broker_url, read_url, result_url, write_url

# user:password@ in any URL (also each part of a ';'-separated sentinel list).
_PASSWORD = re.compile(r"(://[^:/@;]*:)[^@;]*(@)")


class BannerSubject(Protocol):
    """What the banner reads from a ``Worker`` (after its settings are resolved)."""

    @property
    def app(self) -> Any: ...
    @property
    def hostname(self) -> str: ...
    @property
    def queues(self) -> Sequence[str]: ...
    @property
    def concurrency(self) -> int: ...
    @property
    def pool_name(self) -> str: ...
    @property
    def prefetch(self) -> int: ...
    @property
    def send_events(self) -> bool: ...


def mask_password(url: str) -> str:
    """``redis://:secret@host`` -> ``redis://:**@host``; URLs without one are unchanged."""
    return _PASSWORD.sub(r"\1**\2", url)


def _on(flag: Any) -> str:
    return "ON" if flag else "OFF"


def _transport(app: Any) -> str:
    url, reading = write_url(app.conf), read_url(app.conf)
    if reading != url and reading is not None:  # broker_read_url: consumed from elsewhere
        return f"{mask_password(str(url))} (consuming from {mask_password(reading)})"
    if url is None:  # the default: the embedded Redis when installed, else memory://
        url = getattr(app.broker, "url", None) or "memory://"
        if not url.startswith("memory://"):
            return f"{url} (embedded Redis: no broker_url set)"
    if str(url).startswith("memory://"):
        return f"{url} (in-process: only this process can send it tasks)"
    return mask_password(str(url))


def _embedded(app: Any) -> str | None:
    """Where the embedded Redis runs and how to stop it; None on any other broker. It
    outlives the worker, so the worker says so rather than leave a server behind unsaid."""
    url = getattr(app.broker, "url", None) if broker_url(app.conf) is None else None
    server = embedded_server(url) if isinstance(url, str) else None
    if server is None:
        return None
    return (
        f"Redis pid {server.pid()}, state in {server.dir}; it outlives this worker: stop "
        f"it with 'celeriac embedded stop' (in {server.project})"
    )


def _results(app: Any) -> str:
    url = result_url(app.conf, app.conf.result_backend)
    if url is None and broker_url(app.conf) is None:  # both default to the embedded Redis
        url = getattr(app.backend, "url", None)
        if url:
            return f"{url} (embedded Redis: no result_backend set)"
    return mask_password(str(url)) if url else "disabled"


def _concurrency(worker: BannerSubject) -> str:
    bounds = getattr(worker, "autoscale", None)  # (max, min) with --autoscale
    if bounds:
        return f"{{min={bounds[1]}, max={bounds[0]}}} ({worker.pool_name} pool, autoscaled)"
    return f"{worker.concurrency} ({worker.pool_name} pool)"


def _prefetch(worker: BannerSubject) -> str:
    bounds = getattr(worker, "autoscale", None)
    if bounds and worker.prefetch % bounds[0] == 0:
        multiplier = worker.prefetch // bounds[0]
        return f"{worker.prefetch} (max concurrency {bounds[0]} x multiplier {multiplier})"
    if worker.concurrency and worker.prefetch % worker.concurrency == 0:
        multiplier = worker.prefetch // worker.concurrency
        return f"{worker.prefetch} (concurrency {worker.concurrency} x multiplier {multiplier})"
    return str(worker.prefetch)


def _defaults(conf: Any) -> str:
    return (
        f"acks late {_on(conf.task_acks_late)}, "
        f"reject on worker lost {_on(conf.task_reject_on_worker_lost)}, "
        f"prefetch multiplier {conf.worker_prefetch_multiplier}"
    )


def render_banner(worker: BannerSubject) -> str:
    """The banner printed when ``celeriac worker`` starts (ends with a newline)."""
    app = worker.app
    conf = app.conf
    python = f"{platform.python_implementation()} {platform.python_version()}"
    events = "ON" if worker.send_events else "OFF (enable -E to monitor tasks in this worker)"
    embedded = _embedded(app)
    rows = [
        ("node", worker.hostname),
        ("platform", f"{platform.platform()} / {python}"),
        ("app", app.main or "__main__"),
        ("transport", _transport(app)),
        *([("embedded", embedded)] if embedded else []),
        ("results", _results(app)),
        ("concurrency", _concurrency(worker)),
        ("prefetch", _prefetch(worker)),
        ("task events", events),
        ("queues", ", ".join(worker.queues) or "(none)"),
        ("defaults", _defaults(conf)),
    ]
    title = f"celeriac {celeriac.__version__} worker"
    lines = [title, "=" * len(title)]
    lines += [f"  {label:<12} {value}" for label, value in rows]
    tasks = sorted(app.tasks.regular())
    lines += ["", f"registered tasks ({len(tasks)}):"]
    lines += [f"  - {name}" for name in tasks] or [
        "  (none: name task modules in include=/imports=)"
    ]
    return "\n".join(lines) + "\n"


__all__ = ["BannerSubject", "mask_password", "render_banner"]
