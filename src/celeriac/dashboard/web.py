"""``create_app``: the dashboard's ASGI application (Starlette), routes in one table.

Runtime layer (dashboard). Pages at ``/``, ``/workers``, ``/tasks``, ``/queues``,
``/dead-letters``, ``/beat``; the JSON API under ``/api`` with its OpenAPI schema at
``/api/openapi.json``; vendored front-end files under ``/static``. With ``url_prefix`` every
route lives under it (a reverse proxy passes the path unchanged, as with Flower's option).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.schemas import SchemaGenerator
from starlette.staticfiles import StaticFiles

from celeriac.dashboard import actions, api, pages
from celeriac.dashboard.monitor import Monitor
from celeriac.dashboard.queries import Dashboard
from celeriac.dashboard.security import Auth, SecurityMiddleware

STATIC = Path(__file__).parent / "static"
schemas = SchemaGenerator(
    {"openapi": "3.0.0", "info": {"title": "celeriac dashboard API", "version": "1"}}
)


def openapi(request: Request) -> Response:
    """The API's OpenAPI schema, from the endpoints' docstrings."""
    return JSONResponse(schemas.get_schema(routes=request.app.routes))


ROUTES: list[BaseRoute] = [
    Route("/", pages.overview_page, name="overview"),
    Route("/workers", pages.workers_page),
    Route("/tasks", pages.tasks_page),
    Route("/tasks/{task_id}", pages.task_page),
    Route("/queues", pages.queues_page),
    Route("/dead-letters", pages.dead_letters_page),
    Route("/dead-letters/{queue}/{entry_id}", pages.dead_letter_page),
    Route("/beat", pages.beat_page),
    Route("/api/overview", api.api_overview),
    Route("/api/workers", api.api_workers),
    Route("/api/workers/{hostname}/{action}", actions.api_worker_action, methods=["POST"]),
    Route("/api/tasks", api.api_tasks),
    Route("/api/runtimes", api.api_runtimes),
    Route("/api/tasks/{task_id}", api.api_task),
    Route("/api/tasks/{task_id}/revoke", api.api_revoke, methods=["POST"]),
    Route("/api/tasks/{task_id}/retry", actions.api_retry, methods=["POST"]),
    Route("/api/queues", api.api_queues),
    Route("/api/queues/{queue}/purge", api.api_purge_queue, methods=["POST"]),
    Route("/api/dead-letters", api.api_dead_letters),
    Route("/api/dead-letters/{queue}/replay", api.api_replay, methods=["POST"]),
    Route("/api/dead-letters/{queue}/purge", api.api_purge_dead_letters, methods=["POST"]),
    Route("/api/dead-letters/{queue}/{entry_id}", api.api_dead_letter),
    Route("/api/beat", actions.api_beat),
    Route("/api/beat/{name}/{action}", actions.api_beat_action, methods=["POST"]),
    Route("/api/csrf", api.api_csrf),
    Route("/api/stream", api.api_stream),
    Route("/api/openapi.json", openapi, include_in_schema=False),
    Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
]


def create_app(
    app: Any,
    *,
    auth: Auth | None = None,
    url_prefix: str = "",
    queues: Sequence[str] = (),
    allowed_hosts: Sequence[str] = (),
    monitor: Monitor | None = None,
) -> SecurityMiddleware:
    """The dashboard for the celeriac ``app``: follows its events while it runs (lifespan)."""
    prefix = "/" + url_prefix.strip("/") if url_prefix.strip("/") else ""
    board = Dashboard(app, monitor or Monitor(app), list(queues))

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        board.monitor.start()
        try:
            yield
        finally:
            board.monitor.close()

    routes: list[BaseRoute] = [Mount(prefix, routes=ROUTES)] if prefix else list(ROUTES)
    starlette = Starlette(routes=routes, lifespan=lifespan)
    starlette.state.board = board
    starlette.state.prefix = prefix
    return SecurityMiddleware(starlette, auth or Auth(), allowed_hosts)


__all__ = ["create_app"]
