"""The HTML pages: each renders the same data its API endpoint returns (``queries``).

Runtime layer (dashboard). Jinja2 templates with autoescaping; the live parts are filled
by ``static/dashboard.js`` from the server-sent events stream.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import Response
from starlette.templating import Jinja2Templates

from celeriac import states
from celeriac.brokers.base import DeadLetterReason
from celeriac.dashboard import actions, queries
from celeriac.dashboard.api import board_of

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=str(HERE / "templates"))
STATES = sorted(states.ALL_STATES)


def when(stamp: Any) -> str:
    if not isinstance(stamp, (int, float)):
        return "\u2013"  # an en dash: no time
    return dt.datetime.fromtimestamp(stamp, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


templates.env.filters["when"] = when


def render(request: Request, name: str, status: int = 200, **context: Any) -> Response:
    context.setdefault("prefix", request.app.state.prefix)
    context.setdefault("csrf_token", request.state.csrf_token)
    context.setdefault("user", request.state.user)
    return templates.TemplateResponse(request, name, context, status_code=status)


def overview_page(request: Request) -> Response:
    return render(request, "overview.html", page="overview",
                  data=queries.overview(board_of(request), series=False))  # fmt: skip


def workers_page(request: Request) -> Response:
    return render(request, "workers.html", page="workers",
                  workers=queries.workers(board_of(request)))  # fmt: skip


def tasks_page(request: Request) -> Response:
    params = request.query_params
    try:
        offset = max(int(params.get("offset", "0")), 0)
    except ValueError:
        offset = 0
    try:
        since = queries.moment(params.get("since", ""), "since")
        until = queries.moment(params.get("until", ""), "until")
    except ValueError:
        since = until = None
    found = queries.tasks(
        board_of(request), params.get("search", ""), params.get("state", ""),
        params.get("name", ""), 50, offset, since, until,
    )  # fmt: skip

    def page_at(start: int) -> str:
        return urlencode({**params, "offset": start})

    newer = page_at(max(offset - 50, 0)) if offset > 0 else ""
    older = page_at(offset + 50) if offset + 50 < found["total"] else ""
    return render(request, "tasks.html", page="tasks", found=found, states=STATES,
                  params=dict(params), newer=newer, older=older,
                  runtimes=queries.runtimes(board_of(request)))  # fmt: skip


def task_page(request: Request) -> Response:
    task_id = request.path_params["task_id"]
    found = queries.task(board_of(request), task_id)
    if found is None:
        return render(request, "missing.html", 404, page="tasks", what=f"task {task_id}",
                      stream_task=task_id)  # fmt: skip
    return render(request, "task.html", page="tasks", task=found)


def queues_page(request: Request) -> Response:
    return render(request, "queues.html", page="queues",
                  queues=queries.queues(board_of(request)))  # fmt: skip


def dead_letters_page(request: Request) -> Response:
    params = request.query_params
    queue, reason = params.get("queue", ""), params.get("reason", "")
    try:
        found = queries.dead_letters(board_of(request), queue, reason)
    except ValueError:
        found = queries.dead_letters(board_of(request), queue)
        reason = ""
    reasons = [item.value for item in DeadLetterReason]
    return render(request, "dead_letters.html", page="dead-letters", found=found,
                  queue=queue, reason=reason, reasons=reasons)  # fmt: skip


def dead_letter_page(request: Request) -> Response:
    queue, entry = request.path_params["queue"], request.path_params["entry_id"]
    found = queries.dead_letter(board_of(request), queue, entry)
    if found is None:
        return render(request, "missing.html", 404, page="dead-letters",
                      what=f"dead letter {entry} of {queue}")  # fmt: skip
    return render(request, "dead_letter.html", page="dead-letters", letter=found)


def beat_page(request: Request) -> Response:
    return render(request, "beat.html", page="beat",
                  entries=actions.beat_entries(board_of(request)))  # fmt: skip


__all__ = ["templates"]
